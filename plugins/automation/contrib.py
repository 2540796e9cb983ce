"""The contract of the automation plugin's hooks: what another plugin returns from
``crm_automation_triggers`` and ``crm_automation_actions`` (import them as
``from crm_plugins.automation.contrib import AutomationTrigger, AutomationAction``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TriggerEvent:
    """One occurrence of a trigger: the record it is about and the facts rules may test
    (``event.<fact>`` in conditions; ``changes`` maps field -> [old, new])."""

    entity: str
    record_id: int
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AutomationTrigger:
    """A fact rules can start on.

    ``name`` is what a rule's ``trigger.type`` says (``record_updated``); ``signal`` the
    signal announcing it; ``event(**signal_data)`` turns one sending into a
    :class:`TriggerEvent` (None: not an occurrence of this trigger). ``entities`` lists
    the record kinds it can be about. ``options`` names the trigger's options and what
    each means (``{"field": "the field that changed"}``); ``matches(options, event)``
    says whether a rule's options accept an occurrence (None: every occurrence).
    """

    name: str
    signal: str
    label: str
    entities: tuple[str, ...]
    event: Callable[..., TriggerEvent | None]
    options: dict[str, str] = field(default_factory=dict)
    matches: Callable[[dict[str, Any], TriggerEvent], bool] | None = None


@dataclass(frozen=True)
class ActionCall:
    """What an action's ``run`` gets: the tenant, the record the run is about (a model
    instance), the step's validated params, and where it is (for idempotent side effects
    elsewhere: ``f"automation:{run_id}:{step}"`` is unique per step)."""

    tenant: Any
    entity: str
    record: Any
    params: dict[str, Any]
    rule_id: int
    run_id: int
    step: int


@dataclass(frozen=True)
class AutomationAction:
    """A step rules can take.

    ``params`` is a marshmallow Schema class validating the step's params when a rule is
    saved (its errors are reported as ``steps[i].params.<name>``); ``run(call)`` does it,
    inside the transaction that records the step as done (so a step that raises leaves
    nothing behind and is retried), and returns a short text for the run log.
    ``entities``: record kinds it applies to (empty: all). Slow or fallible work (mail,
    HTTP) is not done in ``run``: enqueue a task with the idempotency key above.
    """

    name: str
    label: str
    run: Callable[[ActionCall], str | None]
    params: type | None = None
    entities: tuple[str, ...] = ()
    description: str = ""
    #: ``choices(tenant) -> {param: [(value, label), ...]}``: the values the editor offers
    #: as a list for params that name something of the tenant's (an email template, a
    #: webhook endpoint), so nobody types an id. Called when the editor opens.
    choices: Callable[[Any], dict[str, list[tuple[Any, str]]]] | None = None


class StopRun(Exception):
    """Raised by an action's ``run`` when the step must not be done and never will be (a
    record without an email address, an address that unsubscribed, an endpoint gone):
    the step's writes roll back, the run ends ``stopped`` (``guard = "refused"``) with
    ``str(exc)`` as its reason in the run log, and it is not retried."""
