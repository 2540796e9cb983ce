"""No dead links: every same-origin link reachable from the dashboard (two clicks deep)
answers, for a signed-in admin, with a page rather than a 404 or a 500."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urldefrag, urljoin, urlsplit

from tests.e2e.conftest import sign_in

MAX_DEPTH = 2
SKIP_PATHS = ("/logout",)


class _Links(HTMLParser):
    """Collects a[href] (pages to follow) and the assets a page loads (checked, not followed)."""

    def __init__(self) -> None:
        super().__init__()
        self.pages: list[str] = []
        self.assets: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "a" and a.get("href"):
            self.pages.append(a["href"])
        elif tag == "link" and a.get("href") and (a.get("rel") or "") in ("stylesheet", "icon", "manifest"):
            self.assets.append(a["href"])
        elif tag in ("script", "img") and a.get("src"):
            self.assets.append(a["src"])


def test_every_link_from_the_dashboard_answers(page, live_server):
    live_server.seed()
    sign_in(page, live_server)
    request = page.context.request  # shares the browser's session cookie
    origin = live_server.url

    def same_site(href: str, base: str) -> str | None:
        url = urldefrag(urljoin(base, href)).url
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or f"{parts.scheme}://{parts.netloc}" != origin:
            return None
        if parts.path in SKIP_PATHS:
            return None
        return url

    found_on: dict[str, str] = {f"{origin}/app/": "(start)"}
    frontier = [f"{origin}/app/"]
    broken: list[str] = []
    assets: dict[str, str] = {}
    for depth in range(MAX_DEPTH + 1):
        following: list[str] = []
        for url in frontier:
            response = request.get(url)
            if response.status >= 400:
                broken.append(f"{response.status} {url} (linked from {found_on[url]})")
                continue
            if urlsplit(response.url).path == "/login":
                broken.append(f"sent to sign-in: {url} (linked from {found_on[url]})")
                continue
            if depth == MAX_DEPTH or "text/html" not in response.headers.get("content-type", ""):
                continue
            parser = _Links()
            parser.feed(response.text())
            for href in parser.assets:
                target = same_site(href, response.url)
                if target:
                    assets.setdefault(target, url)
            for href in parser.pages:
                target = same_site(href, response.url)
                if target and target not in found_on:
                    found_on[target] = url
                    following.append(target)
        frontier = following
    for url, page_url in assets.items():
        response = request.get(url)
        if response.status >= 400:
            broken.append(f"{response.status} {url} (loaded by {page_url})")

    print(f"crawled {len(found_on)} pages and {len(assets)} assets")
    assert len(found_on) > 10, f"the crawl found only {sorted(found_on)}"
    assert not broken, f"{len(broken)} of {len(found_on) + len(assets)} links are broken:\n" + "\n".join(broken)
