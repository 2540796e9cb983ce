"""Web pieces: the lead panel, the dashboard widget and the admin page /app/scoring/."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from markupsafe import Markup, escape
from marshmallow import ValidationError

from crm_plugins.scoring import bulk, engine, predictive
from crm_plugins.scoring.models import LeadScore, ScoreHistory, ScoringOverride
from crmcore import sdk
from crmcore.sdk import Lead, ListColumn, ListFilter, utcnow

bp = Blueprint("scoring", __name__, url_prefix="/app/scoring", template_folder="templates", static_folder="static", static_url_path="/static")

#: The admin page's number fields: (section, key, label, help).
NUMBER_FIELDS: tuple[tuple[str, tuple[tuple[str, str, str], ...]], ...] = (
    ("weights", (("base", "Base (classic rules)", "Multiplier of the classic rules' points."), ("fit", "Fit", ""), ("engagement", "Engagement", ""), ("recency", "Recency", ""), ("other", "Other plugins' factors", ""))),
    ("grades", (("A", "Grade A from", "Lowest score of an A lead."), ("B", "Grade B from", ""), ("C", "Grade C from", "Below this: D."))),
    ("base", (
        ("probability_weight", "Probability weight", "Points per percent of probability (0-1)."),
        ("value_high", "High value above", ""), ("value_high_points", "High value points", ""),
        ("value_mid", "Mid value above", ""), ("value_mid_points", "Mid value points", ""),
        ("recent_contact_days", "Recent contact within (days)", ""), ("recent_contact_points", "Recent contact points", ""),
    )),
    ("fit", (("bant_points", "Points per BANT field filled", "Budget, authority, need, timeline."),)),
    ("engagement", (
        ("window_days", "Window (days)", ""), ("activity_points", "Points per activity", ""), ("activity_cap", "Activity points at most", ""),
        ("inbound_points", "Points per inbound reply", ""), ("inbound_cap", "Inbound points at most", ""),
        ("chat_points", "Points per chat message", ""), ("chat_cap", "Chat points at most", ""),
    )),
    ("recency", (("points", "Points for a fresh activity", ""), ("full_days", "Full points up to (days)", ""), ("zero_days", "No points from (days)", ""))),
)
MAP_FIELDS = (("fit", "company_size", "Company size points"), ("fit", "industry", "Industry points"), ("fit", "seniority", "Job title keyword points"))
SECTION_TITLES = {"weights": "Component weights", "grades": "Grades", "base": "Classic rules", "fit": "Fit", "engagement": "Engagement", "recency": "Activity recency"}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


# --------------------------------------------------------------------------- fragments


def sparkline(points: list[float], width: int = 160, height: int = 36) -> Markup:
    """The score trend as an inline SVG polyline (0-100 on the vertical axis)."""
    if len(points) < 2:
        return Markup("")
    step = width / (len(points) - 1)
    coords = " ".join(f"{i * step:.1f},{height - 2 - (min(100.0, max(0.0, p)) / 100) * (height - 4):.1f}" for i, p in enumerate(points))
    label = f"Score trend: from {points[0]:g} to {points[-1]:g} over {len(points)} changes"
    return Markup(
        f'<svg class="scoring-spark" role="img" aria-label="{label}" viewBox="0 0 {width} {height}" width="{width}" height="{height}" preserveAspectRatio="none">'
        f'<title>{label}</title><polyline fill="none" stroke="currentColor" stroke-width="2" points="{coords}"/></svg>'
    )


def lead_panel(tenant: Any, lead: Lead) -> str:
    """The lead page's panel: score, grade, components, factors with reasons, trend."""
    row = LeadScore.get_or_none(LeadScore.lead == lead.id)
    stored = row is not None
    if row is None:
        result = engine.compute(tenant, [lead.id]).get(lead.id)
        if result is None:
            return ""
        data = result.__dict__
    else:
        data = {k: getattr(row, k) for k in ("score", "rule_score", "grade", "components", "factors", "probability", "top_features", "computed_at")}
        data["factors"] = bulk.explain(row.factors)  # compact factors: reasons written out now
        data["components"] = bulk.components_of(row.components, data["factors"])
        data["top_features"] = bulk.top_features_of(row.top_features)
    history = [h.score for h in ScoreHistory.select(ScoreHistory.score).where(ScoreHistory.lead == lead.id).order_by(ScoreHistory.at.desc(), ScoreHistory.id.desc()).limit(30)]
    history.reverse()
    return render_template("scoring/_panel.html", s=data, stored=stored, spark=sparkline(history), history=history, labels=SECTION_TITLES)


def dashboard_widget(tenant: Any) -> str:
    """Grade distribution and the five best leads."""
    from peewee import fn

    counts = dict.fromkeys("ABCD", 0)
    for grade, n in LeadScore.select(LeadScore.grade, fn.COUNT(LeadScore.id)).group_by(LeadScore.grade).tuples():
        counts[grade] = n
    top = list(
        LeadScore.select(LeadScore.score, LeadScore.grade, Lead.id, Lead.name)
        .join(Lead, on=(LeadScore.lead == Lead.id))
        .where(Lead.status.not_in(["converted", "unqualified"]))
        .order_by(LeadScore.score.desc(), LeadScore.id)
        .limit(5)
    )
    return render_template("scoring/_widget.html", counts=counts, total=sum(counts.values()), top=top)


def list_column() -> ListColumn:
    """The "Score" column of the core lead list (crm_list_columns): score and grade
    badge, sortable by score (unscored leads count as -1, after every scored one when
    sorting from the best), filterable by grade."""
    from peewee import fn

    def values(ids: list[int]) -> dict[int, str]:
        rows = LeadScore.select(LeadScore.lead, LeadScore.score, LeadScore.grade).where(LeadScore.lead.in_(ids)).tuples()
        cells = {
            lead: f'<span class="scoring-cell" data-score="{score:g}" data-grade="{escape(grade)}"><span class="scoring-num" aria-label="Score {score:g} out of 100">{score:g}</span> '
            f'<span class="grade grade-{escape(grade)}" title="Grade {escape(grade)}">{escape(grade)}</span></span>'
            for lead, score, grade in rows
        }
        return {i: cells.get(i, '<span class="muted small">not scored</span>') for i in ids}

    # Correlated subqueries keep the core's list query as it is (no join to change); the
    # (tenant, lead) unique index answers each. COALESCE: the sort key must not be NULL.
    score = LeadScore.select(LeadScore.score).where(LeadScore.lead == Lead.id)
    graded = LeadScore.select(LeadScore.lead)
    return ListColumn(
        name="scoring:score",
        label="Score",
        values=values,
        order=10,
        sort=fn.COALESCE(score, -1),
        filter=ListFilter(label="Grade", options=tuple((g_, f"Grade {g_}") for g_ in "ABCD"), where=lambda chosen: Lead.id.in_(graded.where(LeadScore.grade.in_(chosen))), blank="Any grade"),
        stylesheets=(url_for("scoring.static", filename="scoring.css"),),
    )


# --------------------------------------------------------------------------- admin page


@bp.before_request
def _managers_only() -> None:
    if request.endpoint == "scoring.static":
        return  # the panel's and widget's stylesheet is for every signed-in user
    if g.get("user") is None or g.user.role not in ("admin", "manager"):
        abort(403, "Only admins and managers can change lead scoring.")


def form_values(cfg: Mapping[str, Any]) -> dict[str, str]:
    values = {f"{section}.{key}": _fmt(cfg[section][key]) for section, items in NUMBER_FIELDS for key, _, _ in items}
    for section, key, _ in MAP_FIELDS:
        values[f"{section}.{key}"] = "\n".join(f"{k} = {_fmt(v)}" for k, v in cfg[section][key].items())
    values["thresholds"] = ", ".join(_fmt(t) for t in cfg["thresholds"])
    values["predictive_weight"] = _fmt(cfg["predictive_weight"])
    values["min_training_examples"] = _fmt(cfg["min_training_examples"])
    values["base.use_probability"] = "on" if cfg["base"]["use_probability"] else ""
    return values


def parse_form(form: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The submitted page as a settings override (strings: the schema converts and checks
    them), plus the errors of what could not even be read (a bad ``key = points`` line)."""
    out: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for section, items in NUMBER_FIELDS:
        for key, _, _ in items:
            name = f"{section}.{key}"
            if name in form:
                value = form[name].strip()
                if value == "":
                    errors[name] = ["Enter a number."]
                else:
                    out.setdefault(section, {})[key] = value
    for section, key, _ in MAP_FIELDS:
        name = f"{section}.{key}"
        if name not in form:
            continue
        table: dict[str, Any] = {}
        for n, line in enumerate(form[name].splitlines(), 1):
            line = line.strip()
            if not line:
                continue
            k, sep, v = line.rpartition("=")
            if not sep or not k.strip():
                errors[name] = [f"Line {n}: write “name = points”."]
                break
            table[k.strip()] = v.strip()
        out.setdefault(section, {})[key] = table
    out.setdefault("base", {})["use_probability"] = "base.use_probability" in form
    if "thresholds" in form:
        out["thresholds"] = [t.strip() for t in form["thresholds"].split(",") if t.strip()]
    for name in ("predictive_weight", "min_training_examples"):
        if name in form:
            if form[name].strip() == "":
                errors[name] = ["Enter a number."]
            else:
                out[name] = form[name].strip()
    return out, errors


def diff(new: Mapping[str, Any], base: Mapping[str, Any]) -> dict[str, Any]:
    """What ``new`` changes relative to ``base`` (what is stored as the override, so that a
    later change to the tenant file still applies to everything not changed here)."""
    out: dict[str, Any] = {}
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict) and key in {s for s, _ in NUMBER_FIELDS}:
            changed = {k: v for k, v in value.items() if base[key].get(k) != v}
            if changed:
                out[key] = changed
        elif base.get(key) != value:
            out[key] = value
    return out


def field_errors(flat: dict[str, list[str]], names: Mapping[str, Any]) -> dict[str, list[str]]:
    """Messages keyed by the form field they belong to: ``thresholds.0`` is the thresholds
    field, ``fit.industry.retail.value`` the industry table."""
    out: dict[str, list[str]] = {}
    for key, messages in flat.items():
        parts = key.split(".")
        name = next((".".join(parts[:n]) for n in range(len(parts), 0, -1) if ".".join(parts[:n]) in names), key)
        prefix = "" if name == key else f"{'.'.join(parts[len(name.split('.')):]).removesuffix('.value').removesuffix('value')}: ".lstrip(": ")
        out.setdefault(name, []).extend(f"{prefix}{m}" if prefix else m for m in messages)
    return out


def _page(values: dict[str, str], errors: dict[str, list[str]], preview: dict[str, Any] | None = None, status: int = 200) -> Any:
    from crm_plugins.scoring.api import model_info

    current = engine.distribution(s for (s,) in LeadScore.select(LeadScore.score).tuples())
    grades = dict.fromkeys("ABCD", 0)
    for (grade,) in LeadScore.select(LeadScore.grade).tuples():
        grades[grade] += 1
    current["grades"] = grades
    override = ScoringOverride.get_or_none()
    return render_template(
        "scoring/admin.html", values=values, errors=errors, preview=preview, current=current,
        model=model_info(g.tenant), number_fields=NUMBER_FIELDS, map_fields=MAP_FIELDS, titles=SECTION_TITLES,
        override=override, can_manage=True, leads=Lead.select().count(),
    ), status


@bp.route("/", methods=["GET", "POST"])
def index() -> Any:
    """Rules and weights; preview before saving; the predictive model's quality."""
    if request.method == "GET":
        return _page(form_values(engine.effective_settings(g.tenant)), {})
    action = request.form.get("action", "preview")
    if action == "reset":
        ScoringOverride.delete().execute()
        engine.rescore(g.tenant)
        flash("Scoring settings reset to the tenant file; every lead was rescored.")
        return redirect(url_for(".index"))
    override, errors = parse_form(request.form)
    values = {k: request.form.get(k, "") for k in form_values(engine.effective_settings(g.tenant))}
    values["base.use_probability"] = "on" if "base.use_probability" in request.form else ""
    cfg = None
    if not errors:
        try:
            cfg = engine.validate_override(g.tenant, override)
        except ValidationError as exc:
            errors = field_errors(sdk.flatten_errors(exc.messages), values)
    if errors:
        return _page(values, errors, status=422)
    if action == "save":
        saved = diff(cfg, engine.file_settings(g.tenant))
        row = ScoringOverride.get_or_none()
        if row is None:
            ScoringOverride.create(values=saved, updated_by=g.user.id)
        else:
            ScoringOverride.update(values=saved, updated_at=utcnow(), updated_by=g.user.id, version=ScoringOverride.version + 1).where(ScoringOverride.id == row.id).execute()
        n = engine.rescore(g.tenant)
        flash(f"Scoring settings saved; {n:,} lead{'s' if n != 1 else ''} rescored.")
        return redirect(url_for(".index"))
    before = engine.distribution(s for (s,) in LeadScore.select(LeadScore.score).tuples())
    grades = dict.fromkeys("ABCD", 0)
    for (grade,) in LeadScore.select(LeadScore.grade).tuples():
        grades[grade] += 1
    before["grades"] = grades
    results = engine.compute(g.tenant, None, cfg=cfg)
    stored = {lid: s for lid, s in LeadScore.select(LeadScore.lead, LeadScore.score).tuples()}
    moved = sorted(((r.score - stored.get(lid, 0.0), lid, r) for lid, r in results.items()), key=lambda t: -abs(t[0]))[:5]
    names = {lid: name for lid, name in Lead.select(Lead.id, Lead.name).where(Lead.id.in_([m[1] for m in moved] or [0])).tuples()}
    preview = {
        "before": before,
        "after": engine.distribution(results.values()),
        "moved": [{"lead_id": lid, "name": names.get(lid, f"Lead {lid}"), "before": stored.get(lid), "after": r.score, "grade": r.grade, "delta": round(d, 1)} for d, lid, r in moved if abs(d) >= engine.EPSILON],
    }
    return _page(values, {}, preview=preview)


@bp.route("/train", methods=["POST"])
def train() -> Any:
    """Train the predictive model now and rescore every lead."""
    row = predictive.train(g.tenant)
    engine.rescore(g.tenant)
    flash(row.message)
    return redirect(url_for(".index") + "#model")

