"""Hooks the insights plugin declares for other plugins."""

from __future__ import annotations

from typing import Any

from crm_plugins.insights.contrib import GeneratedText
from crmcore.sdk import hookspec


@hookspec(firstresult=True)
def crm_insights_generate_text(tenant: Any, purpose: str, instruction: str, text: str) -> GeneratedText:
    """Generate a text: the first answer wins; None lets the next implementation answer,
    and without any answer the plugin's own default does (the OpenAI-compatible endpoint
    when ``llm_base_url`` is set, else an offline extractive summary). Called by the worker (task ``insights.generate``),
    never in a request, with ``text`` already redacted when the tenant asks for it.

    :param tenant: the tenant the text is for.
    :param purpose: ``"summary"`` (a record's summary) or ``"reply"`` (a reply draft to
        the customer's latest message in a conversation; ``text`` is the customer's
        messages there, newest first, separated by blank lines).
    :param instruction: what to do, in English ("Summarise the customer's history ...").
    :param text: the material (the record's notes and activities, newest first).
    :return: a :class:`crm_plugins.insights.contrib.GeneratedText`, or None to pass.
    """
