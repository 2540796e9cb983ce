"""The per-address consent record channel plugins share (contrib.opted_out / set_consent)."""

from __future__ import annotations

import crm_plugins.channels.contrib as channels
from tests.plugins.channels.conftest import in_tenant


def test_an_address_opts_out_and_back_in_per_tenant(env):
    with in_tenant(env):
        assert channels.opted_out(["+447911123456"]) == {}
        channels.set_consent("+447911123456", opted_out=True, channel="sms", source="STOP")
        channels.set_consent("+447911123456", opted_out=True, channel="sms", source="Stop please")  # again: one row
        row = channels.opted_out(["+447911123456", "+14155550100"])["+447911123456"]
        assert (row.channel, row.source) == ("sms", "Stop please")
    with in_tenant(env, "beta"):
        assert channels.opted_out(["+447911123456"]) == {}
    with in_tenant(env):
        channels.set_consent("+447911123456", opted_out=False, channel="sms", source="START")
        assert channels.opted_out(["+447911123456"]) == {}
