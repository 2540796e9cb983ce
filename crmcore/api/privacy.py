"""Privacy requests about a person (GDPR): ``GET /api/v1/{contacts,leads}/<id>/export`` and
``POST /api/v1/{contacts,leads}/<id>/erase``. Admins only (permission ``privacy:manage``).

The work is done by crmcore.entities.privacy, which says what a person's data is. An erase
that a plugin's ``crm_privacy_erase`` fails is refused as a whole: 503 naming the plugin
(see :func:`refused_by_plugin`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask.views import MethodView
from flask_smorest import abort
from marshmallow import fields

from crmcore.api import contacts, leads
from crmcore.api.common import require
from crmcore.api.schema import Blueprint, Schema
from crmcore.entities import privacy
from crmcore.entities.plugin_data import PluginDataError

blp = Blueprint("privacy", __name__, description="Privacy requests: export or erase what is stored about a person.")


class ExportSchema(Schema):
    entity = fields.String(metadata={"description": "contact or lead"})
    exported_at = fields.String()
    contact = fields.Dict(metadata={"description": "The contact (contact exports)."})
    lead = fields.Dict(metadata={"description": "The lead (lead exports)."})
    leads = fields.List(fields.Dict(), metadata={"description": "Leads converted into this contact."})
    activities = fields.List(fields.Dict())
    notes = fields.List(fields.Dict())
    tasks = fields.List(fields.Dict())
    deals = fields.List(fields.Dict())
    tags = fields.List(fields.String())
    audit = fields.List(fields.Dict(), metadata={"description": "The audit trail of these records."})
    plugins = fields.Dict(keys=fields.String(), metadata={"description": "What the tenant's plugins store about the person (chat conversations, scores ...), by section name."})
    errors = fields.Dict(keys=fields.String(), values=fields.String(), metadata={"description": "Plugins whose part could not be exported, with the reason: the export is incomplete when this is not empty."})


class EraseResultSchema(Schema):
    entity = fields.String()
    id = fields.Integer()
    erased = fields.Dict(keys=fields.String(), values=fields.Integer(), metadata={"description": "Rows anonymised, per table."})


def refused_by_plugin(exc: PluginDataError) -> None:
    """A plugin could not erase (or move) its data, so the whole operation was rolled back.
    503, not 500: nothing is wrong with the request, nothing was changed, and the same
    request can be sent again once the plugin works; not 409: no state of the record is
    in the way. The body names the plugin (``plugin``) for the admin to look at."""
    abort(503, message=str(exc), plugin=exc.plugin)


def _routes(entity: str, plural: str, lookup: Callable[[int], Any]) -> None:
    class Export(MethodView):
        @blp.response(200, ExportSchema)
        @blp.doc(security=[{"bearerAuth": []}], summary=f"Export everything stored about a {entity}'s person", description=(
            f"The {entity}, " + ("the leads converted into it, " if entity == "contact" else "")
            + "its activities, notes, tasks, deals, tags and audit trail, and what the tenant's plugins store about them "
            "(under `plugins`; a plugin that failed is named under `errors`), as one JSON document. The export is audited."
        ))
        @require("privacy:manage")
        def get(self, record_id: int) -> Any:
            record = lookup(record_id)
            return privacy.export(record), 200, {"Content-Disposition": f'attachment; filename="{entity}-{record_id}-export.json"'}

    class Erase(MethodView):
        @blp.response(200, EraseResultSchema)
        @blp.alt_response(503, description="A plugin could not erase its data about the person (named in `plugin`); nothing was erased.")
        @blp.doc(security=[{"bearerAuth": []}], summary=f"Erase a {entity}'s personal data", description=(
            f"Anonymises the {entity}" + (" and the leads converted into it" if entity == "contact" else "")
            + ": names become \"Erased\", emails and phones are cleared, the free text of linked activities, notes and "
            "tasks and the values in their audit entries are blanked, and the tenant's plugins erase their own data about "
            "the person (chat transcripts, scores ...). Ids stay, so deals keep their links. Cannot be undone."
        ))
        @require("privacy:manage")
        def post(self, record_id: int) -> Any:
            record = lookup(record_id)
            try:
                return {"entity": entity, "id": record.id, "erased": privacy.erase(record)}
            except PluginDataError as exc:
                refused_by_plugin(exc)

    Export.__name__ = f"{entity.title()}Export"
    Erase.__name__ = f"{entity.title()}Erase"
    blp.route(f"/{plural}/<int:record_id>/export", endpoint=f"{entity}_export", tags=[plural])(Export)
    blp.route(f"/{plural}/<int:record_id>/erase", endpoint=f"{entity}_erase", tags=[plural])(Erase)


_routes("contact", "contacts", contacts.contact_or_404)
_routes("lead", "leads", leads.lead_or_404)
