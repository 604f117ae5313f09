"""The sealscope engine's Python face (the contract: docs/engine-python-face.md).

The only public module of ``app.engine``: the compiled cffi module
``app.engine._sealscope`` and the ``_*`` helpers are private.  Every result
is a frozen dataclass with the kernel's spellings; every failure of the
simulated kernel is an ``EngineError``; unknown enum names are ``ValueError``.
"""

from __future__ import annotations

from app.engine._errors import BadFdError, EngineError, InvariantError, NotFoundError
from app.engine._events import MAX_ITEMS
from app.engine._kvm_types import (
    AccessResult,
    AttrRun,
    Exit,
    GfnSource,
    HostAccess,
    VmInfo,
    VmMemslot,
)
from app.engine._machine import Machine
from app.engine._names import DENS_FLAGS, DENS_MANY, DENS_NOFILE, DENS_NONE, MAX_COLS, OP_ARGS
from app.engine._types import (
    Callback,
    Config,
    Event,
    FileInfo,
    FrameRun,
    GfnRun,
    Memslot,
    OwnerInfo,
    PageRun,
    PfnResult,
    PhysInfo,
    Touch,
    Waiter,
)

PAGE_SIZE = 4096
OPS = tuple(OP_ARGS)  # event op names

__all__ = [
    "DENS_FLAGS",
    "DENS_MANY",
    "DENS_NOFILE",
    "DENS_NONE",
    "MAX_COLS",
    "MAX_ITEMS",
    "OPS",
    "PAGE_SIZE",
    "AccessResult",
    "AttrRun",
    "BadFdError",
    "Callback",
    "Config",
    "EngineError",
    "Event",
    "Exit",
    "FileInfo",
    "FrameRun",
    "GfnRun",
    "GfnSource",
    "HostAccess",
    "InvariantError",
    "Machine",
    "Memslot",
    "NotFoundError",
    "OwnerInfo",
    "PageRun",
    "PfnResult",
    "PhysInfo",
    "Touch",
    "VmInfo",
    "VmMemslot",
    "Waiter",
]
