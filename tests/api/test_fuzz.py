"""Every operation of the OpenAPI document, the bundled plugins' included, fed generated
input by schemathesis: no answer is a server error, and every answer matches the
response schema the document gives for its status (the public chat routes are not in
the document; tests/api/test_request_guard.py covers what reaches them).

The number of examples per operation is bounded so the suite stays fast
(``CRM_FUZZ_EXAMPLES``, default 4; the closing notes of issue 21 give a run with more).
Requests go through Flask's test client with an admin token of a tenant that has every
bundled plugin on; the document is the one that tenant is served.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import content_type_conformance, response_schema_conformance

EXAMPLES = int(os.environ.get("CRM_FUZZ_EXAMPLES", "4"))


@pytest.fixture
def fuzzed(crm_env):
    crm_env.write_tenant("acme", plugins=["analytics", "chat", "kanban", "scoring"])
    crm_env.create_app()
    client = crm_env.client("acme")
    token = crm_env.token("acme")
    spec = client.get("/api/v1/openapi.json", headers={"Authorization": f"Bearer {token}"}).json
    return client, token, schemathesis.openapi.from_dict(spec)


def test_generated_input_gets_no_server_error_and_answers_match_the_document(fuzzed):
    client, token, schema = fuzzed
    failures: Counter[str] = Counter()
    first: dict[str, str] = {}
    calls = 0
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 50  # the core's, analytics', kanban's, chat's and scoring's
    for operation in operations:

        @settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def call(case: schemathesis.Case) -> None:
            nonlocal calls
            calls += 1
            sent = case.as_transport_kwargs(base_url="http://acme.test")
            headers = {**(sent.get("headers") or {}), "Authorization": f"Bearer {token}"}
            answer = client.open(sent["url"].removeprefix("http://acme.test"), method=sent["method"], headers=headers, query_string=sent.get("params"), json=sent.get("json"), data=sent.get("data"))
            key = f"{operation.method.upper()} {operation.path}"
            if answer.status_code >= 500:
                failures[key] += 1
                first.setdefault(key, f"{sent['url']} {str(sent.get('json'))[:200]} -> {answer.get_data(as_text=True)[:200]}")
                return
            try:
                case.validate_response(answer, checks=[response_schema_conformance, content_type_conformance], headers=headers)
            except BaseException as exc:  # schemathesis raises a FailureGroup (an ExceptionGroup)
                failures[f"{key} (response schema)"] += 1
                first.setdefault(f"{key} (response schema)", str(exc)[:600])

        call()
    assert calls >= len(operations)
    assert not failures, "\n".join(f"{n} x {key}: {first[key]}" for key, n in failures.most_common())
