"""Attachments on records (crmcore.attachments, /app/attachments): limits, storage outside
static, downloads only through a record the user may see, privacy export/erase, merge."""

from __future__ import annotations

import io
from pathlib import Path

from crmcore import attachments, db
from crmcore.attachments import Attachment
from crmcore.entities.models import Lead
from crmcore.entities.service import create


def make_lead(web_env, slug="acme", name="Ada Lovelace", owner=None):
    with web_env.app.app_context(), db.connection(), db.tenant_context(web_env.tenant(slug)):
        return create(Lead, {"name": name, "email": f"{name.split()[0].lower()}@example.com", **({"owner": owner} if owner else {})})


def upload(client, entity, record_id, name, body: bytes):
    return client.post(f"/app/attachments/{entity}/{record_id}", data={"csrf_token": client.csrf, "file": (io.BytesIO(body), name)},
                       content_type="multipart/form-data")


def rows(web_env):
    with web_env.app.app_context(), db.connection():
        return list(Attachment.select_all_tenants().order_by(Attachment.id))


def test_a_file_is_attached_listed_downloaded_and_deleted(signed_in, web_env):
    client = signed_in("agent")
    lead = make_lead(web_env)
    answer = upload(client, "lead", lead.id, "../../offer <v2>.pdf", b"%PDF-1.4 offer")
    assert answer.status_code == 302 and answer.headers["Location"].endswith(f"/app/leads/{lead.id}#files")
    [row] = rows(web_env)
    assert (row.filename, row.content_type, row.size, row.uploaded_by_id) == ("offer <v2>.pdf", "application/pdf", 14, client.user.id)
    with web_env.app.app_context():
        stored = attachments.path_of(row)
    assert stored.read_bytes() == b"%PDF-1.4 offer"
    assert stored.is_relative_to(web_env.app.instance_path) and "static" not in stored.parts
    page = client.get(f"/app/leads/{lead.id}").get_data(as_text=True)
    assert "offer &lt;v2&gt;.pdf" in page and f"/app/attachments/{row.id}" in page
    got = client.get(f"/app/attachments/{row.id}")
    assert got.status_code == 200 and got.data == b"%PDF-1.4 offer"
    assert got.headers["Content-Disposition"].startswith("attachment")
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert client.post(f"/app/attachments/{row.id}/delete", data={"csrf_token": client.csrf}).status_code == 302
    assert rows(web_env) == [] and not stored.exists()


def test_type_size_and_empty_files_are_refused_with_422(signed_in, web_env, monkeypatch):
    client = signed_in("agent")
    lead = make_lead(web_env)
    page = upload(client, "lead", lead.id, "page.html", b"<script>alert(1)</script>")
    assert page.status_code == 422 and "cannot be attached" in page.get_data(as_text=True)
    assert upload(client, "lead", lead.id, "empty.txt", b"").status_code == 422
    monkeypatch.setattr(attachments, "MAX_BYTES", 1000)
    big = upload(client, "lead", lead.id, "big.txt", b"x" * 1001)
    assert big.status_code == 422 and "larger than" in big.get_data(as_text=True)
    from crmcore.web import attachments as pages

    monkeypatch.setattr(pages.upload, "crm_max_body", 5000)
    assert upload(client, "lead", lead.id, "huge.txt", b"x" * 70_000).status_code == 413  # refused before the form is read
    assert client.post(f"/app/attachments/lead/{lead.id}", data={"csrf_token": client.csrf}).status_code == 422  # no file
    assert upload(client, "pipeline", lead.id, "a.txt", b"a").status_code == 404
    assert rows(web_env) == []
    assert [p for p in Path(web_env.app.instance_path, "attachments").rglob("*") if p.is_file()] == []  # no partial file left


def test_only_the_tenants_users_who_see_the_record_reach_its_files(signed_in, web_env):
    owner = signed_in("agent")
    lead = make_lead(web_env, owner=owner.user.id)
    upload(owner, "lead", lead.id, "notes.txt", b"secret plans")
    [row] = rows(web_env)
    assert signed_in("agent", "other").get(f"/app/attachments/{row.id}").status_code == 404
    other_lead = make_lead(web_env, "other", "Bob Other")
    assert upload(owner, "lead", other_lead.id, "x.txt", b"x").status_code == 404  # another tenant's record
    viewer = signed_in("viewer")
    assert viewer.get(f"/app/attachments/{row.id}").status_code == 200
    assert upload(viewer, "lead", lead.id, "x.txt", b"x").status_code == 403
    assert viewer.post(f"/app/attachments/{row.id}/delete", data={"csrf_token": viewer.csrf}).status_code == 403
    colleague = signed_in("agent")
    web_env.write_tenant("acme", name="Acme Ltd", settings={"core": {"agents_see_own_only": True}})
    web_env.reload()
    assert colleague.get(f"/app/attachments/{row.id}").status_code == 404
    assert owner.get(f"/app/attachments/{row.id}").status_code == 200


def test_privacy_export_and_erase_and_merge_take_the_files_along(signed_in, web_env):
    client = signed_in("admin")
    ada, twin = make_lead(web_env), make_lead(web_env, name="Twin Ada")
    upload(client, "lead", ada.id, "passport.png", b"\x89PNG ada")
    upload(client, "lead", twin.id, "cv.txt", b"twin cv")
    token = web_env.token("acme", "admin")
    headers = {"Authorization": f"Bearer {token}"}
    api = web_env.client("acme")
    merged = api.post(f"/api/v1/leads/{ada.id}/merge", json={"other_id": twin.id}, headers=headers)
    assert merged.status_code == 200, merged.json
    assert {(r.record_id, r.filename) for r in rows(web_env)} == {(ada.id, "passport.png"), (ada.id, "cv.txt")}
    export = api.get(f"/api/v1/leads/{ada.id}/export", headers=headers).json
    assert sorted(f["filename"] for f in export["plugins"]["core:attachments"]) == ["cv.txt", "passport.png"]
    with web_env.app.app_context():
        stored = [attachments.path_of(r) for r in rows(web_env)]
    erased = api.post(f"/api/v1/leads/{ada.id}/erase", headers=headers)
    assert erased.status_code == 200, erased.json
    assert erased.json["erased"]["crm_attachments"] == 2
    assert rows(web_env) == [] and not any(p.exists() for p in stored)
