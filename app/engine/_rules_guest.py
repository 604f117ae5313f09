"""Rules of read/write, mmap and the guest interface: words for a failure (or None)."""

from __future__ import annotations

from app.engine._ctx import FUTURE, GROW, GUEST, PAGE, WRITE, Ctx
from app.engine._lib import lib


def pread_eperm(c: Ctx) -> str | None:
    if c.sealed(GUEST) and c.rfc:
        size = c.file.size if c.file else 0
        return f"F_SEAL_GUEST forbids reading inside the file (offset {c.a('offset')}, size {size})"
    return None


def pwrite_eperm(c: Ctx) -> str | None:
    if c.rfc and c.sealed(GUEST):
        return "F_SEAL_GUEST forbids write"
    for bit, name in ((WRITE, "F_SEAL_WRITE"), (FUTURE, "F_SEAL_FUTURE_WRITE")):
        if c.sealed(bit):
            return f"{name} forbids write"
    if c.sealed(GROW) and c.file is not None:
        end = c.a("offset") + c.a("count")
        return (
            f"F_SEAL_GROW forbids writing past the end (size is {c.file.size}, write ends at {end})"
        )
    return None


def negative_io(c: Ctx) -> str | None:
    off, count = c.a("offset"), c.a("count")
    if off >= 0 and count >= 0:  # rw_verify_area(): pos + count must fit a loff_t
        return (
            f"offset + count is past the largest file offset 2^63-1 (offset {off}, count {count})"
        )
    return f"offset and count must not be negative (offset {off}, count {count})"


def mmap_eperm(c: Ctx) -> str | None:
    if c.rfc and c.sealed(GUEST):
        return "F_SEAL_GUEST forbids mmap"
    for bit, name in ((WRITE, "F_SEAL_WRITE"), (FUTURE, "F_SEAL_FUTURE_WRITE")):
        if c.sealed(bit):
            return f"{name} forbids a writable MAP_SHARED mapping"
    return None


def mmap_einval(c: Ctx) -> str | None:
    flags = c.a("flags")
    if c.gmem and flags & lib.SS_MAP_PRIVATE:
        return "a guest_memfd can only be mapped MAP_SHARED"
    shared = flags & (lib.SS_MAP_SHARED | lib.SS_MAP_PRIVATE)
    if shared not in (lib.SS_MAP_SHARED, lib.SS_MAP_PRIVATE):
        return "mmap needs exactly one of MAP_SHARED and MAP_PRIVATE"
    if c.a("length") <= 0:
        return f"mmap needs a length > 0 (got {c.a('length')})"
    if c.a("offset") < 0 or c.a("offset") % PAGE:
        return f"mmap needs a page-aligned offset >= 0 (got {c.a('offset')})"
    return None


def register_einval(c: Ctx) -> str | None:
    if c.a("owner") < 0:
        return "memfd_register_guest needs an owner"
    if c.gmem or not c.rfc:
        return "memfd_register_guest is the RFC's (profile rfc-v2, on a memfd)"
    if c.a("owner") >= c.nowners:
        return f"no owner with id {c.a('owner')}"
    return None


def unregister_einval(c: Ctx) -> str | None:
    return "memfd_unregister_guest exists only in the multi_owner variant (the RFC has none)"


def fault(c: Ctx) -> str | None:
    owner, gfn = c.a("owner"), c.a("gfn")
    if c.name == "EFAULT":
        return f"gfn {gfn} is in no memslot of owner {owner}"
    if not 0 <= owner < c.nowners:
        return f"no owner with id {owner}"
    return f"owner {owner} is not a kvm owner: only a kvm owner takes guest faults"


def put_unlock_einval(c: Ctx) -> str | None:
    total = c.phys.total if c.phys is not None else None
    if total is not None and c.a("pfn") >= total:
        return f"pfn {c.a('pfn')} is past the last frame (the machine has {total})"
    return f"pfn {c.a('pfn')} holds no reference of the caller's to drop"


def invalidate_einval(c: Ctx) -> str | None:
    if c.a("start") > c.a("end"):
        return f"start ({c.a('start')}) is past end ({c.a('end')})"
    if c.gmem or not c.rfc:
        return "invalidate runs the RFC's owner callbacks: a memfd of profile rfc-v2"
    return None


def register_eperm(c: Ctx) -> str | None:
    if c.file is None:
        return None
    others = [o for o in c.file.owners if o != c.a("owner")]
    who = ", ".join(str(o) for o in others) or "?"
    return f"another owner (id {who}) is already registered on this file"


def get_lock_pfn_einval(c: Ctx) -> str | None:
    if c.file is None:
        return None
    pages = (c.file.size + PAGE - 1) // PAGE
    if c.a("index") >= pages:
        return f"index {c.a('index')} is at or past the end of the file ({pages} pages)"
    return None


def ebadf(c: Ctx) -> str | None:
    fd = c.args.get("fd")
    return f"fd {fd} is not an open file" if fd is not None else "not an open file"


def enoent(c: Ctx) -> str | None:
    if "map_id" in c.args:
        return f"no mapping with id {c.a('map_id')}"
    if c.op == "memfd_unregister_guest":
        return f"owner {c.a('owner')} is not registered on this file"
    if "owner" in c.args:
        return f"no owner with id {c.a('owner')}"
    return None
