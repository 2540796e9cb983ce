"""Chat: website chat widget, agent inbox, lead capture and an offline assistant (metadata only)."""

from crmcore import Plugin

plugin = Plugin(name="chat", version="0.1.0", summary="Website chat widget, agent inbox, lead capture, assistant.")
