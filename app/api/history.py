"""GET /api/v1/history: one guest story in each design (the history screen's twin)."""

from __future__ import annotations

from app.api import new_router
from app.deps import RegistryDep
from app.models.history import History
from app.service import history as svc

router = new_router("history")


@router.get("/history", name="history")
async def history(reg: RegistryDep) -> History:
    """Boot, convert a bounce buffer to shared, use it, convert it back, punch, close: as
    RFC v2 as posted, with the review's variants, 6.8's attributes, 6.18's in-place
    mmap and the in-place conversion proposal (KVM_SET_MEMORY_ATTRIBUTES2 on the
    guest_memfd, variant inplace_conversion) do it, op by op."""
    return await svc.history(reg)
