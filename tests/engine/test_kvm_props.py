"""Random KVM-side programs through the Python face: after every op, failing or not,
the engine's checker (its KVM half included) passes, a failure changes nothing but
the log, and a clone answers like its original."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.engine import Config, EngineError, Machine
from tests.budget import DERANDOMIZE, examples

PAGE = 4096
MiB = 1 << 20
TYPES = ["KVM_X86_DEFAULT_VM", "KVM_X86_SW_PROTECTED_VM", "KVM_X86_TDX_VM", "KVM_X86_SNP_VM"]
PUNCH = ["FALLOC_FL_PUNCH_HOLE", "FALLOC_FL_KEEP_SIZE"]
GFLAGS = [[], ["GUEST_MEMFD_FLAG_MMAP"], ["GUEST_MEMFD_FLAG_MMAP", "GUEST_MEMFD_FLAG_INIT_SHARED"]]
U64 = 2**64 - 1

pages = st.integers(0, 40)
edge = st.sampled_from([0, 1, PAGE - 1, 2**63 - PAGE, 2**63, U64 - PAGE + 1, U64])
addr = pages.map(lambda p: p * PAGE) | edge
ops = st.one_of(
    st.tuples(st.just("gmem"), st.integers(1, 3), st.sampled_from(range(len(GFLAGS)))),
    st.tuples(st.just("memfd"), st.integers(1, 3)),
    st.tuples(
        st.just("region"),
        st.integers(0, 3),  # slot
        st.booleans(),  # KVM_MEM_GUEST_MEMFD
        st.integers(0, 7).map(lambda p: p * MiB) | edge,  # gpa
        st.integers(0, 2).map(lambda p: p * MiB) | edge,  # size (0: delete)
        st.integers(0, 5),  # userspace_addr: which mapping (5: 0)
        st.integers(0, 2).map(lambda p: p * MiB) | edge,  # guest_memfd_offset
        st.integers(0, 6),  # which fd
    ),
    # a region more likely to bind: aligned, inside the file, at a mapping
    st.tuples(
        st.just("slot"), st.integers(0, 3), st.integers(0, 3), st.integers(0, 5), st.booleans()
    ),
    st.tuples(st.just("priv"), st.integers(0, 4095), st.integers(1, 600), st.booleans()),
    st.tuples(
        st.just("attrs"),
        addr,
        st.integers(0, 1024).map(lambda p: p * PAGE) | edge,
        st.booleans(),
        st.sampled_from([0, 0, 0, 1]),
    ),
    st.tuples(
        st.just("access"), st.integers(0, 2048), st.booleans(), st.sampled_from([None, True, False])
    ),
    st.tuples(st.just("host"), st.integers(0, 5), st.integers(0, 3 * MiB), st.booleans()),
    st.tuples(st.just("punch"), st.integers(0, 6), pages, st.integers(1, 520)),
    st.tuples(st.just("close"), st.integers(0, 6)),
    st.tuples(st.just("munmap"), st.integers(0, 5)),
    st.tuples(st.just("vmclose")),
)


class World:
    def __init__(self, vm_type: str) -> None:
        self.m = Machine(Config(profile="guest-memfd", phys_pages=8192))
        self.vm = self.m.vm_create("vm", vm_type)
        self.m.vcpu_create(self.vm)
        self.fds: list[int] = []
        self.maps: list[int] = []
        self.gmems: set[int] = set()

    def fd(self, i: int) -> int:
        return self.fds[i % len(self.fds)] if self.fds else 99

    def apply(self, op: tuple[Any, ...]) -> None:
        m, kind, a = self.m, op[0], op[1:]
        if kind == "gmem":
            fd = m.vm_guest_memfd(self.vm, a[0] * 2 * MiB, GFLAGS[a[1]])
            self.fds.append(fd)
            self.gmems.add(fd)
            if GFLAGS[a[1]]:
                self.maps.append(
                    m.mmap(fd, 0, a[0] * 2 * MiB, ["PROT_READ", "PROT_WRITE"], ["MAP_SHARED"])
                )
        elif kind == "memfd":
            fd = m.memfd_create("shared")
            m.ftruncate(fd, a[0] * 2 * MiB)
            self.fds.append(fd)
            self.maps.append(
                m.mmap(fd, 0, a[0] * 2 * MiB, ["PROT_READ", "PROT_WRITE"], ["MAP_SHARED"])
            )
        elif kind == "region":
            slot, gm, gpa, size, which, off, fdi = a
            uaddr = (
                m.mapping_addr(self.maps[which % len(self.maps)]) if self.maps and which < 5 else 0
            )
            flags = ["KVM_MEM_GUEST_MEMFD"] if gm else []
            m.set_user_memory_region(self.vm, slot, flags, gpa, size, uaddr, off, self.fd(fdi))
        elif kind == "slot":
            slot, where, fdi, off = a
            fd = self.fd(fdi)
            uaddr = m.mapping_addr(self.maps[fdi % len(self.maps)]) if self.maps else 0
            flags = ["KVM_MEM_GUEST_MEMFD"] if fd in self.gmems else []
            m.set_user_memory_region(
                self.vm, slot, flags, where * 2 * MiB, MiB, uaddr, off * MiB, fd
            )
        elif kind == "priv":
            names = ["KVM_MEMORY_ATTRIBUTE_PRIVATE"] if a[2] else []
            m.set_memory_attributes(self.vm, a[0] * PAGE, a[1] * PAGE, names)
        elif kind == "attrs":
            address, size, priv, flags = a
            m.set_memory_attributes(
                self.vm, address, size, ["KVM_MEMORY_ATTRIBUTE_PRIVATE"] if priv else [], flags
            )
        elif kind == "access":
            m.vcpu_access(self.vm, 0, a[0] * PAGE + 5, a[1], a[2], 0x5A)
        elif kind == "host":
            if self.maps:
                m.mapping_access(self.maps[a[0] % len(self.maps)], a[1], a[2], 7)
        elif kind == "punch":
            m.fallocate(self.fd(a[0]), PUNCH, a[1] * PAGE, a[2] * PAGE)
        elif kind == "close":
            if self.fds:
                fd = self.fds.pop(a[0] % len(self.fds))
                self.gmems.discard(fd)
                m.close(fd)
        elif kind == "munmap" and self.maps:
            m.munmap(self.maps.pop(a[0] % len(self.maps)))
        elif kind == "vmclose":
            m.vm_close(self.vm)

    def vm_info(self) -> Any:
        """The VM's info, None once destroyed."""
        return self.m.vm(self.vm) if self.m.is_vm(self.vm) else None


@settings(
    max_examples=examples(150),
    deadline=None,
    derandomize=DERANDOMIZE,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(vm_type=st.sampled_from(TYPES), program=st.lists(ops, max_size=30))
def test_any_kvm_program_keeps_the_invariants(vm_type: str, program: list[tuple[Any, ...]]) -> None:
    w = World(vm_type)
    for op in program:
        before = w.vm_info()
        count = w.m.event_count
        try:
            w.apply(op)
        except EngineError as e:
            assert e.seq == count + 1, (op, e)
            assert w.vm_info() == before, op  # a failure changes nothing
        w.m.check()
    twin = w.m.clone()
    twin.check()
    assert twin.is_vm(w.vm) == w.m.is_vm(w.vm)
    if w.m.is_vm(w.vm):
        assert twin.vm(w.vm)._replace(attr_bytes=0) == w.m.vm(w.vm)._replace(attr_bytes=0)
    assert twin.gfn_runs(w.vm) == w.m.gfn_runs(w.vm)
    for g in range(0, 2048, 13):
        assert _outcome(twin, w.vm, g) == _outcome(w.m, w.vm, g)
    w.m.check()


def _outcome(m: Machine, vm: int, gfn: int) -> object:
    try:
        return m.vcpu_access(vm, 0, gfn * PAGE)[:-1]  # all but the seq
    except EngineError as e:
        return (e.name, e.message)
