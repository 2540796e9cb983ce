"""The admin pages under /app/webhooks: endpoints (add, change, rotate, delete, test)
and the delivery log (filters, attempts, replay)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from marshmallow import ValidationError

from crm_plugins.webhooks import delivery, events, service
from crm_plugins.webhooks.models import (
    MESSAGE_STATUSES,
    WebhookAttempt,
    WebhookEndpoint,
    WebhookMessage,
)
from crmcore import sdk
from crmcore.sdk import utcnow

bp = Blueprint("webhooks", __name__, url_prefix="/app/webhooks", template_folder="templates")
PAGE_SIZE = 50


@bp.before_request
def _admins_only() -> None:
    if sdk.current_user() is None or not sdk.has_permission("webhooks:manage"):
        abort(403, "Only admins can manage webhooks.")


def _event_types() -> list[tuple[str, str]]:
    return [(e.type, e.description) for e in events.catalogue(sdk.current_tenant()).values()]


def _endpoint_or_404(endpoint_id: int) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.get_or_none(WebhookEndpoint.id == endpoint_id)
    if endpoint is None:
        abort(404)
    return endpoint


def _form_input(partial: bool = False) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The endpoint form through the API's schema and rules: (data, field errors)."""
    raw = {
        "url": request.form.get("url", ""),
        "description": request.form.get("description", ""),
        "event_types": request.form.getlist("event_types"),
        "enabled": "enabled" in request.form,
    }
    try:
        data = service.EndpointInput().load(raw)
        service.check(data, sdk.current_tenant())
    except ValidationError as exc:
        return raw, sdk.flatten_errors(exc.messages)
    return data, {}


def _index(values: dict[str, Any] | None = None, errors: dict[str, list[str]] | None = None, status: int = 200) -> Any:
    endpoints = list(WebhookEndpoint.select().order_by(WebhookEndpoint.id))
    return render_template(
        "webhooks/index.html", endpoints=endpoints, disabled=[e for e in endpoints if e.disabled_reason and not e.enabled],
        event_types=_event_types(), values=values or {"enabled": True, "event_types": []}, errors=errors or {},
    ), status


@bp.route("/")
def index() -> Any:
    """Endpoints, a banner for any the plugin disabled, and the form to add one."""
    return _index()


@bp.route("/endpoints", methods=["POST"])
def create() -> Any:
    data, errors = _form_input()
    if errors:
        return _index(data, errors, 422)
    try:
        endpoint, secret = service.create(data)
    except service.LimitReached as exc:
        return _index(data, {"_form": [str(exc)]}, 409)
    return render_template("webhooks/secret.html", endpoint=endpoint, secret=secret, created=True)


@bp.route("/endpoints/<int:endpoint_id>", methods=["GET", "POST"])
def edit(endpoint_id: int) -> Any:
    endpoint = _endpoint_or_404(endpoint_id)
    if request.method == "GET":
        values = {"url": endpoint.url, "description": endpoint.description, "event_types": endpoint.event_types, "enabled": endpoint.enabled}
        return render_template("webhooks/edit.html", endpoint=endpoint, values=values, errors={}, event_types=_event_types(), now_utc=utcnow())
    data, errors = _form_input()
    if errors:
        return render_template("webhooks/edit.html", endpoint=endpoint, values=data, errors=errors, event_types=_event_types(), now_utc=utcnow()), 422
    service.update(endpoint, data)
    flash("Endpoint saved.")
    return redirect(url_for(".index"))


@bp.route("/endpoints/<int:endpoint_id>/rotate", methods=["POST"])
def rotate(endpoint_id: int) -> Any:
    endpoint = _endpoint_or_404(endpoint_id)
    secret = service.rotate(endpoint)
    return render_template("webhooks/secret.html", endpoint=WebhookEndpoint.get_by_id(endpoint.id), secret=secret, created=False)


@bp.route("/endpoints/<int:endpoint_id>/delete", methods=["POST"])
def delete(endpoint_id: int) -> Any:
    _endpoint_or_404(endpoint_id).delete_instance()
    flash("Endpoint deleted with its delivery log.")
    return redirect(url_for(".index"))


@bp.route("/endpoints/<int:endpoint_id>/test", methods=["POST"])
def send_test(endpoint_id: int) -> Any:
    endpoint = _endpoint_or_404(endpoint_id)
    if not endpoint.enabled:
        flash("The endpoint is disabled: enable it first.")
        return redirect(url_for(".index"))
    message = delivery.send_test(endpoint)
    flash(f"Test event queued ({message.msg_id}).")
    return redirect(url_for(".log", endpoint_id=endpoint.id))


@bp.route("/log")
def log() -> Any:
    """The delivery log, newest first, with filters."""
    from crm_plugins.webhooks.api import deliveries

    args: dict[str, Any] = {}
    problems: list[str] = []
    if request.args.get("endpoint_id", "").isdigit():
        args["endpoint_id"] = int(request.args["endpoint_id"])
    if request.args.get("event_type"):
        args["event_type"] = request.args["event_type"][:100]
    if request.args.get("status") in MESSAGE_STATUSES:
        args["status"] = request.args["status"]
    elif request.args.get("status"):
        problems.append(f"Unknown status {request.args['status'][:20]!r} ignored.")
    rows, cursor = sdk.keyset_page(deliveries(args), WebhookMessage, "-id", PAGE_SIZE, request.args.get("cursor") or None)
    endpoints = {e.id: e for e in WebhookEndpoint.select()}
    types = sorted({t for t, _ in _event_types()} | {events.TEST_EVENT})
    return render_template(
        "webhooks/log.html", rows=rows, next_cursor=cursor, args=args, endpoints=endpoints,
        endpoint_options=[(e.id, e.url) for e in endpoints.values()], type_options=[(t, t) for t in types],
        status_options=[(s, s) for s in MESSAGE_STATUSES], problems=problems, since_default=(utcnow() - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"),
    )


@bp.route("/log/<int:message_id>")
def log_detail(message_id: int) -> Any:
    message = WebhookMessage.get_or_none(WebhookMessage.id == message_id)
    if message is None:
        abort(404)
    attempts = list(WebhookAttempt.select().where(WebhookAttempt.message == message.id).order_by(WebhookAttempt.number))
    return render_template("webhooks/delivery.html", message=message, attempts=attempts, endpoint=WebhookEndpoint.get_by_id(message.endpoint_id))


@bp.route("/log/<int:message_id>/replay", methods=["POST"])
def replay(message_id: int) -> Any:
    message = WebhookMessage.get_or_none(WebhookMessage.id == message_id)
    if message is None:
        abort(404)
    if not WebhookEndpoint.get_by_id(message.endpoint_id).enabled:
        flash("The endpoint is disabled: enable it first.")
    elif delivery.replay(message):
        flash(f"Delivery {message.msg_id} queued again.")
    else:
        flash("That delivery is still pending.")
    return redirect(url_for(".log_detail", message_id=message.id))


@bp.route("/log/replay-failed", methods=["POST"])
def replay_failed() -> Any:
    try:
        since = dt.datetime.fromisoformat(request.form.get("since", ""))
    except ValueError:
        flash("Give the time to replay from (YYYY-MM-DD HH:MM, UTC).")
        return redirect(url_for(".log")), 303
    endpoint_id = request.form.get("endpoint_id", "")
    n = delivery.replay_failed(since.replace(tzinfo=None), int(endpoint_id) if endpoint_id.isdigit() else None)
    flash(f"{n} failed deliver{'y' if n == 1 else 'ies'} queued again.")
    return redirect(url_for(".log", status="pending"))
