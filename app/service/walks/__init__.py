"""The walkthroughs' contents, in the order the home page lists them."""

from __future__ import annotations

from typing import Any

from app.service.walks.classic import FAULT_ZAP, GMEM_BASICS, PER_PAGE
from app.service.walks.coco_launch import SNP_LAUNCH, TDX_LAUNCH
from app.service.walks.coco_mem import INPLACE_PIN, POISON
from app.service.walks.cow import PRIVATE_COW
from app.service.walks.gmem_proposals import GIGA_SPLIT, NO_DIRECT_MAP
from app.service.walks.hazards import HAZARDS, LOCKED_OUT, PINS, PUNCH_WAITS, STAY_PUT
from app.service.walks.kvm_close import CLOSE_VM, VCPU_WAITS, VM_OUTLIVED
from app.service.walks.kvm_convert import CONVERSION_68, DOUBLE_MEMORY, RFC_CONVERSION
from app.service.walks.kvm_gmem import CLOSE_BOUND, INPLACE_618, PRIVATE_PUNCH
from app.service.walks.kvm_review import LEFT_SHMEM, SEVERAL_OWNERS, UNMOVABLE
from app.service.walks.kvm_selftests import CONVERSIONS_TEST, EXITS_TEST, GMEM_TEST
from app.service.walks.review import GMEM_LIFECYCLE, MMAP_SHARED, MULTI
from app.service.walks.rfc import HUGE, LIFECYCLE, SEAL_REFUSED

ALL: list[dict[str, Any]] = [
    LIFECYCLE,
    SEAL_REFUSED,
    LOCKED_OUT,
    HUGE,
    PUNCH_WAITS,
    HAZARDS,
    PINS,
    STAY_PUT,
    GMEM_LIFECYCLE,
    MULTI,
    MMAP_SHARED,
    PRIVATE_COW,
    FAULT_ZAP,
    PER_PAGE,
    GMEM_BASICS,
    RFC_CONVERSION,
    CONVERSION_68,
    DOUBLE_MEMORY,
    PRIVATE_PUNCH,
    CLOSE_BOUND,
    CLOSE_VM,
    VM_OUTLIVED,
    VCPU_WAITS,
    INPLACE_618,
    LEFT_SHMEM,
    SEVERAL_OWNERS,
    UNMOVABLE,
    CONVERSIONS_TEST,
    EXITS_TEST,
    GMEM_TEST,
    SNP_LAUNCH,
    TDX_LAUNCH,
    POISON,
    INPLACE_PIN,
    GIGA_SPLIT,
    NO_DIRECT_MAP,
]
