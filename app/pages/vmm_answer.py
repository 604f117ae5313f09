"""Play the guest: the VMM's answer to the guest's conversion request, by design
(KVM.md), each call made through the service as an op of the log:

- rfc-v2 (the RFC as posted): to private, fallocate private_fd over the page (the
  callback maps it eagerly, the shared mapping is zapped) and punch the shared fd;
  to shared, fallocate the shared fd and punch private_fd;
- 6.8: KVM_SET_MEMORY_ATTRIBUTES on the page, then discard the other copy (punch the
  guest_memfd to shared, punch the file behind userspace_addr to private);
- 6.18, a guest_memfd-only slot (shared in place): the attribute, nothing to discard;
- the in-place conversion proposal (variant inplace_conversion, a slot bound to a
  guest_memfd): KVM_SET_MEMORY_ATTRIBUTES2 on the guest_memfd itself (the VM's PRIVATE
  attribute is EINVAL there); a guest_memfd-only slot has one copy, no discard.

And the guest's own request where no exit makes it: a SW_PROTECTED VM's private-ness
is the attribute's (kvm_mmu_page_fault ORs PFERR_PRIVATE_ACCESS in), so a shared
access to a private gfn is served privately and never exits; the guest asks by a
hypercall instead (KVM_HC_MAP_GPA_RANGE, as SNP's page state change and TDX's MapGPA
reach the VMM: KVM_EXIT_HYPERCALL)."""

from __future__ import annotations

from typing import Any

from app.engine import Machine
from app.engine._kvm_types import VmMemslot
from app.models import files as fm
from app.models import kvm as km
from app.models.kvm_inplace import MemoryAttributes2
from app.registry import Registry
from app.service import files, kvm, kvm_coco

PAGE = 4096
PRIVATE = "KVM_MEMORY_ATTRIBUTE_PRIVATE"
PUNCH = ["FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"]
SW = "KVM_X86_SW_PROTECTED_VM"

# design -> (to private, to shared): the answer button's words
HOW = {
    "rfc-v2": ("fallocate private_fd, punch the shared fd",
               "fallocate the shared fd, punch private_fd"),
    "6.8": ("set the attribute, discard the other copy",) * 2,
    "6.18": ("set the attribute; one copy, nothing to discard",) * 2,
    "in-place": ("KVM_SET_MEMORY_ATTRIBUTES2 on the guest_memfd, in place",) * 2,
}  # fmt: skip


def slot_of(m: Machine, vm: int, gfn: int) -> VmMemslot | None:
    return next(
        (
            s
            for s in m.vm(vm).memslots
            if not s.slot >> 16
            and s.guest_phys_addr >> 12 <= gfn < (s.guest_phys_addr + s.memory_size) >> 12
        ),
        None,
    )


def design(reg: Registry, sid: str, vm: int, gpa: int) -> str:
    """The design whose VMM answers at gpa: rfc-v2, 6.8, 6.18 or in-place."""
    sess = reg.get(sid)
    if sess.config.profile == "rfc-v2":
        return "rfc-v2"
    slot = slot_of(sess.machine, vm, gpa >> 12)
    if "inplace_conversion" in sess.config.variants and (
        slot is None or slot.guest_memfd is not None
    ):
        return "in-place"
    return "6.18" if slot is not None and slot.gmem_only else "6.8"


def how(reg: Registry, sid: str, vm: int, gpa: int, to: str) -> str:
    words = HOW[design(reg, sid, vm, gpa)]
    return words[0] if to == "private" else words[1]


def hypercall_request(vm: int, gpa: int, to: str, retry: dict[str, str]) -> dict[str, Any]:
    """The guest's conversion request made by a hypercall (no exit of KVM_RUN makes it
    on a SW_PROTECTED VM): what the answer form shows, as exit_request does."""
    attrs = "KVM_MAP_GPA_RANGE_ENCRYPTED" if to == "private" else "KVM_MAP_GPA_RANGE_DECRYPTED"
    return {
        "words": f"KVM_EXIT_HYPERCALL KVM_HC_MAP_GPA_RANGE(gpa {gpa:#x}, 1 page, {attrs})",
        "asks": f"the guest asks for gpa {gpa:#x} as {to} memory",
        "to": to,
        "gpa": gpa,
        "vm": vm,
        "retry": retry,
        "hypercall": True,
    }


async def answer(reg: Registry, sid: str, vm: int, gpa: int, to: str) -> list[str]:
    """The VMM's calls that convert the page at gpa `to` private or shared; each made
    through the service, as an op. Returns the calls in words."""
    m = reg.get(sid).machine
    gfn = gpa >> 12
    slot = slot_of(m, vm, gfn)
    if slot is None:
        raise ValueError(f"gpa {gpa:#x} is in no memslot: no conversion serves it")
    rel = gfn - (slot.guest_phys_addr >> 12)
    done: list[str] = []

    async def falloc(fd: int, index: int, mode: list[str]) -> None:
        body = fm.Fallocate(mode=mode, offset=index * PAGE, len=PAGE)  # type: ignore[arg-type]
        await files.fallocate(reg, sid, fd, body)
        kind = "punch" if mode else "allocate"
        done.append(f"fallocate(fd {fd}, page {index:,}, {kind})")

    kind = design(reg, sid, vm, gpa)
    if kind == "rfc-v2":
        if slot.private_fd is None or slot.fd is None:
            raise ValueError(f"slot {slot.slot} has no private_fd: nothing to convert to")
        src, dst = (slot.fd, slot.private_fd) if to == "private" else (slot.private_fd, slot.fd)
        index = rel + (slot.userspace_addr >> 12)  # the RFC: userspace_addr is the offset
        await falloc(dst, index, [])
        await falloc(src, index, PUNCH)
        return done
    before, _ = m.gfn_sources(vm, gfn, gfn + 1, 1)  # the shared copy, before the change
    attrs = [PRIVATE] if to == "private" else []
    if kind == "in-place" and slot.guest_memfd is not None:
        offset = slot.guest_memfd_offset + rel * PAGE
        body2 = MemoryAttributes2(offset=offset, size=PAGE, attributes=attrs)
        await kvm_coco.memory_attributes2(reg, sid, slot.guest_memfd, body2)
        done.append(
            f"KVM_SET_MEMORY_ATTRIBUTES2(fd {slot.guest_memfd}, offset {offset:#x}, 4 KiB, "
            f"{attrs or '[]'})"
        )
    else:
        body = km.MemoryAttributesSet(address=gfn * PAGE, size=PAGE, attributes=attrs)
        await kvm.memory_attributes(reg, sid, str(vm), body)
        done.append(f"KVM_SET_MEMORY_ATTRIBUTES(gpa {gfn * PAGE:#x}, 4 KiB, {attrs or '[]'})")
    if slot.gmem_only:
        how = "converted in place" if kind == "in-place" else "shared in place"
        done.append(f"no discard: a guest_memfd-only slot has one copy, {how}")
        return done
    if to == "shared" and slot.guest_memfd is not None:
        await falloc(slot.guest_memfd, (slot.guest_memfd_offset >> 12) + rel, PUNCH)
    elif to == "private":
        fds = {f.fd for f in m.files()}
        shared = next((r for r in before if r.fd is not None and r.index is not None), None)
        if shared is not None and shared.fd in fds and shared.fd != slot.guest_memfd:
            await falloc(shared.fd, shared.index or 0, PUNCH)
        else:
            done.append("no shared copy to discard (userspace_addr has no file page)")
    return done
