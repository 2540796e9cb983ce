"""Every operation of the OpenAPI document, the bundled plugins' included, fed generated
input by schemathesis: no answer is a server error, and every answer matches the
response schema the document gives for its status. The public chat routes (the widget
API) have a document of their own, ``/chat/openapi.json``, fuzzed the same way with a
widget key and a visitor token.

The number of examples per operation is bounded so the suite stays fast
(``CRM_FUZZ_EXAMPLES``, default 4; the closing notes of issue 21 give a run with more).
Requests go through Flask's test client with an admin token of a tenant that has every
bundled plugin on; the document is the one that tenant is served.
"""

from __future__ import annotations

import io
import os
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import content_type_conformance, response_schema_conformance

EXAMPLES = int(os.environ.get("CRM_FUZZ_EXAMPLES", "4"))


@pytest.fixture
def fuzzed(crm_env):
    crm_env.write_tenant("acme", plugins=["analytics", "automation", "chat", "insights", "kanban", "scoring", "webhooks"])
    crm_env.create_app()
    client = crm_env.client("acme")
    token = crm_env.token("acme")
    spec = client.get("/api/v1/openapi.json", headers={"Authorization": f"Bearer {token}"}).json
    return client, token, schemathesis.openapi.from_dict(spec)


def test_generated_input_gets_no_server_error_and_answers_match_the_document(fuzzed):
    client, token, schema = fuzzed
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 50  # the core's, kanban's, chat's, scoring's and webhooks'
    _fuzz(client, operations, {"Authorization": f"Bearer {token}"})


def test_the_widget_api_gets_no_server_error_and_answers_match_its_document(crm_env):
    from crm_plugins.chat import service

    limits = {"ip_requests_per_minute": 100_000, "sessions_per_ip_per_hour": 100_000, "visitor_messages_per_minute": 100_000, "attachments_enabled": True}
    crm_env.write_tenant("acme", plugins=["chat"], settings={"chat": limits})
    crm_env.create_app()
    client = crm_env.client("acme")
    with crm_env.app.app_context():
        key = service.public_key(crm_env.tenant("acme"))
    started = client.post("/api/v1/chat/public/session", json={"name": "Fuzz"}, headers={"X-Chat-Key": key})
    assert started.status_code == 201
    spec = client.get("/chat/openapi.json")
    assert spec.status_code == 200 and spec.headers["Access-Control-Allow-Origin"] == "*"
    operations = [result.ok() for result in schemathesis.openapi.from_dict(spec.json).get_all_operations()]
    assert len(operations) == 8  # every public route of the widget
    _fuzz(client, operations, {"X-Chat-Key": key, "X-Chat-Token": started.json["token"]}, clamp={"wait": 0.01})


def _form(sent: dict) -> object:
    """The request body for Flask's test client: schemathesis gives multipart files in
    the shape ``requests`` takes (``[(field, (filename, content, ...)), ...]``)."""
    data = sent.get("data")
    if not isinstance(data, dict) and not sent.get("files"):
        return data
    # (a form field has no "null": schemathesis's None for an optional one means "left out")
    form: dict[str, object] = {k: v for k, v in (data or {}).items() if v is not None}
    for field, value in sent.get("files") or []:
        filename, content = (value[0], value[1]) if isinstance(value, tuple) else ("file", value)
        if filename is None:  # requests' way of writing a plain field into a multipart body
            form[field] = content if isinstance(content, str) else str(content)
            continue
        content = content.encode() if isinstance(content, str) else content
        form[field] = (io.BytesIO(content if isinstance(content, bytes) else b""), filename)
    return form


def _fuzz(client, operations, credentials: dict[str, str], clamp: dict[str, float] | None = None) -> None:
    """Every operation with EXAMPLES generated cases, sent with ``credentials``; ``clamp``
    caps numeric query parameters (the long poll's ``wait``: a generated 25 s would only
    make the suite slow)."""
    failures: Counter[str] = Counter()
    first: dict[str, str] = {}
    calls = 0
    for operation in operations:

        @settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def call(case: schemathesis.Case) -> None:
            nonlocal calls
            calls += 1
            sent = case.as_transport_kwargs(base_url="http://acme.test")
            headers = {**(sent.get("headers") or {}), **credentials}
            params = dict(sent.get("params") or {})
            for name, most in (clamp or {}).items():
                if isinstance(params.get(name), (int, float)) and not isinstance(params[name], bool):
                    params[name] = min(params[name], most)
            answer = client.open(sent["url"].removeprefix("http://acme.test"), method=sent["method"], headers=headers, query_string=params, json=sent.get("json"), data=_form(sent))
            key = f"{operation.method.upper()} {operation.path}"
            if answer.status_code >= 500:
                failures[key] += 1
                first.setdefault(key, f"{sent} -> {answer.get_data(as_text=True)[:200]}")
                return
            try:
                case.validate_response(answer, checks=[response_schema_conformance, content_type_conformance], headers=headers)
            except BaseException as exc:  # schemathesis raises a FailureGroup (an ExceptionGroup)
                failures[f"{key} (response schema)"] += 1
                first.setdefault(f"{key} (response schema)", str(exc)[:600])

        call()
    assert calls >= len(operations)
    assert not failures, "\n".join(f"{n} x {key}: {first[key]}" for key, n in failures.most_common())
