"""A tiny real guest for the KVM oracle: one byte access at a guest physical address.

The guest is 64-bit code at CPL 3 (under PVM, this machine's KVM backend, such a guest
runs natively with real page faults; a real-mode guest would run in KVM's instruction
emulator, whose stores go through `userspace_addr` and never reach a guest_memfd). Its
code and page tables live in a *scratch memslot* of ordinary anonymous memory, added
just before the access and deleted right after, at a slot id and a gpa no memslot of
the log uses, so that the log sees no trace of it. Three 4 KiB guest pages:

    gva 0x400000  the code              -> scratch gpa + 0
    gva 0x401000  the page under test   -> the target gpa's page
    gva 0x402000  the "done" doorbell   -> scratch gpa + 64 KiB (no memslot: MMIO)

The code reads (or writes, then reads back) the byte, then stores it to the doorbell,
which exits KVM_EXIT_MMIO carrying the byte. An access that fails earlier exits there
instead: KVM_EXIT_MMIO at the target (no memslot), or KVM_RUN -1/EFAULT with
KVM_EXIT_MEMORY_FAULT.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import fcntl
import mmap
import os
import struct
from collections.abc import Callable
from typing import Any


def ioc(direction: int, nr: int, size: int) -> int:
    """_IOC(direction, KVMIO, nr, size): 0 none, 1 write, 2 read, 3 both."""
    return (direction << 30) | (size << 16) | (0xAE << 8) | nr


KVM_GET_VCPU_MMAP_SIZE = 0xAE04
KVM_GET_SUPPORTED_CPUID = ioc(3, 0x05, 8)
KVM_CREATE_VCPU = 0xAE41
KVM_RUN = 0xAE80
KVM_GET_REGS, KVM_SET_REGS = ioc(2, 0x81, 144), ioc(1, 0x82, 144)
KVM_GET_SREGS, KVM_SET_SREGS = ioc(2, 0x83, 312), ioc(1, 0x84, 312)
KVM_SET_CPUID2 = ioc(1, 0x90, 8)

EXIT_NAMES = {
    2: "KVM_EXIT_IO",
    5: "KVM_EXIT_HLT",
    6: "KVM_EXIT_MMIO",
    8: "KVM_EXIT_SHUTDOWN",
    9: "KVM_EXIT_FAIL_ENTRY",
    17: "KVM_EXIT_INTERNAL_ERROR",
    39: "KVM_EXIT_MEMORY_FAULT",
}
KVM_EXIT_MMIO, KVM_EXIT_MEMORY_FAULT = 6, 39
MEMORY_EXIT_FLAG_PRIVATE = 1 << 3

SCRATCH_SIZE = 0x10000  # code + page tables; the doorbell page follows, unbacked
WINDOW = 2 * SCRATCH_SIZE  # what must be free of memslots
# where the scratch slot may go (the first free one is taken): high, rarely used gpas
SCRATCH_BASES = (0xE000_0000, 0x10_0000_0000, 0x40_0000_0000, 0x1_8000_0000, 0x100_0000)
CODE_GVA, DATA_GVA, DOORBELL_GVA = 0x400000, 0x401000, 0x402000
_READ = bytes.fromhex("8a078802ebfe")  # mov al,[rdi]; mov [rdx],al; jmp $
_WRITE = bytes.fromhex("408837") + _READ  # mov [rdi],sil; then as a read
_PTE = 0x7  # present, writable, user
KVM_SET_USER_MEMORY_REGION2 = ioc(1, 0x49, 160)
U64 = 2**64 - 1

_libc = ctypes.CDLL("libc.so.6", use_errno=True)
_libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
_libc.ioctl.restype = ctypes.c_int


class _Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


_IOV = ctypes.POINTER(_Iovec)
for _fn in (_libc.process_vm_readv, _libc.process_vm_writev):
    _fn.argtypes = [ctypes.c_int, _IOV, ctypes.c_ulong, _IOV, ctypes.c_ulong, ctypes.c_ulong]
    _fn.restype = ctypes.c_ssize_t


def host_copy(addr: int, write: bool, value: int) -> int | None:
    """One byte at a real address of this process, copied by the kernel: the byte
    (read back after a write), or None where a touch would fault (EFAULT)."""
    buf = ctypes.create_string_buffer(bytes([value & 0xFF]), 1)
    local, remote = _Iovec(ctypes.addressof(buf), 1), _Iovec(addr, 1)
    if write and _libc.process_vm_writev(os.getpid(), local, 1, remote, 1, 0) != 1:
        return None
    if _libc.process_vm_readv(os.getpid(), local, 1, remote, 1, 0) != 1:
        return None
    return buf.raw[0]


MAP_FIXED_BITS = 0x10 | 0x100000  # MAP_FIXED, MAP_FIXED_NOREPLACE: the log may not ask
NONE_FLAGS = 0x02 | 0x20 | 0x4000  # MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int]
_libc.mmap.argtypes += [ctypes.c_int, ctypes.c_int64]
_libc.mmap.restype = ctypes.c_void_p
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]


def _i32(v: int) -> int:
    return ((v & 0xFFFFFFFF) ^ 2**31) - 2**31


def reserve(size: int) -> int:
    """A PROT_NONE reservation of `size` bytes of address space (no memory)."""
    addr = _libc.mmap(None, size, 0, NONE_FLAGS, -1, 0)
    if addr is None or addr == U64:
        raise OSError(ctypes.get_errno(), "cannot reserve the VMM window")
    return int(addr)


def release(addr: int, size: int) -> None:
    _libc.munmap(addr, size)


def mmap_fixed(addr: int, length: int, prot: int, flags: int, fd: int, offset: int) -> int:
    """mmap(MAP_FIXED) at addr: the address, or -errno."""
    off = ((offset & U64) ^ 2**63) - 2**63
    got = _libc.mmap(addr, length, _i32(prot), _i32(flags | 0x10), fd, off)
    return -ctypes.get_errno() if got is None or got == U64 else int(got)


def region2(vm_fd: int, slot: int, flags: int, gpa: int, size: int, uaddr: int,
            offset: int = 0, gmem: int = 0) -> int:  # fmt: skip
    """KVM_SET_USER_MEMORY_REGION2 with raw values (u32/u64 as C would truncate);
    0 or the errno. For probing fds the log cannot name (/dev/kvm, a VM fd)."""
    arg = struct.pack(
        "<IIQQQQII", slot & 0xFFFFFFFF, flags & 0xFFFFFFFF, gpa & U64, size & U64,
        uaddr & U64, offset & U64, gmem & 0xFFFFFFFF, 0,
    ) + bytes(112)  # fmt: skip
    buf = ctypes.create_string_buffer(arg, len(arg))
    return 0 if _libc.ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION2, buf) == 0 else ctypes.get_errno()


def _segment(selector: int, kind: int, code_or_data: int, dpl: int, db: int, long: int) -> bytes:
    """struct kvm_segment: base, limit, selector, type, present, dpl, db, s, l, g, avl,
    unusable, padding."""
    return struct.pack(
        "<QIHBBBBBBBBBB", 0, 0xFFFFFFFF, selector, kind, 1, dpl, db, code_or_data, long, 1, 0, 0, 0
    )


def _user_mode_sregs(sregs: bytearray, cr3: int) -> None:
    """64-bit paging, CPL 3 code and data segments, a busy 64-bit TSS."""
    sregs[0:24] = _segment(0x33, 0xB, 1, 3, 0, 1)  # cs
    for i in range(1, 6):  # ds es fs gs ss
        sregs[24 * i : 24 * i + 24] = _segment(0x2B, 0x3, 1, 3, 1, 0)
    sregs[144:168] = struct.pack("<QIHBBBBBBBBBB", 0, 0x67, 0x40, 0xB, 1, 0, 0, 0, 0, 0, 0, 0, 0)
    cr0 = 0x80000001 | 0x10000 | 0x20 | 0x10  # PG PE WP NE ET
    cr4 = 0x20 | 0x200 | 0x400  # PAE OSFXSR OSXMMEXCPT
    efer = 0x500 | 0x1  # LMA LME SCE
    struct.pack_into("<QQQQQQ", sregs, 224, cr0, 0, cr3, cr4, 0, efer)


class Vcpu:
    """One real vCPU of a VM, with its kvm_run page and scratch memory."""

    def __init__(self, kvm_fd: int, vm_fd: int, vcpu_id: int) -> None:
        self.fd = fcntl.ioctl(vm_fd, KVM_CREATE_VCPU, vcpu_id)
        try:
            size = fcntl.ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0)
            self.run_page = mmap.mmap(self.fd, size, mmap.MAP_SHARED)
            n = 256
            cpuid = bytearray(struct.pack("<II", n, 0) + bytes(40 * n))
            fcntl.ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid, True)
            fcntl.ioctl(self.fd, KVM_SET_CPUID2, cpuid, True)
            self.scratch = mmap.mmap(-1, SCRATCH_SIZE)
        except OSError:
            os.close(self.fd)
            raise
        self._addr = ctypes.addressof(ctypes.c_char.from_buffer(self.scratch))

    @property
    def scratch_addr(self) -> int:
        return self._addr

    def close(self) -> None:
        self.run_page.close()
        self.scratch.close()
        os.close(self.fd)

    def _prepare(self, base: int, gpa: int, write: bool, value: int) -> None:
        s = self.scratch
        s[:] = bytes(SCRATCH_SIZE)
        code = _WRITE if write else _READ
        s[0 : len(code)] = code
        struct.pack_into("<Q", s, 0x1000, (base + 0x2000) | _PTE)  # PML4[0] -> PDPT
        struct.pack_into("<Q", s, 0x2000, (base + 0x3000) | _PTE)  # PDPT[0] -> PD
        struct.pack_into("<Q", s, 0x3000 + 8 * (CODE_GVA >> 21), (base + 0x4000) | _PTE)
        struct.pack_into("<Q", s, 0x4000, base | _PTE)
        struct.pack_into("<Q", s, 0x4008, (gpa & ~0xFFF) | _PTE)
        struct.pack_into("<Q", s, 0x4010, (base + SCRATCH_SIZE) | _PTE)
        sregs = bytearray(312)
        fcntl.ioctl(self.fd, KVM_GET_SREGS, sregs, True)
        _user_mode_sregs(sregs, base + 0x1000)
        fcntl.ioctl(self.fd, KVM_SET_SREGS, bytes(sregs))
        regs = [0] * 18
        regs[3] = DOORBELL_GVA  # rdx
        regs[4] = value & 0xFF  # rsi
        regs[5] = DATA_GVA + (gpa & 0xFFF)  # rdi
        regs[16], regs[17] = CODE_GVA, 0x2  # rip, rflags
        fcntl.ioctl(self.fd, KVM_SET_REGS, struct.pack("<18Q", *regs))

    def _complete(self) -> None:
        """Finish the pending MMIO without entering the guest (immediate_exit), so that
        the next run starts from the registers set for it, as vcpu_run_complete_io."""
        self.run_page[1] = 1
        _libc.ioctl(self.fd, KVM_RUN, None)
        self.run_page[1] = 0

    def access(
        self, base: int, add_scratch: Callable[[], None], gpa: int, write: bool, value: int
    ) -> dict[str, Any]:
        """Run the guest once; the scratch slot at `base` must be added by add_scratch
        (after the code is written) and is the caller's to delete. Returns
        {"exit": None | {...}, "value": byte | None}; a KVM_RUN failure other than a
        memory-fault exit raises OSError."""
        self._prepare(base, gpa, write, value)
        add_scratch()
        ret = _libc.ioctl(self.fd, KVM_RUN, None)
        err = ctypes.get_errno() if ret < 0 else 0
        reason = struct.unpack_from("<I", self.run_page, 8)[0]
        if ret < 0 and not (reason == KVM_EXIT_MEMORY_FAULT and err in (14, 133)):
            raise OSError(err, os.strerror(err))
        if reason == KVM_EXIT_MEMORY_FAULT:
            flags, fgpa, size = struct.unpack_from("<QQQ", self.run_page, 32)
            names = ["KVM_MEMORY_EXIT_FLAG_PRIVATE"] if flags & MEMORY_EXIT_FLAG_PRIVATE else []
            errname = _errno.errorcode.get(err, str(err))
            return {
                "exit": {
                    "reason": "KVM_EXIT_MEMORY_FAULT",
                    "flags": names,
                    "gpa": fgpa,
                    "size": size,
                    "errno": errname,
                },
                "value": None,
            }
        if reason == KVM_EXIT_MMIO:
            phys, data, length, is_write = struct.unpack_from("<Q8sIB", self.run_page, 32)
            self._complete()
            if phys == base + SCRATCH_SIZE and is_write:
                return {"exit": None, "value": data[0]}
            return {"exit": {"reason": "KVM_EXIT_MMIO", "gpa": phys, "size": length}, "value": None}
        return {"exit": {"reason": EXIT_NAMES.get(reason, f"exit {reason}")}, "value": None}
