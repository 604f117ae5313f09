"""GUP pins of host mappings: the ops mapping_pin (pin_user_pages on a range of a
mapping) and mapping_unpin (unpin_user_pages).  A pinned page holds a reference: it
blocks shared -> private in KVM_SET_MEMORY_ATTRIBUTES2 (EAGAIN at error_offset),
migration (EBUSY), and outlives a punch as an orphan frame until the unpin.

ops.py registers PIN_SPECS with the KVM ops: each is one engine call (one event), so
trace, replay, rewind, preview and diff work on them as on every op.
"""

from __future__ import annotations

from app.engine import Machine
from app.errors import NotFound, TooLarge
from app.models.kvm_pin import PinAnswer, PinArgs, UnpinArgs
from app.service.kvm_ops import Check, Handler
from app.settings import Settings

PAGE = 4096
MAX_PIN_PAGES = 4096  # pages per pin (the engine's SS_PIN_MAX_PAGES; a service limit: 413)
INT_MIN, INT_MAX = -(2**31), 2**31 - 1


def mapping_pin(m: Machine, a: PinArgs) -> PinAnswer:
    if not INT_MIN <= a.map_id <= INT_MAX:
        raise NotFound(f"no mapping with id {a.map_id}", op="mapping_pin")
    try:
        m.mapping_addr(a.map_id)
    except LookupError:
        raise NotFound(f"no mapping with id {a.map_id}", op="mapping_pin") from None
    p = m.mapping_pin(a.map_id, a.offset, a.length, a.write)
    return PinAnswer(
        pin_id=p.pin_id,
        map_id=p.map_id,
        offset=p.offset,
        pages=p.pages,
        pfns=p.pfns,
        seq=m.event_count,
    )


def mapping_unpin(m: Machine, a: UnpinArgs) -> None:
    try:
        if not INT_MIN <= a.pin_id <= INT_MAX:
            raise LookupError
        m.pin_info(a.pin_id)
    except LookupError:
        raise NotFound(f"no pin with id {a.pin_id}", op="mapping_unpin") from None
    m.mapping_unpin(a.pin_id)


def _check_pin(s: Settings, m: Machine, a: PinArgs) -> None:
    first, end = a.offset // PAGE, (a.offset + a.length + PAGE - 1) // PAGE
    if a.length and end - first > MAX_PIN_PAGES:
        raise TooLarge(
            f"a pin of {end - first} pages is past the service's limit "
            f"max_pin_pages={MAX_PIN_PAGES}",
            limit="max_pin_pages",
        )


PIN_SPECS: list[tuple[str, type, Handler, Check | None]] = [
    ("mapping_pin", PinArgs, mapping_pin, _check_pin),
    ("mapping_unpin", UnpinArgs, mapping_unpin, None),
]
