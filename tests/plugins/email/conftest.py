import shutil
import tempfile
import uuid
from pathlib import Path

import pytest
from imap_tools import MailBoxUnencrypted

from tests.plugins.channels.conftest import Api, admin, env, smtp  # noqa: F401  (fixtures)
from tests.plugins.email.imap_server import PASSWORD, USER, Dovecot


@pytest.fixture(scope="session")
def dovecot():
    """One dovecot for the whole test session (each test uses its own folder)."""
    root = Path(tempfile.mkdtemp(prefix="crm-dovecot-"))
    server = Dovecot(root)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


class Mailbox:
    """The test's own folder on the dovecot server, to put customers' mail in."""

    def __init__(self, server: Dovecot):
        self.server = server
        self.folder = f"T{uuid.uuid4().hex[:10]}"
        with self.box() as box:
            box.folder.create(self.folder)

    def box(self):
        return MailBoxUnencrypted("127.0.0.1", self.server.port).login(USER, PASSWORD)

    def deliver(self, raw: str) -> None:
        with self.box() as box:
            box.append(raw.replace("\n", "\r\n").encode(), self.folder)

    def settings(self, **extra):
        return {"imap_host": "127.0.0.1", "imap_port": self.server.port, "imap_security": "none", "imap_user": USER,
                "imap_password": PASSWORD, "imap_folders": [self.folder], **extra}


@pytest.fixture
def mailbox(dovecot):
    return Mailbox(dovecot)
