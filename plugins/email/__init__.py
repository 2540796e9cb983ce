"""Email: a channel (plugins/channels) that sends through the tenant's SMTP server and
reads the tenant's mailbox over IMAP.

Metadata and the per-tenant settings schema only; the behaviour is in ``hooks.py``.
Every key below is documented in README.md.
"""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates

from crmcore.sdk import Plugin

Port = fields.Integer(validate=validate.Range(min=1, max=65535))


class EmailSettings(Schema):
    """``[settings.email]`` of a tenant file; passwords as ``{ "$env" = "NAME" }``."""

    from_address = fields.Email(load_default=None, allow_none=True)
    from_name = fields.String(load_default="", validate=validate.Length(max=100))
    smtp_host = fields.String(load_default="", validate=validate.Length(max=255))
    smtp_port = fields.Integer(load_default=587, validate=validate.Range(min=1, max=65535))
    smtp_security = fields.String(load_default="starttls", validate=validate.OneOf(["starttls", "ssl", "none"]))
    smtp_user = fields.String(load_default="", validate=validate.Length(max=255))
    smtp_password = fields.String(load_default="", validate=validate.Length(max=1000))
    timeout_seconds = fields.Float(load_default=30.0, validate=validate.Range(min=0.1, max=120))
    imap_host = fields.String(load_default="", validate=validate.Length(max=255))
    imap_port = fields.Integer(load_default=993, validate=validate.Range(min=1, max=65535))
    imap_security = fields.String(load_default="ssl", validate=validate.OneOf(["ssl", "starttls", "none"]))
    imap_user = fields.String(load_default="", validate=validate.Length(max=255))
    imap_password = fields.String(load_default="", validate=validate.Length(max=1000))
    imap_folders = fields.List(fields.String(validate=validate.Length(min=1, max=200)), load_default=lambda: ["INBOX"], validate=validate.Length(min=1, max=20))
    #: what an email from an address no contact or lead has becomes: a new lead, or nothing
    unknown_sender = fields.String(load_default="lead", validate=validate.OneOf(["lead", "ignore"]))
    #: consecutive failed polls before the admin page shows an alert
    alert_after_failures = fields.Integer(load_default=3, validate=validate.Range(min=1, max=1000))
    #: messages fetched per folder per poll (the rest on the next poll)
    fetch_batch = fields.Integer(load_default=200, validate=validate.Range(min=1, max=5000))
    #: Reply-To: from_address plus-addressed with the message's token, for threading replies
    #: that lost their In-Reply-To (the mail server must deliver local+anything@ to local@)
    reply_tokens = fields.Boolean(load_default=False)
    #: "smtp", or an HTTP provider registered through crm_email_providers ("mailgun")
    transport = fields.String(load_default="smtp", validate=validate.Regexp(r"^[a-z][a-z0-9_]{0,29}$"))
    #: the provider's API: base URL, key (as { "$env" = "NAME" }) and sending domain
    api_url = fields.Url(load_default="https://api.mailgun.net", require_tld=False, schemes={"http", "https"})
    api_key = fields.String(load_default="", validate=validate.Length(max=1000))
    api_domain = fields.String(load_default="", validate=validate.Length(max=255))
    #: the key the provider signs its webhooks (inbound mail, delivery events) with
    webhook_signing_key = fields.String(load_default="", validate=validate.Length(max=1000))

    @validates("from_name")
    def _one_line(self, value: str, **kwargs) -> None:
        if "\r" in value or "\n" in value:
            raise ValidationError("must be one line (no CR or LF)")


plugin = Plugin(
    name="email",
    version="0.1.0",
    summary="Email on the channels inbox: send over SMTP from record pages, read the mailbox over IMAP.",
    requires=("channels",),
    settings=EmailSettings,
    hookspecs="crm_plugins.email.hookspecs",
)
