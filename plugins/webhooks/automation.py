"""The webhooks plugin's automation step, "call a webhook" (``call_webhook``), offered
through the automation plugin's ``crm_automation_actions`` hook.

The step queues one signed delivery (Standard Webhooks, like every event of this plugin)
of the run's record to one endpoint named in the step's params, in the transaction that
records the step done (so it is queued once; the delivery task posts it, with the
endpoint's retries and log). The body's ``type`` is ``automation_step``; ``data`` holds
the rule, run and step and the record (its columns, as the events write records). An
endpoint deleted or disabled since the rule was saved: the step is refused and the run
stops with the reason.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validates

from crm_plugins.automation.contrib import ActionCall, AutomationAction, StopRun
from crm_plugins.webhooks import delivery, events
from crm_plugins.webhooks.models import WebhookEndpoint

EVENT_TYPE = "automation_step"


class CallWebhookParams(Schema):
    endpoint_id = fields.Integer(required=True, metadata={"description": "The webhook endpoint to post to (GET /api/v1/webhooks/endpoints)."})

    @validates("endpoint_id")
    def known_endpoint(self, value: int, **_: Any) -> None:
        if not WebhookEndpoint.select().where(WebhookEndpoint.id == value).exists():
            raise ValidationError("No webhook endpoint with this id in this tenant.")


def call_webhook(call: ActionCall) -> str:
    endpoint = WebhookEndpoint.get_or_none(WebhookEndpoint.id == call.params["endpoint_id"])
    if endpoint is None:
        raise StopRun(f"the webhook endpoint {call.params['endpoint_id']} was deleted")
    if not endpoint.enabled:
        raise StopRun(f"the webhook endpoint {endpoint.id} is disabled ({endpoint.disabled_reason or 'by a user'})")
    data = {"rule_id": call.rule_id, "run_id": call.run_id, "step": call.step, "entity": call.entity, "record": events.record_data(call.record)}
    [message] = delivery.create_messages(EVENT_TYPE, data, [endpoint])
    return f"webhook {message.msg_id} queued to endpoint {endpoint.id}"


def endpoint_choices(tenant: Any) -> dict[str, list[tuple[Any, str]]]:
    """The enabled webhook endpoints, for the rule editor's picker."""
    endpoints = WebhookEndpoint.select(WebhookEndpoint.id, WebhookEndpoint.url, WebhookEndpoint.description).where(
        WebhookEndpoint.enabled == True).order_by(WebhookEndpoint.id).limit(200)  # noqa: E712
    return {"endpoint_id": [(e.id, f"{e.description} ({e.url})" if e.description else e.url) for e in endpoints]}


ACTIONS = [AutomationAction("call_webhook", "Call a webhook", call_webhook, CallWebhookParams,
                            description="A signed POST of the record to one webhook endpoint, with its retries.",
                            choices=endpoint_choices)]
