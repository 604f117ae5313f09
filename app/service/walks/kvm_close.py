"""Walkthroughs of a VM's end: close(vm_fd) while a guest_memfd holds the VM (6.8 on),
and RFC v2's memfd outliving its VM (patch 13's vm_is_dead) (KVM.md); and an RFC v2
vCPU sleeping on a page another holder locked."""

from __future__ import annotations

from typing import Any

from app.service.walks._dsl import (
    KEEP,
    MiB,
    close,
    fal,
    fallocate,
    ftruncate,
    get_lock,
    gmem_inv,
    inv,
    memfd,
    punch,
    put_unlock,
    seal,
    step,
)
from app.service.walks._kvm import DEFAULT, access, attrs, fd_region, vcpu, vm
from app.service.walks.kvm_convert import sw_guest

R_HOLD = (
    "close(vm_fd) drops the VM fd's reference (kvm_vm_release -> kvm_put_kvm); every "
    "guest_memfd the VM made holds another (__kvm_gmem_create: kvm_get_kvm), so the VM "
    "lives on, memslots and mappings intact, until the last of them is closed and unmapped"
)
R_DESTROY = (
    "kvm_gmem_release puts the file's reference on the VM: the last one runs "
    "kvm_destroy_vm (memslots, the secondary MMU and the attributes go)"
)
R_DEAD = (
    "patch 13: the backing store is not told when a VM is destroyed; the callbacks check "
    "vm_is_dead (a walk of vm_list) and return"
)


def close_vm(note: str, vm_id: int = 0, **kw: Any) -> dict[str, Any]:
    return step("vm_close", {"vm_id": str(vm_id)}, note, **kw)


CLOSE_VM = {
    "name": "kvm-close-vm-fd",
    "title": "Closing the VM fd: the guest_memfd keeps the VM alive until its own close",
    "summary": "The VMM closes the VM fd first: the VM lives on (its guest_memfd holds a "
    "reference), no ioctl reaches it (EBADF), a punch of the file still zaps its mapping. "
    "Closing the guest_memfd destroys the VM. Checked against this machine's KVM.",
    "profile": "guest-memfd",
    "topics": ["kvm", "close"],
    "steps": [
        *sw_guest(),
        attrs("gfns 0-15 private", 0, 0x10000, True),
        access(
            "the guest writes a private page (gpa 0x2000)",
            0x2000,
            True,
            True,
            7,
            expect={"backing": "private", "fd": 3, "index": 2},
        ),
        close_vm(
            "the VMM closes the VM fd (its vCPU fds with it)",
            rule=R_HOLD,
            look="the VM panel: closed, slot 0 and the mapping of gfn 2 still there",
        ),
        access(
            "a vCPU access: the vCPU went with the VM fd",
            0x2000,
            private=True,
            errno="EBADF",
            rule="an ioctl on a closed fd is EBADF (the simulator's vCPUs have no fds of their "
            "own; a VMM closes its vCPU fds before the VM fd)",
        ),
        fallocate(
            "the guest_memfd still works: fallocate page 8",
            0x8000,
            4096,
            KEEP,
            expect={"nr_pages": 2},
            rule="the file keeps its VM alive (KVM.md): fallocate works after the VM fd closes",
        ),
        punch(
            "a punch of page 2 still reaches the live VM: its mapping is zapped",
            0x2000,
            4096,
            callbacks=[gmem_inv(0, 2, 3)],
            look="the timeline: gmem_invalidate [2, 3) to the VM, and the zap",
        ),
        close(
            "the VMM closes the guest_memfd: the VM's last reference",
            3,
            rule=R_DESTROY,
            look="the timeline: a vm_destroy touch on this close; the VM is gone (404)",
            callbacks=[gmem_inv(0, 0, 512)],
        ),
        vm(
            "a new VM: the simulator does not reuse the dead VM's owner id",
            DEFAULT,
            name="vm1",
            expect={"vm_id": "1"},
        ),
    ],
}

VM_OUTLIVED = {
    "name": "rfc-memfd-outlives-vm",
    "title": "RFC v2: the memfd outlives its VM, and stays the dead VM's (vm_is_dead)",
    "summary": "Nothing holds an RFC v2 VM: closing its fd destroys it, but its "
    "registrations stay on both memfds. A punch still calls the dead owner's "
    "invalidate_page_range (it returns at vm_is_dead); the next VM cannot register the "
    "files (EPERM, the dead_owner hazard).",
    "profile": "rfc-v2",
    "topics": ["kvm", "close", "hazards"],
    "twin": "kvm-close-vm-fd",
    "steps": [
        memfd("the shared view: a memfd (fd 3)", "shared", expect={"fd": 3}),
        memfd("the private view: a memfd (fd 4)", "private", expect={"fd": 4}),
        seal("F_SEAL_GUEST on the private view", "F_SEAL_GUEST", fd=4),
        ftruncate("1 MiB of shared view", MiB, expect={"size": MiB}),
        ftruncate("1 MiB of private view", MiB, fd=4, expect={"size": MiB}),
        vm("KVM_CREATE_VM: the RFC's VM", DEFAULT, expect={"vm_id": "0"}),
        vcpu("KVM_CREATE_VCPU: vCPU 0", expect={"vcpu_id": 0}),
        fd_region(
            "an fd-based memslot over both views: KVM registers with both files",
            MiB,
            3,
            4,
            expect={"fd": 3, "private_fd": 4},
        ),
        fallocate(
            "the VMM makes page 0 private: fallocate private_fd (mapped eagerly)",
            0,
            4096,
            fd=4,
            callbacks=[fal(0, 0, 1)],
        ),
        close_vm(
            "the VMM closes the VM fd: nothing else holds an RFC v2 VM",
            rule="rfc-v2 has no guest_memfd holding the VM: kvm_destroy_vm runs at once; "
            "the memslot's files stay the VM's (no unregister on destroy)",
            look="the files: both still list owner 0",
        ),
        punch(
            "a punch of private page 0 still calls the dead VM's callback",
            0,
            4096,
            fd=4,
            callbacks=[inv(0, 0, 0)],
            expect={"event.hazard": None},
            rule=R_DEAD,
            look="the timeline: invalidate_page_range to owner 0, and no zap (nothing mapped)",
        ),
        vm("a second VM", DEFAULT, name="vm1", expect={"vm_id": "1"}),
        fd_region(
            "the second VM wants the same files",
            MiB,
            3,
            4,
            vm_id=1,
            errno="EPERM",
            expect={"hazard": "dead_owner"},
            rule="memfd_register_guest: a different owner is EPERM, and the dead VM is "
            "still the owner: nobody can have these files again",
        ),
        close("the VMM closes the private view: its pages are freed", 4),
        close("and the shared view", 3),
    ],
}


VCPU_WAITS = {
    "name": "rfc-vcpu-waits-on-locked-page",
    "title": "RFC v2: a vCPU's fault sleeps on a page another owner holds with get_lock_pfn",
    "summary": "Another holder locks a page of the shared fd with get_lock_pfn; the guest's "
    "access to it sleeps in shmem_getpage's lock_page (the answer is pending); the holder's "
    "put_unlock_pfn wakes the vCPU, whose access goes on and lands.",
    "profile": "rfc-v2",
    "topics": ["kvm", "page lock"],
    "steps": [
        memfd("the shared view: a memfd (fd 3)", "shared", expect={"fd": 3}),
        ftruncate("1 MiB of shared view", MiB, expect={"size": MiB}),
        vm("KVM_CREATE_VM: the RFC's VM", DEFAULT, expect={"vm_id": "0"}),
        vcpu("KVM_CREATE_VCPU: vCPU 0", expect={"vcpu_id": 0}),
        fd_region("an fd-based memslot, shared view only", MiB, 3, -1, expect={"fd": 3}),
        get_lock(
            "another holder locks page 2 (get_lock_pfn, alloc): pfn 0",
            2,
            expect={"pfn": 0, "pending": False},
        ),
        access(
            "the guest writes 9 at gpa 0x2005: its fault needs page 2",
            0x2005,
            True,
            False,
            9,
            expect={"pending": True, "exit": None},
            rule="patch 07: a shared access calls get_pfn(alloc=true), shmem_getpage locks "
            "the page: the vCPU thread sleeps until the holder unlocks it",
            look="Time travel: 1 operation asleep (vcpu_access); page 2 shows a waiter",
        ),
        put_unlock(
            "the holder's put_unlock_pfn(0) wakes the vCPU: its access goes on",
            0,
            expect={"wakes": [7]},
            look="the timeline: a wake of vcpu_access under put_unlock_pfn, the map of gfn 2",
        ),
        access(
            "the guest reads gpa 0x2005 back",
            0x2005,
            expect={"backing": "shared", "value": 9, "pending": False},
        ),
    ],
}
