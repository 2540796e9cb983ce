"""Hook implementations of the chat plugin."""
