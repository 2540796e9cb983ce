"""Tables of the email plugin: where the IMAP poll stands in each folder."""

from __future__ import annotations

import peewee

from crmcore.sdk import IdField, TenantModel, User, utcnow


class MailboxFolder(TenantModel):
    """One polled IMAP folder: its UIDVALIDITY and the last UID imported (nothing before
    it is fetched again; a new UIDVALIDITY starts the folder over, deduplicated by
    Message-ID), and the run of failures shown to admins."""

    id = IdField()
    folder = peewee.CharField(max_length=200)
    uidvalidity = peewee.BigIntegerField(null=True)
    last_uid = peewee.BigIntegerField(default=0)
    imported = peewee.IntegerField(default=0)
    failures = peewee.IntegerField(default=0)  # consecutive failed polls
    last_error = peewee.TextField(null=True)
    last_ok_at = peewee.DateTimeField(null=True)
    last_failed_at = peewee.DateTimeField(null=True)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "email_mailbox_folder"
        indexes = ((("tenant", "folder"), True),)


class Undeliverable(TenantModel):
    """An address that hard-bounced: not written to again until an admin marks it fixed
    (the row is deleted)."""

    id = IdField()
    address = peewee.CharField(max_length=320)
    reason = peewee.TextField(default="")
    bounced_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "email_undeliverable"
        indexes = ((("tenant", "address"), True),)


class Unsubscribe(TenantModel):
    """An address that asked for no more marketing mail: when and how (``one-click``: the
    RFC 8058 POST of a mail client, ``link``: the page's button)."""

    id = IdField()
    address = peewee.CharField(max_length=320)
    source = peewee.CharField(max_length=20)
    unsubscribed_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "email_unsubscribe"
        indexes = ((("tenant", "address"), True),)


class Signature(TenantModel):
    """A user's email signature, added under the text of each email they write (their
    own, or from a template); none for automated mail (no author)."""

    id = IdField()
    user = peewee.ForeignKeyField(User, on_delete="CASCADE", backref="+")
    text = peewee.TextField(default="")
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "email_signature"
        indexes = ((("tenant", "user"), True),)


MODELS = [MailboxFolder, Undeliverable, Unsubscribe, Signature]
