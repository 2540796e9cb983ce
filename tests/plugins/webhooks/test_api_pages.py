"""The API's rules (SSRF refusals, permissions, bad input) and the admin pages."""

from __future__ import annotations

import re

import pytest

from tests.plugins.webhooks.conftest import Api, drain, token


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/hook", "http://localhost:8080/x", "http://10.1.2.3/", "http://192.168.0.10/",
    "http://169.254.169.254/latest/meta-data", "http://[::1]/", "http://0.0.0.0/", "http://224.0.0.1/",
    "http://[::ffff:127.0.0.1]/",
])
def test_private_addresses_are_refused_without_the_instance_switch(env, admin, monkeypatch, url):
    monkeypatch.delenv("CRM_WEBHOOKS_ALLOW_PRIVATE")
    body = admin("POST", "/webhooks/endpoints", json={"url": url, "event_types": ["lead_created"]}, status=422)
    assert "private" in body["errors"]["json"]["url"][0]


def test_the_instance_switch_allows_loopback(env, admin):
    admin("POST", "/webhooks/endpoints", json={"url": "http://127.0.0.1:9/hook", "event_types": ["lead_created"]}, status=201)


@pytest.mark.parametrize("body, field", [
    ({"url": "ftp://example.com/", "event_types": ["lead_created"]}, "url"),
    ({"url": "not a url", "event_types": ["lead_created"]}, "url"),
    ({"url": "http://user:pw@127.0.0.1/", "event_types": ["lead_created"]}, "url"),
    ({"url": "http://127.0.0.1:99999/", "event_types": ["lead_created"]}, "url"),
    ({"url": "http://127.0.0.1/", "event_types": []}, "event_types"),
    ({"url": "http://127.0.0.1/", "event_types": ["no_such_event"]}, "event_types"),
    ({"url": "http://127.0.0.1/", "event_types": "lead_created"}, "event_types"),
    ({"event_types": ["lead_created"]}, "url"),
    ({"url": 5, "event_types": ["lead_created"]}, "url"),
])
def test_bad_input_is_a_422(env, admin, body, field):
    answer = admin("POST", "/webhooks/endpoints", json=body, status=422)
    assert field in answer["errors"]["json"]


def test_bad_queries_and_unknown_ids(env, admin):
    admin("GET", "/webhooks/deliveries?status=bogus", status=422)
    admin("GET", "/webhooks/deliveries?cursor=@@@", status=422)
    admin("GET", "/webhooks/endpoints/999", status=404)
    admin("PATCH", "/webhooks/endpoints/999", json={"enabled": False}, status=404)
    admin("POST", "/webhooks/deliveries/999/replay", status=404)
    admin("GET", "/webhooks/deliveries/999", status=404)


@pytest.mark.parametrize("role", ["viewer", "agent", "manager"])
def test_only_admins_manage_webhooks(env, role):
    api = Api(env, "acme", token(env, role=role))
    api("GET", "/webhooks/endpoints", status=403)
    api("POST", "/webhooks/endpoints", json={"url": "http://127.0.0.1/", "event_types": ["lead_created"]}, status=403)
    api("GET", "/webhooks/deliveries", status=403)
    client = env.client("acme")
    env.login(client, role=role)
    assert client.get("/app/webhooks/").status_code == 403


def test_an_endpoint_of_another_tenant_is_not_found(env, admin, crm_env):
    crm_env.write_tenant("gamma", plugins=["webhooks"])
    crm_env.reload()
    created = admin("POST", "/webhooks/endpoints", json={"url": "http://127.0.0.1/", "event_types": ["lead_created"]}, status=201)
    other = Api(env, "gamma", token(env, "gamma"))
    other("GET", f"/webhooks/endpoints/{created['id']}", status=404)
    assert other("GET", "/webhooks/endpoints")["items"] == []


def test_the_catalogue_lists_the_core_events_with_schemas(env, admin):
    listing = admin("GET", "/webhooks/events")
    types = {e["type"]: e for e in listing["items"]}
    for entity in ("lead", "contact", "company", "deal"):
        for action in ("created", "updated", "deleted"):
            assert types[f"{entity}_{action}"]["schema"]["type"] == "object"
    assert {"deal_stage_changed", "lead_converted", "webhook_test"} <= set(types)
    assert listing["envelope"]["required"] == ["type", "timestamp", "data"]


def test_endpoint_crud_and_deletion_keep_no_log(env, admin, receiver):
    created = admin("POST", "/webhooks/endpoints", json={"url": receiver.url, "event_types": ["lead_created"]}, status=201)
    changed = admin("PATCH", f"/webhooks/endpoints/{created['id']}", json={"description": "CRM sync", "event_types": ["deal_created", "lead_created"]})
    assert changed["description"] == "CRM sync" and changed["event_types"] == ["deal_created", "lead_created"] and changed["url"] == receiver.url
    admin("PATCH", f"/webhooks/endpoints/{created['id']}", json={"url": "http://10.0.0.1/"}, status=200)
    admin("POST", f"/webhooks/endpoints/{created['id']}/test", status=202)
    admin("DELETE", f"/webhooks/endpoints/{created['id']}", status=204)
    assert admin("GET", "/webhooks/deliveries")["items"] == []
    drain(env)  # the queued attempt finds nothing to send
    assert receiver.requests == []


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_pages_create_shows_the_secret_once_then_test_and_log(env, receiver):
    client = env.client("acme")
    env.login(client)
    page = client.get("/app/webhooks/").get_data(as_text=True)
    assert "No endpoint yet" in page and "lead_created" in page
    bad = client.post("/app/webhooks/endpoints", data={"csrf_token": csrf_of(page), "url": "gopher://x", "event_types": ["lead_created"]})
    assert bad.status_code == 422 and "http://" in bad.get_data(as_text=True)
    created = client.post("/app/webhooks/endpoints", data={"csrf_token": csrf_of(page), "url": receiver.url, "event_types": ["lead_created", "deal_created"], "enabled": "1"})
    html = created.get_data(as_text=True)
    secret = re.search(r"data-secret>(whsec_[^<]+)<", html).group(1)
    index = client.get("/app/webhooks/").get_data(as_text=True)
    assert receiver.url in index and secret not in index
    endpoint_id = int(re.search(r'data-endpoint="(\d+)"', index).group(1))
    edit = client.get(f"/app/webhooks/endpoints/{endpoint_id}").get_data(as_text=True)
    assert secret not in edit
    sent = client.post(f"/app/webhooks/endpoints/{endpoint_id}/test", data={"csrf_token": csrf_of(index)})
    assert sent.status_code == 302
    receiver.secrets.append(secret)
    drain(env)
    assert receiver.requests[0]["verified"] == {secret: True}
    log = client.get(f"/app/webhooks/log?endpoint_id={endpoint_id}&status=delivered").get_data(as_text=True)
    message_id = int(re.search(r'data-delivery="(\d+)"', log).group(1))
    detail = client.get(f"/app/webhooks/log/{message_id}").get_data(as_text=True)
    assert "webhook_test" in detail and "&lt;redacted&gt;" in detail
    replay = client.post(f"/app/webhooks/log/{message_id}/replay", data={"csrf_token": csrf_of(index)})
    assert replay.status_code == 302
    drain(env)
    assert len(receiver.requests) == 2
    rotated = client.post(f"/app/webhooks/endpoints/{endpoint_id}/rotate", data={"csrf_token": csrf_of(index)}).get_data(as_text=True)
    assert re.search(r"data-secret>(whsec_[^<]+)<", rotated).group(1) != secret
    assert client.get("/app/webhooks/log?status=bogus").status_code == 200
    assert client.post("/app/webhooks/log/replay-failed", data={"csrf_token": csrf_of(index), "since": "nope"}).status_code == 303
    assert client.post(f"/app/webhooks/endpoints/{endpoint_id}/delete", data={"csrf_token": csrf_of(index)}).status_code == 302
    assert client.get(f"/app/webhooks/endpoints/{endpoint_id}").status_code == 404


def test_a_form_without_the_csrf_token_is_refused(env, receiver):
    client = env.client("acme")
    env.login(client)
    answer = client.post("/app/webhooks/endpoints", data={"url": receiver.url, "event_types": ["lead_created"]})
    assert answer.status_code in (400, 403)
