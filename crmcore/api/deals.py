"""/api/v1/deals: opportunities moving through a pipeline's stages.

Shaped like /api/v1/leads. The rules of where a deal sits (default pipeline, first
stage, probability from the stage, lost reason) live in crmcore.entities.deals, shared
with lead conversion; a change of stage goes through service.move_deal.
"""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import abort
from marshmallow import ValidationError, fields, validate

from crmcore.api import common
from crmcore.api.common import PageArgs, require
from crmcore.api.fields import MONEY_MAX
from crmcore.api.schema import Blueprint, Schema
from crmcore.entities import checks, service
from crmcore.entities import deals as rules
from crmcore.entities.models import PRIORITIES, Deal, Stage, Tag, Tagging

blp = Blueprint("deals", __name__, url_prefix="/deals", description="Deals: opportunities in a pipeline.")

MAX_VALUE = MONEY_MAX
STATUSES = ("open", "won", "lost")


class DealSchema(Schema):
    id = fields.Integer(dump_only=True)
    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    value = fields.Decimal(places=2, as_string=True, validate=validate.Range(min=0, max=MAX_VALUE), metadata={"description": "Amount as a decimal string, e.g. \"12000.50\"."})
    currency = fields.String(validate=validate.Length(equal=3), metadata={"description": "ISO 4217 code; the tenant's `default_currency` when omitted."})
    probability = fields.Integer(validate=validate.Range(min=0, max=100), metadata={"description": "Percent; the stage's probability when omitted (and after a stage change)."})
    expected_close_date = fields.Date(allow_none=True)
    pipeline_id = fields.Integer(metadata={"description": "The default pipeline when omitted (or the stage's pipeline)."})
    stage_id = fields.Integer(metadata={"description": "The pipeline's first stage when omitted; must belong to the pipeline."})
    status = fields.String(dump_only=True, metadata={"description": "open, won or lost: from the stage's flags."})
    contact_id = fields.Integer(allow_none=True)
    company_id = fields.Integer(allow_none=True)
    lead_id = fields.Integer(allow_none=True)
    owner_id = fields.Integer(allow_none=True)
    priority = fields.String(validate=validate.OneOf(PRIORITIES))
    source = fields.String(allow_none=True, validate=validate.Length(max=30))
    lost_reason = fields.String(allow_none=True, validate=validate.Length(max=300), metadata={"description": "Required when the deal is in a lost stage."})
    position = fields.Float(metadata={"description": "Order inside the stage; the end of the stage when omitted."})
    tags = fields.List(fields.String(validate=validate.Length(min=1, max=60)), metadata={"description": "Tag names; the record gets exactly these."})
    custom = fields.Dict(keys=fields.String(), metadata={"description": "Custom field values by key (see /custom-fields)."})
    stage_entered_at = fields.DateTime(dump_only=True)
    closed_at = fields.DateTime(dump_only=True, allow_none=True, metadata={"description": "When the deal entered a won or lost stage."})
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)
    version = fields.Integer(dump_only=True)


class DealPageSchema(Schema):
    items = fields.List(fields.Nested(DealSchema))
    next_cursor = fields.String(allow_none=True, metadata={"description": "Pass as `cursor` for the next page; null on the last page."})


class DealStageChangeSchema(Schema):
    id = fields.Integer()
    from_stage_id = fields.Integer(allow_none=True, metadata={"description": "Null once that stage was deleted."})
    from_stage_name = fields.String(allow_none=True)
    to_stage_id = fields.Integer(allow_none=True, metadata={"description": "Null once that stage was deleted."})
    to_stage_name = fields.String(allow_none=True)
    changed_by_id = fields.Integer(allow_none=True, metadata={"description": "The user; null for API tokens without a user, jobs and imports."})
    changed_at = fields.DateTime()
    seconds_in_previous = fields.Integer(allow_none=True)


class DealStageHistorySchema(Schema):
    items = fields.List(fields.Nested(DealStageChangeSchema))


SORTS = ("created_at", "-created_at", "updated_at", "-updated_at", "title", "-title", "value", "-value", "probability", "-probability", "position", "-position", "id", "-id")


class DealQueryArgsSchema(PageArgs):
    q = fields.String(validate=validate.Length(max=200), metadata={"description": "Free text: the title contains it. At most 200 characters."})
    pipeline_id = fields.Integer()
    stage_id = fields.List(fields.Integer(), metadata={"description": "Repeat for several."})
    status = fields.List(fields.String(validate=validate.OneOf(STATUSES)), metadata={"description": "open, won, lost (from the stage's flags); repeat for several."})
    owner_id = fields.Integer(metadata={"description": "0 for unassigned."})
    contact_id = fields.Integer()
    company_id = fields.Integer()
    tag = fields.String()
    min_value = fields.Decimal(metadata={"description": "value >= this."})
    max_value = fields.Decimal(metadata={"description": "value <= this."})
    created_after = fields.DateTime()
    created_before = fields.DateTime()
    updated_after = fields.DateTime()
    updated_before = fields.DateTime()
    sort = fields.String(load_default="-created_at", validate=validate.OneOf(SORTS))


def visible(query: Any) -> Any:
    return common.visible(query, Deal)


def dump(deals: list[Deal]) -> list[Deal]:
    """Tags and the status (from the stages' flags) for each deal, in two queries."""
    stage_ids = {d.stage_id for d in deals}
    stages = {s.id: s for s in Stage.select().where(Stage.id.in_(list(stage_ids)))} if stage_ids else {}
    for deal in deals:
        stage = stages.get(deal.stage_id)
        deal.status = rules.status_of(stage) if stage is not None else "open"
    return common.with_tags("deal", deals)


def deal_or_404(deal_id: int) -> Deal:
    deal = visible(Deal.select().where(Deal.id == deal_id)).first()
    if deal is None:
        abort(404, message=f"no deal {deal_id}")
    return deal


def check_refs(data: dict[str, Any], record: Deal | None = None) -> None:
    """The deal rules' checks and defaults applied to ``data`` in place
    (:func:`crmcore.entities.checks.deal_input`)."""
    checks.deal_input(data, record, common.request_context())


def check_visible_refs(data: dict[str, Any], record: Deal | None = None) -> None:
    """With ``agents_see_own_only``, an agent may link only records they can see
    (:func:`crmcore.entities.checks.deal_visible_refs`): 422 with every other error too."""
    checks.deal_visible_refs(data, record, common.request_context())


def prepared(call: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a deal rule; its ValidationError becomes a 422, 409/412 as for every resource."""
    try:
        return call(*args, **kwargs)
    except ValidationError as exc:
        abort(422, errors={"json": exc.messages})
    except service.Conflict as exc:
        common.conflict(exc, "deals")
    except service.StaleVersion as exc:
        common.stale(exc)


def filtered(args: dict[str, Any]) -> Any:
    query = visible(Deal.select())
    if args.get("q"):
        query = query.where(Deal.title.ilike(f"%{args['q'].strip()}%"))
    if args.get("pipeline_id") is not None:
        query = query.where(Deal.pipeline == args["pipeline_id"])
    if args.get("stage_id"):
        query = query.where(Deal.stage.in_(args["stage_id"]))
    if args.get("status"):
        wanted = set(args["status"])
        flags = []
        if "won" in wanted:
            flags.append(Stage.is_won == True)  # noqa: E712
        if "lost" in wanted:
            flags.append(Stage.is_lost == True)  # noqa: E712
        if "open" in wanted:
            flags.append((Stage.is_won == False) & (Stage.is_lost == False))  # noqa: E712
        condition = flags[0]
        for flag in flags[1:]:
            condition |= flag
        query = query.where(Deal.stage.in_(Stage.select(Stage.id).where(condition)))
    if "owner_id" in args:
        query = query.where(Deal.owner.is_null() if args["owner_id"] == 0 else Deal.owner == args["owner_id"])
    if args.get("contact_id") is not None:
        query = query.where(Deal.contact == args["contact_id"])
    if args.get("company_id") is not None:
        query = query.where(Deal.company == args["company_id"])
    if args.get("tag"):
        tagged = Tagging.select(Tagging.entity_id).join(Tag, on=(Tagging.tag == Tag.id)).where((Tagging.entity == "deal") & (Tag.name == args["tag"]))
        query = query.where(Deal.id.in_(tagged))
    if args.get("min_value") is not None:
        query = query.where(Deal.value >= args["min_value"])
    if args.get("max_value") is not None:
        query = query.where(Deal.value <= args["max_value"])
    for key, op in (("created_after", ">="), ("created_before", "<"), ("updated_after", ">="), ("updated_before", "<")):
        if args.get(key) is not None:
            column = Deal.created_at if key.startswith("created") else Deal.updated_at
            value = common.naive_utc(args[key])
            query = query.where(column >= value if op == ">=" else column < value)
    return query


@blp.route("")
class Deals(MethodView):
    @blp.arguments(DealQueryArgsSchema, location="query")
    @blp.response(200, DealPageSchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:read")
    def get(self, args):
        """List deals

        Filters combine with AND. Pages are keyset based: follow `next_cursor`;
        deep pages cost the same as the first one.
        """
        rows, next_cursor = common.keyset_page(filtered(args), Deal, args["sort"], args["limit"], args.get("cursor"), plain=True)
        return {"items": dump(rows), "next_cursor": next_cursor}

    @blp.arguments(DealSchema)
    @blp.response(201, DealSchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:write")
    def post(self, data):
        """Create a deal (in the default pipeline's first stage unless told otherwise)"""
        check_visible_refs(data)
        deal = prepared(rules.create_deal, data)
        return dump([deal])[0], 201, common.with_etag(deal)


@blp.route("/<int:deal_id>")
class DealById(MethodView):
    @blp.response(200, DealSchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:read")
    def get(self, deal_id):
        """Get a deal (with its ETag)"""
        deal = deal_or_404(deal_id)
        return dump([deal])[0], 200, common.with_etag(deal)

    @blp.arguments(DealSchema(partial=True))
    @blp.response(200, DealSchema)
    @blp.alt_response(412, description="If-Match does not match the current ETag.")
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:write")
    def patch(self, data, deal_id):
        """Change a deal; a new stage_id moves it (stage history, deal_stage_changed)

        Send If-Match with the ETag you read to avoid lost updates. Moving to a lost
        stage needs a `lost_reason`.
        """
        deal = deal_or_404(deal_id)
        version = common.if_match_version(deal)
        check_visible_refs(data, deal)
        prepared(rules.change_deal, deal, data, if_version=version)
        return dump([deal])[0], 200, common.with_etag(deal)

    @blp.response(204)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:delete")
    def delete(self, deal_id):
        """Delete a deal (and its stage history)"""
        deal = deal_or_404(deal_id)
        version = common.if_match_version(deal)
        try:
            service.delete(deal, if_version=version)
        except service.StaleVersion as exc:
            common.stale(exc)
        except service.Conflict as exc:
            common.conflict(exc, "deals")


@blp.route("/<int:deal_id>/stage-history")
class DealStageHistory(MethodView):
    @blp.response(200, DealStageHistorySchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:read")
    def get(self, deal_id):
        """A deal's stage changes, newest first

        `seconds_in_previous` is how long the deal stayed in `from_stage`. A stage that
        was deleted since shows as null.
        """
        return {"items": rules.stage_history(deal_or_404(deal_id))}
