"""Write pins through the Python face (Machine.mapping_pin(write=True)): the errors'
words, the event's args (write named only when set), what is pinned, and clones."""

from __future__ import annotations

import pytest

from app.engine import Config, EngineError, Machine

PAGE = 4096
RW = ["PROT_READ", "PROT_WRITE"]


def ram(m: Machine, prot: list[str], flags: list[str]) -> tuple[int, int]:
    fd = m.memfd_create("ram")
    m.ftruncate(fd, 4 * PAGE)
    return fd, m.mmap(fd, 0, 4 * PAGE, prot, flags)


@pytest.fixture
def m() -> Machine:
    return Machine(Config(profile="guest-memfd", phys_pages=1024, thp="never"))


def test_a_write_pin_without_prot_write_is_efault(m: Machine) -> None:
    _, ro = ram(m, ["PROT_READ"], ["MAP_SHARED"])
    with pytest.raises(EngineError) as ei:
        m.mapping_pin(ro, 0, 2 * PAGE, write=True)
    e = ei.value
    assert e.name == "EFAULT" and e.op == "mapping_pin" and e.seq == m.event_count
    assert "PROT_WRITE" in e.message and "check_vma_flags" in e.message
    ev = m.events(m.event_count - 1)[-1]
    assert ev.args == {"map_id": ro, "offset": 0, "length": 2 * PAGE, "write": 1}
    assert m.phys().used == 0
    m.check()
    m.mapping_pin(ro, 0, PAGE)  # a read pin: the event as before the write arg
    assert m.events(m.event_count - 1)[-1].args == {"map_id": ro, "offset": 0, "length": PAGE}
    m.check()


def test_a_private_write_pin_pins_a_copy_its_clone_keeps(m: Machine) -> None:
    _, priv = ram(m, RW, ["MAP_PRIVATE"])
    p = m.mapping_pin(priv, PAGE, PAGE, write=True)
    ev = m.events(m.event_count - 1)[-1]
    assert [t.what for t in ev.touches if t.what in ("alloc", "cow", "lock")] == [
        "alloc",
        "cow",
        "lock",
    ]
    cow = next(t for t in ev.touches if t.what == "cow")
    assert p.pfns == [cow.pfn] and m.phys().used == 2  # the file page and its copy
    m.check()
    c = m.clone()
    m.munmap(priv)
    m.mapping_unpin(p.pin_id)
    assert m.phys().used == 1
    m.check()
    assert c.pin_info(p.pin_id).pfns == p.pfns  # the clone's pin is its own
    c.mapping_access(priv, PAGE + 1, True, 7)
    assert c.phys().used == 2  # the write went to the pinned copy
    c.check()
