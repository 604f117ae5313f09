"""Random confidential-VM programs against a small reference model: the page's life
(absent / allocated / zeroed / prepared / hwpoison), populate's answers (pages done,
EEXIST, EINVAL for a shared gfn, kvm_gmem_populate's order), and the SNP launch digest
recomputed with hashlib over what was populated, in order; ss_check after every op."""

from __future__ import annotations

import hashlib
import struct
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.engine import Config, EngineError, Machine
from tests.budget import DERANDOMIZE, examples

PAGE = 4096
N = 16  # pages of the guest_memfd, bound at gpa 0
PRIV = ["KVM_MEMORY_ATTRIBUTE_PRIVATE"]
PUNCH = ["FALLOC_FL_PUNCH_HOLE", "FALLOC_FL_KEEP_SIZE"]

idx = st.integers(0, N - 1)
ops = st.one_of(
    st.tuples(st.just("attrs"), idx, st.integers(1, 4), st.booleans()),
    st.tuples(st.just("populate"), idx, st.integers(1, 4), st.integers(0, 255)),
    st.tuples(st.just("fault"), idx),
    st.tuples(st.just("alloc"), idx),
    st.tuples(st.just("punch"), idx, st.integers(1, 4)),
    st.tuples(
        st.just("finish"),
    ),
    st.tuples(st.just("poison"), idx),
)


def page_info(ld: bytes, gpa: int, content: bytes) -> bytes:
    info = ld + hashlib.sha384(content).digest()
    return hashlib.sha384(info + struct.pack("<HBBBBBBQ", 0x70, 1, 0, 0, 0, 0, 0, gpa)).digest()


class Model:
    """What the patches say, page by page (life: None absent, else the state)."""

    def __init__(self) -> None:
        self.private = [False] * N
        self.life: list[str | None] = [None] * N
        self.digest = bytes(48)
        self.pages = 0
        self.done = False

    def populate(self, start: int, n: int, seed: int) -> tuple[int | str, int]:
        """(answer, pages done): an int answer is success, a str the errno."""
        if self.done:
            return "EIO", 0
        n = min(n, N - start)  # cut at the slot's end
        for i in range(n):
            p = start + i
            if self.life[p] == "hwpoison":
                return ("EHWPOISON" if i == 0 else i), i
            if self.life[p] is None:
                self.life[p] = "allocated"
            if self.life[p] != "allocated":
                return ("EEXIST" if i == 0 else i), i
            if not self.private[p]:
                return ("EINVAL" if i == 0 else i), i
            self.life[p] = "prepared"
            self.digest = page_info(self.digest, p * PAGE, content(seed, p))
            self.pages += 1
        return n, n


def content(seed: int, p: int) -> bytes:
    return bytes([(seed + p) & 0xFF]) * PAGE


class World:
    def __init__(self) -> None:
        self.m = Machine(Config(profile="guest-memfd", phys_pages=4096))
        self.vm = self.m.vm_create("snp", "KVM_X86_SNP_VM")
        self.m.vcpu_create(self.vm)
        self.g = self.m.vm_guest_memfd(self.vm, N * PAGE)
        self.m.set_user_memory_region(
            self.vm, 0, ["KVM_MEM_GUEST_MEMFD"], 0, N * PAGE, 0, guest_memfd=self.g
        )
        self.model = Model()

    def lives(self) -> list[str | None]:
        out: list[str | None] = [None] * N
        runs, _ = self.m.page_runs(self.g, 0, N)
        for r in runs:
            for i in range(r.start, r.end):
                out[i] = r.life if r.state == "present" else None
        return out

    def step(self, op: tuple[Any, ...]) -> None:
        m, md = self.m, self.model
        kind = op[0]
        if kind == "attrs":
            _, p, n, priv = op
            n = min(n, N - p)
            m.set_memory_attributes(self.vm, p * PAGE, n * PAGE, PRIV if priv else [])
            for i in range(p, p + n):
                md.private[i] = priv
        elif kind == "populate":
            _, p, n, seed = op
            src = b"".join(content(seed, p + i) for i in range(n))
            want, _done = md.populate(p, n, seed)
            try:
                got: int | str = m.launch_update(self.vm, p * PAGE, src).pages
            except EngineError as e:
                got = e.name
            assert got == want, (op, got, want)
        elif kind == "fault":
            (_, p) = op
            if not md.private[p]:
                return  # a shared gfn is served from userspace_addr (none here)
            r = m.vcpu_access(self.vm, 0, p * PAGE, private=True)
            if md.life[p] != "hwpoison":
                assert r.exit is None
                md.life[p] = "prepared"
            elif md.life[p] == "hwpoison":
                assert r.exit is not None and r.exit.errno == "EHWPOISON"
        elif kind == "alloc":
            (_, p) = op
            m.fallocate(self.g, ["FALLOC_FL_KEEP_SIZE"], p * PAGE, PAGE)
            if md.life[p] is None:
                md.life[p] = "allocated"
        elif kind == "punch":
            _, p, n = op
            n = min(n, N - p)
            m.fallocate(self.g, PUNCH, p * PAGE, n * PAGE)
            for i in range(p, p + n):
                md.life[i] = None
        elif kind == "finish":
            try:
                m.launch_finish(self.vm)
                assert not md.done
            except EngineError as e:
                assert md.done and e.name == "EIO"
            md.done = True
        elif kind == "poison":
            (_, p) = op
            runs, _ = m.page_runs(self.g, p, p + 1)
            if runs[0].state != "present":
                return
            try:
                m.memory_failure(runs[0].pfn or 0)
                md.life[p] = "hwpoison"
            except EngineError as e:
                assert e.name == "EHWPOISON" and md.life[p] == "hwpoison"


@settings(
    max_examples=examples(120),
    deadline=None,
    derandomize=DERANDOMIZE,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(program=st.lists(ops, max_size=25))
def test_confidential_programs_follow_the_model(program: list[tuple[Any, ...]]) -> None:
    w = World()
    for op in program:
        w.step(op)
        w.m.check()
        assert w.lives() == w.model.life, op
        info = w.m.launch_info(w.vm)
        assert info.pages == w.model.pages
        assert info.measurement == w.model.digest.hex()
