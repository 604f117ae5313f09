"""The kernel oracle (app/oracle.py) itself: a few facts it must get right."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

try:
    from app import oracle
except ImportError:  # run from elsewhere without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from app import oracle

MEMFD_OK, MEMFD_WHY = oracle.available()
KVM_OK, KVM_WHY = oracle.kvm_available() if MEMFD_OK else (False, MEMFD_WHY)

pytestmark = pytest.mark.skipif(not MEMFD_OK, reason=f"memfd_create unusable: {MEMFD_WHY}")
needs_kvm = pytest.mark.skipif(not KVM_OK, reason=f"no usable guest_memfd: {KVM_WHY}")

P = 4096
RW, SHARED, PRIVATE = ["PROT_READ", "PROT_WRITE"], ["MAP_SHARED"], ["MAP_PRIVATE"]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_virtual_fds_are_lowest_free_from_3() -> None:
    with oracle.Kernel() as k:
        assert [k.memfd_create("a"), k.memfd_create("b"), k.memfd_create("c")] == [3, 4, 5]
        k.close(4)
        assert k.memfd_create("d") == 4
        assert k.fds == [3, 4, 5]


def test_initial_seals() -> None:
    with oracle.Kernel() as k:
        assert k.get_seals(k.memfd_create("plain")) == oracle.SEALS["F_SEAL_SEAL"]
        assert k.get_seals(k.memfd_create("s", ["MFD_ALLOW_SEALING"])) == 0


def test_kernel_error_carries_errno_name() -> None:
    with oracle.Kernel() as k:
        fd = k.memfd_create("m", ["MFD_ALLOW_SEALING"])
        k.ftruncate(fd, P)
        k.mmap(fd, 0, P, ["PROT_READ"], SHARED)
        with pytest.raises(oracle.KernelError) as info:
            k.add_seals(fd, ["F_SEAL_WRITE"])
        assert info.value.name == "EBUSY"
        assert info.value.errno == 16


def test_write_seal_blocked_by_shared_maps_only() -> None:
    with oracle.Kernel() as k:
        fd = k.memfd_create("m", ["MFD_ALLOW_SEALING"])
        k.ftruncate(fd, P)
        k.mmap(fd, 0, P, RW, PRIVATE)
        shared = k.mmap(fd, 0, P, ["PROT_READ"], SHARED)
        assert k.run("F_ADD_SEALS", {"fd": fd, "seals": ["F_SEAL_WRITE"]}) == (False, "EBUSY")
        k.munmap(shared)
        assert k.run("F_ADD_SEALS", {"fd": fd, "seals": ["F_SEAL_WRITE"]}) == (True, None)
        assert k.run("pwrite", {"fd": fd, "offset": 0, "data": b"x"}) == (False, "EPERM")


def test_names() -> None:
    with oracle.Kernel() as k:
        fd = k.memfd_create("m", ["MFD_ALLOW_SEALING"])
        with pytest.raises(ValueError, match=r"^F_SEAL_GUEST does not exist in this kernel$"):
            k.add_seals(fd, ["F_SEAL_GUEST"])
        with pytest.raises(ValueError):
            k.add_seals(fd, ["F_SEAL_WRTIE"])
        with pytest.raises(ValueError):
            k.memfd_create("m", ["MFD_NOPE"])
        with pytest.raises(ValueError):
            k.run("frobnicate", {})
        assert k.get_seals(fd) == 0


def test_bad_values_reach_the_kernel() -> None:
    with oracle.Kernel() as k:
        fd = k.memfd_create("m", ["MFD_ALLOW_SEALING"])
        assert k.run("ftruncate", {"fd": fd, "length": -1}) == (False, "EINVAL")
        assert k.run("ftruncate", {"fd": fd, "length": 2**63}) == (False, "EINVAL")  # wraps
        assert k.run("pread", {"fd": fd, "offset": -1, "count": 4}) == (False, "EINVAL")
        assert k.run("pread", {"fd": fd, "offset": 0, "count": -1}) == (False, "EFAULT")
        assert k.run("fallocate", {"fd": fd, "mode": [], "offset": 0, "len": 0}) == (
            False,
            "EINVAL",
        )
        assert k.run(
            "fallocate", {"fd": fd, "mode": ["FALLOC_FL_PUNCH_HOLE"], "offset": 0, "length": P}
        ) == (False, "EOPNOTSUPP")
        assert k.run(
            "mmap", {"fd": fd, "offset": 0, "length": -1, "prot": [], "flags": SHARED}
        ) == (False, "ENOMEM")


def test_unknown_fd_lets_the_kernel_order_errors() -> None:
    with oracle.Kernel() as k:
        assert k.run("pread", {"fd": 42, "offset": 0, "count": 4}) == (False, "EBADF")
        assert k.run("pread", {"fd": 42, "offset": -1, "count": 4}) == (False, "EINVAL")
        assert k.run("F_GET_SEALS", {"fd": 42}) == (False, "EBADF")
        assert k.run("close", {"fd": 42}) == (False, "EBADF")
        assert k.run("munmap", {"map_id": 1}) == (False, "EINVAL")


def test_read_write_and_sizes() -> None:
    with oracle.Kernel() as k:
        fd = k.memfd_create("m", ["MFD_ALLOW_SEALING"])
        assert k.pwrite(fd, 10, b"hello") == 5
        assert k.fstat_size(fd) == 15
        assert k.pread(fd, 8, 100) == b"\0\0hello"
        assert k.run("pwrite", {"fd": fd, "offset": 0, "count": 3}) == (True, 3)
        k.add_seals(fd, ["F_SEAL_GROW"])
        assert k.run(
            "fallocate", {"fd": fd, "mode": ["FALLOC_FL_KEEP_SIZE"], "offset": 0, "length": P}
        ) == (False, "EPERM")


def test_shutdown_releases_everything() -> None:
    before = open_fds()
    k = oracle.Kernel()
    fd = k.memfd_create("m", ["MFD_ALLOW_SEALING"])
    k.ftruncate(fd, P)
    k.mmap(fd, 0, P, RW, SHARED)
    if KVM_OK:
        k.gmem_create(P, [])
    assert open_fds() > before
    k.shutdown()
    assert open_fds() == before
    assert k.fds == [] and k.map_ids == []


@needs_kvm
def test_guest_memfd_answers() -> None:
    with oracle.Kernel() as k:
        assert k.run("KVM_CREATE_GUEST_MEMFD", {"size": 4095, "flags": []}) == (False, "EINVAL")
        fd = k.gmem_create(4 * P, [])
        assert fd == 3 and k.fstat_size(fd) == 4 * P
        assert k.run("pread", {"fd": fd, "offset": 0, "count": 1}) == (False, "ESPIPE")
        assert k.run("ftruncate", {"fd": fd, "length": 8 * P}) == (False, "EINVAL")
        assert k.run("F_GET_SEALS", {"fd": fd}) == (False, "EINVAL")
        assert k.run("mmap", {"fd": fd, "offset": 0, "length": P, "prot": RW, "flags": SHARED}) == (
            False,
            "ENODEV",
        )
        keep = ["FALLOC_FL_KEEP_SIZE"]
        assert k.run("fallocate", {"fd": fd, "mode": keep, "offset": 4 * P, "length": P}) == (
            False,
            "EINVAL",
        )
        k.fallocate(fd, keep, 0, 4 * P)
        mm = k.gmem_create(4 * P, ["GUEST_MEMFD_FLAG_MMAP"])
        assert k.mmap(mm, 0, 8 * P, RW, SHARED) == 1
        assert k.run(
            "mmap", {"fd": mm, "offset": 0, "length": P, "prot": RW, "flags": PRIVATE}
        ) == (False, "EINVAL")


def test_probe_table_runs_cleanly() -> None:
    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    import probe_kernel

    lines = list(probe_kernel.report())
    assert [line for line in lines if "ValueError(" in line] == []
    if KVM_OK:
        assert [line for line in lines if "skipped" in line] == []
    assert sum(line.startswith("-- ") for line in lines) == len(probe_kernel.PROBES)
