"""The UI in a real browser: the RFC's story played by hand (seal, refusal, a dragged
range, a KVM owner, a fault, a punch that zaps the mapping), time travel, a session
followed live while REST drives it, and shared links. Screenshots: tests/artifacts/."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from app.pages.maps import DASH

pytestmark = pytest.mark.browser
PUNCH = ["FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"]


def create_session(page: Page, server: str, profile: str = "rfc-v2") -> str:
    page.goto(server + "/")
    page.locator(f'input[name=profile][value="{profile}"]').check()
    page.get_by_label("Physical memory").select_option(str(2**30))
    page.get_by_role("button", name="Create session").click()
    page.wait_for_url("**/s/*")
    return page.url.split("/s/")[1].split("?")[0]


def do(page: Page, button: str, expect_text: str) -> None:
    """Click an action button; wait for its answer in #result."""
    with page.expect_response(lambda r: "/do/" in r.url):
        page.get_by_role("button", name=button, exact=True).click()
    expect(page.locator("#result")).to_contain_text(expect_text)


def drag_pages(page: Page, first: int, last: int) -> None:
    """Drag across the page map from page `first` to page `last`."""
    track = page.locator('.track[data-kind="pages"]')
    track.scroll_into_view_if_needed()  # the page scrolls (the actions flow with it)
    box = track.bounding_box()
    assert box is not None
    start = int(track.get_attribute("data-start") or 0)
    end = int(track.get_attribute("data-end") or 1)

    def x(i: int) -> float:
        return box["x"] + (i - start + 0.5) / (end - start) * box["width"]

    y = box["y"] + box["height"] / 2
    page.mouse.move(x(first), y)
    page.mouse.down()
    page.mouse.move(x(last), y, steps=8)
    page.mouse.up()


def seq(rest: httpx.Client, sid: str) -> int:
    return int(rest.get(f"/sessions/{sid}").json()["seq"])


def test_the_rfc_story_by_hand(
    page: Page, server: str, rest: httpx.Client, artifacts: Path
) -> None:
    sid = create_session(page, server)
    # an empty memfd takes F_SEAL_GUEST
    page.locator("#a-name").fill("vm0")
    do(page, "memfd_create", "fd 3")
    do(page, "F_ADD_SEALS", "Done")
    expect(page.locator("#files .badge.seal.guest")).to_have_text("F_SEAL_GUEST")
    # a memfd with a size does not, and the page says why
    page.locator("#a-name").fill("data")
    do(page, "memfd_create", "fd 4")
    page.locator("#a-len").fill("8K")
    do(page, "ftruncate", "8,192 bytes")
    do(page, "F_ADD_SEALS", "Refused")
    result = page.locator("#result")
    expect(result).to_contain_text("EBUSY (16)")
    expect(result).to_contain_text("F_SEAL_GUEST needs an empty file (size is 8192)")
    expect(result).to_contain_text("can only be set on an empty memfd")
    page.screenshot(path=artifacts / "refused.png", full_page=True)
    # the timeline keeps the refusal; "why?" asks the engine again (a replay)
    page.locator("#op-5 details.why summary").click()
    expect(page.locator("#op-5 .why-body")).to_contain_text("can only be set on an empty memfd")
    # back to vm0: a size, the KVM owner, registered
    page.locator("#files a.file-link", has_text="vm0").click()
    expect(page.locator("#act-file")).to_have_text("vm0 (fd 3)")
    page.locator("#a-len").fill("64K")
    do(page, "ftruncate", "65,536 bytes")
    do(page, "create owner", "owner_id 0")
    do(page, "memfd_register_guest", "owner 0 registered")
    # allocate pages 2..5 by dragging across the page map
    drag_pages(page, 2, 5)
    expect(page.locator("#r-from")).to_have_value("2")
    expect(page.locator("#r-to")).to_have_value("5")
    do(page, "Allocate", "[2, 6)")
    expect(result).to_contain_text("exclusive")
    # a memslot, and the guest faults gfn 259 (file page 3)
    page.locator("#m-gfn").fill("256")
    do(page, "add memslot", "slot 0: gfn 256")
    page.locator("#f-gfn").fill("259")
    do(page, "guest fault", "pfn 1, order 0")
    expect(page.locator("#owners")).to_contain_text("259")
    expect(page.locator(".track.pages .b.mapped")).to_have_count(1)
    # hovering page 3 reads out its pfn, order, refcount, lock and who maps it
    page.locator('.track[data-kind="pages"]').scroll_into_view_if_needed()
    box = page.locator('.track[data-kind="pages"]').bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + 3.5 / 16 * box["width"], box["y"] + box["height"] / 2)
    hover = page.locator('[data-hover="pages"]')
    expect(hover).to_contain_text("page 3 · pfn 1")
    expect(hover).to_contain_text("order 0, refcount 1, unlocked, dirty, mapped by kvm0")
    # punch page 3: the invalidate callback reaches the owner and the mapping goes
    page.locator("#r-from").fill("3")
    page.locator("#r-to").fill("3")
    do(page, "Punch hole", "invalidate_page_range")
    expect(result).to_contain_text("[3, 3]")
    expect(result).to_contain_text("inclusive")
    owners = page.locator("#owners")
    expect(owners).to_contain_text("Zapped")
    expect(owners).to_contain_text("gfn 259 → pfn 1")
    expect(owners.locator("table.gfns")).to_contain_text("nothing mapped")
    expect(page.locator(".track.pages .b.mapped")).to_have_count(0)
    page.screenshot(path=artifacts / "punch-zap.png", full_page=True)
    # time travel: one op back (the mapping is there again), then forward
    n = seq(rest, sid)
    page.locator("body").press(",")
    page.wait_for_url(f"**at={n - 1}*")
    expect(page.locator("#timetravel")).to_contain_text(f"after op {n - 1} of {n}")
    expect(owners.locator("table.gfns")).to_contain_text("259")
    page.screenshot(path=artifacts / "preview.png", full_page=True)
    page.locator("body").press(".")
    expect(page.locator(".tt-status")).to_contain_text("Live")
    expect(page).not_to_have_url(re.compile("at="))
    expect(owners.locator("table.gfns")).to_contain_text("nothing mapped")
    # undo (it asks first): the punch leaves the log, the mapping is back
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Undo last op").click()
    expect(page.locator("#result")).to_contain_text("later ops left the log")
    assert seq(rest, sid) == n - 1
    expect(owners.locator("table.gfns")).to_contain_text("259")


def test_a_session_driven_over_rest_shows_up_live(
    browser: Browser, page: Page, server: str, rest: httpx.Client, artifacts: Path
) -> None:
    sid = rest.post("/sessions", json={}).json()["id"]
    page.goto(f"{server}/s/{sid}")
    expect(page.locator("#files")).to_contain_text("No file yet")
    other = browser.new_page()  # a second tab on the same session
    other.goto(f"{server}/s/{sid}")
    s = f"/sessions/{sid}"
    rest.post(f"{s}/memfds", json={"name": "live0", "flags": ["MFD_ALLOW_SEALING"]})
    expect(page.locator("#files")).to_contain_text("live0")
    rest.post(f"{s}/files/3/ftruncate", json={"length": 1 << 20})
    rest.post(f"{s}/files/3/fallocate", json={"mode": [], "offset": 0, "len": 65536})
    expect(page.locator("#timeline")).to_contain_text("#3")
    expect(page.locator("#files")).to_contain_text("16 pages")
    expect(page.locator(".track.pages .b.present")).to_have_count(1)
    rest.post(f"{s}/files/3/fallocate", json={"mode": PUNCH, "offset": 0, "len": 4096})
    expect(other.locator("#files")).to_contain_text("15 pages")
    rest.post(f"{s}/rewind", json={"seq": 2})
    expect(page.locator("#files")).to_contain_text("0 pages")
    page.screenshot(path=artifacts / "live.png", full_page=True)
    other.close()


def test_a_shared_link_opens_the_same_view(
    browser: Browser, page: Page, server: str, rest: httpx.Client
) -> None:
    sid = rest.post("/sessions", json={"thp": "always"}).json()["id"]
    s = f"/sessions/{sid}"
    rest.post(f"{s}/memfds", json={"name": "vm0", "flags": ["MFD_ALLOW_SEALING"]})
    rest.post(f"{s}/files/3/ftruncate", json={"length": 8 << 20})
    rest.post(f"{s}/files/3/fallocate", json={"mode": [], "offset": 2 << 20, "len": 2 << 20})
    page.goto(f"{server}/s/{sid}")
    page.get_by_role("navigation", name="Zoom the page map").get_by_role(
        "link", name="Zoom in"
    ).click()
    page.wait_for_url("**start=512*")
    track = page.locator('.track[data-kind="pages"]')
    box = track.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] * 0.05, box["y"] + box["height"] / 2)
    page.wait_for_url("**page=*")
    detail = page.locator("#page-detail h3").inner_text()
    assert "of vm0 (fd 3)" in detail
    expect(page.locator("#frame-detail")).to_contain_text("the selected page")
    window = page.locator("#pagemap .window").inner_text()
    page.get_by_role("button", name="Copy link").click()
    link = page.locator("#share-url").input_value()
    assert link == page.url and "start=512" in link
    fresh = browser.new_page()
    fresh.goto(link)
    expect(fresh.locator("#page-detail h3")).to_have_text(detail)
    assert fresh.locator("#pagemap .window").inner_text() == window
    fresh.close()


def test_keyboard_help_and_the_walkthrough(page: Page, server: str, artifacts: Path) -> None:
    page.goto(server + "/")
    page.get_by_role("button", name="A guest fault maps a page; a punch zaps it").click()
    page.wait_for_url("**walk=kvm-fault-and-zap*")
    walk = page.locator("#walk")
    expect(walk).to_contain_text("step 0 of")
    page.get_by_role("link", name="Next step ▶").click()
    expect(walk).to_contain_text("step 1 of")
    expect(page.locator("#files")).to_contain_text("vm0")
    page.screenshot(path=artifacts / "walkthrough.png", full_page=True)
    page.locator("body").press("?")
    expect(page.locator("#help")).to_be_visible()
    expect(page.locator("#help")).to_contain_text("drag across the page map")
    page.keyboard.press("Escape")
    expect(page.locator("#help")).to_be_hidden()


def test_a_1_tib_file_zooms_down_to_pages(
    page: Page, server: str, rest: httpx.Client, artifacts: Path
) -> None:
    ops = [
        {"op": "memfd_create", "args": {"name": "guest-ram", "flags": ["MFD_ALLOW_SEALING"]}},
        {"op": "fcntl", "args": {"fd": 3, "cmd": "F_ADD_SEALS", "seals": ["F_SEAL_GUEST"]}},
        {"op": "ftruncate", "args": {"fd": 3, "length": 2**40}},
    ]
    for i in range(1000):  # a page every 1 GiB, and a run of 64 pages every 16 GiB
        n = 64 if i % 16 == 0 else 1
        ops.append({"op": "fallocate", "args": {"fd": 3, "mode": [], "offset": i << 30,
                                                "len": n * 4096}})  # fmt: skip
    sid = rest.post("/sessions", json={"trace": {"ops": ops}}).json()["id"]
    page.goto(f"{server}/s/{sid}")
    window = page.locator("#pagemap .window")
    expect(window).to_contain_text(f"Pages 0{DASH}268,435,455 of 268,435,456")
    assert page.locator(".track.pages .b").count() <= 2 * 160 + 2
    page.screenshot(path=artifacts / "huge-file.png", full_page=True)
    for _ in range(21):  # each "+" halves the window: 2**28 pages down to 128
        before = window.inner_text()
        page.locator("body").press("+")
        expect(window).not_to_have_text(before)
    expect(page.locator(".track.pages")).to_have_class(re.compile("cells"))
    page.locator("body").press("ArrowRight")
    page.wait_for_url("**start=*")
    page.screenshot(path=artifacts / "huge-file-pages.png", full_page=True)
    page.locator("body").press("w")
    expect(window).to_contain_text(f"Pages 0{DASH}268,435,455")
