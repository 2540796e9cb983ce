"""Hook implementations of the scoring plugin."""
