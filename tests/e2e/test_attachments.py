"""In Chromium: a rep attaches a file on a lead's page, sees it in the Files panel and on
the timeline, downloads it; a call's outcome and duration show on the timeline; axe-core
at desktop and phone width. Screenshots: artifacts/screenshots/attachments-*.png."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import MOBILE, expect, shot, sign_in
from tests.e2e.test_accessibility import axe_page, violations  # noqa: F401 (fixture)


def test_attach_a_file_and_see_it_with_a_call_on_the_timeline(axe_page: Any, live_server: Any, tmp_path: Any) -> None:  # noqa: F811 (the fixture)
    page = axe_page
    lead = live_server.api("POST", "/leads", json={"name": "Grace Hopper", "email": "grace@navy.example"})
    live_server.api("POST", "/activities", json={"kind": "call", "subject": "Intro call", "content": "Wants a demo", "outcome": "Interested",
                                                 "duration_seconds": 600, "lead_id": lead["id"]})
    offer = tmp_path / "offer.pdf"
    offer.write_bytes(b"%PDF-1.4 the offer")
    sign_in(page, live_server)
    page.goto(f"/app/leads/{lead['id']}")
    panel = page.locator("#files")
    panel.get_by_label("Attach a file").set_input_files(str(offer))
    panel.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("status").filter(has_text="offer.pdf attached.")).to_be_visible()
    expect(page.locator("#files .attachment-list")).to_contain_text("offer.pdf")
    expect(page.locator(".timeline .tl-attachment")).to_contain_text("Attached offer.pdf")
    call = page.locator(".timeline .tl-activity")
    expect(call).to_contain_text("Outcome: Interested")
    expect(call).to_contain_text("Duration: 10 min")
    expect(call).to_contain_text("Wants a demo")
    with page.expect_download() as download:
        page.locator("#files .attachment-list a", has_text="offer.pdf").click()
    assert download.value.suggested_filename == "offer.pdf"
    found = {"desktop": violations(page)}
    shot(page, "attachments-lead-desktop")
    page.set_viewport_size(MOBILE)
    page.reload()
    found["phone"] = violations(page)
    widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"the lead page is {widths[0]}px wide on a {widths[1]}px phone"
    shot(page, "attachments-lead-phone")
    found = {k: v for k, v in found.items() if v}
    assert not found, f"axe-core found critical or serious violations: {found}"
