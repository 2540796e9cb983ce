"""POST /api/v1/{leads,contacts,companies}/<id>/merge: absorb a duplicate into this record.

The work is done by crmcore.entities.merge (one transaction, audited as "merge" on the
kept record, ``<entity>_merged`` after commit); this module adds the HTTP surface.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask.views import MethodView
from flask_smorest import abort
from marshmallow import fields

from crmcore.api import common, companies, contacts, leads
from crmcore.api.common import require
from crmcore.api.privacy import refused_by_plugin
from crmcore.api.schema import Blueprint, Schema
from crmcore.entities import service
from crmcore.entities.merge import merge
from crmcore.entities.plugin_data import PluginDataError

blp = Blueprint("merge", __name__, description="Merging duplicate leads, contacts and companies.")


class MergeSchema(Schema):
    other_id = fields.Integer(required=True, metadata={"description": "The duplicate to merge into this record; it is deleted."})


def _route(entity: str, plural: str, schema: type, lookup: Callable[[int], Any], dump: Callable[[list], list]) -> None:
    class Merge(MethodView):
        @blp.arguments(MergeSchema)
        @blp.response(200, schema)
        @blp.alt_response(404, description=f"This {entity} or the other one does not exist (or is not visible to you).")
        @blp.alt_response(412, description="If-Match does not match this record's ETag.")
        @blp.alt_response(503, description="A plugin could not move its links (named in `plugin`); nothing was merged.")
        @blp.doc(security=[{"bearerAuth": []}], summary=f"Merge another {entity} into this one", description=(
            f"Moves the other {entity}'s activities, notes, tasks, deals, tags (and the records that point at it) "
            f"to this {entity}, fills this {entity}'s empty fields from it, then deletes it. One transaction."
        ))
        @require("records:merge")
        def post(self, data: dict[str, Any], record_id: int) -> Any:
            if data["other_id"] == record_id:
                abort(422, errors={"json": {"other_id": [f"Cannot merge a {entity} into itself."]}})
            kept = lookup(record_id)
            other = lookup(data["other_id"])
            version = common.if_match_version(kept)
            try:
                merge(kept, other, if_version=version)
            except service.StaleVersion as exc:
                common.stale(exc)
            except service.Conflict as exc:
                common.conflict(exc, plural)
            except PluginDataError as exc:
                refused_by_plugin(exc)
            return dump([kept])[0], 200, common.with_etag(kept)

    Merge.__name__ = f"{entity.title()}Merge"
    blp.route(f"/{plural}/<int:record_id>/merge", endpoint=f"{entity}_merge", tags=[plural])(Merge)


_route("lead", "leads", leads.LeadSchema, leads.lead_or_404, leads.dump)
_route("contact", "contacts", contacts.ContactSchema, contacts.contact_or_404, contacts.dump)
_route("company", "companies", companies.CompanySchema, companies.company_or_404, companies.dump)
