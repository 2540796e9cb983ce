"""The OpenAPI 3 document of the widget API (``/api/v1/chat/public/...``).

The widget's routes are public Flask routes (a widget key and a visitor token, no CRM
sign-in), so they are not in the tenant's API document; this one describes them for
anyone building their own widget, and the test suite fuzzes every operation in it with
schemathesis (tests/api/test_fuzz.py), answers checked against the schemas below.
Served at ``/chat/openapi.json``.
"""

from __future__ import annotations

from typing import Any

_ERROR = {
    "type": "object",
    "required": ["code", "message"],
    "properties": {
        "code": {"type": "integer"},
        "status": {"type": "string"},
        "message": {"type": "string"},
        "errors": {"type": "object", "properties": {"json": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}}}},
    },
}
_ATTACHMENT = {
    "type": ["object", "null"],
    "required": ["id", "name", "content_type", "size"],
    "properties": {"id": {"type": "integer"}, "name": {"type": "string"}, "content_type": {"type": "string"}, "size": {"type": "integer"}},
}
_MESSAGE = {
    "type": "object",
    "required": ["id", "conversation_id", "sender", "content", "created_at"],
    "properties": {
        "id": {"type": "integer"},
        "conversation_id": {"type": "integer"},
        "sender": {"type": "string", "enum": ["visitor", "agent", "assistant", "system"]},
        "author_name": {"type": ["string", "null"]},
        "content": {"type": "string"},
        "client_id": {"type": ["string", "null"]},
        "created_at": {"type": "string", "format": "date-time"},
        "read_at": {"type": ["string", "null"], "format": "date-time"},
        "attachment": {"$ref": "#/components/schemas/Attachment"},
    },
}
_SESSION = {
    "type": "object",
    "required": ["conversation", "messages"],
    "properties": {
        "token": {"type": "string", "description": "The visitor token: present when a session starts; keep it to resume."},
        "conversation": {
            "type": "object",
            "required": ["id", "status"],
            "properties": {"id": {"type": "integer"}, "status": {"type": "string"}, "visitor_name": {"type": ["string", "null"]}},
        },
        "messages": {"type": "array", "items": {"$ref": "#/components/schemas/Message"}},
    },
}
_CONFIG = {
    "type": "object",
    "required": ["title", "colour", "online", "max_message_length", "prechat", "attachments"],
    "properties": {
        "title": {"type": "string"}, "colour": {"type": "string"}, "position": {"type": "string"},
        "greeting": {"type": "string"}, "avatar_url": {"type": "string"}, "offline_message": {"type": "string"},
        "custom_css": {"type": "string"}, "online": {"type": "boolean"}, "max_message_length": {"type": "integer"},
        "prechat": {"type": "object", "properties": {"fields": {"type": "array", "items": {"type": "string"}}, "required": {"type": "array", "items": {"type": "string"}}}},
        "attachments": {"type": "object", "properties": {"enabled": {"type": "boolean"}, "max_mb": {"type": "number"}, "types": {"type": "array", "items": {"type": "string"}}}},
    },
}


def _json(ref: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


def _answers(ok: dict[str, Any], *errors: int) -> dict[str, Any]:
    described = {401: "Unknown or missing widget key or visitor token.", 403: "The Origin is not among the tenant's allowed_origins.", 404: "Not found.", 413: "Too large.", 422: "Invalid input, with a message per field.", 429: "Too many requests; see Retry-After."}
    answers = dict(ok)
    for code in (401, 403, 429, *errors):
        answers[str(code)] = {"description": described[code], **_json("Error")}
    return answers


_VISITOR = [{"WidgetKey": [], "VisitorToken": []}]


def widget_api_document() -> dict[str, Any]:
    """The document; the same for every tenant (the key decides which tenant's chat)."""
    message_in = {
        "type": "object", "required": ["content"], "additionalProperties": True,
        "properties": {"content": {"type": "string", "description": "1 to max_message_length characters."}, "client_id": {"type": ["string", "null"], "minLength": 1, "maxLength": 64}},
    }
    session_in = {
        "type": "object", "additionalProperties": True,
        "properties": {"name": {"type": "string", "maxLength": 200}, "email": {"type": "string", "maxLength": 254}, "phone": {"type": "string", "maxLength": 40}, "page_url": {"type": "string", "maxLength": 500}},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "CRM chat widget API", "version": "1", "description": __doc__.split("\n\n")[1]},
        "paths": {
            "/api/v1/chat/public/config": {"get": {
                "operationId": "widgetConfig", "summary": "The widget's look and behaviour, and whether agents are online.",
                "security": [{"WidgetKey": []}], "responses": _answers({"200": {"description": "The configuration.", **_json("WidgetConfig")}}),
            }},
            "/api/v1/chat/public/session": {"post": {
                "operationId": "startSession", "summary": "Resume the visitor's conversation (a valid token) or start one (the pre-chat form).",
                "security": [{"WidgetKey": []}, {"WidgetKey": [], "VisitorToken": []}],
                "requestBody": {"required": False, "content": {"application/json": {"schema": session_in}}},
                "responses": _answers({"200": {"description": "Resumed.", **_json("Session")}, "201": {"description": "Started; carries the token.", **_json("Session")}}, 422),
            }},
            "/api/v1/chat/public/messages": {
                "post": {
                    "operationId": "sendMessage", "summary": "Send a message; a resend with the same client_id returns the stored one (200).",
                    "security": _VISITOR, "requestBody": {"required": True, "content": {"application/json": {"schema": message_in}}},
                    "responses": _answers({"200": {"description": "Already stored (same client_id).", **_json("Message")}, "201": {"description": "Stored.", **_json("Message")}}, 422),
                },
                "get": {
                    "operationId": "listMessages", "summary": "Messages after a message id; wait=<seconds> long-polls (at most 25).",
                    "security": _VISITOR,
                    "parameters": [
                        {"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                        {"name": "wait", "in": "query", "schema": {"type": "number", "minimum": 0, "maximum": 25}},
                    ],
                    "responses": _answers({"200": {"description": "The messages and the conversation's status.", "content": {"application/json": {"schema": {
                        "type": "object", "required": ["messages", "status"],
                        "properties": {"messages": {"type": "array", "items": {"$ref": "#/components/schemas/Message"}}, "status": {"type": "string"}},
                    }}}}}, 422),
                },
            },
            "/api/v1/chat/public/attachments": {"post": {
                "operationId": "sendAttachment", "summary": "Send a file (multipart: file, optional client_id).",
                "security": _VISITOR,
                "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}, "client_id": {"type": "string", "maxLength": 64}}}}}},
                "responses": _answers({"200": {"description": "Already stored (same client_id).", **_json("Message")}, "201": {"description": "Stored.", **_json("Message")}}, 413, 422),
            }},
            "/api/v1/chat/public/attachments/{attachment_id}": {"get": {
                "operationId": "getAttachment", "summary": "A file of the visitor's own conversation.",
                "security": _VISITOR,
                "parameters": [{"name": "attachment_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}],
                "responses": _answers({"200": {"description": "The file.", "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}}}, 404),
            }},
            "/api/v1/chat/public/typing": {"post": {
                "operationId": "typing", "summary": "Tell the agent the visitor is typing.", "security": _VISITOR,
                "responses": _answers({"204": {"description": "Told."}}),
            }},
            "/api/v1/chat/public/read": {"post": {
                "operationId": "markRead", "summary": "Mark the agent's messages read, up to a message id.", "security": _VISITOR,
                "requestBody": {"required": False, "content": {"application/json": {"schema": {"type": "object", "properties": {"up_to": {"type": ["integer", "null"]}}}}}},
                "responses": _answers({"200": {"description": "How many were marked.", "content": {"application/json": {"schema": {"type": "object", "required": ["marked"], "properties": {"marked": {"type": "integer"}}}}}}}, 422),
            }},
        },
        "components": {
            "schemas": {"Error": _ERROR, "Attachment": _ATTACHMENT, "Message": _MESSAGE, "Session": _SESSION, "WidgetConfig": _CONFIG},
            "securitySchemes": {
                "WidgetKey": {"type": "apiKey", "in": "header", "name": "X-Chat-Key", "description": "The tenant's widget key (the snippet carries it)."},
                "VisitorToken": {"type": "apiKey", "in": "header", "name": "X-Chat-Token", "description": "The visitor token the session answer gave."},
            },
        },
    }
