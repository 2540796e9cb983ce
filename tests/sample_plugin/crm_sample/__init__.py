"""A sample third-party plugin: a model with migrations, an API route, a web page with a
navigation item, a signal receiver, a scheduled job, task handlers and a setting."""

from marshmallow import Schema, fields, validate

from crmcore.sdk import Plugin


class SampleSettings(Schema):
    greeting = fields.String(load_default="Hello", validate=validate.Length(min=1, max=100))
    max_items = fields.Integer(load_default=100, validate=validate.Range(min=1))


plugin = Plugin(
    name="sample",
    version="1.2.0",
    summary="Sample third-party plugin (tests).",
    settings=SampleSettings,
)
