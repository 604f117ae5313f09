"""The real kernel as an oracle: ask this machine's Linux what userspace sees.

A `Kernel` is one simulated process. It owns real memfd / guest_memfd file
descriptors and mappings, but hands out *virtual* numbers shaped like the
engine's (fds: lowest free number from 3; map ids: 1, 2, 3 ... never reused),
so a session's log can be replayed here and the answers compared.

Every syscall goes through libc via ctypes with exact C types: bad values
(negative lengths, offsets past 2**63 wrap to int64) reach the kernel as they
are, and the kernel answers. A failing call raises `KernelError` carrying the
errno name. An unknown virtual fd is passed to the kernel as -1, so the kernel
also decides which errno wins (e.g. pread with a negative offset on a bad fd
is EINVAL, not EBADF). Flag/seal/mode iterables take the engine's names, or
raw ints (bits passed as they are) for probing undefined bits.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import fcntl
import os
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, Self

MFD_FLAGS = {
    "MFD_CLOEXEC": 0x1,
    "MFD_ALLOW_SEALING": 0x2,
    "MFD_HUGETLB": 0x4,
    "MFD_NOEXEC_SEAL": 0x8,
    "MFD_EXEC": 0x10,
}
GMEM_FLAGS = {"GUEST_MEMFD_FLAG_MMAP": 0x1, "GUEST_MEMFD_FLAG_INIT_SHARED": 0x2}
SEALS = {
    "F_SEAL_SEAL": 0x1,
    "F_SEAL_SHRINK": 0x2,
    "F_SEAL_GROW": 0x4,
    "F_SEAL_WRITE": 0x8,
    "F_SEAL_FUTURE_WRITE": 0x10,
    "F_SEAL_EXEC": 0x20,
}
FALLOC_MODES = {"FALLOC_FL_KEEP_SIZE": 0x1, "FALLOC_FL_PUNCH_HOLE": 0x2}
PROTS = {"PROT_READ": 0x1, "PROT_WRITE": 0x2}
MAP_FLAGS = {"MAP_SHARED": 0x1, "MAP_PRIVATE": 0x2}

F_ADD_SEALS = 1033
F_GET_SEALS = 1034
KVM_CREATE_VM = 0xAE01
KVM_CHECK_EXTENSION = 0xAE03
KVM_CAP_GUEST_MEMFD = 234
KVM_CAP_GUEST_MEMFD_FLAGS = 244
# _IOWR(KVMIO, 0xd4, struct kvm_create_guest_memfd): u64 size, flags, reserved[6]
KVM_CREATE_GUEST_MEMFD = (3 << 30) | (64 << 16) | (0xAE << 8) | 0xD4
_MAP_FIXED_BITS = 0x10 | 0x100000  # MAP_FIXED, MAP_FIXED_NOREPLACE: refused
_MAP_FAILED = 2**64 - 1
_READ_CAP = 1 << 30  # the most bytes pread will copy into Python
_ALIASES = {
    "KVM_CREATE_GUEST_MEMFD": "gmem_create",
    "F_ADD_SEALS": "add_seals",
    "F_GET_SEALS": "get_seals",
    "fstat": "fstat_size",
}
_METHODS = frozenset(
    (
        "memfd_create",
        "gmem_create",
        "ftruncate",
        "add_seals",
        "get_seals",
        "fallocate",
        "pread",
        "pwrite",
        "mmap",
        "munmap",
        "close",
        "fstat_size",
    )
)

_libc = ctypes.CDLL("libc.so.6", use_errno=True)
_I64, _INT = ctypes.c_int64, ctypes.c_int
_libc.memfd_create.argtypes = [ctypes.c_char_p, ctypes.c_uint]
_libc.memfd_create.restype = _INT
_libc.ftruncate.argtypes = [_INT, _I64]
_libc.fallocate.argtypes = [_INT, _INT, _I64, _I64]
_libc.pread.argtypes = [_INT, ctypes.c_void_p, ctypes.c_size_t, _I64]
_libc.pread.restype = ctypes.c_ssize_t
_libc.pwrite.argtypes = [_INT, ctypes.c_char_p, ctypes.c_size_t, _I64]
_libc.pwrite.restype = ctypes.c_ssize_t
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, _INT, _INT, _INT, _I64]
_libc.mmap.restype = ctypes.c_void_p
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.close.argtypes = [_INT]
_libc.fcntl.argtypes = [_INT, _INT, _INT]  # variadic; an int third arg is exact
_ERRNO_NAMES = {_errno.EOPNOTSUPP: "EOPNOTSUPP", _errno.EDEADLK: "EDEADLK"}


def call_args(op: str, args: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The method name and keyword args for a step (op, args) of a log: event
    names map to methods, `len` stands for `length`, and pwrite takes `data`
    (bytes or str) or `count` (that many zero bytes).  Unknown ops: ValueError.
    Shared by every runner of such steps (the kernel here, the engine in tests)."""
    name = _ALIASES.get(op, op)
    if name not in _METHODS:
        raise ValueError(f"unknown op {op!r}")
    kw = dict(args)
    if "len" in kw:
        kw["length"] = kw.pop("len")
    if name == "pwrite":
        data = kw.pop("data", None)
        count = kw.pop("count", None)
        if data is None:
            data = bytes(int(count or 0))
        kw["data"] = data.encode() if isinstance(data, str) else bytes(data)
    return name, kw


class KernelError(Exception):
    """A syscall failed; `name` is the errno's name, e.g. "EBUSY"."""

    def __init__(self, err: int, op: str = "") -> None:
        self.errno = err
        self.name = _ERRNO_NAMES.get(err) or _errno.errorcode.get(err, f"E{err}")
        self.op = op
        super().__init__(f"{op}: {self.name}" if op else self.name)


def _i64(v: int) -> int:
    """Wrap any int to int64 the way a C caller's cast would."""
    return ((int(v) + 2**63) % 2**64) - 2**63


def _check(ret: int, op: str) -> int:
    if ret == -1:
        raise KernelError(ctypes.get_errno(), op)
    return ret


def bits(names: Iterable[str | int], table: dict[str, int], what: str) -> int:
    """OR the named bits; raw ints pass as they are; unknown names: ValueError."""
    if isinstance(names, (str, int)):
        names = [names]
    value = 0
    for n in names:
        if isinstance(n, int):
            value |= n
        elif n == "F_SEAL_GUEST":
            raise ValueError("F_SEAL_GUEST does not exist in this kernel")
        elif n in table:
            value |= table[n]
        else:
            raise ValueError(f"unknown {what} {n!r}")
    return value


def available() -> tuple[bool, str]:
    """Whether memfd_create works here; the reason when not."""
    fd = _libc.memfd_create(b"sealscope-probe", MFD_FLAGS["MFD_CLOEXEC"])
    if fd < 0:
        err = ctypes.get_errno()
        return False, f"memfd_create failed: {_errno.errorcode.get(err, err)}"
    os.close(fd)
    return True, ""


def _open_vm() -> tuple[int, int]:
    kvm = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    try:
        return kvm, fcntl.ioctl(kvm, KVM_CREATE_VM, 0)
    except OSError:
        os.close(kvm)
        raise


def kvm_available() -> tuple[bool, str]:
    """Whether /dev/kvm makes VMs with KVM_CAP_GUEST_MEMFD; the reason when not."""
    try:
        kvm, vm = _open_vm()
    except OSError as e:
        return False, f"/dev/kvm: {e.strerror} ({_errno.errorcode.get(e.errno or 0)})"
    try:
        if fcntl.ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD) <= 0:
            return False, "KVM_CAP_GUEST_MEMFD not supported"
        return True, ""
    finally:
        os.close(vm)
        os.close(kvm)


def gmem_supported_flags() -> int:
    """KVM_CAP_GUEST_MEMFD_FLAGS of a default VM (0 if unknown)."""
    kvm, vm = _open_vm()
    try:
        return max(0, fcntl.ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_FLAGS))
    finally:
        os.close(vm)
        os.close(kvm)


class Kernel:
    """One simulated process on the real kernel; a context manager."""

    def __init__(self) -> None:
        self._fds: dict[int, int] = {}  # virtual fd -> real fd
        self._maps: dict[int, tuple[int, int]] = {}  # map id -> (addr, length)
        self._next_map = 1
        self._vm: tuple[int, int] | None = None  # (kvm fd, vm fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.shutdown()

    def shutdown(self) -> None:
        """munmap every mapping, close every fd and the VM."""
        for addr, length in self._maps.values():
            _libc.munmap(addr, length)
        self._maps.clear()
        for real in self._fds.values():
            os.close(real)
        self._fds.clear()
        if self._vm is not None:
            os.close(self._vm[1])
            os.close(self._vm[0])
            self._vm = None

    def _real(self, fd: int) -> int:
        return self._fds.get(fd, -1)

    def _install(self, real: int) -> int:
        fd = 3
        while fd in self._fds:
            fd += 1
        self._fds[fd] = real
        return fd

    @property
    def fds(self) -> list[int]:
        return sorted(self._fds)

    @property
    def map_ids(self) -> list[int]:
        return sorted(self._maps)

    def memfd_create(self, name: str, flags: Iterable[str | int] = ()) -> int:
        value = bits(flags, MFD_FLAGS, "memfd flag") & 0xFFFFFFFF
        real = _check(_libc.memfd_create(name.encode(), value), "memfd_create")
        return self._install(real)

    def gmem_create(self, size: int, flags: Iterable[str | int] = ()) -> int:
        value = bits(flags, GMEM_FLAGS, "guest_memfd flag") & (2**64 - 1)
        if self._vm is None:
            self._vm = _open_vm()
        arg = bytearray(
            (size & (2**64 - 1)).to_bytes(8, "little") + value.to_bytes(8, "little") + bytes(48)
        )
        try:
            real = fcntl.ioctl(self._vm[1], KVM_CREATE_GUEST_MEMFD, arg, True)
        except OSError as e:
            raise KernelError(e.errno or 0, "KVM_CREATE_GUEST_MEMFD") from None
        return self._install(real)

    def ftruncate(self, fd: int, length: int) -> None:
        _check(_libc.ftruncate(self._real(fd), _i64(length)), "ftruncate")

    def _fcntl(self, fd: int, cmd: int, arg: int, op: str) -> int:
        return _check(_libc.fcntl(self._real(fd), cmd, arg), op)

    def add_seals(self, fd: int, seals: Iterable[str | int]) -> None:
        value = bits(seals, SEALS, "seal") & 0xFFFFFFFF
        self._fcntl(fd, F_ADD_SEALS, (value ^ 2**31) - 2**31, "F_ADD_SEALS")

    def get_seals(self, fd: int) -> int:
        return self._fcntl(fd, F_GET_SEALS, 0, "F_GET_SEALS")

    def fallocate(self, fd: int, mode: Iterable[str | int], offset: int, length: int) -> None:
        value = _i64(bits(mode, FALLOC_MODES, "fallocate mode"))
        value = ((value & 0xFFFFFFFF) ^ 2**31) - 2**31
        _check(_libc.fallocate(self._real(fd), value, _i64(offset), _i64(length)), "fallocate")

    def fstat_size(self, fd: int) -> int:
        try:
            return os.fstat(self._real(fd)).st_size
        except OSError as e:
            raise KernelError(e.errno or 0, "fstat") from None

    def pread(self, fd: int, offset: int, count: int) -> bytes:
        real, count_t = self._real(fd), count & (2**64 - 1)
        room = 0  # the kernel copies at most min(count, i_size - offset)
        if real >= 0 and offset >= 0 and 0 < count_t < 2**63:
            try:
                room = max(0, min(count_t, os.fstat(real).st_size - offset))
            except OSError:
                room = 0
        if room > _READ_CAP:
            raise ValueError(f"pread of {room} bytes is more than the oracle copies")
        buf = ctypes.create_string_buffer(max(room, 1))
        n = _check(_libc.pread(real, buf, count_t, _i64(offset)), "pread")
        return buf.raw[:n]

    def pwrite(self, fd: int, offset: int, data: bytes) -> int:
        return _check(_libc.pwrite(self._real(fd), data, len(data), _i64(offset)), "pwrite")

    def mmap(
        self,
        fd: int,
        offset: int,
        length: int,
        prot: Iterable[str | int],
        flags: Iterable[str | int],
    ) -> int:
        p = bits(prot, PROTS, "prot") & 0xFFFFFFFF
        f = bits(flags, MAP_FLAGS, "map flag") & 0xFFFFFFFF
        if f & _MAP_FIXED_BITS:
            raise ValueError("MAP_FIXED is not allowed in the oracle")
        length_t = length & (2**64 - 1)
        addr = _libc.mmap(
            None, length_t, (p ^ 2**31) - 2**31, (f ^ 2**31) - 2**31, self._real(fd), _i64(offset)
        )
        if addr is None or addr == _MAP_FAILED:
            raise KernelError(ctypes.get_errno(), "mmap")
        map_id, self._next_map = self._next_map, self._next_map + 1
        self._maps[map_id] = (addr, length_t)
        return map_id

    def munmap(self, map_id: int) -> None:
        """Unknown map ids: EINVAL (the oracle's convention, not the kernel's)."""
        if map_id not in self._maps:
            raise KernelError(_errno.EINVAL, "munmap")
        addr, length = self._maps.pop(map_id)
        _check(_libc.munmap(addr, length), "munmap")

    def close(self, fd: int) -> None:
        real = self._fds.pop(fd, -1)
        _check(_libc.close(real), "close")

    def run(self, op: str, args: dict[str, Any]) -> tuple[bool, object]:
        """Dispatch by op name (event names or method names) with keyword args.

        Returns (True, value) or (False, errno name). `len` is accepted for
        `length`; pwrite takes `data` (bytes or str) or `count` (zero bytes).
        Unknown ops and names raise ValueError.
        """
        name, kw = call_args(op, args)
        fn: Callable[..., Any] = getattr(self, name)
        try:
            return True, fn(**kw)
        except KernelError as e:
            return False, e.name
