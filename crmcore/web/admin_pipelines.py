"""/app/admin/pipelines: pipelines and their stages.

The forms are validated by the API's own schemas (``PipelineSchema``, ``StageSchema``,
``StageDeleteArgsSchema``) and write through the same functions as /api/v1/pipelines and
/api/v1/stages (``create_stage``, ``make_default``, ``service.update``/``delete``, and
``service.move_deal`` for the deals of a deleted stage), so a page and the API accept,
refuse and record exactly the same changes. Reordering is done with up/down buttons
(plain forms: no script needed).
"""

from __future__ import annotations

from typing import Any

import peewee
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from crmcore import db
from crmcore.api.pipelines import (
    PipelineSchema,
    StageDeleteArgsSchema,
    StageSchema,
    create_stage,
    make_default,
    stages_of,
)
from crmcore.entities import deals as deal_rules
from crmcore.entities import service
from crmcore.entities.models import Deal, Pipeline, Stage
from crmcore.web.admin import admin_only, form_version, validate_form

bp = admin_only(Blueprint("admin_pipelines", __name__, url_prefix="/app/admin/pipelines"))

STALE = "Someone else changed this meanwhile. Reload the page to see their change, then try again."
STAGE_FIELDS = ("name", "probability", "colour", "is_won", "is_lost", "expected_days")


def pipeline_form() -> PipelineSchema:
    return PipelineSchema(only=("name", "is_default"))


def stage_form() -> StageSchema:
    return StageSchema(only=STAGE_FIELDS)


def pipeline_or_404(pipeline_id: int) -> Pipeline:
    pipeline = Pipeline.get_or_none(Pipeline.id == pipeline_id)  # tenant-scoped
    if pipeline is None:
        abort(404, f"No pipeline {pipeline_id} in this tenant.")
    return pipeline


def stage_or_404(stage_id: int) -> Stage:
    stage = Stage.get_or_none(Stage.id == stage_id)
    if stage is None:
        abort(404, f"No stage {stage_id} in this tenant.")
    return stage


def deal_counts(pipeline_ids: list[int]) -> dict[int, int]:
    """Deals per stage of these pipelines, in one query."""
    if not pipeline_ids:
        return {}
    query = Deal.select(Deal.stage, peewee.fn.COUNT(Deal.id)).where(Deal.pipeline.in_(pipeline_ids)).group_by(Deal.stage)
    return {stage_id: count for stage_id, count in query.tuples()}


def render_pipeline(pipeline: Pipeline, errors: dict[str, dict[str, list[str]]] | None = None, forms: dict[str, Any] | None = None, status: int = 200):
    stages = stages_of([pipeline.id])[pipeline.id]
    return render_template("crm/admin/pipeline.html", pipeline=pipeline, stages=stages, counts=deal_counts([pipeline.id]),
                           errors=errors or {}, forms=forms or {}, default_colour=StageSchema().fields["colour"].load_default), status


@bp.route("/", methods=["GET", "POST"])
def index():
    """Every pipeline with its stages in order; the form to add a pipeline."""
    errors: dict[str, list[str]] = {}
    form: dict[str, Any] = {"standard_stages": True}
    if request.method == "POST":
        data, errors = validate_form(pipeline_form())
        form = {**data, "standard_stages": "standard_stages" in request.form}
        if not errors:
            with db.atomic():
                pipeline = service.create(Pipeline, data)
                if pipeline.is_default:
                    make_default(pipeline)
                if form["standard_stages"]:
                    for name, probability, colour, won, lost, days in service.DEFAULT_STAGES:
                        create_stage(pipeline, {"name": name, "probability": probability, "colour": colour, "is_won": won, "is_lost": lost, "expected_days": days})
            flash(f"Pipeline “{pipeline.name}” created.")
            return redirect(url_for(".edit", pipeline_id=pipeline.id))
    pipelines = list(Pipeline.select().order_by(Pipeline.order, Pipeline.name, Pipeline.id))
    stages = stages_of([p.id for p in pipelines])
    counts = deal_counts([p.id for p in pipelines])
    return render_template("crm/admin/pipelines.html", pipelines=pipelines, stages=stages, counts=counts, errors=errors, form=form), 422 if errors else 200


@bp.route("/<int:pipeline_id>", methods=["GET", "POST"])
def edit(pipeline_id: int):
    """A pipeline: rename it or make it the default; its stages."""
    pipeline = pipeline_or_404(pipeline_id)
    if request.method == "GET":
        return render_pipeline(pipeline)
    data, errors = validate_form(pipeline_form())
    if errors:
        return render_pipeline(pipeline, {"pipeline": errors}, {"pipeline": data}, 422)
    if pipeline.is_default:
        data.pop("is_default", None)  # the default stays the default until another is made one
    try:
        with db.atomic():
            changes = service.update(pipeline, data, if_version=form_version())
            if data.get("is_default"):
                make_default(pipeline)
    except service.StaleVersion:
        return render_pipeline(pipeline, {"pipeline": {"_form": [STALE]}}, {"pipeline": data}, 409)
    flash(f"Pipeline “{pipeline.name}” saved." if changes else "Nothing changed.")
    return redirect(url_for(".edit", pipeline_id=pipeline.id))


@bp.route("/<int:pipeline_id>/delete", methods=["GET", "POST"])
def delete(pipeline_id: int):
    """Delete a pipeline without deals (never the default), after asking."""
    pipeline = pipeline_or_404(pipeline_id)
    deals = Deal.select().where(Deal.pipeline == pipeline.id).count()
    problem = None
    if pipeline.is_default:
        problem = "This is the default pipeline: make another pipeline the default first."
    elif deals:
        problem = f"The pipeline holds {deals} deal(s): move or delete them first (or delete its stages one by one, moving their deals)."
    if request.method == "GET" or problem:
        return render_template("crm/admin/confirm.html", title=f"Delete the pipeline “{pipeline.name}”?",
                               message="The pipeline and all its stages are deleted. This cannot be undone.", problem=problem,
                               action=url_for(".delete", pipeline_id=pipeline.id), button="Delete pipeline",
                               cancel=url_for(".edit", pipeline_id=pipeline.id)), 409 if problem and request.method == "POST" else 200
    try:
        service.delete(pipeline)
    except service.Conflict as exc:
        flash(f"The pipeline could not be deleted: {exc}")
        return redirect(url_for(".edit", pipeline_id=pipeline.id))
    flash(f"Pipeline “{pipeline.name}” deleted.")
    return redirect(url_for(".index"))


@bp.route("/<int:pipeline_id>/stages", methods=["POST"])
def add_stage(pipeline_id: int):
    """Add a stage at the end of the pipeline."""
    pipeline = pipeline_or_404(pipeline_id)
    data, errors = validate_form(stage_form())
    if errors:
        return render_pipeline(pipeline, {"new_stage": errors}, {"new_stage": data}, 422)
    stage = create_stage(pipeline, data)
    flash(f"Stage “{stage.name}” added.")
    return redirect(url_for(".edit", pipeline_id=pipeline.id) + f"#stage-{stage.id}")


@bp.route("/stages/<int:stage_id>", methods=["GET", "POST"])
def edit_stage(stage_id: int):
    """A stage's name, colour, probability, expected days and won/lost flags."""
    stage = stage_or_404(stage_id)
    pipeline = pipeline_or_404(stage.pipeline_id)
    errors: dict[str, list[str]] = {}
    form: dict[str, Any] = {}
    status = 200
    if request.method == "POST":
        data, errors = validate_form(stage_form())
        form, status = data, 422
        if not errors:
            try:
                changes = service.update(stage, data, if_version=form_version())
            except service.StaleVersion:
                errors, status = {"_form": [STALE]}, 409
            else:
                flash(f"Stage “{stage.name}” saved." if changes else "Nothing changed.")
                return redirect(url_for(".edit", pipeline_id=pipeline.id) + f"#stage-{stage.id}")
    deals = Deal.select().where(Deal.stage == stage.id).count()
    return render_template("crm/admin/stage.html", stage=stage, pipeline=pipeline, deals=deals, errors=errors, form=form), status


@bp.route("/stages/<int:stage_id>/move", methods=["POST"])
def move_stage(stage_id: int):
    """Move a stage one place up or down (``direction``), as PUT .../stages/order would."""
    stage = stage_or_404(stage_id)
    stages = stages_of([stage.pipeline_id])[stage.pipeline_id]
    ids = [s.id for s in stages]
    at = ids.index(stage.id)
    to = at - 1 if request.form.get("direction") == "up" else at + 1
    if 0 <= to < len(ids):
        ids[at], ids[to] = ids[to], ids[at]
        by_id = {s.id: s for s in stages}
        with db.atomic():
            for order, sid in enumerate(ids):
                if by_id[sid].order != order:
                    service.update(by_id[sid], {"order": order})
        flash(f"Stage “{stage.name}” moved {'up' if to < at else 'down'}.")
    return redirect(url_for(".edit", pipeline_id=stage.pipeline_id) + f"#stage-{stage.id}")


@bp.route("/stages/<int:stage_id>/delete", methods=["GET", "POST"])
def delete_stage(stage_id: int):
    """Delete a stage; its deals first move to another stage of the pipeline (asked for),
    each through service.move_deal, in their order, after the deals already there."""
    stage = stage_or_404(stage_id)
    pipeline = pipeline_or_404(stage.pipeline_id)
    deals = list(Deal.select().where(Deal.stage == stage.id).order_by(Deal.position, Deal.id))
    others = [s for s in stages_of([pipeline.id])[pipeline.id] if s.id != stage.id]
    errors: dict[str, list[str]] = {}
    form: dict[str, Any] = {}
    status = 200
    if request.method == "POST":
        args, errors = validate_form(StageDeleteArgsSchema())
        form, status = args, 422
        target = None
        if not errors and args.get("move_to") is not None:
            target = Stage.get_or_none(Stage.id == args["move_to"])
            if target is None or target.pipeline_id != stage.pipeline_id or target.id == stage.id:
                errors = {"move_to": ["Must be another stage of the same pipeline."]}
            elif target.is_lost and not args.get("lost_reason") and any(not d.lost_reason for d in deals):
                errors = {"lost_reason": [f"Required: deals move to the lost stage “{target.name}”."]}
        elif not errors and deals:
            errors = {"move_to": [f"The stage holds {len(deals)} deal(s): choose the stage they move to."]}
        if not errors:
            try:
                with db.atomic():
                    start = deal_rules.end_of_stage(target.id) if deals else 0
                    for offset, deal in enumerate(deals):
                        service.move_deal(deal, target, position=start + offset, lost_reason=deal.lost_reason or args.get("lost_reason"))
                    service.delete(stage, if_version=form_version())
            except service.StaleVersion:
                errors, status = {"_form": [STALE]}, 409
            except service.Conflict as exc:
                errors, status = {"_form": [str(exc)]}, 409
            else:
                moved = f" Its {len(deals)} deal(s) moved to “{target.name}”." if deals else ""
                flash(f"Stage “{stage.name}” deleted.{moved}")
                return redirect(url_for(".edit", pipeline_id=pipeline.id))
    stage_options = [(s.id, s.name + (" (won)" if s.is_won else " (lost)" if s.is_lost else "")) for s in others]
    return render_template("crm/admin/stage_delete.html", stage=stage, pipeline=pipeline, deals=deals, others=others, stage_options=stage_options, errors=errors, form=form), status
