"""Replaying a log op by op into a fresh machine, saying how each op ended: the engine
side of the side-by-side views (diff of designs, comparison with the kernel)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from app.engine import Callback, Config, EngineError, Event, Machine
from app.errors import ServiceError
from app.service.ops import parse
from app.service.replay import apply, describe
from app.store import StoredOp

MAX_CALLBACKS = 8  # in words, per op; the total is counted

DESIGNS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "rfc-v2": ("rfc-v2", (), "the RFC as posted"),
    "multi_owner": ("rfc-v2", ("multi_owner",), "several owners per file (multi_owner)"),
    "mmap_shared": ("rfc-v2", ("mmap_shared",), "mmap where not encrypted (mmap_shared)"),
    "guest-memfd": ("guest-memfd", (), "today's guest_memfd (Linux 6.18)"),
    "inplace_conversion": (
        "guest-memfd",
        ("inplace_conversion",),
        "proposal, not merged: in-place conversion (v8, June 2026)",
    ),
    "no_direct_map": (
        "guest-memfd",
        ("no_direct_map",),
        "proposal, not merged: guest_memfd without direct map (v7, Sep 2025)",
    ),
    "hugetlb_1g": (
        "guest-memfd",
        ("hugetlb_1g",),
        "proposal, not merged: 1 GiB HugeTLB guest_memfd (RFC v2, May 2025)",
    ),
}


def design_config(design: str, base: Config) -> Config:
    """The configuration of a named design, with the session's memory and thp."""
    profile, variants, _ = DESIGNS[design]
    return Config(profile, base.phys_pages, base.thp, frozenset(variants))


def design_of(config: Config) -> tuple[str, str]:
    """(design name, label) of a configuration."""
    for name, (profile, variants, label) in DESIGNS.items():
        if config.profile == profile and config.variants == frozenset(variants):
            return name, label
    names = "+".join(sorted(config.variants))
    return f"{config.profile}+{names}", f"{config.profile} with {names.replace('+', ', ')}"


@dataclass
class Played:
    """One op replayed: how it ended, and the machine right after it."""

    n: int
    op: str
    args: dict[str, Any]
    ok: bool
    errno: str | None
    result: str
    answer: BaseModel | None
    error: Exception | None
    hazard: str | None = None
    events: list[Event] = field(default_factory=list)
    callbacks: list[str] = field(default_factory=list)
    callbacks_total: int = 0


def callback_text(cb: Callback) -> str:
    close = "]" if cb.end_inclusive else ")"
    return f"{cb.fn} → owner {cb.owner_id} [{cb.start}, {cb.end}{close}"


def event_text(ev: Event) -> str:
    if not ev.ok:
        return str(ev.errno)
    if ev.pending:
        return "sleeps on a page lock"
    if ev.op == "wake":
        return f"wakes #{ev.wakes_seq} {ev.wakes_op or ''}".rstrip()
    if "pfn" in ev.out:
        return f"pfn {ev.out['pfn']}, order {ev.out.get('order')}"
    words = {
        "memfd_create": "fd",
        "KVM_CREATE_GUEST_MEMFD": "fd",
        "owner_create": "owner",
        "mmap": "map",
        "memslot": "slot",
    }
    if ev.op in words:
        return f"{words[ev.op]} {ev.result}"
    if ev.op in ("pread", "pwrite"):
        return f"{ev.result} bytes"
    if ev.op == "F_GET_SEALS":
        return f"seals {ev.result:#x}" if ev.result is not None else "seals"
    return "ok"


def _refusal(exc: Exception) -> tuple[str, str]:
    """(errno, words) of an op refused before the engine."""
    if isinstance(exc, ServiceError):
        return exc.errno_name or "EINVAL", exc.message
    return "EINVAL", describe(exc)


def play(m: Machine, ops: list[tuple[str, dict[str, Any]]], first_n: int = 1) -> Iterator[Played]:
    """Apply each op to `m` in turn; yield how it ended (m is then the state after it)."""
    for i, (name, args) in enumerate(ops):
        n = first_n + i
        before = m.event_count
        try:
            spec, parsed = parse(name, args)
        except ValueError as exc:  # ValidationError is one
            errno, words = _refusal(exc)
            yield Played(n, name, args, False, errno, f"not run: {words}", None, exc)
            continue
        out = apply(m, spec, parsed)
        events = m.events(before, max_items=MAX_CALLBACKS) if out.recorded else []
        if not out.recorded:
            errno, words = _refusal(out.error) if out.error else ("EINVAL", "no engine call")
            yield Played(n, name, args, False, errno, f"not run: {words}", None, out.error)
            continue
        err = out.error
        name_of = err.name if isinstance(err, EngineError) else out.errno
        texts = [event_text(e) for e in events]
        cbs = [callback_text(c) for e in events for c in e.callbacks][:MAX_CALLBACKS]
        yield Played(
            n,
            name,
            args,
            err is None,
            name_of,
            "; ".join(texts) if texts else "ok",
            out.result,
            err,
            hazard=next((e.hazard for e in events if e.hazard), None),
            events=events,
            callbacks=cbs,
            callbacks_total=sum(e.ncallbacks for e in events),
        )


def resident(m: Machine) -> int:
    return sum(f.nr_pages for f in m.files())


def log_of(ops: list[StoredOp], upto: int) -> list[tuple[str, dict[str, Any]]]:
    return [(o.name, o.args_dict()) for o in ops[:upto]]
