"""The admin pages (/app/admin/...): users and roles, API tokens, pipelines and stages,
custom fields, the plugins view (its editing: test_admin_plugin_settings.py). Flask test client on a real database: each
page and form, validation errors, roles (403), tenants (404 on another tenant's ids),
the last-admin rule, a token's secret shown once, and the same rules as the API."""

from __future__ import annotations

import re
from contextlib import contextmanager

import pytest
from marshmallow import Schema, fields

from crmcore import db
from crmcore.entities.models import CustomField, Deal, DealStageChange, Pipeline, Stage
from crmcore.models import ApiToken, User
from crmcore.web.admin_plugins import MASK, masked_settings

PAGES = ["/app/admin/", "/app/admin/users/", "/app/admin/users/new", "/app/admin/tokens/", "/app/admin/tokens/new",
         "/app/admin/pipelines/", "/app/admin/custom-fields/", "/app/admin/custom-fields/new", "/app/admin/plugins/"]


@pytest.fixture
def web(crm_env):
    crm_env.write_tenant("acme", name="Acme Ltd")
    crm_env.write_tenant("other", name="Other Inc")
    crm_env.create_app()
    return crm_env


@pytest.fixture
def admin(web):
    """A client signed in as an admin of acme (``.user`` is the admin)."""
    client = web.client("acme")
    client.user = web.login(client, "acme", "admin", email="boss@acme.test")
    return client


@contextmanager
def in_tenant(env, slug="acme"):
    with db.database.connection_context(), db.tenant_context(env.tenant(slug)):
        yield


def post(env, client, url, data=None, **kw):
    return client.post(url, data={**(data or {}), "csrf_token": env.csrf(client)}, **kw)


def html(response):
    return response.get_data(as_text=True)


def bearer(secret):
    return {"Authorization": f"Bearer {secret}"}


# --------------------------------------------------------------------------- access


def test_every_admin_page_renders_for_an_admin_with_the_section_tabs(web, admin):
    for url in PAGES:
        response = admin.get(url)
        assert response.status_code == 200, (url, html(response)[:500])
        body = html(response)
        assert 'aria-label="Admin sections"' in body and "Custom fields" in body
    overview = html(admin.get("/app/admin/"))
    assert ">Admin</a>" in overview  # the nav item
    assert 'href="/app/admin/users/" aria-current="page"' in html(admin.get("/app/admin/users/"))


@pytest.mark.parametrize("role", ["manager", "agent", "viewer"])
def test_other_roles_get_403_and_no_nav_item(web, role):
    client = web.client("acme")
    web.login(client, "acme", role)
    assert ">Admin</a>" not in html(client.get("/app/"))
    for url in PAGES:
        response = client.get(url)
        assert response.status_code == 403, url
        assert "Only the tenant&#39;s admins" in html(response)
    response = post(web, client, "/app/admin/users/new", {"email": "x@acme.test", "role": "admin", "password": "long-enough"})
    assert response.status_code == 403
    assert post(web, client, "/app/admin/tokens/new", {"name": "x", "role": "admin"}).status_code == 403
    with in_tenant(web):
        assert not User.select().where(User.email == "x@acme.test").exists()
        assert not ApiToken.select().where(ApiToken.name == "x").exists()


def test_signed_out_people_are_sent_to_sign_in(web):
    response = web.client("acme").get("/app/admin/users/")
    assert response.status_code == 302 and "/login?next=" in response.headers["Location"]


def test_a_token_cannot_open_the_admin_pages(web):
    response = web.client("acme").get("/app/admin/users/", headers=bearer(web.token("acme", "admin")))
    assert response.status_code == 302  # pages want a person with a session


def test_forms_need_the_csrf_token(web, admin):
    response = admin.post("/app/admin/users/new", data={"email": "x@acme.test", "role": "agent", "password": "long-enough"})
    assert response.status_code == 400 and "CSRF" in html(response)


# --------------------------------------------------------------------------- users


def test_add_user_then_they_can_sign_in(web, admin):
    response = post(web, admin, "/app/admin/users/new", {"email": "  Ann@Example.COM ", "name": "Ann", "role": "manager", "password": " pass word "})
    assert response.status_code == 302
    listing = html(admin.get("/app/admin/users/"))
    assert "ann@example.com" in listing and "manager" in listing and "added as manager" in listing
    with in_tenant(web):
        ann = User.get(User.email == "ann@example.com")
        assert (ann.name, ann.role, ann.active) == ("Ann", "manager", True)
    ann_client = web.client("acme")
    ann_client.get("/login")
    ok = ann_client.post("/login", data={"email": "ann@example.com", "password": " pass word ", "csrf_token": web.csrf(ann_client)})
    assert ok.status_code == 302  # the password is kept exactly as typed
    def row(body):
        start = body.index("ann@example.com", body.index("<tbody>"))
        return body[start:body.index("</tr>", start)]

    assert "never" in row(listing) and "<time datetime=" in row(html(admin.get("/app/admin/users/")))  # last sign-in


def test_add_user_validation_errors_are_shown_inline(web, admin):
    response = post(web, admin, "/app/admin/users/new", {"email": "not-an-email", "name": "", "role": "boss", "password": "short"})
    assert response.status_code == 422
    body = html(response)
    assert 'id="email-error"' in body and "@-sign" in body
    assert 'id="role-error"' in body and 'id="password-error"' in body and "At least 8 characters" in body
    assert 'value="not-an-email"' in body  # what was typed stays
    assert "short" not in re.findall(r'name="password"[^>]*value="([^"]*)"', body)  # a password is never echoed
    response = post(web, admin, "/app/admin/users/new", {"email": "", "role": "agent", "password": "long-enough"})
    assert response.status_code == 422 and "Enter an email address." in html(response)


def test_duplicate_email_is_an_inline_error(web, admin):
    assert post(web, admin, "/app/admin/users/new", {"email": "dup@example.com", "role": "agent", "password": "long-enough"}).status_code == 302
    response = post(web, admin, "/app/admin/users/new", {"email": "DUP@Example.com", "role": "viewer", "password": "long-enough"})
    assert response.status_code == 409
    assert "already exists in this tenant" in html(response) and 'id="email-error"' in html(response)
    with in_tenant(web):
        assert User.get(User.email == "dup@example.com").role == "agent"
    # The same email in another tenant is another person.
    other = web.client("other")
    web.login(other, "other", "admin")
    assert post(web, other, "/app/admin/users/new", {"email": "dup@example.com", "role": "viewer", "password": "long-enough"}).status_code == 302


def test_change_name_and_role(web, admin):
    with in_tenant(web):
        from crmcore import auth

        agent = auth.create_user(web.tenant("acme"), "agent@acme.test", "long-enough", role="agent")
    page = admin.get(f"/app/admin/users/{agent.id}")
    assert page.status_code == 200 and "agent@acme.test" in html(page)
    response = post(web, admin, f"/app/admin/users/{agent.id}", {"name": "Agnes", "role": "manager"})
    assert response.status_code == 302
    with in_tenant(web):
        assert (User.get_by_id(agent.id).name, User.get_by_id(agent.id).role) == ("Agnes", "manager")
    assert "Saved agent@acme.test" in html(admin.get(response.headers["Location"]))
    bad = post(web, admin, f"/app/admin/users/{agent.id}", {"name": "Agnes", "role": "owner"})
    assert bad.status_code == 422 and 'id="role-error"' in html(bad)


def test_deactivate_and_reactivate(web, admin):
    other = web.client("acme")
    person = web.login(other, "acme", "agent", email="temp@acme.test")
    assert other.get("/app/").status_code == 200
    assert post(web, admin, f"/app/admin/users/{person.id}/active", {"active": "0"}).status_code == 302
    assert other.get("/app/").status_code == 302  # signed out at the next request
    with in_tenant(web):
        assert User.get_by_id(person.id).active is False
    assert "deactivated" in html(admin.get("/app/admin/users/?show=inactive"))
    fresh = web.client("acme")
    fresh.get("/login")
    assert fresh.post("/login", data={"email": "temp@acme.test", "password": "secret-pw", "csrf_token": web.csrf(fresh)}).status_code == 401
    assert post(web, admin, f"/app/admin/users/{person.id}/active", {"active": "1"}).status_code == 302
    assert fresh.post("/login", data={"email": "temp@acme.test", "password": "secret-pw", "csrf_token": web.csrf(fresh)}).status_code == 302


def test_last_active_admin_cannot_demote_or_deactivate_themselves(web, admin):
    me = admin.user.id
    response = post(web, admin, f"/app/admin/users/{me}", {"name": "Boss", "role": "manager"})
    assert response.status_code == 409 and "last active admin" in html(response)
    response = post(web, admin, f"/app/admin/users/{me}/active", {"active": "0"})
    assert response.status_code == 409 and "last active admin" in html(response)
    with in_tenant(web):
        assert (User.get_by_id(me).role, User.get_by_id(me).active) == ("admin", True)
    # An inactive admin does not count.
    with in_tenant(web):
        from crmcore import auth

        sleeper = auth.create_user(web.tenant("acme"), "sleeper@acme.test", "long-enough", role="admin")
        User.update(active=False).where(User.id == sleeper.id).execute()
    assert post(web, admin, f"/app/admin/users/{me}", {"name": "Boss", "role": "manager"}).status_code == 409
    # With another active admin, an admin may step down, and then loses the admin pages.
    assert post(web, admin, f"/app/admin/users/{sleeper.id}/active", {"active": "1"}).status_code == 302
    response = post(web, admin, f"/app/admin/users/{me}", {"name": "Boss", "role": "manager"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/app/")
    assert admin.get("/app/admin/users/").status_code == 403


def test_reset_password(web, admin):
    client = web.client("acme")
    person = web.login(client, "acme", "viewer", email="forgetful@acme.test")
    short = post(web, admin, f"/app/admin/users/{person.id}/password", {"password": "1234567"})
    assert short.status_code == 422 and "At least 8 characters" in html(short)
    assert post(web, admin, f"/app/admin/users/{person.id}/password", {"password": "brand-new-pw"}).status_code == 302
    fresh = web.client("acme")
    fresh.get("/login")
    assert fresh.post("/login", data={"email": "forgetful@acme.test", "password": "secret-pw", "csrf_token": web.csrf(fresh)}).status_code == 401
    assert fresh.post("/login", data={"email": "forgetful@acme.test", "password": "brand-new-pw", "csrf_token": web.csrf(fresh)}).status_code == 302


def test_another_tenants_users_are_invisible(web, admin):
    with in_tenant(web, "other"):
        from crmcore import auth

        stranger = auth.create_user(web.tenant("other"), "stranger@other.test", "long-enough", role="admin")
    assert "stranger@other.test" not in html(admin.get("/app/admin/users/"))
    assert admin.get(f"/app/admin/users/{stranger.id}").status_code == 404
    assert post(web, admin, f"/app/admin/users/{stranger.id}", {"name": "x", "role": "viewer"}).status_code == 404
    assert post(web, admin, f"/app/admin/users/{stranger.id}/active", {"active": "0"}).status_code == 404
    assert post(web, admin, f"/app/admin/users/{stranger.id}/password", {"password": "hijacked-pw"}).status_code == 404
    with in_tenant(web, "other"):
        row = User.get_by_id(stranger.id)
        assert (row.role, row.active) == ("admin", True)


# --------------------------------------------------------------------------- tokens


def test_token_secret_is_shown_once_then_works_until_revoked(web, admin):
    assert "No API tokens yet" in html(admin.get("/app/admin/tokens/"))
    response = post(web, admin, "/app/admin/tokens/new", {"name": "Website form", "role": "agent"})
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    body = html(response)
    secret = re.search(r'id="token-secret"[^>]*>(crm_[^<]+)<', body).group(1)
    assert 'data-copy-target="token-secret"' in body and "admin.js" in body

    listing = html(admin.get("/app/admin/tokens/"))
    assert secret not in listing and secret[:12] in listing and "Website form" in listing
    client = web.client("acme")
    assert client.get("/api/v1/leads", headers=bearer(secret)).status_code == 200
    assert client.post("/api/v1/leads", json={"name": "x"}, headers=bearer(secret)).status_code == 201  # agent may write
    with in_tenant(web):
        token = ApiToken.get(ApiToken.name == "Website form")
        assert token.role == "agent" and token.last_used_at is not None

    confirm = admin.get(f"/app/admin/tokens/{token.id}/revoke")
    assert confirm.status_code == 200 and "Revoke token" in html(confirm) and "401" in html(confirm)
    assert client.get("/api/v1/leads", headers=bearer(secret)).status_code == 200  # asking changes nothing
    assert post(web, admin, f"/app/admin/tokens/{token.id}/revoke").status_code == 302
    assert client.get("/api/v1/leads", headers=bearer(secret)).status_code == 401
    listing = html(admin.get("/app/admin/tokens/"))
    assert "revoked" in listing and "revoked" in html(admin.get("/app/admin/tokens/?show=revoked"))
    assert "Website form" not in html(admin.get("/app/admin/tokens/?show=active"))
    again = post(web, admin, f"/app/admin/tokens/{token.id}/revoke")
    assert again.status_code == 302 and "already revoked" in html(admin.get("/app/admin/tokens/"))


def test_token_role_is_respected(web, admin):
    response = post(web, admin, "/app/admin/tokens/new", {"name": "Reader", "role": "viewer"})
    secret = re.search(r'id="token-secret"[^>]*>(crm_[^<]+)<', html(response)).group(1)
    client = web.client("acme")
    assert client.get("/api/v1/leads", headers=bearer(secret)).status_code == 200
    assert client.post("/api/v1/leads", json={"name": "x"}, headers=bearer(secret)).status_code == 403


def test_token_form_validation(web, admin):
    response = post(web, admin, "/app/admin/tokens/new", {"name": "", "role": "root"})
    assert response.status_code == 422
    body = html(response)
    assert 'id="name-error"' in body and 'id="role-error"' in body and "crm_" not in body
    with in_tenant(web):
        assert ApiToken.select().count() == 0


def test_another_tenants_tokens_are_invisible(web, admin):
    secret = web.token("other", "admin")
    with in_tenant(web, "other"):
        token = ApiToken.get()
    assert secret[:12] not in html(admin.get("/app/admin/tokens/"))
    assert admin.get(f"/app/admin/tokens/{token.id}/revoke").status_code == 404
    assert post(web, admin, f"/app/admin/tokens/{token.id}/revoke").status_code == 404
    assert web.client("other").get("/api/v1/leads", headers=bearer(secret)).status_code == 200


# --------------------------------------------------------------------------- pipelines


def sales(env, slug="acme"):
    with in_tenant(env, slug):
        pipeline = Pipeline.get(Pipeline.is_default == True)  # noqa: E712
        return pipeline, list(Stage.select().where(Stage.pipeline == pipeline.id).order_by(Stage.order))


def stage_names(env, pipeline_id, slug="acme"):
    with in_tenant(env, slug):
        return [s.name for s in Stage.select().where(Stage.pipeline == pipeline_id).order_by(Stage.order, Stage.id)]


def test_pipelines_are_listed_with_their_stages_in_order(web, admin):
    body = html(admin.get("/app/admin/pipelines/"))
    assert "Sales" in body and "default" in body
    positions = [body.index(f'<span class="stage-name">{n}</span>') for n in ["Lead", "Qualified", "Proposal", "Negotiation", "Closed Won", "Closed Lost"]]
    assert positions == sorted(positions)


def test_create_and_rename_pipeline(web, admin):
    bad = post(web, admin, "/app/admin/pipelines/", {"name": ""})
    assert bad.status_code == 422 and 'id="name-error"' in html(bad)
    response = post(web, admin, "/app/admin/pipelines/", {"name": "Partners", "standard_stages": "1", "is_default__present": "1"})
    assert response.status_code == 302
    with in_tenant(web):
        partners = Pipeline.get(Pipeline.name == "Partners")
    assert partners.is_default is False
    assert stage_names(web, partners.id) == ["Lead", "Qualified", "Proposal", "Negotiation", "Closed Won", "Closed Lost"]
    empty = post(web, admin, "/app/admin/pipelines/", {"name": "Empty", "is_default__present": "1"})
    with in_tenant(web):
        assert stage_names(web, Pipeline.get(Pipeline.name == "Empty").id) == []
    assert "No stages yet" in html(admin.get(empty.headers["Location"]))

    page = admin.get(f"/app/admin/pipelines/{partners.id}")
    assert page.status_code == 200 and "Add a stage" in html(page)
    response = post(web, admin, f"/app/admin/pipelines/{partners.id}", {"name": "Resellers", "is_default": "1", "is_default__present": "1", "version": partners.version})
    assert response.status_code == 302
    old_default, _ = sales(web)
    with in_tenant(web):
        renamed = Pipeline.get_by_id(partners.id)
    assert renamed.name == "Resellers" and renamed.is_default and old_default.id == partners.id
    # A stale form (someone renamed it meanwhile) is refused, not silently overwritten.
    stale = post(web, admin, f"/app/admin/pipelines/{partners.id}", {"name": "Old", "version": partners.version})
    assert stale.status_code == 409 and "Someone else changed this" in html(stale)


def test_add_and_edit_stage_with_the_api_rules(web, admin):
    pipeline, stages = sales(web)
    url = f"/app/admin/pipelines/{pipeline.id}/stages"
    bad = post(web, admin, url, {"name": "", "probability": "150", "colour": "red", "is_won": "1", "is_lost": "1", "is_won__present": "1", "is_lost__present": "1"})
    assert bad.status_code == 422
    body = html(bad)
    assert 'id="name-error"' in body and 'id="probability-error"' in body and "Not a colour" in body
    ok = post(web, admin, url, {"name": "Parked", "probability": "5", "colour": "#123456", "expected_days": "30", "is_won__present": "1", "is_lost__present": "1"})
    assert ok.status_code == 302
    assert stage_names(web, pipeline.id)[-1] == "Parked"
    both = post(web, admin, url, {"name": "Odd", "colour": "#123456", "is_won": "1", "is_lost": "1", "is_won__present": "1", "is_lost__present": "1"})
    assert both.status_code == 422 and "cannot be both won and lost" in html(both)

    proposal = stages[2]
    page = admin.get(f"/app/admin/pipelines/stages/{proposal.id}")
    assert page.status_code == 200 and 'type="color"' in html(page)
    response = post(web, admin, f"/app/admin/pipelines/stages/{proposal.id}", {
        "name": "Offer", "colour": "#00aa00", "probability": "60", "expected_days": "", "is_won__present": "1", "is_lost__present": "1", "version": proposal.version})
    assert response.status_code == 302
    with in_tenant(web):
        offer = Stage.get_by_id(proposal.id)
    assert (offer.name, offer.colour, offer.probability, offer.expected_days, offer.is_won) == ("Offer", "#00aa00", 60, None, False)
    stale = post(web, admin, f"/app/admin/pipelines/stages/{proposal.id}", {"name": "Late", "colour": "#000000", "version": proposal.version})
    assert stale.status_code == 409


def test_reorder_stages_with_up_and_down(web, admin):
    pipeline, stages = sales(web)
    assert post(web, admin, f"/app/admin/pipelines/stages/{stages[1].id}/move", {"direction": "up"}).status_code == 302
    assert stage_names(web, pipeline.id) == ["Qualified", "Lead", "Proposal", "Negotiation", "Closed Won", "Closed Lost"]
    post(web, admin, f"/app/admin/pipelines/stages/{stages[1].id}/move", {"direction": "up"})  # already first: nothing
    post(web, admin, f"/app/admin/pipelines/stages/{stages[5].id}/move", {"direction": "down"})  # already last
    post(web, admin, f"/app/admin/pipelines/stages/{stages[2].id}/move", {"direction": "down"})
    assert stage_names(web, pipeline.id) == ["Qualified", "Lead", "Negotiation", "Proposal", "Closed Won", "Closed Lost"]
    with in_tenant(web):
        assert [s.order for s in Stage.select().where(Stage.pipeline == pipeline.id).order_by(Stage.order)] == list(range(6))
    body = html(admin.get(f"/app/admin/pipelines/{pipeline.id}"))
    assert body.index(">Negotiation</a>") < body.index(">Proposal</a>")


def test_delete_stage_moves_its_deals(web, admin):
    pipeline, stages = sales(web)
    lead_stage, qualified, lost = stages[0], stages[1], stages[5]
    token = web.token("acme", "admin")
    client = web.client("acme")
    ids = [client.post("/api/v1/deals", json={"title": f"Deal {i}", "stage_id": lead_stage.id}, headers=bearer(token)).json["id"] for i in range(3)]
    client.post("/api/v1/deals", json={"title": "Already qualified", "stage_id": qualified.id}, headers=bearer(token))

    page = admin.get(f"/app/admin/pipelines/stages/{lead_stage.id}/delete")
    assert page.status_code == 200 and "3 deals" in html(page) and 'name="move_to"' in html(page)
    url = f"/app/admin/pipelines/stages/{lead_stage.id}/delete"
    missing = post(web, admin, url, {"move_to": ""})
    assert missing.status_code == 422 and "choose the stage they move to" in html(missing)
    partners = post(web, admin, "/app/admin/pipelines/", {"name": "Partners", "standard_stages": "1"})
    assert partners.status_code == 302
    with in_tenant(web):
        foreign = Stage.select().join(Pipeline, on=(Stage.pipeline == Pipeline.id)).where(Pipeline.name == "Partners").first()
    wrong = post(web, admin, url, {"move_to": str(foreign.id)})
    assert wrong.status_code == 422 and "another stage of the same pipeline" in html(wrong)
    to_lost = post(web, admin, url, {"move_to": str(lost.id)})
    assert to_lost.status_code == 422 and 'id="lost_reason-error"' in html(to_lost)

    done = post(web, admin, url, {"move_to": str(qualified.id)})
    assert done.status_code == 302
    assert "moved to “Qualified”" in html(admin.get(done.headers["Location"]))
    with in_tenant(web):
        assert Stage.get_or_none(Stage.id == lead_stage.id) is None
        moved = list(Deal.select().where(Deal.id.in_(ids)))
        assert {d.stage_id for d in moved} == {qualified.id} and all(d.probability == qualified.probability for d in moved)
        assert DealStageChange.select().where(DealStageChange.deal.in_(ids) & (DealStageChange.to_stage == qualified.id)).count() == 3
        ordered = [d.title for d in Deal.select().where(Deal.stage == qualified.id).order_by(Deal.position)]
    assert ordered == ["Already qualified", "Deal 0", "Deal 1", "Deal 2"]  # after the deals already there, in order

    # A stage without deals is deleted after a plain confirmation; into a lost stage needs a reason.
    negotiation = stages[3]
    client.post("/api/v1/deals", json={"title": "Doomed", "stage_id": negotiation.id}, headers=bearer(token))
    done = post(web, admin, f"/app/admin/pipelines/stages/{negotiation.id}/delete", {"move_to": str(lost.id), "lost_reason": "Budget cut"})
    assert done.status_code == 302
    with in_tenant(web):
        doomed = Deal.get(Deal.title == "Doomed")
        assert (doomed.stage_id, doomed.lost_reason, doomed.closed_at is not None) == (lost.id, "Budget cut", True)
    empty_stage = stages[2]
    assert "No deals are in this stage" in html(admin.get(f"/app/admin/pipelines/stages/{empty_stage.id}/delete"))
    assert post(web, admin, f"/app/admin/pipelines/stages/{empty_stage.id}/delete").status_code == 302
    assert stage_names(web, pipeline.id) == ["Qualified", "Closed Won", "Closed Lost"]


def test_delete_pipeline_follows_the_api_rules(web, admin):
    pipeline, _ = sales(web)
    refused = post(web, admin, f"/app/admin/pipelines/{pipeline.id}/delete")
    assert refused.status_code == 409 and "default pipeline" in html(refused)
    post(web, admin, "/app/admin/pipelines/", {"name": "Spare", "standard_stages": "1"})
    with in_tenant(web):
        spare = Pipeline.get(Pipeline.name == "Spare")
    assert "cannot be undone" in html(admin.get(f"/app/admin/pipelines/{spare.id}/delete"))
    assert post(web, admin, f"/app/admin/pipelines/{spare.id}/delete").status_code == 302
    with in_tenant(web):
        assert Pipeline.get_or_none(Pipeline.id == spare.id) is None
        assert Stage.select().where(Stage.pipeline == spare.id).count() == 0


def test_another_tenants_pipelines_are_invisible(web, admin):
    pipeline, stages = sales(web, "other")
    with in_tenant(web, "other"):
        Pipeline.update(name="Other Secret Pipeline").where(Pipeline.id == pipeline.id).execute()
    assert "Other Secret Pipeline" not in html(admin.get("/app/admin/pipelines/"))
    for url in [f"/app/admin/pipelines/{pipeline.id}", f"/app/admin/pipelines/stages/{stages[0].id}", f"/app/admin/pipelines/stages/{stages[0].id}/delete", f"/app/admin/pipelines/{pipeline.id}/delete"]:
        assert admin.get(url).status_code == 404, url
        assert post(web, admin, url, {"name": "Mine now", "colour": "#000000"}).status_code == 404, url
    assert post(web, admin, f"/app/admin/pipelines/stages/{stages[1].id}/move", {"direction": "up"}).status_code == 404
    assert post(web, admin, f"/app/admin/pipelines/{pipeline.id}/stages", {"name": "Intruder"}).status_code == 404
    # Nor can one of its stages be a move target.
    _, my_stages = sales(web)
    assert post(web, admin, f"/app/admin/pipelines/stages/{my_stages[0].id}/delete", {"move_to": str(stages[1].id)}).status_code == 422
    assert stage_names(web, pipeline.id, "other")[0] == "Lead"


# --------------------------------------------------------------------------- custom fields


def test_custom_field_created_on_the_page_is_in_the_api(web, admin):
    response = post(web, admin, "/app/admin/custom-fields/new", {
        "entity": "deal", "key": "contract_type", "label": "Contract type", "kind": "choice",
        "choices": "Yearly\nMonthly, with notice\n\nYearly", "required": "1", "required__present": "1"})
    assert response.status_code == 302
    items = web.client("acme").get("/api/v1/custom-fields", headers=bearer(web.token())).json["items"]
    assert [(f["entity"], f["key"], f["label"], f["kind"], f["choices"], f["required"]) for f in items] == [
        ("deal", "contract_type", "Contract type", "choice", ["Yearly", "Monthly, with notice"], True)]
    listing = html(admin.get("/app/admin/custom-fields/"))
    assert "Contract type" in listing and "contract_type" in listing and "Monthly, with notice" in listing


def test_custom_field_validation_is_the_apis(web, admin):
    url = "/app/admin/custom-fields/new"
    bad = post(web, admin, url, {"entity": "invoice", "key": "9lives", "label": "", "kind": "colour"})
    assert bad.status_code == 422
    body = html(bad)
    for name in ("entity", "key", "label", "kind"):
        assert f'id="{name}-error"' in body, name
    no_choices = post(web, admin, url, {"entity": "lead", "key": "size", "label": "Size", "kind": "choice", "choices": ""})
    assert no_choices.status_code == 422 and "needs at least one choice" in html(no_choices)
    stray = post(web, admin, url, {"entity": "lead", "key": "size", "label": "Size", "kind": "number", "choices": "S\nM"})
    assert stray.status_code == 422 and "Only choice fields have choices" in html(stray)
    assert post(web, admin, url, {"entity": "lead", "key": "size", "label": "Size", "kind": "number", "choices": ""}).status_code == 302
    dup = post(web, admin, url, {"entity": "lead", "key": "size", "label": "Size again", "kind": "text"})
    assert dup.status_code == 409 and 'id="key-error"' in html(dup) and "already have a custom field" in html(dup)
    assert post(web, admin, url, {"entity": "contact", "key": "size", "label": "Size", "kind": "text"}).status_code == 302  # per entity


def test_edit_and_delete_custom_field(web, admin):
    post(web, admin, "/app/admin/custom-fields/new", {"entity": "lead", "key": "tier", "label": "Tier", "kind": "choice", "choices": "Gold\nSilver"})
    with in_tenant(web):
        field = CustomField.get(CustomField.key == "tier")
    token = web.token()
    client = web.client("acme")
    assert client.post("/api/v1/leads", json={"name": "Big", "custom": {"tier": "Gold"}}, headers=bearer(token)).status_code == 201
    page = admin.get(f"/app/admin/custom-fields/{field.id}")
    assert page.status_code == 200 and "in use: Gold" in html(page)
    in_use = post(web, admin, f"/app/admin/custom-fields/{field.id}", {"label": "Tier", "choices": "Silver\nBronze", "version": field.version})
    assert in_use.status_code == 409 and "records still use the choices Gold" in html(in_use)
    empty_label = post(web, admin, f"/app/admin/custom-fields/{field.id}", {"label": "", "choices": "Gold"})
    assert empty_label.status_code == 422 and 'id="label-error"' in html(empty_label)
    ok = post(web, admin, f"/app/admin/custom-fields/{field.id}", {"label": "Customer tier", "choices": "Gold\nSilver\nBronze", "required": "1", "required__present": "1", "version": field.version})
    assert ok.status_code == 302
    got = client.get(f"/api/v1/custom-fields/{field.id}", headers=bearer(token)).json
    assert (got["label"], got["choices"], got["required"]) == ("Customer tier", ["Gold", "Silver", "Bronze"], True)
    stale = post(web, admin, f"/app/admin/custom-fields/{field.id}", {"label": "Old", "choices": "Gold", "version": field.version})
    assert stale.status_code == 409

    confirm = admin.get(f"/app/admin/custom-fields/{field.id}/delete")
    assert confirm.status_code == 200 and "Delete field" in html(confirm)
    assert client.get(f"/api/v1/custom-fields/{field.id}", headers=bearer(token)).status_code == 200
    assert post(web, admin, f"/app/admin/custom-fields/{field.id}/delete").status_code == 302
    assert client.get(f"/api/v1/custom-fields/{field.id}", headers=bearer(token)).status_code == 404


def test_another_tenants_custom_fields_are_invisible(web, admin):
    token = web.token("other")
    created = web.client("other").post("/api/v1/custom-fields", json={"entity": "lead", "key": "hidden_thing", "label": "Hidden thing", "kind": "text"}, headers=bearer(token))
    field_id = created.json["id"]
    assert "hidden_thing" not in html(admin.get("/app/admin/custom-fields/"))
    assert admin.get(f"/app/admin/custom-fields/{field_id}").status_code == 404
    assert post(web, admin, f"/app/admin/custom-fields/{field_id}", {"label": "Mine"}).status_code == 404
    assert post(web, admin, f"/app/admin/custom-fields/{field_id}/delete").status_code == 404
    assert web.client("other").get(f"/api/v1/custom-fields/{field_id}", headers=bearer(token)).json["label"] == "Hidden thing"


# --------------------------------------------------------------------------- plugins


def test_masking_rules():
    values = {"greeting": "Hi", "api_token": "t0k", "Password": "pw", "public_KEY": "k", "region": "eu-1", "empty_secret": "",
              "smtp": {"host": "mail", "port": 25, "auth": {"user": "u"}}, "smtp_secret": {"a": 1}, "list": ["a", "b"], "unset": None}
    raw = {"greeting": "Hi", "api_token": "t0k", "Password": "pw", "public_KEY": "k", "region": {"$env": "REGION"},
           "smtp": {"host": {"$env": "SMTP_HOST"}, "port": 25}, "list": ["a", {"$env": "B"}]}
    rows = {r.key: r for r in masked_settings(values, raw)}
    assert rows["greeting"].display == '"Hi"' and not rows["greeting"].masked and rows["greeting"].origin == "file"
    for key in ("api_token", "Password", "public_KEY", "region", "smtp.host", "smtp_secret.a", "list"):
        assert rows[key].masked and rows[key].display == MASK, key
    assert rows["region"].origin == "$env REGION" and rows["smtp.host"].origin == "$env SMTP_HOST"
    assert rows["smtp.port"].display == "25" and rows["smtp.auth.user"].origin == "default"
    assert rows["empty_secret"].display == "(not set)" and rows["unset"].display == "null"
    # Without the file to tell where values came from, nothing is shown.
    assert all(r.masked or r.display == "(not set)" for r in masked_settings(values, None, trusted=False))


class VaultSettings(Schema):
    api_token = fields.String(load_default="")
    region = fields.String(load_default="eu")
    timeout = fields.Integer(load_default=30)


def test_plugins_page_shows_plugins_and_masked_settings(sample_env):
    from crmcore.plugins import PluginInfo

    env = sample_env
    crm = env.crm
    # A second plugin whose settings hold secrets (metadata only: no hooks to run).
    crm.host.infos["vault"] = PluginInfo("vault", "0.3.0", "Keeps secrets (test).", (), VaultSettings, "vault", "test")
    crm.host.infos["wrecked"] = PluginInfo("wrecked", "?", "", (), None, "?", "entry point (wrecked 1.0)", error="ImportError: no module named wrecked_dep")
    crm.config_store.env["VAULT_REGION"] = "region-from-env-xyz"
    env.write_tenant("alpha", plugins=["sample"], settings={"sample": {"greeting": "Hi alpha"}, "vault": {"api_token": "tok-very-secret-123", "region": {"$env": "VAULT_REGION"}}})
    env.reload()
    client = env.client("alpha")
    env.login(client, "alpha", "admin")
    response = client.get("/app/admin/plugins/")
    assert response.status_code == 200
    body = html(response)
    assert "config/tenants/alpha.toml" in body and "Turn off sample" in body
    assert "sample" in body and "1.2.0" in body and "Sample third-party plugin (tests)." in body
    assert "&#34;Hi alpha&#34;" in body and "max_items" in body and ">100<" in body  # the effective values, defaults filled in
    assert "tok-very-secret-123" not in body and "region-from-env-xyz" not in body
    assert body.count(MASK) >= 2 and "$env VAULT_REGION" in body
    assert "BROKEN" in body and "no module named wrecked_dep" in body
    assert "always on" in body and "agents_see_own_only" in body  # the core's own settings
    section = body[body.index('id="plugin-sample"'):body.index('id="plugin-vault"')]
    assert ">on<" in section
    assert ">off<" in body[body.index('id="plugin-vault"'):]

    beta = env.client("beta")
    env.login(beta, "beta", "admin")
    section = html(beta.get("/app/admin/plugins/"))
    sample = section[section.index('id="plugin-sample"'):]
    assert ">off<" in sample[:600] and "Hi alpha" not in section and "config/tenants/beta.toml" in section
