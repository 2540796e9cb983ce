"""/api/v1/pipeline/...: board data, card moves and stage metrics.

Stages themselves are managed by the core's /api/v1/pipelines/<id>/stages (list, create,
reorder) and /api/v1/stages/<id> (change, delete with ``?move_to=``); this API adds only
what a board needs. A move goes through crmcore.entities.deals.change_deal, the same path
as ``PATCH /api/v1/deals/<id>``: stage history, audit, probability from the stage,
closed_at, the ``deal_stage_changed`` signal and the live events.
"""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from crm_plugins.kanban import board
from crmcore import sdk
from crmcore.sdk import LEAD_STATUSES, Deal, Lead, Stage, require

blp = Blueprint("kanban_api", __name__, url_prefix="/pipeline", description="Kanban boards: columns, cards, moves and stage metrics.")


class BoardArgsSchema(Schema):
    q = fields.String(validate=validate.Length(max=200), metadata={"description": "Free text: the title (deals) or name/email/company (leads) contains it. At most 200 characters."})
    owner_id = fields.Integer(metadata={"description": "0 for unassigned."})
    mine = fields.Boolean(load_default=False, metadata={"description": "Only cards the caller owns."})
    tag = fields.String(validate=validate.Length(min=1, max=60))
    min_value = fields.Decimal(validate=validate.Range(min=0), metadata={"description": "value (deals) or estimated value (leads) >= this."})
    max_value = fields.Decimal(validate=validate.Range(min=0), metadata={"description": "value <= this."})
    limit = fields.Integer(validate=validate.Range(min=0, max=100), metadata={"description": "Cards per column (0: totals only); the `page_size` setting when omitted."})

    @validates_schema
    def _range(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("min_value") is not None and data.get("max_value") is not None and data["min_value"] > data["max_value"]:
            raise ValidationError("Must not be below min_value.", "max_value")


class ColumnArgsSchema(BoardArgsSchema):
    cursor = fields.String(load_default=None, metadata={"description": "The column's `next_cursor`."})


class CardSchema(Schema):
    """A card as the board draws it (plugins/kanban/README.md describes every key)."""

    id = fields.Integer()
    entity = fields.String(metadata={"description": "deal or lead"})
    title = fields.String()
    value = fields.String(allow_none=True)
    currency = fields.String(allow_none=True)
    probability = fields.Integer(allow_none=True)
    pipeline_id = fields.Integer()
    stage_id = fields.Integer()
    column = fields.String(metadata={"description": "The column id: the stage id, or the lead status."})
    position = fields.Float()
    version = fields.Integer()
    etag = fields.String()
    status = fields.String()
    owner = fields.Dict(allow_none=True, metadata={"description": "{id, name, initials}"})
    company = fields.Dict(allow_none=True, metadata={"description": "{id, name}"})
    contact = fields.Dict(allow_none=True, metadata={"description": "{id, name}"})
    tags = fields.List(fields.String())
    days_in_stage = fields.Integer()
    expected_days = fields.Integer(allow_none=True)
    overdue = fields.Boolean(metadata={"description": "Longer in its stage than the stage's expected_days."})
    stage_entered_at = fields.String(allow_none=True)
    expected_close_date = fields.String(allow_none=True)
    lost_reason = fields.String(allow_none=True)
    badges = fields.List(fields.Dict(), metadata={"description": "From crm_kanban_card_badges: {label, title, tone, plugin}."})
    url = fields.String()
    matches = fields.Boolean(metadata={"description": "GET only: whether the card passes the given filters."})


class ColumnSchema(Schema):
    class Meta:
        unknown = "include"

    id = fields.String()
    name = fields.String()
    colour = fields.String()
    count = fields.Integer()
    value = fields.String()
    weighted_value = fields.String()
    cards = fields.List(fields.Dict())
    next_cursor = fields.String(allow_none=True)


class BoardSchema(Schema):
    entity = fields.String(metadata={"description": "deal or lead"})
    pipeline = fields.Dict(allow_none=True)
    columns = fields.List(fields.Dict())


class ColumnPageSchema(Schema):
    cards = fields.List(fields.Dict())
    next_cursor = fields.String(allow_none=True)


class BoardListSchema(Schema):
    pipelines = fields.List(fields.Dict(), metadata={"description": "The pipelines that have a board, with their stages."})
    lead_board = fields.Boolean()
    default_pipeline_id = fields.Integer(allow_none=True)


class MoveSchema(Schema):
    stage_id = fields.Integer(required=True, metadata={"description": "The column (stage) the card goes to; a stage of the deal's pipeline."})
    before_id = fields.Integer(allow_none=True, metadata={"description": "Put the card just above this card of the column."})
    after_id = fields.Integer(allow_none=True, metadata={"description": "Put the card just below this card of the column."})
    position = fields.Float(allow_none=True, metadata={"description": "An explicit position (instead of before_id/after_id); the end of the column when all are omitted."})
    lost_reason = fields.String(allow_none=True, validate=validate.Length(max=300), metadata={"description": "Required when the stage is a lost stage."})
    version = fields.Integer(metadata={"description": "The card's version as read (or send If-Match with its ETag): 412 when it changed since."})

    @validates_schema
    def _one_anchor(self, data: dict[str, Any], **_: Any) -> None:
        given = [k for k in ("before_id", "after_id", "position") if data.get(k) is not None]
        if len(given) > 1:
            raise ValidationError("Give at most one of before_id, after_id and position.", given[-1])


class LeadMoveSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(LEAD_STATUSES))
    version = fields.Integer()


class MetricsSchema(Schema):
    pipeline_id = fields.Integer()
    stages = fields.List(fields.Dict())


def _limit(args: dict[str, Any]) -> int:
    return args["limit"] if args.get("limit") is not None else board.settings()["page_size"]


def _pipeline_or_404(pipeline_id: int) -> Any:
    pipeline = board.shown_pipeline_or_none(pipeline_id)
    if pipeline is None:
        abort(404, message=f"no board for pipeline {pipeline_id}")
    return pipeline


def _lead_board_or_404() -> None:
    if not board.settings()["lead_board"]:
        abort(404, message="the lead board is switched off for this tenant")


def _check_version(record: Any, sent: int | None) -> int | None:
    """The version to write against: If-Match's (412 when stale) or the body's."""
    version = sdk.if_match_version(record)
    if sent is not None:
        if sent != record.version:
            abort(412, message=f"the card changed since you read it (now version {record.version}); reload and try again")
        version = sent
    return version


def deal_card(deal: Deal, args: dict[str, Any] | None = None) -> dict[str, Any]:
    stage = Stage.get_by_id(deal.stage_id)
    card = board.deal_cards([deal], {stage.id: stage})[0]
    if args is not None:
        card["matches"] = board.deal_query(deal.pipeline_id, args).where(Deal.id == deal.id).exists()
    return card


def lead_card(lead: Lead, args: dict[str, Any] | None = None) -> dict[str, Any]:
    card = board.lead_cards([lead])[0]
    if args is not None:
        card["matches"] = board.lead_query(args).where(Lead.id == lead.id).exists()
    return card


@blp.route("/boards")
class Boards(MethodView):
    @blp.response(200, BoardListSchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:read")
    def get(self):
        """The boards of this tenant: its pipelines (with stages) and the lead board"""
        from crmcore.sdk import stages_of

        rows = board.pipelines()
        stages = stages_of([p.id for p in rows])
        default = board.default_pipeline(rows)
        return {
            "pipelines": [
                {"id": p.id, "name": p.name, "stages": [{"id": s.id, "name": s.name, "colour": s.colour, "is_won": s.is_won, "is_lost": s.is_lost} for s in stages[p.id]]}
                for p in rows
            ],
            "lead_board": board.settings()["lead_board"],
            "default_pipeline_id": default.id if default else None,
        }


@blp.route("/boards/<int:pipeline_id>")
class PipelineBoard(MethodView):
    @blp.arguments(BoardArgsSchema, location="query")
    @blp.response(200, BoardSchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:read")
    def get(self, args, pipeline_id):
        """A pipeline's board: every stage with its totals and first cards

        Totals (count, value, probability-weighted value) cover every card that matches
        the filters, not only the loaded ones. Follow a column's `next_cursor` with
        /boards/<id>/columns/<stage_id>/cards. A constant number of queries.
        """
        return board.deal_board(_pipeline_or_404(pipeline_id), args, _limit(args))


@blp.route("/boards/<int:pipeline_id>/columns/<int:stage_id>/cards")
class PipelineColumn(MethodView):
    @blp.arguments(ColumnArgsSchema, location="query")
    @blp.response(200, ColumnPageSchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:read")
    def get(self, args, pipeline_id, stage_id):
        """More cards of one column (keyset pages)"""
        pipeline = _pipeline_or_404(pipeline_id)
        stage = Stage.get_or_none((Stage.id == stage_id) & (Stage.pipeline == pipeline.id))
        if stage is None:
            abort(404, message=f"no stage {stage_id} in pipeline {pipeline_id}")
        return board.deal_column_page(pipeline, stage, args, _limit(args) or 1, args.get("cursor"))


@blp.route("/boards/<int:pipeline_id>/metrics")
class PipelineMetrics(MethodView):
    @blp.response(200, MetricsSchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:read")
    def get(self, pipeline_id):
        """Per stage: count, value, weighted value, average days in stage, conversion to the next stage"""
        return board.metrics(_pipeline_or_404(pipeline_id))


@blp.route("/leads/board")
class LeadBoard(MethodView):
    @blp.arguments(BoardArgsSchema, location="query")
    @blp.response(200, BoardSchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:read")
    def get(self, args):
        """The lead board: one column per lead status, newest leads first"""
        _lead_board_or_404()
        return board.lead_board(args, _limit(args))


@blp.route("/leads/board/<any(new,contacted,qualified,unqualified,converted):status>/cards")
class LeadColumn(MethodView):
    @blp.arguments(ColumnArgsSchema, location="query")
    @blp.response(200, ColumnPageSchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:read")
    def get(self, args, status):
        """More cards of one lead column"""
        _lead_board_or_404()
        return board.lead_column_page(status, args, _limit(args) or 1, args.get("cursor"))


@blp.route("/cards/<int:deal_id>")
class DealCard(MethodView):
    @blp.arguments(BoardArgsSchema, location="query")
    @blp.response(200, CardSchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:read")
    def get(self, args, deal_id):
        """One deal's card; `matches` says whether it passes the given filters (live boards)"""
        deal = sdk.visible_deal(deal_id)
        return deal_card(deal, args), 200, sdk.with_etag(deal)

    @blp.arguments(MoveSchema)
    @blp.response(200, CardSchema)
    @blp.alt_response(412, description="The card changed since it was read (If-Match or `version`).")
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:write")
    def put(self, data, deal_id):
        """Move a card: to a stage (column) and a place in it

        Same path as PATCH /api/v1/deals/<id> with a stage_id: stage history, audit,
        probability from the stage, closed_at for won/lost stages, `deal_stage_changed`.
        A lost stage needs `lost_reason`. 404 for a deal this caller cannot see.
        """
        deal = sdk.visible_deal(deal_id)
        version = _check_version(deal, data.get("version"))
        stage = Stage.get_or_none(Stage.id == data["stage_id"])
        if stage is None:
            abort(422, errors={"json": {"stage_id": ["No such stage."]}})
        if stage.pipeline_id != deal.pipeline_id:
            abort(422, errors={"json": {"stage_id": ["This stage belongs to another pipeline."]}})
        position = data.get("position")
        for key in ("before_id", "after_id"):
            if data.get(key) is not None:
                if data[key] == deal.id:
                    abort(422, errors={"json": {key: ["Must be another card."]}})
                position = board.position_between(stage.id, deal.id, data.get("before_id"), data.get("after_id"))
                if position is None:
                    abort(422, errors={"json": {key: [f"No card {data[key]} in the stage {stage.name!r}."]}})
        if position is None:
            position = deal.position if stage.id == deal.stage_id else sdk.end_of_stage(stage.id)
        change: dict[str, Any] = {"stage_id": stage.id, "position": position}
        reason = (data.get("lost_reason") or "").strip()
        if stage.is_lost:
            change["lost_reason"] = reason or (deal.lost_reason if stage.id == deal.stage_id else None)
        with sdk.atomic():
            sdk.run_deal_rule(sdk.change_deal, deal, change, if_version=version)
            if board.needs_respacing(position, stage.id, deal.id):
                board.respace(stage.id)
                deal = Deal.get_by_id(deal.id)
        return deal_card(deal), 200, sdk.with_etag(deal)


@blp.route("/leads/<int:lead_id>")
class LeadCard(MethodView):
    @blp.arguments(BoardArgsSchema, location="query")
    @blp.response(200, CardSchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:read")
    def get(self, args, lead_id):
        """One lead's card; `matches` says whether it passes the given filters"""
        _lead_board_or_404()
        lead = sdk.visible_lead(lead_id)
        return lead_card(lead, args), 200, sdk.with_etag(lead)

    @blp.arguments(LeadMoveSchema)
    @blp.response(200, CardSchema)
    @blp.alt_response(412, description="The card changed since it was read.")
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:write")
    def put(self, data, lead_id):
        """Move a lead card to another status column (through the entity service)"""
        _lead_board_or_404()
        lead = sdk.visible_lead(lead_id)
        version = _check_version(lead, data.get("version"))
        if lead.status == "converted" and data["status"] != "converted":
            abort(422, errors={"json": {"status": ["A converted lead stays converted."]}})
        if data["status"] == "converted" and lead.status != "converted":
            abort(422, errors={"json": {"status": ["Convert the lead from its page (it creates a contact and maybe a deal)."]}})
        with sdk.write_errors("leads"):
            sdk.update_record(lead, {"status": data["status"]}, if_version=version)
        return lead_card(lead), 200, sdk.with_etag(lead)

