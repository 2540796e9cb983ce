"""The HTTP side of a delivery: which URLs may be called (SSRF), and a POST that connects
to the address that was checked.

An endpoint URL that resolves to a private, loopback, link-local, multicast, reserved or
otherwise non-global address is refused, unless the *instance* allows it with the
environment variable ``CRM_WEBHOOKS_ALLOW_PRIVATE=1`` (read at every call, never from a
tenant's settings: a tenant admin must not be able to let themselves reach the
instance's internal network). The URL is checked when it is saved and again at every
delivery, and the POST goes to the very address that passed the check, so a DNS answer
that changes in between (DNS rebinding) cannot redirect it.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

ALLOW_PRIVATE_ENV = "CRM_WEBHOOKS_ALLOW_PRIVATE"
#: How much of a response body the delivery log keeps.
EXCERPT_BYTES = 2000
#: How much of a response body is read at most (the rest is dropped with the connection).
READ_LIMIT = 64 * 1024
USER_AGENT = "crm-webhooks/0.1"


class RefusedUrl(ValueError):
    """The URL may not be called (bad form, or an address the instance does not allow)."""


def private_allowed() -> bool:
    """Whether the instance allows private addresses (``CRM_WEBHOOKS_ALLOW_PRIVATE=1``)."""
    return os.environ.get(ALLOW_PRIVATE_ENV, "").strip().lower() in ("1", "true", "yes")


def _forbidden(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (not ip.is_global) or ip.is_multicast or ip.is_reserved or ip.is_loopback or ip.is_link_local


def split_url(url: str) -> tuple[Any, str, int]:
    """(parts, host, port) of an http(s) URL, or :class:`RefusedUrl`."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise RefusedUrl(f"not a valid URL: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise RefusedUrl("must start with http:// or https://")
    if not parts.hostname:
        raise RefusedUrl("has no host")
    if parts.username or parts.password:
        raise RefusedUrl("must not contain a user name or password")
    return parts, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def checked_addresses(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to, all of them allowed; else :class:`RefusedUrl`."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise RefusedUrl(f"host {host!r} does not resolve ({exc})") from exc
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not private_allowed():
        bad = [a for a in addresses if _forbidden(a)]
        if bad:
            raise RefusedUrl(
                f"host {host!r} resolves to {bad[0]}, a private, loopback, link-local or reserved "
                f"address (the instance allows those only with {ALLOW_PRIVATE_ENV}=1)"
            )
    if not addresses:
        raise RefusedUrl(f"host {host!r} does not resolve")
    return addresses


def check_url(url: str) -> None:
    """Refuse (``RefusedUrl``) a URL that is malformed or resolves to a forbidden address."""
    _, host, port = split_url(url)
    checked_addresses(host, port)


class _PinnedHttps(HTTPAdapter):
    """HTTPS to an IP address while checking the certificate (and sending SNI) for the
    host name the URL had."""

    def __init__(self, hostname: str) -> None:
        self._hostname = hostname
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["server_hostname"] = self._hostname
        kwargs["assert_hostname"] = self._hostname
        super().init_poolmanager(*args, **kwargs)


_local = threading.local()


def _session(scheme: str, hostname: str) -> requests.Session:
    """A keep-alive session per thread and host name (a worker thread reuses connections)."""
    sessions = _local.__dict__.setdefault("sessions", {})
    key = (scheme, hostname)
    session = sessions.get(key)
    if session is None:
        session = requests.Session()
        session.trust_env = False  # no proxies from the environment: the checked address is what we call
        if scheme == "https":
            session.mount("https://", _PinnedHttps(hostname))
        sessions[key] = session
    return session


@dataclass
class Outcome:
    """What one POST gave: a status (None when no answer came) or an error."""

    status_code: int | None
    excerpt: str
    error: str | None
    duration_ms: int
    retry_after: float | None = None


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass(frozen=True)
class Pinned:
    """A URL whose host passed the check, with the address the POST will connect to."""

    scheme: str
    host: str
    port: int
    target: str  # the URL with the checked address in place of the host name

    @property
    def host_header(self) -> str:
        return self.host if self.port == (443 if self.scheme == "https" else 80) else f"{self.host}:{self.port}"


def pin(url: str) -> Pinned:
    """Check ``url`` now (:class:`RefusedUrl` if it may not be called) and pin the address.

    A delivery task pins once per batch: every POST of the batch goes to the address
    checked at its start, so DNS rebinding cannot redirect any of them."""
    parts, host, port = split_url(url)
    address = checked_addresses(host, port)[0]
    bracketed = f"[{address}]" if ":" in address else address
    target = urlunsplit((parts.scheme, f"{bracketed}:{port}", parts.path or "/", parts.query, ""))
    return Pinned(parts.scheme, host, port, target)


def post(url: str, body: str, headers: dict[str, str], timeout: float, pinned: Pinned | RefusedUrl | None = None) -> Outcome:
    """POST ``body`` to ``url`` at an address checked just now (or to ``pinned``, checked by
    the caller; a :class:`RefusedUrl` there is the refusal to report); never follows redirects."""
    started = time.monotonic()

    def done(status: int | None = None, excerpt: str = "", error: str | None = None, retry_after: float | None = None) -> Outcome:
        return Outcome(status, excerpt, error, int((time.monotonic() - started) * 1000), retry_after)

    if pinned is None:
        try:
            pinned = pin(url)
        except RefusedUrl as exc:
            pinned = exc
    if isinstance(pinned, RefusedUrl):
        return done(error=f"refused: {pinned}")
    sent = {**headers, "Host": pinned.host_header, "User-Agent": USER_AGENT}
    try:
        response = _session(pinned.scheme, pinned.host).post(
            pinned.target, data=body.encode(), headers=sent, timeout=timeout, allow_redirects=False, stream=True
        )
    except requests.Timeout:
        return done(error=f"timed out after {timeout:g} s")
    except requests.RequestException as exc:
        return done(error=f"{type(exc).__name__}: {exc}"[:500])
    try:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_content(8192):
            chunks.append(chunk)
            size += len(chunk)
            if size >= READ_LIMIT:
                break
        excerpt = b"".join(chunks)[:EXCERPT_BYTES].decode("utf-8", "replace")
    except requests.RequestException as exc:
        excerpt = f"(reading the answer failed: {type(exc).__name__})"
    finally:
        response.close()
    return done(response.status_code, excerpt, retry_after=_retry_after(response.headers.get("Retry-After")))
