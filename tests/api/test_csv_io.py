"""CSV export and import (/api/v1/<entity>/export.csv, /api/v1/<entity>/import) end to
end: round trips between tenants, per-row errors, rows that fail half-way, dry runs,
unknown columns, streaming, sizes and encodings, permissions, tenant isolation."""

from __future__ import annotations

import csv
import io

import peewee
import pytest

from crmcore import db
from crmcore.entities import csvio
from crmcore.entities.models import AuditEntry, CustomField, Lead, Tag, Tagging

READ_ONLY = {"id", "created_at", "updated_at", "version", "converted_at", "contact_id", "company_id"}


def make(api, url="/api/v1/leads", **data):
    body = {"name": "Ada Lovelace", **data} if url.endswith("leads") else data
    response = api.post(url, json=body)
    assert response.status_code == 201, response.json
    return response.json


def to_csv(rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue()


def upload(api, entity: str, text: str | bytes, dry_run: bool = False, raw: bool = False):
    url = f"/api/v1/{entity}/import" + ("?dry_run=true" if dry_run else "")
    data = text.encode() if isinstance(text, str) else text
    if raw:
        return api.post(url, data=data, headers={"Content-Type": "text/csv; charset=utf-8"})
    return api.post(url, data={"file": (io.BytesIO(data), f"{entity}.csv")}, content_type="multipart/form-data")


def export(api, entity: str, query: str = "") -> list[dict[str, str]]:
    response = api.get(f"/api/v1/{entity}/export.csv{query}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True), newline="")))


def in_tenant(env, slug: str):
    """A block with ``slug`` current and a connection open (for direct model access)."""
    import contextlib

    @contextlib.contextmanager
    def block():
        with db.connection(), db.tenant_context(env.tenant(slug)):
            yield

    return block()


def define_custom(env, slug: str, entity: str = "lead"):
    with in_tenant(env, slug):
        CustomField.create(entity=entity, key="size", label="Size", kind="number")
        CustomField.create(entity=entity, key="plan", label="Plan", kind="choice", choices=["basic", "pro"])


def comparable(rows: list[dict[str, str]], key: str) -> list[dict[str, str]]:
    return sorted(({k: v for k, v in row.items() if k not in READ_ONLY} for row in rows), key=lambda r: r[key])


# --------------------------------------------------------------------------- export


def test_export_header_values_and_download_headers(api, api_env):
    define_custom(api_env, "acme")
    lead = make(api, email="ada@example.com", phone="+44 20 7946 0018", estimated_value="12000.50", tags=["vip", "uk"], custom={"size": 12, "plan": "pro"}, need='Says "hi",\nthen leaves')
    make(api, name="Bob", status="qualified", source="referral")
    response = api.get("/api/v1/leads/export.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="leads-acme-')
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True), newline="")))
    header = list(rows[0])
    assert header[:3] == ["id", "name", "email"] and header[-2:] == ["custom.plan", "custom.size"]
    assert "custom" not in header and "tags" in header
    ada = next(r for r in rows if r["name"] == "Ada Lovelace")
    assert ada["id"] == str(lead["id"]) and ada["email"] == "ada@example.com" and ada["phone"] == "+442079460018"
    assert ada["tags"] == "uk;vip" and ada["custom.size"] == "12" and ada["custom.plan"] == "pro"
    assert ada["estimated_value"] == "12000.50" and ada["need"] == 'Says "hi",\nthen leaves'
    assert ada["source"] == "manual" and ada["owner_id"] == ""
    # The list endpoint's filters.
    assert [r["name"] for r in export(api, "leads", "?status=qualified")] == ["Bob"]
    assert [r["name"] for r in export(api, "leads", "?source=manual")] == ["Ada Lovelace"]
    assert [r["name"] for r in export(api, "leads", "?q=ada@")] == ["Ada Lovelace"]
    assert api.get("/api/v1/leads/export.csv?status=won").status_code == 422


def test_export_streams_in_batches(api, api_env):
    with in_tenant(api_env, "acme"):
        rows = [{"name": f"Lead {i:04d}", "email": f"l{i}@example.com", "status": "new", "source": "form"} for i in range(3000)]
        for batch in peewee.chunked(rows, 200):  # SQLite limits bound parameters
            Lead.insert_many(batch).execute()
    response = api.get("/api/v1/leads/export.csv")
    assert response.status_code == 200
    assert response.is_streamed  # a generator, not a body built in memory
    chunks = [c.decode() if isinstance(c, bytes) else c for c in response.response]
    assert len(chunks) > 1  # sent piece by piece as the batches are read
    lines = "".join(chunks).splitlines()
    assert len(lines) == 3001
    assert lines[1].split(",")[1] == "Lead 0000" and lines[-1].split(",")[1] == "Lead 2999"
    # Keyset batches: several queries of EXPORT_BATCH rows, each record exactly once.
    with in_tenant(api_env, "acme"):
        ids = [line.split(",")[0] for line in csvio.export_lines("leads", batch=700)][1:]
    assert len(ids) == len(set(ids)) == 3000


def test_other_tenant_export_has_none_of_my_rows(api, as_role):
    make(api, email="mine@example.com")
    make(api, url="/api/v1/companies", name="Mine Ltd")
    other = as_role("admin", "other")
    make(other, name="Theirs")
    assert [r["name"] for r in export(other, "leads")] == ["Theirs"]
    assert export(other, "companies") == []
    assert [r["name"] for r in export(api, "leads")] == ["Ada Lovelace"]


def test_roles(as_role, api_env):
    text = to_csv([["name"], ["Viewer's"]])
    for role in ("viewer", "agent"):
        client = as_role(role)
        assert client.get("/api/v1/leads/export.csv").status_code == 403
        assert upload(client, "leads", text).status_code == 403
    manager = as_role("manager")
    assert manager.get("/api/v1/leads/export.csv").status_code == 200
    assert upload(manager, "leads", text).json["created"] == 1
    anonymous = api_env.client("acme")
    assert anonymous.get("/api/v1/leads/export.csv").status_code == 401
    assert anonymous.post("/api/v1/leads/import", data=text, content_type="text/csv").status_code == 401


# --------------------------------------------------------------------------- import


def test_round_trip_into_the_other_tenant(api, as_role, api_env):
    for slug in ("acme", "other"):
        define_custom(api_env, slug)
    make(api, email="ada@example.com", phone="+44 20 7946 0018", company_name="Engines, Ltd", estimated_value="12000.50", tags=["vip", "uk"], custom={"size": 12.5, "plan": "pro"}, status="qualified", source="referral", priority="high", last_contact_at="2024-05-01T10:30:00", need="Line one\nline two", budget="€ 10k")
    make(api, name="Grace Hopper", email="grace@example.com", custom={"plan": "basic"})
    make(api, name="Plain")
    make(api, url="/api/v1/companies", name="Analytical Engines", domain="engines.example", size="11-50", annual_revenue="1000000.00", tags=["key"])
    make(api, url="/api/v1/contacts", first_name="Charles", last_name="Babbage", email="cb@example.com", emails=["charles@example.org"], phones=["+44 20 7946 0019"], consent_email=True, tags=["a", "b"])

    other = as_role("admin", "other")
    for entity, key in (("leads", "name"), ("companies", "name"), ("contacts", "email")):
        mine = export(api, entity)
        response = upload(other, entity, api.get(f"/api/v1/{entity}/export.csv").get_data())
        assert response.status_code == 200, response.json
        assert response.json == {"created": len(mine), "failed": 0, "errors": [], "warnings": [], "dry_run": False}
        theirs = export(other, entity)
        assert comparable(theirs, key) == comparable(mine, key)
        assert {r["id"] for r in theirs}.isdisjoint({r["id"] for r in mine})


def test_deals_import_into_the_default_pipeline(api, as_role):
    text = to_csv([["title", "value", "currency", "tags"], ["Big one", "5000.00", "usd", "q3;hot"], ["", "1", "EUR", ""], ["Odd currency", "1", "XYZ", ""]])
    result = upload(api, "deals", text).json
    assert (result["created"], result["failed"]) == (1, 2)
    assert [(e["row"], sorted(e["errors"])) for e in result["errors"]] == [(3, ["title"]), (4, ["currency"])]
    [deal] = export(api, "deals")
    assert deal["title"] == "Big one" and deal["currency"] == "USD" and deal["tags"] == "hot;q3" and deal["status"] == "open"
    # A same-tenant round trip keeps pipeline and stage.
    again = upload(api, "deals", api.get("/api/v1/deals/export.csv").get_data()).json
    assert again["created"] == 1, again
    rows = export(api, "deals")
    assert len(rows) == 2 and rows[0]["stage_id"] == rows[1]["stage_id"] and rows[0]["value"] == rows[1]["value"]


def test_row_errors_are_reported_and_good_rows_imported(api, api_env):
    define_custom(api_env, "acme")
    existing = make(api, name="Existing", email="taken@example.com")
    text = to_csv([
        ["name", "email", "status", "owner_id", "custom.plan", "tags"],
        ["Good One", "one@example.com", "new", "", "pro", "x;y"],            # row 2
        ["Bad Email", "not-an-email", "new", "", "", ""],                    # row 3
        ["", "noname@example.com", "won", "", "", ""],                       # row 4
        ["Dup", "TAKEN@example.com", "new", "", "", ""],                     # row 5
        ["Bad Custom", "c@example.com", "new", "", "gold", ""],              # row 6
        ["Bad Owner", "o@example.com", "new", "999", "", ""],                # row 7: imported, owner dropped
        ["", "", "", "", "", ""],                                            # row 8: blank, skipped
        ["Good Two", "two@example.com", "contacted", "", "", ""],            # row 9
        ["Dup In File", "one@example.com", "new", "", "", ""],               # row 10
    ])
    response = upload(api, "leads", text)
    assert response.status_code == 200, response.json
    result = response.json
    assert (result["created"], result["failed"]) == (3, 5)
    errors = {e["row"]: e["errors"] for e in result["errors"]}
    assert set(errors) == {3, 4, 5, 6, 10}  # row 8 is blank, yet still counted as a row
    assert set(errors[3]) == {"email"}
    assert set(errors[4]) == {"name", "status"}
    assert errors[5] == {"email": [f"duplicate of lead {existing['id']}"]}
    assert set(errors[6]) == {"custom.plan"}
    # an owner who is no user here (an export of another tenant) is dropped, with a note
    assert result["warnings"] == [{"row": 7, "warnings": {"owner_id": ["999 is not a user of this tenant: imported without it."]}}]
    good_one = next(r for r in export(api, "leads") if r["name"] == "Good One")
    assert errors[10] == {"email": [f"duplicate of lead {good_one['id']}"]}
    assert good_one["tags"] == "x;y" and good_one["source"] == "import" and good_one["custom.plan"] == "pro"
    assert sorted(r["name"] for r in export(api, "leads")) == ["Bad Owner", "Existing", "Good One", "Good Two"]


def test_a_row_failing_half_way_leaves_nothing(api, api_env):
    """The lead row is inserted, then its tags fail (a database trigger refuses one tag
    name): the savepoint takes the lead, its tags and its audit entry back."""
    with in_tenant(api_env, "acme"):
        if db.is_postgres():
            db.database.execute_sql("CREATE FUNCTION refuse_tag() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'tag refused'; END $$ LANGUAGE plpgsql")
            db.database.execute_sql("CREATE TRIGGER refuse_tag BEFORE INSERT ON crm_tag FOR EACH ROW WHEN (NEW.name = 'explode') EXECUTE FUNCTION refuse_tag()")
        else:
            db.database.execute_sql("CREATE TRIGGER refuse_tag BEFORE INSERT ON crm_tag WHEN NEW.name = 'explode' BEGIN SELECT RAISE(ABORT, 'tag refused'); END")
    text = to_csv([["name", "email", "tags"], ["Before", "b@example.com", "fine"], ["Boom", "boom@example.com", "new-tag;explode"], ["After", "a@example.com", "fine"]])
    result = upload(api, "leads", text).json
    assert (result["created"], result["failed"]) == (2, 1)
    assert result["errors"][0]["row"] == 3 and "tag refused" in result["errors"][0]["errors"]["_row"][0]
    with in_tenant(api_env, "acme"):
        assert sorted(lead.name for lead in Lead.select()) == ["After", "Before"]
        assert sorted(t.name for t in Tag.select()) == ["fine"]  # not even new-tag
        assert Tagging.select().count() == 2
        assert AuditEntry.select().where(AuditEntry.entity == "lead").count() == 2


def test_dry_run_writes_nothing_and_sends_nothing(api, api_env, captured_signals):
    text = to_csv([["name", "email", "tags"], ["One", "one@example.com", "t1"], ["Two", "one@example.com", "t2"], ["Three", "bad", ""]])
    with captured_signals("lead_created", "entity_created") as sent:
        result = upload(api, "leads", text, dry_run=True).json
    assert result["dry_run"] is True
    assert (result["created"], result["failed"]) == (1, 2)
    assert [e["row"] for e in result["errors"]] == [3, 4]
    assert result["errors"][0]["errors"]["email"][0].startswith("duplicate of lead ")
    assert sent == []
    with in_tenant(api_env, "acme"):
        assert Lead.select().count() == 0 and Tag.select().count() == 0 and AuditEntry.select().count() == 0
    # The real import afterwards gives what the dry run announced, with signals.
    with captured_signals("lead_created") as sent:
        real = upload(api, "leads", text).json
    assert (real["created"], real["failed"]) == (1, 2) and len(sent) == 1


def test_unknown_or_missing_columns_are_refused_before_any_row(api, api_env):
    response = upload(api, "leads", to_csv([["name", "emial", "Favourite Colour", "custom.nope"], ["Ada", "a@example.com", "blue", "1"]]))
    assert response.status_code == 422
    message = response.json["errors"]["columns"][0]
    assert "unknown column(s): emial, Favourite Colour, custom.nope" in message and "Known columns: id, name, email" in message
    missing = upload(api, "leads", to_csv([["email"], ["a@example.com"]]))
    assert missing.status_code == 422 and "missing required column(s): name" in missing.json["errors"]["columns"][0]
    twice = upload(api, "leads", to_csv([["name", "Name"], ["a", "b"]]))
    assert twice.status_code == 422 and "given twice: Name" in twice.json["errors"]["columns"][0]
    empty = upload(api, "leads", "")
    assert empty.status_code == 422 and "empty" in empty.json["message"]
    with in_tenant(api_env, "acme"):
        assert Lead.select().count() == 0


def test_sources_header_case_bom_and_raw_body(api):
    text = "\ufeff" + to_csv([[" Name ", "SOURCE", "created_at", "id"], ["No Source", "", "2020-01-01T00:00:00", "77"], ["Referred", "referral", "", ""], ["Bad", "telepathy", "", ""]])
    result = upload(api, "leads", text, raw=True).json
    assert (result["created"], result["failed"]) == (2, 1) and set(result["errors"][0]["errors"]) == {"source"}
    rows = {r["name"]: r for r in export(api, "leads")}
    assert rows["No Source"]["source"] == "import" and rows["Referred"]["source"] == "referral"
    assert rows["No Source"]["id"] != "77" and not rows["No Source"]["created_at"].startswith("2020")  # read-only columns ignored
    no_column = upload(api, "leads", to_csv([["name"], ["Plain"]])).json
    assert no_column["created"] == 1 and {r["name"]: r for r in export(api, "leads")}["Plain"]["source"] == "import"


def test_contacts_import_checks_duplicates_like_the_api(api):
    first = make(api, url="/api/v1/contacts", first_name="Ann", email="ann@example.com", emails=["ann@home.example"])
    text = to_csv([["first_name", "email", "emails", "company_id"], ["Dup", "x@example.com", "ANN@home.example", ""], ["NoCompany", "y@example.com", "", "999"], ["", "", "", ""], ["Fine", "z@example.com", "z2@example.com;z3@example.com", ""]])
    result = upload(api, "contacts", text).json
    errors = {e["row"]: e["errors"] for e in result["errors"]}
    assert result["created"] == 1 and errors == {2: {"email": [f"duplicate of contact {first['id']}"]}, 3: {"company_id": ["No such company."]}}
    fine = next(r for r in export(api, "contacts") if r["first_name"] == "Fine")
    assert fine["emails"] == "z2@example.com;z3@example.com" and fine["name"] == "Fine"


def test_sizes_encodings_and_media_types(api, api_env):
    too_big = b"name\n" + b"x" * csvio.MAX_IMPORT_BYTES
    assert upload(api, "leads", too_big, raw=True).status_code == 413
    assert upload(api, "leads", too_big).status_code == 413
    latin1 = "name\nJosé Müller\n".encode("latin-1")
    for raw in (True, False):
        response = upload(api, "leads", latin1, raw=raw)
        assert response.status_code == 422 and "not UTF-8" in response.json["message"]
    assert api.post("/api/v1/leads/import", json={"name": "x"}).status_code == 415
    no_file = api.post("/api/v1/leads/import", data={"other": "x"}, content_type="multipart/form-data")
    assert no_file.status_code == 422 and "file" in no_file.json["errors"]
    with in_tenant(api_env, "acme"):
        assert Lead.select().count() == 0


def test_wide_rows_and_broken_csv(api):
    result = upload(api, "leads", "name,email\nA,a@example.com,surplus\nB,b@example.com,\nC\n").json
    assert result["created"] == 2 and result["errors"] == [{"row": 2, "errors": {"_row": ["the row has 3 cells but the header has 2 columns"]}}]
    nul = upload(api, "leads", "name\nBad\x00Name\n").json
    assert nul["failed"] == 1 and nul["errors"][0]["errors"] == {"_row": ["the row contains a NUL character"]}
    huge_cell = upload(api, "leads", "name,need\nA,\"" + "x" * 200_000 + "\"\n")
    assert huge_cell.status_code == 422 and "not valid CSV near row" in huge_cell.json["message"]
    unclosed = upload(api, "leads", 'name\nA\n"B\nC\n')  # the quote would swallow the rows after it
    assert unclosed.status_code == 422 and "unexpected end of data" in unclosed.json["message"]
    quoted = upload(api, "leads", 'name\nAda "The Countess" Lovelace\n').json
    assert quoted["created"] == 1


def test_import_and_export_are_in_the_openapi_document(api_env):
    spec = api_env.client("acme").get("/api/v1/openapi.json").json
    for entity in ("leads", "contacts", "companies", "deals"):
        assert "post" in spec["paths"][f"/api/v1/{entity}/import"]
        assert "get" in spec["paths"][f"/api/v1/{entity}/export.csv"]
    assert "multipart/form-data" in spec["paths"]["/api/v1/leads/import"]["post"]["requestBody"]["content"]


@pytest.mark.parametrize("entity", ["contacts", "companies", "deals"])
def test_every_entity_exports_its_header_when_empty(api, entity):
    response = api.get(f"/api/v1/{entity}/export.csv")
    assert response.status_code == 200
    header = response.get_data(as_text=True).splitlines()
    assert len(header) == 1 and header[0].startswith("id,")
