"""Safe defaults of the web surface: security headers and the Content-Security-Policy
of pages, throttled sign-in, the API's per-token rate limit (crmcore.ratelimit)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from crmcore import auth, db, ratelimit


@pytest.fixture(autouse=True)
def mid_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """The limits count in fixed windows aligned to the clock (15 min for sign-ins, 1 min
    for the API): a test's attempts must not straddle a window's end, so the limiter's
    clock stands in the middle of one (a run at 19:00:00 saw its count start again)."""
    import time as real_time

    start = int(real_time.time() // ratelimit.LOGIN_WINDOW_SECONDS) * ratelimit.LOGIN_WINDOW_SECONDS
    middle = start + ratelimit.LOGIN_WINDOW_SECONDS / 2  # 7.5 min in: mid-window for 15 min and 1 min alike

    class Clock:
        @staticmethod
        def time() -> float:
            return middle

    monkeypatch.setattr(ratelimit, "time", Clock)

PAGE_HEADERS = {"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}


@pytest.fixture
def env(crm_env: Any) -> Any:
    crm_env.write_tenant("acme", name="Acme Ltd", plugins=["chat", "kanban", "webhooks"])
    return crm_env


def _csp(response: Any) -> dict[str, str]:
    policy = response.headers.get("Content-Security-Policy", "")
    return {d.split(" ", 1)[0]: d.split(" ", 1)[1] if " " in d else "" for d in (p.strip() for p in policy.split(";")) if d}


def _login(client: Any, email: str, password: str) -> Any:
    client.get("/login")
    with client.session_transaction() as sess:
        csrf = sess["csrf"]
    return client.post("/login", data={"email": email, "password": password, "csrf_token": csrf})


# --------------------------------------------------------------------------- headers


def test_pages_send_security_headers_and_a_nonce_based_script_policy(env: Any) -> None:
    env.create_app()
    client = env.client()
    login_page = client.get("/login")
    for name, value in PAGE_HEADERS.items():
        assert login_page.headers.get(name) == value, name
    policy = _csp(login_page)
    assert policy["frame-ancestors"] == "'none'" and policy["object-src"] == "'none'"
    assert "'unsafe-inline'" not in policy["script-src"] and "'unsafe-eval'" not in policy["script-src"]

    env.login(client, role="admin")
    for path in ("/app/", "/app/leads/", "/app/chat/", "/app/kanban/", "/app/webhooks/", "/app/deals/", "/app/tasks/"):
        page = client.get(path)
        assert page.status_code == 200, path
        for name, value in PAGE_HEADERS.items():
            assert page.headers.get(name) == value, (path, name)
        body = page.get_data(as_text=True)
        script_src = _csp(page)["script-src"]
        # Every inline script carries this request's nonce; no inline event handlers.
        for tag in re.findall(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", body):
            nonce = re.search(r'nonce="([^"]+)"', tag)
            assert nonce and f"'nonce-{nonce.group(1)}'" in script_src, (path, tag)
        assert not re.search(r"\son(click|change|submit|load|input)=", body), path

    # The list page's inline script gets a fresh nonce per request.
    first, second = (_csp(client.get("/app/leads/"))["script-src"] for _ in range(2))
    assert "'nonce-" in first and first != second


def test_api_docs_keep_their_policy_and_the_widget_stays_embeddable(env: Any) -> None:
    env.create_app()
    client = env.client()
    docs = client.get("/api/v1/docs")
    assert docs.status_code == 200 and "frame-ancestors 'none'" in docs.headers["Content-Security-Policy"]
    widget = client.get("/chat/widget.js")
    assert widget.status_code == 200 and widget.headers["X-Content-Type-Options"] == "nosniff"
    # Loaded by other sites: no page policy, no framing rule, no resource policy on it.
    for name in ("Content-Security-Policy", "X-Frame-Options", "Cross-Origin-Resource-Policy"):
        assert name not in widget.headers, name
    api = client.get("/api/v1/leads", headers={"Authorization": f"Bearer {env.token('acme')}"})
    assert api.status_code == 200 and api.headers["X-Content-Type-Options"] == "nosniff"


# --------------------------------------------------------------------------- sign-in


def test_failed_sign_ins_are_throttled_per_account(env: Any) -> None:
    env.create_app()
    with env.app.app_context(), db.database.connection_context():
        auth.create_user(env.tenant("acme"), "ada@acme.test", "right-password", role="admin")
    client = env.client()
    for _ in range(ratelimit.LOGIN_FAILURES_PER_ACCOUNT):
        assert _login(client, "ada@acme.test", "guess").status_code == 401
    refused = _login(client, "ada@acme.test", "guess")
    assert refused.status_code == 429
    assert 0 < int(refused.headers["Retry-After"]) <= ratelimit.LOGIN_WINDOW_SECONDS
    assert "Too many failed sign-ins" in refused.get_data(as_text=True)
    # The right password is refused too while the account is locked (else guessing goes on).
    assert _login(client, "ada@acme.test", "right-password").status_code == 429
    # Another account from the same address is not locked by Ada's failures.
    with env.app.app_context(), db.database.connection_context():
        auth.create_user(env.tenant("acme"), "bob@acme.test", "bobs-password", role="agent")
    assert _login(client, "bob@acme.test", "bobs-password").status_code == 302


def test_failed_sign_ins_are_throttled_per_ip_and_success_clears_the_account(env: Any) -> None:
    env.create_app()
    with env.app.app_context(), db.database.connection_context():
        auth.create_user(env.tenant("acme"), "ada@acme.test", "right-password", role="admin")
    client = env.client()
    for _ in range(ratelimit.LOGIN_FAILURES_PER_ACCOUNT - 1):
        assert _login(client, "ada@acme.test", "guess").status_code == 401
    assert _login(client, "ada@acme.test", "right-password").status_code == 302
    assert _login(env.client(), "ada@acme.test", "guess").status_code == 401  # the count started again

    sprayed = 0
    while sprayed < ratelimit.LOGIN_FAILURES_PER_IP:  # one guess at many accounts
        response = _login(env.client(), f"user{sprayed}@acme.test", "guess")
        sprayed += 1
        if response.status_code == 429:
            break
    assert response.status_code == 429 and "Retry-After" in response.headers
    other_ip = _login(env.client(), "ada@acme.test", "right-password")
    assert other_ip.status_code == 429  # same IP (the test client's): still refused
    fresh = env.client()
    fresh.environ_base = {"REMOTE_ADDR": "10.0.0.9"}
    assert _login(fresh, "ada@acme.test", "right-password").status_code == 302


# --------------------------------------------------------------------------- the API


def test_api_tokens_are_rate_limited_with_ratelimit_headers(env: Any) -> None:
    env.write_instance(api_rate_per_minute=3)
    env.create_app()
    client = env.client()
    token, other = env.token("acme"), env.token("acme")
    seen = []
    for _ in range(3):
        response = client.get("/api/v1/leads", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
        seen.append(int(response.headers["RateLimit-Remaining"]))
        assert response.headers["RateLimit-Limit"] == "3" and response.headers["RateLimit-Policy"] == "3;w=60"
    refused = client.get("/api/v1/leads", headers={"Authorization": f"Bearer {token}"})
    if refused.status_code == 200:  # the minute turned between the calls: a fresh window
        refused = [client.get("/api/v1/leads", headers={"Authorization": f"Bearer {token}"}) for _ in range(3)][-1]
    assert refused.status_code == 429, refused.get_data(as_text=True)
    assert 0 < int(refused.headers["Retry-After"]) <= 60 and refused.headers["RateLimit-Remaining"] == "0"
    assert "3 requests a minute" in refused.get_json()["message"]
    assert seen[0] == 2  # the first request of a token opens its window
    # Another token has its own budget.
    assert client.get("/api/v1/leads", headers={"Authorization": f"Bearer {other}"}).status_code == 200


def test_api_rate_setting_is_validated(crm_env: Any) -> None:
    from crmcore.config import ConfigError

    crm_env.write_instance(api_rate_per_minute=-1)
    with pytest.raises(ConfigError, match="api_rate_per_minute"):
        crm_env.create_app()
