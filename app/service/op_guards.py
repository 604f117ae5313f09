"""What the op table (app/service/ops.py) asks of an op before it runs: whether it may
take long (then it runs in a worker thread, off the event loop), and the service's own
limits on its size (413 naming the limit; past the kernel's own limits the engine
answers, as the kernel would).
"""

from __future__ import annotations

from typing import Any

from app.engine import EngineError, Machine
from app.errors import TooLarge
from app.models.files import FallocateArgs, PreadArgs, PwriteArgs
from app.service.convert import fd_arg
from app.settings import MAX_LFS_FILESIZE, Settings

BIG = 1024  # pages: an op touching more runs in a worker thread (a 16M-page punch takes s)


def resident(m: Machine, fd: int) -> int:
    try:
        return m.file(fd_arg(fd)).nr_pages
    except EngineError:
        return 0


def big_file(m: Machine, a: Any) -> bool:
    return resident(m, a.fd) > BIG


def sleepers(m: Machine, a: Any) -> bool:
    return bool(m.waiters())  # a wake may finish a long punch


def big_file_or_sleepers(m: Machine, a: Any) -> bool:
    # a truncate or an F_SEAL_WRITE walks the file's pages; a wake may finish a punch
    return big_file(m, a) or sleepers(m, a)


def any_big(m: Machine, a: Any) -> bool:
    # an unmap may drop a closed file's last reference: its final truncate
    return sleepers(m, a) or sum(f.nr_pages for f in m.files()) > BIG


def file_limit(s: Settings, end: int, what: str) -> None:
    # Past the kernel's own limit the engine answers (EFBIG / EINVAL), as the kernel would.
    if s.max_file_bytes < end <= MAX_LFS_FILESIZE:
        raise TooLarge(
            f"{what} {end} is past the service's limit max_file_bytes={s.max_file_bytes}",
            limit="max_file_bytes",
        )


def check_pread(s: Settings, m: Machine, a: PreadArgs) -> None:
    if a.count <= s.max_read_bytes or a.offset < 0:
        return
    try:  # the kernel copies at most what is there: count only limits a long read
        room = min(a.count, m.file(fd_arg(a.fd)).size - a.offset)
    except EngineError:
        return
    if room > s.max_read_bytes:
        raise TooLarge(
            f"pread of {room} bytes is past the service's limit max_read_bytes={s.max_read_bytes}",
            limit="max_read_bytes",
        )


def check_pwrite(s: Settings, m: Machine, a: PwriteArgs) -> None:
    if a.offset >= 0:
        file_limit(s, a.offset + len(a.data()), "offset + len")


def check_fallocate(s: Settings, m: Machine, a: FallocateArgs) -> None:
    if a.offset >= 0 and a.len > 0:
        file_limit(s, a.offset + a.len, "offset + len")
