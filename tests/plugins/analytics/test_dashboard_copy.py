"""The pre-computed dashboard (dashboard_cache.py) on the data of conftest.py: the job
enqueues one refresh task, the task keeps the unfiltered dashboard, the page shows that
copy with its time and a link to the live figures; filters, ``live=1`` and agents who see
only their own records get live figures; a fresh copy is not recomputed."""

from __future__ import annotations

from crm_plugins.analytics import dashboard_cache
from crm_plugins.analytics.models import DashboardCopy
from crmcore.sdk import Deal
from crmcore.testing import drain_tasks, in_tenant


def _win_rate(page: str) -> str:
    start = page.index('data-figure="win_rate"')
    return page[start:page.index("</p>", start)]


def test_the_dashboard_is_served_from_its_background_copy(world):
    with in_tenant(world.env) as tenant:
        assert dashboard_cache.refresh_job(tenant) is True
        dashboard_cache.refresh_job(tenant)  # a second scheduler in the same period: the same idempotency key
    assert drain_tasks(world.env) == 1
    with in_tenant(world.env) as tenant:
        copy = DashboardCopy.get()
        assert dashboard_cache.refresh_job(tenant) is False  # fresh: nothing enqueued
        # Facts change after the copy: a lost deal turns won (D2, Bob's, February).
        won = world.stages["Won"]
        Deal.update(stage=won).where(Deal.id == world.deals["D2"]).execute()

    world.env.login(world.client, "acme", role="manager")
    page = world.client.get("/app/analytics/").get_data(as_text=True)
    assert "Figures as of" in page and "Show live figures" in page
    assert "66.7%" in _win_rate(page)  # the copy: 2 won, 1 lost
    live = world.client.get("/app/analytics/?live=1").get_data(as_text=True)
    assert "Figures as of" not in live and "100.0%" in _win_rate(live)  # 3 won, none lost
    filtered = world.client.get("/app/analytics/?source=web").get_data(as_text=True)
    assert "Figures as of" not in filtered
    assert copy.seconds >= 0

    agent = world.env.client("acme")
    world.env.login(agent, "acme", role="agent", email="rep@acme.test")
    world.env.write_tenant("acme", plugins=["analytics"], settings={"analytics": {"time_zone": "America/New_York"}, "core": {"agents_see_own_only": True}})
    world.env.reload()
    own = agent.get("/app/analytics/").get_data(as_text=True)
    assert "Figures as of" not in own  # an agent limited to their own records: live, theirs


def test_refresh_minutes_zero_turns_the_copy_off(world):
    world.env.write_tenant("acme", plugins=["analytics"], settings={"analytics": {"time_zone": "America/New_York", "dashboard_refresh_minutes": 0}})
    world.env.reload()
    with in_tenant(world.env) as tenant:
        dashboard_cache.refresh(tenant)
        assert dashboard_cache.refresh_job(tenant) is False
    world.env.login(world.client, "acme", role="manager")
    assert "Figures as of" not in world.client.get("/app/analytics/").get_data(as_text=True)
