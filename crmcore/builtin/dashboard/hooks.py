"""Hook implementations of the built-in ``dashboard`` plugin."""

from __future__ import annotations

import functools

from flask import get_template_attribute

from crmcore import hookimpl
from crmcore.contrib import DashboardWidget

#: (widget name, title, macro of crm/dashboard_figures.html, order): the summary strip.
FIGURES = (
    ("open-leads", "Open leads", "open_leads", 10),
    ("open-deals", "Open deals", "open_deals", 20),
    ("pipeline-value", "Pipeline value", "pipeline_value", 30),
    ("my-tasks", "My tasks", "my_tasks", 40),
)


@hookimpl(trylast=True)
def crm_dashboard_widgets(tenant, user):
    """The four figures at the top of the dashboard. They share one computation
    (:func:`figures.core_summary`, three queries), made when the first one renders."""
    from crmcore.builtin.dashboard import figures

    @functools.cache
    def computed() -> tuple[dict, dict]:
        return figures.core_summary(), figures.summary_links()

    def renderer(macro: str):
        def render() -> str:
            summary, links = computed()
            return str(get_template_attribute("crm/dashboard_figures.html", macro)(summary, links))

        return render

    return [DashboardWidget(name=name, title=title, render=renderer(macro), order=order, placement="summary") for name, title, macro, order in FIGURES]
