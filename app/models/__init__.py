"""Pydantic models of every request and answer of the API (one module per area)."""

from app.models.common import ErrorBody
from app.models.files import File, Mapping, Seals
from app.models.guest import Memslot, Owner, OwnerDetail, Pfn
from app.models.sessions import Session, SessionCreate, SessionDetail, Trace, TraceOp
from app.models.views import EventOut, Events, Pages, Phys

__all__ = [
    "ErrorBody",
    "EventOut",
    "Events",
    "File",
    "Mapping",
    "Memslot",
    "Owner",
    "OwnerDetail",
    "Pages",
    "Pfn",
    "Phys",
    "Seals",
    "Session",
    "SessionCreate",
    "SessionDetail",
    "Trace",
    "TraceOp",
]
