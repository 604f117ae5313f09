"""Rules of files, seals and fallocate: their words for a failure (or None)."""

from __future__ import annotations

from app.engine._ctx import FUTURE, GROW, GUEST, KEEP, PAGE, PUNCH, SHRINK, WRITE, Ctx
from app.engine._lib import lib


def memfd_create_einval(c: Ctx) -> str | None:
    n = c.a("name_len")
    if n > 249:
        return f"the name is {n} bytes; memfd_create allows at most 249"
    f = c.a("flags")
    exec_, noexec = lib.SS_MFD_EXEC, lib.SS_MFD_NOEXEC_SEAL
    if not c.rfc and f & exec_ and f & noexec:
        return "MFD_EXEC and MFD_NOEXEC_SEAL exclude each other"
    known = lib.SS_MFD_CLOEXEC | lib.SS_MFD_ALLOW_SEALING | lib.SS_MFD_HUGETLB
    if not c.rfc:
        known |= exec_ | noexec
    if f & ~known & 0x03FFFFFF:
        return f"unknown memfd_create flags {hex(f & ~known & 0x03FFFFFF)} in profile {c.profile}"
    return None


def gmem_create_einval(c: Ctx) -> str | None:
    size, flags = c.a("size"), c.a("flags")
    if size <= 0 or size % PAGE:
        return f"the size must be a positive multiple of 4096 (got {size})"
    known = lib.SS_GMEM_FLAG_MMAP | lib.SS_GMEM_FLAG_INIT_SHARED
    if flags & ~known:
        return f"unknown guest_memfd flags {hex(flags & ~known)}"
    return None


def ftruncate_eperm(c: Ctx) -> str | None:
    if c.file is None:
        return None
    length, size = c.a("length"), c.file.size
    if length < size and c.sealed(SHRINK):
        return f"F_SEAL_SHRINK forbids shrinking (size is {size}, asked {length})"
    if length > size and c.sealed(GROW):
        return f"F_SEAL_GROW forbids growing (size is {size}, asked {length})"
    return None


def ftruncate_einval(c: Ctx) -> str | None:
    length = c.a("length")
    if c.gmem:
        return "a guest_memfd's size is fixed at creation: ftruncate is always EINVAL"
    if length < 0:
        return f"the length is negative ({length})"
    if c.rfc and c.sealed(GUEST) and length % PAGE:
        return f"with F_SEAL_GUEST the size must be a multiple of 4096 (asked {length})"
    return None


def add_seals_einval(c: Ctx) -> str | None:
    if c.gmem:
        return "a guest_memfd has no seals: F_ADD_SEALS is EINVAL"
    table = {"rfc-v2": GUEST, "guest-memfd": lib.SS_F_SEAL_EXEC}
    known = lib.SS_F_SEAL_SEAL | SHRINK | GROW | WRITE | FUTURE | table.get(c.profile, 0)
    bad = c.a("seals") & ~known
    if c.a("foreign") and c.rfc:
        return (
            "the rfc-v2 kernel (Linux 5.15) has no F_SEAL_EXEC (it came in 6.3; "
            "0x20 is F_SEAL_GUEST here): an unknown seal"
        )
    return f"unknown seal bits {hex(bad)}" if bad else None


def add_seals_eperm(c: Ctx) -> str | None:
    text = "F_SEAL_SEAL is set: no more seals can be added"
    if c.file is not None and "MFD_ALLOW_SEALING" not in c.file.flags:
        text += " (the file was created without MFD_ALLOW_SEALING)"
    return text


def add_seals_ebusy(c: Ctx) -> str | None:
    f, seals = c.file, c.a("seals")
    if f is None:
        return None
    if seals & WRITE and not c.sealed(WRITE):
        if f.writable_maps:
            return (
                "F_SEAL_WRITE cannot be added while a MAP_SHARED mapping exists "
                f"({f.writable_maps}; even a read-only one counts)"
            )
        if not (c.rfc and seals & GUEST):
            return "F_SEAL_WRITE cannot be added while pages are pinned (held by get_lock_pfn)"
    if c.rfc and seals & GUEST:
        if f.mappings:
            return f"F_SEAL_GUEST cannot be added while the file is mapped ({f.mappings} mappings)"
        if f.size:
            return f"F_SEAL_GUEST needs an empty file (size is {f.size})"
    if seals & WRITE:
        return "F_SEAL_WRITE cannot be added while pages are pinned (held by get_lock_pfn)"
    return None


def fallocate_eopnotsupp(c: Ctx) -> str | None:
    mode = c.a("mode")
    if mode & PUNCH and not mode & KEEP:
        return "FALLOC_FL_PUNCH_HOLE needs FALLOC_FL_KEEP_SIZE"
    if c.gmem and mode == 0:
        return "a guest_memfd allocates only with FALLOC_FL_KEEP_SIZE (mode 0 is EOPNOTSUPP)"
    return (
        "fallocate supports mode 0, FALLOC_FL_KEEP_SIZE and "
        f"FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE only (got {hex(mode)})"
    )


def fallocate_einval(c: Ctx) -> str | None:
    off, ln, mode = c.a("offset"), c.a("len"), c.a("mode")
    if off < 0 or ln <= 0:
        return f"offset must be >= 0 and len > 0 (offset {off}, len {ln})"
    if c.gmem:
        if off % PAGE or ln % PAGE:
            return f"a guest_memfd needs a page-aligned offset and len (offset {off}, len {ln})"
        if not mode & PUNCH and c.file is not None and off + ln > c.file.size:
            return (
                "a guest_memfd cannot allocate past its end "
                f"(offset + len is {off + ln}, size is {c.file.size})"
            )
    if c.rfc and mode & PUNCH and c.sealed(GUEST) and (off % PAGE or ln % PAGE):
        return f"with F_SEAL_GUEST a punch needs a page-aligned offset and len ({off}, {ln})"
    return None


def fallocate_eperm(c: Ctx) -> str | None:
    off, ln, mode = c.a("offset"), c.a("len"), c.a("mode")
    if mode & PUNCH:
        for bit, name in ((WRITE, "F_SEAL_WRITE"), (FUTURE, "F_SEAL_FUTURE_WRITE")):
            if c.sealed(bit):
                return f"{name} forbids punching holes"
    if c.sealed(GROW) and c.file is not None:
        return (
            f"F_SEAL_GROW forbids growing the file (size is {c.file.size}, "
            f"offset + len is {off + ln})"
        )
    return None


def no_frames(c: Ctx) -> str | None:
    p = c.phys
    free = f" ({p.free} of {p.total} frames free)" if p is not None else ""
    return f"out of physical frames{free}; the pages this call allocated were given back"
