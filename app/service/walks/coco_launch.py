"""Walkthroughs of a confidential VM's launch and page life (KVM.md "Confidential VM
types"; sources/prepared.md): SNP's populate, EEXIST, finalize, prepare on first use and
reclaim at the free; TDX, whose Secure EPT entry goes at every zap of a private mapping."""

from __future__ import annotations

from typing import Any

from app.service.walks._coco import (
    SNP,
    TDX,
    hook,
    launch_finish,
    launch_update,
    pre_fault,
    snp_digest,
    source,
    tdx_mrtd,
)
from app.service.walks._dsl import PAGE, MiB, Step, close, gmem_inv, punch
from app.service.walks._kvm import PRIVATE, access, attrs, gmem, region, vcpu, vm

SNP_SRC = source(b"OVMF-SNP", 2)  # what the VMM loads: two pages of firmware
TDX_SRC = source(b"TDVF", 2)
R_POPULATE = (
    "kvm_gmem_populate (6.11+): page by page, the guest_memfd page is allocated, an "
    "uptodate one is EEXIST, a gfn that is not private EINVAL; else the source is copied "
    "in, the arch prepares and measures it and the page is marked uptodate"
)
R_SHARED = (
    '6.11, "let kvm_gmem_populate() operate only on private gfns": populate needs '
    "KVM_MEMORY_ATTRIBUTE_PRIVATE (EINVAL); the page is allocated before the check"
)
R_EEXIST = (
    '6.11, "move check for already-populated page to common code": populating an '
    "uptodate (already prepared) page is EEXIST"
)
R_PREFAULT = (
    '6.11, "disallow pre-fault for SNP VMs before initialization": KVM_PRE_FAULT_MEMORY '
    "is EOPNOTSUPP until the launch is finalized (pre_fault_allowed)"
)


def coco_guest(type: str, label: str) -> list[Step]:
    """A confidential VM (VM 0, vCPU 0) with a 2 MiB guest_memfd (fd 3) bound to slot 0
    at gpa 0: private memory only, no shared mapping behind userspace_addr."""
    return [
        vm(f"KVM_CREATE_VM({type}): {label}", type, expect={"vm_id": "0", "type": type}),
        vcpu("KVM_CREATE_VCPU: vCPU 0", expect={"vcpu_id": 0}),
        gmem(
            "KVM_CREATE_GUEST_MEMFD: 2 MiB of private memory (fd 3)",
            2 * MiB,
            expect={"fd": 3, "kind": "guest_memfd", "vm_id": "0"},
        ),
        region(
            "KVM_SET_USER_MEMORY_REGION2: slot 0 at gpa 0, bound to fd 3",
            2 * MiB,
            gmem_fd=3,
            expect={"slot": 0, "guest_memfd": 3, "gmem_only": False},
        ),
    ]


def _snp_launch() -> list[Step]:
    return [
        launch_update(
            "KVM_SEV_SNP_LAUNCH_UPDATE of one page at gpa 0 while gfn 0 is still shared",
            0,
            SNP_SRC[:PAGE],
            errno="EINVAL",
            rule=R_SHARED,
            look="the timeline: launch_update EINVAL, no snp_rmp_assign; page 0 of fd 3 is "
            "allocated all the same (the page map's runs: Life allocated)",
            callbacks=[],
        ),
        attrs(
            "KVM_SET_MEMORY_ATTRIBUTES: gfns 0-15 private",
            0,
            0x10000,
            True,
            expect={"extents": [{"start": 0, "end": 16, "attributes": [PRIVATE]}]},
            look="the VM panel: gfns 0-15 private, not mapped",
        ),
        launch_update(
            "LAUNCH_UPDATE of the firmware, two pages at gpa 0",
            0,
            SNP_SRC,
            expect={"pages": 2, "gpa": 2 * PAGE, "size": 0},
            rule=R_POPULATE + "; SNP's hook is sev_gmem_prepare: rmp_make_private, the RMP "
            "entry of each frame becomes guest-owned",
            look="the timeline: snp_rmp_assign [0, 1) and [1, 2) (pfns, end exclusive); "
            "the page map's runs: pages 0-1 Life prepared; the frame map: pfns 0-1 in use",
            callbacks=[hook("snp_rmp_assign", 0), hook("snp_rmp_assign", 1)],
        ),
        launch_update(
            "LAUNCH_UPDATE of gpa 0x1000 again",
            PAGE,
            SNP_SRC[PAGE:],
            errno="EEXIST",
            rule=R_EEXIST,
            look="the timeline: EEXIST, no second snp_rmp_assign",
            callbacks=[],
        ),
        pre_fault(
            "KVM_PRE_FAULT_MEMORY of gpa 0x4000 before the launch is finished",
            0x4000,
            PAGE,
            errno="EOPNOTSUPP",
            rule=R_PREFAULT,
            callbacks=[],
        ),
        launch_finish(
            "KVM_SEV_SNP_LAUNCH_FINISH: the launch digest is final",
            expect={
                "state": "finalized",
                "pages": 2,
                "measurement": snp_digest([(0, SNP_SRC[:PAGE]), (PAGE, SNP_SRC[PAGE:])]),
            },
            rule="the launch digest chains SHA-384 over each populated page's PAGE_INFO, in "
            "order (SNP ABI spec; what the attestation report's MEASUREMENT carries)",
            look="GET …/vms/0/launch: the same digest, state finalized",
            callbacks=[],
        ),
        launch_update(
            "LAUNCH_UPDATE after the finish",
            2 * PAGE,
            SNP_SRC[:PAGE],
            errno="EIO",
            rule="after LAUNCH_FINISH the firmware's guest has left the launch state: "
            "SNP_LAUNCH_UPDATE fails (EIO)",
        ),
        launch_finish("LAUNCH_FINISH a second time", errno="EIO"),
    ]


def _snp_run() -> list[Step]:
    return [
        access(
            "the guest runs: it reads gpa 0x10, private — the firmware's byte",
            0x10,
            private=True,
            expect={"exit": None, "backing": "private", "pfn": 0, "value": SNP_SRC[0x10]},
            rule="a populated page is uptodate and prepared: the fault maps it, no hook runs",
            callbacks=[],
        ),
        access(
            "it writes gpa 0x3000, private: a page nobody populated",
            0x3000,
            True,
            True,
            7,
            expect={"backing": "private", "index": 3, "pfn": 2, "value": 7},
            rule="prepare on first use: kvm_gmem_get_pfn zeroes the new folio and the arch "
            "prepares it (sev_gmem_prepare: rmp_make_private)",
            look="the timeline: zero page 3, snp_rmp_assign [2, 3), the VM maps gfn 3",
            callbacks=[hook("snp_rmp_assign", 2)],
        ),
        pre_fault(
            "KVM_PRE_FAULT_MEMORY of gfns 4-5, now allowed",
            0x4000,
            2 * PAGE,
            expect={"gpa": 0x6000, "size": 0},
            rule="after the finish pre-fault maps ahead as a read fault would, preparing "
            "each page (this machine has no TDP MMU: its own KVM answers EOPNOTSUPP)",
            callbacks=[hook("snp_rmp_assign", 3), hook("snp_rmp_assign", 4)],
        ),
        attrs(
            "the guest asks gfn 3 shared: the VMM sets the attribute",
            0x3000,
            PAGE,
            False,
            rule="the RMP state of a pfn is tied to the guest_memfd folio, not to a VM's "
            "mapping (Sean Christopherson, May 2024): the zap keeps the RMP entry",
            look="the timeline: vm0 zaps gfn 3, no snp_rmp_reclaim; the page map's runs: "
            "page 3 still prepared",
            callbacks=[],
        ),
        punch(
            "the VMM discards the private copy: punch page 3 of the guest_memfd",
            0x3000,
            PAGE,
            rule="freeing the folio reclaims it (.free_folio, sev_gmem_invalidate: "
            "rmp_make_shared) — the RMP entry goes back to the hypervisor",
            look="the timeline: gmem_invalidate [3, 4) then snp_rmp_reclaim [2, 3); the "
            "frame map: pfn 2 free",
            callbacks=[gmem_inv(0, 3, 4), hook("snp_rmp_reclaim", 2)],
        ),
        close(
            "the VMM closes the guest_memfd: its last reference",
            rule="the last close frees every page; each prepared one is reclaimed",
            look="the timeline: one snp_rmp_reclaim per frame (pfns 0, 1, 3, 4); the frame "
            "map: all free",
            callbacks=[
                gmem_inv(0, 0, 512),
                *(hook("snp_rmp_reclaim", p) for p in (0, 1, 3, 4)),
            ],
        ),
    ]


SNP_LAUNCH: dict[str, Any] = {
    "name": "coco-snp-launch",
    "title": "SNP launch: populate, EEXIST, finish, prepare on first use, reclaim at the free",
    "summary": "An SEV-SNP VM: LAUNCH_UPDATE copies the firmware into private guest_memfd "
    "pages, assigns their RMP entries and measures them (a shared gfn EINVAL, a populated "
    "page EEXIST); LAUNCH_FINISH fixes the launch digest and ends populate; a page the "
    "guest first touches afterwards is prepared then; a zap keeps the RMP entry, the free "
    "(punch, last close) reclaims it.",
    "profile": "guest-memfd",
    "topics": ["kvm", "coco", "snp"],
    "twin": "coco-tdx-launch",
    "steps": [*coco_guest(SNP, "an SEV-SNP guest"), *_snp_launch(), *_snp_run()],
}

TDX_LAUNCH: dict[str, Any] = {
    "name": "coco-tdx-launch",
    "title": "TDX launch: INIT_MEM_REGION, finalize, and the S-EPT entry removed at each zap",
    "summary": "A TDX guest: KVM_TDX_INIT_MEM_REGION adds the firmware's pages to the "
    "Secure EPT (TDH.MEM.PAGE.ADD) and measures them into MRTD, reported once finalized. "
    "Unlike SNP's RMP entry, the S-EPT entry is the private mapping: every zap removes it "
    "(TDH.MEM.PAGE.REMOVE, the page cleared) and the next private fault adds it again "
    "(TDH.MEM.PAGE.AUG): the TD reads zeros.",
    "profile": "guest-memfd",
    "topics": ["kvm", "coco", "tdx"],
    "twin": "coco-snp-launch",
    "steps": [
        *coco_guest(TDX, "a TDX trust domain"),
        attrs("gfns 0-15 private", 0, 0x10000, True),
        launch_update(
            "KVM_TDX_INIT_MEM_REGION (through vCPU 0): two pages of TDVF at gpa 0",
            0,
            TDX_SRC,
            expect={"pages": 2, "gpa": 2 * PAGE, "size": 0},
            rule=R_POPULATE + "; TDX's post_populate is TDH.MEM.PAGE.ADD (the page enters "
            "the S-EPT) and TDH.MR.EXTEND per 256 bytes",
            look="the timeline: tdx_sept_add [0, 1) and [1, 2)",
            callbacks=[hook("tdx_sept_add", 0), hook("tdx_sept_add", 1)],
        ),
        launch_update(
            "INIT_MEM_REGION of gpa 0x1000 again",
            PAGE,
            TDX_SRC[:PAGE],
            errno="EEXIST",
            rule=R_EEXIST + "; TDX fails with the page's error (one page per call)",
            callbacks=[],
        ),
        launch_finish(
            "KVM_TDX_FINALIZE_VM: TDH.MR.FINALIZE, MRTD is known now",
            expect={"state": "finalized", "pages": 2, "measurement": tdx_mrtd([(0, TDX_SRC)])},
            rule="MRTD is one SHA-384 over TDH.MEM.PAGE.ADD and TDH.MR.EXTEND's records, "
            "reported once finalized (GET …/vms/0/launch answers null before)",
            callbacks=[],
        ),
        access(
            "the TD reads gpa 0x1000, private",
            PAGE,
            private=True,
            expect={"exit": None, "backing": "private", "pfn": 1, "value": TDX_SRC[PAGE]},
            callbacks=[],
        ),
        attrs(
            "the TD asks gfn 1 shared: the VMM sets the attribute (the zap)",
            PAGE,
            PAGE,
            False,
            rule="on TDX a private mapping is its Secure EPT entry: the zap removes it "
            "(tdx_sept_remove_private_spte: TDH.MEM.RANGE.BLOCK, TRACK, PAGE.REMOVE) — unlike "
            "SNP, where the RMP entry waits for the free",
            look="the timeline: tdx_sept_remove [1, 2) at the attribute change; the page "
            "map's runs: page 1 no longer prepared (Life zeroed)",
            callbacks=[hook("tdx_sept_remove", 1)],
        ),
        attrs("and private again", PAGE, PAGE, True, callbacks=[]),
        access(
            "the TD's next private access to gfn 1",
            PAGE,
            private=True,
            expect={"exit": None, "backing": "private", "pfn": 1, "value": 0},
            rule="the next private fault adds the entry again (tdx_sept_set_private_spte: "
            "TDH.MEM.PAGE.AUG, the TD accepts the page); the removal cleared the page "
            "(tdx_clear_page after TDH.MEM.PAGE.REMOVE): the firmware's bytes are gone",
            look="the timeline: tdx_sept_add [1, 2) on the same frame; the result: 0",
            callbacks=[hook("tdx_sept_add", 1)],
        ),
        pre_fault(
            "KVM_PRE_FAULT_MEMORY of gfn 4 after the finalize",
            0x4000,
            PAGE,
            expect={"gpa": 0x5000, "size": 0},
            callbacks=[hook("tdx_sept_add", 2)],
        ),
        punch(
            "the VMM punches page 1",
            PAGE,
            PAGE,
            rule="the punch's zap removes the S-EPT entry; the free has nothing left to remove",
            look="the timeline: gmem_invalidate [1, 2), one tdx_sept_remove [1, 2)",
            callbacks=[gmem_inv(0, 1, 2), hook("tdx_sept_remove", 1)],
        ),
        close(
            "the VMM closes the guest_memfd",
            look="the timeline: a tdx_sept_remove per page still in the S-EPT (pfns 2, 0)",
            callbacks=[gmem_inv(0, 0, 512), hook("tdx_sept_remove", 2), hook("tdx_sept_remove", 0)],
        ),
    ],
}
