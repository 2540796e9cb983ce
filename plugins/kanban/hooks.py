"""Hook implementations of the kanban plugin."""
