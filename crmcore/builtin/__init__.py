"""The core's own plugin: its tables, sign-in pages, dashboard and the shared entities'
API, declared through the same hooks as any other plugin (always on; every
implementation is ``trylast`` so an installed plugin can come before it)."""

from marshmallow import Schema, fields, validate

from crmcore import __version__
from crmcore.contrib import Plugin


class CoreSettings(Schema):
    """``[settings.core]`` in a tenant file."""

    #: Agents see only the records they own or that nobody owns.
    agents_see_own_only = fields.Boolean(load_default=False)
    #: Region for phone numbers typed without a country code (ISO 3166 code, e.g. "DE").
    default_phone_region = fields.String(load_default=None, allow_none=True, validate=validate.Regexp(r"^[A-Z]{2}$"))
    #: Lead sources beyond the built-in ones (chat, form, manual, referral, email, sms, import, api).
    extra_lead_sources = fields.List(fields.String(validate=validate.Regexp(r"^[a-z][a-z0-9_]{0,29}$")), load_default=list)
    #: Currency of new deals (ISO 4217).
    default_currency = fields.String(load_default="EUR", validate=validate.Regexp(r"^[A-Z]{3}$"))


plugin = Plugin(name="core", version=__version__, summary="Tenants, users, sign-in, dashboard, CRM entities.", hooks="crmcore.builtin.hooks", settings=CoreSettings)
