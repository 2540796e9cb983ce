"""Hook implementations of the built-in ``demo`` plugin."""

from __future__ import annotations

from crmcore import hookimpl


@hookimpl(tryfirst=True)
def crm_demo_data(tenant):
    """Seed the demo tenant with a living CRM (users, leads, deals, activities, tasks):
    see crmcore.builtin.demo.seed; it does nothing when the tenant was seeded before.

    tryfirst, unlike the other built-ins' implementations: plugins' demo data links to
    these records (a board needs deals, scores need leads), so they must exist first."""
    from crmcore.builtin.demo import seed

    seed.seed(tenant)
