"""/app/kanban/: the board page (nav item "Pipeline").

The page is a shell with the board's first data embedded as JSON (one request, the same
constant queries as the API); static/kanban.js draws it and does the rest through
/api/v1/pipeline/... with the session cookie: drag and drop, keyboard moves, load more,
filters kept in the URL, the side panel, undo, and live updates over /realtime/ws.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, g, render_template, request, url_for
from marshmallow import ValidationError

from crm_plugins.kanban import board
from crm_plugins.kanban.api import BoardArgsSchema
from crmcore import sdk
from crmcore.sdk import tag_suggestions, user_options

pages = Blueprint("kanban_pages", __name__, url_prefix="/app/kanban", template_folder="templates", static_folder="static", static_url_path="/static")

FILTER_KEYS = ("q", "owner_id", "mine", "tag", "min_value", "max_value")


def filters_from(args: Any) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The filters of the URL, validated like the API's (bad ones are shown and ignored)."""
    raw = {k: args.get(k) for k in FILTER_KEYS if args.get(k) not in (None, "")}
    try:
        return BoardArgsSchema().load(raw), {}
    except ValidationError as exc:
        return {}, {k: v if isinstance(v, list) else [str(v)] for k, v in exc.messages.items()}


@pages.route("/")
def index() -> Any:
    """The board of one pipeline (``?pipeline=<id>``, default: the configured one) or the
    lead board (``?board=leads``)."""
    settings = board.settings()
    rows = board.pipelines()
    filters, errors = filters_from(request.args)
    per_column = settings["page_size"]
    lead_board = request.args.get("board") == "leads" or request.args.get("pipeline") == "leads"  # the switcher's value
    pipeline = None
    if lead_board:
        if not settings["lead_board"]:
            abort(404, "The lead board is switched off for this tenant.")
        data = board.lead_board(filters, per_column)
    else:
        wanted = request.args.get("pipeline")
        if wanted is not None and not wanted.isdigit():
            abort(404, f"No board {wanted!r}.")
        pipeline = next((p for p in rows if p.id == int(wanted)), None) if wanted else board.default_pipeline(rows)
        if wanted and pipeline is None:
            abort(404, f"No board for pipeline {wanted}.")
        data = board.deal_board(pipeline, filters, per_column) if pipeline is not None else None
    # The stage settings are the core's admin pages (admins only): link there, no copy here.
    can_manage = g.user is not None and g.user.role == "admin"
    manage_url = url_for("admin_pipelines.edit", pipeline_id=pipeline.id) if pipeline is not None and can_manage else None
    return render_template(
        "kanban/board.html",
        data=data,
        pipelines=rows,
        pipeline=pipeline,
        lead_board=lead_board,
        lead_board_on=settings["lead_board"],
        card_fields=settings["card_fields"],
        page_size=per_column,
        filters={k: request.args.get(k, "") for k in FILTER_KEYS},
        filter_errors=errors,
        owners=user_options(),
        tags=tag_suggestions(),
        can_write=sdk.has_permission("records:write"),
        can_manage=can_manage,
        manage_url=manage_url,
    )
