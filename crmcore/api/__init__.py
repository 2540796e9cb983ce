"""The REST API of the shared entities (flask-smorest blueprints under /api/v1)."""
