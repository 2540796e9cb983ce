"""/api/v1/leads/<id>/convert: turn a lead into a contact, a company and a deal.

The work (one transaction, reuse of existing records, the ``lead_converted`` signal)
is crmcore.entities.convert; this module is its HTTP face.
"""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import abort
from marshmallow import ValidationError, fields, validate

from crmcore.api import common
from crmcore.api.common import require
from crmcore.api.deals import MAX_VALUE, DealSchema
from crmcore.api.deals import dump as dump_deals
from crmcore.api.leads import LeadSchema, lead_or_404
from crmcore.api.leads import dump as dump_leads
from crmcore.api.schema import Blueprint, Schema
from crmcore.entities import convert, service
from crmcore.entities.models import Company, Contact

blp = Blueprint("lead_conversion", __name__, url_prefix="/leads", description="Lead conversion: lead -> contact, company, deal.")


class ConversionDealSchema(Schema):
    title = fields.String(validate=validate.Length(min=1, max=200), metadata={"description": "Default: \"<lead name> deal\"."})
    value = fields.Decimal(places=2, as_string=True, validate=validate.Range(min=0, max=MAX_VALUE), metadata={"description": "Default: the lead's estimated_value."})
    currency = fields.String(validate=validate.Length(equal=3))
    pipeline_id = fields.Integer()
    stage_id = fields.Integer()
    probability = fields.Integer(validate=validate.Range(min=0, max=100))
    expected_close_date = fields.Date(allow_none=True)
    lost_reason = fields.String(allow_none=True, validate=validate.Length(max=300))


class LeadConversionSchema(Schema):
    create_deal = fields.Boolean(load_default=None, metadata={"description": "Also create a deal; default: true when `deal` is given."})
    deal = fields.Nested(ConversionDealSchema, metadata={"description": "The deal's fields; every one optional."})
    contact_id = fields.Integer(allow_none=True, metadata={"description": "Link this contact instead of finding (by email) or creating one."})
    company_id = fields.Integer(allow_none=True, metadata={"description": "Link this company instead of finding (by name) or creating one."})


class ConvertedContactSchema(Schema):
    id = fields.Integer()
    first_name = fields.String()
    last_name = fields.String()
    email = fields.String(allow_none=True)
    company_id = fields.Integer(allow_none=True)


class ConvertedCompanySchema(Schema):
    id = fields.Integer()
    name = fields.String()


class LeadConversionResultSchema(Schema):
    lead = fields.Nested(LeadSchema)
    contact = fields.Nested(ConvertedContactSchema)
    company = fields.Nested(ConvertedCompanySchema, allow_none=True)
    deal = fields.Nested(DealSchema, allow_none=True)
    contact_created = fields.Boolean(metadata={"description": "False: an existing contact was linked."})
    company_created = fields.Boolean(metadata={"description": "False: an existing company was linked (or there is none)."})


@blp.route("/<int:lead_id>/convert")
class LeadConversion(MethodView):
    @blp.arguments(LeadConversionSchema)
    @blp.response(200, LeadConversionResultSchema)
    @blp.alt_response(409, description="The lead was converted already.")
    @blp.alt_response(412, description="If-Match does not match the lead's current ETag.")
    @blp.doc(security=[{"bearerAuth": []}])
    @require("records:write")
    def post(self, data, lead_id):
        """Convert a lead into a contact, a company and optionally a deal (all or nothing)"""
        lead = lead_or_404(lead_id)
        version = common.if_match_version(lead)
        create_deal = data["create_deal"] if data["create_deal"] is not None else "deal" in data
        if "deal" in data and not create_deal:
            abort(422, errors={"json": {"create_deal": ["A deal was given but create_deal is false."]}})
        hidden = {key: [f"No such {key.removesuffix('_id')} in this tenant."] for key, model in (("contact_id", Contact), ("company_id", Company)) if data.get(key) is not None and not common.visible(model.select().where(model.id == data[key]), model).exists()}
        if hidden:  # with agents_see_own_only, an agent links only what they can see
            abort(422, errors={"json": hidden})
        try:
            result = convert.convert_lead(lead, create_deal=create_deal, deal=data.get("deal"), contact_id=data.get("contact_id"), company_id=data.get("company_id"), if_version=version)
        except convert.AlreadyConverted as exc:
            abort(409, message=str(exc))
        except ValidationError as exc:
            abort(422, errors={"json": exc.messages})
        except service.StaleVersion as exc:
            abort(409, message=f"{exc}; reload the lead and try again")
        except service.Conflict as exc:
            common.conflict(exc, "contacts")
        body = {
            "lead": dump_leads([result.lead])[0],
            "contact": result.contact,
            "company": result.company,
            "deal": dump_deals([result.deal])[0] if result.deal is not None else None,
            "contact_created": result.contact_created,
            "company_created": result.company_created,
        }
        return body, 200, common.with_etag(result.lead)
