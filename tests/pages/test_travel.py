"""Time travel (previews, undo, rewind), the "why?" of an op, trace export/import,
walkthroughs, and the view state named by the URL (selection, zoom)."""

from __future__ import annotations

import html
import re

import httpx
import pytest

from app.pages.maps import DASH
from tests.pages.conftest import HX, PUNCH, api, guest_file, private_copy, session

pytestmark = pytest.mark.anyio


async def test_preview_does_not_change_the_session(client: httpx.AsyncClient) -> None:
    sid = await session(client)
    await guest_file(client, sid)
    r = await client.get(f"/s/{sid}?at=2")
    assert r.status_code == 200 and "Preview" in r.text
    assert 'name="at" min="0" max="5" value="2"' in r.text
    assert "F_SEAL_GUEST" in r.text and "kvm0" not in r.text.split('id="owners"')[1][:400]
    assert r.headers["link"].startswith(f"</api/v1/sessions/{sid}/at/2>")
    assert (await api(client, "GET", f"/sessions/{sid}"))["seq"] == 5
    live = await client.get(f"/s/{sid}?at=99", headers=HX)
    assert "<strong>Live</strong>" in live.text
    step = re.search(r'href="([^"]+)"[^>]*data-key="\."', r.text)
    assert step and "at=3" in step.group(1)


async def test_undo_and_rewind_are_for_good(client: httpx.AsyncClient) -> None:
    sid = await session(client)
    await guest_file(client, sid)
    r = await client.post(f"/s/{sid}/rewind", data={"seq": "4", "fd": "3"}, headers=HX)
    assert r.status_code == 200 and r.text.startswith('<section id="view"')
    assert 'id="result" hx-swap-oob="true"' in r.text and "later ops left the log" in r.text
    assert r.headers["hx-push-url"] == f"/s/{sid}?fd=3"
    assert (await api(client, "GET", f"/sessions/{sid}"))["seq"] == 4
    r = await client.post(f"/s/{sid}/rewind", data={"seq": "9"}, headers=HX)
    assert "ERANGE" in r.text and "past the session" in r.text
    r = await client.post(f"/s/{sid}/rewind", data={"seq": "1"})
    assert r.status_code == 303
    assert (await api(client, "GET", f"/sessions/{sid}"))["seq"] == 1


async def test_redo_replays_what_undo_took_out(client: httpx.AsyncClient) -> None:
    sid = await session(client)
    await guest_file(client, sid)
    r = await client.post(f"/s/{sid}/redo", data={}, headers=HX)
    assert r.status_code == 409 and "nothing to redo" in r.text
    await client.post(f"/s/{sid}/rewind", data={"seq": "3"}, headers=HX)
    r = await client.post(f"/s/{sid}/redo", data={"fd": "3"}, headers=HX)
    assert r.status_code == 200 and "op 4 is back in the log (1 more to redo)" in r.text
    assert 'data-key="r"' in r.text and "1 op to redo" in r.text
    r = await client.post(f"/s/{sid}/redo", data={})
    assert r.status_code == 303
    assert (await api(client, "GET", f"/sessions/{sid}"))["seq"] == 5
    assert 'data-key="r"' not in (await client.get(f"/s/{sid}")).text


async def test_why_replays_the_op(client: httpx.AsyncClient) -> None:
    sid = await session(client)
    await guest_file(client, sid, size=8192)
    s = f"/api/v1/sessions/{sid}"
    await client.post(f"{s}/files/3/get_lock_pfn", json={"index": 1, "alloc": False})
    r = await client.get(f"/s/{sid}/why/6", headers=HX)
    assert "EFAULT" in r.text and "NULL-pointer oops" in r.text and "Hazard" in r.text
    ok = await client.get(f"/s/{sid}/why/1")
    assert ok.status_code == 200 and "succeeds" in ok.text and "<!doctype html>" in ok.text
    assert (await api(client, "GET", f"/sessions/{sid}"))["seq"] == 6


async def test_export_then_import_makes_the_same_session(client: httpx.AsyncClient) -> None:
    sid = await session(client)
    await guest_file(client, sid)
    page = await client.get(f"/s/{sid}")
    export = re.search(r'href="([^"]+/trace)" download', page.text)
    assert export
    trace = (await client.get(export.group(1))).text
    r = await client.post("/import", data={"trace": trace})
    assert r.status_code == 303
    new = r.headers["location"].removeprefix("/s/")
    assert new != sid
    assert (await api(client, "GET", f"/sessions/{new}/trace")) == (
        await api(client, "GET", f"/sessions/{sid}/trace")
    )


@pytest.mark.parametrize(
    ("trace", "words"),
    [
        ("{not json", "not JSON"),
        ('{"ops": [{"op": "reboot"}]}', "unknown op"),
        ('{"ops": [{"op": "ftruncate", "args": {"fd": 3, "length": 1}, "errno": null}]}', "EBADF"),
    ],
    ids=["json", "op", "replay"],
)
async def test_a_bad_trace_is_refused_with_a_reason(
    client: httpx.AsyncClient, trace: str, words: str
) -> None:
    r = await client.post("/import", data={"trace": trace})
    assert r.status_code in (409, 422) and words in r.text and 'class="refusal"' in r.text


async def test_walkthrough_steps_through_the_notes(client: httpx.AsyncClient) -> None:
    r = await client.post("/walk/kvm-fault-and-zap")
    assert r.status_code == 303 and "walk=kvm-fault-and-zap" in r.headers["location"]
    page = await client.get(r.headers["location"])
    assert "Walkthrough: A guest fault maps a page; a punch zaps it" in page.text
    assert "gfns 256..271 -&gt; file pages 0..15" in page.text
    nxt = re.search(r'href="([^"]+)"[^>]*>Next step', page.text)
    assert nxt and "at=1" in nxt.group(1)
    assert (await client.post("/walk/nope")).status_code == 404


async def test_select_a_page_lights_its_frame_and_back(client: httpx.AsyncClient) -> None:
    sid = await session(client)
    await guest_file(client, sid)
    s = f"/sessions/{sid}"
    await api(client, "POST", f"{s}/files/3/fallocate", mode=[], offset=8192, len=8192)
    r = await client.get(f"/s/{sid}?page=3", headers=HX)
    assert "Page 3 of vm0 (fd 3)" in r.text and "Frame 1" in r.text
    assert r.text.count('class="marker"') == 2  # in both maps
    back = await client.get(f"/s/{sid}?frame=1&fd=3", headers=HX)
    assert "Page 3 of vm0 (fd 3)" in back.text and "holds page 3 of vm0 (fd 3)" in back.text
    free = await client.get(f"/s/{sid}?frame=9000", headers=HX)
    assert "Frame 9,000" in free.text and "free, in a buddy block" in free.text


async def test_a_frame_of_a_closed_file_still_being_evicted(client: httpx.AsyncClient) -> None:
    """The last close sleeps on the page get_lock_pfn holds: that frame still holds a page
    of the (closed) file, not an orphan; after the put it is free."""
    sid = await session(client)
    s = f"/sessions/{sid}"
    await api(client, "POST", f"{s}/memfds", name="m", flags=["MFD_ALLOW_SEALING"])
    await api(client, "POST", f"{s}/files/3/ftruncate", length=8192)
    held = await api(client, "POST", f"{s}/files/3/get_lock_pfn", index=1, alloc=True)
    await api(client, "POST", f"{s}/files/3/close")
    last = (await api(client, "GET", f"{s}/events?after=0"))["events"][-1]
    assert (last["op"], last["pending"]) == ("close", True)
    text = html.unescape((await client.get(f"/s/{sid}?frame={held['pfn']}", headers=HX)).text)
    assert "holds page 1 of a closed file" in text
    assert f"frame {held['pfn']}: a closed file's page 1" in text  # the frame map
    assert "out of the cache" not in text.split('class="legend"')[0]
    await api(client, "POST", f"{s}/put_unlock_pfn", pfn=held["pfn"])
    r = await client.get(f"/s/{sid}?frame={held['pfn']}", headers=HX)
    assert "free, in a buddy block" in r.text
    assert f"wakes #{last['seq']} close" in r.text  # the timeline


async def test_zoom_down_to_single_pages(client: httpx.AsyncClient) -> None:
    sid = await session(client)
    await guest_file(client, sid, size=2**40)  # 1 TiB
    s = f"/sessions/{sid}"
    for i in range(400):
        await api(client, "POST", f"{s}/files/3/fallocate", mode=[], offset=i * 2**28, len=4096)
    whole = await client.get(f"/s/{sid}/pagemap", headers=HX)
    assert whole.text.count('<i class="b ') == 0  # single pages: the density draws them
    density = re.search(r'data-cols="(\d+)" data-density="([^"]*)"', whole.text)
    assert density and density.group(1) == "1200"
    counts = [int(c or 0) for c in density.group(2).split(",")]
    assert len(counts) == 1200 and sum(counts) == 400
    assert f"Pages 0{DASH}268,435,455 of 268,435,456" in whole.text
    z = await client.get(f"/s/{sid}/pagemap?start=65536&end=65552", headers=HX)
    assert 'class="track pages cells"' in z.text and f"Pages 65,536{DASH}65,551" in z.text
    assert z.text.count('<i class="b ') == 2  # page 65,536 present, the rest a hole
    assert 'title="page 65,536: present, pfn 1, order 0' in z.text
    for label in ("Zoom in", "Zoom out", "◀ Pan", "Pan ▶", "Whole"):
        assert re.search(rf'<a class="button" href="[^"]+" hx-get="[^"]+"[^>]*>{label}<', z.text)


async def test_timeline_pages_back(client: httpx.AsyncClient) -> None:
    sid = await session(client)
    await guest_file(client, sid)
    for _ in range(45):
        await client.post(
            f"/api/v1/sessions/{sid}/files/3/fallocate",
            json={"mode": PUNCH, "offset": 0, "len": 4096},
        )
    r = await client.get(f"/s/{sid}/timeline", headers=HX)
    assert 'start="50"' in r.text and "Earlier ops" in r.text and "#11" in r.text
    older = await client.get(f"/s/{sid}/timeline?log=10", headers=HX)
    assert 'start="10"' in older.text and "#1<" in older.text and "Newest ops" in older.text


async def test_a_frame_holding_a_private_mappings_copy(client: httpx.AsyncClient) -> None:
    """A write through a MAP_PRIVATE mapping copies the page: that frame is the
    mapping's copy (the frame view and the frame map say so), not the file's page."""
    sid, pfn = await private_copy(client, 5)
    text = html.unescape((await client.get(f"/s/{sid}?frame={pfn}", headers=HX)).text)
    assert "mapping 1's MAP_PRIVATE copy of page 0 of ram (fd 3)" in text
    assert f"frame {pfn}: mapping 1's copy of page 0 (MAP_PRIVATE)" in text
    legend = text.split('id="framemap"')[1].split('class="legend"')[1].split("</ul>")[0]
    assert 'class="sw cow"' in legend and "MAP_PRIVATE mapping's copy" in legend
