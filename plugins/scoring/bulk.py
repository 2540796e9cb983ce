"""Rescoring in SQL: the rules' points and the model's prediction computed by the
database, compact factors stored, reasons written out when a score is read.

:func:`rescore_sql` scores a batch (the whole tenant, or up to 2,000 ids) with a constant
number of statements whatever the number of leads: the facts, the points of every factor
and, with a trained model, its features and prediction in one ``CREATE TEMP TABLE ... AS
SELECT`` (the same aggregates as :func:`engine.gather`, the settings inlined as
literals); then the changed leads (for the signals), their history rows, one upsert of
the rows that differ and one ``UPDATE`` of ``computed_at``. Job-title seniority (a
regular expression) and the factors of other plugins are computed in Python for the
leads concerned only and joined in from a second temporary table.

Each stored factor is a compact list, ``[name, points, *arguments]`` (e.g.
``["value", 10.0, 60000.0, 50000.0]``): the numbers a reason is made of, not its text, so
that a rescore does not build 100,000 sentences nobody reads. :func:`explain`,
:func:`components_of` and :func:`top_features_of` turn them (and the stored feature
vector) into what the rules in Python make (:func:`engine.score_facts`) when a score is
read (API, panel). Rows stored whole by an earlier version are passed through.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping
from typing import Any

from crm_plugins.scoring.models import LeadScore, ScoreHistory
from crmcore import sdk
from crmcore.sdk import Contact, Lead

#: name -> (label, component) of the rule factors (engine.rule_factors uses the same).
LABELS: dict[str, tuple[str, str]] = {
    "probability": ("Probability", "base"),
    "value": ("Value", "base"),
    "recent_contact": ("Recent contact", "base"),
    "company_size": ("Company size", "fit"),
    "industry": ("Industry", "fit"),
    "seniority": ("Seniority", "fit"),
    "bant": ("BANT", "fit"),
    "activities": ("Activities", "engagement"),
    "inbound": ("Inbound replies", "engagement"),
    "chat": ("Chat messages", "engagement"),
    "recency": ("Activity recency", "recency"),
}
ENGAGEMENT_WORDS = {"activities": ("activity", "activities"), "inbound": ("inbound reply", "inbound replies"), "chat": ("chat message", "chat messages")}
BANT = ("budget", "authority", "need", "timeline")
log = logging.getLogger("crm_plugins.scoring")
TEMP = "scoring_tmp_new"
ADJ = "scoring_tmp_adj"


# --------------------------------------------------------------------------- reading


def _money(value: float) -> str:
    return f"{value:,.0f}"


def _plural(n: int, one: str, many: str) -> str:
    return one if n == 1 else many


def reason_of(item: list[Any]) -> dict[str, Any]:
    """One compact factor as the dict the rules in Python make (same reason text)."""
    name, points = item[0], float(item[1])
    if name == "x":  # another plugin's factor, stored whole: [x, points, name, label, component, reason]
        return {"component": item[4], "label": item[3], "name": item[2], "points": points, "reason": item[5]}
    label, component = LABELS[name]
    args = item[2:]
    if name == "probability":
        if args[0] == "d":
            why = f"Deal probability {int(args[1])}%"
            weight = args[2]
        else:
            why = f"Status “{args[1]}”: {int(args[2])}% probability"
            weight = args[3]
        if float(weight) != 1:
            why += f" × {float(weight):g}"
    elif name == "value":
        why = f"Value {_money(float(args[0]))} above {_money(float(args[1]))}"
    elif name == "recent_contact":
        d = int(args[0])
        why = f"Last contact {d} day{'s' if d != 1 else ''} ago (within {int(args[1])})"
    elif name == "company_size":
        why = f"Company size {args[0]}"
    elif name == "industry":
        why = f"Industry {args[0]}"
    elif name == "seniority":
        why = f"Job title “{args[0]}” ({args[1]})"
    elif name == "bant":
        filled = [field for field, flag in zip(BANT, str(args[0])) if flag == "1"]
        why = f"{len(filled)} of 4 BANT fields filled ({', '.join(filled)})"
    elif name in ENGAGEMENT_WORDS:
        n = int(args[0])
        one, many = ENGAGEMENT_WORDS[name]
        why = f"{n} {_plural(n, one, many)} in the last {int(args[1])} days{' (capped)' if int(args[2]) else ''}"
    else:  # recency
        d = int(args[0])
        why = f"Last activity {d} day{'s' if d != 1 else ''} ago"
    return {"component": component, "label": label, "name": name, "points": points, "reason": why}


def explain(factors: Any) -> list[dict[str, Any]]:
    """Stored factors (compact lists, or dicts from the Python path) as dicts with reasons."""
    return [reason_of(f) if isinstance(f, list) else f for f in (factors or [])]


def top_features_of(stored: Any) -> list[dict[str, Any]]:
    """The prediction's top features: as stored by the Python path (dicts), or from the
    stored feature vector (rows written in SQL) with the tenant's model."""
    from crm_plugins.scoring import predictive

    if not stored or isinstance(stored[0], dict):
        return stored or []
    model = predictive.load_model()
    return model.explain([float(v) for v in stored])[1] if model is not None else []


def components_of(stored: Any, factors: list[dict[str, Any]]) -> dict[str, float]:
    """The points per component: as stored by the Python path, else (rows written in SQL
    store ``{}``) summed from the factors as engine.score_facts sums them."""
    from crm_plugins.scoring import engine

    if stored:
        return stored
    sums = {"base": 0.0, "engagement": 0.0, "fit": 0.0, "other": 0.0, "recency": 0.0}
    for f in factors:
        sums[f["component"]] += f["points"]
    return {k: engine.round2(v) if v else v for k, v in sums.items()}


# --------------------------------------------------------------------------- the statement


def _num(value: float) -> str:
    """A Python number as an SQL literal (repr round-trips a float exactly)."""
    return repr(float(value))


def _text(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _case_map(expr: str, table: Mapping[str, Any], default: str = "0") -> str:
    if not table:
        return default
    whens = " ".join(f"WHEN {_text(k)} THEN {_num(v)}" for k, v in table.items())
    return f"(CASE {expr} {whens} ELSE {default} END)"


def _sql(cfg: Mapping[str, Any], pg: bool, ids: list[int] | None, model: Any = None) -> str:
    """The facts and the points of every factor for the tenant's leads, one statement."""
    base, fit, eng, rec, w = cfg["base"], cfg["fit"], cfg["engagement"], cfg["recency"], cfg["weights"]
    greatest, least = ("GREATEST", "LEAST") if pg else ("MAX", "MIN")
    if pg:
        days = lambda col: f"CAST(FLOOR(EXTRACT(EPOCH FROM (CAST(:now AS timestamp) - {col})) / 86400) AS INTEGER)"
    else:
        days = lambda col: f"CAST(julianday(:now) - julianday({col}) AS INTEGER)"
    # round(raw * weight, 2) as engine.score_facts; a literal weight of 1 leaves raw as is.
    # PostgreSQL rounds numerics only (and a double cast to numeric keeps 15 digits, as
    # engine.round1's epsilon does).
    rnd = (lambda e, n: f"ROUND(CAST({e} AS NUMERIC), {n})") if pg else (lambda e, n: f"ROUND({e}, {n})")
    nul = "CAST(NULL AS NUMERIC)" if pg else "NULL"  # an untyped NULL column is text to PostgreSQL
    weighted = lambda raw, comp: rnd(f"({raw}) * {_num(w[comp])}", 2)
    only = "" if ids is None else f" AND l.id IN ({', '.join(str(int(i)) for i in ids)})"
    only_d = "" if ids is None else f" AND lead_id IN ({', '.join(str(int(i)) for i in ids)})"
    filled = " || ".join(f"(CASE WHEN TRIM(COALESCE(l.{c}, '')) <> '' THEN '1' ELSE '0' END)" for c in BANT)
    industries = {k.lower(): v for k, v in fit["industry"].items()}
    status_prob = _case_map("l.status", base["status_probability"])
    probability = "COALESCE(d.prob, " + status_prob + ")"

    facts = f"""
WITH d AS (
  SELECT lead_id, MAX(probability) AS prob, MAX(value) AS value FROM crm_deal
  WHERE tenant_id = :tenant AND lead_id IS NOT NULL{only_d} GROUP BY lead_id),
a AS (
  SELECT lead_id,
    SUM(CASE WHEN occurred_at >= :since THEN 1 ELSE 0 END) AS n,
    SUM(CASE WHEN occurred_at >= :since AND direction = 'in' THEN 1 ELSE 0 END) AS n_in,
    SUM(CASE WHEN occurred_at >= :since AND (kind = 'chat' OR channel = 'chat') THEN 1 ELSE 0 END) AS n_chat,
    MAX(occurred_at) AS last
  FROM crm_activity WHERE tenant_id = :tenant AND lead_id IS NOT NULL{only_d} GROUP BY lead_id),
f AS MATERIALIZED (
  SELECT l.id AS lead_id, l.status, d.prob AS deal_prob, {probability} AS prob,
    {greatest}(COALESCE(d.value, 0), COALESCE(l.estimated_value, 0)) AS value,
    CASE WHEN l.last_contact_at IS NOT NULL AND l.last_contact_at >= :contact_since THEN {greatest}(0, {days('l.last_contact_at')}) END AS contact_days,
    c.size AS size, c.industry AS industry,
    {filled} AS bant_mask,
    COALESCE(a.n, 0) AS n, COALESCE(a.n_in, 0) AS n_in, COALESCE(a.n_chat, 0) AS n_chat,
    CASE WHEN a.last IS NULL THEN NULL ELSE {greatest}(0, {days('a.last')}) END AS act_days,
    x.sen_points, x.sen_title, x.sen_keyword, x.extra_fit, x.extra_engagement, x.extra_recency, x.extra_other, x.extra_json
  FROM crm_lead l
  LEFT JOIN d ON d.lead_id = l.id LEFT JOIN a ON a.lead_id = l.id
  LEFT JOIN crm_company c ON c.id = l.company_id
  LEFT JOIN {ADJ} x ON x.lead_id = l.id
  WHERE l.tenant_id = :tenant{only}),"""

    # raw points of each factor (NULL: the factor does not apply, as rule_factors leaves it out)
    size_pts = _case_map("f.size", fit["company_size"], "NULL")
    ind_pts = _case_map("LOWER(f.industry)", industries, "NULL")
    n_bant = "(" + " + ".join(f"(CASE WHEN SUBSTR(f.bant_mask, {i + 1}, 1) = '1' THEN 1 ELSE 0 END)" for i in range(4)) + ")"
    eng_items = []
    for key, col, per, cap in (("activities", "f.n", eng["activity_points"], eng["activity_cap"]), ("inbound", "f.n_in", eng["inbound_points"], eng["inbound_cap"]), ("chat", "f.n_chat", eng["chat_points"], eng["chat_cap"])):
        if per:
            raw = f"{greatest}({_num(-cap)}, {least}({_num(cap)}, {col} * {_num(per)}))"
            pts = f"CASE WHEN {col} <> 0 THEN {weighted(raw, 'engagement')} END"
        else:
            pts = nul
        eng_items.append((key, col, pts, f"(CASE WHEN ABS({col} * {_num(per)}) > {_num(cap)} THEN 1 ELSE 0 END)"))
    full, zero, rpts = rec["full_days"], rec["zero_days"], rec["points"]
    recency_raw = (
        f"(CASE WHEN f.act_days IS NULL THEN NULL WHEN f.act_days <= {int(full)} THEN {_num(rpts)} WHEN f.act_days >= {int(zero)} THEN NULL"
        f" ELSE {_num(rpts)} * ({int(zero)} - f.act_days) / {_num(zero - full)} END)"
    ) if rpts else nul
    # recency: a computed 0 is left out too (rule_factors: "if pts")
    points = f"""
p AS MATERIALIZED (
  SELECT f.*,
    {weighted(f"f.prob * {_num(base['probability_weight'])}", 'base') if base['use_probability'] else nul} AS p_prob,
    CASE WHEN f.value > {_num(base['value_high'])} THEN {weighted(_num(base['value_high_points']), 'base')}
         WHEN f.value > {_num(base['value_mid'])} THEN {weighted(_num(base['value_mid_points']), 'base')} END AS p_value,
    CASE WHEN f.value > {_num(base['value_high'])} THEN {_num(base['value_high'])} WHEN f.value > {_num(base['value_mid'])} THEN {_num(base['value_mid'])} END AS value_threshold,
    CASE WHEN f.contact_days IS NOT NULL THEN {weighted(_num(base['recent_contact_points']), 'base')} END AS p_contact,
    CASE WHEN {size_pts} <> 0 THEN {weighted(size_pts, 'fit')} END AS p_size,
    CASE WHEN {ind_pts} <> 0 THEN {weighted(ind_pts, 'fit')} END AS p_industry,
    CASE WHEN f.sen_points IS NOT NULL THEN {weighted('f.sen_points', 'fit')} END AS p_seniority,
    CASE WHEN {n_bant} > 0 AND {_num(fit['bant_points'])} <> 0 THEN {weighted(f"{n_bant} * {_num(fit['bant_points'])}", 'fit')} END AS p_bant,
    {", ".join(f"{pts} AS p_{key}, {capped} AS capped_{key}" for key, col, pts, capped in eng_items)},
    CASE WHEN {recency_raw} <> 0 THEN {weighted(recency_raw, 'recency')} END AS p_recency
  FROM f),"""

    def c(col: str) -> str:
        return f"COALESCE({col}, 0)"

    comp_base = f"{c('p_prob')} + {c('p_value')} + {c('p_contact')}"
    comp_fit = f"{c('p_size')} + {c('p_industry')} + {c('p_seniority')} + {c('p_bant')} + {c('extra_fit')}"
    comp_eng = f"{c('p_activities')} + {c('p_inbound')} + {c('p_chat')} + {c('extra_engagement')}"
    comp_rec = f"{c('p_recency')} + {c('extra_recency')}"
    comp_other = c("extra_other")
    sums = f"""
s AS (
  SELECT p.*, ({comp_base}) AS c_base, ({comp_fit}) AS c_fit, ({comp_eng}) AS c_engagement, ({comp_rec}) AS c_recency, ({comp_other}) AS c_other FROM p),
r AS (
  SELECT s.*, {rnd(f"{least}(100, {greatest}(0, c_base + c_engagement + c_fit + c_other + c_recency))", 1)} AS rule_score FROM s)"""

    def item(cond: str, *parts: str) -> str:
        """One compact factor, '[...],' or '' (the trailing comma is trimmed below):
        the database's own JSON array function, one call per factor."""
        array = f"json_array({', '.join(parts)})" if not pg else f"CAST(json_build_array({', '.join(parts)}) AS TEXT)"
        return f"CASE WHEN {cond} THEN {array} || ',' ELSE '' END"

    window = str(int(eng["window_days"]))
    pw = _num(base["probability_weight"])
    items = [
        item("p_prob IS NOT NULL AND deal_prob IS NOT NULL", "'probability'", "p_prob", "'d'", "deal_prob", pw),
        item("p_prob IS NOT NULL AND deal_prob IS NULL", "'probability'", "p_prob", "'s'", "status", status_prob.replace("l.status", "status"), pw),
        item("p_value IS NOT NULL", "'value'", "p_value", "value", "value_threshold"),
        item("p_contact IS NOT NULL", "'recent_contact'", "p_contact", "contact_days", str(int(base["recent_contact_days"]))),
        item("p_size IS NOT NULL", "'company_size'", "p_size", "size"),
        item("p_industry IS NOT NULL", "'industry'", "p_industry", "industry"),
        item("p_seniority IS NOT NULL", "'seniority'", "p_seniority", "sen_title", "sen_keyword"),
        item("p_bant IS NOT NULL", "'bant'", "p_bant", "bant_mask"),
        *(item(f"p_{key} IS NOT NULL", f"'{key}'", f"p_{key}", col.replace("f.", ""), window, f"capped_{key}") for key, col, _, _ in eng_items),
        item("p_recency IS NOT NULL", "'recency'", "p_recency", "act_days"),
    ]
    factors = "'[' || RTRIM(" + " || ".join(items) + " || COALESCE(extra_json, ''), ',') || ']'"
    g = cfg["grades"]
    dbl = (lambda e: f"CAST({e} AS DOUBLE PRECISION)") if pg else (lambda e: f"({e})")
    rule = dbl("rule_score")
    if model is None:
        score, probability, top = rule, dbl("NULL"), "'[]'"
        tail = ""
    else:
        # The model's features (engine.features_of) and its prediction (predictive.Model
        # .explain) in the statement; the feature vector is stored, its top contributions
        # are written out when the score is read.
        sizes = _case_map("size", fit["company_size"])
        inds = _case_map("LOWER(industry)", industries)
        n_bant_r = n_bant.replace("f.bant_mask", "bant_mask")
        feats = {
            "value": f"ln(1 + {dbl(f'{greatest}(0, value)')})",
            "bant": dbl(n_bant_r),
            "seniority": dbl("COALESCE(sen_points, 0)"),
            "company_size": dbl(sizes),
            "industry": dbl(inds),
            "activities": dbl("n"),
            "inbound": dbl("n_in"),
            "chat": dbl("n_chat"),
            "days_since_activity": dbl(f"{least}(COALESCE(act_days, 365), 365)"),
            "recent_contact": dbl("CASE WHEN contact_days IS NOT NULL THEN 1 ELSE 0 END"),
        }
        xs = [feats[name] for name in model.features]
        contributions = " + ".join(f"{_num(c)} * (x{i} - {_num(m)}) / {_num(sc)}" for i, (c, m, sc) in enumerate(zip(model.coef, model.mean, model.scale)))
        z = f"{_num(model.intercept)} + ({contributions})"
        prob = rnd(f"1.0 / (1.0 + exp(-{greatest}(-50.0, {least}(50.0, {z}))))", 4)
        pwt = float(cfg["predictive_weight"])
        tail = (
            f",\nxf AS (SELECT r.*, {', '.join(f'{e} AS x{i}' for i, e in enumerate(xs))} FROM r),"
            f"\nk AS MATERIALIZED (SELECT xf.*, {dbl(prob)} AS probability FROM xf)"
        )
        probability = "probability"
        score = dbl(rnd(f"{_num(1 - pwt)} * {rule} + {_num(pwt)} * 100 * probability", 1))
        vector = ", ".join(f"x{i}" for i in range(len(xs)))
        top = f"json_array({vector})" if not pg else f"CAST(json_build_array({vector}) AS TEXT)"
    source = "k" if model is not None else "r"
    grade = f"CASE WHEN score >= {_num(g['A'])} THEN 'A' WHEN score >= {_num(g['B'])} THEN 'B' WHEN score >= {_num(g['C'])} THEN 'C' ELSE 'D' END"
    return (
        f"CREATE TEMP TABLE {TEMP} AS {facts}{points}{sums}{tail},"
        f"\nq AS (SELECT lead_id, {score} AS score, {rule} AS rule_score, {probability} AS probability, {top} AS top_features, {factors} AS factors FROM {source})"
        f"\nSELECT lead_id, score, rule_score, {grade} AS grade, probability, top_features, factors FROM q"
    )


def _bind(sql: str, params: dict[str, Any]) -> tuple[str, list[Any]]:
    import re

    values: list[Any] = []
    mark = sdk.database.param

    def repl(m: Any) -> str:
        values.append(params[m.group(1)])
        return mark

    # :name outside quoted literals (the literals hold no colons followed by a word... but
    # to be safe, skip quoted strings).
    out, pos = [], 0
    for lit in re.finditer(r"'(?:[^']|'')*'", sql):
        out.append(re.sub(r"(?<![:\w]):(\w+)", repl, sql[pos : lit.start()]))
        out.append(lit.group(0))
        pos = lit.end()
    out.append(re.sub(r"(?<![:\w]):(\w+)", repl, sql[pos:]))
    return "".join(out), values


def _adjustments(tenant: Any, cfg: Mapping[str, Any], ids: list[int] | None) -> list[tuple[Any, ...]]:
    """Seniority (a regular expression on the contact's job title) and other plugins'
    factors, in Python for the leads concerned only: rows of the adjustments table."""
    from crm_plugins.scoring import COMPONENTS, engine

    fit = cfg["fit"]
    rows: dict[int, dict[str, Any]] = {}
    if fit["seniority"]:
        # From the contacts with a title to their leads (CROSS JOIN: SQLite keeps that
        # order), not through every lead: most leads have no contact.
        only = "" if ids is None else f" AND l.id IN ({', '.join(str(int(i)) for i in ids)})"
        titled = sdk.database.execute_sql(
            f"SELECT l.id, c.job_title FROM {Contact._meta.table_name} c CROSS JOIN {Lead._meta.table_name} l"
            f" WHERE c.tenant_id = {int(tenant.id)} AND c.job_title IS NOT NULL AND c.job_title <> '' AND l.contact_id = c.id AND l.tenant_id = {int(tenant.id)}{only}"
        ).fetchall()
        for lid, title in titled:
            points, keyword = engine.seniority_of(title, fit["seniority"])
            if keyword is not None and points:
                rows[lid] = {"sen": (points, title, keyword)}
    factors = engine.extra_factors(tenant)
    if factors:
        lead_ids = ids if ids is not None else [i for (i,) in sdk.database.execute(Lead.select(Lead.id))]
        for plugin, factor in factors:
            component = factor.component if factor.component in COMPONENTS else "other"
            result: dict[int, tuple[float, str]] = {}
            try:
                for start in range(0, len(lead_ids), engine.BATCH):
                    result.update(factor.compute(tenant, lead_ids[start : start + engine.BATCH]) or {})
            except Exception:
                log.exception("plugin %r: score factor %s failed", plugin, factor.name)
                continue
            weight = cfg["weights"][component]
            for lid, (points, reason) in result.items():
                if not points:
                    continue
                entry = rows.setdefault(int(lid), {})
                pts = engine.round2(float(points) * weight)
                entry.setdefault("extra", []).append((component, pts, ["x", pts, factor.name, factor.label, component, str(reason)]))
    out = []
    for lid, entry in rows.items():
        sen = entry.get("sen") or (None, None, None)
        sums = dict.fromkeys(COMPONENTS, None)
        text = None
        if entry.get("extra"):
            for component, pts, _ in entry["extra"]:
                sums[component] = (sums[component] or 0.0) + pts
            text = "".join(json.dumps(item, ensure_ascii=False) + "," for _, _, item in entry["extra"])
        out.append((lid, sen[0], sen[1], sen[2], sums["fit"], sums["engagement"], sums["recency"], sums["other"], text))
    return out


def rescore_sql(tenant: Any, cfg: Mapping[str, Any], ids: list[int] | None, now: dt.datetime, model: Any = None) -> tuple[int, list[tuple[int, float | None, float, str, str | None]]]:
    """Score and store the leads ``ids`` (None: all) in SQL, inside the caller's
    transaction. Returns the number of leads scored and the changed ones:
    (lead_id, old, new, grade, old_grade)."""
    pg = sdk.is_postgres()
    database = sdk.database
    if pg:
        # Memory for the aggregates, the materialized steps and the hash joins over
        # 100,000 rows (the default 4 MB spills them to disk), for this transaction only.
        database.execute_sql("SET LOCAL work_mem = '64MB'")
        return _rescore_sql(tenant, cfg, ids, now, pg, model)
    # SQLite: a bigger page cache while the batch runs (the default 2 MB is thrashed by
    # 100,000-row upserts into indexed tables), the previous size restored after.
    (cache,) = database.execute_sql("PRAGMA cache_size").fetchone()
    database.execute_sql("PRAGMA cache_size = -65536")
    try:
        return _rescore_sql(tenant, cfg, ids, now, pg, model)
    finally:
        database.execute_sql(f"PRAGMA cache_size = {int(cache)}")


def _rescore_sql(tenant: Any, cfg: Mapping[str, Any], ids: list[int] | None, now: dt.datetime, pg: bool, model: Any) -> tuple[int, list[tuple[int, float | None, float, str, str | None]]]:
    database = sdk.database
    real = "DOUBLE PRECISION" if pg else "REAL"
    database.execute_sql(f"DROP TABLE IF EXISTS {ADJ}")
    database.execute_sql(
        f"CREATE TEMP TABLE {ADJ} (lead_id INTEGER PRIMARY KEY, sen_points {real}, sen_title TEXT, sen_keyword TEXT,"
        f" extra_fit {real}, extra_engagement {real}, extra_recency {real}, extra_other {real}, extra_json TEXT)"
    )
    adjustments = _adjustments(tenant, cfg, ids)
    if adjustments:
        mark = database.param
        database.cursor().executemany(f"INSERT INTO {ADJ} VALUES ({', '.join([mark] * 9)})", adjustments)
    database.execute_sql(f"DROP TABLE IF EXISTS {TEMP}")
    params = {
        "tenant": tenant.id,
        "now": now,
        "since": now - dt.timedelta(days=cfg["engagement"]["window_days"]),
        "contact_since": now - dt.timedelta(days=cfg["base"]["recent_contact_days"]),
    }
    database.execute_sql(*_bind(_sql(cfg, pg, ids, model), params))
    if pg:
        # Statistics for the planner: joined to 100,000 stored scores, a hash join beats
        # 100,000 index probes, which it only picks when it knows the table's size.
        database.execute_sql(f"ANALYZE {TEMP}")

    scores = LeadScore._meta.table_name
    old_join = f"LEFT JOIN {scores} o ON o.tenant_id = {int(tenant.id)} AND o.lead_id = n.lead_id"
    moved = "(o.id IS NULL OR ABS(o.score - n.score) >= 0.05 OR o.grade <> n.grade)"
    changed = [
        (lid, old, float(new), grade, old_grade)
        for lid, old, new, grade, old_grade in database.execute_sql(f"SELECT n.lead_id, o.score, n.score, n.grade, o.grade FROM {TEMP} n {old_join} WHERE {moved} ORDER BY n.lead_id").fetchall()
    ]
    mark = database.param
    if changed:
        database.execute_sql(
            f"INSERT INTO {ScoreHistory._meta.table_name} (tenant_id, lead_id, score, grade, at) SELECT {mark}, n.lead_id, n.score, n.grade, {mark} FROM {TEMP} n {old_join} WHERE {moved}",
            (tenant.id, now),
        )
    # PostgreSQL stores the scores as REAL (float4): compare at that precision.
    real4 = (lambda e: f"CAST({e} AS REAL)") if pg else (lambda e: e)
    differs = (
        f"(o.id IS NULL OR o.score <> {real4('n.score')} OR o.grade <> n.grade OR o.rule_score <> {real4('n.rule_score')}"
        f" OR COALESCE(o.probability, -1) <> COALESCE({real4('n.probability')}, -1) OR o.factors <> n.factors OR o.components <> '{{}}' OR o.top_features <> n.top_features)"
    )
    written = database.execute_sql(
        f"INSERT INTO {scores} (tenant_id, lead_id, score, rule_score, grade, components, factors, probability, top_features, computed_at)"
        f" SELECT {mark}, n.lead_id, n.score, n.rule_score, n.grade, '{{}}', n.factors, n.probability, n.top_features, {mark} FROM {TEMP} n {old_join} WHERE {differs}"
        " ON CONFLICT (tenant_id, lead_id) DO UPDATE SET score = EXCLUDED.score, rule_score = EXCLUDED.rule_score, grade = EXCLUDED.grade,"
        " components = EXCLUDED.components, factors = EXCLUDED.factors, probability = EXCLUDED.probability, top_features = EXCLUDED.top_features, computed_at = EXCLUDED.computed_at",
        (tenant.id, now),
    )
    total = database.execute_sql(f"SELECT COUNT(*) FROM {TEMP}").fetchone()[0]
    # The unchanged rows were looked at now too (none are left when every row was written).
    if written.rowcount != total:
        only = "" if ids is None else f" AND lead_id IN ({', '.join(str(int(i)) for i in ids)})"
        database.execute_sql(f"UPDATE {scores} SET computed_at = {mark} WHERE tenant_id = {mark} AND computed_at <> {mark}{only}", (now, tenant.id, now))
    database.execute_sql(f"DROP TABLE {TEMP}")
    database.execute_sql(f"DROP TABLE {ADJ}")
    return int(total), changed

