"""Scheduled reports: due occurrences claimed once, emailed through the channels outbox to
a real SMTP server (aiosmtpd on loopback, as the email plugin's tests), and kept but not
sent while the tenant has no email plugin."""

from __future__ import annotations

import datetime as dt

import pytest

from crm_plugins.analytics import schedule
from crm_plugins.analytics.models import SavedReport
from crmcore import auth, db
from crmcore.sdk import Deal, Pipeline, Stage
from crmcore.testing import Api, drain_tasks, in_tenant
from tests.plugins.channels.conftest import email_settings, smtp  # noqa: F401  (fixture)


@pytest.fixture
def env(crm_env, smtp):  # noqa: F811
    crm_env.write_tenant("acme", plugins=["analytics", "channels", "email"],
                         settings={"analytics": {"time_zone": "Europe/Berlin"}, "core": {"agents_see_own_only": True}, "email": email_settings(smtp.port), "channels": {"retry_seconds": 0.05}})
    crm_env.write_tenant("beta", plugins=["analytics"])
    crm_env.write_instance(base_url="https://crm.example.com/")  # the worker's links: full addresses
    crm_env.create_app()
    return crm_env


def _manager(env, slug, role="manager", name="Boss"):
    with db.database.connection_context():
        tenant = env.tenant(slug)
        user = auth.create_user(tenant, f"{name.lower()}@{slug}.example.com", "secret-pw", role=role, name=name)
        return user.id, Api(env, slug, auth.create_token(tenant, role, user=user)[1])


def _weekly(api, recipient):
    return api("POST", "/analytics/reports", {"name": "Weekly deal size", "metric": "deal-size", "date_from": "2026-02-01", "date_to": "2026-02-28",
                                              "schedule": "weekly", "weekday": 0, "hour": 8, "recipients": [recipient]}, status=201)


def test_a_due_report_is_claimed_once_and_emailed_with_its_table(env, smtp):  # noqa: F811
    boss, api = _manager(env, "acme")
    with in_tenant(env):
        pipeline = Pipeline.create(name="Sales", order=1)
        won = Stage.create(pipeline=pipeline, name="Won", order=1, probability=100, is_won=True)
        Deal.create(title="Big one", value=1234, currency="EUR", probability=100, pipeline=pipeline, stage=won, owner=boss,
                    created_at=dt.datetime(2026, 2, 2), updated_at=dt.datetime(2026, 2, 2), closed_at=dt.datetime(2026, 2, 3, 12))
    report = _weekly(api, boss)
    assert report["schedule_status"] == "active"
    with in_tenant(env) as tenant:
        SavedReport.update(next_run_at=dt.datetime(2026, 3, 2, 7)).where(SavedReport.id == report["id"]).execute()
        stale = SavedReport.get_by_id(report["id"])
        # Two workers saw the same occurrence: only the first claim takes it.
        assert schedule.claim(stale, tenant) is True
        assert schedule.claim(stale, tenant) is False
        assert schedule.due_reports_job(tenant) == 0  # moved on to a future Monday 08:00 Berlin
        following = SavedReport.get_by_id(report["id"]).next_run_at
    assert following > dt.datetime.utcnow() and following.weekday() == 0 and following.hour in (6, 7)
    drain_tasks(env)
    assert len(smtp.accepted) == 1
    mail = smtp.accepted[0]
    assert mail["To"] == "boss@acme.example.com" and mail["Subject"] == "Report: Weekly deal size (2026-02-01 – 2026-02-28)"
    page = mail.get_body(("html",)).get_content()
    assert "<td>Boss</td>" in page and "1,234.00" in page and 'href="https://crm.example.com/app/analytics/deal-size.csv?date_from=2026-02-01&amp;date_to=2026-02-28' in page

    # An agent who sees only their own records gets only their figures by email, not the tenant's.
    agent, agent_api = _manager(env, "acme", role="agent", name="Rep")
    theirs = _weekly(agent_api, agent)
    with in_tenant(env) as tenant:
        SavedReport.update(next_run_at=dt.datetime(2026, 3, 2, 7)).where(SavedReport.id == theirs["id"]).execute()
        assert schedule.due_reports_job(tenant) == 1
    drain_tasks(env)
    assert len(smtp.accepted) == 2
    page = smtp.accepted[1].get_body(("html",)).get_content()
    assert smtp.accepted[1]["To"] == "rep@acme.example.com" and "Boss" not in page and "1,234.00" not in page


def test_without_the_email_plugin_the_schedule_is_kept_and_nothing_is_sent(env, smtp):  # noqa: F811
    boss, api = _manager(env, "beta")
    report = _weekly(api, boss)
    assert report["schedule_status"] == "needs the email plugin" and report["next_run_at"]
    with in_tenant(env, "beta") as tenant:
        SavedReport.update(next_run_at=dt.datetime(2026, 3, 2, 7)).where(SavedReport.id == report["id"]).execute()
        assert schedule.due_reports_job(tenant) == 0
        assert SavedReport.get_by_id(report["id"]).next_run_at == dt.datetime(2026, 3, 2, 7)
    assert drain_tasks(env) == 0 and smtp.accepted == []
