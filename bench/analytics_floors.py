"""The hand-written SQL floors of bench_analytics.py, the alternating timing loop and the
report. Each floor computes the same figures as the plugin's metric, for the same filters
(tenant acme, EUR, the default pipeline, the last 365 days in Europe/Berlin)."""

from __future__ import annotations

import datetime as dt
import statistics
import time
import zoneinfo
from pathlib import Path
from typing import Any, Callable

DATE_FROM, DATE_TO = dt.date(2025, 12, 1), dt.date(2026, 11, 30)
PARAMS = {"date_from": DATE_FROM.isoformat(), "date_to": DATE_TO.isoformat(), "currency": "EUR"}


def _bounds() -> tuple[dt.datetime, dt.datetime]:
    zone = zoneinfo.ZoneInfo("Europe/Berlin")
    start = dt.datetime.combine(DATE_FROM, dt.time(0), tzinfo=zone).astimezone(dt.UTC).replace(tzinfo=None)
    end = dt.datetime.combine(DATE_TO + dt.timedelta(days=1), dt.time(0), tzinfo=zone).astimezone(dt.UTC).replace(tzinfo=None)
    return start, end


def floors(inst: Any) -> dict[str, Callable[[Any, str], None]]:
    """metric name -> f(connection, placeholder) running the hand-written SQL."""
    pg = bool(inst.pg_url)
    start, end = _bounds()
    if not pg:
        start, end = start.isoformat(" "), end.isoformat(" ")
    t = inst.tenant_id
    open_ids = [s.id for s in inst.stages if not (s.is_won or s.is_lost)]
    steps = [s for s in inst.stages if not s.is_lost]
    rank = lambda col: "CASE " + col + " " + " ".join(f"WHEN {s.id} THEN {i}" for i, s in enumerate(steps, 1)) + " END"
    seconds = (lambda a, b: f"EXTRACT(EPOCH FROM ({a} - {b}))") if pg else (lambda a, b: f"(julianday({a}) - julianday({b})) * 86400.0")
    in_open = ", ".join(map(str, open_ids))
    won_id = next(s.id for s in inst.stages if s.is_won)
    zone = zoneinfo.ZoneInfo("Europe/Berlin")

    def months(first: dt.date, count: int) -> list[tuple[str, dt.date, dt.date]]:
        out = []
        for i in range(count):
            lo = dt.date(first.year + (first.month - 1 + i) // 12, (first.month - 1 + i) % 12 + 1, 1)
            hi = dt.date(lo.year + lo.month // 12, lo.month % 12 + 1, 1)
            out.append((f"{lo.year}-{lo.month:02d}", lo, hi))
        return out

    def utc(day: dt.date) -> Any:
        value = dt.datetime.combine(day, dt.time(0), tzinfo=zone).astimezone(dt.UTC).replace(tzinfo=None)
        return value if pg else value.isoformat(" ")

    def case(col: str, spans: list[tuple[str, Any, Any]]) -> str:
        return "CASE " + " ".join(f"WHEN {col} >= '{lo}' AND {col} < '{hi}' THEN '{key}'" for key, lo, hi in spans) + " END"

    forecast_months = months(DATE_FROM, 12)
    today = dt.datetime.now(zone).date()
    history = months(dt.date(today.year - 1, today.month, 1), 12)
    won_by_month = lambda spans: (
        f"SELECT {case('closed_at', [(k, utc(lo), utc(hi)) for k, lo, hi in spans])} AS b, COUNT(*), SUM(value) FROM crm_deal "
        f"WHERE tenant_id = %P AND currency = 'EUR' AND pipeline_id = %P AND stage_id = {won_id} AND closed_at >= '{utc(spans[0][1])}' AND closed_at < '{utc(spans[-1][2])}' GROUP BY b"
    )

    def run(sql: str, params: tuple) -> Callable[[Any, str], None]:
        def go(conn: Any, p: str) -> None:
            cur = conn.cursor()
            cur.execute(sql.replace("%P", p), params)
            cur.fetchall()

        return go

    def both(*steps: Callable[[Any, str], None]) -> Callable[[Any, str], None]:
        """Several statements one after the other (a metric made of two queries)."""
        def go(conn: Any, p: str) -> None:
            for step in steps:
                step(conn, p)

        return go

    def forecast(conn: Any, p: str) -> None:
        cur = conn.cursor()
        cur.execute(
            (f"SELECT {case('expected_close_date', forecast_months)} AS b, COUNT(*), SUM(value), SUM(CASE WHEN probability >= 50 THEN value ELSE 0 END), "
             f"SUM(CASE WHEN probability >= 75 THEN value ELSE 0 END), SUM(value * probability) FROM crm_deal WHERE tenant_id = %P AND currency = 'EUR' AND pipeline_id = %P "
             f"AND stage_id IN ({in_open}) AND expected_close_date >= '{forecast_months[0][1]}' AND expected_close_date < '{forecast_months[-1][2]}' GROUP BY b").replace("%P", p),
            (t, inst.pipeline_id),
        )
        cur.fetchall()
        for spans in (forecast_months, history):
            cur.execute(won_by_month(spans).replace("%P", p), (t, inst.pipeline_id))
            cur.fetchall()

    return {
        "forecast": forecast,
        "forecast-accuracy": run(won_by_month(history), (t, inst.pipeline_id)),
        "pipeline": run(
            "SELECT d.stage_id, COUNT(*), SUM(d.value), SUM(d.value * d.probability) FROM crm_deal d JOIN crm_stage s ON s.id = d.stage_id "
            "WHERE d.tenant_id = %P AND d.currency = 'EUR' AND NOT s.is_won AND NOT s.is_lost AND d.created_at >= %P AND d.created_at < %P GROUP BY d.stage_id",
            (t, start, end),
        ),
        "funnel": run(
            f"SELECT furthest, COUNT(*) FROM (SELECT d.id, MAX({rank('v.stage_id')}) AS furthest FROM crm_deal d JOIN ("
            "SELECT deal_id, to_stage_id AS stage_id FROM crm_deal_stage_change WHERE tenant_id = %P UNION ALL "
            "SELECT deal_id, from_stage_id FROM crm_deal_stage_change WHERE tenant_id = %P UNION ALL "
            "SELECT id, stage_id FROM crm_deal WHERE tenant_id = %P) v ON v.deal_id = d.id "
            "WHERE d.tenant_id = %P AND d.currency = 'EUR' AND d.pipeline_id = %P AND d.created_at >= %P AND d.created_at < %P GROUP BY d.id) f "
            "WHERE furthest IS NOT NULL GROUP BY furthest",
            (t, t, t, t, inst.pipeline_id, start, end),
        ),
        "time-in-stage": run(
            "SELECT stage_id, COUNT(*), SUM(visits), AVG(secs) FROM (SELECT h.from_stage_id AS stage_id, SUM(h.seconds_in_previous) AS secs, COUNT(*) AS visits "
            f"FROM crm_deal_stage_change h JOIN crm_deal d ON d.id = h.deal_id WHERE h.tenant_id = %P AND d.currency = 'EUR' AND h.from_stage_id IN ({in_open}) "
            "AND h.changed_at >= %P AND h.changed_at < %P GROUP BY h.from_stage_id, h.deal_id) x GROUP BY stage_id",
            (t, start, end),
        ),
        **{
            name: run(
                "SELECT d.owner_id, SUM(CASE WHEN s.is_won THEN 1 ELSE 0 END), SUM(CASE WHEN s.is_won THEN 0 ELSE 1 END), "
                f"SUM(CASE WHEN s.is_won THEN d.value ELSE 0 END), SUM(CASE WHEN s.is_won THEN {seconds('d.closed_at', 'd.created_at')} END) "
                "FROM crm_deal d JOIN crm_stage s ON s.id = d.stage_id WHERE d.tenant_id = %P AND d.currency = 'EUR' AND (s.is_won OR s.is_lost) "
                "AND d.closed_at IS NOT NULL AND d.closed_at >= %P AND d.closed_at < %P GROUP BY d.owner_id",
                (t, start, end),
            )
            for name in ("win-rate", "deal-size", "sales-cycle")
        },
        "win-loss-reasons": run(
            "SELECT d.lost_reason, SUM(CASE WHEN s.is_won THEN 1 ELSE 0 END), SUM(CASE WHEN s.is_won THEN 0 ELSE 1 END), SUM(CASE WHEN s.is_won THEN 0 ELSE d.value END) "
            "FROM crm_deal d JOIN crm_stage s ON s.id = d.stage_id WHERE d.tenant_id = %P AND d.currency = 'EUR' AND (s.is_won OR s.is_lost) "
            "AND d.closed_at IS NOT NULL AND d.closed_at >= %P AND d.closed_at < %P GROUP BY d.lost_reason",
            (t, start, end),
        ),
        "velocity": both(
            run(f"SELECT owner_id, COUNT(*) FROM crm_deal WHERE tenant_id = %P AND currency = 'EUR' AND stage_id IN ({in_open}) GROUP BY owner_id", (t,)),
            run(
                "SELECT d.owner_id, SUM(CASE WHEN s.is_won THEN 1 ELSE 0 END), SUM(CASE WHEN s.is_won THEN 0 ELSE 1 END), "
                f"SUM(CASE WHEN s.is_won THEN d.value ELSE 0 END), SUM(CASE WHEN s.is_won THEN {seconds('d.closed_at', 'd.created_at')} END) "
                "FROM crm_deal d JOIN crm_stage s ON s.id = d.stage_id WHERE d.tenant_id = %P AND d.currency = 'EUR' AND (s.is_won OR s.is_lost) "
                "AND d.closed_at IS NOT NULL AND d.closed_at >= %P AND d.closed_at < %P GROUP BY d.owner_id",
                (t, start, end),
            ),
        ),
        "lead-sources": run(
            "SELECT source, COUNT(*), SUM(CASE WHEN status = 'converted' THEN 1 ELSE 0 END) FROM crm_lead WHERE tenant_id = %P AND created_at >= %P AND created_at < %P GROUP BY source",
            (t, start, end),
        ),
        "response-time": run(
            f"SELECT l.owner_id, COUNT(*), COUNT(f.first_at), SUM({seconds('f.first_at', 'l.created_at')}) FROM crm_lead l LEFT JOIN "
            "(SELECT lead_id, MIN(occurred_at) AS first_at FROM crm_activity WHERE tenant_id = %P AND lead_id IS NOT NULL GROUP BY lead_id) f ON f.lead_id = l.id "
            "WHERE l.tenant_id = %P AND l.created_at >= %P AND l.created_at < %P GROUP BY l.owner_id",
            (t, t, start, end),
        ),
        "activities": run(
            "SELECT user_id, COUNT(*), SUM(CASE WHEN kind = 'call' THEN 1 ELSE 0 END), SUM(CASE WHEN kind = 'email' THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN kind = 'meeting' THEN 1 ELSE 0 END) FROM crm_activity WHERE tenant_id = %P AND occurred_at >= %P AND occurred_at < %P GROUP BY user_id",
            (t, start, end),
        ),
    }


def _count_statements(inst: Any, call: Callable[[], None]) -> int:
    db = inst.db.database.obj
    original, seen = db.execute_sql, []

    def counting(sql: str, params: Any = None, *args: Any, **kwargs: Any) -> Any:
        seen.append(sql)
        return original(sql, params, *args, **kwargs)

    db.execute_sql = counting
    try:
        call()
    finally:
        del db.execute_sql
    return len(seen)


def run_instance(inst: Any, floor: dict[str, Callable[[Any, str], None]], runs: int) -> list[dict[str, Any]]:
    conn, p = inst.raw()
    rows = []
    pipeline = {"pipeline_id": inst.pipeline_id}

    def api(metric: str) -> Callable[[], None]:
        def go() -> None:
            response = inst.client.get(f"/api/v1/analytics/{metric}", query_string={**PARAMS, **pipeline}, headers=inst.headers)
            assert response.status_code == 200, response.get_data(as_text=True)[:300]

        return go

    for metric, hand in floor.items():
        full = api(metric)
        full()  # warm both (caches, plans)
        hand(conn, p)
        full_times, floor_times = [], []
        for _ in range(runs):
            started = time.perf_counter()
            full()
            full_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            hand(conn, p)
            floor_times.append(time.perf_counter() - started)
        statements = _count_statements(inst, full)
        rows.append({"metric": metric, "full_ms": statistics.median(full_times) * 1000, "floor_ms": statistics.median(floor_times) * 1000, "statements": statements})
        print(f"    {metric:14} full {rows[-1]['full_ms']:9.1f} ms  floor {rows[-1]['floor_ms']:9.1f} ms  ratio {rows[-1]['full_ms'] / rows[-1]['floor_ms']:5.2f}  ({statements} statements)", flush=True)
    # The dashboard page: every metric, the summary and the charts, as a signed-in user.
    web = inst.env.client("acme")
    inst.env.login(web, "acme")
    page = lambda: web.get("/app/analytics/", query_string={**PARAMS, **pipeline})
    page()
    page_times = []
    for _ in range(max(1, runs // 2)):
        started = time.perf_counter()
        assert page().status_code == 200
        page_times.append(time.perf_counter() - started)
    page_statements = _count_statements(inst, page)
    rows.append({"metric": "dashboard page", "full_ms": statistics.median(page_times) * 1000, "floor_ms": sum(r["floor_ms"] for r in rows), "statements": page_statements})
    print(f"    dashboard page full {rows[-1]['full_ms']:9.1f} ms  sum of the floors {rows[-1]['floor_ms']:9.1f} ms  ({page_statements} statements)", flush=True)
    rows += _precomputed_dashboard(inst, web, sum(r["floor_ms"] for r in rows[:-1]), runs)
    conn.close()
    return rows


def _precomputed_dashboard(inst: Any, web: Any, floors_ms: float, runs: int) -> list[dict[str, Any]]:
    """The pre-computed dashboard (plugins/analytics/dashboard_cache.py): the background
    refresh (what the task does: every metric and the summary, unfiltered, all time) and
    the unfiltered page served from its copy, each next to the sum of the floors."""
    from crm_plugins.analytics import dashboard_cache

    tenant = inst.env.tenant("acme")
    refresh_times = []
    for _ in range(max(1, runs // 2)):
        with inst.env.app.app_context(), inst.db.connection(), inst.db.tenant_context(tenant):
            started = time.perf_counter()
            dashboard_cache.refresh(tenant)
            refresh_times.append(time.perf_counter() - started)
    page = lambda: web.get("/app/analytics/")
    assert "Figures as of" in page().get_data(as_text=True)
    page_times = []
    for _ in range(max(3, runs)):
        started = time.perf_counter()
        assert page().status_code == 200
        page_times.append(time.perf_counter() - started)
    out = [
        {"metric": "dashboard refresh (background task, all time)", "full_ms": statistics.median(refresh_times) * 1000, "floor_ms": floors_ms, "statements": _count_statements(inst, lambda: _refresh_in(inst, tenant))},
        {"metric": "dashboard page from the copy", "full_ms": statistics.median(page_times) * 1000, "floor_ms": floors_ms, "statements": _count_statements(inst, page)},
    ]
    for row in out:
        print(f"    {row['metric']}: {row['full_ms']:9.1f} ms  sum of the floors {floors_ms:9.1f} ms  ({row['statements']} statements)", flush=True)
    return out


def _refresh_in(inst: Any, tenant: Any) -> None:
    from crm_plugins.analytics import dashboard_cache

    with inst.env.app.app_context(), inst.db.connection(), inst.db.tenant_context(tenant):
        dashboard_cache.refresh(tenant)


def write_report(results: list[dict[str, Any]], path: Path, machine: str) -> None:
    lines = ["# Analytics benchmark", "", f"`bench/bench_analytics.py`, {machine}. Median ms per call; ratio = full stack ÷ hand-written SQL.", ""]
    for result in results:
        lines += [f"## {result['backend']}, {result['n']:,} deals", "", "| metric | full stack (ms) | hand-written SQL (ms) | ratio | statements |", "|---|---:|---:|---:|---:|"]
        for r in result["rows"]:
            lines.append(f"| {r['metric']} | {r['full_ms']:.1f} | {r['floor_ms']:.1f} | {r['full_ms'] / r['floor_ms']:.2f} | {r['statements']} |")
        lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
