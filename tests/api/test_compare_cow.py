"""POST /api/v1/sessions/{sid}/compare on MAP_PRIVATE copy-on-write (engine_c/cow.c):
host and guest writes through a private mapping against this machine's real kernel,
op by op. Skipped, saying why, where /dev/kvm is missing."""

from __future__ import annotations

import base64
import hashlib

import httpx
import pytest

from tests.api.test_compare import compare, op
from tests.api.test_compare_kvm import GPA, KVM_OK, KVM_WHY, RW, SHARED, TOP, P, access, region

pytestmark = pytest.mark.skipif(not KVM_OK, reason=f"no usable /dev/kvm here: {KVM_WHY}")


@pytest.mark.anyio
async def test_a_private_mapping_write_copies_as_the_kernel_does(
    client: httpx.AsyncClient,
) -> None:
    """A plain slot over a MAP_PRIVATE mapping: the guest's write and the VMM's copy the
    page (COW) for that mapping only; pread and a MAP_SHARED mapping never see the copy;
    a punch keeps it (even_cows=0), a truncate drops it (even_cows=1): the real kernel
    agrees op by op."""
    ops = [
        op("vm_create", name="vm0", type="KVM_X86_DEFAULT_VM"),
        op("vcpu_create", vm_id="0"),
        op("memfd_create", name="ram", flags=[]),
        op("ftruncate", fd=3, length=4 * P),
        op("mmap", fd=3, offset=0, length=4 * P, prot=RW, flags=["MAP_PRIVATE"]),
        region(flags=[], userspace_addr=TOP - 4 * P),
        access(gpa=GPA + 1, write=True, value=6),
        op("mapping_access", map_id=1, offset=1, write=False, value=0),
        op("mapping_access", map_id=1, offset=P + 2, write=True, value=7),
        access(gpa=GPA + P + 2),
        op("pread", fd=3, offset=0, count=P + 4),
        op("mmap", fd=3, offset=0, length=4 * P, prot=RW, flags=SHARED),
        op("mapping_access", map_id=2, offset=P + 2, write=False, value=0),
        op("mapping_access", map_id=2, offset=2 * P, write=True, value=9),
        op("mapping_access", map_id=1, offset=2 * P, write=False, value=0),
        op(
            "fallocate",
            fd=3,
            mode=["FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"],
            offset=0,
            len=4 * P,
        ),
        op("mapping_access", map_id=1, offset=P + 2, write=False, value=0),
        access(gpa=GPA + 1),
        op("ftruncate", fd=3, length=P),
        op("ftruncate", fd=3, length=4 * P),
        op("mapping_access", map_id=1, offset=1, write=False, value=0),
        op("mapping_access", map_id=1, offset=P + 2, write=False, value=0),
    ]
    out = await compare(client, ops)
    rows = out["rows"]
    assert out["unexpected"] == 0 and [r["status"] for r in rows] == ["agree"] * len(ops), rows
    value = [(r["kernel"] or {}).get("value") for r in rows]
    assert value[6]["value"] == 6 and value[7] == {"signal": None, "value": 6}
    assert value[9]["value"] == 7  # the guest sees the VMM's copy
    zeros = "sha256:" + hashlib.sha256(bytes(P + 4)).hexdigest()[:16]
    assert rows[10]["kernel"]["value"]["data"] == zeros  # the file never saw the copies
    assert value[12]["value"] == 0 and value[14]["value"] == 9  # not copied there: the file's
    assert value[16]["value"] == 7 and value[17]["value"] == 6  # the punch keeps the copies
    assert value[20]["value"] == 6 and value[21]["value"] == 0  # the truncate dropped index 1


@pytest.mark.anyio
async def test_a_sealed_files_private_mapping_copies_as_the_kernel_does(
    client: httpx.AsyncClient,
) -> None:
    """F_SEAL_WRITE forbids a shared writable mapping, not a private one: a store through
    it copies the page and the sealed file stays as it was; the real kernel agrees."""
    ops = [
        op("memfd_create", name="ro", flags=["MFD_ALLOW_SEALING"]),
        op("ftruncate", fd=3, length=2 * P),
        op("fcntl", fd=3, cmd="F_ADD_SEALS", seals=["F_SEAL_WRITE"]),
        op("mmap", fd=3, offset=0, length=2 * P, prot=RW, flags=SHARED),
        op("mmap", fd=3, offset=0, length=2 * P, prot=RW, flags=["MAP_PRIVATE"]),
        op("mapping_access", map_id=1, offset=P + 3, write=True, value=0x42),
        op("mapping_access", map_id=1, offset=P + 3, write=False, value=0),
        op("pread", fd=3, offset=P + 3, count=1),
    ]
    ops[3]["errno"] = "EPERM"
    out = await compare(client, ops)
    rows = out["rows"]
    assert out["unexpected"] == 0 and [r["status"] for r in rows] == ["agree"] * len(ops), rows
    assert rows[6]["kernel"]["value"] == {"signal": None, "value": 0x42}
    assert base64.b64decode(rows[7]["kernel"]["value"]["data"]) == b"\0"  # the file's byte
