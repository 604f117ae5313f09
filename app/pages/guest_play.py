"""Play the guest: a vCPU access from the VM panel, the exit shown as the guest's
request, one click that answers it as the VMM of the session's design does, then the
retry (the conversion loop by hand).

The VMM's answer, by design, is app/pages/vmm_answer.py; on a SW_PROTECTED VM, where a
shared access to a private gfn never exits, the guest's request to convert it back to
shared is offered directly (the KVM_HC_MAP_GPA_RANGE hypercall's request).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from app.deps import RegistryDep
from app.engine import EngineError
from app.errors import NotFound, ServiceError
from app.models import kvm as km
from app.pages import vmm_answer
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
from app.pages.numbers import parse_number
from app.pages.render import is_htmx
from app.registry import Registry
from app.service import kvm

router = APIRouter(include_in_schema=False)
Sid = Annotated[str, Path(max_length=128)]


def _vm_id(reg: Registry, sid: str, form: Form, exact: bool = False) -> int:
    """The form's VM; else the first (exact: the form's VM or ValueError)."""
    m = reg.get(sid).machine
    vms = m.vms()
    if not vms:
        raise ValueError("no VM in this session: make one first (KVM_CREATE_VM)")
    raw = first(form, "vm").strip()
    want = int(raw) if raw.isdigit() and len(raw) < 10 else (-1 if exact else vms[0].id)
    got = next((v.id for v in vms if v.id == want), None)
    if got is None and exact:
        raise ValueError(f"no VM {raw[:20]!r} in this session (a destroyed VM is gone)")
    return vms[0].id if got is None else got


def _gpa(form: Form) -> int:
    raw = first(form, "gpa")
    try:
        value = parse_number(raw)
    except ValueError as exc:
        raise ValueError(f"gpa: {exc}") from exc
    if not 0 <= value < 2**64:
        raise ValueError(f"gpa: {raw[:30]} is not a u64")
    return value


def _access_body(form: Form) -> km.Access:
    priv = first(form, "private", "auto")
    private = None if priv == "auto" else priv == "1"
    raw = first(form, "value", "0") or "0"
    value = parse_number(raw)
    return km.Access(gpa=_gpa(form), write=bool(first(form, "write")), private=private, value=value)


def exit_request(out: km.AccessAnswer, body: km.Access, vm: int) -> dict[str, Any] | None:
    """The guest's request an exit makes, for the answer form; None for no exit."""
    ex = out.exit
    if ex is None:
        return None
    to: str | None = None  # MMIO: no conversion serves it
    poisoned = ex.reason == "KVM_EXIT_MEMORY_FAULT" and ex.errno == "EHWPOISON"
    if poisoned:
        pass  # not a conversion: the page failed (kvm_gmem_get_pfn: -EHWPOISON)
    elif ex.reason == "KVM_EXIT_MEMORY_FAULT":
        to = "private" if "KVM_MEMORY_EXIT_FLAG_PRIVATE" in (ex.flags or []) else "shared"
    elif ex.reason == "KVM_EXIT_MEMORY_ERROR":  # the RFC's exit
        to = "private" if ex.type == "KVM_EXIT_MEM_MAP_PRIVATE" else "shared"
    words = f"{ex.reason} at gpa {ex.gpa:#x}, {ex.size} bytes"
    if ex.flags:
        words += f", flags {', '.join(ex.flags)}"
    if ex.type:
        words += f", type {ex.type}"
    if ex.errno:
        words += f", KVM_RUN fails with {ex.errno}"
    if to:
        asks = f"the guest asks for gpa {ex.gpa:#x} as {to} memory"
    elif poisoned:
        asks = (
            "no conversion serves it: the page is hwpoisoned (the VMM injects a machine "
            "check into the guest, or punches the page for a fresh one)"
        )
    else:
        asks = "no conversion can serve it (MMIO: the VMM emulates the device)"
    retry = {"gpa": hex(body.gpa), "write": "1" if body.write else "", "value": str(body.value)}
    retry["private"] = "auto" if body.private is None else ("1" if body.private else "0")
    return {"words": words, "asks": asks, "to": to, "gpa": ex.gpa, "vm": vm, "retry": retry}


async def _respond(
    request: Request,
    reg: Registry,
    sid: str,
    form: Form,
    outcome: Outcome,
    status: int,
    gfn: int | None,
) -> Response:
    st = state_of(sid, form).but(at=None, log=None)
    if gfn is not None:  # the panel selects the gfn the guest touched
        st = st.but(gfn=gfn)
    if not is_htmx(request):
        return RedirectResponse(st.url(), status_code=303)
    return await view_response(request, reg, st, outcome=outcome, status=status, with_result=True)


async def _run(request: Request, reg: Registry, sid: str, what: str) -> Response:
    form = await read_form(request)
    outcome, status = Outcome(call=what), 200
    gfn: int | None = None
    try:
        reg.get(sid)
    except NotFound as exc:
        return not_found(request, exc.message)
    try:
        vm = _vm_id(reg, sid, form, exact=what == "close")
        if what == "vcpu":
            out = await kvm.vcpu_create(reg, sid, str(vm))
            outcome.call = f"KVM_CREATE_VCPU(vm {vm})"
            outcome.summary = f"vCPU {out.vcpu_id}"
        elif what == "close":
            outcome.call = f"close(vm_fd) of VM {vm}"
            await kvm.vm_close(reg, sid, str(vm))
            alive = reg.get(sid).machine.is_vm(vm)
            outcome.summary = (
                "the VM fd is closed: its ioctls answer EBADF; a guest_memfd it made "
                "holds it, so it lives on until that file is closed and unmapped"
                if alive
                else "the VM is destroyed (kvm_destroy_vm): its memslots and mappings are gone"
            )
        elif what == "access":
            body = _access_body(form)
            gfn = body.gpa >> 12
            vcpu = 0
            outcome.call = (
                f"KVM_RUN: vCPU {vcpu} {'writes' if body.write else 'reads'} gpa {body.gpa:#x}"
                f" (private: {'the attribute' if body.private is None else body.private})"
            )
            ans = await kvm.vcpu_access(reg, sid, str(vm), vcpu, body)
            outcome.guest = exit_request(ans, body, vm)
            if outcome.guest and outcome.guest["to"]:
                outcome.guest["how"] = vmm_answer.how(reg, sid, vm, body.gpa, outcome.guest["to"])
            if ans.pending:
                outcome.summary = (
                    "the vCPU sleeps: its fault met a page another holder locked with "
                    "get_lock_pfn (shmem_getpage's lock_page); that holder's "
                    "put_unlock_pfn wakes it and the access goes on (a wake event)"
                )
            elif ans.exit is None:
                outcome.summary = (
                    f"served from a {ans.backing} page: fd {ans.fd} page {ans.index}, "
                    f"pfn {ans.pfn}; the byte is {ans.value}"
                )
            else:
                outcome.summary = "exit to the VMM: " + outcome.guest["words"]  # type: ignore[index]
        elif what == "request":
            to = first(form, "to", "shared")
            if to not in ("private", "shared"):
                raise ValueError("to: private or shared")
            gpa = _gpa(form)
            gfn = gpa >> 12
            outcome.call = f"the guest's hypercall: KVM_HC_MAP_GPA_RANGE(gpa {gpa:#x}, {to})"
            retry = {"gpa": hex(gpa), "private": "0" if to == "shared" else "1"}
            outcome.guest = vmm_answer.hypercall_request(vm, gpa, to, retry | {"value": "0"})
            outcome.guest["how"] = vmm_answer.how(reg, sid, vm, gpa, to)
            outcome.summary = (
                "no KVM_RUN exit asks for this: the guest's hypercall reaches the VMM as "
                "KVM_EXIT_HYPERCALL (not an op of this engine; the VMM's answer is)"
            )
        else:
            to = first(form, "to")
            if to not in ("private", "shared"):
                raise ValueError("to: private or shared")
            gpa = _gpa(form)
            gfn = gpa >> 12
            outcome.call = f"the VMM converts gpa {gpa:#x} to {to}"
            done = await vmm_answer.answer(reg, sid, vm, gpa, to)
            outcome.summary = "; ".join(done) + " — now retry the access"
            retry = {k[6:]: first(form, k) for k in form if k.startswith("retry_")}
            outcome.guest = {"retry": retry, "vm": vm, "answered": True} if retry else None
    except (EngineError, ServiceError, ValidationError, ValueError) as exc:
        if isinstance(exc, NotFound) and exc.op == "session":
            return not_found(request, exc.message)
        outcome.error, status = explain(exc, what)
    return await _respond(request, reg, sid, form, outcome, status, gfn)


@router.post("/s/{sid}/vm/vcpu", name="page_vm_vcpu", response_class=HTMLResponse)
async def vcpu(request: Request, reg: RegistryDep, sid: Sid) -> Response:
    """KVM_CREATE_VCPU on the panel's VM."""
    return await _run(request, reg, sid, "vcpu")


@router.post("/s/{sid}/vm/access", name="page_vm_access", response_class=HTMLResponse)
async def access(request: Request, reg: RegistryDep, sid: Sid) -> Response:
    """vCPU 0 touches a gpa; an exit comes back as the guest's request."""
    return await _run(request, reg, sid, "access")


@router.post("/s/{sid}/vm/request", name="page_vm_request", response_class=HTMLResponse)
async def request_conversion(request: Request, reg: RegistryDep, sid: Sid) -> Response:
    """The guest asks for a page shared (or private) by a hypercall, as a SW_PROTECTED
    VM's guest must: its shared access to a private gfn is served privately, no exit."""
    return await _run(request, reg, sid, "request")


@router.post("/s/{sid}/vm/close", name="page_vm_close", response_class=HTMLResponse)
async def close_vm(request: Request, reg: RegistryDep, sid: Sid) -> Response:
    """close(vm_fd): destroyed now, or when the last guest_memfd it made goes."""
    return await _run(request, reg, sid, "close")


@router.post("/s/{sid}/vm/answer", name="page_vm_answer", response_class=HTMLResponse)
async def answer(request: Request, reg: RegistryDep, sid: Sid) -> Response:
    """Answer the guest's request as the VMM of the session's design does."""
    return await _run(request, reg, sid, "answer")
