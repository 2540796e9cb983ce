"""CSV hardening (issue 21): exported cells cannot run as spreadsheet formulas (and import
back unchanged), and an export of another tenant imports with its owners dropped, not
refused. Runs on SQLite and, with CRM_TEST_DATABASE_URL, PostgreSQL."""

from __future__ import annotations

import csv
import io

import pytest

from crmcore.entities import csvcells
from tests.api.test_csv_io import export, make, upload

FORMULAS = ['=HYPERLINK("http://evil.example","x")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\tTAB", "'=already quoted", "''@twice"]


@pytest.mark.parametrize("value", FORMULAS)
def test_formula_cells_are_neutralised_and_restored(value):
    exported = csvcells.neutralise(value)
    assert exported.startswith("'") and exported[1:] == value
    assert csvcells.restore(exported) == value


@pytest.mark.parametrize("value", ["+4930123456", "-12", "-3.50", "12", "plain", "'quoted", "", "a=b"])
def test_phone_numbers_negative_numbers_and_text_stay_readable(value):
    assert csvcells.neutralise(value) == value
    assert csvcells.restore(value) == value


def test_an_export_cannot_run_formulas_and_round_trips(api, as_role):
    make(api, name='=HYPERLINK("http://evil.example","click")', phone="+49 30 1234567", need="@SUM(A1)", budget="-5", authority="+1+2", company_name="'=quoted")
    response = api.get("/api/v1/leads/export.csv")
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True), newline="")))
    [row] = rows
    assert row["name"] == '\'=HYPERLINK("http://evil.example","click")'
    assert row["need"] == "'@SUM(A1)" and row["authority"] == "'+1+2" and row["company_name"] == "''=quoted"
    assert row["phone"] == "+49301234567" and row["budget"] == "-5"  # readable as they are
    other = as_role("admin", "other")
    result = upload(other, "leads", response.get_data()).json
    assert result["created"] == 1, result
    [back] = other.get("/api/v1/leads").json["items"]
    assert back["name"] == '=HYPERLINK("http://evil.example","click")'
    assert (back["need"], back["authority"], back["company_name"], back["budget"], back["phone"]) == ("@SUM(A1)", "+1+2", "'=quoted", "-5", "+49301234567")


def test_owners_of_another_tenant_are_dropped_with_a_note(api, api_env, as_role):
    from crmcore import auth, db

    with api_env.app.app_context(), db.database.connection_context():
        owner = auth.create_user(api_env.tenant("acme"), "rep@example.com", "pw-123456", role="agent")
    make(api, name="Owned", owner_id=owner.id)
    make(api, name="Nobody's")
    make(api, url="/api/v1/companies", name="Acme Owned", owner_id=owner.id)
    other = as_role("admin", "other")
    for entity, owned_row in (("leads", 2), ("companies", 2)):
        rows = export(api, entity)
        result = upload(other, entity, api.get(f"/api/v1/{entity}/export.csv").get_data()).json
        assert (result["created"], result["failed"]) == (len(rows), 0), result
        assert [w["row"] for w in result["warnings"]] == [owned_row], result
        assert result["warnings"][0]["warnings"]["owner_id"] == [f"{owner.id} is not a user of this tenant: imported without it."]
        assert all(r["owner_id"] == "" for r in export(other, entity))
    # in its own tenant the owner is kept and nothing is said
    again = upload(api, "companies", api.get("/api/v1/companies/export.csv").get_data()).json
    assert again["warnings"] == [] and again["created"] == 1
