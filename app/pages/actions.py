"""The action forms: each POST /s/{sid}/do/{op} calls one service function and answers
the #result fragment (what happened, or the errno with its reason and rule) with the
#view swapped out of band, so the maps and the timeline show the op at once."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ValidationError

from app.deps import RegistryDep
from app.engine import EngineError
from app.errors import NotFound, ServiceError
from app.models import files as fm
from app.models import guest as gm
from app.pages.common import (
    Form,
    Outcome,
    explain,
    first,
    not_found,
    read_form,
    state_of,
    view_response,
)
from app.pages.maps import span
from app.pages.numbers import INT64_MAX, INT64_MIN, UINT64_MAX, in_range, parse_number
from app.pages.render import is_htmx
from app.pages.state import PAGE, parse_size
from app.pages.timeline import args_text
from app.registry import Registry
from app.service import files, guest

router = APIRouter(include_in_schema=False)
PUNCH = ["FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"]
Call = tuple[str, dict[str, Any], Awaitable[Any]]
Action = Callable[[Registry, str, int | None, Form], Call]


def _num(form: Form, key: str) -> int:
    """A page index, gfn, pfn or count: any integer up to 2^64 - 1 (a negative one goes
    on to the schema or the kernel, which say what is wrong with it)."""
    raw = first(form, key)
    try:
        value = parse_number(raw)
    except ValueError as exc:
        raise ValueError(f"{key}: {exc}") from exc
    return in_range(key, raw, value, INT64_MIN, UINT64_MAX, "number a u64 field takes")


def _size(form: Form, key: str) -> int:
    """Bytes (offset, length, count): a loff_t, as the syscalls take."""
    raw = first(form, key)
    try:
        value = parse_size(raw)
    except ValueError as exc:
        raise ValueError(f"{key}: {exc}") from exc
    return in_range(key, raw, value, INT64_MIN, INT64_MAX, "file offset (loff_t)")


def _fd(fd: int | None) -> int:
    if fd is None:
        raise ValueError("no file is selected: make one first (memfd_create)")
    return fd


def _pages(form: Form) -> tuple[int, int]:
    a, b = _num(form, "from"), _num(form, "to")
    if b < a:
        raise ValueError(f"the range ends (page {b}) before it starts (page {a})")
    return a, b


def _shown(body: BaseModel, **ids: Any) -> dict[str, Any]:
    return ids | body.model_dump(mode="json", exclude_defaults=False)


def _fallocate(reg: Registry, sid: str, fd: int, mode: list[str], off: int, n: int) -> Call:
    body = fm.Fallocate(mode=mode, offset=off, len=n)  # type: ignore[arg-type]
    return "fallocate", _shown(body, fd=fd), files.fallocate(reg, sid, fd, body)


def memfd_create(reg: Registry, sid: str, fd: int | None, f: Form) -> Call:
    body = fm.MemfdCreate(name=first(f, "name"), flags=f.get("flags", []))  # type: ignore[arg-type]
    return "memfd_create", _shown(body), files.memfd_create(reg, sid, body)


def guest_memfd_create(reg: Registry, sid: str, fd: int | None, f: Form) -> Call:
    flags = f.get("gflags", [])
    body = fm.GuestMemfdCreate(size=_size(f, "size"), flags=flags)  # type: ignore[arg-type]
    return "guest_memfd_create", _shown(body), files.guest_memfd_create(reg, sid, body)


def seal(reg: Registry, sid: str, fd: int | None, f: Form) -> Call:
    body = fm.FcntlAddSeals(cmd="F_ADD_SEALS", seals=f.get("seals", []))  # type: ignore[arg-type]
    return "fcntl", _shown(body, fd=_fd(fd)), files.fcntl(reg, sid, _fd(fd), body)


def get_seals(reg: Registry, sid: str, fd: int | None, f: Form) -> Call:
    body = fm.FcntlGetSeals(cmd="F_GET_SEALS")
    return "fcntl", _shown(body, fd=_fd(fd)), files.fcntl(reg, sid, _fd(fd), body)


def ftruncate(reg: Registry, sid: str, fd: int | None, f: Form) -> Call:
    body = fm.Ftruncate(length=_size(f, "length"))
    return "ftruncate", _shown(body, fd=_fd(fd)), files.ftruncate(reg, sid, _fd(fd), body)


def allocate(reg: Registry, sid: str, fd: int | None, f: Form) -> Call:
    a, b = _pages(f)
    mode = ["FALLOC_FL_KEEP_SIZE"] if first(f, "keep") else []
    return _fallocate(reg, sid, _fd(fd), mode, a * PAGE, (b - a + 1) * PAGE)


def punch(reg: Registry, sid: str, fd: int | None, f: Form) -> Call:
    a, b = _pages(f)
    return _fallocate(reg, sid, _fd(fd), PUNCH, a * PAGE, (b - a + 1) * PAGE)


def fallocate(reg: Registry, sid: str, fd: int | None, f: Form) -> Call:
    return _fallocate(reg, sid, _fd(fd), f.get("mode", []), _size(f, "offset"), _size(f, "len"))


def invalidate(reg: Registry, sid: str, fd: int | None, f: Form) -> Call:
    a, b = _pages(f)
    body = gm.Invalidate(start=a, end=b)
    return "invalidate", _shown(body, fd=_fd(fd)), guest.invalidate(reg, sid, _fd(fd), body)


def pread(reg: Registry, sid: str, fd: int | None, f: Form) -> Call:
    body = fm.Pread(offset=_size(f, "offset"), count=_size(f, "count"))
    return "pread", _shown(body, fd=_fd(fd)), files.pread(reg, sid, _fd(fd), body)


def pwrite(reg: Registry, sid: str, fd: int | None, f: Form) -> Call:
    data = base64.b64encode(first(f, "text").encode()).decode("ascii")
    body = fm.Pwrite(offset=_size(f, "offset"), data_b64=data)
    return "pwrite", _shown(body, fd=_fd(fd)), files.pwrite(reg, sid, _fd(fd), body)


def mmap(reg: Registry, sid: str, fd: int | None, f: Form) -> Call:
    body = fm.Mmap(
        offset=_size(f, "offset"),
        length=_size(f, "length"),
        prot=f.get("prot", []),  # type: ignore[arg-type]
        flags=[first(f, "share", "MAP_SHARED")],  # type: ignore[list-item]
    )
    return "mmap", _shown(body, fd=_fd(fd)), files.mmap(reg, sid, _fd(fd), body)


def munmap(reg: Registry, sid: str, fd: int | None, f: Form) -> Call:
    map_id = _num(f, "map_id")
    return "munmap", {"map_id": map_id}, files.munmap(reg, sid, map_id)


def close(reg: Registry, sid: str, fd: int | None, f: Form) -> Call:
    return "close", {"fd": _fd(fd)}, files.close(reg, sid, _fd(fd))


def owner_create(reg: Registry, sid: str, fd: int | None, f: Form) -> Call:
    body = gm.OwnerCreate(name=first(f, "name"), kind=first(f, "kind", "kvm"))  # type: ignore[arg-type]
    return "owner_create", _shown(body), guest.owner_create(reg, sid, body)


def register(reg: Registry, sid: str, fd: int | None, f: Form) -> Call:
    body = gm.RegisterGuest(owner_id=first(f, "owner").strip() or None)
    return "register_guest", _shown(body, fd=_fd(fd)), guest.register_guest(reg, sid, _fd(fd), body)


def get_lock_pfn(reg: Registry, sid: str, fd: int | None, f: Form) -> Call:
    body = gm.GetLockPfn(index=_num(f, "index"), alloc=bool(first(f, "alloc")))
    return "get_lock_pfn", _shown(body, fd=_fd(fd)), guest.get_lock_pfn(reg, sid, _fd(fd), body)


def put_unlock_pfn(reg: Registry, sid: str, fd: int | None, f: Form) -> Call:
    body = gm.PutUnlockPfn(pfn=_num(f, "pfn"))
    return "put_unlock_pfn", _shown(body), guest.put_unlock_pfn(reg, sid, body)


def migrate_page(reg: Registry, sid: str, fd: int | None, f: Form) -> Call:
    body = gm.MigratePage(pfn=_num(f, "pfn"))
    return "migrate_page", _shown(body), guest.migrate_page(reg, sid, body)


def memslot(reg: Registry, sid: str, fd: int | None, f: Form) -> Call:
    body = gm.MemslotCreate(
        fd=_fd(fd), gfn=_num(f, "gfn"), index=_num(f, "index"), npages=_num(f, "npages")
    )
    owner = first(f, "owner").strip()
    call = guest.memslot_create(reg, sid, owner, body)
    return "memslot_create", _shown(body, owner_id=owner), call


def fault(reg: Registry, sid: str, fd: int | None, f: Form) -> Call:
    body, owner = gm.Fault(gfn=_num(f, "gfn")), first(f, "owner").strip()
    return "fault", _shown(body, owner_id=owner), guest.fault(reg, sid, owner, body)


ACTIONS: dict[str, Action] = {
    fn.__name__: fn
    for fn in (
        memfd_create, guest_memfd_create, seal, get_seals, ftruncate, allocate, punch,
        fallocate, invalidate, pread, pwrite, mmap, munmap, close, owner_create, register,
        get_lock_pfn, put_unlock_pfn, migrate_page, memslot, fault,
    )
}  # fmt: skip


def summarize(out: Any) -> str:
    """What an answer means, in a line."""
    if out is None:
        return "ok"
    if isinstance(out, fm.FallocateAnswer) and out.pending:
        return f"pending: sleeps on a locked page ({out.nr_pages} pages resident)"
    if isinstance(out, fm.File):
        seals = ", ".join(out.seals) or "no seals"
        owners = f", owner {', '.join(out.owners)} registered" if out.owners else ""
        text = f"{out.name} (fd {out.fd}): {out.size:,} bytes, {seals}, {out.nr_pages:,} pages"
        return text + owners
    if isinstance(out, fm.Seals):
        return f"seals: {', '.join(out.seals) or 'none'} (value {out.value:#x})"
    if isinstance(out, fm.PreadAnswer):
        data = base64.b64decode(out.data_b64)[:64]
        return f"read {out.nbytes} bytes: {data!r}"
    if isinstance(out, gm.Pfn | gm.FaultAnswer) and out.pending:
        return "pending: sleeps on a locked page until put_unlock_pfn"
    if isinstance(out, gm.Pfn | gm.FaultAnswer):
        return f"pfn {out.pfn}, order {out.order}"
    if isinstance(out, gm.Unlocked):
        woke = f"; woke {', '.join(f'#{w}' for w in out.wakes)}" if out.wakes else ""
        return f"pfn {out.pfn} unlocked and marked dirty{woke}"
    if isinstance(out, gm.Memslot):
        gfns, pages = span(out.gfn, out.gfn + out.npages), span(out.index, out.index + out.npages)
        return f"slot {out.slot}: gfn {gfns} → fd {out.fd} pages {pages}"
    text = ", ".join(f"{k} {v}" for k, v in out.model_dump().items() if not isinstance(v, list))
    return text or "ok"


@router.post("/s/{sid}/do/{op}", name="page_action", response_class=HTMLResponse)
async def action(
    request: Request, reg: RegistryDep, sid: Annotated[str, Path(max_length=128)], op: str
) -> Response:
    form = await read_form(request)
    st = state_of(sid, form).but(at=None, log=None)
    if op not in ACTIONS:
        return not_found(request, f"no action {op[:40]!r}")
    try:
        before = reg.get(sid).seq
    except NotFound as exc:
        return not_found(request, exc.message)
    outcome, status, result = Outcome(call=op), 200, None
    try:
        name, shown, pending = ACTIONS[op](reg, sid, st.fd, form)
        outcome.call = f"{name}({args_text(shown)})"
        result = await pending
        outcome.summary = summarize(result)
    except (EngineError, ServiceError, ValidationError, ValueError) as exc:
        if isinstance(exc, NotFound) and exc.op == "session":
            return not_found(request, exc.message)
        outcome.error, status = explain(exc, op)
    if isinstance(result, fm.File) and op.endswith("create"):
        st = st.but(fd=result.fd, start=None, end=None, page=None)
    elif op == "close" and outcome.error is None:
        st = st.but(fd=None, start=None, end=None, page=None)
    if not is_htmx(request):
        return RedirectResponse(st.url(), status_code=303)
    recorded = reg.sessions.get(sid) is not None and reg.sessions[sid].seq > before
    return await view_response(
        request,
        reg,
        st,
        outcome=outcome,
        status=status,
        with_result=True,
        op_seq=before + 1 if recorded else None,
    )
