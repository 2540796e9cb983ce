"""The scoring engine: the settings, the rules and the prediction in Python, and
:func:`rescore`, which stores scores through the same rules computed in SQL (bulk.py).

:func:`compute` (previews, leads not scored yet) reads the facts of a batch with a
constant number of queries whatever its size (leads with their company and contact;
deal aggregates; activity aggregates; one query per extra factor from
``crm_scoring_factors``; the model) and applies :func:`rule_factors` lead by lead.
:func:`rescore` runs the same rules as one SQL statement per batch and writes only what
changed (bench/bench_scoring.py); tests/plugins/scoring/test_bulk.py holds both to the
same results.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import peewee
from peewee import JOIN, Case, fn

from crm_plugins.scoring import COMPONENTS, ScoringSettings
from crm_plugins.scoring.models import ScoringOverride
from crmcore import sdk
from crmcore.sdk import Activity, Company, Contact, Deal, Lead, Stage, utcnow

log = logging.getLogger("crm_plugins.scoring")

#: Lead ids per batch: bounded so IN lists and bulk inserts stay within driver limits.
BATCH = 2000
#: A score change smaller than this is not a change (no history row, no signal).
EPSILON = 0.05

#: Features of the predictive model, in vector order: (key, label).
FEATURES = (
    ("value", "Value (log)"),
    ("bant", "BANT fields filled"),
    ("seniority", "Job title seniority"),
    ("company_size", "Company size"),
    ("industry", "Industry"),
    ("activities", "Activities in the window"),
    ("inbound", "Inbound replies in the window"),
    ("chat", "Chat messages in the window"),
    ("days_since_activity", "Days since last activity"),
    ("recent_contact", "Contacted recently"),
)
FEATURE_LABELS = dict(FEATURES)

#: Signals this plugin sends (documented in README.md).
lead_score_changed = sdk.signal("lead_score_changed", "A lead's score changed: lead_id, old, new, grade, old_grade.")
lead_score_threshold_crossed = sdk.signal(
    "lead_score_threshold_crossed", "A lead's score rose to or above a configured threshold: lead_id, threshold, old, new, grade."
)


# --------------------------------------------------------------------------- settings


def merge_settings(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``: a section (weights, grades, ...) is merged key by key,
    a points map inside it (company_size, seniority ...) is replaced as a whole."""
    out = json.loads(json.dumps(dict(base)))
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def file_settings(tenant: Any) -> Mapping[str, Any]:

    return sdk.settings(tenant, "scoring")


def effective_settings(tenant: Any, override: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The tenant file's ``[settings.scoring]`` with the admin page's saved overrides on
    top (and ``override`` on top of that, for previews), validated again."""
    saved = ScoringOverride.get_or_none()
    values = merge_settings(file_settings(tenant), saved.values if saved else {})
    if override:
        values = merge_settings(values, override)
    return ScoringSettings().load(values)


def validate_override(tenant: Any, override: Mapping[str, Any]) -> dict[str, Any]:
    """Raise ``marshmallow.ValidationError`` (keys name the setting) if ``override`` does not
    make valid settings; return the resulting settings."""
    return effective_settings(tenant, override)


def round1(value: float) -> float:
    """Round to one decimal, halves up (as SQL's ROUND does; Python's round() would take
    45.15, stored in binary as 45.1499..., down)."""
    return math.floor(value * 10 + 0.5 + 1e-9) / 10


def round2(value: float) -> float:
    """Round to two decimals, halves away from zero, as SQL's ROUND does (the rescore runs
    in SQL, bulk.py): Python's round() would take 2.695, stored as 2.69499..., down."""
    return math.copysign(math.floor(abs(value) * 100 + 0.5 + 1e-9) / 100, value) if value else 0.0


def grade_for(score: float, grades: Mapping[str, float]) -> str:
    for letter in ("A", "B", "C"):
        if score >= grades[letter]:
            return letter
    return "D"


# --------------------------------------------------------------------------- features


@dataclass(slots=True)
class LeadFacts:
    """What the rules look at for one lead (filled by the batch queries)."""

    id: int
    status: str
    estimated_value: float | None
    last_contact_at: dt.datetime | None
    bant: list[str]
    company_size: str | None
    industry: str | None
    job_title: str | None
    deal_probability: int | None = None
    deal_value: float | None = None
    won: int = 0
    lost: int = 0
    activities: int = 0
    inbound: int = 0
    chat: int = 0
    last_activity_at: dt.datetime | None = None
    extra: list[tuple[str, str, str, float, str]] = field(default_factory=list)


def _as_dt(value: Any) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    # Aggregates (MAX) come back as text on SQLite.
    try:
        return dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None


def _ids_filter(query: peewee.ModelSelect, column: Any, ids: list[int] | None) -> peewee.ModelSelect:
    return query if ids is None else query.where(column.in_(ids))


def gather(tenant: Any, ids: list[int] | None, cfg: Mapping[str, Any], now: dt.datetime) -> dict[int, LeadFacts]:
    """The facts of the leads ``ids`` (all the tenant's leads for None): a fixed number of
    aggregate queries, whatever the number of leads."""
    leads = _ids_filter(
        Lead.select(
            Lead.id, Lead.status, Lead.estimated_value, Lead.last_contact_at,
            Lead.budget, Lead.authority, Lead.need, Lead.timeline,
            Company.size, Company.industry, Contact.job_title,
        )
        .join(Company, JOIN.LEFT_OUTER, on=(Lead.company == Company.id))
        .switch(Lead)
        .join(Contact, JOIN.LEFT_OUTER, on=(Lead.contact == Contact.id)),
        Lead.id, ids,
    )
    facts: dict[int, LeadFacts] = {}
    # Raw cursors, not .tuples(): peewee's per-value conversion was a third of the time
    # at 100,000 leads; the few conversions needed are done here (_as_dt, float).
    for lid, status, value, last_contact, budget, authority, need, timeline, size, industry, title in sdk.database.execute(leads):
        bant = [n for n, v in (("budget", budget), ("authority", authority), ("need", need), ("timeline", timeline)) if v and str(v).strip()]
        facts[lid] = LeadFacts(lid, status, float(value) if value is not None else None, _as_dt(last_contact), bant, size, industry, title)
    if not facts:
        return facts

    won = fn.SUM(Case(None, [(Stage.is_won == True, 1)], 0))
    lost = fn.SUM(Case(None, [(Stage.is_lost == True, 1)], 0))
    deals = _ids_filter(
        Deal.select(Deal.lead, fn.MAX(Deal.probability), fn.MAX(Deal.value), won, lost)
        .join(Stage, on=(Deal.stage == Stage.id))
        .where(Deal.lead.is_null(False)),
        Deal.lead, ids,
    ).group_by(Deal.lead)
    for lid, prob, value, n_won, n_lost in sdk.database.execute(deals):
        f = facts.get(lid)
        if f is not None:
            f.deal_probability, f.deal_value = prob, float(value) if value is not None else None
            f.won, f.lost = int(n_won or 0), int(n_lost or 0)

    since = now - dt.timedelta(days=cfg["engagement"]["window_days"])
    recent = Activity.occurred_at >= since
    is_chat = (Activity.kind == "chat") | (Activity.channel == "chat")
    acts = _ids_filter(
        Activity.select(
            Activity.lead,
            fn.SUM(Case(None, [(recent, 1)], 0)),
            fn.SUM(Case(None, [(recent & (Activity.direction == "in"), 1)], 0)),
            fn.SUM(Case(None, [(recent & is_chat, 1)], 0)),
            fn.MAX(Activity.occurred_at),
        ).where(Activity.lead.is_null(False)),
        Activity.lead, ids,
    ).group_by(Activity.lead)
    for lid, n, n_in, n_chat, last in sdk.database.execute(acts):
        f = facts.get(lid)
        if f is not None:
            f.activities, f.inbound, f.chat, f.last_activity_at = int(n or 0), int(n_in or 0), int(n_chat or 0), _as_dt(last)

    _extra_factors(tenant, facts)
    return facts


def extra_factors(tenant: Any) -> list[tuple[str, Any]]:
    """(plugin, ScoreFactor) from ``crm_scoring_factors`` of the tenant's enabled plugins."""

    out = []
    for plugin, contributed in sdk.call_hook(tenant, "crm_scoring_factors", tenant=tenant):
        for factor in contributed or []:
            if not callable(getattr(factor, "compute", None)):
                log.error("plugin %r: crm_scoring_factors returned %r, not a ScoreFactor", plugin, factor)
                continue
            out.append((plugin, factor))
    return out


def _extra_factors(tenant: Any, facts: dict[int, LeadFacts]) -> None:
    factors = extra_factors(tenant)
    if not factors:
        return
    ids = list(facts)
    for plugin, factor in factors:
        component = factor.component if factor.component in COMPONENTS else "other"
        result: dict[int, tuple[float, str]] = {}
        try:
            # At most BATCH ids a call: factors use IN lists, and a whole-tenant rescore
            # would otherwise pass 100,000 of them (beyond SQLite's bound-variable limit).
            for start in range(0, len(ids), BATCH):
                result.update(factor.compute(tenant, ids[start : start + BATCH]) or {})
        except Exception:
            # One plugin's broken factor must not stop every lead from being scored.
            log.exception("plugin %r: score factor %s failed", plugin, factor.name)
            continue
        for lid, (points, reason) in result.items():
            f = facts.get(lid)
            if f is not None and points:
                f.extra.append((factor.name, factor.label, component, float(points), str(reason)))


# --------------------------------------------------------------------------- rules


def _money(value: float) -> str:
    return f"{value:,.0f}"


def _days(delta: dt.timedelta) -> int:
    return max(0, delta.days)


def seniority_of(title: str | None, table: Mapping[str, float]) -> tuple[float, str | None]:
    """The highest points among the keywords found (as words) in the job title."""
    if not title:
        return 0.0, None
    text = title.lower()
    best: tuple[float, str | None] = (0.0, None)
    for keyword, points in table.items():
        if re.search(rf"\b{re.escape(keyword.lower())}\b", text) and (best[1] is None or points > best[0]):
            best = (float(points), keyword)
    return best


_PREPARED: dict[int, tuple[Mapping[str, Any], dict[str, Any]]] = {}


def _prepared(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Values derived from the settings once per settings object, not once per lead."""
    hit = _PREPARED.get(id(cfg))
    if hit is not None and hit[0] is cfg:
        return hit[1]
    derived = {
        "contact_window": dt.timedelta(days=cfg["base"]["recent_contact_days"]),
        "industries": {k.lower(): v for k, v in cfg["fit"]["industry"].items()},
    }
    _PREPARED.clear()  # one settings object at a time (kept alive by the entry itself)
    _PREPARED[id(cfg)] = (cfg, derived)
    return derived


def rule_factors(f: LeadFacts, cfg: Mapping[str, Any], now: dt.datetime) -> list[tuple[str, str, str, float, str]]:
    """The rule factors of one lead: (name, label, component, raw points, reason)."""
    out: list[tuple[str, str, str, float, str]] = []
    base, fit, eng, rec = cfg["base"], cfg["fit"], cfg["engagement"], cfg["recency"]
    contact_window = _prepared(cfg)["contact_window"]
    if base["use_probability"]:
        if f.deal_probability is not None:
            p, why = f.deal_probability, f"Deal probability {f.deal_probability}%"
        else:
            p = base["status_probability"].get(f.status, 0)
            why = f"Status “{f.status}”: {p}% probability"
        if base["probability_weight"] != 1:
            why += f" × {base['probability_weight']:g}"
        out.append(("probability", "Probability", "base", p * base["probability_weight"], why))
    value = max(f.deal_value or 0.0, f.estimated_value or 0.0)
    if value > base["value_high"]:
        out.append(("value", "Value", "base", base["value_high_points"], f"Value {_money(value)} above {_money(base['value_high'])}"))
    elif value > base["value_mid"]:
        out.append(("value", "Value", "base", base["value_mid_points"], f"Value {_money(value)} above {_money(base['value_mid'])}"))
    if f.last_contact_at is not None and now - f.last_contact_at <= contact_window:
        d = _days(now - f.last_contact_at)
        out.append(("recent_contact", "Recent contact", "base", base["recent_contact_points"], f"Last contact {d} day{'s' if d != 1 else ''} ago (within {base['recent_contact_days']})"))

    if f.company_size and fit["company_size"].get(f.company_size):
        out.append(("company_size", "Company size", "fit", fit["company_size"][f.company_size], f"Company size {f.company_size}"))
    if f.industry:
        industries = _prepared(cfg)["industries"]
        if industries.get(f.industry.lower()):
            out.append(("industry", "Industry", "fit", industries[f.industry.lower()], f"Industry {f.industry}"))
    points, keyword = seniority_of(f.job_title, fit["seniority"]) if f.job_title else (0.0, None)
    if keyword is not None and points:
        out.append(("seniority", "Seniority", "fit", points, f"Job title “{f.job_title}” ({keyword})"))
    if f.bant and fit["bant_points"]:
        out.append(("bant", "BANT", "fit", len(f.bant) * fit["bant_points"], f"{len(f.bant)} of 4 BANT fields filled ({', '.join(f.bant)})"))

    window = eng["window_days"]
    for key, label, n, per, cap, one, many in () if not (f.activities or f.inbound or f.chat) else (
        ("activities", "Activities", f.activities, eng["activity_points"], eng["activity_cap"], "activity", "activities"),
        ("inbound", "Inbound replies", f.inbound, eng["inbound_points"], eng["inbound_cap"], "inbound reply", "inbound replies"),
        ("chat", "Chat messages", f.chat, eng["chat_points"], eng["chat_cap"], "chat message", "chat messages"),
    ):
        if n and per:
            # The cap bounds the size of the contribution, whichever its sign.
            pts = max(-cap, min(cap, n * per))
            capped = " (capped)" if abs(n * per) > cap else ""
            out.append((key, label, "engagement", pts, f"{n} {one if n == 1 else many} in the last {window} days{capped}"))

    if f.last_activity_at is not None and rec["points"]:
        d = _days(now - f.last_activity_at)
        if d <= rec["full_days"]:
            pts = rec["points"]
        elif d >= rec["zero_days"]:
            pts = 0.0
        else:
            pts = rec["points"] * (rec["zero_days"] - d) / (rec["zero_days"] - rec["full_days"])
        if pts:
            out.append(("recency", "Activity recency", "recency", pts, f"Last activity {d} day{'s' if d != 1 else ''} ago"))
    out.extend(f.extra)
    return out


def features_of(f: LeadFacts, cfg: Mapping[str, Any], now: dt.datetime) -> list[float]:
    """The predictive model's feature vector (FEATURES order). Probability and status are
    left out: for closed leads they are the outcome itself."""
    fit = cfg["fit"]
    value = max(v for v in (f.deal_value, f.estimated_value, 0.0) if v is not None)
    industries = {k.lower(): v for k, v in fit["industry"].items()}
    days = _days(now - f.last_activity_at) if f.last_activity_at is not None else 365
    recent = f.last_contact_at is not None and now - f.last_contact_at <= dt.timedelta(days=cfg["base"]["recent_contact_days"])
    return [
        math.log1p(max(0.0, value)),
        float(len(f.bant)),
        seniority_of(f.job_title, fit["seniority"])[0],
        float(fit["company_size"].get(f.company_size or "", 0)),
        float(industries.get((f.industry or "").lower(), 0)),
        float(f.activities),
        float(f.inbound),
        float(f.chat),
        float(min(days, 365)),
        1.0 if recent else 0.0,
    ]


@dataclass
class Result:
    """The computed score of one lead (what LeadScore stores)."""

    lead_id: int
    score: float
    rule_score: float
    grade: str
    components: dict[str, float]
    factors: list[dict[str, Any]]
    probability: float | None
    top_features: list[dict[str, Any]]


def score_facts(f: LeadFacts, cfg: Mapping[str, Any], now: dt.datetime, model: Any = None) -> Result:
    """Weights, clamping, prediction blend and grade for one lead."""
    weights = cfg["weights"]
    # Keys in sorted order, so the stored JSON (sort_keys) can be written without sorting.
    components = {"base": 0.0, "engagement": 0.0, "fit": 0.0, "other": 0.0, "recency": 0.0}
    factors = []
    for name, label, component, raw, reason in rule_factors(f, cfg, now):
        pts = round2(raw * weights[component])
        components[component] += pts
        factors.append({"component": component, "label": label, "name": name, "points": pts, "reason": reason})
    rule = round1(min(100.0, max(0.0, sum(components.values()))))
    probability, top = None, []
    score = rule
    if model is not None:
        probability, top = model.explain(features_of(f, cfg, now))
        score = round1((1 - cfg["predictive_weight"]) * rule + cfg["predictive_weight"] * 100 * probability)
    for k, v in components.items():
        if v:
            components[k] = round2(v)
    return Result(f.id, score, rule, grade_for(score, cfg["grades"]), components, factors, probability, top)


# --------------------------------------------------------------------------- the batch


def _batches(tenant: Any, ids: Iterable[int] | None) -> Iterator[list[int] | None]:
    if ids is None:
        yield None  # every lead: no IN list at all
        return
    unique = sorted({int(i) for i in ids})
    for start in range(0, len(unique), BATCH):
        yield unique[start : start + BATCH]


def compute(tenant: Any, ids: Iterable[int] | None = None, *, cfg: Mapping[str, Any] | None = None, now: dt.datetime | None = None) -> dict[int, Result]:
    """Scores of the leads ``ids`` (None: all), without storing them (previews)."""
    from crm_plugins.scoring import predictive

    cfg = cfg or effective_settings(tenant)
    now = now or utcnow()
    model = predictive.load_model()
    out: dict[int, Result] = {}
    for batch in _batches(tenant, ids):
        for lid, facts in gather(tenant, batch, cfg, now).items():
            out[lid] = score_facts(facts, cfg, now, model)
    return out


def rescore(tenant: Any, ids: Iterable[int] | None = None, *, now: dt.datetime | None = None) -> int:
    """Compute and store the scores of ``ids`` (None: all the tenant's leads); keep
    history and send ``lead_score_changed`` / ``lead_score_threshold_crossed`` for the
    ones that changed. Returns the number of leads scored."""
    from crm_plugins.scoring import bulk, predictive

    cfg = effective_settings(tenant)
    now = now or utcnow()
    total = 0
    with sdk.atomic():
        # The rules and the model's prediction run in SQL (bulk.py); engine.compute, the
        # same in Python, serves previews and leads not scored yet.
        model = predictive.load_model()
        for batch in _batches(tenant, ids):
            if batch is not None and not batch:
                continue
            n, changed = bulk.rescore_sql(tenant, cfg, batch, now, model)
            total += n
            _signal(tenant, changed, cfg)
    return total


def _signal(tenant: Any, changed: list[tuple[int, float | None, float, str, str | None]], cfg: Mapping[str, Any]) -> None:
    """``lead_score_changed`` (and ``lead_score_threshold_crossed``) for each changed
    lead, after the transaction commits: one commit callback for the whole batch, and
    nothing to do for a signal nobody is connected to (blinker's ``receivers``)."""
    if not changed:
        return
    thresholds = sorted(cfg["thresholds"])

    def send() -> None:
        if lead_score_changed.receivers:
            for lid, before, after, grade, old_grade in changed:
                lead_score_changed.send(tenant, lead_id=lid, old=before, new=after, grade=grade, old_grade=old_grade)
        if lead_score_threshold_crossed.receivers and thresholds:
            for lid, before, after, grade, _ in changed:
                low = before if before is not None else 0.0
                for t in thresholds:
                    if low < t <= after:
                        lead_score_threshold_crossed.send(tenant, lead_id=lid, threshold=t, old=before, new=after, grade=grade)

    sdk.on_commit(send)


def distribution(results: Iterable[Result | float]) -> dict[str, Any]:
    """Grade counts and a 10-point histogram of scores (for previews and the widget)."""
    grades = dict.fromkeys("ABCD", 0)
    buckets = [0] * 10
    n = 0
    total = 0.0
    for r in results:
        score = r.score if isinstance(r, Result) else float(r)
        grade = r.grade if isinstance(r, Result) else None
        if grade:
            grades[grade] += 1
        buckets[min(9, int(score // 10))] += 1
        n += 1
        total += score
    return {"count": n, "grades": grades, "buckets": buckets, "mean": round(total / n, 1) if n else None}
