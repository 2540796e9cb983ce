"""Kanban: live pipeline boards with drag and drop (metadata only; hooks in hooks.py)."""

from crmcore import Plugin

plugin = Plugin(name="kanban", version="0.1.0", summary="Live pipeline boards with drag and drop.")
