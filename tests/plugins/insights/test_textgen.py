"""Text generation: the offline extractive summary, redaction, the OpenAI-compatible
adapter against a loopback server speaking /v1/chat/completions, the hook, failures."""

from __future__ import annotations

import http.server
import json
import threading
from typing import Any

import pytest

from crmcore.sdk import hookimpl
from tests.plugins.insights.conftest import days_ago, drain, in_tenant

HISTORY = [
    "Intro call: they run 40 stores and want a loyalty CRM. Contact ann@shop.example or +44 20 7946 0958.",
    "Demo went well, the stores team liked the kanban board.",
    "Pricing concern: the loyalty module is above their budget.",
    "Weather small talk.",
    "Sent a revised quote for the loyalty module with a 10% discount; decision expected next week.",
]


class ChatCompletions:
    """A loopback server speaking OpenAI's /v1/chat/completions; records each request."""

    def __init__(self, status: int = 200) -> None:
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                answer = json.dumps({"id": "cmpl-1", "object": "chat.completion", "model": body["model"], "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": " A loyalty CRM for 40 stores; price is the concern; decision next week. "}}]}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def llm() -> Any:
    server = ChatCompletions()
    yield server
    server.close()


def _lead_with_history(env: Any) -> int:
    from crmcore.sdk import Lead, Note, create_record

    with in_tenant(env):
        lead = create_record(Lead, {"name": "Shop chain"})
        for i, text in enumerate(HISTORY):
            create_record(Note, {"body": text, "lead": lead.id, "created_at": days_ago(10 - i)})
        return lead.id


def test_extractive_summary_and_redaction():
    from crm_plugins.insights.textgen import extractive_summary, redact

    summary = extractive_summary(" ".join(HISTORY), 2)
    assert "Weather" not in summary and "loyalty module" in summary
    assert extractive_summary("One sentence only.") == "One sentence only."
    assert redact("Mail ann@shop.example, call +44 20 7946 0958 or 0171-555 0199; order 12") == "Mail [email], call [phone] or [phone]; order 12"


def test_offline_summary_through_the_api(env):
    lead = _lead_with_history(env)
    client = env.client("acme")
    agent = {"Authorization": f"Bearer {env.token('acme', 'agent')}"}
    asked = client.post("/api/v1/insights/summaries", json={"entity": "lead", "record_id": lead}, headers=agent)
    assert asked.status_code == 202 and asked.get_json()["status"] == "queued"
    drain(env)
    done = client.get(f"/api/v1/insights/summaries/{asked.get_json()['id']}", headers=agent).get_json()
    assert done["status"] == "done" and done["source"] == "extractive"
    assert "loyalty" in done["text"] and "Weather" not in done["text"] and "ann@shop.example" not in done["text"]
    assert client.post("/api/v1/insights/summaries", json={"entity": "planet", "record_id": 1}, headers=agent).status_code == 422
    with in_tenant(env):  # the summary is the person's data: exported and erased with them
        from crm_plugins.insights import privacy

        assert privacy.export([lead], [])[0].data["generated_texts"][0]["source"] == "extractive"
        assert privacy.erase([lead], [])["insights_generated_text"] == 1


def test_summarise_button_on_the_lead_page(env):
    lead = _lead_with_history(env)
    client = env.client("acme")
    env.login(client, "acme", role="agent")
    page = client.get(f"/app/leads/{lead}").get_data(as_text=True)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    answer = client.post("/app/insights/summaries", data={"csrf_token": token, "entity": "lead", "record_id": lead})
    assert answer.status_code == 302 and answer.headers["Location"].endswith(f"/app/leads/{lead}")
    assert "being written" in client.get(f"/app/leads/{lead}").get_data(as_text=True)
    drain(env)
    page = client.get(f"/app/leads/{lead}").get_data(as_text=True)
    assert "(extractive)" in page and "loyalty module" in page and "Summarise again" in page


def test_openai_compatible_endpoint_with_env_key_and_redaction(crm_env, llm, monkeypatch):
    monkeypatch.setenv("ACME_LLM_KEY", "sk-test-123")
    settings = {"debounce_seconds": 0, "llm_base_url": llm.base_url, "llm_model": "llama-3.1-8b", "llm_api_key": {"$env": "ACME_LLM_KEY"}}
    crm_env.write_tenant("acme", plugins=["insights"], settings={"insights": settings})
    crm_env.create_app()
    lead = _lead_with_history(crm_env)
    with in_tenant(crm_env):
        from crm_plugins.insights import textgen

        row_id = textgen.request_summary("lead", lead).id
    drain(crm_env)
    with in_tenant(crm_env):
        row = textgen.GeneratedTextRecord.get_by_id(row_id)
        assert (row.status, row.source, row.text) == ("done", "openai-compatible:llama-3.1-8b", "A loyalty CRM for 40 stores; price is the concern; decision next week.")
    [sent] = llm.requests
    assert sent["path"] == "/v1/chat/completions" and sent["auth"] == "Bearer sk-test-123"
    assert sent["body"]["model"] == "llama-3.1-8b" and sent["body"]["messages"][0]["role"] == "system"
    prompt = sent["body"]["messages"][1]["content"]
    assert "40 stores" in prompt and "[email]" in prompt and "[phone]" in prompt
    assert "ann@shop.example" not in prompt and "7946" not in prompt


def test_failing_endpoint_ends_failed(crm_env):
    from crmcore.models import Task as QueuedTask

    broken = ChatCompletions(status=500)
    try:
        settings = {"debounce_seconds": 0, "llm_base_url": broken.base_url, "llm_model": "m", "redact_personal_data": False}
        crm_env.write_tenant("acme", plugins=["insights"], settings={"insights": settings})
        crm_env.create_app()
        lead = _lead_with_history(crm_env)
        with in_tenant(crm_env):
            from crm_plugins.insights import textgen

            row_id = textgen.request_summary("lead", lead).id
            QueuedTask.update(max_attempts=1).execute()  # no waiting for backoffs in a test
        drain(crm_env)
        with in_tenant(crm_env):
            row = textgen.GeneratedTextRecord.get_by_id(row_id)
            assert row.status == "failed" and "HTTPError" in row.error and "500" in row.error
            assert QueuedTask.get(QueuedTask.kind == "insights.generate").status == "dead"
        assert len(broken.requests) == 1
    finally:
        broken.close()


def test_hook_crm_insights_generate_text(env, register_plugin):
    from crm_plugins.insights import textgen
    from crm_plugins.insights.contrib import GeneratedText

    class Canned:
        @hookimpl
        def crm_insights_generate_text(self, tenant, purpose, instruction, text):
            return GeneratedText(text=f"{purpose}: {len(text.splitlines())} items", source="canned")

    register_plugin(Canned(), name="canned")
    lead = _lead_with_history(env)
    with in_tenant(env):
        row_id = textgen.request_summary("lead", lead).id
    drain(env)
    with in_tenant(env):
        row = textgen.GeneratedTextRecord.get_by_id(row_id)
        assert (row.status, row.text, row.source) == ("done", "summary: 5 items", "canned")
