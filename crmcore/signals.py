"""Signals: facts that happened, announced after the transaction commits.

All signals live in one blinker namespace, so a plugin refers to a signal by name
(``SignalReceiver("entity_created", func)``) without importing the plugin that sends it,
and a plugin announces its own facts with ``crmcore.signals.signal("chat_message_received")``.

Senders call :func:`send` with the tenant as sender and keyword data; inside a
:func:`crmcore.db.atomic` block the signal waits for the commit and is dropped on rollback.
A receiver declared ``in_transaction`` (``SignalReceiver(..., in_transaction=True)``) runs
instead when the signal is sent, inside the transaction of the change: the tasks it
enqueues commit or roll back with the change (the outbox), so a committed change always
has its task, even if the process dies right after the commit.
Receivers are declared through the ``crm_signal_receivers`` hook; the core connects a
wrapper (strongly: blinker's weak references silently drop closures) that skips tenants
without the plugin, makes the sender the current tenant while the receiver runs, and
contains exceptions, so a failing receiver never reaches the sender or the other receivers.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any, Callable

from blinker import Namespace, Signal

from crmcore import db

if TYPE_CHECKING:
    from crmcore.db import Tenant

log = logging.getLogger("crmcore.signals")

namespace = Namespace()


def signal(name: str, doc: str | None = None) -> Signal:
    """The signal called ``name`` (created on first use)."""
    return namespace.signal(name, doc)


# Entity lifecycle, for every model saved through the core's write helpers.
#: ``entity_created(tenant, entity="lead", record=<model>, actor=<user|token|None>)``
entity_created = signal("entity_created", "A tenant-owned record was created.")
#: ``entity_updated(tenant, entity, record, changes={field: (old, new)}, actor)``
entity_updated = signal("entity_updated", "A record changed; `changes` maps field -> (old, new).")
#: ``entity_deleted(tenant, entity, record_id, record, actor)``
entity_deleted = signal("entity_deleted", "A record was deleted.")
#: ``deal_stage_changed(tenant, deal, from_stage_id, to_stage_id, actor)`` (service.move_deal)
deal_stage_changed = signal("deal_stage_changed", "A deal moved to another stage.")
#: ``lead_converted(tenant, lead, contact, company=<Company|None>, deal=<Deal|None>, actor)``
lead_converted = signal("lead_converted", "A lead was converted into a contact (company, deal).")
#: ``tenant_created(tenant)``: a configured tenant got its database row (first use).
tenant_created = signal("tenant_created", "A tenant was used for the first time and got its database row.")
#: ``tenant_config_changed(tenant, plugins=frozenset, previous=frozenset)``
tenant_config_changed = signal(
    "tenant_config_changed", "A tenant's configuration was reloaded with different plugins or settings."
)


def in_transaction_name(name: str) -> str:
    """The signal the ``in_transaction`` receivers of ``name`` are connected to."""
    return f"{name}:in_transaction"


def send(name: str | Signal, tenant: "Tenant", **data: Any) -> None:
    """Send a signal: its ``in_transaction`` receivers at once, inside the current
    transaction; the others after it commits (at once outside one; never on rollback)."""
    sig = signal(name) if isinstance(name, str) else name
    before = namespace.get(in_transaction_name(sig.name)) if sig.name else None
    if before is not None and before.receivers:
        before.send(tenant, **data)
    db.on_commit(lambda: sig.send(tenant, **data))


def connect_receiver(
    plugin_name: str,
    signal_name: str,
    func: Callable[..., Any],
    is_enabled: Callable[["Tenant", str], bool],
    in_transaction: bool = False,
) -> Callable[..., None]:
    """Connect ``func`` for ``plugin_name`` behind the enablement check and containment
    (``in_transaction``: to the signal's in-transaction part, see the module's docstring).
    Returns the receiver; disconnect it from ``receiver.crm_signal``."""

    def receiver(sender: Any, **data: Any) -> None:
        try:
            if sender is not None and not is_enabled(sender, plugin_name):
                return
            # The sender is the current tenant while the receiver runs, so its tenant-scoped
            # queries and new rows belong to the tenant the fact is about.
            with db.tenant_context(sender) if sender is not None else contextlib.nullcontext():
                # In the sender's transaction, within a savepoint: a failing receiver
                # rolls back only its own writes (on PostgreSQL an error would otherwise
                # abort the whole transaction, the change included).
                with db.atomic() if in_transaction else contextlib.nullcontext():
                    func(sender, **data)
        except Exception:
            log.exception("plugin %r: receiver %s of signal %r failed", plugin_name, getattr(func, "__name__", func), signal_name)

    receiver.__name__ = f"{plugin_name}:{getattr(func, '__name__', 'receiver')}"
    receiver.crm_signal = in_transaction_name(signal_name) if in_transaction else signal_name  # type: ignore[attr-defined]
    signal(receiver.crm_signal).connect(receiver, weak=False)  # type: ignore[attr-defined]
    return receiver
