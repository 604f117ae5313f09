"""sealscope.client against a live server: typed answers, the one exception, batches, the
SSE follower, sync and async."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from app.models.files import FallocateAnswer, File, Seals
from app.models.guest import Pfn
from sealscope.client import AsyncClient, Client, SealscopeError, SseEvent
from sealscope.local import local_async_client, local_client
from tests.api.helpers import Server

PUNCH = ["FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"]


def test_typed_answers_and_the_one_exception(live: Server) -> None:
    with Client(live.url) as c:
        s = c.create_session(profile="rfc-v2", thp="never")
        f = s.memfd_create("vm0", ["MFD_ALLOW_SEALING"])
        assert isinstance(f, File) and f.fd == 3 and f.flags == ["MFD_ALLOW_SEALING"]
        assert isinstance(s.ftruncate(3, 8192), File)
        with pytest.raises(SealscopeError) as e:
            s.add_seals(3, ["F_SEAL_GUEST"])
        err = e.value
        assert (err.errno, err.errno_value, err.op, err.status) == ("EBUSY", 16, "F_ADD_SEALS", 409)
        assert "empty" in err.message
        assert s.ftruncate(3, 0).size == 0
        seals = s.add_seals(3, ["F_SEAL_GUEST"])
        assert isinstance(seals, Seals) and "F_SEAL_GUEST" in s.get_seals(3).seals
        s.ftruncate(3, 1 << 16)
        owner = s.owner_create("kvm0", "kvm")
        s.register_guest(3, owner.owner_id)
        alloc = s.fallocate(3, 0, 16384)
        assert isinstance(alloc, FallocateAnswer) and alloc.nr_pages == 4
        pfn = s.get_lock_pfn(3, 2)
        assert isinstance(pfn, Pfn) and pfn.pfn is not None
        assert s.punch_hole(3, 0, 16384).pending  # it sleeps on the locked page
        assert s.put_unlock_pfn(pfn.pfn).wakes
        s.memslot_create(owner.owner_id, 3, gfn=0, npages=16)
        assert s.fault(owner.owner_id, 1).pfn is not None
        assert s.owner(owner.owner_id).nmapped >= 1
        assert s.pages(3).extents and s.phys().total == s.info.phys_pages
        with pytest.raises(SealscopeError) as e:
            s.pread(3, 0, 8)
        assert e.value.errno == "EPERM"
        with pytest.raises(SealscopeError) as e:
            s.close(42)
        assert (e.value.errno, e.value.status) == ("EBADF", 404)
        s.memfd_create("plain")
        assert s.pwrite(4, 0, b"hello").nbytes == 5
        m = s.mmap(4, 4096)
        s.munmap(m.map_id)
        assert s.pread(4, 0, 5).data_b64 == "aGVsbG8="
        trace = s.trace()
        assert s.detail().seq == len(trace.ops)
        copy = c.replay(trace)
        assert copy.detail().seq == len(trace.ops)
        assert s.rewind(2).seq == 2 and s.at(1).seq == 1
        assert s.events().events[0].op == "memfd_create"
        assert s.diff("multi_owner").ops == 2
        assert c.scenarios().scenarios and c.scenario("rfc-lifecycle").steps
        w = c.start_scenario("rfc-lifecycle", steps=None)
        assert w.detail().seq > 0
        s.delete()
        with pytest.raises(SealscopeError) as e:
            c.session(s.id)
        assert (e.value.errno, e.value.status) == ("ENOENT", 404)


def test_batch_context_manager(live: Server) -> None:
    with Client(live.url) as c:
        s = c.create_session()
        with s.batch() as b:
            made = b.add("memfd_create", name="vm0", flags=["MFD_ALLOW_SEALING"])
            b.add("ftruncate", fd=3, length=8192)
            seal = b.add("fcntl", fd=3, cmd="F_ADD_SEALS", seals=["F_SEAL_GUEST"])
            gone = b.add("close", fd=3)
            assert not made.sent  # nothing is sent inside the block
        assert s.detail().seq == 4
        f = made.value()
        assert isinstance(f, File) and f.fd == 3
        with pytest.raises(SealscopeError) as e:
            seal.value()
        assert e.value.errno == "EBUSY" and e.value.status == 409
        assert gone.value() is None and [r.seq for r in b.results] == [1, 2, 3, 4]
        with s.batch(stop_on_error=True) as b:
            first = b.add("close", fd=3)  # EBADF: the rest is not run
            later = b.add("memfd_create")
        assert b.queue.answers[0].stopped_at == 0 and not later.sent
        with pytest.raises(SealscopeError):
            first.value()
        with pytest.raises(RuntimeError), s.batch() as b:
            b.add("memfd_create")
            raise RuntimeError("no batch is sent")
        assert s.detail().seq == 5
        raw = s.ops([{"op": "memfd_create", "args": {}}])
        assert raw.results[0].status == 201 and raw.seq == 6
        with pytest.raises(SealscopeError) as e:
            s.ops([{"op": "nope", "args": {}}])
        assert e.value.status == 422 and "ops[0]" in e.value.message


def test_follow_sees_each_event_of_a_batch(live: Server) -> None:
    with Client(live.url) as c:
        s = c.create_session()
        got: list[SseEvent] = []

        def follow() -> None:
            for msg in s.follow(timeout=30):
                got.append(msg)
                if msg.event == "end":
                    return

        t = threading.Thread(target=follow)
        t.start()
        ops = [
            {"op": "memfd_create", "args": {}},
            {"op": "ftruncate", "args": {"fd": 3, "length": 1 << 20}},
        ]
        ops += [
            {
                "op": "fallocate",
                "args": {
                    "fd": 3,
                    "mode": PUNCH if i % 2 else [],
                    "offset": i % 32 * 4096,
                    "len": 4096,
                },
            }
            for i in range(300)
        ]
        out = s.ops(ops)
        events = s.events(limit=1000).events
        s.delete()
        t.join(timeout=30)
        assert not t.is_alive()
    messages = [m.data for m in got if m.event == "message"]
    assert [m["seq"] for m in messages] == list(range(1, out.event_seq + 1))
    assert messages == [e.model_dump(mode="json") for e in events]
    assert got[-1].event == "end"


@pytest.mark.anyio
async def test_async_client(live: Server) -> None:
    async with AsyncClient(live.url) as c:
        s = await c.create_session(profile="guest-memfd")
        f = await s.guest_memfd_create(1 << 21)
        assert f.kind == "guest_memfd"
        with pytest.raises(SealscopeError) as e:
            await s.pwrite(3, 0, b"x")
        assert e.value.errno is not None and e.value.status == 409
        async with s.batch() as b:
            alloc = b.add("fallocate", fd=3, mode=PUNCH[:1], offset=0, len=8192)
            b.add("fallocate", fd=3, mode=PUNCH, offset=0, len=4096)
        assert alloc.value().nr_pages == 2  # type: ignore[union-attr]
        seen = []
        async for msg in s.follow():
            seen.append(msg)
            if msg.event == "message" and msg.data["seq"] == 4:
                break
        assert [m.data["op"] for m in seen] == [
            "KVM_CREATE_GUEST_MEMFD",
            "pwrite",
            "fallocate",
            "fallocate",
        ]
        await s.delete()


def test_in_process_sessions(tmp_path: Path) -> None:
    with local_client(tmp_path / "data") as c:
        s = c.create_session(thp="always")
        assert s.memfd_create().fd == 3 and s.detail().thp == "always"
        with s.batch() as b:
            b.add("ftruncate", fd=3, length=1 << 21)
        assert s.events().events[-1].op == "ftruncate"
        with pytest.raises(RuntimeError, match="follow\\(\\) needs a server"):
            next(iter(s.follow()))


@pytest.mark.anyio
async def test_in_process_async(tmp_path: Path) -> None:
    async with local_async_client(tmp_path / "data") as c:
        s = await c.create_session()
        assert (await s.memfd_create()).fd == 3
        with pytest.raises(RuntimeError, match="needs a server"):
            await anext(aiter(s.follow()))
