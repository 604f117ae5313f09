"""Side by side with the real kernel: a session's log run op by op in the engine and
in this machine's Linux (app.oracle), userspace-visible ops only.

The kernel is asked through `app.oracle.Kernel` with its own fd and map numbers,
translated from the engine's as files and mappings appear. What cannot agree on purpose
is marked intended with the reason (kernel_rules); what the kernel was not asked (the
byte budget, no /dev/kvm) is skipped, and what later differs because of it "follows".
"""

from __future__ import annotations

import os
import threading
from typing import Any

from app import oracle
from app.engine import Config, Machine
from app.models.compare import CompareRequest, CompareRow, Comparison
from app.oracle_kvm import KvmKernel
from app.registry import Registry
from app.service import room
from app.service.kernel_answers import Verdict, engine_answer, verdict
from app.service.kernel_rules import KernelSide, fd_of, kernel_op
from app.service.play import log_of, play

_ONE_AT_A_TIME = threading.Lock()  # kernel work of the whole service, one log at a time


def probe(settings_on: bool) -> tuple[bool, str, bool, str]:
    """(available, reason, kvm available, kvm reason)."""
    if not settings_on:
        why = "the kernel comparison is turned off (SEALSCOPE_COMPARE_KERNEL=0)"
        return False, why, False, why
    ok, why = oracle.available()
    if not ok:
        return False, f"this machine's kernel cannot make memfds: {why}", False, why
    kvm, kvm_why = oracle.kvm_available()
    return True, "", kvm, kvm_why


def run_compare(
    config: Config,
    ops: list[tuple[str, dict[str, Any]]],
    req: CompareRequest,
    budget: int,
    kvm: tuple[bool, str],
) -> tuple[list[CompareRow], dict[str, int], int | None, int, int]:
    """(rows, counts, first unexpected, bytes used, last op run)."""
    m = Machine(config)
    last = min(len(ops), req.first + req.limit - 1)
    rows: list[CompareRow] = []
    counts: dict[str, int] = {}
    first_bad = None
    with _ONE_AT_A_TIME, KvmKernel() as k:
        side = KernelSide(k, budget, kvm)
        for p in play(m, ops[:last]):
            eng = engine_answer(p, m)
            ker, skip = kernel_op(side, config.profile, p, m)
            fd = fd_of(side, p)
            marked = side.marks.get(fd) if fd is not None else side.touch_mark(p, m)
            v: Verdict = verdict(marked, config.profile, p, eng, ker, skip)
            side.after(p, m, eng, ker, v)
            if p.n < req.first:
                continue
            counts[v.status] = counts.get(v.status, 0) + 1
            if v.status == "diverge" and first_bad is None:
                first_bad = p.n
            if v.status == "agree" and req.only_diverging:
                continue
            rows.append(
                CompareRow(
                    n=p.n,
                    op=p.op,
                    args=p.args,
                    engine=eng,
                    kernel=ker,
                    status=v.status,
                    diverges=v.diverges,
                    intended=v.status == "intended",
                    reason=v.reason,
                )
            )
        used = side.used
    return rows, counts, first_bad, used, last


async def compare(reg: Registry, sid: str, req: CompareRequest) -> Comparison:
    s = reg.get(sid)
    async with s.lock:
        upto = min(len(s.ops), req.first + req.limit - 1)
        ops = log_of(await reg.call(s.full_ops, 0, upto), upto)  # payloads from the store
        total = s.seq
    st = reg.settings
    available, why, kvm, kvm_why = probe(st.compare_kernel)
    out = Comparison(
        available=available,
        reason=why or None,
        kvm_available=kvm,
        kvm_reason=kvm_why or None,
        kernel=os.uname().release,
        profile=s.config.profile,
        budget_bytes=st.compare_bytes,
        ops=total,
    )
    if not available:
        return out
    with room.machines(reg, 1, s.config.phys_pages, "compare"):
        rows, counts, first_bad, used, last = await reg.call(
            run_compare, s.config, ops, req, st.compare_bytes, (kvm, kvm_why)
        )
    return out.model_copy(
        update={
            "rows": rows,
            "counts": counts,
            "compared": max(0, last - req.first + 1),
            "unexpected": counts.get("diverge", 0),
            "first_unexpected": first_bad,
            "used_bytes": used,
            "next": last + 1 if last < total else None,
        }
    )
