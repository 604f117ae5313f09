"""MAP_PRIVATE copy-on-write over REST (engine_c/cow.c): a host or guest write through a
private mapping copies the page for that mapping only; the phys view names the copy's
mapping, the event says it copied; punch keeps copies, truncate and munmap drop them.
ss_check runs after every request (tests/api/kvm_helpers.py)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.kvm_helpers import PAGE, Kvm, kvm_session

pytestmark = pytest.mark.anyio
RW = ["PROT_READ", "PROT_WRITE"]
PUNCH = ["FALLOC_FL_PUNCH_HOLE", "FALLOC_FL_KEEP_SIZE"]


@pytest.fixture
async def k(tmp_path: Path) -> AsyncIterator[Kvm]:
    async for x in kvm_session(tmp_path, profile="guest-memfd", thp="never"):
        yield x


async def _ram(k: Kvm, flags: list[str] | None = None) -> tuple[int, int, int]:
    """A 4-page memfd and its MAP_PRIVATE mapping: fd, map id, address."""
    fd = (await k.post("/memfds", {"name": "ram", "flags": flags or []}, 201))["fd"]
    await k.post(f"/files/{fd}/ftruncate", {"length": 4 * PAGE})
    body = {"offset": 0, "length": 4 * PAGE, "prot": RW, "flags": ["MAP_PRIVATE"]}
    mp = await k.post(f"/files/{fd}/mmap", body, 201)
    return int(fd), int(mp["map_id"]), int(mp["addr"])


async def _touch(k: Kvm, map_id: int, offset: int, write: bool = False, value: int = 0) -> Any:
    body = {"offset": offset, "write": write, "value": value}
    return (await k.post(f"/mappings/{map_id}/access", body))["value"]


async def _byte(k: Kvm, fd: int, offset: int) -> int:
    r = await k.post(f"/files/{fd}/pread", {"offset": offset, "count": 1})
    return base64.b64decode(r["data_b64"])[0]


async def _used(k: Kvm) -> int:
    return int((await k.get("/phys"))["used"])


async def test_a_host_write_copies_the_page_for_its_mapping_only(k: Kvm) -> None:
    fd, mp, _ = await _ram(k)
    shared = {"offset": 0, "length": 4 * PAGE, "prot": RW, "flags": ["MAP_SHARED"]}
    sm = (await k.post(f"/files/{fd}/mmap", shared, 201))["map_id"]
    await _touch(k, sm, PAGE + 1, True, 0x11)
    before = await _used(k)
    assert await _touch(k, mp, PAGE + 2, True, 0x22) == 0x22  # was 409 EOPNOTSUPP
    assert await _used(k) == before + 1  # the copy's frame
    ev = (await k.get("/events"))["events"][-1]
    cow = [t for t in ev["touches"] if t["what"] == "cow"]
    assert cow == [
        {"what": "cow", "fd": fd, "owner_id": None, "index": 1, "npages": 1, "pfn": cow[0]["pfn"]}
    ]
    assert await _touch(k, mp, PAGE + 1) == 0x11  # the copy has the file's bytes
    assert await _touch(k, sm, PAGE + 2) == 0 == await _byte(k, fd, PAGE + 2)  # not the file
    await _touch(k, sm, PAGE + 1, True, 0x33)
    assert await _touch(k, mp, PAGE + 1) == 0x11  # nor the copy the file's later bytes
    phys = await k.get("/phys")
    copies = [e for e in phys["extents"] if e["state"] == "cow"]
    assert copies == [
        {
            "start": cow[0]["pfn"],
            "end": cow[0]["pfn"] + 1,
            "state": "cow",
            "fd": fd,
            "index": 1,
            "order": 0,
            "no_direct_map": False,
            "map_id": mp,
        }
    ]
    assert all("map_id" not in e for e in phys["extents"] if e["state"] != "cow")
    assert (await k.c.delete(f"{k.b}/mappings/{mp}")).status_code == 204
    k.check()
    assert await _used(k) == before  # munmap freed the copy


async def test_punch_keeps_copies_truncate_drops_them(k: Kvm) -> None:
    fd, mp, _ = await _ram(k)
    for i in range(4):
        await _touch(k, mp, i * PAGE, True, 0x40 + i)
    await k.post(f"/files/{fd}/fallocate", {"mode": PUNCH, "offset": 0, "len": 4 * PAGE})
    assert [await _touch(k, mp, i * PAGE) for i in range(4)] == [0x40, 0x41, 0x42, 0x43]
    used = await _used(k)
    await k.post(f"/files/{fd}/ftruncate", {"length": PAGE})
    assert await _used(k) == used - 3
    await k.post(f"/files/{fd}/ftruncate", {"length": 4 * PAGE})
    assert [await _touch(k, mp, i * PAGE) for i in range(4)] == [0x40, 0, 0, 0]


async def test_a_sealed_file_is_copied_not_written(k: Kvm) -> None:
    fd, _, _ = await _ram(k, ["MFD_ALLOW_SEALING"])
    await k.post(f"/files/{fd}/fcntl", {"cmd": "F_ADD_SEALS", "seals": ["F_SEAL_WRITE"]})
    body = {"offset": 0, "length": 4 * PAGE, "prot": RW, "flags": ["MAP_PRIVATE"]}
    mp = (await k.post(f"/files/{fd}/mmap", body, 201))["map_id"]
    assert await _touch(k, mp, 9, True, 0x99) == 0x99
    assert await _touch(k, mp, 9) == 0x99 and await _byte(k, fd, 9) == 0  # the file is sealed
    r = await k.post(f"/files/{fd}/pwrite", {"offset": 0, "data_b64": "AA=="}, 409)
    assert r["errno"] == "EPERM"


async def test_a_guest_write_through_a_private_userspace_addr_maps_the_copy(k: Kvm) -> None:
    vm = await k.vm("KVM_X86_DEFAULT_VM")
    fd, mp, addr = await _ram(k)
    await k.region(vm, slot=0, flags=[], memory_size=4 * PAGE, userspace_addr=addr)
    read = await k.access(vm, PAGE)
    assert (read["backing"], read["fd"], read["index"], read["value"]) == ("shared", fd, 1, 0)
    wrote = await k.access(vm, PAGE + 3, write=True, value=0x5A)  # was 409 EOPNOTSUPP
    assert wrote["pfn"] != read["pfn"] and (wrote["fd"], wrote["index"]) == (fd, 1)
    assert await _touch(k, mp, PAGE + 3) == 0x5A  # the VMM sees the guest's copy
    mapped = (await k.get(f"/vms/{vm}"))["mapped"]
    assert {"gfn": 1, "npages": 1, "pfn": wrote["pfn"], "order": 0} in mapped, mapped
    # a host copy of a page the guest read zaps the guest's mapping of the file page
    await k.access(vm, 2 * PAGE)
    await _touch(k, mp, 2 * PAGE + 1, True, 0x6B)
    zaps = [t for t in (await k.get("/events"))["events"][-1]["touches"] if t["what"] == "zap"]
    assert [(z["index"], z["npages"]) for z in zaps] == [(2, 1)]
    assert (await k.access(vm, 2 * PAGE + 1))["value"] == 0x6B
