import peewee

from crmcore.sdk import TenantModel, utcnow


class SampleItem(TenantModel):
    name = peewee.CharField(max_length=100)
    # Added by migration 0002: nullable, so rows from before it stay valid.
    colour = peewee.CharField(max_length=20, null=True)
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "sample_item"


class SampleReceipt(TenantModel):
    """What the plugin's receiver, job and tasks did (so tests can see it across processes)."""

    kind = peewee.CharField(max_length=20)
    detail = peewee.CharField(max_length=200, default="")
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "sample_receipt"
