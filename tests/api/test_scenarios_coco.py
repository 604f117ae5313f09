"""The confidential-VM walkthroughs played over REST (each step through its own REST call,
its errno, expected answer and callbacks checked as tests/api/test_scenarios.py does),
and, at the steps that say "look at", the views those steps point to: the page life
(prepared, hwpoison) in the page runs, the frame map, the launch record, the VM's
attributes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.service.walks._coco import snp_digest
from app.service.walks.coco_launch import SNP_SRC
from tests.api.test_scenarios import play_step

pytestmark = pytest.mark.anyio
API = "/api/v1"
PAGE = 4096
COCO = [
    "coco-snp-launch",
    "coco-tdx-launch",
    "coco-poison",
    "coco-inplace-pin",
    "gmem-1g-split-merge",
    "gmem-no-direct-map",
]


class Walk:
    """A walkthrough's session, played step by step up to a step named by its note."""

    def __init__(self, c: httpx.AsyncClient, name: str, sc: dict[str, Any], sid: str) -> None:
        self.c, self.name, self.steps, self.sid, self.done = c, name, sc["steps"], sid, 0

    @classmethod
    async def start(cls, c: httpx.AsyncClient, name: str) -> Walk:
        sc = (await c.get(f"{API}/scenarios/{name}")).json()
        r = await c.post(f"{API}/scenarios/{name}/sessions")
        assert r.status_code == 201, r.text
        return cls(c, name, sc, r.json()["id"])

    async def through(self, note: str) -> None:
        """Play every step up to and including the first one (not yet played) whose note
        starts with `note`."""
        notes = [s["note"] for s in self.steps[self.done :]]
        hits = [i for i, n in enumerate(notes) if n.startswith(note)]
        assert hits, (self.name, note)
        for s in self.steps[self.done : self.done + hits[0] + 1]:
            await play_step(self.c, self.sid, s)
        self.done += hits[0] + 1

    async def finish(self) -> None:
        for s in self.steps[self.done :]:
            await play_step(self.c, self.sid, s)
        self.done = len(self.steps)

    async def get(self, path: str) -> Any:
        r = await self.c.get(f"{API}/sessions/{self.sid}{path}")
        assert r.status_code == 200, r.text
        return r.json()

    async def life(self, fd: int = 3) -> dict[int, tuple[str, str | None]]:
        """page index -> (state, life) of every page that is present."""
        ext = (await self.get(f"/files/{fd}/pages"))["extents"]
        return {
            i: (x["state"], x["life"])
            for x in ext
            if x["state"] != "hole"
            for i in range(x["start"], x["end"])
        }

    async def frame(self, pfn: int) -> str:
        ext = (await self.get(f"/phys?start={pfn}&end={pfn + 1}"))["extents"]
        return str(ext[0]["state"])


async def test_the_coco_walkthroughs_are_listed(client: httpx.AsyncClient) -> None:
    listed = {s["name"]: s for s in (await client.get(f"{API}/scenarios")).json()["scenarios"]}
    assert set(COCO) <= set(listed)
    assert listed["coco-inplace-pin"]["variants"] == ["inplace_conversion"]
    assert listed["coco-snp-launch"]["twin"] == "coco-tdx-launch"
    assert listed["coco-tdx-launch"]["twin"] == "coco-snp-launch"
    sc = (await client.get(f"{API}/scenarios/coco-inplace-pin")).json()
    unpin = next(s for s in sc["steps"] if s["op"] == "mapping_unpin")
    assert unpin["request"] == {
        "method": "DELETE",
        "path": "/api/v1/sessions/{sid}/pins/1",
        "body": None,
    }


async def test_snp_launch_page_life(client: httpx.AsyncClient) -> None:
    w = await Walk.start(client, "coco-snp-launch")
    await w.through("KVM_SEV_SNP_LAUNCH_UPDATE of one page")  # EINVAL, allocated first
    assert await w.life() == {0: ("present", "allocated")}
    await w.through("LAUNCH_UPDATE of the firmware")
    assert await w.life() == {0: ("present", "prepared"), 1: ("present", "prepared")}
    launch = await w.get("/vms/0/launch")
    assert (launch["state"], launch["pages"]) == ("init", 2)
    await w.through("KVM_SEV_SNP_LAUNCH_FINISH")
    launch = await w.get("/vms/0/launch")
    assert launch["state"] == "finalized"
    assert launch["measurement"] == snp_digest([(0, SNP_SRC[:PAGE]), (PAGE, SNP_SRC[PAGE:])])
    await w.through("the guest asks gfn 3 shared")  # zapped, the RMP entry kept
    life = await w.life()
    assert life[3] == ("present", "prepared") and life[4] == ("present", "prepared")
    vm = await w.get("/vms/0")
    assert 3 not in [m["gfn"] for m in vm["mapped"]]
    await w.through("the VMM discards the private copy")
    assert 3 not in await w.life() and await w.frame(2) == "free"
    await w.finish()
    assert all([await w.frame(p) == "free" for p in range(5)])


async def test_tdx_zap_removes_the_sept_entry(client: httpx.AsyncClient) -> None:
    w = await Walk.start(client, "coco-tdx-launch")
    await w.through("INIT_MEM_REGION of gpa 0x1000 again")
    assert (await w.get("/vms/0/launch"))["measurement"] is None  # MRTD: once finalized
    await w.through("the TD asks gfn 1 shared")
    life = await w.life()
    assert life[0] == ("present", "prepared") and life[1] == ("present", "zeroed")
    await w.through("the TD's next private access")
    assert (await w.life())[1] == ("present", "prepared")
    await w.finish()
    assert [await w.frame(p) for p in range(3)] == ["free"] * 3


async def test_poison_keeps_the_frame_failed(client: httpx.AsyncClient) -> None:
    w = await Walk.start(client, "coco-poison")
    await w.through("an uncorrectable memory error")
    assert (await w.life())[2] == ("present", "hwpoison")
    assert (await w.get("/vms/0"))["mapped"] == []
    await w.through("the VMM decides")
    assert 2 not in await w.life() and await w.frame(0) == "hwpoison"
    ext = (await w.get("/phys?start=0&end=1"))["extents"]
    assert (ext[0]["fd"], ext[0]["index"]) == (None, None)  # in no file any more
    await w.through("the guest reads gpa 0x2000: a fresh")
    assert (await w.life())[2] == ("present", "zeroed")
    await w.finish()
    assert await w.frame(0) == "hwpoison" and await w.frame(1) == "free"
    phys = await w.get("/phys")
    assert phys["used"] == 1  # the failed frame, never handed out again


async def test_inplace_pin_refcount_and_attributes(client: httpx.AsyncClient) -> None:
    w = await Walk.start(client, "coco-inplace-pin")
    await w.through("KVM_SET_MEMORY_ATTRIBUTES2 on fd 3")
    vm = await w.get("/vms/0")
    assert vm["attributes"] == [
        {"start": 0, "end": 4, "attributes": ["KVM_MEMORY_ATTRIBUTE_PRIVATE"]}
    ]
    await w.through("the host pins offset 0x3000")
    ext = (await w.get("/files/3/pages"))["extents"]
    assert [(x["start"], x["refcount"]) for x in ext if x["start"] == 3] == [(3, 2)]
    await w.through("shared -> private again")  # EAGAIN: nothing converted
    assert (await w.get("/vms/0"))["attributes"] == []
    await w.finish()
    ext = (await w.get("/files/3/pages"))["extents"]
    assert [x["refcount"] for x in ext if x["start"] == 3] == [1]
    assert (await w.get("/vms/0"))["attributes"][0]["end"] == 4


async def test_giga_split_and_merge_in_the_page_map(client: httpx.AsyncClient) -> None:
    """gmem-1g-split-merge: the folio's order in the page runs, and the split / merge
    touches its steps point to in the timeline."""
    w = await Walk.start(client, "gmem-1g-split-merge")

    async def orders() -> list[tuple[int, int, int]]:
        ext = (await w.get("/files/3/pages"))["extents"]
        return sorted({(x["order"], x["pfn"] - x["start"], x["refcount"]) for x in ext})

    async def touched() -> list[str]:
        return [t["what"] for t in (await w.get("/events"))["events"][-1]["touches"]]

    await w.through("the guest writes 3")
    assert await orders() == [(18, 0, 1)]  # one folio, page i on frame i
    await w.through("ATTRIBUTES2: page 5 private")
    assert "split" in await touched() and await orders() == [(0, 0, 1)]
    await w.through("ATTRIBUTES2: page 5 shared again")
    assert "merge" in await touched() and await orders() == [(18, 0, 1)]
    await w.through("the host pins page 7")
    assert await orders() == [(18, 0, 2)]  # the pin counts on the folio
    await w.finish()
    assert "split" in await touched() and await orders() == [(0, 0, 1)]


async def test_no_direct_map_per_frame(client: httpx.AsyncClient) -> None:
    """gmem-no-direct-map: the frame extents its steps point to."""
    w = await Walk.start(client, "gmem-no-direct-map")

    async def ndm(pfn: int) -> bool:
        ext = (await w.get(f"/phys?start={pfn}&end={pfn + 1}"))["extents"]
        return bool(ext[0]["no_direct_map"])

    await w.through("LAUNCH_UPDATE of one page")
    assert await ndm(0)
    await w.through("the VMM preallocates page 1")
    assert not await ndm(1) and await w.frame(1) == "cache"
    await w.through("the guest's first private access")
    assert await ndm(1)
    await w.through("the VMM punches page 1")
    assert not await ndm(1) and await w.frame(1) == "free" and await ndm(0)
    await w.finish()
    assert not await ndm(0) and await w.frame(0) == "free"
