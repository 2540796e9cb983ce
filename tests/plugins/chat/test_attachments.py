"""Visitor attachments: limits by size and by content, stored safely, served only to the
visitor of that conversation and to the tenant's users."""

from __future__ import annotations

import io
from typing import Any

from crm_plugins.chat.models import ChatAttachment

from .conftest import Chat, chat_settings, in_tenant

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def _upload(chat: Chat, token: str, data: bytes, name: str, client_id: str | None = None) -> Any:
    form: dict[str, Any] = {"file": (io.BytesIO(data), name)}
    if client_id:
        form["client_id"] = client_id
    return chat.client.post("/api/v1/chat/public/attachments", data=form, headers=chat.headers(token), content_type="multipart/form-data")


def test_upload_is_checked_stored_and_served_to_the_right_people(crm_env: Any) -> None:
    crm_env.write_tenant("acme", plugins=["chat"], settings=chat_settings(attachment_max_mb=0.01, attachment_types=["image/png", "text/plain"]))
    crm_env.create_app()
    chat = Chat(crm_env)
    token = chat.start()["token"]
    other = chat.start()["token"]

    made = _upload(chat, token, PNG, "../../etc/shot.png", client_id="f-1")
    assert made.status_code == 201, made.get_data(as_text=True)
    body = made.get_json()
    assert body["content"] == "shot.png" and body["attachment"]["content_type"] == "image/png" and body["attachment"]["size"] == len(PNG)
    assert _upload(chat, token, PNG, "shot.png", client_id="f-1").get_json()["id"] == body["id"]  # a resend

    # an HTML page named .png is refused: the type comes from the bytes
    fake = _upload(chat, token, b"\x00\x01<html><script>alert(1)</script>", "cat.png")
    assert fake.status_code == 422 and "file" in fake.get_json()["errors"]["json"]
    assert _upload(chat, token, b"%PDF-1.4 ...", "doc.pdf").status_code == 422  # not in attachment_types
    assert _upload(chat, token, b"x" * 20000, "big.txt").status_code == 422  # over 0.01 MB
    assert _upload(chat, token, b"", "empty.txt").status_code == 422
    assert chat.client.post("/api/v1/chat/public/attachments", data={}, headers=chat.headers(token)).status_code == 422

    aid = body["attachment"]["id"]
    with in_tenant(crm_env) as tenant:
        from crm_plugins.chat import service

        stored = ChatAttachment.get_by_id(aid)
        with crm_env.app.app_context():
            path = service.attachment_path(tenant, stored)
        assert path.read_bytes() == PNG and "shot" not in path.name
    own = chat.client.get(f"/api/v1/chat/public/attachments/{aid}?key={chat.key}&token={token}")
    assert own.status_code == 200 and own.data == PNG and own.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in own.headers["Content-Security-Policy"]
    assert chat.client.get(f"/api/v1/chat/public/attachments/{aid}?key={chat.key}&token={other}").status_code == 404
    assert chat.client.get(f"/api/v1/chat/public/attachments/{aid}?key={chat.key}").status_code == 401

    agent_client = crm_env.client("acme")
    assert agent_client.get(f"/app/chat/attachments/{aid}").status_code == 302  # sign in first
    crm_env.login(agent_client, "acme", role="agent")
    assert agent_client.get(f"/app/chat/attachments/{aid}").data == PNG
    text = _upload(chat, token, "héllo\n".encode(), "note.txt").get_json()
    download = agent_client.get(f"/app/chat/attachments/{text['attachment']['id']}")
    assert download.headers["Content-Disposition"].startswith("attachment")  # not shown inline
    listed = agent_client.get(f"/api/v1/chat/conversations/{body['conversation_id']}/messages").get_json()
    assert [m["attachment"]["name"] for m in listed if m["attachment"]] == ["shot.png", "note.txt"]


def test_attachments_can_be_switched_off_and_other_tenants_see_nothing(crm_env: Any) -> None:
    crm_env.write_tenant("acme", plugins=["chat"], settings=chat_settings(attachments_enabled=False))
    crm_env.write_tenant("beta", plugins=["chat"], settings=chat_settings())
    crm_env.create_app()
    acme, beta = Chat(crm_env, "acme"), Chat(crm_env, "beta")
    assert _upload(acme, acme.start()["token"], PNG, "a.png").status_code == 403
    made = _upload(beta, beta.start()["token"], PNG, "b.png").get_json()
    agent = crm_env.client("acme")
    crm_env.login(agent, "acme", role="admin")
    assert agent.get(f"/app/chat/attachments/{made['attachment']['id']}").status_code == 404
