"""The domain layer (crmcore.entities) on its own: no Flask in it, and each rule that
moved there from the API, the web pages and the CLI, called directly with a Context
(no request, no app context, no HTTP)."""

from __future__ import annotations

import ast
import contextlib
from pathlib import Path
from typing import Any, Iterator

import pytest
from marshmallow import ValidationError

import crmcore.entities
from crmcore import db
from crmcore.entities import checks, deals, links, service, users, visibility
from crmcore.entities.context import SYSTEM, Context, acting, current
from crmcore.entities.errors import Conflict, DomainError, Invalid, StaleVersion
from crmcore.entities.models import AuditEntry, Company, Contact, Lead
from crmcore.models import ApiToken, User

#: Modules the domain must not import: Flask itself, and the core's modules built on it.
FORBIDDEN = ("flask", "werkzeug", "flask_smorest", "flask_sock", "crmcore.app", "crmcore.api", "crmcore.web", "crmcore.auth", "crmcore.live", "crmcore.realtime_ws")


def imported_modules(path: Path) -> set[str]:
    """Every module an ``import`` statement in the file names, at any depth (functions too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_domain_imports_no_flask() -> None:
    package = Path(crmcore.entities.__file__).parent
    modules = sorted(package.glob("*.py"))
    assert len(modules) >= 10
    offending = {
        f"{path.name}: {name}"
        for path in modules
        for name in imported_modules(path)
        if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN)
    }
    assert not offending, offending


# --------------------------------------------------------------------------- set-up


@pytest.fixture
def env(crm_env: Any) -> Any:
    crm_env.write_tenant("acme", name="Acme Ltd", settings={"core": {"agents_see_own_only": True, "extra_lead_sources": ["fair"], "default_currency": "CHF"}})
    crm_env.write_tenant("beta", name="Beta")
    crm_env.create_app()
    return crm_env


@pytest.fixture
def tenant(env: Any) -> Iterator[Any]:
    """Acme as the current tenant, with a database connection and no app context."""
    acme = env.tenant("acme")
    with db.database.connection_context(), db.tenant_context(acme):
        yield acme


@pytest.fixture
def people(tenant: Any) -> dict[str, User]:
    return {role: User.create(email=f"{role}@acme.test", name=role.title(), password_hash="x", role=role) for role in ("admin", "manager", "agent")}


def ctx_for(env: Any, tenant: Any, user: User | None = None, **extra: Any) -> Context:
    return Context(tenant=tenant, user=user, role=user.role if user is not None else None, settings=env.crm.settings, **extra)


@contextlib.contextmanager
def no_flask() -> Iterator[None]:
    import flask

    assert not flask.has_app_context()
    yield


# --------------------------------------------------------------------------- context and errors


def test_the_current_context_is_system_outside_adapters(tenant: Any) -> None:
    assert current() is SYSTEM and service.actor() == (None, None)
    assert SYSTEM.setting("default_currency", "EUR") == "EUR"


def test_errors_are_domain_errors_and_keep_their_old_homes() -> None:
    assert service.Conflict is Conflict and service.StaleVersion is StaleVersion
    invalid = Invalid({"name": ["Missing."]})
    assert isinstance(invalid, DomainError) and isinstance(invalid, ValidationError)
    assert invalid.messages == invalid.errors == {"name": ["Missing."]}


def test_audit_records_the_context_actor(env: Any, tenant: Any, people: dict[str, User]) -> None:
    with no_flask(), acting(ctx_for(env, tenant, people["manager"])):
        lead = service.create(Lead, {"name": "Ada"})
        assert service.actor() == (people["manager"], None)
    with acting(Context(tenant=tenant, actor="importer")):
        service.update(lead, {"name": "Ada L."})
    entries = list(AuditEntry.select().where(AuditEntry.entity_id == lead.id).order_by(AuditEntry.id))
    assert [(e.action, e.actor_user_id, e.actor_name) for e in entries] == [("create", people["manager"].id, None), ("update", None, "importer")]


# --------------------------------------------------------------------------- visibility


def test_agents_see_their_own_records_and_unowned_ones(env: Any, tenant: Any, people: dict[str, User]) -> None:
    agent, manager = people["agent"], people["manager"]
    mine = service.create(Lead, {"name": "Mine", "owner": agent.id})
    service.create(Lead, {"name": "Theirs", "owner": manager.id})
    nobodys = service.create(Lead, {"name": "Nobody's"})
    as_agent = ctx_for(env, tenant, agent)
    assert visibility.restricted(as_agent)
    assert {r.name for r in visibility.visible(Lead.select(), Lead, as_agent)} == {mine.name, nobodys.name}
    assert visibility.visible(Lead.select(), Lead, ctx_for(env, tenant, manager)).count() == 3
    # Without the tenant setting an agent sees everything.
    beta_ctx = ctx_for(env, env.tenant("beta"), agent)
    assert not visibility.restricted(beta_ctx)


def test_linked_records_follow_their_links(env: Any, tenant: Any, people: dict[str, User]) -> None:
    agent, manager = people["agent"], people["manager"]
    hidden = service.create(Lead, {"name": "Theirs", "owner": manager.id})
    own = service.create(Lead, {"name": "Mine", "owner": agent.id})
    from crmcore.entities.models import Note

    service.create(Note, {"body": "on theirs", "lead": hidden.id})
    service.create(Note, {"body": "on mine", "lead": own.id})
    seen = visibility.visible_linked(Note.select(), Note, ctx_for(env, tenant, agent))
    assert [n.body for n in seen] == ["on mine"]
    # ... and an agent cannot link a new note to a lead they cannot see.
    with pytest.raises(Invalid) as info:
        links.note_input({"body": "x", "lead_id": hidden.id}, ctx=ctx_for(env, tenant, agent))
    assert info.value.errors == {"lead_id": ["No such lead in this tenant."]}


# --------------------------------------------------------------------------- record rules (the API's check_refs)


def test_lead_rules(env: Any, tenant: Any, people: dict[str, User]) -> None:
    ctx = ctx_for(env, tenant, people["manager"])
    with pytest.raises(Invalid) as info:
        checks.lead_input({"name": "A", "owner_id": 99999, "source": "pigeon"}, ctx=ctx)
    assert set(info.value.errors) == {"owner_id", "source"}
    data = {"name": "A", "owner_id": people["agent"].id, "source": "fair"}  # a tenant's extra source
    checks.lead_input(data, ctx=ctx)
    assert data["owner"] == people["agent"].id and "owner_id" not in data


def test_contact_rules(env: Any, tenant: Any, people: dict[str, User]) -> None:
    ctx = ctx_for(env, tenant, people["agent"])
    theirs = service.create(Company, {"name": "Theirs", "owner": people["manager"].id})
    with pytest.raises(Invalid) as info:
        checks.contact_input({"company_id": theirs.id}, ctx=ctx)
    assert info.value.errors == {"company_id": ["No such company."], "last_name": ["A contact needs a first name, a last name or an email."]}
    first = service.create(Contact, {"last_name": "One", "email": "one@x.test"})
    with pytest.raises(Conflict) as conflict:
        checks.contact_duplicate_emails({"emails": ["one@x.test"]}, ctx=ctx)
    assert conflict.value.existing.id == first.id and conflict.value.field == "email"


def test_company_rules(env: Any, tenant: Any) -> None:
    with pytest.raises(Invalid) as info:
        checks.company_input({"name": "X", "owner_id": 424242})
    assert info.value.errors == {"owner_id": ["No such user in this tenant."]}


def test_deal_rules(env: Any, tenant: Any, people: dict[str, User]) -> None:
    agent_ctx = ctx_for(env, tenant, people["agent"])
    theirs = service.create(Company, {"name": "Theirs", "owner": people["manager"].id})
    with pytest.raises(Invalid) as info:
        checks.deal_visible_refs({"title": "D", "company_id": theirs.id, "stage_id": 999999}, ctx=agent_ctx)
    assert set(info.value.errors) == {"company_id", "stage_id"}
    # The tenant's default currency comes from the context's settings.
    deal = deals.create_deal({"title": "D"}, ctx=agent_ctx)
    assert deal.currency == "CHF" and deals.default_currency(SYSTEM) == "EUR"
    with pytest.raises(Invalid):
        deals.change_deal(deal, {"currency": "XYZ"}, ctx=agent_ctx)


def test_task_note_and_activity_rules_take_the_caller_from_the_context(env: Any, tenant: Any, people: dict[str, User]) -> None:
    ctx = ctx_for(env, tenant, people["manager"])
    lead = service.create(Lead, {"name": "L"})
    task = {"title": "Call", "lead_id": lead.id, "status": "done"}
    links.task_input(task, ctx=ctx)
    assert task["assignee"] == people["manager"].id and task["completed_at"] is not None
    note = {"body": f"ask @{people['agent'].email}", "lead_id": lead.id}
    links.note_input(note, ctx=ctx)
    assert note["author"] == people["manager"].id and note["mentions"] == [people["agent"].id]
    with pytest.raises(Invalid) as info:
        links.note_input({"body": "ask @nobody@acme.test", "lead_id": lead.id}, ctx=ctx)
    assert info.value.errors == {"body": ["No user with the email nobody@acme.test to mention."]}
    with pytest.raises(Invalid) as info:
        links.activity_input({"kind": "call"}, ctx=ctx)
    assert list(info.value.errors) == ["_schema"]
    activity = {"kind": "call", "lead_id": lead.id}
    links.activity_input(activity, ctx=ctx)
    assert activity["user"] == people["manager"].id


# --------------------------------------------------------------------------- users (the web page's last-admin rule, the CLI's commands)


def test_the_last_active_admin_stays(env: Any, tenant: Any, people: dict[str, User]) -> None:
    ctx = ctx_for(env, tenant, people["admin"])
    admin = people["admin"]
    with pytest.raises(users.LastAdmin):
        users.change_user(admin, {"role": "manager"}, ctx)
    with pytest.raises(users.LastAdmin):
        users.change_user(admin, {"active": False}, ctx)
    assert User.get_by_id(admin.id).role == "admin" and User.get_by_id(admin.id).active
    users.change_user(people["manager"], {"role": "admin"}, ctx)
    assert users.change_user(admin, {"role": "manager"}, ctx) == {"role": ["admin", "manager"]}
    entries = AuditEntry.select().where((AuditEntry.entity == "user") & (AuditEntry.action == "update"))
    assert {(e.entity_id, e.actor_user_id) for e in entries} == {(people["manager"].id, admin.id), (admin.id, admin.id)}


def test_users_and_tokens_are_created_and_revoked_with_audit_entries(env: Any, tenant: Any) -> None:
    ctx = Context(tenant=tenant, actor="cli")
    user = users.create_user(" New@Acme.test ", "secret", role="viewer", ctx=ctx)
    assert user.email == "new@acme.test"
    with pytest.raises(Conflict):
        users.create_user("new@acme.test", "other", ctx=ctx)
    with pytest.raises(Invalid) as info:
        users.create_user("nope", "", role="god", ctx=ctx)
    assert set(info.value.errors) == {"email", "password", "role"}
    token = ApiToken.create(name="ci", prefix="crm_abc", token_hash="h", role="agent")
    assert users.revoke_token(token, ctx) and not users.revoke_token(token, ctx)
    entries = [(e.entity, e.action, e.actor_name) for e in AuditEntry.select().order_by(AuditEntry.id)]
    assert entries == [("user", "create", "cli"), ("api_token", "update", "cli")]
