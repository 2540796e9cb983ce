from marshmallow import Schema, fields, validate

from crmcore.sdk import Plugin


class Settings(Schema):
    greeting = fields.String(load_default="Hello", validate=validate.Length(min=1, max=80))


plugin = Plugin(name="greeter", version="0.1.0", summary="Greets every new lead.", settings=Settings)
