"""Export of a filtered list (/app/export/<entity>.csv): the file holds what the list
shows, every page of it, with the page's own filters too; it needs records:export."""

from __future__ import annotations

import csv
import io

from crmcore.entities import service
from crmcore.entities.models import Company, Contact, Lead


def rows(response) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_the_export_link_carries_the_lists_filters(signed_in, in_tenant):
    boss = signed_in("manager")
    with in_tenant():
        for name, status in [("Ann", "new"), ("Bea", "qualified"), ("Cid", "new")]:
            service.create(Lead, {"name": name, "status": status})
    page = boss.get("/app/leads/?status=new&sort=name&cursor=x&view=3").get_data(as_text=True)
    assert 'href="/app/export/lead.csv?status=new&amp;sort=name" download>Export CSV' in page
    answer = boss.get("/app/export/lead.csv?status=new&sort=name")
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    assert "attachment" in answer.headers["Content-Disposition"]
    assert sorted(r["name"] for r in rows(answer)) == ["Ann", "Cid"]
    assert len(rows(boss.get("/app/export/lead.csv"))) == 3


def test_the_pages_own_filters_apply_and_bad_ones_are_left_out_as_on_the_list(signed_in, in_tenant):
    boss = signed_in("admin")
    with in_tenant():
        globex = service.create(Company, {"name": "Globex"})
        service.create(Contact, {"first_name": "Hank", "last_name": "Scorpio", "company": globex.id})
        service.create(Contact, {"first_name": "Homer", "last_name": "Simpson"})
    exported = rows(boss.get("/app/export/contact.csv?company=globex"))
    assert [r["first_name"] for r in exported] == ["Hank"]
    assert len(rows(boss.get("/app/export/contact.csv?lifecycle_stage=nonsense"))) == 2


def test_only_exporters_of_this_tenant(signed_in, in_tenant):
    rep = signed_in("agent")
    assert rep.get("/app/export/lead.csv").status_code == 403
    assert "Export CSV" not in rep.get("/app/leads/").get_data(as_text=True)
    with in_tenant():
        service.create(Lead, {"name": "Ours"})
    stranger = signed_in("admin", slug="other")
    assert rows(stranger.get("/app/export/lead.csv")) == []
    assert stranger.get("/app/export/task.csv").status_code == 404
