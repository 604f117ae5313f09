"""The review's alternatives side by side: one session's log replayed under two designs,
op by op, saying where they part (answer or errno, callbacks, frames, resident pages)."""

from __future__ import annotations

from typing import Any, Literal

from app.engine import Config, Machine
from app.models.compare import Aspect, Diff, DiffCell, DiffRequest, DiffRow, DiffSide, Window
from app.registry import Registry
from app.service import room
from app.service.play import (
    Played,
    design_config,
    design_of,
    log_of,
    play,
    resident,
)


def side(config: Config, design: str | None = None) -> DiffSide:
    name, label = design_of(config)
    return DiffSide(
        design=design or name,
        label=label,
        profile=config.profile,
        variants=sorted(config.variants),
        thp=config.thp,
    )


def _cell(p: Played, m: Machine) -> DiffCell:
    return DiffCell(
        ok=p.ok,
        errno=p.errno,
        result=p.result,
        callbacks=p.callbacks,
        callbacks_total=p.callbacks_total,
        hazard=p.hazard,
        frames=m.phys().used,
        pages=resident(m),
    )


def _differs(a: DiffCell, b: DiffCell) -> list[Aspect]:
    out: list[Aspect] = []
    if (a.ok, a.errno, a.result) != (b.ok, b.errno, b.result):
        out.append("result")
    if (a.callbacks, a.callbacks_total) != (b.callbacks, b.callbacks_total):
        out.append("callbacks")
    if a.frames != b.frames:
        out.append("frames")
    if a.pages != b.pages:
        out.append("pages")
    return out


def state(m: Machine) -> tuple[Any, ...]:
    """What a later op can see of the machine: its files (size, seals, pages, mappings,
    owners), its owners' mappings and the frames in use. Alike on both sides, an op that
    differs is a root cause; unalike, what differs may follow from an earlier op."""
    files = tuple(
        (f.fd, f.kind, f.size, tuple(f.seals), f.nr_pages, f.mappings, tuple(f.owners))
        for f in m.files()
    )
    owners = tuple((o.id, o.nmapped, o.nzapped) for o in m.owners())
    return files, owners, m.phys().used


def run_diff(
    ops: list[tuple[str, dict[str, Any]]], ca: Config, cb: Config, req: Window
) -> tuple[list[DiffRow], int, int | None, int, int]:
    """(rows, diverging, first divergence, ops compared, root causes): the log under
    both configs."""
    ma, mb = Machine(ca), Machine(cb)
    last = min(len(ops), req.first + req.limit - 1)
    rows: list[DiffRow] = []
    diverging, first_div, roots = 0, None, 0
    root: int | None = None  # the op since which the states differ
    for pa, pb in zip(play(ma, ops[:last]), play(mb, ops[:last]), strict=True):
        a, b = _cell(pa, ma), _cell(pb, mb)
        differs = _differs(a, b)
        cause: Literal["root", "follows"] | None = None
        since = root
        if differs:
            cause = "root" if root is None else "follows"
        root = (root or pa.n) if state(ma) != state(mb) else None
        if pa.n < req.first:
            continue
        if differs:
            diverging += 1
            roots += cause == "root"
            first_div = first_div or pa.n
        if differs or not req.only_diverging:
            follows = since if cause == "follows" else None
            rows.append(
                DiffRow(
                    n=pa.n,
                    op=pa.op,
                    args=pa.args,
                    a=a,
                    b=b,
                    differs=differs,
                    cause=cause,
                    follows=follows,
                )
            )
    return rows, diverging, first_div, last, roots


async def diff(reg: Registry, sid: str, req: DiffRequest) -> Diff:
    """The session's log under req.base and req.variant; the session does not change."""
    return await diff_designs(reg, sid, req.base, req.variant, req)


async def diff_designs(reg: Registry, sid: str, a: str, b: str, req: Window) -> Diff:
    """The session's log under designs a and b ("session": its own configuration)."""
    s = reg.get(sid)
    async with s.lock:
        upto = min(len(s.ops), req.first + req.limit - 1)
        ops = log_of(await reg.call(s.full_ops, 0, upto), upto)  # payloads from the store
        total = s.seq
    ca = s.config if a == "session" else design_config(a, s.config)
    cb = s.config if b == "session" else design_config(b, s.config)
    with room.machines(reg, 2, s.config.phys_pages, "diff"):
        rows, diverging, first_div, last, roots = await reg.call(run_diff, ops, ca, cb, req)
    return Diff(
        a=side(ca, None if a == "session" else a),
        b=side(cb, None if b == "session" else b),
        ops=total,
        compared=max(0, last - req.first + 1),
        diverging=diverging,
        first_divergence=first_div,
        roots=roots,
        rows=rows,
        next=last + 1 if last < total else None,
    )
