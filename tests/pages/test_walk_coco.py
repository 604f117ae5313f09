"""The confidential-VM walkthroughs on the session page: every step's panel says it went
as expected, and the timeline names the arch hooks with their frames (pfns)."""

from __future__ import annotations

import html
import re

import httpx
import pytest

from app.service.scenarios import SCENARIOS

pytestmark = pytest.mark.anyio
COCO = [
    "coco-snp-launch",
    "coco-tdx-launch",
    "coco-poison",
    "coco-inplace-pin",
    "gmem-1g-split-merge",
    "gmem-no-direct-map",
]


def words(fragment: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", fragment)))


async def walk(client: httpx.AsyncClient, name: str) -> str:
    r = await client.post(f"/walk/{name}")
    assert r.status_code == 303, r.text
    return str(r.headers["location"].split("/s/")[1].split("?")[0])


@pytest.mark.parametrize("name", COCO)
async def test_every_step_as_the_walkthrough_says(client: httpx.AsyncClient, name: str) -> None:
    sid = await walk(client, name)
    steps = SCENARIOS[name].steps
    for n, step in enumerate(steps, 1):
        r = await client.get(f"/s/{sid}?walk={name}&at={n}")
        assert r.status_code == 200, (name, n)
        now = words(r.text.split('class="walk-now"')[1].split("</div>")[0])
        assert f"Step {n}: {step.note}" in now, (name, n, now[:200])
        assert "✓" in now and "not what the walkthrough expects" not in now, (name, n, now)
        if step.errno:
            assert step.errno in now


async def test_arch_hooks_in_the_timeline_name_frames(client: httpx.AsyncClient) -> None:
    sid = await walk(client, "coco-snp-launch")
    steps = SCENARIOS["coco-snp-launch"].steps
    n = next(i for i, s in enumerate(steps, 1) if s.op == "vcpu_access" and s.args["value"] == 7)
    r = await client.get(f"/s/{sid}?walk=coco-snp-launch&at={n}")
    timeline = words(r.text.split('id="timeline"')[1])
    # the guest's first write to gfn 3 prepares frame 2 (page 3 of the guest_memfd)
    assert "snp_rmp_assign [2, 3) exclusive = pfn 2" in timeline
    assert "= page 2" not in timeline.split("snp_rmp_assign [2, 3)")[1][:40]


async def test_the_page_map_shows_each_pages_life(client: httpx.AsyncClient) -> None:
    """The SNP walkthrough's steps say "pages 0-1 prepared": the runs table of a
    guest_memfd and the page detail say it on screen (a memfd's table has no Life)."""
    sid = await walk(client, "coco-snp-launch")
    steps = SCENARIOS["coco-snp-launch"].steps
    n = next(i for i, s in enumerate(steps, 1) if s.note.startswith("LAUNCH_UPDATE of the firm"))
    r = await client.get(f"/s/{sid}?walk=coco-snp-launch&at={n}&fd=3&page=1")
    runs = words(r.text.split('class="runs"')[1].split("</details>")[0])
    assert "Life" in runs and "0\u20131 present 0 0 1 no yes \u2014 prepared" in runs
    detail = words(r.text.split('id="page-detail"')[1].split("</div>\n</div>")[0])
    assert "life prepared (the arch hook ran" in detail
    sid = await walk(client, "kvm-private-punch")  # fd 4: the VMM's shared memfd
    r = await client.get(f"/s/{sid}?fd=4")
    assert 'class="runs"' in r.text and ">Life</th>" not in r.text
    r = await client.get(f"/s/{sid}?fd=3")
    assert 'class="runs"' in r.text and ">Life</th>" in r.text


async def test_the_frame_map_says_what_a_frame_is(client: httpx.AsyncClient) -> None:
    """A frame out of the direct map says so (hover and detail); a hwpoisoned frame off the
    free lists is not called an orphan."""
    sid = await walk(client, "gmem-no-direct-map")
    steps = SCENARIOS["gmem-no-direct-map"].steps
    n = next(i for i, s in enumerate(steps, 1) if s.op == "launch_update")
    r = await client.get(f"/s/{sid}?walk=gmem-no-direct-map&at={n}&frame=0")
    frames = r.text.split('id="framemap"')[1]
    titles = [html.unescape(t) for t in re.findall(r'title="([^"]*)"', frames)]
    assert [t for t in titles if t.startswith("frame 0:")] == [
        "frame 0: kvm-guest-memfd (fd 3), page 0, order 0, out of the direct map"
    ]
    detail = words(frames.split('id="frame-detail"')[1].split("</div>")[0])
    assert "out of the kernel's direct map (no_direct_map)" in detail
    sid = await walk(client, "coco-poison")
    r = await client.get(f"/s/{sid}?frame=0")
    detail = words(r.text.split('id="frame-detail"')[1].split("</div>")[0])
    assert "hwpoisoned: a failed frame, off the free lists for good" in detail
    assert "orphan" not in detail
