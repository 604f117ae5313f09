"""app/service/batch_answers.py: a batch's answers built as bytes are, byte for byte, the
answers the op's own handler gives (its model serialised), over files of every kind,
names that need escaping, seals, owners, mappings and a pending punch; failures raise as
the handler's do."""

from __future__ import annotations

from typing import Any

import pytest

from app.engine import Config, EngineError, Machine
from app.models.files import FallocateArgs
from app.service import batch_answers, ops

PUNCH = ["FALLOC_FL_PUNCH_HOLE", "FALLOC_FL_KEEP_SIZE"]
NAMES = ["vm0", 'a "quoted" \\ name', "tab\tnew\nline\x01\x1f", "ünï©ødé ✓ 𝄞", "/slash", ""]


def _both(m: Machine, twin: Machine, args: dict[str, Any], memo: batch_answers.Memo) -> bytes:
    """The fast answer on m and the handler's on its twin (the same state): equal."""
    a = FallocateArgs.model_validate(args)
    fast = batch_answers.fallocate(m, a, memo)
    model = ops.fallocate(twin, a)
    assert fast == type(model).__pydantic_serializer__.to_json(model)
    return fast


def _steps(m: Machine, name: str, guest: bool = False) -> None:
    fd = m.memfd_create(name, ["MFD_ALLOW_SEALING"])
    if guest:
        m.add_seals(fd, ["F_SEAL_GUEST"])
    m.ftruncate(fd, 1 << 20)


@pytest.mark.parametrize("name", NAMES)
def test_memfd_answers_match_the_handler(name: str) -> None:
    m, twin = Machine(Config()), Machine(Config())
    memo: batch_answers.Memo = {}
    for x in (m, twin):
        _steps(x, name, guest=True)
    seen = set()
    for i in range(6):
        args = {"fd": 3, "mode": [] if i % 2 == 0 else PUNCH, "offset": i * 4096, "len": 16384}
        seen.add(_both(m, twin, args, memo))
    assert len(seen) == 6 and len(memo) == 1  # the fixed parts built once
    for x in (m, twin):  # an owner changes the fixed parts; fd 4: other seals, a mapping
        x.register_guest(3, x.owner_create("kvm", "kvm0"))
        _steps(x, name + "2")
        x.add_seals(4, ["F_SEAL_GROW", "F_SEAL_SHRINK"])
        x.mmap(4, 0, 8192, ["PROT_READ", "PROT_WRITE"], ["MAP_SHARED"])
    out = _both(m, twin, {"fd": 3, "mode": [], "offset": 0, "len": 8192}, memo)
    assert b'"owners":["0"]' in out and len(memo) == 2
    out = _both(m, twin, {"fd": 4, "mode": [], "offset": 0, "len": 8192}, memo)
    assert b'"mappings":1' in out and b'"writable_maps":1' in out and len(memo) == 3
    m.check()


def test_pending_punch_and_waiters_match() -> None:
    m, twin = Machine(Config()), Machine(Config())
    memo: batch_answers.Memo = {}
    for x in (m, twin):
        _steps(x, "vm0", guest=True)
        x.register_guest(3, x.owner_create("kvm", "kvm0"))
        x.fallocate(3, [], 0, 4096)
        x.get_lock_pfn(3, 0, False)
    out = _both(m, twin, {"fd": 3, "mode": PUNCH, "offset": 0, "len": 4096}, memo)
    assert b'"pending":true' in out and b'"waiters":1' in out


def test_guest_memfd_answers_match() -> None:
    cfg = Config(profile="guest-memfd", phys_pages=4096)
    m, twin = Machine(cfg), Machine(cfg)
    memo: batch_answers.Memo = {}
    fds = {x.gmem_create(1 << 21) for x in (m, twin)}
    (fd,) = fds
    _both(m, twin, {"fd": fd, "mode": ["FALLOC_FL_KEEP_SIZE"], "offset": 0, "len": 8192}, memo)
    out = _both(m, twin, {"fd": fd, "mode": PUNCH, "offset": 0, "len": 4096}, memo)
    assert b'"kind":"guest_memfd"' in out and b'"seals":[]' in out


def test_failures_raise_as_the_handler() -> None:
    m = Machine(Config())
    _steps(m, "vm0")
    memo: batch_answers.Memo = {}
    for args in (
        {"fd": 9, "mode": [], "offset": 0, "len": 4096},  # EBADF
        {"fd": 3, "mode": [], "offset": -1, "len": 4096},  # EINVAL
        {"fd": 1 << 40, "mode": [], "offset": 0, "len": 4096},  # no such fd
    ):
        a = FallocateArgs.model_validate(args)
        with pytest.raises(EngineError) as fast:
            batch_answers.fallocate(m, a, memo)
        with pytest.raises(EngineError) as slow:
            ops.fallocate(m, a)
        assert (fast.value.name, str(fast.value)) == (slow.value.name, str(slow.value))
    assert memo == {}
