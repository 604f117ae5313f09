"""No page loads anything from another host (issue 13.2): every request a page makes,
scripts, styles, fonts, images, workers, is to the service itself. /docs (Swagger UI)
and /redoc render from the service's own static/vendor/, and the UI links to them."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect

from tests.browser.test_a11y import populated

pytestmark = pytest.mark.browser
LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}


def guarded(browser: Browser, foreign: list[str]) -> Page:
    """A page whose requests to any other host are refused and recorded."""
    context = browser.new_context(viewport={"width": 1440, "height": 1000})

    def check(route: Route) -> None:
        url = route.request.url
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob", "about") or parts.hostname in LOOPBACK:
            route.continue_()
        else:
            foreign.append(url)
            route.abort()

    context.route("**/*", check)
    return context.new_page()


def test_no_page_loads_from_another_host(browser: Browser, server: str, rest: httpx.Client) -> None:
    sid = populated(rest)
    foreign: list[str] = []
    page = guarded(browser, foreign)
    paths = [
        "/",
        f"/s/{sid}?page=1",
        f"/s/{sid}?at=4",
        f"/s/{sid}/diff",
        f"/s/{sid}/kernel",
        f"/s/{sid}/why/5",
        f"/s/{sid}/versus?a=2&b=9",
        f"/s/{sid}/charts?at=3",
        f"/s/{sid}/find?q=pfn+1",
        "/s/nosuchsession000000",
        "/docs",
        "/redoc",
    ]
    for path in paths:
        answer = page.goto(server + path)
        assert answer is not None
        # and the browser itself would refuse another host: every page says so
        assert "default-src 'self'" in answer.headers["content-security-policy"], path
        page.wait_for_load_state("networkidle")
    page.goto(server + "/")
    page.locator('form[action="/walk/rfc-lifecycle"] button').click()
    page.wait_for_url("**walk=*")
    page.wait_for_load_state("networkidle")
    page.context.close()
    assert not foreign, foreign


def test_api_docs_render_offline_and_are_linked(
    browser: Browser, server: str, rest: httpx.Client
) -> None:
    foreign: list[str] = []
    page = guarded(browser, foreign)
    sid = rest.post("/sessions", json={}).json()["id"]
    for path in ("/", f"/s/{sid}"):
        page.goto(server + path)
        link = page.get_by_role("link", name="API docs")
        expect(link).to_have_attribute("href", "/docs")
    link.click()
    page.wait_for_url("**/docs")
    # Swagger UI drew the schema: the title and an operation of the API
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("sealscope")
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible()
    page.goto(server + "/redoc")
    expect(page.locator("h1").first).to_contain_text("sealscope")
    expect(page.get_by_text("/api/v1/sessions/{sid}/rewind").first).to_be_attached()
    page.context.close()
    assert not foreign, foreign
