"""What a failure's words may look at: the call, the file it named, the machine."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from app.engine._lib import lib
from app.engine._types import FileInfo, PhysInfo

PAGE = lib.SS_PAGE_SIZE
GUEST, WRITE, FUTURE = lib.SS_F_SEAL_GUEST, lib.SS_F_SEAL_WRITE, lib.SS_F_SEAL_FUTURE_WRITE
GROW, SHRINK = lib.SS_F_SEAL_GROW, lib.SS_F_SEAL_SHRINK
KEEP, PUNCH = lib.SS_FALLOC_FL_KEEP_SIZE, lib.SS_FALLOC_FL_PUNCH_HOLE


@dataclass
class Ctx:
    """What a rule may look at: the call, the file it named, the machine."""

    op: str
    name: str  # errno name
    args: dict[str, int] = field(default_factory=dict)
    file: FileInfo | None = None
    profile: str = "rfc-v2"
    phys: PhysInfo | None = None
    hazard: str | None = None
    nowners: int = 0

    @property
    def rfc(self) -> bool:
        return self.profile == "rfc-v2"

    @property
    def gmem(self) -> bool:
        return self.file is not None and self.file.kind == "guest_memfd"

    def sealed(self, bit: int) -> bool:
        return self.file is not None and bool(self.file.seals_value & bit)

    def a(self, key: str) -> int:
        return self.args.get(key, 0)


Rule = Callable[[Ctx], "str | None"]

# Generic texts per (op, errno): the rule when nothing finer applies.
