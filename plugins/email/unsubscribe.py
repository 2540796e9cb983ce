"""Unsubscribing from marketing mail: a signed link in the message and the RFC 8058
one-click headers (``List-Unsubscribe``, ``List-Unsubscribe-Post``).

``POST /email/unsubscribe/<token>`` (what a mail client's one-click sends, or the page's
button) records the unsubscribe at once; ``GET`` only shows the page with the button
(link scanners follow GETs: a GET must not unsubscribe). The token is signed with the
instance's secret key and names the tenant and the address; it does not expire.

The unsubscribe is the channels plugin's consent record (``channels_consent``, scope
``marketing``, channel ``email``, source ``one-click`` or ``link``); the rows of the
former ``email_unsubscribe`` table were copied there by migration 0002.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, render_template, request, url_for
from itsdangerous import BadSignature, URLSafeSerializer

import crm_plugins.channels.contrib as channels
from crmcore import sdk

bp = Blueprint("email_public", __name__, url_prefix="/email", template_folder="templates")
bp.crm_public = True
SALT = "crm-email-unsubscribe"
#: ``email_unsubscribed(tenant, address)``: an address unsubscribed (sent once per address)
UNSUBSCRIBED_SIGNAL = "email_unsubscribed"


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.secret_key, salt=SALT)


def token_for(tenant: Any, address: str) -> str:
    return _serializer().dumps({"t": tenant.id, "a": address.lower()})


def link_for(tenant: Any, address: str) -> str:
    """The absolute unsubscribe URL (made while composing, in the request)."""
    return url_for("email_public.unsubscribe", token=token_for(tenant, address), _external=True)


def unsubscribed(addresses: list[str]) -> set[str]:
    """The addresses (lower case) that may not get marketing mail: unsubscribed, or
    opted out of every message (the channels consent record)."""
    return {a.lower() for a in channels.opted_out(addresses, "marketing")}


def _address(token: str) -> str:
    try:
        data = _serializer().loads(token)
    except BadSignature:
        abort(404)
    tenant = sdk.current_tenant()
    if not isinstance(data, dict) or tenant is None or data.get("t") != tenant.id or not isinstance(data.get("a"), str):
        abort(404)
    return data["a"]


@bp.route("/unsubscribe/<token>", methods=["GET", "POST"])
def unsubscribe(token: str) -> Any:
    address = _address(token)
    if request.method == "POST":
        one_click = request.form.get("List-Unsubscribe") == "One-Click"
        with sdk.atomic():
            if not channels.opted_out([address], "marketing"):  # a repeated click changes nothing
                channels.set_consent(address, opted_out=True, channel="email", source="one-click" if one_click else "link", scope="marketing")
                sdk.send_signal(UNSUBSCRIBED_SIGNAL, sdk.current_tenant(), address=address)
        return render_template("email/unsubscribed.html", address=address, done=True)
    return render_template("email/unsubscribed.html", address=address, done=False, token=token)
