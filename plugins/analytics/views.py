"""The analytics pages under /app/analytics: the dashboard (summary, every metric as a
chart and a table with its definition), the records behind a row, and the CSV export of
each table, made from the same cells as the screen."""

from __future__ import annotations

import calendar
import csv
import io
from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from marshmallow import ValidationError

from crm_plugins.analytics import dashboard_cache, filters, goals, metrics, reports, summary
from crm_plugins.analytics.models import DATE_PRESETS, GOAL_KINDS, Goal, SavedReport
from crm_plugins.analytics.sql import user_names
from crmcore import sdk
from crmcore.sdk import Activity, Deal, Lead, Pipeline, Stage, User

bp = Blueprint("analytics_pages", __name__, url_prefix="/app/analytics", template_folder="templates", static_folder="static", static_url_path="/static")
PAGE_SIZE = 100


@bp.before_request
def _readers_only() -> None:
    if sdk.current_user() is not None and not sdk.has_permission("analytics:read"):
        abort(403, "Your role may not read the analytics.")


def _filters_or_errors() -> tuple[filters.Filters, dict[str, Any]]:
    try:
        return filters.parse(request.args), {}
    except ValidationError as exc:
        return filters.build({}), sdk.flatten_errors(exc.messages)


def _options() -> dict[str, Any]:
    """Choices of the filter form: users, teams and pipelines (three small queries)."""
    users = list(User.select(User.id, User.name, User.email).where(User.active == True).order_by(User.name, User.email).tuples())  # noqa: E712
    pipelines = list(Pipeline.select(Pipeline.id, Pipeline.name).order_by(Pipeline.order, Pipeline.id).tuples())
    return {"users": [(uid, name or email) for uid, name, email in users], "pipelines": pipelines, "teams": sdk.team_options()}


@bp.route("/")
def index():
    f, errors = _filters_or_errors()
    tenant = sdk.current_tenant()
    copy = None if errors else dashboard_cache.usable(request.args, tenant)
    if copy is not None:  # the pre-computed dashboard (dashboard_cache.py)
        results, figures = dashboard_cache.loaded(copy)
    else:
        computed: dict = {}  # rows by function: each query runs once for the page
        results = [metrics.result(m, f, computed) for m in metrics.METRICS.values()]
        figures = summary.figures(f, computed)
    charts = {r["name"]: _chart(r) for r in results}
    return render_template(
        "analytics/index.html",
        f=f,
        errors=errors,
        figures=figures,
        copy=copy,
        copy_local=dashboard_cache.local_time(copy.computed_at, f.time_zone) if copy else None,
        refresh_minutes=sdk.settings(tenant, filters.PLUGIN)["dashboard_refresh_minutes"],
        results=results,
        charts=charts,
        options=_options(),
        xlsx=xlsx_available(),
        goals=goals.progress(goals.visible_goals(sdk.current_user_id(), sdk.current_role() == "agent" and bool(sdk.settings(sdk.current_tenant(), "core").get("agents_see_own_only")))),
        args=request.args,
        saved=_saved_reports(),
        may_set_goals=sdk.has_permission("analytics:goals"),
        email_on=reports.email_on(),
        current_user_id=sdk.current_user_id(),
        goal_kinds=GOAL_KINDS,
        presets=DATE_PRESETS,
        fiscal_month=calendar.month_name[sdk.settings(sdk.current_tenant(), filters.PLUGIN)["fiscal_year_start_month"]],
    ), (422 if errors else 200)


def _saved_reports() -> list[dict[str, Any]]:
    """The user's and the shared reports, each with the link that reopens it (one query)."""
    on = reports.email_on()
    out = []
    for report in reports.visible().limit(200):
        item = reports.describe(report, on)
        args = reports.filter_args(report)
        item["url"] = url_for("analytics_pages.index") + "?" + filters.build(args).query_string() + f"#m-{report.metric}"
        item["mine"] = reports.may_change(report)
        out.append(item)
    return out


@bp.route("/reports", methods=["POST"])
def save_report():
    """"Save this view": the dashboard's filters (or a rolling preset) for one metric."""
    from crm_plugins.analytics.report_pages import report_data  # (it registers its routes on bp)

    data = report_data(request.form)
    try:
        report = reports.save(reports.ReportInput().load(data))
    except ValidationError as exc:
        flash("The report was not saved: " + "; ".join(f"{k}: {' '.join(map(str, v))}" for k, v in sdk.flatten_errors(exc.messages).items()))
        return redirect(url_for("analytics_pages.index") + "#saved-reports")
    flash(f"Report \"{report.name}\" saved.")
    return redirect(url_for("analytics_pages.index") + "#saved-reports")


@bp.route("/goals", methods=["POST"])
def set_goal():
    """The goal form (managers and admins): the same checks as ``POST /api/v1/analytics/goals``."""
    if not sdk.has_permission("analytics:goals"):
        abort(403)
    data = {k: v for k, v in request.form.items() if k in ("user_id", "team_id", "kind", "target", "currency", "first_day", "last_day") and v.strip()}
    try:
        goal = goals.create(goals.GoalInput().load(data))
    except ValidationError as exc:
        flash("The goal was not set: " + "; ".join(f"{k}: {' '.join(map(str, v))}" for k, v in sdk.flatten_errors(exc.messages).items()))
        return redirect(url_for("analytics_pages.index") + "#m-goals")
    flash(f"Goal set: {goal.kind.replace('_', ' ')} {goal.target} from {goal.first_day} to {goal.last_day}.")
    return redirect(url_for("analytics_pages.index") + "#m-goals")


@bp.route("/goals/<int:goal_id>/delete", methods=["POST"])
def delete_goal(goal_id: int):
    if not sdk.has_permission("analytics:goals"):
        abort(403)
    if not Goal.delete().where(Goal.id == goal_id).execute():
        abort(404)
    flash("Goal deleted.")
    return redirect(url_for("analytics_pages.index") + "#m-goals")


@bp.route("/reports/<int:report_id>/delete", methods=["POST"])
def delete_report(report_id: int):
    report = reports.visible().where(SavedReport.id == report_id).first()
    if report is None:
        abort(404)
    if not reports.may_change(report):
        abort(403)
    report.delete_instance()
    flash(f"Report \"{report.name}\" deleted.")
    return redirect(url_for("analytics_pages.index") + "#saved-reports")


def _chart(result: dict[str, Any]) -> dict[str, Any]:
    """What the page's script draws: labels and one series (the total row left out)."""
    metric = metrics.METRICS[result["name"]]
    rows = [r for r in result["rows"] if not r["total"]]
    column = next(c for c in result["columns"] if c["key"] == metric.chart_column)
    values = [float(r["values"].get(column["key"]) or 0) for r in rows]
    if column["kind"] == "percent":
        values = [round(v * 100, 1) for v in values]
    return {"type": metric.chart_type, "labels": [r["label"] for r in rows], "values": values, "series": column["label"] + (" (%)" if column["kind"] == "percent" else "")}


def _metric_or_404(name: str) -> Any:
    metric = metrics.METRICS.get(name)
    if metric is None:
        abort(404)
    return metric


@bp.route("/<name>.csv")
def export_csv(name: str):
    metric = _metric_or_404(name)
    f, errors = _filters_or_errors()
    if errors:
        abort(422)
    result = metrics.result(metric, f)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(result["header"])
    for row in result["rows"]:
        writer.writerow(row["cells"])
    filename = f"{metric.name}-{f.date_from or 'start'}-{f.date_to or 'now'}.csv"
    return Response(out.getvalue(), mimetype="text/csv", headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def xlsx_available() -> bool:
    """Whether openpyxl (the ``analytics`` extra) is installed: the XLSX export needs it."""
    import importlib.util

    return importlib.util.find_spec("openpyxl") is not None


@bp.route("/<name>.xlsx")
def export_xlsx(name: str):
    """The table as a workbook: the same header and cells as the screen and the CSV."""
    metric = _metric_or_404(name)
    if not xlsx_available():
        abort(404)
    from openpyxl import Workbook

    f, errors = _filters_or_errors()
    if errors:
        abort(422)
    result = metrics.result(metric, f)
    book = Workbook()
    sheet = book.active
    sheet.title = metric.name[:31]
    sheet.append(result["header"])
    for row in result["rows"]:
        sheet.append(row["cells"])
    out = io.BytesIO()
    book.save(out)
    filename = f"{metric.name}-{f.date_from or 'start'}-{f.date_to or 'now'}.xlsx"
    return Response(out.getvalue(), mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@bp.route("/<name>/records")
def records(name: str):
    metric = _metric_or_404(name)
    f, errors = _filters_or_errors()
    if errors:
        abort(422)
    key = request.args.get("key", "all")
    after = request.args.get("after", type=int)
    try:
        ids, last = metrics.record_ids(metric, f, key, PAGE_SIZE, after)
    except ValueError:
        abort(404)
    result = metrics.result(metric, f)
    row = next((r for r in result["rows"] if r["key"] == key), None)
    return render_template(
        "analytics/records.html",
        metric=metric,
        f=f,
        key=key,
        row=row,
        header=result["header"],
        items=_record_items(metric.entity, ids),
        next_url=url_for("analytics_pages.records", name=name, **{**request.args.to_dict(), "after": last}) if last is not None else None,
        back_url=url_for("analytics_pages.index") + "?" + f.query_string() + f"#m-{metric.name}",
    )


def _record_items(entity: str, ids: list[int]) -> list[dict[str, Any]]:
    """What the drill-down page lists of each record (one or two queries for the page)."""
    if not ids:
        return []
    if entity == "deal":
        query = Deal.select(Deal.id, Deal.title, Deal.value, Deal.currency, Deal.owner, Stage.name.alias("stage_name")).join(Stage, on=(Deal.stage == Stage.id)).where(Deal.id.in_(ids)).order_by(Deal.id)
        names = user_names([d.owner_id for d in query])
        return [{"url": url_for("deal_pages.detail", record_id=d.id), "title": d.title, "facts": [d.stage_name, f"{d.value:,.2f} {d.currency}", names.get(d.owner_id, "")]} for d in query.objects()]
    if entity == "lead":
        query = Lead.select(Lead.id, Lead.name, Lead.source, Lead.status, Lead.owner).where(Lead.id.in_(ids)).order_by(Lead.id)
        names = user_names([lead.owner_id for lead in query])
        return [{"url": url_for("lead_pages.detail", record_id=lead.id), "title": lead.name, "facts": [lead.source, lead.status, names.get(lead.owner_id, "")]} for lead in query]
    query = Activity.select().where(Activity.id.in_(ids)).order_by(Activity.id)
    names = user_names([a.user_id for a in query])
    items = []
    for a in query:
        target = next(((page, i) for page, i in (("deal_pages.detail", a.deal_id), ("lead_pages.detail", a.lead_id), ("contact_pages.detail", a.contact_id), ("company_pages.detail", a.company_id)) if i), None)
        items.append({"url": url_for(target[0], record_id=target[1]) if target else None, "title": a.subject or a.kind, "facts": [a.kind, a.occurred_at.strftime("%Y-%m-%d %H:%M UTC"), names.get(a.user_id, "")]})
    return items
