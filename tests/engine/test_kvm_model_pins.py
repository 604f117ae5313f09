"""GUP pins, the engine against the reference model (tests/engine/refmodel_kvm_pin.py):
the random logs of test_kvm_model.py reach pins, write pins, pinned copies, orphans and
the EFAULTs, a write pin's through a read-only mapping too (asserted here), and the cases
they meet seldom are written down, each played on both with run_both's checks after
every step (the same answers, attributes, MMU and used frames; the engine's checker).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.budget import examples
from tests.engine.kvm_logs import P, Step, play, resolve, setup
from tests.engine.refmodel_kvm import KvmModel
from tests.engine.test_kvm_model import SETTINGS, TYPES, drawn_logs, run_both

RO = {"fd": "$mfd", "offset": 0, "length": 16 * P, "prot": ["PROT_READ"], "flags": ["MAP_SHARED"]}


def reached(log: list[Step]) -> dict[str, int]:
    model = KvmModel(profile="guest-memfd", phys_pages=1 << 16)
    play(log, {"model": (model, model.map_addr)})
    return dict(model.reached)


# (F_SEAL_WRITE's EBUSY at a pinned page, "seal_write_pinned", needs a pin, the shared
# mapping gone and the seal in that order: fresh draws reach it, about one log in six,
# the derandomized budget does not; test_f_seal_write_is_ebusy_while_a_page_is_pinned)
REACH = ("pin", "write_pin", "pinned_copy", "orphan", "pin_efault", "pin_efault_readonly")


def test_the_random_logs_reach_pins() -> None:
    """As engine_c/tests/test_cow.c asserts for copies: the logs test_kvm_model.py's
    property draws (the same strategy, settings and budget per VM type, derandomized)
    reach every kind of pin outcome; the model counts them (`reached`)."""
    seen: Counter[str] = Counter()

    def per_type(vm_type: str) -> None:
        @settings(SETTINGS, max_examples=examples(40))
        @given(data=st.data())
        def draw(data: st.DataObject) -> None:
            seen.update(k for k, n in reached(data.draw(drawn_logs(vm_type))).items() if n)

        draw()

    for vm_type in TYPES:
        per_type(vm_type)
    missing = [k for k in REACH if not seen[k]]
    assert not missing, (missing, dict(seen))


def model_answers(log: list[Step]) -> list[tuple[bool, object]]:
    """The model's answers to the log's steps, in order."""
    model = KvmModel(profile="guest-memfd", phys_pages=1 << 16)
    out: list[tuple[bool, object]] = []
    results: dict[str, Any] = {}
    for label, op, raw in log:
        if op == "nop":
            out.append((True, None))
            continue
        out.append(model.run(op, {k: resolve(v, results, model.map_addr) for k, v in raw.items()}))
        if label and out[-1][0]:
            results[label] = out[-1][1]
    return out


def pin(map_id: str, offset: int, length: int, write: bool = False) -> Step:
    body = {"map_id": map_id, "offset": offset, "length": length, "write": write}
    return Step(None, "mapping_pin", body)


def unpin(pin_id: int) -> Step:
    return Step(None, "mapping_unpin", {"pin_id": pin_id})


def step(op: str, **args: Any) -> Step:
    return Step(None, op, args)


def host(map_id: str, offset: int, write: bool = False, value: int = 0) -> Step:
    return step("mapping_access", map_id=map_id, offset=offset, write=write, value=value)


def test_pin_errnos() -> None:
    """No mapping, length 0, past the mapping, past EOF, a write pin without
    PROT_WRITE, an unmapped guest_memfd page without INIT_SHARED, an unknown pin id."""
    head = setup(["GUEST_MEMFD_FLAG_MMAP"])
    log = [
        *head,
        Step("ro", "mmap", RO),
        pin("$m", 0, 0),  # EINVAL
        pin("$m", 15 * P, 2 * P),  # the second page is past the mapping: EFAULT
        pin("$gm", 0, P),  # not INIT_SHARED: SIGBUS, EFAULT
        pin("$ro", 0, P, write=True),  # FOLL_WRITE without VM_WRITE: EFAULT
        pin("$ro", 0, P),  # a read pin there is fine: pin 1
        step("ftruncate", fd="$mfd", length=4 * P),
        pin("$m", 3 * P, 2 * P),  # past EOF: EFAULT, nothing pinned
        unpin(2),  # EINVAL
        unpin(1),
        unpin(1),  # EINVAL: gone
        step("munmap", map_id="$ro"),
        pin("$ro", 0, P),  # EINVAL: no mapping
    ]
    run_both(log)
    got = [ok if ok else v for ok, v in model_answers(log)[len(head) :]]
    one = {"pin_id": 1, "offset": 0, "pages": 1}
    want: list[object] = [True, "EINVAL", "EFAULT", "EFAULT", "EFAULT", True, True, "EFAULT"]
    want += ["EINVAL", True, "EINVAL", True, "EINVAL"]
    assert got == want, got
    assert model_answers(log)[len(head) + 5] == (True, one)


def test_a_punched_pinned_page_is_an_orphan_until_the_unpin() -> None:
    """A punch drops the page from the cache; the pin keeps the frame (used frames
    compared after every step), the next touch allocates a new page, the unpin frees
    the orphan. Pin ids are the lowest free slot."""
    punch = ["FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"]
    run_both(
        [
            *setup([]),
            host("$m", 5, True, 0x41),
            pin("$m", 0, 2 * P, write=True),  # pin 1: page 0 and a hole allocated
            pin("$m", P, P),  # pin 2
            step("fallocate", fd="$mfd", mode=punch, offset=0, length=2 * P),
            host("$m", 5),  # a new page: 0
            unpin(1),  # page 0's orphan freed; page 1's still held by pin 2
            pin("$m", 0, P),  # pin 1 again
            step("ftruncate", fd="$mfd", length=0),
            unpin(2),
            unpin(1),
        ]
    )


def test_pins_through_map_private_copy_and_outlive_the_munmap() -> None:
    """A write pin through MAP_PRIVATE breaks COW and pins the copy; a read pin takes
    the copy where there is one, the file page elsewhere; the munmap and a truncate drop
    the copies, the pinned ones stay used frames until the unpin."""
    run_both(
        [
            *setup([]),
            step("pwrite", fd="$mfd", offset=0, data=b"\x07"),
            pin("$pm", 0, P, write=True),  # pin 1: the copy of page 0
            step("pwrite", fd="$mfd", offset=0, data=b"\x09"),
            host("$pm", 0),  # the copy: 7
            pin("$pm", 0, 2 * P),  # pin 2: the copy and file page 1
            pin("$pm", 4 * P, P, write=True),  # pin 3: a copy of a hole
            step("ftruncate", fd="$mfd", length=2 * P),  # copy 4 goes: an orphan
            step("munmap", map_id="$pm"),  # copy 0 goes: an orphan
            unpin(3),
            unpin(1),
            unpin(2),
        ]
    )


def test_f_seal_write_is_ebusy_while_a_page_is_pinned() -> None:
    """engine_c/files.c do_add_seals: inode_has_pins. A pinned MAP_PRIVATE copy is
    not in the file's page cache and does not block it."""
    log = [
        Step("vm", "vm_create", {"name": "vm0", "type": "KVM_X86_DEFAULT_VM"}),
        Step("mfd", "memfd_create", {"name": "ram", "flags": ["MFD_ALLOW_SEALING"]}),
        step("ftruncate", fd="$mfd", length=4 * P),
        Step("pm", "mmap", RO | {"prot": ["PROT_READ", "PROT_WRITE"], "flags": ["MAP_PRIVATE"]}),
        pin("$pm", 0, P),  # pin 1: the file's page 0
        pin("$pm", P, P, write=True),  # pin 2: a copy of page 1
        step("F_ADD_SEALS", fd="$mfd", seals=["F_SEAL_WRITE"]),  # EBUSY
        unpin(1),
        step("F_ADD_SEALS", fd="$mfd", seals=["F_SEAL_WRITE"]),  # the copy: no matter
        step("F_GET_SEALS", fd="$mfd"),
    ]
    run_both(log)
    answers = model_answers(log)
    assert answers[6] == (False, "EBUSY") and answers[8] == (True, None), answers


class NoPins:
    """A runner that cannot pin (as the real kernel's, app.oracle_kvm.KvmKernel): the
    model answers everything else; a pin step reaching it fails the test."""

    def __init__(self) -> None:
        self.model = KvmModel(profile="guest-memfd", phys_pages=1 << 16)

    def run(self, op: str, args: dict[str, Any]) -> tuple[bool, object]:
        assert op not in ("mapping_pin", "mapping_unpin"), op
        return self.model.run(op, args)


def test_play_skips_pins_for_every_runner_when_one_cannot_pin() -> None:
    """A pin only the model took would change what it answers later (a COW copy made):
    with a runner that cannot pin in the run, nobody pins."""
    other, model = NoPins(), KvmModel(profile="guest-memfd", phys_pages=1 << 16)
    log = [*setup([]), pin("$pm", 0, P, write=True), unpin(1), host("$pm", 0)]
    play(log, {"model": (model, model.map_addr), "kernel": (other, other.model.map_addr)})
    assert not model.pins and not model.reached
    assert not any(v.cow for v in model.vmaps.values())
