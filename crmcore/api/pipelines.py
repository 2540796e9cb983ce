"""/api/v1/pipelines and /api/v1/stages: the pipelines deals move through.

Shaped like /api/v1/leads. A tenant has exactly one default pipeline (new deals go
there); it cannot be deleted, only replaced by making another one the default. Stages
are ordered by ``order``; deleting a stage that holds deals needs ``?move_to=`` (each
deal moves through service.move_deal, so its history and signals stay complete).
"""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import abort
from marshmallow import ValidationError, fields, validate, validates_schema

from crmcore import db
from crmcore.api import common
from crmcore.api.common import PageArgs, require
from crmcore.api.schema import INT32_MAX, Blueprint, Schema
from crmcore.entities import deals as deal_rules
from crmcore.entities import service
from crmcore.entities.models import Deal, Pipeline, Stage

# No url_prefix: the module serves both /pipelines/... and /stages/<id>.
blp = Blueprint("pipelines", __name__, description="Pipelines and their stages.")

COLOUR = validate.Regexp(r"^#[0-9a-fA-F]{6}$", error="Not a colour: #rrggbb.")


class StageSchema(Schema):
    id = fields.Integer(dump_only=True)
    pipeline_id = fields.Integer(dump_only=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    order = fields.Integer(validate=validate.Range(min=0, max=INT32_MAX), metadata={"description": "Position in the pipeline; after the last stage when omitted."})
    probability = fields.Integer(load_default=0, validate=validate.Range(min=0, max=100), metadata={"description": "Percent; a deal entering the stage gets it."})
    colour = fields.String(load_default="#8a94a6", validate=COLOUR)
    is_won = fields.Boolean(load_default=False)
    is_lost = fields.Boolean(load_default=False)
    expected_days = fields.Integer(allow_none=True, validate=validate.Range(min=0, max=3650), metadata={"description": "Days a deal is expected to stay (stale-deal checks)."})
    version = fields.Integer(dump_only=True)

    @validates_schema
    def _won_or_lost(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("is_won") and data.get("is_lost"):
            raise ValidationError("A stage cannot be both won and lost.", "is_lost")


class StageListSchema(Schema):
    items = fields.List(fields.Nested(StageSchema))


class StageOrderSchema(Schema):
    stage_ids = fields.List(fields.Integer(), required=True, metadata={"description": "Every stage of the pipeline, each once, in the new order."})


class StageDeleteArgsSchema(Schema):
    move_to = fields.Integer(metadata={"description": "A stage of the same pipeline that takes this stage's deals."})
    lost_reason = fields.String(validate=validate.Length(min=1, max=300), metadata={"description": "For deals moved to a lost stage that have no reason yet."})


class PipelineSchema(Schema):
    id = fields.Integer(dump_only=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    is_default = fields.Boolean(load_default=False, metadata={"description": "New deals go to the default pipeline; making one the default unmarks the previous."})
    order = fields.Integer(load_default=0, validate=validate.Range(min=0, max=INT32_MAX))
    stages = fields.List(fields.Nested(StageSchema), metadata={"description": "On create: the stages, in order (optional). Afterwards: use the stages endpoints."})
    created_at = fields.DateTime(dump_only=True)
    version = fields.Integer(dump_only=True)


class PipelinePageSchema(Schema):
    items = fields.List(fields.Nested(PipelineSchema))
    next_cursor = fields.String(allow_none=True, metadata={"description": "Pass as `cursor` for the next page; null on the last page."})


SORTS = ("order", "-order", "name", "-name", "created_at", "-created_at", "id", "-id")


class PipelineQueryArgsSchema(PageArgs):
    q = fields.String(validate=validate.Length(max=200), metadata={"description": "The name contains it. At most 200 characters."})
    sort = fields.String(load_default="order", validate=validate.OneOf(SORTS))


def stages_of(pipeline_ids: list[int]) -> dict[int, list[Stage]]:
    out: dict[int, list[Stage]] = {i: [] for i in pipeline_ids}
    if pipeline_ids:
        for stage in Stage.select().where(Stage.pipeline.in_(pipeline_ids)).order_by(Stage.order, Stage.id):
            out[stage.pipeline_id].append(stage)
    return out


def dump(pipelines: list[Pipeline]) -> list[Pipeline]:
    """Each pipeline with its stages in order, in one query."""
    stages = stages_of([p.id for p in pipelines])
    for pipeline in pipelines:
        pipeline.stages = stages[pipeline.id]
    return pipelines


def pipeline_or_404(pipeline_id: int) -> Pipeline:
    return common.get_or_404(Pipeline, pipeline_id, "pipeline")


def stage_or_404(stage_id: int) -> Stage:
    return common.get_or_404(Stage, stage_id, "stage")


def make_default(pipeline: Pipeline) -> None:
    """Unmark the previous default (audited, versioned) so there is exactly one."""
    for other in Pipeline.select().where((Pipeline.is_default == True) & (Pipeline.id != pipeline.id)):  # noqa: E712
        service.update(other, {"is_default": False})


def next_order(pipeline_id: int) -> int:
    last = Stage.select().where(Stage.pipeline == pipeline_id).order_by(Stage.order.desc()).first()
    return last.order + 1 if last is not None else 0


def create_stage(pipeline: Pipeline, data: dict[str, Any]) -> Stage:
    if data.get("order") is None:
        data["order"] = next_order(pipeline.id)
    return service.create(Stage, {**data, "pipeline": pipeline.id})


@blp.route("/pipelines")
class Pipelines(MethodView):
    @blp.arguments(PipelineQueryArgsSchema, location="query")
    @blp.response(200, PipelinePageSchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:read")
    def get(self, args):
        """List pipelines, each with its stages in order"""
        query = Pipeline.select()
        if args.get("q"):
            query = query.where(Pipeline.name.ilike(f"%{args['q'].strip()}%"))
        rows, next_cursor = common.keyset_page(query, Pipeline, args["sort"], args["limit"], args.get("cursor"))
        return {"items": dump(rows), "next_cursor": next_cursor}

    @blp.arguments(PipelineSchema)
    @blp.response(201, PipelineSchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("pipelines:manage")
    def post(self, data):
        """Create a pipeline (with its stages, if given)"""
        stages = data.pop("stages", None) or []
        with db.atomic():
            pipeline = service.create(Pipeline, data)
            if pipeline.is_default:
                make_default(pipeline)
            for order, stage in enumerate(stages):
                stage.setdefault("order", order)
                create_stage(pipeline, stage)
        return dump([pipeline])[0], 201, common.with_etag(pipeline)


@blp.route("/pipelines/<int:pipeline_id>")
class PipelineById(MethodView):
    @blp.response(200, PipelineSchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:read")
    def get(self, pipeline_id):
        """Get a pipeline with its stages (with its ETag)"""
        pipeline = pipeline_or_404(pipeline_id)
        return dump([pipeline])[0], 200, common.with_etag(pipeline)

    @blp.arguments(PipelineSchema(partial=True))
    @blp.response(200, PipelineSchema)
    @blp.alt_response(412, description="If-Match does not match the current ETag.")
    @blp.doc(security=[{"bearerAuth": []}])
    @require("pipelines:manage")
    def patch(self, data, pipeline_id):
        """Change a pipeline's name, order or default flag"""
        pipeline = pipeline_or_404(pipeline_id)
        version = common.if_match_version(pipeline)
        if "stages" in data:
            abort(422, errors={"json": {"stages": ["Change stages through /pipelines/<id>/stages and /stages/<id>."]}})
        if data.get("is_default") is False and pipeline.is_default:
            abort(422, errors={"json": {"is_default": ["Make another pipeline the default instead."]}})
        try:
            with db.atomic():
                service.update(pipeline, data, if_version=version)
                if data.get("is_default"):
                    make_default(pipeline)
        except service.StaleVersion as exc:
            common.stale(exc)
        return dump([pipeline])[0], 200, common.with_etag(pipeline)

    @blp.response(204)
    @blp.alt_response(409, description="The pipeline holds deals, or is the default.")
    @blp.doc(security=[{"bearerAuth": []}])
    @require("pipelines:manage")
    def delete(self, pipeline_id):
        """Delete a pipeline and its stages (only without deals, never the default)"""
        pipeline = pipeline_or_404(pipeline_id)
        version = common.if_match_version(pipeline)
        if pipeline.is_default:
            abort(409, message="this is the default pipeline; make another one the default first")
        deals = Deal.select().where(Deal.pipeline == pipeline.id).count()
        if deals:
            abort(409, message=f"the pipeline holds {deals} deal(s); move or delete them first")
        try:
            service.delete(pipeline, if_version=version)
        except service.StaleVersion as exc:
            common.stale(exc)
        except service.Conflict as exc:
            common.conflict(exc, "pipelines")


@blp.route("/pipelines/<int:pipeline_id>/stages")
class PipelineStages(MethodView):
    @blp.response(200, StageListSchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:read")
    def get(self, pipeline_id):
        """List a pipeline's stages in order"""
        pipeline = pipeline_or_404(pipeline_id)
        return {"items": stages_of([pipeline.id])[pipeline.id]}

    @blp.arguments(StageSchema)
    @blp.response(201, StageSchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("pipelines:manage")
    def post(self, data, pipeline_id):
        """Add a stage to a pipeline (at the end unless `order` is given)"""
        pipeline = pipeline_or_404(pipeline_id)
        stage = create_stage(pipeline, data)
        return stage, 201, common.with_etag(stage)


@blp.route("/pipelines/<int:pipeline_id>/stages/order")
class PipelineStageOrder(MethodView):
    @blp.arguments(StageOrderSchema)
    @blp.response(200, StageListSchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("pipelines:manage")
    def put(self, data, pipeline_id):
        """Reorder a pipeline's stages: send all of its stage ids in the new order"""
        pipeline = pipeline_or_404(pipeline_id)
        stages = {s.id: s for s in stages_of([pipeline.id])[pipeline.id]}
        wanted = data["stage_ids"]
        if len(wanted) != len(set(wanted)) or set(wanted) != set(stages):
            abort(422, errors={"json": {"stage_ids": [f"Must name each of the pipeline's stages exactly once: {sorted(stages)}."]}})
        with db.atomic():
            for order, stage_id in enumerate(wanted):
                if stages[stage_id].order != order:
                    service.update(stages[stage_id], {"order": order})
        return {"items": [stages[i] for i in wanted]}


@blp.route("/stages/<int:stage_id>")
class StageById(MethodView):
    @blp.response(200, StageSchema)
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:read")
    def get(self, stage_id):
        """Get a stage (with its ETag)"""
        stage = stage_or_404(stage_id)
        return stage, 200, common.with_etag(stage)

    @blp.arguments(StageSchema(partial=True))
    @blp.response(200, StageSchema)
    @blp.alt_response(412, description="If-Match does not match the current ETag.")
    @blp.doc(security=[{"bearerAuth": []}])
    @require("pipelines:manage")
    def patch(self, data, stage_id):
        """Change a stage

        Deals already in the stage keep their probability and closed_at; the new
        values apply to deals that enter it from now on.
        """
        stage = stage_or_404(stage_id)
        version = common.if_match_version(stage)
        if data.get("is_won", stage.is_won) and data.get("is_lost", stage.is_lost):
            abort(422, errors={"json": {"is_lost": ["A stage cannot be both won and lost."]}})
        try:
            service.update(stage, data, if_version=version)
        except service.StaleVersion as exc:
            common.stale(exc)
        return stage, 200, common.with_etag(stage)

    @blp.arguments(StageDeleteArgsSchema, location="query")
    @blp.response(204)
    @blp.alt_response(409, description="The stage holds deals and no `move_to` was given.")
    @blp.doc(security=[{"bearerAuth": []}])
    @require("pipelines:manage")
    def delete(self, args, stage_id):
        """Delete a stage; `?move_to=<stage_id>` first moves its deals there"""
        stage = stage_or_404(stage_id)
        version = common.if_match_version(stage)
        deals = list(Deal.select().where(Deal.stage == stage.id).order_by(Deal.position, Deal.id))
        target = None
        if args.get("move_to") is not None:
            target = Stage.get_or_none(Stage.id == args["move_to"])
            if target is None or target.pipeline_id != stage.pipeline_id or target.id == stage.id:
                abort(422, errors={"query": {"move_to": ["Must be another stage of the same pipeline."]}})
            if target.is_lost and not args.get("lost_reason") and any(not d.lost_reason for d in deals):
                abort(422, errors={"query": {"lost_reason": [f"Required: deals move to the lost stage {target.name!r}."]}})
        elif deals:
            abort(409, message=f"the stage holds {len(deals)} deal(s); pass ?move_to=<stage_id> to move them first")
        try:
            with db.atomic():
                # In their order, after the deals already in the target stage.
                start = deal_rules.end_of_stage(target.id) if deals else 0
                for offset, deal in enumerate(deals):
                    service.move_deal(deal, target, position=start + offset, lost_reason=deal.lost_reason or args.get("lost_reason"))
                service.delete(stage, if_version=version)
        except service.StaleVersion as exc:
            common.stale(exc)
        except service.Conflict as exc:
            common.conflict(exc, "stages")
