"""Walkthroughs and the side-by-side screens in a real browser: step through the RFC's
lifecycle, the huge-page walkthrough (next, back, jump) and the in-place conversion
refused by a pin, then compare a log under two designs and against the kernel.
Screenshots: tests/artifacts/."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from app import oracle
from app.service.scenarios import SCENARIOS
from tests.browser.conftest import ROOT

pytestmark = pytest.mark.browser


def start(page: Page, server: str, title: str, name: str) -> None:
    page.goto(server + "/")
    page.get_by_role("button", name=title).click()
    page.wait_for_url(f"**walk={name}*")
    expect(page.locator("#walk")).to_contain_text("step 0 of")


def next_step(page: Page, n: int) -> None:
    page.get_by_role("link", name="Next step ▶").click()
    expect(page.locator("#walk")).to_contain_text(f"step {n} of")


def test_step_through_the_rfc_lifecycle(page: Page, server: str, artifacts: Path) -> None:
    sc = SCENARIOS["rfc-lifecycle"]
    start(page, server, sc.title, sc.name)
    walk = page.locator("#walk")
    for n, step in enumerate(sc.steps, 1):
        next_step(page, n)
        now = walk.locator(".walk-now")
        expect(now).to_contain_text(step.note)
        expect(now.locator(".got")).to_contain_text("✓")
        if n == 6:  # the owner's fallocate callback, end exclusive
            expect(page.locator("#timeline")).to_contain_text("[0, 8)")
            expect(page.locator("#timeline")).to_contain_text("exclusive")
    # the last step is the live state: four callbacks earlier, the mappings gone now
    expect(walk).to_contain_text("The end")
    expect(page.locator("#owners")).to_contain_text("Zapped")
    page.screenshot(path=artifacts / "walk-lifecycle-end.png", full_page=True)
    # back one step, then jump to the first punch by clicking it in the list
    page.get_by_role("link", name="◀ Back").click()
    expect(walk).to_contain_text(f"step {len(sc.steps) - 1} of")
    walk.locator("ol.steps li").nth(9).locator("a").click()
    expect(walk).to_contain_text("step 10 of")
    expect(walk.locator(".walk-now")).to_contain_text("four callbacks, one per page")
    expect(page.locator("#timeline")).to_contain_text("[5, 5]")
    expect(page.locator("#timetravel")).to_contain_text("Preview")


def test_step_through_huge_pages(page: Page, server: str, artifacts: Path) -> None:
    sc = SCENARIOS["huge-pages-split"]
    start(page, server, sc.title, sc.name)
    expect(page.locator("header.top")).to_contain_text("THP within_size")
    walk = page.locator("#walk")
    walk.locator("ol.steps li").nth(6).locator("a").click()  # get_lock_pfn(5)
    expect(walk).to_contain_text("step 7 of")
    expect(walk.locator(".got")).to_contain_text("pfn 5, order 9")
    next_step(page, 8)
    next_step(page, 9)
    next_step(page, 10)
    expect(walk.locator(".got")).to_contain_text("pfn 3, order 9")
    next_step(page, 11)  # the partial punch: both huge pages split, clamped callbacks
    timeline = page.locator("#timeline")
    expect(timeline).to_contain_text("[256, 511]")
    expect(timeline).to_contain_text("[512, 767]")
    expect(timeline).to_contain_text("split")
    page.screenshot(path=artifacts / "walk-huge-split.png", full_page=True)


def test_side_by_side_and_the_kernel(page: Page, server: str, artifacts: Path) -> None:
    sc = SCENARIOS["multi-owner-fanout"]
    start(page, server, sc.title, sc.name)
    page.locator("#walk").get_by_role("link", name="Side by side").click()
    page.wait_for_url("**/diff")
    diff = page.locator("#diff")
    expect(diff).to_contain_text("the RFC as posted")
    expect(diff).to_contain_text("7 of 16 ops differ")
    expect(diff.locator("tr.differs")).to_have_count(7)
    row = diff.locator("#d-7")
    expect(row).to_contain_text("EPERM")
    expect(row).to_contain_text("result")
    expect(diff.locator("#d-9")).to_contain_text("fallocate → owner 1 [0, 4)")
    page.screenshot(path=artifacts / "side-by-side.png", full_page=True)
    # the other pair, only where they differ (htmx swaps the section)
    page.get_by_label("Left").select_option("session")
    page.get_by_label("Right").select_option("guest-memfd")
    page.get_by_label("only where they differ").check()
    page.get_by_role("button", name="Compare").click()
    expect(diff).to_contain_text("today's guest_memfd")
    expect(diff.locator("tr.same")).to_have_count(0)
    expect(diff).to_contain_text("not run: unknown seal 'F_SEAL_GUEST'")
    assert "b=guest-memfd" in page.url
    # against the kernel
    page.get_by_role("link", name="Against the kernel").click()
    page.wait_for_url("**/kernel")
    kernel = page.locator("#kernel")
    if oracle.available()[0]:
        expect(kernel).to_contain_text("No unexpected divergence")
        expect(kernel.locator("tr.st-intended").first).to_contain_text("F_SEAL_GUEST")
        expect(kernel.locator("tr.st-agree").first).to_contain_text("fd 3")
    else:
        expect(kernel).to_contain_text("cannot be asked here")
    page.screenshot(path=artifacts / "kernel.png", full_page=True)


def _axe_serious(page: Page) -> list[dict[str, object]]:
    from tests.browser.test_a11y import AXE  # here: test_a11y imports this module's helpers

    page.add_script_tag(url="/static/vendor/axe.min.js")
    return [v for v in page.evaluate(AXE) if v["impact"] in ("serious", "critical")]


@pytest.mark.skipif(
    not (ROOT / "static" / "vendor" / "axe.min.js").is_file(),
    reason="static/vendor/axe.min.js is missing: run `make static/vendor`",
)
def test_step_through_the_inplace_conversion_pin(
    page: Page, browser: Browser, server: str, artifacts: Path
) -> None:
    """coco-inplace-pin by clicks: every step as expected; the refused conversion shows
    EAGAIN and the error_offset it expects; axe-core clean there, light and dark."""
    sc = SCENARIOS["coco-inplace-pin"]
    start(page, server, sc.title, sc.name)
    expect(page.locator("#walk")).to_contain_text("inplace_conversion")
    walk = page.locator("#walk")
    refused = next(n for n, s in enumerate(sc.steps, 1) if s.errno == "EAGAIN")
    for n, step in enumerate(sc.steps[:refused], 1):
        next_step(page, n)
        now = walk.locator(".walk-now")
        expect(now).to_contain_text(step.note)
        expect(now.locator(".got")).to_contain_text("✓")
    now = walk.locator(".walk-now")
    expect(now.locator(".expected")).to_contain_text("EAGAIN")
    expect(now.locator(".expected")).to_contain_text("error_offset=12,288")
    expect(now.locator(".got")).to_contain_text("EAGAIN (11)")
    expect(page.locator("#timeline")).to_contain_text("set_memory_attributes2")
    page.screenshot(path=artifacts / "walk-coco-inplace-pin-eagain.png", full_page=True)
    found = {"light": _axe_serious(page)}
    dark = browser.new_context(viewport={"width": 1440, "height": 1000}, color_scheme="dark")
    dpage = dark.new_page()
    dpage.goto(page.url)
    expect(dpage.locator("#walk .walk-now")).to_contain_text(sc.steps[refused - 1].note)
    found["dark"] = _axe_serious(dpage)
    dpage.screenshot(path=artifacts / "walk-coco-inplace-pin-eagain-dark.png", full_page=True)
    dark.close()
    assert not any(found.values()), found
    for n, step in enumerate(sc.steps[refused:], refused + 1):
        next_step(page, n)
        expect(walk.locator(".walk-now")).to_contain_text(step.note)
        expect(walk.locator(".walk-now .got")).to_contain_text("✓")
    expect(walk).to_contain_text("The end")


def test_the_snp_digest_wraps_on_a_phone(browser: Browser, server: str, artifacts: Path) -> None:
    """coco-snp-launch's finish step expects a 96-digit launch digest: on a phone the
    step's panel wraps it instead of widening the page."""
    sc = SCENARIOS["coco-snp-launch"]
    context = browser.new_context(viewport={"width": 390, "height": 900})
    page = context.new_page()
    start(page, server, sc.title, sc.name)
    n = next(i for i, s in enumerate(sc.steps, 1) if s.op == "launch_finish" and not s.errno)
    walk = page.locator("#walk")
    walk.locator("ol.steps li").nth(n - 1).locator("a").click()
    expect(walk).to_contain_text(f"step {n} of")
    expect(walk.locator(".walk-now .expected")).to_contain_text(
        sc.steps[n - 1].expect["measurement"]
    )
    expect(walk.locator(".walk-now .got")).to_contain_text("✓")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    walk.screenshot(path=artifacts / "walk-coco-snp-finish-phone.png")
    context.close()
