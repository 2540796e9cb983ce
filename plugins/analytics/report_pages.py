"""Editing a saved report in the page: /app/analytics/reports/<id>/edit (its owner or an
admin, as ``PUT /api/v1/analytics/reports/<id>``): name, metric, dates (fixed days or a
rolling preset), filters, sharing and schedule, validated by the same
:class:`reports.ReportInput`; a refused field is shown next to its input (422)."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from marshmallow import ValidationError
from werkzeug.datastructures import MultiDict

from crm_plugins.analytics import metrics, reports
from crm_plugins.analytics.models import DATE_PRESETS, SavedReport
from crm_plugins.analytics.views import _options, bp
from crmcore import sdk

#: Form inputs taken as they are (empty ones left out: the report's "none").
TEXT_INPUTS = ("name", "metric", "date_preset", "date_from", "date_to", "owner_id", "team_id", "pipeline_id", "source", "currency")


def report_data(form: MultiDict) -> dict[str, Any]:
    """A report form (the dashboard's "Save this view", or the edit page) as
    :class:`reports.ReportInput` input: a preset wins over fixed days, the forecast's
    period is its grouping, a schedule brings its day, hour and recipients."""
    data: dict[str, Any] = {k: v for k, v in form.items() if k in TEXT_INPUTS and v.strip()}
    if data.get("date_preset"):
        data.pop("date_from", None)
        data.pop("date_to", None)
    if data.get("metric") in reports.GROUPINGS and form.get("period"):
        data["grouping"] = form["period"]
    data["shared"] = form.get("shared") == "on"
    if form.get("schedule") in ("weekly", "monthly"):
        data["schedule"] = form["schedule"]
        data.update({k: form[k] for k in ("weekday", "month_day", "hour") if form.get(k, "").strip()})
        data["recipients"] = [r for r in form.getlist("recipients") if r.strip()]
    return data


def _changeable_or_404(report_id: int) -> SavedReport:
    report = reports.visible().where(SavedReport.id == report_id).first()
    if report is None:
        abort(404)
    if not reports.may_change(report):
        abort(403)
    return report


@bp.route("/reports/<int:report_id>/edit", methods=["GET", "POST"])
def edit_report(report_id: int):
    """The report's form, filled in; saving replaces it and moves its schedule on."""
    report = _changeable_or_404(report_id)
    errors: dict[str, list[str]] = {}
    values: dict[str, Any] = reports.describe(report, reports.email_on())
    values["period"] = report.grouping
    if request.method == "POST":
        data = report_data(request.form)
        try:
            saved = reports.save(reports.ReportInput().load(data), report)
        except ValidationError as exc:
            errors = sdk.flatten_errors(exc.messages)
            values = {**{k: None for k in TEXT_INPUTS}, **request.form.to_dict(), "recipients": [int(r) for r in request.form.getlist("recipients") if r.isdigit()], "shared": data["shared"]}
        else:
            flash(f"Report \"{saved.name}\" saved.")
            return redirect(url_for("analytics_pages.index") + "#saved-reports")
    return render_template(
        "analytics/report_edit.html", report=report, values=values, errors=errors, options=_options(), presets=DATE_PRESETS,
        metrics=list(metrics.METRICS.values()), email_on=reports.email_on(), time_zone=sdk.settings(sdk.current_tenant(), "analytics")["time_zone"],
    ), (422 if errors else 200)
