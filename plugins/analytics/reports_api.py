"""/api/v1/analytics/reports: saved reports (CRUD) and running one. Every operation needs
``analytics:read``; a report is seen by its owner (and by everyone when shared) and
changed or deleted by its owner or an admin (403 otherwise, 404 when not visible)."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import abort
from marshmallow import Schema, ValidationError, fields

from crm_plugins.analytics import reports
from crm_plugins.analytics.api import PERMISSION, SECURITY, MetricResultSchema, blp
from crm_plugins.analytics.models import SavedReport
from crmcore.sdk import require


class ReportSchema(reports.ReportInput):
    id = fields.Integer()
    owner_user_id = fields.Integer(metadata={"description": "Who saved it."})
    next_run_at = fields.DateTime(allow_none=True, metadata={"description": "The next scheduled sending (UTC)."})
    schedule_status = fields.String(metadata={"description": "none, active, or `needs the email plugin` (the schedule is kept while the tenant's email plugin is off)."})


class ReportListSchema(Schema):
    items = fields.List(fields.Nested(ReportSchema))


def _visible_or_404(report_id: int) -> SavedReport:
    report = reports.visible().where(SavedReport.id == report_id).first()
    if report is None:
        abort(404, message="No such report.")
    return report


def _changeable(report_id: int) -> SavedReport:
    report = _visible_or_404(report_id)
    if not reports.may_change(report):
        abort(403, message="Only the report's owner or an admin may change it.")
    return report


def _saved(data: dict, report: SavedReport | None = None) -> dict:
    try:
        saved = reports.save(data, report)
    except ValidationError as exc:
        abort(422, errors={"json": exc.messages})
    return reports.describe(saved, reports.email_on())


@blp.route("/reports")
class Reports(MethodView):
    @blp.response(200, ReportListSchema)
    @blp.doc(security=SECURITY)
    @require(PERMISSION)
    def get(self):
        """Saved reports: yours and the shared ones"""
        on = reports.email_on()
        return {"items": [reports.describe(r, on) for r in reports.visible().limit(500)]}

    @blp.arguments(reports.ReportInput)
    @blp.response(201, ReportSchema)
    @blp.doc(security=SECURITY)
    @require(PERMISSION)
    def post(self, data):
        """Save a report: a metric, its grouping and filters, an optional schedule"""
        return _saved(data)


@blp.route("/reports/<int:report_id>")
class ReportItem(MethodView):
    @blp.response(200, ReportSchema)
    @blp.doc(security=SECURITY)
    @require(PERMISSION)
    def get(self, report_id):
        """A saved report"""
        return reports.describe(_visible_or_404(report_id), reports.email_on())

    @blp.arguments(reports.ReportInput)
    @blp.response(200, ReportSchema)
    @blp.doc(security=SECURITY)
    @require(PERMISSION)
    def put(self, data, report_id):
        """Replace a saved report (its owner or an admin)"""
        return _saved(data, _changeable(report_id))

    @blp.response(204)
    @blp.doc(security=SECURITY)
    @require(PERMISSION)
    def delete(self, report_id):
        """Delete a saved report (its owner or an admin)"""
        _changeable(report_id).delete_instance()


@blp.route("/reports/<int:report_id>/run")
class ReportRun(MethodView):
    @blp.response(200, MetricResultSchema)
    @blp.doc(security=SECURITY)
    @require(PERMISSION)
    def get(self, report_id):
        """Run a saved report: its metric with its filters (a preset resolved today)"""
        return reports.run(_visible_or_404(report_id))
