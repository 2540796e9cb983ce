"""Templates shared by every channel: sandboxed rendering, defaults for missing values,
preview against a real record, syntax errors as 422 with the line."""

from __future__ import annotations

from tests.plugins.channels.conftest import Api, drain, make_lead, token


def test_crud_and_preview_against_a_real_record(env, admin):
    lead = make_lead(env, "Grace Hopper", email="grace@example.com")
    created = admin("POST", "/templates", json={"name": "Intro", "subject": "Hi {{ contact.first_name }}",
                                                "body": "Dear {{ contact.first_name }} of {{ company.name }},\n{{ user.name }}"}, status=201)
    admin("POST", "/templates", json={"name": "Intro"}, status=409)
    preview = admin("POST", f"/templates/{created['id']}/preview", json={"entity": "lead", "record_id": lead.id})
    # the lead has no company: the tenant's default ("there") stands in, no error
    assert preview == {"subject": "Hi Grace", "body": "Dear Grace of there,\nAdmin"}
    admin("PATCH", f"/templates/{created['id']}", json={"subject": "Hello {{ record.name }}"})
    assert admin("GET", f"/templates/{created['id']}")["subject"] == "Hello {{ record.name }}"
    assert [t["name"] for t in admin("GET", "/templates")["items"]] == ["Intro"]
    admin("POST", f"/templates/{created['id']}/preview", json={"entity": "lead", "record_id": 999999}, status=404)
    admin("DELETE", f"/templates/{created['id']}", status=204)
    admin("GET", f"/templates/{created['id']}", status=404)


def test_a_syntax_error_is_a_422_with_the_line(env, admin):
    answer = admin("POST", "/templates", json={"name": "Broken", "body": "line one\nline two {{ contact.first_name \nthree"}, status=422)
    assert answer["errors"]["json"]["body"][0].startswith("line 3: expected token")
    answer = admin("POST", "/templates", json={"name": "Broken", "subject": "{% if %}"}, status=422)
    assert "line 1" in answer["errors"]["json"]["subject"][0]


def test_the_sandbox_refuses_reaching_into_python(env, admin):
    lead = make_lead(env)
    created = admin("POST", "/templates", json={"name": "Evil", "body": "{{ record.__class__.__mro__[1].__subclasses__() }}"}, status=201)
    answer = admin("POST", f"/templates/{created['id']}/preview", json={"entity": "lead", "record_id": lead.id}, status=422)
    assert "body" in answer["errors"]["json"]
    created = admin("POST", "/templates", json={"name": "Globals", "body": "{{ ''.format.__globals__ }}"}, status=201)
    # an unsafe attribute is undefined in the sandbox: the default, nothing of Python
    assert admin("POST", f"/templates/{created['id']}/preview", json={"entity": "lead", "record_id": lead.id})["body"] == "there"


def test_a_message_sent_with_a_template_is_rendered_for_its_record(env, admin, smtp):
    lead = make_lead(env, "Ada Lovelace", email="ada@example.com")
    template = admin("POST", "/templates", json={"name": "Offer", "subject": "Offer for {{ lead.name }}", "body": "Hi {{ contact.first_name }}, {{ deal.title }}!"}, status=201)
    message = admin("POST", "/messages", json={"channel": "email", "entity": "lead", "record_id": lead.id, "template_id": template["id"]}, status=201)
    assert message["subject"] == "Offer for Ada Lovelace" and message["body_text"] == "Hi Ada, there!"
    drain(env)
    assert smtp.accepted[0]["Subject"] == "Offer for Ada Lovelace"


def test_permissions(env, admin):
    viewer = Api(env, "acme", token(env, role="viewer"))
    viewer("GET", "/templates")
    viewer("POST", "/templates", json={"name": "X"}, status=403)
    lead = make_lead(env)
    viewer("POST", "/messages", json={"channel": "email", "entity": "lead", "record_id": lead.id, "body": "x"}, status=403)
    agent = Api(env, "acme", token(env, role="agent"))
    agent("POST", "/templates", json={"name": "X"}, status=403)
