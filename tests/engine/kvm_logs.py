"""Random KVM op logs for the differential tests, and a runner that plays one log on
several step runners (the real kernel, the reference model, the engine) side by side.

A log is drawn in the session log's op vocabulary (KVM_CONTRACT.md) with symbolic
values: "$x" the result of an earlier step labelled x (vm id, fd, map id), "@x" a map's
VMM address plus an offset. Only what this machine's KVM can answer is drawn: the
default VM, accesses whose private-ness the attributes decide, no attribute changes
(KVM_SET_MEMORY_ATTRIBUTES is ENOTTY here; tests/api and the model tests cover them).
GUP pins (`pins=True`: mapping_pin / mapping_unpin) are the kernel's internal interface,
with no syscall to drive them: only the engine-vs-model runs draw them, and `play` skips
them (for every runner) when a runner cannot pin.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from hypothesis import strategies as st

P = 4096
GPA = 1 << 30  # slot bases: GPA and 2 * GPA
GMEM = "KVM_MEM_GUEST_MEMFD"
RW, SHARED = ["PROT_READ", "PROT_WRITE"], ["MAP_SHARED"]
KEEP, PUNCH = "FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"
PIN_OPS = ("mapping_pin", "mapping_unpin")
GMEM_FLAGS = [
    [],
    ["GUEST_MEMFD_FLAG_MMAP"],
    ["GUEST_MEMFD_FLAG_MMAP", "GUEST_MEMFD_FLAG_INIT_SHARED"],
]


class Step(NamedTuple):
    label: str | None
    op: str
    args: dict[str, Any]


class Runner(Protocol):
    def run(self, op: str, args: dict[str, Any]) -> tuple[bool, object]: ...


def setup(
    gmem_flags: list[str], vm_type: str = "KVM_X86_DEFAULT_VM", sealable: bool = False
) -> list[Step]:
    """A VM with one vCPU, a memfd of RAM mapped by the VMM, a guest_memfd (mapped too
    when it may be), a guest_memfd slot at GPA and a plain one at 2 * GPA, and the RAM
    mapped MAP_PRIVATE too (slots may point at it: copy-on-write). `sealable`: the RAM
    is MFD_ALLOW_SEALING (the pin logs try F_SEAL_WRITE)."""
    steps = [
        Step("vm", "vm_create", {"name": "vm0", "type": vm_type}),
        Step("cpu", "vcpu_create", {"vm_id": "$vm"}),
        Step("mfd", "memfd_create", {"name": "ram", "flags": ["MFD_ALLOW_SEALING"] * sealable}),
        Step(None, "ftruncate", {"fd": "$mfd", "length": 16 * P}),
        Step(
            "m", "mmap", {"fd": "$mfd", "offset": 0, "length": 16 * P, "prot": RW, "flags": SHARED}
        ),
        Step("g", "vm_guest_memfd", {"vm_id": "$vm", "size": 16 * P, "flags": gmem_flags}),
    ]
    if gmem_flags:
        mapping = {"fd": "$g", "offset": 0, "length": 20 * P, "prot": RW, "flags": SHARED}
        steps.append(Step("gm", "mmap", mapping))
    first = {"vm_id": "$vm", "slot": 1, "flags": [GMEM], "guest_phys_addr": GPA}
    first |= {"memory_size": 8 * P, "userspace_addr": ("@m", 0), "guest_memfd_offset": 0}
    plain = first | {"slot": 2, "flags": [], "guest_phys_addr": 2 * GPA}
    steps += [
        Step(None, "set_user_memory_region", first | {"guest_memfd": "$g"}),
        Step(None, "set_user_memory_region", plain | {"userspace_addr": ("@m", 8 * P)}),
    ]
    # the RAM's MAP_PRIVATE mapping: writes through it (host or guest) copy the page
    private = {"fd": "$mfd", "offset": 0, "length": 16 * P, "prot": RW, "flags": ["MAP_PRIVATE"]}
    steps.append(Step("pm", "mmap", private))
    return steps


def _step(op: str, **kw: st.SearchStrategy[Any]) -> st.SearchStrategy[Step]:
    return st.builds(Step, st.none(), st.just(op), st.fixed_dictionaries(kw))


def log_strategy(
    mapped_gmem: bool, private_vm: str | None = None, smm: bool = False, pins: bool = False
) -> st.SearchStrategy[list[Step]]:
    """Logs for the setup above; `private_vm` (a VM type) adds attribute changes and,
    on SNP / TDX, the guest's own private or shared view; `smm` slots in address space 1
    (mainline with SMM; this machine's KVM has one address space); `pins` GUP pins and
    unpins of the VMM's mappings (ranges past a mapping and past EOF too)."""
    pages = st.integers(0, 20).map(lambda k: k * P)
    maps = ["@m", "@gm", "@pm"] if mapped_gmem else ["@m", "@pm"]
    map_ids = [m.replace("@", "$") for m in maps]
    uaddr = st.one_of(
        st.builds(
            lambda m, off: (m, off), st.sampled_from(maps), st.sampled_from([0, 4 * P, 8 * P])
        ),
        st.sampled_from([0, 0x2000, 1]),  # below mmap_min_addr: never mapped; unaligned
    )
    good = _step(
        "set_user_memory_region",
        vm_id=st.just("$vm"),
        slot=st.sampled_from([1, 2]),
        flags=st.sampled_from([[GMEM], [GMEM], []]),
        guest_phys_addr=st.sampled_from([GPA, 2 * GPA]),
        memory_size=st.sampled_from([4 * P, 8 * P, 0]),
        userspace_addr=st.sampled_from([(m, 0) for m in maps] + [0]),
        guest_memfd_offset=st.sampled_from([0, 4 * P, 8 * P]),
        guest_memfd=st.just("$g"),
    )
    odd = _step(
        "set_user_memory_region",
        vm_id=st.just("$vm"),
        slot=st.sampled_from([1, 2, 3, (1 << 16) | 1] if smm else [1, 2, 3]),
        flags=st.sampled_from(
            [
                [GMEM],
                [],
                [GMEM, "KVM_MEM_LOG_DIRTY_PAGES"],
                ["KVM_MEM_READONLY"],
                [GMEM, "KVM_MEM_READONLY"],
            ]
        ),
        guest_phys_addr=st.sampled_from([GPA, 2 * GPA, GPA + 8 * P]),
        memory_size=st.sampled_from([4 * P, 16 * P, 0, P + 1]),
        userspace_addr=uaddr,
        guest_memfd_offset=st.sampled_from([0, 4 * P, 12 * P, 16 * P, 1]),
        guest_memfd=st.sampled_from(["$g", "$mfd", 77]),
    )
    region = st.one_of(good, good, good, odd)
    gpa = st.builds(
        lambda base, off: base + off,
        st.sampled_from([GPA, GPA, 2 * GPA, 2 * GPA, 3 * GPA]),
        st.integers(0, 9 * P),
    )
    view = st.none()
    if private_vm in ("KVM_X86_SNP_VM", "KVM_X86_TDX_VM"):
        view = st.sampled_from([None, True, False])
    access = _step(
        "vcpu_access",
        vm_id=st.just("$vm"),
        vcpu_id=st.just("$cpu"),
        gpa=gpa,
        write=st.booleans(),
        private=view,
        value=st.integers(0, 255),
    )
    attrs = _step(
        "set_memory_attributes",
        vm_id=st.just("$vm"),
        address=st.builds(
            lambda b, k: b + k * P, st.sampled_from([GPA, 2 * GPA]), st.integers(0, 10)
        ),
        size=st.sampled_from([P, 2 * P, 4 * P, 16 * P, 0, P + 1]),
        attributes=st.sampled_from(
            [["KVM_MEMORY_ATTRIBUTE_PRIVATE"], ["KVM_MEMORY_ATTRIBUTE_PRIVATE"], []]
        ),
        flags=st.sampled_from([0, 0, 0, 1]),
    )
    host = _step(
        "mapping_access",
        map_id=st.sampled_from(map_ids),
        offset=st.integers(0, 16 * P - 1),  # inside every mapping
        write=st.booleans(),
        value=st.integers(0, 255),
    )
    mode = st.sampled_from([[KEEP], [KEEP, PUNCH], [KEEP, PUNCH]])
    ops = [
        st.just(Step(None, "nop", {})),
        *[region] * 3,
        *[access] * 6,
        *[host] * 3,
        _step(
            "fallocate",
            fd=st.just("$g"),
            mode=mode,
            offset=pages,
            length=st.sampled_from([P, 4 * P]),
        ),
        _step(
            "fallocate",
            fd=st.just("$mfd"),
            mode=st.just([KEEP, PUNCH]),
            offset=pages,
            length=st.just(P),
        ),
        _step("ftruncate", fd=st.just("$mfd"), length=st.sampled_from([0, 4 * P, 16 * P])),
        _step("pwrite", fd=st.just("$mfd"), offset=pages, data=st.binary(min_size=1, max_size=8)),
        _step("close", fd=st.just("$g")),
        _step("munmap", map_id=st.sampled_from(map_ids)),
        _step("vm_close", vm_id=st.just("$vm")),
    ]
    if private_vm is not None:
        ops += [attrs] * 4
    if pins:
        from tests.engine.kvm_log_pins import pin_ops  # (it builds on this module)

        ops += pin_ops(map_ids)
    return st.lists(st.sampled_from(ops).flatmap(lambda s: s), min_size=10, max_size=40)


def resolve(v: Any, results: dict[str, Any], addr: Callable[[int], int]) -> Any:
    if isinstance(v, tuple):  # (map ref, offset)
        return addr(results[v[0][1:]]) + v[1]
    if isinstance(v, str) and v[:1] == "$":
        return results.get(v[1:], 99)  # a step that failed: an fd nobody has
    return v


def comparable(op: str, ok: bool, value: object, rich: bool = False) -> tuple[bool, object]:
    """What the runners must agree on: the contract's list; `rich` (engine and model)
    also where a guest access was served from (backing, fd, index)."""
    if ok and op == "vcpu_access" and isinstance(value, dict):
        keys = ("exit", "value", "backing", "fd", "index") if rich else ("exit", "value")
        return ok, {k: value.get(k) for k in keys}
    if ok and op == "mapping_pin" and isinstance(value, dict):
        # the model knows no frames: the engine's pfns are checked for their count only
        pfns = value.get("pfns")
        n = len(pfns) if isinstance(pfns, list) else value.get("pages")
        return ok, {k: value.get(k) for k in ("pin_id", "offset", "pages")} | {"npfns": n}
    if ok and op in ("mmap", "memfd_create", "vm_guest_memfd", "vm_create"):
        return ok, value
    if ok and op in ("set_user_memory_region", "fallocate", "ftruncate", "close", "munmap"):
        return ok, None
    return ok, value


def play(
    log: list[Step],
    runners: dict[str, tuple[Runner, Callable[[int], int]]],
    after: Callable[[str], None] | None = None,
    rich: bool = False,
) -> None:
    """Run the log on every runner, step by step; any disagreement is an AssertionError
    naming the step and the steps before it. `after(op)` runs after each step."""
    results: dict[str, dict[str, Any]] = {name: {} for name in runners}
    done: list[str] = []
    for label, op, raw in log:
        if op == "nop":
            continue
        if op in PIN_OPS and not all(getattr(r, "gup_pins", False) for r, _ in runners.values()):
            continue  # a runner that cannot pin (the real kernel): nobody does
        answers = {}
        for name, (runner, addr) in runners.items():
            args = {k: resolve(v, results[name], addr) for k, v in raw.items()}
            if op == "munmap" and args["map_id"] == 99:
                continue
            ok, value = runner.run(op, args)
            answers[name] = comparable(op, ok, value, rich)
            if label is not None and ok:
                results[name][label] = value
        done.append(f"{op}({', '.join(f'{k}={v!r:.30}' for k, v in raw.items())})")
        first = next(iter(answers.values()), None)
        if any(a != first for a in answers.values()):
            steps = "\n  ".join(done)
            raise AssertionError(f"step {len(done)}: {answers}\n  {steps}")
        if after is not None:
            after(op)


def rfc_setup() -> list[Step]:
    """rfc-v2: a VM with a vCPU, a shared memfd and a private one of 16 pages each."""
    steps = [
        Step("vm", "vm_create", {"name": "vm0", "type": "KVM_X86_DEFAULT_VM"}),
        Step("cpu", "vcpu_create", {"vm_id": "$vm"}),
    ]
    for label in ("mfd", "pfd"):
        steps.append(Step(label, "memfd_create", {"name": label, "flags": ["MFD_ALLOW_SEALING"]}))
        steps.append(Step(None, "ftruncate", {"fd": f"${label}", "length": 16 * P}))
    return steps


def rfc_log_strategy() -> st.SearchStrategy[list[Step]]:
    """The RFC's fd-based memslots (userspace_addr the offset into both files), shared
    and private accesses, conversions by fallocate and punch."""
    region = _step(
        "set_user_memory_region",
        vm_id=st.just("$vm"),
        slot=st.sampled_from([1, 2]),
        flags=st.sampled_from([["KVM_MEM_FD"], ["KVM_MEM_FD"], []]),
        guest_phys_addr=st.sampled_from([GPA, 2 * GPA]),
        memory_size=st.sampled_from([4 * P, 8 * P, 0]),
        userspace_addr=st.sampled_from([0, 4 * P, 8 * P, 1]),
        fd=st.sampled_from(["$mfd", "$mfd", 77]),
        private_fd=st.sampled_from(["$pfd", "$pfd", -1, 77]),
    )
    # (one file as both views is left out: "private iff allocated in private_fd" makes
    # every page of it private at once, a case the RFC does not discuss)
    access = _step(
        "vcpu_access",
        vm_id=st.just("$vm"),
        vcpu_id=st.just("$cpu"),
        gpa=st.builds(
            lambda b, o: b + o, st.sampled_from([GPA, 2 * GPA, 3 * GPA]), st.integers(0, 9 * P)
        ),
        write=st.booleans(),
        private=st.sampled_from([None, True, False]),
        value=st.integers(0, 255),
    )
    pages = st.integers(0, 12).map(lambda k: k * P)
    fd = st.sampled_from(["$mfd", "$pfd"])
    ops = [
        st.just(Step(None, "nop", {})),
        *[region] * 3,
        *[access] * 6,
        _step(
            "fallocate",
            fd=fd,
            mode=st.sampled_from([[KEEP], [KEEP, PUNCH]]),
            offset=pages,
            length=st.sampled_from([P, 4 * P]),
        ),
        _step("pwrite", fd=st.just("$mfd"), offset=pages, data=st.binary(min_size=1, max_size=8)),
        _step("close", fd=fd),
        _step("vm_close", vm_id=st.just("$vm")),
    ]
    return st.lists(st.sampled_from(ops).flatmap(lambda s: s), min_size=10, max_size=40)
