"""Confidential VMs (SNP, TDX) in the API: populate, launch finish, the measurement.

Bodies follow the uapi structs' meaning (SNP struct kvm_sev_snp_launch_update
{gfn_start, uaddr, len}; TDX struct kvm_tdx_init_mem_region {source_addr, gpa,
nr_pages}) with one shape for both: the gpa and the source bytes.
"""

from __future__ import annotations

import base64

from pydantic import BaseModel, Field

from app.models.common import Base64, UInt64, b64_bytes, examples
from app.models.kvm import VmArgs


class LaunchUpdate(BaseModel):
    gpa: UInt64 = Field(description="where the source lands (page aligned)")
    data_b64: Base64 = Field(
        description="the source bytes, base64; their length is the range (a multiple of 4096)"
    )
    model_config = examples({"gpa": 0, "data_b64": base64.b64encode(bytes(4096)).decode()})

    def data(self) -> bytes:
        return b64_bytes(self.data_b64)


class LaunchUpdateAnswer(BaseModel):
    pages: int = Field(description="pages populated (kvm_gmem_populate's count)")
    gpa: int = Field(description="where the rest starts (the uapi struct as the kernel leaves it)")
    size: int = Field(description="bytes left (0: all done)")
    seq: int = Field(description="engine event seq of the call")
    model_config = examples({"pages": 1, "gpa": 4096, "size": 0, "seq": 7})


class Launch(BaseModel):
    """A confidential VM's launch: SNP reports its launch digest (SNP_LAUNCH_MEASURE,
    the attestation report's MEASUREMENT) at any time; TDX its MRTD once finalized."""

    vm_id: str
    type: str
    state: str | None = Field(description='"init" | "finalized"; null: not SNP / TDX')
    pages: int = Field(description="pages populated and measured, in order")
    measurement: str | None = Field(description="SHA-384, hex; null before TDX finalizes")
    reported_as: str | None = Field(description="what SNP / TDX call it")
    model_config = examples(
        {
            "vm_id": "0",
            "type": "KVM_X86_SNP_VM",
            "state": "init",
            "pages": 1,
            "measurement": "ab" * 48,
            "reported_as": "SNP launch digest (ATTESTATION_REPORT.MEASUREMENT)",
        }
    )


class LaunchAnswer(Launch):
    seq: int = Field(description="engine event seq of the call")


class MemoryFailure(BaseModel):
    pfn: UInt64 = Field(description="the frame that failed (an uncorrectable memory error)")
    model_config = examples({"pfn": 1024})


class MemoryFailureAnswer(BaseModel):
    pfn: int
    fd: int | None = Field(description="the guest_memfd that keeps the page (MF_DELAYED)")
    index: int | None = Field(description="its page index there")
    seq: int = Field(description="engine event seq of the call")
    model_config = examples({"pfn": 1024, "fd": 3, "index": 0, "seq": 9})


class LaunchUpdateArgs(LaunchUpdate, VmArgs):
    pass


class LaunchFinishArgs(VmArgs):
    pass
