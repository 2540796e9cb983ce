"""/api/v1/analytics: figures computed in SQL (GROUP BY), a constant number of queries
whatever the size of the data."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import fields
from peewee import fn

from crmcore.api import common
from crmcore.api.common import require
from crmcore.api.schema import Blueprint, Schema
from crmcore.entities.models import LEAD_STATUSES, Lead

blp = Blueprint("analytics", __name__, url_prefix="/analytics", description="Figures about the tenant's records.")


class PeriodArgsSchema(Schema):
    created_after = fields.DateTime(metadata={"description": "Only records created at or after this time."})
    created_before = fields.DateTime(metadata={"description": "Only records created before this time."})


class LeadAnalyticsSchema(Schema):
    total = fields.Integer(metadata={"description": "Leads in the period."})
    converted = fields.Integer(metadata={"description": "Of those, leads with status `converted`."})
    conversion_rate = fields.Float(metadata={"description": "converted / total (0 when there are no leads), rounded to 4 places."})
    by_status = fields.Dict(keys=fields.String(), values=fields.Integer(), metadata={"description": "Leads per status; every status is listed, with 0 when none."})
    by_source = fields.Dict(keys=fields.String(), values=fields.Integer(), metadata={"description": "Leads per source; only sources that occur."})


def _in_period(query: Any, model: type, args: dict[str, Any]) -> Any:
    if args.get("created_after") is not None:
        query = query.where(model.created_at >= common.naive_utc(args["created_after"]))
    if args.get("created_before") is not None:
        query = query.where(model.created_at < common.naive_utc(args["created_before"]))
    return query


def _counts(column: Any, args: dict[str, Any]) -> dict[str, int]:
    query = common.visible(Lead.select(column, fn.COUNT(Lead.id)), Lead)
    return {key: count for key, count in _in_period(query, Lead, args).group_by(column).tuples()}


@blp.route("/leads")
class LeadAnalytics(MethodView):
    @blp.arguments(PeriodArgsSchema, location="query")
    @blp.response(200, LeadAnalyticsSchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("analytics:read")
    def get(self, args):
        """Lead counts and conversion rate

        Counts of the leads created in the period (all leads without one) by status and
        by source, their total, how many are converted (status `converted`) and the
        conversion rate, defined as converted / total: the share of all leads of the
        period that became customers, whatever stage the others are at (0 when there
        are no leads). Two GROUP BY queries, whatever the number of leads. Agents who
        only see their own leads get figures about those.
        """
        by_status = dict.fromkeys(LEAD_STATUSES, 0)
        by_status.update(_counts(Lead.status, args))
        by_source = dict(sorted(_counts(Lead.source, args).items(), key=lambda item: (-item[1], item[0])))
        total = sum(by_status.values())
        converted = by_status.get("converted", 0)
        return {
            "total": total,
            "converted": converted,
            "conversion_rate": round(converted / total, 4) if total else 0.0,
            "by_status": by_status,
            "by_source": by_source,
        }
