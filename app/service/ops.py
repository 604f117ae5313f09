"""The operations of a session's log: one handler per API op, over a Machine.

Live requests and replays (restart, trace import, rewind) go through the same
handlers, so a log replayed into a fresh machine of the same configuration rebuilds
the same state and the same events (the engine is deterministic).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from app.engine import MAX_ITEMS, Machine
from app.models.files import (
    FallocateAnswer,
    FallocateArgs,
    FcntlArgs,
    FdArgs,
    File,
    FtruncateArgs,
    GuestMemfdCreate,
    Mapping,
    MemfdCreate,
    MmapArgs,
    MunmapArgs,
    PreadAnswer,
    PreadArgs,
    PwriteAnswer,
    PwriteArgs,
    Seals,
)
from app.models.guest import (
    FaultAnswer,
    FaultArgs,
    GetLockPfnArgs,
    InvalidateArgs,
    Memslot,
    MemslotArgs,
    Migrated,
    MigratePage,
    Owner,
    OwnerCreate,
    Pfn,
    PutUnlockPfn,
    RegisterGuestArgs,
    Unlocked,
    UnregisterGuestArgs,
)
from app.models.views import Callbacks
from app.service.convert import (
    callback_out,
    fd_arg,
    file_fields,
    file_out,
    memslot_out,
    owner_arg,
)
from app.service.op_guards import (
    BIG,
    any_big,
    big_file,
    big_file_or_sleepers,
    check_fallocate,
    check_pread,
    check_pwrite,
    file_limit,
    sleepers,
)
from app.settings import Settings

Handler = Callable[[Machine, Any], BaseModel | None]
Check = Callable[[Settings, Machine, Any], None]  # limits of the service, live only


Heavy = Callable[[Machine, Any], bool]  # may take long: run it off the event loop

ANSWER_CALLBACKS = MAX_ITEMS  # callbacks in an invalidate answer (as in an event); the rest paged


@dataclass(frozen=True)
class OpSpec:
    name: str
    args: type[BaseModel]
    handler: Handler
    check: Check | None = None
    heavy: Heavy | None = None


def memfd_create(m: Machine, a: MemfdCreate) -> File:
    name = a.name.split("\0", 1)[0]  # the kernel copies a C string
    return file_out(m.file(m.memfd_create(name, a.flags)))


def guest_memfd_create(m: Machine, a: GuestMemfdCreate) -> File:
    return file_out(m.file(m.gmem_create(a.size, a.flags)))


def ftruncate(m: Machine, a: FtruncateArgs) -> File:
    m.ftruncate(fd_arg(a.fd), a.length)
    return file_out(m.file(a.fd))


def fcntl(m: Machine, a: FcntlArgs) -> Seals:
    fd = fd_arg(a.fd)
    if a.cmd == "F_ADD_SEALS":
        m.add_seals(fd, a.seals)
        info = m.file(fd)
        return Seals(seals=list(info.seals), value=info.seals_value)
    value = m.get_seals(fd)
    return Seals(seals=m.seal_names(value), value=value)


def fallocate(m: Machine, a: FallocateArgs) -> FallocateAnswer:
    pending = m.fallocate(fd_arg(a.fd), a.mode, a.offset, a.len)
    seq = m.event_count
    return FallocateAnswer(**file_fields(m.file(a.fd)), pending=pending, seq=seq)


def pread(m: Machine, a: PreadArgs) -> PreadAnswer:
    data = m.pread(fd_arg(a.fd), a.offset, a.count)
    return PreadAnswer(nbytes=len(data), data_b64=base64.b64encode(data).decode("ascii"))


def pwrite(m: Machine, a: PwriteArgs) -> PwriteAnswer:
    return PwriteAnswer(nbytes=m.pwrite(fd_arg(a.fd), a.offset, a.data()))


def mmap(m: Machine, a: MmapArgs) -> Mapping:
    map_id = m.mmap(fd_arg(a.fd), a.offset, a.length, a.prot, a.flags)
    return Mapping(
        map_id=map_id,
        fd=a.fd,
        offset=a.offset,
        length=a.length,
        prot=list(a.prot),
        flags=list(a.flags),
        addr=m.mapping_addr(map_id),
    )


def munmap(m: Machine, a: MunmapArgs) -> None:
    m.munmap(fd_arg(a.map_id))


def close(m: Machine, a: FdArgs) -> None:
    m.close(fd_arg(a.fd))


def owner_create(m: Machine, a: OwnerCreate) -> Owner:
    owner = m.owner_create(a.kind, a.name.split("\0", 1)[0])
    info = m.owner(owner)
    return Owner(owner_id=str(info.id), name=info.name, kind=info.kind)  # type: ignore[arg-type]


def register_guest(m: Machine, a: RegisterGuestArgs) -> File:
    owner = None if a.owner_id is None else owner_arg(m, a.owner_id, "memfd_register_guest")
    m.register_guest(fd_arg(a.fd), owner)
    return file_out(m.file(a.fd))


def unregister_guest(m: Machine, a: UnregisterGuestArgs) -> File:
    m.unregister_guest(fd_arg(a.fd), owner_arg(m, a.owner_id, "memfd_unregister_guest"))
    return file_out(m.file(a.fd))


def get_lock_pfn(m: Machine, a: GetLockPfnArgs) -> Pfn:
    r = m.get_lock_pfn(fd_arg(a.fd), a.index, a.alloc)
    return Pfn(pfn=r.pfn, order=r.order, pending=r.pending, seq=r.seq)


def migrate_page(m: Machine, a: MigratePage) -> Migrated:
    before = m.event_count
    pfn = m.migrate_page(a.pfn)
    frame = m.frame_runs(pfn, pfn + 1, 1)[0][0]  # the page's new frame: in the page cache
    index = frame.index if frame.index is not None else -1  # a page-cache frame has one
    return Migrated(from_pfn=a.pfn, pfn=pfn, fd=frame.fd, index=index, seq=before + 1)


def put_unlock_pfn(m: Machine, a: PutUnlockPfn) -> Unlocked:
    before = m.event_count
    m.put_unlock_pfn(a.pfn)
    events = m.events(after=before, max_items=0)  # a wake may finish a punch of millions
    wakes = [e.wakes_seq for e in events if e.op == "wake" and e.wakes_seq is not None]
    return Unlocked(pfn=a.pfn, seq=before + 1, wakes=wakes)


def invalidate(m: Machine, a: InvalidateArgs) -> Callbacks:
    # one callback per page: the answer carries the first ANSWER_CALLBACKS and the total
    cbs = m.invalidate(fd_arg(a.fd), a.start, a.end, ANSWER_CALLBACKS)
    seq = m.event_count
    ev = m.events(seq - 1, 1, max_items=0)[0]
    return Callbacks(
        callbacks=[callback_out(c) for c in cbs],
        seq=seq,
        callbacks_total=ev.ncallbacks,
        callbacks_kept=ev.callbacks_kept,
    )


def memslot_create(m: Machine, a: MemslotArgs) -> Memslot:
    owner = owner_arg(m, a.owner_id, "memslot")
    return memslot_out(m.memslot_create(owner, fd_arg(a.fd), a.gfn, a.index, a.npages), a.owner_id)


def fault(m: Machine, a: FaultArgs) -> FaultAnswer:
    r = m.fault(owner_arg(m, a.owner_id, "fault"), a.gfn)
    return FaultAnswer(gfn=a.gfn, pfn=r.pfn, order=r.order, pending=r.pending, seq=r.seq)


OPS: dict[str, OpSpec] = {
    spec.name: spec
    for spec in (
        OpSpec("memfd_create", MemfdCreate, memfd_create),
        OpSpec(
            "guest_memfd_create",
            GuestMemfdCreate,
            guest_memfd_create,
            lambda s, m, a: file_limit(s, a.size, "size"),
        ),
        OpSpec(
            "ftruncate",
            FtruncateArgs,
            ftruncate,
            lambda s, m, a: file_limit(s, a.length, "length"),
            big_file_or_sleepers,
        ),
        OpSpec("fcntl", FcntlArgs, fcntl, heavy=big_file_or_sleepers),
        OpSpec(
            "fallocate",
            FallocateArgs,
            fallocate,
            check_fallocate,
            lambda m, a: a.len > BIG * 4096 or bool(m.waiters()),
        ),
        OpSpec("pread", PreadArgs, pread, check_pread),
        OpSpec("pwrite", PwriteArgs, pwrite, check_pwrite, lambda m, a: len(a.data_b64) > 1 << 20),
        OpSpec("mmap", MmapArgs, mmap),
        OpSpec("munmap", MunmapArgs, munmap, heavy=any_big),
        OpSpec("close", FdArgs, close, heavy=big_file),
        OpSpec("owner_create", OwnerCreate, owner_create),
        OpSpec("register_guest", RegisterGuestArgs, register_guest),
        OpSpec("unregister_guest", UnregisterGuestArgs, unregister_guest, heavy=big_file),
        OpSpec("get_lock_pfn", GetLockPfnArgs, get_lock_pfn),
        OpSpec("put_unlock_pfn", PutUnlockPfn, put_unlock_pfn, heavy=sleepers),
        OpSpec("migrate_page", MigratePage, migrate_page),
        OpSpec("invalidate", InvalidateArgs, invalidate, heavy=lambda m, a: a.end - a.start >= BIG),
        OpSpec("memslot_create", MemslotArgs, memslot_create),
        OpSpec("fault", FaultArgs, fault, heavy=sleepers),
    )
}


def parse(name: str, args: dict[str, Any]) -> tuple[OpSpec, BaseModel]:
    """The spec and validated arguments of a logged op (ValueError / ValidationError)."""
    spec = OPS.get(name)
    if spec is None:
        raise ValueError(f"unknown op {name[:64]!r} (known: {', '.join(OPS)})")
    return spec, spec.args.model_validate(args)


def _register_kvm() -> None:
    from app.service.kvm_coco_ops import COCO_SPECS
    from app.service.kvm_inplace import INPLACE_SPECS
    from app.service.kvm_ops import KVM_HEAVY, KVM_SPECS
    from app.service.kvm_pin import PIN_SPECS

    for name, args, handler, check in KVM_SPECS + COCO_SPECS + INPLACE_SPECS + PIN_SPECS:
        OPS[name] = OpSpec(name, args, handler, check, KVM_HEAVY.get(name))


_register_kvm()
