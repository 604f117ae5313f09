"""Confidential VMs: the ops launch_update (SNP LAUNCH_UPDATE / TDX INIT_MEM_REGION)
and launch_finish (SNP LAUNCH_FINISH / TDX FINALIZE_VM), and the launch record.

ops.py registers COCO_SPECS with the KVM ops: each is one engine call (one event),
so trace, replay, rewind, preview and diff work on them as on every op.
"""

from __future__ import annotations

from app.engine import Machine
from app.errors import TooLarge
from app.models.kvm_coco import (
    Launch,
    LaunchAnswer,
    LaunchFinishArgs,
    LaunchUpdateAnswer,
    LaunchUpdateArgs,
    MemoryFailure,
    MemoryFailureAnswer,
)
from app.service.kvm_ops import Check, Handler, vm_arg
from app.settings import Settings

MAX_LAUNCH_BYTES = 1 << 20  # source bytes per call (a service limit: 413)
REPORTED_AS = {
    "KVM_X86_SNP_VM": "SNP launch digest (SNP_LAUNCH_MEASURE, ATTESTATION_REPORT.MEASUREMENT)",
    "KVM_X86_TDX_VM": "TDX MRTD (TDH.MR.FINALIZE, TDREPORT.TDINFO.MRTD)",
}


def launch_out(m: Machine, vm: int) -> Launch:
    info, launch = m.vm(vm), m.launch_info(vm)
    return Launch(
        vm_id=str(vm),
        type=info.type,
        state=launch.state,
        pages=launch.pages,
        measurement=launch.measurement,
        reported_as=REPORTED_AS.get(info.type),
    )


def launch_update(m: Machine, a: LaunchUpdateArgs) -> LaunchUpdateAnswer:
    vm = vm_arg(m, a.vm_id, "launch_update")
    r = m.launch_update(vm, a.gpa, a.data())
    return LaunchUpdateAnswer(pages=r.pages, gpa=r.gpa, size=r.size, seq=m.event_count)


def launch_finish(m: Machine, a: LaunchFinishArgs) -> LaunchAnswer:
    vm = vm_arg(m, a.vm_id, "launch_finish")
    m.launch_finish(vm)
    return LaunchAnswer(**launch_out(m, vm).model_dump(), seq=m.event_count)


def memory_failure(m: Machine, a: MemoryFailure) -> MemoryFailureAnswer:
    m.memory_failure(a.pfn)
    runs, _ = m.frame_runs(a.pfn, a.pfn + 1, 1)
    fd, index = (runs[0].fd, runs[0].index) if runs else (None, None)
    return MemoryFailureAnswer(pfn=a.pfn, fd=fd, index=index, seq=m.event_count)


def _check_update(s: Settings, m: Machine, a: LaunchUpdateArgs) -> None:
    n = len(a.data())
    if n > MAX_LAUNCH_BYTES:
        raise TooLarge(
            f"{n} source bytes are past the service's limit max_launch_bytes={MAX_LAUNCH_BYTES}",
            limit="max_launch_bytes",
        )


COCO_SPECS: list[tuple[str, type, Handler, Check | None]] = [
    ("launch_update", LaunchUpdateArgs, launch_update, _check_update),
    ("launch_finish", LaunchFinishArgs, launch_finish, None),
    ("memory_failure", MemoryFailure, memory_failure, None),
]
