"""Kanban: live pipeline boards with drag and drop (metadata and settings only; hooks in hooks.py)."""

from marshmallow import Schema, ValidationError, fields, validate, validates

from crmcore.sdk import Plugin

#: What a card can show; ``card_fields`` picks among them.
CARD_FIELDS = ("value", "company", "contact", "owner", "tags", "days_in_stage", "badges", "probability", "expected_close_date")
DEFAULT_CARD_FIELDS = ["value", "company", "contact", "owner", "tags", "days_in_stage", "badges"]


class KanbanSettings(Schema):
    """Per-tenant settings (``[settings.kanban]`` in config/tenants/<slug>.toml)."""

    pipelines = fields.List(
        fields.String(validate=validate.Length(min=1, max=100)),
        load_default=list,
        metadata={"description": "Names of the pipelines that get a board; empty: every pipeline."},
    )
    lead_board = fields.Boolean(load_default=True, metadata={"description": "Show the lead board (columns = lead statuses)."})
    default_pipeline = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(min=1, max=100),
        metadata={"description": "Name of the pipeline the board opens on; the tenant's default pipeline when unset."},
    )
    card_fields = fields.List(
        fields.String(validate=validate.OneOf(CARD_FIELDS)),
        load_default=lambda: list(DEFAULT_CARD_FIELDS),
        metadata={"description": "What a card shows besides its title."},
    )
    wip_limits = fields.Dict(
        keys=fields.String(validate=validate.Length(min=1, max=100)),
        values=fields.Integer(validate=validate.Range(min=1, max=100000)),
        load_default=dict,
        metadata={"description": "Stage name -> most cards wanted in that column (a soft warning, never a refusal)."},
    )
    wip_limit = fields.Integer(
        load_default=None,
        allow_none=True,
        validate=validate.Range(min=1, max=100000),
        metadata={"description": "WIP limit for every open column that wip_limits does not name (a soft warning)."},
    )
    page_size = fields.Integer(load_default=20, validate=validate.Range(min=5, max=100), metadata={"description": "Cards loaded per column and per 'load more'."})

    @validates("card_fields")
    def _unique_fields(self, value: list[str], **_: object) -> None:
        if len(value) != len(set(value)):
            raise ValidationError("Name each card field once.")


plugin = Plugin(
    name="kanban",
    version="0.1.0",
    summary="Live pipeline boards with drag and drop.",
    settings=KanbanSettings,
    hookspecs="crm_plugins.kanban.hookspecs",
)
