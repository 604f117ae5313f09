"""A small language for walkthrough steps: one function per op, narration as arguments.

Each function returns a step as a dict (op, args, note, rule, look, twin, errno,
expect, callbacks); app.service.scenarios turns them into models and REST calls.
"""

from __future__ import annotations

import base64
from typing import Any

ALLOW = ["MFD_ALLOW_SEALING"]
PUNCH = ["FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"]
KEEP = ["FALLOC_FL_KEEP_SIZE"]
RW = ["PROT_READ", "PROT_WRITE"]
SHARED = ["MAP_SHARED"]
PAGE = 4096
KiB, MiB = 1024, 1 << 20

Step = dict[str, Any]


def b64(data: bytes) -> str:
    """Bytes as the op log and the answers carry them (data_b64)."""
    return base64.b64encode(data).decode("ascii")


def step(op: str, args: dict[str, Any], note: str, **kw: Any) -> Step:
    """A step; kw: errno, rule, look, twin, expect (dict), callbacks (list)."""
    unknown = set(kw) - {"errno", "rule", "look", "twin", "expect", "callbacks"}
    if unknown:
        raise TypeError(f"unknown step fields {sorted(unknown)}")
    return {"op": op, "args": args, "note": note, **kw}


def inv(owner: int, start: int, end: int) -> dict[str, Any]:
    """invalidate_page_range(start, end), end inclusive."""
    return {"fn": "invalidate_page_range", "owner_id": str(owner), "start": start, "end": end}


def fal(owner: int, start: int, end: int) -> dict[str, Any]:
    """The owner's fallocate(start, end), end exclusive."""
    return {"fn": "fallocate", "owner_id": str(owner), "start": start, "end": end}


def gmem_inv(owner: int, start: int, end: int) -> dict[str, Any]:
    """kvm_gmem_invalidate_begin(start, end), end exclusive (today's kernel)."""
    return {"fn": "gmem_invalidate", "owner_id": str(owner), "start": start, "end": end}


# ---- syscalls (bytes) ----
def memfd(note: str, name: str = "vm0", flags: list[str] | None = None, **kw: Any) -> Step:
    return step(
        "memfd_create", {"name": name, "flags": ALLOW if flags is None else flags}, note, **kw
    )


def gmem(note: str, size: int, flags: list[str] | None = None, **kw: Any) -> Step:
    return step("guest_memfd_create", {"size": size, "flags": flags or []}, note, **kw)


def ftruncate(note: str, length: int, fd: int = 3, **kw: Any) -> Step:
    return step("ftruncate", {"fd": fd, "length": length}, note, **kw)


def seal(note: str, *seals: str, fd: int = 3, **kw: Any) -> Step:
    return step("fcntl", {"fd": fd, "cmd": "F_ADD_SEALS", "seals": list(seals)}, note, **kw)


def get_seals(note: str, fd: int = 3, **kw: Any) -> Step:
    return step("fcntl", {"fd": fd, "cmd": "F_GET_SEALS"}, note, **kw)


def fallocate(
    note: str, offset: int, length: int, mode: list[str] | None = None, fd: int = 3, **kw: Any
) -> Step:
    args = {"fd": fd, "mode": mode or [], "offset": offset, "len": length}
    return step("fallocate", args, note, **kw)


def punch(note: str, offset: int, length: int, fd: int = 3, **kw: Any) -> Step:
    return fallocate(note, offset, length, PUNCH, fd, **kw)


def pread(note: str, offset: int, count: int, fd: int = 3, **kw: Any) -> Step:
    return step("pread", {"fd": fd, "offset": offset, "count": count}, note, **kw)


def pwrite(note: str, offset: int, data: bytes, fd: int = 3, **kw: Any) -> Step:
    return step("pwrite", {"fd": fd, "offset": offset, "data_b64": b64(data)}, note, **kw)


def mmap(
    note: str,
    length: int,
    offset: int = 0,
    prot: list[str] | None = None,
    flags: list[str] | None = None,
    fd: int = 3,
    **kw: Any,
) -> Step:
    args = {"fd": fd, "offset": offset, "length": length, "prot": prot or RW}
    return step("mmap", args | {"flags": flags or SHARED}, note, **kw)


def munmap(note: str, map_id: int, **kw: Any) -> Step:
    return step("munmap", {"map_id": map_id}, note, **kw)


def close(note: str, fd: int = 3, **kw: Any) -> Step:
    return step("close", {"fd": fd}, note, **kw)


# ---- the guest interface (page indexes) ----
def owner(note: str, name: str = "kvm0", kind: str = "kvm", **kw: Any) -> Step:
    return step("owner_create", {"name": name, "kind": kind}, note, **kw)


def register(note: str, owner_id: int | None = 0, fd: int = 3, **kw: Any) -> Step:
    oid = None if owner_id is None else str(owner_id)
    return step("register_guest", {"fd": fd, "owner_id": oid}, note, **kw)


def unregister(note: str, owner_id: int, fd: int = 3, **kw: Any) -> Step:
    return step("unregister_guest", {"fd": fd, "owner_id": str(owner_id)}, note, **kw)


def get_lock(note: str, index: int, alloc: bool = True, fd: int = 3, **kw: Any) -> Step:
    return step("get_lock_pfn", {"fd": fd, "index": index, "alloc": alloc}, note, **kw)


def put_unlock(note: str, pfn: int, **kw: Any) -> Step:
    return step("put_unlock_pfn", {"pfn": pfn}, note, **kw)


def migrate(note: str, pfn: int, **kw: Any) -> Step:
    """Compaction moving the page that holds pfn (beyond the RFC's API: the mm's side)."""
    return step("migrate_page", {"pfn": pfn}, note, **kw)


def invalidate(note: str, start: int, end: int, fd: int = 3, **kw: Any) -> Step:
    return step("invalidate", {"fd": fd, "start": start, "end": end}, note, **kw)


def memslot(
    note: str, gfn: int, npages: int, index: int = 0, owner_id: int = 0, fd: int = 3, **kw: Any
) -> Step:
    args = {"owner_id": str(owner_id), "fd": fd, "gfn": gfn, "index": index, "npages": npages}
    return step("memslot_create", args, note, **kw)


def fault(note: str, gfn: int, owner_id: int = 0, **kw: Any) -> Step:
    return step("fault", {"owner_id": str(owner_id), "gfn": gfn}, note, **kw)
