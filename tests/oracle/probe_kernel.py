"""Ask this machine's kernel every userspace-visible rule of SEMANTICS.md.

Run as a script (from the repo root): `python tests/oracle/probe_kernel.py`
prints each probe (a fresh `Kernel` per probe, so the first file is fd 3)
with every step's op, args and answer; tests/oracle/kernel-answers.txt is
that output. Importable: `PROBES`, `run_probe()`, `report()`.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from app import oracle

Step = tuple[str, dict[str, Any]]
P = 4096
HUGE = 2 * 1024 * 1024
MAXF = 2**63 - 1  # MAX_LFS_FILESIZE
AS = "MFD_ALLOW_SEALING"
KEEP, PUNCH = "FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"
R, W = "PROT_READ", "PROT_WRITE"
SH, PR = "MAP_SHARED", "MAP_PRIVATE"
GMMAP, GSHARED = "GUEST_MEMFD_FLAG_MMAP", "GUEST_MEMFD_FLAG_INIT_SHARED"


@dataclass(frozen=True)
class Probe:
    section: str
    title: str
    steps: tuple[Step, ...]
    note: str = ""  # what SEMANTICS.md says, where worth comparing
    kvm: bool = False


def memfd(*flags: str | int, size: int = 0, name: str = "p", fd: int = 3) -> list[Step]:
    """memfd_create, then ftruncate(size) of `fd` (the number it will get)."""
    steps: list[Step] = [("memfd_create", {"name": name, "flags": list(flags)})]
    return steps + ([trunc(size, fd=fd)] if size else [])


def gmem(size: int = 4 * P, *flags: str | int) -> list[Step]:
    return [("KVM_CREATE_GUEST_MEMFD", {"size": size, "flags": list(flags)})]


def trunc(length: int, fd: int = 3) -> Step:
    return ("ftruncate", {"fd": fd, "length": length})


def seal(*seals: str | int, fd: int = 3) -> Step:
    return ("F_ADD_SEALS", {"fd": fd, "seals": list(seals)})


def seals(fd: int = 3) -> Step:
    return ("F_GET_SEALS", {"fd": fd})


def falloc(mode: list[str | int], offset: int, length: int, fd: int = 3) -> Step:
    return ("fallocate", {"fd": fd, "mode": mode, "offset": offset, "length": length})


def pread(offset: int, count: int, fd: int = 3) -> Step:
    return ("pread", {"fd": fd, "offset": offset, "count": count})


def pwrite(offset: int, data: bytes, fd: int = 3) -> Step:
    return ("pwrite", {"fd": fd, "offset": offset, "data": data})


def mmap(offset: int, length: int, prot: list[str], flags: list[str | int], fd: int = 3) -> Step:
    return ("mmap", {"fd": fd, "offset": offset, "length": length, "prot": prot, "flags": flags})


def munmap(map_id: int = 1) -> Step:
    return ("munmap", {"map_id": map_id})


def size(fd: int = 3) -> Step:
    return ("fstat_size", {"fd": fd})


def close(fd: int = 3) -> Step:
    return ("close", {"fd": fd})


_table: list[Probe] = []


def probe(section: str, title: str, *steps: Step | list[Step], note: str = "") -> None:
    flat: list[Step] = []
    for s in steps:
        flat.extend(s if isinstance(s, list) else [s])
    kvm = any(op == "KVM_CREATE_GUEST_MEMFD" for op, _ in flat)
    _table.append(Probe(section, title, tuple(flat), note, kvm))


# memfd_create ---------------------------------------------------------------
S = "memfd_create"
probe(S, "no flags: initial seals", memfd(), seals(), note="F_SEAL_SEAL")
probe(S, "MFD_ALLOW_SEALING: initial seals", memfd(AS), seals())
probe(S, "MFD_CLOEXEC alone", memfd("MFD_CLOEXEC"), seals())
probe(S, "unknown flag bits", memfd(0x20), memfd(0x40), memfd(0x80000000), memfd(AS, 0x100))
probe(
    S,
    "name lengths 0, 249, 250",
    memfd(name=""),
    memfd(name="a" * 249),
    memfd(name="a" * 250),
    note="longer than 249 bytes: EINVAL",
)
probe(S, "fd numbering: lowest free from 3", memfd(), memfd(), memfd(), close(4), memfd(), close(9))
# F_SEAL_EXEC / MFD_EXEC / MFD_NOEXEC_SEAL (6.18)
S = "memfd_create exec flags"
probe(
    S,
    "MFD_NOEXEC_SEAL alone: seals, then add a seal",
    memfd("MFD_NOEXEC_SEAL"),
    seals(),
    seal("F_SEAL_WRITE"),
    seals(),
)
probe(
    S,
    "MFD_NOEXEC_SEAL|ALLOW_SEALING",
    memfd("MFD_NOEXEC_SEAL", AS),
    seals(),
    seal("F_SEAL_GROW"),
    seals(),
)
probe(S, "MFD_EXEC alone", memfd("MFD_EXEC"), seals())
probe(
    S,
    "MFD_EXEC|ALLOW_SEALING then F_SEAL_EXEC",
    memfd("MFD_EXEC", AS),
    seals(),
    seal("F_SEAL_EXEC"),
    seals(),
)
probe(
    S,
    "MFD_EXEC|MFD_NOEXEC_SEAL",
    memfd("MFD_EXEC", "MFD_NOEXEC_SEAL"),
    memfd("MFD_EXEC", "MFD_NOEXEC_SEAL", AS),
    note="EINVAL",
)
probe(
    S,
    "F_SEAL_EXEC on executable memfds (no NOEXEC_SEAL: mode 0777)",
    memfd(AS),
    seal("F_SEAL_EXEC"),
    seals(),
    pwrite(0, b"x"),
    trunc(P),
    memfd(AS, size=P, fd=4),
    mmap(0, P, [R], [SH], fd=4),
    seal("F_SEAL_EXEC", fd=4),
    seals(fd=4),
    memfd("MFD_EXEC", AS),
    seal("F_SEAL_EXEC", "F_SEAL_SEAL", fd=5),
    seals(fd=5),
)
# MFD_HUGETLB (this machine has no reserved huge pages: see header)
S = "MFD_HUGETLB"
probe(S, "create, seals", memfd("MFD_HUGETLB"), seals(), memfd("MFD_HUGETLB", AS), seals(fd=4))
probe(
    S,
    "with a size encoding (2 MiB = 21 << 26)",
    memfd("MFD_HUGETLB", 21 << 26),
    memfd(21 << 26),
    note="size bits without MFD_HUGETLB: EINVAL",
)
probe(S, "with MFD_NOEXEC_SEAL", memfd("MFD_HUGETLB", "MFD_NOEXEC_SEAL"), seals())
probe(S, "ftruncate 4096 and 2 MiB", memfd("MFD_HUGETLB", AS), trunc(P), trunc(HUGE), size())
probe(
    S,
    "fallocate / pread / pwrite / mmap",
    memfd("MFD_HUGETLB", AS),
    trunc(HUGE),
    falloc([], 0, HUGE),
    pread(0, 16),
    pwrite(0, b"x"),
    mmap(0, HUGE, [R, W], [SH]),
    mmap(0, HUGE, [R], [PR]),
    falloc([PUNCH, KEEP], 0, HUGE),
    seal("F_SEAL_GROW"),
    seals(),
)

# F_ADD_SEALS -------------------------------------------------------------------
S = "F_ADD_SEALS"
probe(
    S,
    "empty set, each seal, re-adding",
    memfd(AS),
    seal(),
    seal("F_SEAL_SHRINK"),
    seal("F_SEAL_SHRINK"),
    seal("F_SEAL_GROW", "F_SEAL_FUTURE_WRITE"),
    seals(),
    seal("F_SEAL_SEAL"),
    seals(),
    seal(),
    seal("F_SEAL_SEAL"),
    seal("F_SEAL_WRITE"),
)
probe(S, "unknown bit", memfd(AS), seal(0x40), seal(0x80), seal(0x80000000), seals())
probe(
    S,
    "unknown bit on a file with F_SEAL_SEAL",
    memfd(),
    seal(0x40),
    seal("F_SEAL_WRITE"),
    note="order: unknown bits EINVAL, then F_SEAL_SEAL EPERM",
)
probe(
    S,
    "F_SEAL_SEAL set and a MAP_SHARED mapping: which wins",
    memfd(AS, size=P),
    mmap(0, P, [R, W], [SH]),
    seal("F_SEAL_SEAL"),
    seal("F_SEAL_WRITE"),
)
probe(
    S,
    "unknown bit and a MAP_SHARED mapping",
    memfd(AS, size=P),
    mmap(0, P, [R, W], [SH]),
    seal("F_SEAL_WRITE", 0x40),
    seal("F_SEAL_WRITE"),
)
probe(
    S,
    "F_SEAL_WRITE vs MAP_SHARED PROT_READ|PROT_WRITE",
    memfd(AS, size=P),
    mmap(0, P, [R, W], [SH]),
    seal("F_SEAL_WRITE"),
    munmap(),
    seal("F_SEAL_WRITE"),
    seals(),
)
probe(
    S,
    "F_SEAL_WRITE vs MAP_SHARED PROT_READ",
    memfd(AS, size=P),
    mmap(0, P, [R], [SH]),
    seal("F_SEAL_WRITE"),
    note="EBUSY even read-only",
)
probe(
    S,
    "F_SEAL_WRITE vs MAP_SHARED PROT_NONE",
    memfd(AS, size=P),
    mmap(0, P, [], [SH]),
    seal("F_SEAL_WRITE"),
)
probe(
    S,
    "F_SEAL_WRITE vs MAP_SHARED mapping of an empty file / past the end",
    memfd(AS),
    mmap(0, P, [R], [SH]),
    seal("F_SEAL_WRITE"),
)
probe(
    S,
    "F_SEAL_WRITE vs MAP_PRIVATE PROT_WRITE",
    memfd(AS, size=P),
    mmap(0, P, [R, W], [PR]),
    seal("F_SEAL_WRITE"),
    seals(),
    note="MAP_PRIVATE does not count",
)
probe(
    S,
    "F_SEAL_WRITE vs MAP_PRIVATE PROT_READ",
    memfd(AS, size=P),
    mmap(0, P, [R], [PR]),
    seal("F_SEAL_WRITE"),
)
probe(
    S,
    "F_SEAL_WRITE: a mapping of another memfd does not block",
    memfd(AS, size=P),
    mmap(0, P, [R, W], [SH]),
    memfd(AS),
    trunc(P, fd=4),
    seal("F_SEAL_WRITE", fd=4),
    seal("F_SEAL_WRITE"),
)
probe(
    S,
    "F_SEAL_FUTURE_WRITE vs an existing MAP_SHARED writable mapping",
    memfd(AS, size=P),
    mmap(0, P, [R, W], [SH]),
    seal("F_SEAL_FUTURE_WRITE"),
    seals(),
)
probe(
    S,
    "F_SEAL_WRITE after F_SEAL_FUTURE_WRITE with a later read-only MAP_SHARED",
    memfd(AS, size=P),
    seal("F_SEAL_FUTURE_WRITE"),
    mmap(0, P, [R], [SH]),
    seal("F_SEAL_WRITE"),
    seals(),
)
probe(
    S,
    "F_SEAL_WRITE with a read-only MAP_SHARED made after F_SEAL_WRITE",
    memfd(AS, size=P),
    seal("F_SEAL_WRITE"),
    mmap(0, P, [R], [SH]),
    seal("F_SEAL_WRITE"),
)
probe(
    S,
    "F_SEAL_WRITE with a MAP_SHARED | MAP_PRIVATE (=MAP_SHARED_VALIDATE) mapping",
    memfd(AS, size=P),
    mmap(0, P, [R], [SH, PR]),
    seal("F_SEAL_WRITE"),
)
probe(
    S,
    "F_GET_SEALS / F_ADD_SEALS on a bad fd",
    seals(fd=42),
    seal("F_SEAL_WRITE", fd=42),
    seal(0x40, fd=42),
)

# ftruncate --------------------------------------------------------------------
S = "ftruncate"
probe(
    S,
    "negative, zero, huge",
    memfd(AS),
    trunc(-1),
    trunc(-P),
    trunc(0),
    trunc(MAXF),
    size(),
    pread(MAXF - 10, 4),
    trunc(MAXF + 1),
    trunc(2**62),
    size(),
)
probe(S, "negative on a bad fd", trunc(-1, fd=42), trunc(P, fd=42))
probe(
    S,
    "F_SEAL_SHRINK",
    memfd(AS, size=2 * P),
    seal("F_SEAL_SHRINK"),
    trunc(P),
    trunc(2 * P),
    trunc(3 * P),
    size(),
)
probe(
    S,
    "F_SEAL_GROW",
    memfd(AS, size=2 * P),
    seal("F_SEAL_GROW"),
    trunc(3 * P),
    trunc(2 * P),
    trunc(P),
    size(),
)
probe(S, "F_SEAL_GROW and negative", memfd(AS), seal("F_SEAL_GROW"), trunc(-1))
probe(
    S,
    "F_SEAL_WRITE (no size seal)",
    memfd(AS, size=2 * P),
    seal("F_SEAL_WRITE"),
    trunc(3 * P),
    trunc(P),
    size(),
)
probe(
    S,
    "F_SEAL_FUTURE_WRITE (no size seal)",
    memfd(AS, size=2 * P),
    seal("F_SEAL_FUTURE_WRITE"),
    trunc(3 * P),
    trunc(P),
    size(),
)
probe(S, "unaligned sizes", memfd(AS), trunc(1), trunc(4097), size())

# fallocate --------------------------------------------------------------------
S = "fallocate modes"
probe(
    S,
    "mode 0, KEEP_SIZE, PUNCH|KEEP",
    memfd(AS),
    falloc([], 0, P),
    size(),
    falloc([KEEP], 0, 4 * P),
    size(),
    falloc([PUNCH, KEEP], 0, P),
    size(),
)
probe(
    S,
    "PUNCH_HOLE alone and other modes",
    memfd(AS, size=P),
    falloc([PUNCH], 0, P),
    falloc([0x4], 0, P),
    falloc([0x8], 0, P),
    falloc([0x10], 0, P),
    falloc([0x20], 0, P),
    falloc([0x40], 0, P),
    falloc([0x80], 0, P),
    falloc([KEEP, 0x10], 0, P),
    falloc([-1], 0, P),
)
probe(
    S,
    "offset / len edges",
    memfd(AS, size=P),
    falloc([], -1, P),
    falloc([], 0, 0),
    falloc([], 0, -1),
    falloc([], 1, 1),
    size(),
    falloc([KEEP], 0, 0),
    falloc([PUNCH, KEEP], -1, P),
    falloc([PUNCH, KEEP], 0, 0),
)
probe(
    S,
    "EFBIG",
    memfd(AS),
    falloc([], MAXF, 1),
    falloc([], 2**62, 2**62),
    falloc([KEEP], MAXF - 1, 2),
    falloc([PUNCH, KEEP], MAXF, 1),
    falloc([PUNCH, KEEP], 2**62, 2**62),
    falloc([], -1, 2**63 - 1),
)
probe(
    S,
    "which wins: bad mode and bad offset / len",
    memfd(AS),
    falloc([PUNCH], -1, P),
    falloc([0x10], 0, 0),
    falloc([0x80], MAXF, 1),
    falloc([0x100], MAXF, 1),
    falloc([0x100], -1, P),
    falloc([0x10], MAXF, 1),
    falloc([PUNCH], MAXF, 1),
)
probe(
    S,
    "which wins: bad fd",
    falloc([], 0, P, fd=42),
    falloc([], -1, P, fd=42),
    falloc([PUNCH], 0, P, fd=42),
    falloc([], MAXF, 1, fd=42),
)
probe(
    S,
    "punch past the end, unaligned punch",
    memfd(AS, size=2 * P),
    pwrite(0, b"A" * (2 * P)),
    falloc([PUNCH, KEEP], P, 100 * P),
    size(),
    falloc([PUNCH, KEEP], 10, 20),
    pread(6, 8),
    pread(26, 8),
    size(),
)
S = "fallocate seals"
probe(
    S,
    "which wins: VFS checks before seals",
    memfd(AS, size=P),
    seal("F_SEAL_WRITE", "F_SEAL_GROW"),
    falloc([PUNCH], 0, P),
    falloc([PUNCH, KEEP], 0, 0),
    falloc([PUNCH, KEEP], MAXF, 1),
    falloc([], -1, 2 * P),
    falloc([], 0, 2 * P),
    falloc([PUNCH, KEEP], 0, P),
)
probe(
    S,
    "punch with F_SEAL_WRITE",
    memfd(AS, size=P),
    seal("F_SEAL_WRITE"),
    falloc([PUNCH, KEEP], 0, P),
    note="EPERM",
)
probe(
    S,
    "punch with F_SEAL_FUTURE_WRITE",
    memfd(AS, size=P),
    seal("F_SEAL_FUTURE_WRITE"),
    falloc([PUNCH, KEEP], 0, P),
    note="EPERM",
)
probe(
    S,
    "punch with F_SEAL_WRITE past the end / on a hole",
    memfd(AS, size=P),
    seal("F_SEAL_WRITE"),
    falloc([PUNCH, KEEP], 8 * P, P),
)
probe(
    S,
    "punch with F_SEAL_SHRINK|GROW",
    memfd(AS, size=P),
    seal("F_SEAL_SHRINK", "F_SEAL_GROW"),
    falloc([PUNCH, KEEP], 0, 2 * P),
    size(),
)
probe(
    S,
    "allocate with F_SEAL_GROW",
    memfd(AS, size=2 * P),
    seal("F_SEAL_GROW"),
    falloc([], 0, 2 * P),
    falloc([], P, 2 * P),
    falloc([KEEP], 0, 2 * P),
    falloc([KEEP], P, 2 * P),
    falloc([KEEP], 2 * P, 1),
    size(),
    note="EPERM only without KEEP_SIZE and past the end",
)
probe(
    S,
    "allocate with F_SEAL_GROW inside the last partial page",
    memfd(AS, size=100),
    seal("F_SEAL_GROW"),
    falloc([KEEP], 0, 100),
    falloc([KEEP], 0, 101),
    falloc([], 99, 1),
)
probe(
    S,
    "allocate with F_SEAL_GROW and EFBIG",
    memfd(AS),
    seal("F_SEAL_GROW"),
    falloc([KEEP], MAXF, 1),
    falloc([KEEP], 0, MAXF),
)
probe(
    S,
    "allocate with F_SEAL_WRITE / FUTURE_WRITE",
    memfd(AS, size=P),
    seal("F_SEAL_WRITE"),
    falloc([], 0, 2 * P),
    falloc([KEEP], 0, 4 * P),
    size(),
    memfd(AS),
    trunc(P, fd=4),
    seal("F_SEAL_FUTURE_WRITE", fd=4),
    falloc([], 0, 2 * P, fd=4),
    size(fd=4),
)
probe(
    S,
    "allocate with F_SEAL_SHRINK",
    memfd(AS, size=P),
    seal("F_SEAL_SHRINK"),
    falloc([], 0, 2 * P),
    size(),
)

# pread / pwrite ---------------------------------------------------------------
S = "pread"
probe(
    S,
    "inside, at and after the end, negative",
    memfd(AS, size=P),
    pread(0, 4),
    pread(P - 2, 4),
    pread(P, 4),
    pread(10 * P, 4),
    pread(-1, 4),
    pread(0, 0),
    pread(-1, 0),
    pread(0, -1),
    pread(MAXF, 1),
)
probe(S, "bad fd", pread(0, 4, fd=42), pread(-1, 4, fd=42))
probe(
    S,
    "with every seal",
    memfd(AS, size=P),
    seal(
        "F_SEAL_WRITE",
        "F_SEAL_FUTURE_WRITE",
        "F_SEAL_GROW",
        "F_SEAL_SHRINK",
        "F_SEAL_EXEC",
        "F_SEAL_SEAL",
    ),
    pread(0, 4),
    seals(),
)
S = "pwrite"
probe(
    S,
    "grow, negative, huge offsets",
    memfd(AS),
    pwrite(P, b"ab"),
    size(),
    pwrite(-1, b"a"),
    pwrite(0, b""),
    pwrite(MAXF - 1, b"a"),
    pwrite(MAXF - 1, b"ab"),
    pwrite(MAXF, b"a"),
    pwrite(MAXF, b""),
    size(),
)
probe(
    S,
    "F_SEAL_WRITE",
    memfd(AS, size=P),
    seal("F_SEAL_WRITE"),
    pwrite(0, b"a"),
    pwrite(0, b""),
    pwrite(-1, b"a"),
)
probe(
    S,
    "F_SEAL_FUTURE_WRITE",
    memfd(AS, size=P),
    seal("F_SEAL_FUTURE_WRITE"),
    pwrite(0, b"a"),
    pwrite(0, b""),
)
probe(
    S,
    "F_SEAL_GROW: inside, at the end, past, straddling",
    memfd(AS, size=P),
    seal("F_SEAL_GROW"),
    pwrite(0, b"a"),
    pwrite(P - 1, b"a"),
    pwrite(P, b"a"),
    pwrite(2 * P, b"a"),
    pwrite(P - 96, b"b" * 200),
    pwrite(P - 10, b"c" * (P + 10)),
    size(),
    pwrite(P, b""),
)
probe(
    S,
    "F_SEAL_GROW straddling on an unaligned size",
    memfd(AS, size=100),
    seal("F_SEAL_GROW"),
    pwrite(90, b"d" * 20),
    pwrite(100, b"d"),
    size(),
    pread(0, 200),
)
probe(S, "F_SEAL_SHRINK", memfd(AS, size=P), seal("F_SEAL_SHRINK"), pwrite(P, b"a"), size())
probe(S, "bad fd", pwrite(0, b"a", fd=42), pwrite(-1, b"a", fd=42))

# mmap --------------------------------------------------------------------------
S = "mmap"
probe(
    S,
    "length / offset validation",
    memfd(AS, size=P),
    mmap(0, 0, [R], [SH]),
    mmap(1, P, [R], [SH]),
    mmap(P - 1, P, [R], [SH]),
    mmap(-P, P, [R], [SH]),
    mmap(-1, P, [R], [SH]),
    mmap(0, -1, [R], [SH]),
    mmap(0, -P, [R], [SH]),
    mmap(0, 1, [R], [SH]),
    mmap(0, 100 * P, [R, W], [SH]),
    mmap(2**62, P, [R], [SH]),
    mmap(MAXF - P + 1, P, [R], [SH]),
)
probe(
    S,
    "flags validation",
    memfd(AS, size=P),
    mmap(0, P, [R], []),
    mmap(0, P, [R], [SH, PR]),
    mmap(0, P, [R], [SH, 0x20000000]),
    mmap(0, P, [R], [SH, 0x80000]),
    mmap(0, P, [R], [SH, PR, 0x80000]),
    mmap(0, P, [R], [SH, PR, 0x20000000]),
    mmap(0, P, [], [PR]),
)
probe(
    S,
    "bad fd, and bad fd with bad length",
    mmap(0, P, [R], [SH], fd=42),
    mmap(0, 0, [R], [SH], fd=42),
    mmap(1, P, [R], [SH], fd=42),
    mmap(0, P, [R], [], fd=42),
    mmap(-P, P, [R], [SH], fd=42),
)
probe(
    S,
    "F_SEAL_WRITE",
    memfd(AS, size=P),
    seal("F_SEAL_WRITE"),
    mmap(0, P, [R, W], [SH]),
    mmap(0, P, [R], [SH]),
    mmap(0, P, [R, W], [PR]),
    mmap(0, P, [], [SH]),
)
probe(
    S,
    "F_SEAL_FUTURE_WRITE",
    memfd(AS, size=P),
    seal("F_SEAL_FUTURE_WRITE"),
    mmap(0, P, [R, W], [SH]),
    mmap(0, P, [R], [SH]),
    mmap(0, P, [R, W], [PR]),
)
probe(
    S,
    "F_SEAL_GROW / SHRINK: mapping past the end",
    memfd(AS, size=P),
    seal("F_SEAL_GROW", "F_SEAL_SHRINK"),
    mmap(0, 4 * P, [R, W], [SH]),
)
probe(
    S,
    "F_SEAL_EXEC on a MFD_NOEXEC_SEAL memfd (no implied seals)",
    memfd("MFD_NOEXEC_SEAL", size=P),
    seals(),
    mmap(0, P, [R, W], [SH]),
    pwrite(0, b"x"),
    trunc(2 * P),
)
probe(
    S,
    "munmap: twice, unknown id; mapping outlives close",
    memfd(AS, size=P),
    mmap(0, P, [R], [SH]),
    close(),
    munmap(),
    munmap(),
    munmap(7),
    memfd(AS),
    mmap(0, P, [R], [SH]),
)

# guest_memfd (KVM_CREATE_GUEST_MEMFD on a KVM_CREATE_VM type 0) ----------------
S = "guest_memfd create"
probe(
    S,
    "sizes",
    gmem(0),
    gmem(1),
    gmem(4095),
    gmem(4097),
    gmem(-P),
    gmem(P),
    size(),
    gmem(2 * HUGE),
    gmem(2**40),
    size(fd=5),
    gmem(2**63),
    gmem(2**64 - P),
)
probe(
    S,
    "flags",
    gmem(P, 0x4),
    gmem(P, 2**63),
    gmem(P, GSHARED),
    gmem(P, GMMAP),
    gmem(P, GMMAP, GSHARED),
    gmem(0, 0x4),
)
probe(S, "fd numbering mixes with memfds", memfd(AS), gmem(P), memfd(AS), close(4), gmem(P))
S = "guest_memfd ops"
probe(
    S,
    "pread, pwrite",
    gmem(4 * P),
    pread(0, 4),
    pread(-1, 4),
    pread(0, 0),
    pwrite(0, b"a"),
    pwrite(-1, b"a"),
    pwrite(0, b""),
)
probe(
    S, "ftruncate", gmem(4 * P), trunc(4 * P), trunc(8 * P), trunc(P), trunc(0), trunc(-1), size()
)
probe(S, "F_ADD_SEALS, F_GET_SEALS", gmem(4 * P), seal("F_SEAL_WRITE"), seal(), seal(0x40), seals())
probe(
    S,
    "mmap without GUEST_MEMFD_FLAG_MMAP",
    gmem(4 * P),
    mmap(0, P, [R, W], [SH]),
    mmap(0, P, [R], [PR]),
    mmap(1, P, [R], [SH]),
    mmap(0, 0, [R], [SH]),
    gmem(4 * P, GSHARED),
    mmap(0, P, [R, W], [SH], fd=4),
)
probe(
    S,
    "mmap with MMAP (not INIT_SHARED)",
    gmem(4 * P, GMMAP),
    mmap(0, P, [R, W], [SH]),
    mmap(0, P, [R], [PR]),
    mmap(0, 8 * P, [R, W], [SH]),
    mmap(16 * P, P, [R], [SH]),
    mmap(1, P, [R], [SH]),
    mmap(0, P, [R], [SH, PR]),
)
probe(
    S,
    "mmap with MMAP|INIT_SHARED",
    gmem(4 * P, GMMAP, GSHARED),
    mmap(0, P, [R, W], [SH]),
    mmap(0, P, [R, W], [PR]),
    mmap(0, 8 * P, [R, W], [SH]),
    mmap(0, P, [], [SH]),
)
probe(
    S,
    "fallocate modes",
    gmem(4 * P),
    falloc([], 0, P),
    falloc([PUNCH], 0, P),
    falloc([KEEP], 0, P),
    falloc([PUNCH, KEEP], 0, P),
    falloc([0x10], 0, P),
    falloc([KEEP, 0x10], 0, P),
    size(),
)
probe(
    S,
    "fallocate KEEP_SIZE alignment and end",
    gmem(4 * P),
    falloc([KEEP], 1, P),
    falloc([KEEP], 0, 1),
    falloc([KEEP], 0, P + 1),
    falloc([KEEP], 3 * P, 2 * P),
    falloc([KEEP], 4 * P, P),
    falloc([KEEP], 0, 4 * P),
    falloc([KEEP], 1, 8 * P),
)
probe(
    S,
    "fallocate punch alignment and end",
    gmem(4 * P),
    falloc([PUNCH, KEEP], 1, P),
    falloc([PUNCH, KEEP], 0, 1),
    falloc([PUNCH, KEEP], 3 * P, 2 * P),
    falloc([PUNCH, KEEP], 8 * P, P),
    falloc([PUNCH, KEEP], 0, 100 * P),
)
probe(
    S,
    "fallocate offset / len / EFBIG",
    gmem(4 * P),
    falloc([KEEP], -P, P),
    falloc([KEEP], 0, 0),
    falloc([KEEP], 0, -P),
    falloc([KEEP], MAXF - P + 1, P),
    falloc([KEEP], 2**62, 2**62),
    falloc([PUNCH, KEEP], 2**62, 2**62),
    falloc([PUNCH, KEEP], MAXF - P + 1, P),
    falloc([], -1, 0),
)


PROBES: tuple[Probe, ...] = tuple(_table)


def show(value: object) -> str:
    if isinstance(value, (bytes, bytearray)):
        if len(value) > 24:
            return f"<{len(value)} bytes, {value[:8]!r}...>"
        return repr(bytes(value))
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, int) and abs(value) >= 2**30:
        return hex(value) if value >= 0 else f"-{hex(-value)}"
    if isinstance(value, str):
        return value
    return repr(value)


def fmt_call(op: str, args: dict[str, Any]) -> str:
    return f"{op}(" + ", ".join(f"{k}={show(v)}" for k, v in args.items()) + ")"


def fmt_answer(op: str, ok: bool, value: object) -> str:
    if not ok:
        return str(value)
    if op == "F_GET_SEALS" and isinstance(value, int):
        names = [n for n, b in oracle.SEALS.items() if value & b]
        return f"{value:#x} {'|'.join(names) or '0'}"
    if op == "pread" and isinstance(value, bytes):
        return f"{len(value)} bytes {show(value)}"
    return "ok" if value is None else show(value)


def run_probe(p: Probe) -> list[tuple[str, dict[str, Any], bool, object]]:
    """Run one probe in a fresh Kernel; (op, args, ok, value or errno name)."""
    out = []
    with oracle.Kernel() as k:
        for op, args in p.steps:
            try:
                ok, value = k.run(op, args)
            except ValueError as e:
                ok, value = False, f"ValueError({e})"
            out.append((op, args, ok, value))
    return out


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError as e:
        return f"unreadable ({e.strerror})"


def report() -> Iterator[str]:
    ok, why = oracle.available()
    kvm, kwhy = oracle.kvm_available()
    yield f"# kernel {platform.release()} {platform.machine()}"
    yield f"# memfd: {ok or why}; kvm guest_memfd: {kvm or kwhy}"
    if kvm:
        yield f"# KVM_CAP_GUEST_MEMFD_FLAGS: {oracle.gmem_supported_flags():#x}"
    yield f"# vm.memfd_noexec={_read('/proc/sys/vm/memfd_noexec')}"
    yield f"# vm.nr_hugepages={_read('/proc/sys/vm/nr_hugepages')}"
    thp = "/sys/kernel/mm/transparent_hugepage/shmem_enabled"
    yield f"# shmem THP: {_read(thp)}"
    yield f"# uid {os.getuid()}; P={P}, MAXF=2**63-1; fds are virtual (first file is 3)"
    section = ""
    for p in PROBES:
        if p.section != section:
            section = p.section
            yield ""
            yield f"== {section}"
        yield f"-- {p.title}" + (f"   [SEMANTICS.md: {p.note}]" if p.note else "")
        if not ok or (p.kvm and not kvm):
            yield "   skipped: " + (why if not ok else kwhy)
            continue
        for op, args, good, value in run_probe(p):
            yield f"   {fmt_call(op, args)} -> {fmt_answer(op, good, value)}"


def main() -> int:
    for line in report():
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
