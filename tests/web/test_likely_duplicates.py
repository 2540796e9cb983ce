"""Likely duplicates on create: the form warns with links to records of the same or a
similar name, company or domain, and creates only when asked to ("Create anyway")."""

from __future__ import annotations

from html import unescape

from crmcore.entities import duplicates, service
from crmcore.entities.models import Company, Contact, Lead


def post(client, path: str, **fields):
    return client.post(path, data={"csrf_token": client.csrf, **fields})


def test_a_lead_like_an_existing_one_is_only_created_when_confirmed(signed_in, in_tenant):
    rep = signed_in("agent")
    with in_tenant():
        grace = service.create(Lead, {"name": "Grace Hopper", "email": "grace@navy.example", "company_name": "US Navy Inc."})
        service.create(Lead, {"name": "Someone Else", "email": "else@gmail.com"})
    form = {"name": "grace  hopper", "email": "admiral@navy.example", "status": "new", "priority": "medium", "source": "manual"}
    warned = post(rep, "/app/leads/new", **form)
    assert warned.status_code == 200
    page = unescape(warned.get_data(as_text=True))
    assert "This lead may exist already:" in page
    assert f'<a href="/app/leads/{grace.id}">Grace Hopper</a> <span class="muted">(same name, same domain (navy.example))</span>' in page
    assert 'name="confirm_duplicates" value="yes">Create lead anyway' in page
    assert 'value="admiral@navy.example"' in page  # nothing typed is lost
    with in_tenant():
        assert Lead.select().count() == 2
    created = post(rep, "/app/leads/new", confirm_duplicates="yes", **form)
    assert created.status_code == 302
    with in_tenant():
        assert Lead.select().count() == 3
    # a free-mail address or another name: no warning
    assert post(rep, "/app/leads/new", name="Ada", email="ada@gmail.com", status="new", priority="medium", source="manual").status_code == 302


def test_companies_match_without_their_legal_form_or_by_domain(signed_in, in_tenant):
    boss = signed_in("admin")
    with in_tenant():
        service.create(Company, {"name": "Globex Corporation", "domain": "globex.example"})
        service.create(Company, {"name": "Globexia"})
    page = unescape(post(boss, "/app/companies/new", name="Globex corp.").get_data(as_text=True))
    assert "Globex Corporation</a> <span class=\"muted\">(similar name)" in page and "Globexia" not in page
    page = unescape(post(boss, "/app/companies/new", name="Umbrella", domain="www.globex.example").get_data(as_text=True))
    assert "(same domain (globex.example))" in page


def test_contacts_by_name_and_only_those_one_may_see(signed_in, in_tenant, web_env):
    web_env.write_tenant("acme", name="Acme Ltd", settings={"core": {"agents_see_own_only": True}})
    web_env.reload()
    rep = signed_in("agent")
    with in_tenant():
        service.create(Contact, {"first_name": "Hank", "last_name": "Scorpio", "owner": rep.user.id})
    other = signed_in("agent")
    mine = unescape(post(rep, "/app/contacts/new", first_name="hank", last_name="scorpio", lifecycle_stage="lead").get_data(as_text=True))
    assert "This contact may exist already:" in mine
    assert post(other, "/app/contacts/new", first_name="Hank", last_name="Scorpio", lifecycle_stage="lead").status_code == 302


def test_names_and_domains_as_compared():
    assert duplicates.company_core("  Globex   Corp. ") == "globex"
    assert duplicates.company_core("ACME Group Ltd") == "acme"
    assert duplicates.domain_of("Ann@Globex.Example") == "globex.example"
    assert duplicates.domain_of("https://www.globex.example/about") == "globex.example"
    assert duplicates.domain_of("someone@gmail.com") is None and duplicates.domain_of("") is None
