"""Hooks the chat plugin declares for other plugins."""

from crm_plugins.chat.contrib import AssistantReply
from crmcore.sdk import hookspec


@hookspec(firstresult=True)
def crm_chat_assistant_reply(tenant, conversation, message, history) -> AssistantReply | None:
    """The assistant's answer to a visitor message, or None to stay silent.

    :param tenant: the Tenant.
    :param conversation: the ``ChatConversation`` row.
    :param message: the visitor's ``ChatMessage`` being answered.
    :param history: the conversation's messages, oldest first (``ChatMessage`` rows).
    :return: a ``crm_plugins.chat.contrib.AssistantReply`` or None.

    The bundled offline FAQ assistant implements it with ``trylast=True``, so another
    plugin (an LLM-backed one) answers first; the first non-None answer wins.
    """
