"""Input the database cannot store is refused at the door, for every route alike.

Schemas validate what a field means; some values no schema thinks of cannot even reach
the database: a NUL character (PostgreSQL text refuses it), a lone surrogate (not
encodable as UTF-8), an integer beyond 64 bits (SQLite raises OverflowError, PostgreSQL
an out-of-range error), JSON nested a thousand deep (Python's recursion limit). Each was a
500 under fuzzing (issue 21). They are refused here with a 422 naming where the value was,
before any view runs, for the core's routes and every plugin's (public ones included).

Ids in paths are bounded by the ``int`` URL converter (:class:`BoundedIntConverter`): an
id past 2^63 names no record, so its route answers 404 like any unknown id. A database
error that still comes from a value a client sent (a column narrower than 64 bits) is a
422 too (:func:`install`), never a 500.
"""

from __future__ import annotations

import json
from typing import Any

import peewee
from flask import Flask, current_app, jsonify, request
from werkzeug.routing import IntegerConverter

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: Deeper JSON than this is no CRM record (the deepest the API takes is a few levels).
MAX_DEPTH = 32
#: The largest request body (bytes) any route takes; werkzeug refuses a larger
#: Content-Length before reading it (413).
MAX_CONTENT_LENGTH = 64 * 1024 * 1024  # chat attachments go up to 50 MB (a tenant setting)


class BoundedIntConverter(IntegerConverter):
    """``<int:...>`` that matches only ids a database can hold (else the route is a 404)."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", INT64_MAX)
        super().__init__(map, *args, **kwargs)


def text_problem(text: str | None) -> str | None:
    """Why ``text`` cannot be stored, or None (also for no text: werkzeug gives a
    malformed multipart part's name as None)."""
    if text is None:
        return None
    if "\x00" in text:
        return "NUL characters are not allowed."
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "Not valid Unicode text (it holds a lone surrogate)."
    return None


def value_problems(value: Any, path: str = "", depth: int = 0) -> dict[str, str]:
    """Every unstorable value in a decoded JSON document, by its path (``a.b.0``)."""
    where = path or "_schema"
    if depth > MAX_DEPTH:
        return {where: f"Nested deeper than {MAX_DEPTH} levels."}
    if isinstance(value, str):
        problem = text_problem(value)
        return {where: problem} if problem else {}
    if isinstance(value, bool):
        return {}
    if isinstance(value, int):
        return {where: "Number out of range (64-bit integers only)."} if not INT64_MIN <= value <= INT64_MAX else {}
    found: dict[str, str] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            key_problem = text_problem(key)
            if key_problem:
                found[f"{path}.{key!r}" if path else repr(key)] = key_problem
                continue
            found.update(value_problems(item, f"{path}.{key}" if path else key, depth + 1))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.update(value_problems(item, f"{path}.{index}" if path else str(index), depth + 1))
    return found


def _refuse(location: str, problems: dict[str, str]) -> Any:
    errors = {location: {key: [message] for key, message in problems.items()}}
    return jsonify({"code": 422, "status": "Unprocessable Entity", "message": "invalid input", "errors": errors}), 422


def check_request() -> Any:
    """A before-request step: a 422 for unstorable query values, form values or JSON."""
    # A view may set its own body cap (``view.crm_max_body``, bytes: 413 past it), read
    # before anything below parses the form (which spools a whole upload to disk).
    body_cap = getattr(current_app.view_functions.get(request.endpoint or ""), "crm_max_body", None)
    if body_cap is not None:
        request.max_content_length = body_cap
    problems = {key: p for key, value in request.args.items(multi=True) if (p := text_problem(key) or text_problem(value))}
    if problems:
        return _refuse("query", problems)
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return None
    if request.mimetype == "application/x-www-form-urlencoded" or request.mimetype == "multipart/form-data":
        problems = {key: p for key, value in request.form.items(multi=True) if (p := text_problem(key) or text_problem(value))}
        return _refuse("form", problems) if problems else None
    if request.is_json and request.content_length:
        try:
            body = json.loads(request.get_data(cache=True), parse_int=int)
        except RecursionError:
            return _refuse("json", {"_schema": f"Nested deeper than {MAX_DEPTH} levels."})
        except ValueError:
            return None  # malformed JSON: the route's own parsing answers it (400/422)
        problems = value_problems(body)
        if problems:
            return _refuse("json", problems)
    return None


def install(app: Flask) -> None:
    """Bound ``<int:>`` ids, cap request bodies, check every request, and answer a value
    that the database still refuses with a 422."""
    app.url_map.converters["int"] = BoundedIntConverter
    if app.config.get("MAX_CONTENT_LENGTH") is None:  # Flask's default is None: no limit
        app.config["MAX_CONTENT_LENGTH"] = MAX_CONTENT_LENGTH
    app.before_request(check_request)

    @app.errorhandler(OverflowError)
    @app.errorhandler(peewee.DataError)
    def _unstorable(exc: Exception) -> Any:
        app.logger.info("refused a value the database cannot store: %s", exc)
        return jsonify({"code": 422, "status": "Unprocessable Entity", "message": "a value is out of the range the database can store", "errors": {"json": {"_schema": ["A value is out of range."]}}}), 422
