"""``crm users create`` and ``crm tokens create|revoke`` go through the domain and leave
audit entries whose actor is the command line (``actor_name`` "cli")."""

from __future__ import annotations

from typing import Any

import pytest

from crmcore import db
from crmcore.entities.models import AuditEntry
from crmcore.models import User
from tests.core.test_cli import create_token, invoke, ok


@pytest.fixture
def acme(crm_env: Any) -> Any:
    crm_env.write_tenant("acme", name="Acme Ltd")
    crm_env.create_app()
    return crm_env


def audit_trail(env: Any) -> list[tuple[str, int, str, Any, Any, Any, dict]]:
    with db.database.connection_context(), db.tenant_context(env.tenant("acme")):
        return [(e.entity, e.entity_id, e.action, e.actor_user_id, e.actor_token_id, e.actor_name, e.changes) for e in AuditEntry.select().order_by(AuditEntry.id)]


def test_user_creation_is_audited_as_the_cli(acme: Any) -> None:
    ok(invoke(acme.config_dir, "users", "create", "--tenant", "acme", "--email", "Ada@Acme.test", "--role", "manager", "--name", "Ada", "--password", "pw"))
    with db.database.connection_context(), db.tenant_context(acme.tenant("acme")):
        user = User.get(User.email == "ada@acme.test")
    assert audit_trail(acme) == [("user", user.id, "create", None, None, "cli", {"email": [None, "ada@acme.test"], "name": [None, "Ada"], "role": [None, "manager"]})]
    # A refused command writes nothing.
    assert invoke(acme.config_dir, "users", "create", "--tenant", "acme", "--email", "ada@acme.test", "--password", "x").exit_code != 0
    assert len(audit_trail(acme)) == 1


def test_token_creation_and_revocation_are_audited_as_the_cli(acme: Any) -> None:
    _secret, token_id = create_token(acme.config_dir, "acme")
    ok(invoke(acme.config_dir, "tokens", "revoke", "--tenant", "acme", str(token_id)))
    ok(invoke(acme.config_dir, "tokens", "revoke", "--tenant", "acme", str(token_id)))  # already revoked: no second entry
    trail = audit_trail(acme)
    assert [(entity, entity_id, action, actor) for entity, entity_id, action, _u, _t, actor, _c in trail] == [("api_token", token_id, "create", "cli"), ("api_token", token_id, "update", "cli")]
    assert list(trail[1][6]) == ["revoked_at"]
