"""rfc-v2 over REST: a vCPU access to a page another holder locked with get_lock_pfn
sleeps (answer `pending`), and the holder's put_unlock_pfn wakes it: the wake event ends
the access (its write lands, the gfn is mapped)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.api.kvm_helpers import Kvm, MiB, kvm_session

pytestmark = pytest.mark.anyio


@pytest.fixture
async def rfc(tmp_path: Path) -> AsyncIterator[Kvm]:
    async for x in kvm_session(tmp_path, profile="rfc-v2"):
        yield x


async def test_a_vcpu_sleeps_on_a_locked_page(rfc: Kvm) -> None:
    vm = await rfc.vm(type="KVM_X86_DEFAULT_VM")
    sh = (await rfc.post("/memfds", {"name": "shared"}, 201))["fd"]
    await rfc.post(f"/files/{sh}/ftruncate", {"length": MiB})
    region = {"slot": 0, "flags": ["KVM_MEM_FD"], "guest_phys_addr": 0, "memory_size": MiB}
    await rfc.region(vm, **region, userspace_addr=0, fd=sh, private_fd=-1)
    held = await rfc.post(f"/files/{sh}/get_lock_pfn", {"index": 2, "alloc": True})
    got = await rfc.access(vm, 0x2005, write=True, value=9, private=False)
    assert got["pending"] is True and got["exit"] is None and got["value"] is None
    waiters = (await rfc.get(""))["waiters"]
    assert [w["op"] for w in waiters] == ["vcpu_access"], waiters
    await rfc.post("/put_unlock_pfn", {"pfn": held["pfn"]})
    events = (await rfc.get("/events"))["events"]
    wake = events[-1]
    assert wake["op"] == "wake" and wake["wakes_seq"] == got["seq"], wake
    again = await rfc.access(vm, 0x2005, private=False)
    assert (again["pending"], again["value"], again["backing"]) == (False, 9, "shared")
