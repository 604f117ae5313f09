"""Issue 13 in a real browser: the visualizer at scale and in time. Each test here was
written to fail on the code before its fix (the item number is in its name)."""

from __future__ import annotations

import itertools
import re
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Dialog, Page, expect

from app.pages.maps import DASH

pytestmark = pytest.mark.browser
PUNCH = ["FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"]


def traced(rest: httpx.Client, ops: list[dict[str, Any]], **settings: Any) -> str:
    r = rest.post("/sessions", json={"trace": {**settings, "ops": ops}})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def op(_name: str, **args: Any) -> dict[str, Any]:
    return {"op": _name, "args": args}


def sealed(size: int, name: str = "vm0") -> list[dict[str, Any]]:
    """A guest-sealed memfd of `size` bytes (fd 3) with a KVM owner (0) registered."""
    return [
        op("memfd_create", name=name, flags=["MFD_ALLOW_SEALING"]),
        op("fcntl", fd=3, cmd="F_ADD_SEALS", seals=["F_SEAL_GUEST"]),
        op("ftruncate", fd=3, length=size),
        op("owner_create", name="kvm0", kind="kvm"),
        op("register_guest", fd=3, owner_id="0"),
    ]


def test_01_more_callbacks_counts_callbacks_total(
    page: Page, server: str, rest: httpx.Client
) -> None:
    """A punch of 5,000 pages makes 5,000 callbacks; the event stores the first 4,096."""
    n = 5000
    ops = sealed(n * 4096)
    ops += [op("fallocate", fd=3, mode=[], offset=0, len=n * 4096)]
    ops += [op("fallocate", fd=3, mode=PUNCH, offset=0, len=n * 4096)]
    sid = traced(rest, ops)
    page.goto(f"{server}/s/{sid}")
    punch = page.locator(f"#op-{len(ops)}")
    expect(punch).to_contain_text(f"… and {n - 8:,} more callbacks")


def small(rest: httpx.Client) -> str:
    """A session of 8 ops: a sealed 64 KiB file, an owner, some pages."""
    ops = sealed(65536)
    ops += [op("fallocate", fd=3, mode=[], offset=0, len=16384)]
    ops += [op("fallocate", fd=3, mode=PUNCH, offset=4096, len=4096)]
    ops += [op("fallocate", fd=3, mode=[], offset=32768, len=8192)]
    return traced(rest, ops)


def test_03_shortcuts_work_after_s_and_after_the_slider(
    page: Page, server: str, rest: httpx.Client
) -> None:
    sid = small(rest)
    page.goto(f"{server}/s/{sid}")
    page.locator("body").press("s")  # copies the link; the share field has the focus
    expect(page.locator("#share-url")).to_be_focused()
    page.keyboard.press(",")
    page.wait_for_url("**at=7*")
    page.keyboard.press("l")
    expect(page.locator(".tt-status")).to_contain_text("Live")
    # a click on the slider moves time and gives it the focus; the keys still work
    slider = page.locator("#tt-at")
    box = slider.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] * 0.3, box["y"] + box["height"] / 2)
    page.wait_for_url("**at=*")
    expect(slider).to_be_focused()
    page.keyboard.press("ArrowRight")  # the slider's own key still moves it
    at = int(page.url.split("at=")[1].split("&")[0])
    page.keyboard.press("0")
    page.wait_for_url("**at=0*")
    assert at != 0
    page.keyboard.press("?")
    expect(page.locator("#help")).to_be_visible()


def test_04_a_file_with_an_empty_name_gets_a_clickable_link(
    page: Page, server: str, rest: httpx.Client
) -> None:
    ops = [op("memfd_create", name="vm0", flags=[]), op("memfd_create", name="", flags=[])]
    ops += [op("ftruncate", fd=4, length=8192)]
    sid = traced(rest, ops)
    page.goto(f"{server}/s/{sid}")
    link = page.locator("#files a.file-link").nth(1)
    expect(link).to_be_visible()
    expect(link).to_contain_text("empty name")
    box = link.bounding_box()
    assert box is not None and box["width"] > 20
    link.click()
    page.wait_for_url("**fd=4*")
    expect(page.locator("#pm-title")).to_contain_text("fd 4")
    expect(page.locator("#pagemap .window")).to_contain_text("of 2")


def window_of(page: Page) -> tuple[int, int]:
    track = page.locator('.track[data-kind="pages"]')
    return int(track.get_attribute("data-start") or -1), int(track.get_attribute("data-end") or -1)


def test_05_go_to_page_moves_and_zooms_the_map_to_it(
    page: Page, server: str, rest: httpx.Client
) -> None:
    ops = sealed(2**30)  # 262,144 pages
    ops += [op("fallocate", fd=3, mode=[], offset=200_000 * 4096, len=4096)]
    sid = traced(rest, ops)
    page.goto(f"{server}/s/{sid}")
    page.locator("body").press("g")
    field = page.locator("#ctx-page")
    expect(field).to_be_focused()
    field.fill("200000")
    field.press("Enter")
    page.wait_for_url("**page=200000*")
    expect(page.locator("#page-detail")).to_contain_text("Page 200,000")
    s, e = window_of(page)
    assert s <= 200_000 < e and e - s <= 128, (s, e)
    marker = page.locator(".track.pages .marker")
    box = marker.bounding_box()
    assert box is not None and box["width"] >= 4
    expect(page.locator(".track.pages .b.present")).to_have_count(1)
    # from a zoomed-in window elsewhere, too; a click on the map keeps its window
    page.goto(f"{server}/s/{sid}?start=0&end=64")
    page.locator("body").press("g")
    field.fill("1000")
    field.press("Enter")
    page.wait_for_url("**page=1000*")
    s, e = window_of(page)
    assert s <= 1000 < e, (s, e)
    track = page.locator('.track[data-kind="pages"]')
    tb = track.bounding_box()
    assert tb is not None
    page.mouse.click(tb["x"] + tb["width"] * 0.75, tb["y"] + tb["height"] / 2)
    page.wait_for_url(lambda u: "page=1000" not in u)
    assert window_of(page) == (s, e)


def background(page: Page) -> str:
    return str(page.evaluate("getComputedStyle(document.body).backgroundColor"))


LIGHT_BG, DARK_BG = "rgb(246, 247, 249)", "rgb(17, 20, 24)"


@pytest.mark.parametrize("system", ["light", "dark"])
def test_18_a_light_dark_toggle_beside_the_system_preference(
    browser: Browser, server: str, rest: httpx.Client, system: str
) -> None:
    sid = small(rest)
    context = browser.new_context(color_scheme=system)
    page = context.new_page()
    page.goto(f"{server}/s/{sid}")
    native, other = (LIGHT_BG, DARK_BG) if system == "light" else (DARK_BG, LIGHT_BG)
    assert background(page) == native
    theme = page.get_by_label("Theme")
    expect(theme).to_have_value("system")
    flip = "dark" if system == "light" else "light"
    theme.select_option(flip)
    assert background(page) == other
    # remembered: a reload, another page of the service
    page.reload()
    assert background(page) == other
    expect(page.get_by_label("Theme")).to_have_value(flip)
    page.goto(server + "/")
    assert background(page) == other
    page.get_by_label("Theme").select_option("system")
    assert background(page) == native
    page.reload()
    assert background(page) == native
    context.close()


def test_07_undo_confirms_what_goes_and_redo_brings_it_back(
    page: Page, server: str, rest: httpx.Client
) -> None:
    sid = small(rest)
    page.goto(f"{server}/s/{sid}")
    asked: list[str] = []

    def answer(d: Dialog) -> None:
        asked.append(d.message)
        d.accept()

    page.on("dialog", answer)
    page.locator("body").press("u")
    expect(page.locator("#timetravel")).to_contain_text("after op 7")
    assert "#8" in asked[-1] and "fallocate" in asked[-1] and "Redo" in asked[-1], asked
    expect(page.locator("#files")).to_contain_text("3 pages")
    redo = page.get_by_role("button", name=re.compile("^Redo"))
    expect(redo).to_contain_text("#8 fallocate")
    page.locator("body").press("r")
    expect(page.locator("#timetravel")).to_contain_text("after op 8")
    expect(page.locator("#files")).to_contain_text("5 pages")
    expect(redo).to_have_count(0)
    # rewind to op 5 from a preview: the confirmation lists the ops that go
    page.goto(f"{server}/s/{sid}?at=5")
    page.get_by_role("button", name="Rewind to here").click()
    expect(page.locator("#timetravel")).to_contain_text("after op 5")
    assert "#6 fallocate" in asked[-1] and "#8 fallocate" in asked[-1], asked
    expect(redo).to_contain_text("#6")
    expect(page.locator("#timetravel")).to_contain_text("3 ops to redo")
    redo.click()
    expect(page.locator("#timetravel")).to_contain_text("after op 6")
    # a new op ends the stack
    rest.post(f"/sessions/{sid}/files/3/ftruncate", json={"length": 8192})
    expect(page.locator("#timetravel")).to_contain_text("after op 7")
    expect(redo).to_have_count(0)


def test_07_a_walkthrough_steps_on_after_an_undo(page: Page, server: str) -> None:
    page.on("dialog", lambda d: d.accept())
    page.goto(server + "/")
    page.locator('form[action="/walk/rfc-lifecycle"] button').click()
    page.wait_for_url("**walk=*")
    walk = page.locator("#walk")
    steps = walk.locator("ol.steps li")
    n = steps.count()
    steps.nth(n - 1).locator("a").click()
    expect(walk).to_contain_text("The end")
    page.locator("body").press("u")
    expect(walk).to_contain_text(f"step {n - 1} of {n}")
    page.get_by_role("button", name="Next step ▶").click()
    expect(walk).to_contain_text(f"step {n} of {n}")
    expect(walk.locator(".walk-now .got")).to_contain_text("✓")
    expect(walk).to_contain_text("The end")


HEAT = """(sel) => {
  const c = document.querySelector(sel + " canvas.heat");
  if (!c) return null;
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  const cols = [];
  for (let x = 0; x < c.width; x++) {
    let a = 0, rgb = null;
    for (let y = 0; y < c.height; y++) {
      const i = (y * c.width + x) * 4;
      if (d[i + 3] > a) { a = d[i + 3]; rgb = [d[i], d[i + 1], d[i + 2]]; }
    }
    cols.push([a, rgb]);
  }
  return cols;
}"""


def heat(page: Page, sel: str) -> list[tuple[int, list[int] | None]]:
    cols = page.evaluate(HEAT, sel)
    assert cols is not None, f"no density canvas in {sel}"
    return [(int(a), rgb) for a, rgb in cols]


def lit(cols: list[tuple[int, list[int] | None]], frac: float) -> int:
    """The strongest alpha within a pixel of fraction `frac` of the track."""
    x = int(frac * len(cols))
    return max(a for a, _ in cols[max(0, x - 1) : x + 2])


def test_06_density_is_honest_at_1_tib(page: Page, server: str, rest: httpx.Client) -> None:
    tib_pages = 2**28
    islands = [i * (tib_pages // 23) + 7 for i in range(23)]
    ops = sealed(2**40)
    ops += [op("fallocate", fd=3, mode=[], offset=p * 4096, len=4096) for p in islands]
    block = tib_pages // 2 + 1000  # 64 MiB: 16,384 pages
    ops += [op("fallocate", fd=3, mode=[], offset=block * 4096, len=64 << 20)]
    sid = traced(rest, ops)
    page.goto(f"{server}/s/{sid}")
    cols = heat(page, "#pagemap")
    # every page present has at least one pixel, whatever the zoom
    for p in islands:
        assert lit(cols, p / tib_pages) > 0, p
    # nothing drawn where nothing is: halfway between two islands
    for a, b in itertools.pairwise(islands):
        if not a < block < b:
            assert lit(cols, (a + b) / 2 / tib_pages) == 0, (a, b)
    # a heat scale: the 64 MiB block's column is stronger than a single page's
    assert lit(cols, (block + 8192) / tib_pages) > lit(cols, islands[3] / tib_pages) + 40
    expect(page.locator("#pagemap .legend")).to_contain_text("pages present per pixel")
    # hovering a lit column reads out how much of it is present
    track = page.locator('.track[data-kind="pages"]')
    box = track.bounding_box()
    assert box is not None
    x = box["x"] + box["width"] * (islands[5] + 0.5) / tib_pages
    page.mouse.move(x, box["y"] + box["height"] / 2)
    expect(page.locator('[data-hover="pages"]')).to_contain_text("1 present")
    # the frame map: every frame in use is fd 3's, drawn in its colour, never "mixed"
    frames = heat(page, "#framemap")
    used = {tuple(rgb) for a, rgb in frames if a > 0 and rgb}
    assert len(used) == 1, used
    expect(page.locator("#framemap .b.mixed")).to_have_count(0)


def test_06_the_wheel_zooms_around_the_cursor_in_both_maps(
    page: Page, server: str, rest: httpx.Client
) -> None:
    ops = sealed(2**30)
    ops += [op("fallocate", fd=3, mode=[], offset=0, len=64 << 20)]
    sid = traced(rest, ops)
    page.goto(f"{server}/s/{sid}")
    for kind, keys in (("pages", ("start", "end")), ("frames", ("fstart", "fend"))):
        track = page.locator(f'.track[data-kind="{kind}"]')
        s0 = int(track.get_attribute("data-start") or 0)
        e0 = int(track.get_attribute("data-end") or 0)
        box = track.bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + box["width"] * 0.25, box["y"] + box["height"] / 2)
        at = s0 + (e0 - s0) * 0.25
        page.wait_for_timeout(300)
        page.mouse.wheel(0, -120)
        page.wait_for_url(f"**{keys[0]}=*")
        expect(track).not_to_have_attribute("data-end", str(e0))
        s1 = int(track.get_attribute("data-start") or 0)
        e1 = int(track.get_attribute("data-end") or 0)
        assert e1 - s1 == (e0 - s0) // 2, (s1, e1)
        assert abs((at - s1) / (e1 - s1) - 0.25) < 0.02, (s1, e1, at)
        page.wait_for_timeout(300)  # one zoom step per flick of the wheel (250 ms)
        page.mouse.wheel(0, 120)  # and out again
        expect(track).to_have_attribute("data-end", str(e0))


def act(page: Page, button: str) -> None:
    with page.expect_response(lambda r: "/do/" in r.url):
        page.get_by_role("button", name=button, exact=True).click()


def test_11_numbers_in_forms(page: Page, server: str, rest: httpx.Client) -> None:
    sid = traced(rest, [op("memfd_create", name="vm0", flags=["MFD_ALLOW_SEALING"])])
    page.goto(f"{server}/s/{sid}")
    result = page.locator("#result")
    # suffixes, fractions of them, exa
    page.locator("#a-len").fill("1.5M")
    act(page, "ftruncate")
    expect(result).to_contain_text("1,572,864 bytes")
    page.locator("#a-len").fill("0x4000")
    act(page, "ftruncate")
    expect(result).to_contain_text("16,384 bytes")
    page.locator("#a-len").fill("9E")
    act(page, "ftruncate")
    expect(result).to_contain_text("10,376,293,541,461,622,784")
    expect(result).not_to_contain_text("is not a size")
    page.locator("#a-len").fill("0.3K")
    act(page, "ftruncate")
    expect(result).to_contain_text("not a whole number of bytes")
    # a negative length: the kernel's EINVAL, with the rule that says so
    page.locator("#a-len").fill("-1")
    act(page, "ftruncate")
    expect(result).to_contain_text("EINVAL")
    expect(result.locator(".rule")).to_contain_text("negative")
    expect(result.locator(".rule")).not_to_contain_text("F_SEAL_GUEST")
    # a big integer is a number, too big for the field: said so
    page.locator("#r-to").fill("99999999999999999999")
    act(page, "Allocate")
    expect(result).to_contain_text("2^64")
    expect(result).not_to_contain_text("not a whole number")
    # the browser stops no field: every one reaches the server, which answers
    for field, value, button in (("#r-from", "-5", "Allocate"), ("#m-gfn", "4K", "add memslot"),
                                 ("#l-index", "1.5", "get_lock_pfn")):  # fmt: skip
        page.locator(field).fill(value)
        act(page, button)
        expect(result.locator(".refusal")).to_be_visible()


def test_11_a_bad_trace_is_refused_next_to_the_form_and_kept(page: Page, server: str) -> None:
    page.goto(server + "/")
    bad = '{"ops": [{"op": "ftruncate", "args": {"fd": 3, "length": "big"}}]}'
    text = page.locator("#trace-text")
    text.fill(bad)
    page.get_by_role("button", name="Import as a new session").click()
    page.wait_for_load_state()
    form = page.locator("form.import-form")
    expect(form.locator(".refusal")).to_contain_text("ops[0]")
    expect(page.locator("#trace-text")).to_have_value(bad)
    box, err = page.locator("#trace-text").bounding_box(), form.locator(".refusal").bounding_box()
    assert box is not None and err is not None and abs(err["y"] - box["y"]) < 300
    # the page opens where the form is: the refusal is on screen
    expect(form.locator(".refusal")).to_be_in_viewport()
    page.locator("#trace-text").fill("{not json")
    page.get_by_role("button", name="Import as a new session").click()
    expect(form.locator(".refusal")).to_contain_text("not JSON")
    expect(page.locator("#trace-text")).to_have_value("{not json")


def test_09_actions_flow_with_the_page_and_ids_read_alike(
    browser: Browser, server: str, rest: httpx.Client
) -> None:
    sid = traced(rest, sealed(1 << 20)[:4])  # no registration yet
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.goto(f"{server}/s/{sid}")
    side = page.locator("aside.side")
    # the column is no scroll box of its own: the page scrolls, the Result stays in view
    assert side.evaluate("e => e.scrollHeight <= e.clientHeight + 1")
    button = page.get_by_role("button", name="memfd_register_guest", exact=True)
    button.scroll_into_view_if_needed()
    y = button.bounding_box()
    act(page, "memfd_register_guest")
    expect(page.locator("#result")).to_contain_text("registered")
    expect(page.locator("#result h2")).to_be_in_viewport()
    after = button.bounding_box()
    assert y is not None and after is not None and abs(after["y"] - y["y"]) < 2  # stayed put
    # one spelling for ids: owner ids and fds bare, the ids first
    call = "register_guest(fd=3, owner_id=0)"
    expect(page.locator("#result code.call")).to_have_text(call)
    expect(page.locator("#timeline")).to_contain_text(call)
    context.close()


def top_of(page: Page, selector: str) -> float:
    return float(
        page.evaluate(f"document.querySelector({selector!r}).getBoundingClientRect().top + scrollY")
    )


def test_13_on_a_phone_actions_result_and_next_are_near_the_top(
    browser: Browser, server: str, rest: httpx.Client
) -> None:
    sid = small(rest)
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    page.goto(f"{server}/s/{sid}")
    assert top_of(page, "#result") < 844, top_of(page, "#result")
    assert top_of(page, "#actions") < 1200, top_of(page, "#actions")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390 + 1
    # the maps follow, and the actions are one tap from each part
    assert top_of(page, "#pagemap") < 2600, top_of(page, "#pagemap")
    page.goto(server + "/")
    page.locator('form[action="/walk/rfc-lifecycle"] button').click()
    page.wait_for_url("**walk=*")
    nxt = page.get_by_role("link", name="Next step ▶")
    assert top_of(page, "#walk .walk-nav") < 844, top_of(page, "#walk .walk-nav")
    nxt.click()
    expect(page.locator("#walk")).to_contain_text("step 1 of")
    assert top_of(page, "#walk .walk-nav") < 844
    context.close()


def test_12_side_by_side_tells_root_causes_from_what_follows(
    page: Page, server: str, rest: httpx.Client
) -> None:
    ops = sealed(65536)  # 1-5: the seal (2) is the RFC's alone
    ops += [op("fallocate", fd=3, mode=[], offset=0, len=16384)]  # 6
    ops += [op("pread", fd=3, offset=0, count=8)]  # 7: EPERM under the RFC only
    ops += [op("ftruncate", fd=3, length=131072)]  # 8
    sid = traced(rest, ops)
    page.goto(f"{server}/s/{sid}/diff?a=rfc-v2&b=guest-memfd")
    rows = page.locator(".sbs-table tbody tr")
    root = page.locator("#d-2")
    expect(root).to_have_class(re.compile("root"))
    expect(root).to_contain_text("root cause")
    follows = page.locator("#d-7")
    expect(follows).to_have_class(re.compile("follows"))
    expect(follows).to_contain_text("follows #2")
    expect(page.locator(".sbs-summary")).to_contain_text("1 root cause")
    assert rows.count() == len(ops)


def walk_to(page: Page, server: str, name: str, step: int) -> None:
    page.goto(server + "/")
    page.locator(f'form[action="/walk/{name}"] button').click()
    page.wait_for_url("**walk=*")
    page.locator("#walk ol.steps li").nth(step - 1).locator("a").click()
    expect(page.locator("#walk")).to_contain_text(f"step {step} of")


def test_10_the_screen_shows_what_the_narration_says(page: Page, server: str) -> None:
    # "Time travel says 1 operation asleep" (a preview)
    walk_to(page, server, "punch-waits-on-locked-page", 8)
    expect(page.locator("#timetravel")).to_contain_text("1 operation asleep on a page lock")
    # "two 512-page blocks of order 9" in the page map, and in the frame map likewise
    walk_to(page, server, "huge-pages-split", 6)
    expect(page.locator(".track.pages .b.huge")).to_have_count(2)
    expect(page.locator(".track.frames .b.used")).to_have_count(2)
    # "the events' raw value: 2^64 - 22"
    walk_to(page, server, "rfc-hazards", 6)
    expect(page.locator("#walk .got")).to_contain_text("2^64 - 22")
    expect(page.locator("#timeline")).to_contain_text("18,446,744,073,709,551,594")
    # expectations in words, not Python's
    walk_to(page, server, "rfc-lifecycle", 10)
    expected = page.locator("#walk .expected")
    expect(expected).to_contain_text("not pending")
    expect(expected).not_to_contain_text("False")


def test_08_preview_shows_the_whole_log_keeps_the_zoom_and_marks_the_change(
    page: Page, server: str, rest: httpx.Client
) -> None:
    ops = sealed(65536)  # 1-5
    ops += [op("fallocate", fd=3, mode=[], offset=0, len=16384)]  # 6: pages 0-3
    ops += [op("memslot_create", owner_id="0", fd=3, gfn=256, index=0, npages=16)]  # 7
    ops += [op("fault", owner_id="0", gfn=257)]  # 8
    ops += [op("memfd_create", name="other", flags=[])]  # 9: fd 4
    ops += [op("ftruncate", fd=4, length=1 << 20)]  # 10
    sid = traced(rest, ops)
    # the whole log, the cursor on op 6, the later ops greyed
    page.goto(f"{server}/s/{sid}?at=6")
    expect(page.locator("#op-6")).to_have_class(re.compile("current"))
    expect(page.locator("#op-10")).to_have_class(re.compile("future"))
    expect(page.locator("#op-10")).to_contain_text("ftruncate")
    # what op 6 changed: pages 0-3 and their frames are marked
    changed = page.locator(".track.pages .changed")
    expect(changed).to_have_count(1)
    assert changed.get_attribute("style") == "left:0%;width:25%"
    expect(page.locator(".track.frames .changed")).not_to_have_count(0)
    # the fault: the owner's new gfn is marked
    page.goto(f"{server}/s/{sid}?at=8")
    expect(page.locator("#owners .changed")).to_contain_text("gfn 257")
    # zoomed into fd 4: back to before it existed and forward again, the zoom stays
    page.goto(f"{server}/s/{sid}?fd=4&start=8&end=24")
    page.locator("body").press(",")
    page.wait_for_url("**at=9*")
    page.locator("body").press(",")
    page.wait_for_url("**at=8*")
    assert "fd=4" in page.url and "start=8" in page.url
    page.locator("body").press(".")
    page.wait_for_url("**at=9*")
    page.locator("body").press(".")
    page.wait_for_url(lambda u: "at=" not in u)
    expect(page.locator("#pagemap .window")).to_contain_text(f"Pages 8{DASH}23 of 256")
    assert "fd=4" in page.url and "start=8" in page.url


def test_17_a_walkthrough_plays_itself_at_a_chosen_speed(page: Page, server: str) -> None:
    page.goto(server + "/")
    page.locator('form[action="/walk/userspace-locked-out"] button').click()
    page.wait_for_url("**walk=*")
    walk = page.locator("#walk")
    n = walk.locator("ol.steps li").count()
    page.get_by_label("Speed").select_option("0.3")
    page.get_by_role("button", name="▶ Play").click()
    expect(walk).to_contain_text("step 2 of", timeout=5000)
    page.get_by_role("button", name="❚❚ Pause").click()
    at = walk.locator(".card-head .muted").inner_text()
    page.wait_for_timeout(1000)
    assert walk.locator(".card-head .muted").inner_text() == at  # paused
    page.get_by_role("button", name="▶ Play").click()
    expect(walk).to_contain_text(f"step {n} of {n}", timeout=20000)
    expect(page.get_by_role("button", name="▶ Play")).to_be_visible()  # it stops at the end
    expect(page.get_by_label("Speed")).to_have_value("0.3")


def test_16_search_for_a_pfn_a_gfn_or_a_file_page(
    page: Page, server: str, rest: httpx.Client
) -> None:
    ops = sealed(1 << 20)  # 256 pages
    ops += [op("fallocate", fd=3, mode=[], offset=0, len=16384)]
    ops += [op("memslot_create", owner_id="0", fd=3, gfn=256, index=0, npages=256)]
    ops += [op("fault", owner_id="0", gfn=257)]
    ops += [op("memfd_create", name="other", flags=[]), op("ftruncate", fd=4, length=1 << 20)]
    ops += [op("fallocate", fd=4, mode=[], offset=257 * 4096, len=4096)]
    sid = traced(rest, ops)
    page.goto(f"{server}/s/{sid}")
    box = page.get_by_label("Find")
    box.fill("257")
    box.press("Enter")
    found = page.locator("#find-results")
    # a bare number: as a gfn (kvm0 maps it), as a page of each file, as a pfn
    expect(found).to_contain_text("gfn 257")
    expect(found).to_contain_text("kvm0")
    expect(found).to_contain_text("page 257 of other (fd 4)")
    box.fill("pfn 1")
    box.press("Enter")
    expect(found).to_contain_text("frame 1")
    expect(found).to_contain_text("page 1 of vm0 (fd 3)")
    found.get_by_role("link", name=re.compile("page 1 of vm0")).first.click()
    expect(page.locator("#page-detail")).to_contain_text("Page 1 of vm0 (fd 3)")
    box = page.get_by_label("Find")
    box.fill("gfn 0x10000")
    box.press("Enter")
    expect(page.locator("#find-results")).to_contain_text("no memslot of kvm0 holds gfn 65,536")


def test_15_the_state_at_op_a_and_op_b_side_by_side(
    page: Page, server: str, rest: httpx.Client
) -> None:
    sid = small(rest)
    page.goto(f"{server}/s/{sid}?at=5")
    page.get_by_role("link", name="Compare with the live state").click()
    page.wait_for_url("**/versus?a=5&b=8*")
    sides = page.locator(".versus-side")
    expect(sides).to_have_count(2)
    expect(sides.nth(0)).to_contain_text("after op 5")
    expect(sides.nth(1)).to_contain_text("after op 8")
    expect(sides.nth(0).locator(".track.pages .b.present")).to_have_count(0)
    expect(sides.nth(1).locator(".track.pages .b.present")).not_to_have_count(0)
    changes = page.locator("#versus-changes")
    expect(changes).to_contain_text("vm0 (fd 3): 0 → 5 pages resident")
    expect(changes).to_contain_text("frames in use")
    # another pair from the form
    page.get_by_label("Op A").fill("6")
    page.get_by_label("Op B").fill("7")
    page.get_by_role("button", name="Compare").click()
    page.wait_for_url("**a=6&b=7*")
    expect(changes).to_contain_text("4 → 3 pages resident")


def test_14_charts_over_the_op_log_with_brushing(
    page: Page, server: str, rest: httpx.Client
) -> None:
    ops = sealed(1 << 20)  # 1-5
    ops += [op("fallocate", fd=3, mode=[], offset=i * 16384, len=16384) for i in range(10)]
    ops += [op("fallocate", fd=3, mode=PUNCH, offset=0, len=1 << 20)]  # 16: callbacks
    sid = traced(rest, ops)
    page.goto(f"{server}/s/{sid}")
    page.get_by_role("link", name="Charts").click()
    page.wait_for_url("**/charts*")
    charts = page.locator(".chart")
    expect(charts).to_have_count(4)
    for name in ("resident pages", "frames in use", "free blocks by order", "callbacks per op"):
        expect(page.locator(".charts")).to_contain_text(name)
    resident = charts.nth(0)
    expect(resident).to_contain_text("40")  # the peak: 10 x 4 pages
    plot = resident.locator("svg")
    box = plot.bounding_box()
    assert box is not None
    y = box["y"] + box["height"] / 2
    # a click moves the time cursor: the session at that op
    plot.hover(position={"x": box["width"] * 10 / 16, "y": box["height"] / 2})
    expect(page.locator(".chart-readout")).to_contain_text("op 10")
    page.mouse.click(box["x"] + box["width"] * 10 / 16, y)
    page.wait_for_url("**/s/*?at=10*")
    expect(page.locator("#timetravel")).to_contain_text("after op 10 of 16")
    # a brushed range: op A vs op B
    page.go_back()
    page.wait_for_url("**/charts*")
    box = page.locator(".chart").nth(0).locator("svg").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 4 / 16, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 12 / 16, y, steps=6)
    page.mouse.up()
    page.wait_for_url("**/versus?a=4&b=12*")
    expect(page.locator("#versus-changes")).to_contain_text("0 → 28 pages resident")
