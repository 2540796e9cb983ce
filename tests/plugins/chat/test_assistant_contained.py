"""A raising (or wrongly typed) third-party assistant does not silence the bundled one:
``crm_chat_assistant_reply`` is asked through the contained firstresult call."""

from __future__ import annotations

import logging
from typing import Any

from crmcore import hookimpl

from .conftest import Chat, run_tasks
from .test_assistant import _faqs, _messages


def test_raising_assistant_lets_the_bundled_one_answer(chat: Chat, crm_env: Any, register_plugin: Any, caplog: Any) -> None:
    class BrokenLlm:
        @hookimpl
        def crm_chat_assistant_reply(self, tenant: Any, conversation: Any, message: Any, history: list[Any]) -> Any:
            raise RuntimeError("the LLM is down")

    _faqs(crm_env)
    register_plugin(BrokenLlm(), name="brokenllm")
    chat.say(chat.start()["token"], "what does the pro plan cost per user?")
    assert run_tasks(crm_env) == 1
    sender, text = _messages(crm_env)[-1]
    assert sender == "assistant" and "29 EUR" in text  # the bundled FAQ assistant answered
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("plugin 'brokenllm': hook crm_chat_assistant_reply failed" in e for e in errors), errors
    assert not any("'chat'" in e for e in errors), errors  # the error names the raising plugin


def test_wrongly_typed_assistant_answer_is_dropped(chat: Chat, crm_env: Any, register_plugin: Any, caplog: Any) -> None:
    class LooseLlm:
        @hookimpl
        def crm_chat_assistant_reply(self, tenant: Any, conversation: Any, message: Any, history: list[Any]) -> Any:
            return "a plain string"

    _faqs(crm_env)
    register_plugin(LooseLlm(), name="loosellm")
    chat.say(chat.start()["token"], "what does the pro plan cost per user?")
    run_tasks(crm_env)
    sender, text = _messages(crm_env)[-1]
    assert sender == "assistant" and "29 EUR" in text
    assert "plugin 'loosellm': hook crm_chat_assistant_reply returned a str, expected" in caplog.text
