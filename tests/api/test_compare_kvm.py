"""POST /api/v1/sessions/{sid}/compare on the KVM ops: a session's VMs, memslots and
accesses against this machine's real KVM, op by op; what this machine cannot answer
(KVM.md, its last section) marked intended with the reason. Skipped, saying why, where
/dev/kvm is missing."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings

from app import oracle
from tests.api.helpers import Server
from tests.api.test_compare import compare, op
from tests.budget import DERANDOMIZE, examples
from tests.engine.kvm_logs import Step, log_strategy, setup

KVM_OK, KVM_WHY = oracle.kvm_available()
pytestmark = pytest.mark.skipif(not KVM_OK, reason=f"no usable /dev/kvm here: {KVM_WHY}")
P, GPA = 4096, 1 << 30
GMEM = ["KVM_MEM_GUEST_MEMFD"]
RW, SHARED = ["PROT_READ", "PROT_WRITE"], ["MAP_SHARED"]
TOP = 0x7F00_0000_0000


def region(vm: str = "0", **kw: Any) -> dict[str, Any]:
    args = {"vm_id": vm, "slot": 1, "flags": GMEM, "guest_phys_addr": GPA, "memory_size": 4 * P}
    args |= {"userspace_addr": 0, "guest_memfd_offset": 0, "guest_memfd": 3}
    return op("set_user_memory_region", **(args | kw))


def access(vm: str = "0", gpa: int = GPA, **kw: Any) -> dict[str, Any]:
    return op("vcpu_access", vm_id=vm, vcpu_id=0, gpa=gpa, **({"write": False, "value": 0} | kw))


@pytest.mark.anyio
async def test_a_default_vm_agrees_with_the_real_kvm(client: httpx.AsyncClient) -> None:
    """A guest_memfd-only slot, a real guest writing into it, the VMM reading it back,
    a gpa outside every slot (MMIO), the binding rules' errnos: all agree."""
    flags = ["GUEST_MEMFD_FLAG_MMAP", "GUEST_MEMFD_FLAG_INIT_SHARED"]
    ops = [
        op("vm_create", name="vm0", type="KVM_X86_DEFAULT_VM"),
        op("vcpu_create", vm_id="0"),
        op("vm_guest_memfd", vm_id="0", size=16 * P, flags=flags),
        op("mmap", fd=3, offset=0, length=20 * P, prot=RW, flags=SHARED),
        region(userspace_addr=TOP - 20 * P),
        access(gpa=GPA + 5, write=True, value=0x5C),
        op("mapping_access", map_id=1, offset=5, write=False, value=0),
        op("mapping_access", map_id=1, offset=P, write=True, value=0x77),
        access(gpa=GPA + P),
        access(gpa=3 * GPA),
        region(slot=2, guest_memfd_offset=1),
        region(slot=2, guest_phys_addr=GPA + P),
        region(slot=2, guest_phys_addr=2 * GPA, guest_memfd_offset=2 * P),
        region(slot=2, guest_phys_addr=2 * GPA, guest_memfd=77),
        op(
            "fallocate", fd=3, mode=["FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"], offset=0, len=P
        ),
        access(gpa=GPA + 5),
        op("mapping_access", map_id=1, offset=16 * P, write=False, value=0),
    ]
    for i, e in {10: "EINVAL", 11: "EEXIST", 12: "EINVAL", 13: "EBADF"}.items():
        ops[i]["errno"] = e
    out = await compare(client, ops)
    rows = out["rows"]
    assert out["kvm_available"]
    assert out["unexpected"] == 0, [r for r in rows if r["status"] != "agree"]
    assert [r["status"] for r in rows] == ["agree"] * len(ops)
    assert rows[5]["kernel"]["value"] == {"exit": None, "value": 0x5C}
    assert rows[6]["kernel"]["value"] == {"signal": None, "value": 0x5C}
    assert rows[8]["engine"]["value"]["value"] == 0x77
    mmio = {"reason": "KVM_EXIT_MMIO", "gpa": 3 * GPA, "size": 1}
    assert rows[9]["kernel"]["value"]["exit"] == mmio == rows[9]["engine"]["value"]["exit"]
    assert rows[15]["kernel"]["value"]["value"] == 0  # punched: zeros
    assert rows[16]["kernel"]["value"]["signal"] == "SIGBUS"  # past the end of the file


@pytest.mark.anyio
async def test_what_this_machine_cannot_answer_is_intended(client: httpx.AsyncClient) -> None:
    """VM types 1-5, KVM_SET_MEMORY_ATTRIBUTES, a guest's own private view: intended with
    the reason; what then happens on a VM only the engine has follows from it."""
    ops = [
        op("vm_create", name="sw", type="KVM_X86_SW_PROTECTED_VM"),
        op("vm_guest_memfd", vm_id="0", size=4 * P, flags=[]),
        op("vm_create", name="snp", type="KVM_X86_SNP_VM"),
        op("vcpu_create", vm_id="1"),
        op("vm_create", name="plain", type="KVM_X86_DEFAULT_VM"),
        op("set_memory_attributes", vm_id="2", address=0, size=P, attributes=[], flags=0),
        op("vcpu_create", vm_id="2"),
        access(vm="2", gpa=0x10000, private=True),
        access(vm="2", gpa=0x10000),
        op("pre_fault_memory", vm_id="2", vcpu_id=0, gpa=0x10000, size=P, flags=0),
        op("pre_fault_memory", vm_id="2", vcpu_id=0, gpa=1, size=P, flags=0),
    ]
    ops[10]["errno"] = "EINVAL"
    out = await compare(client, ops)
    rows = out["rows"]
    assert out["unexpected"] == 0, rows
    st = [r["status"] for r in rows]
    assert st == [
        "intended",
        "follows",
        "intended",
        "follows",
        "agree",
        "intended",
        "agree",
        "intended",
        "agree",
        "intended",
        "agree",
    ]
    assert (
        "VM types 1-5 are EINVAL here" in rows[0]["reason"]
        and rows[0]["kernel"]["errno"] == "EINVAL"
    )
    assert "engine only (op #1" in rows[1]["reason"]
    assert "KVM_SET_MEMORY_ATTRIBUTES is ENOTTY here" in rows[5]["reason"]
    assert "SNP or TDX" in rows[7]["reason"]
    assert rows[8]["kernel"]["value"]["exit"]["reason"] == "KVM_EXIT_MMIO"
    assert (
        "KVM_PRE_FAULT_MEMORY" in rows[9]["reason"] and rows[9]["kernel"]["errno"] == "EOPNOTSUPP"
    )
    assert rows[10]["kernel"]["errno"] == "EINVAL"  # the range is checked first on both


@pytest.mark.anyio
async def test_a_host_fault_under_a_plain_slot_is_efault_on_both(client: httpx.AsyncClient) -> None:
    """Measured here: KVM_RUN fails EFAULT without an exit when userspace_addr is not
    mapped; the engine answers the same."""
    ops = [
        op("vm_create", name="vm0", type="KVM_X86_DEFAULT_VM"),
        op("vcpu_create", vm_id="0"),
        region(flags=[], userspace_addr=0x10000),
        access(),
    ]
    ops[3]["errno"] = "EFAULT"
    rows = (await compare(client, ops))["rows"]
    assert [r["status"] for r in rows] == ["agree"] * 4, rows
    assert rows[3]["kernel"]["errno"] == "EFAULT"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Any:
    s = Server(tmp_path_factory.mktemp("compare-kvm") / "data").start()
    yield s
    s.kill()


def as_trace_ops(log: list[Step]) -> list[dict[str, Any]]:
    """A kvm_logs log as trace ops with the engine's numbers: vm "0", vcpu 0, fds 3-4,
    map ids 1-3 at the contract's addresses (setup makes them in that order)."""
    names = {"$vm": "0", "$cpu": 0, "$mfd": 3, "$g": 4, "$m": 1, "$gm": 2, "$pm": 3}
    addrs = {"@m": TOP - 16 * P, "@gm": TOP - 36 * P, "@pm": TOP - 52 * P}
    out, unmapped = [], set()
    for _, name, raw in log:
        if name == "nop":
            continue
        if name == "mapping_access" and raw["map_id"] in unmapped:
            continue  # the service refuses an unknown mapping (404): no op to log
        if name == "munmap":
            unmapped.add(raw["map_id"])
        args: dict[str, Any] = {}
        for k, v in raw.items():
            if isinstance(v, tuple):
                v = addrs[v[0]] + v[1]
            args[k] = names.get(v, v) if isinstance(v, str) else v
        if name == "fallocate":
            args["len"] = args.pop("length")
        if name == "pwrite":
            args["data_b64"] = base64.b64encode(args.pop("data")).decode()
        out.append({"op": name, "args": args})
    return out


@settings(
    max_examples=examples(8),
    deadline=None,
    derandomize=DERANDOMIZE,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(log=log_strategy(True))
def test_random_kvm_logs_agree_op_by_op(live: Server, log: list[Step]) -> None:
    """Random KVM logs through a live server: nothing diverges without a reason."""
    ops = as_trace_ops([*setup(["GUEST_MEMFD_FLAG_MMAP", "GUEST_MEMFD_FLAG_INIT_SHARED"]), *log])
    with httpx.Client(base_url=live.url, timeout=60) as c:
        trace = {"profile": "guest-memfd", "phys_pages": 16384, "ops": ops}
        r = c.post("/api/v1/sessions", json={"trace": trace})
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        r = c.post(f"/api/v1/sessions/{sid}/compare", json={})
        assert r.status_code == 200, r.text
        out = r.json()
        c.delete(f"/api/v1/sessions/{sid}")
    assert out["unexpected"] == 0, [row for row in out["rows"] if row["status"] == "diverge"]


@pytest.mark.anyio
async def test_an_rfc_session_compares_what_linux_has(client: httpx.AsyncClient) -> None:
    """rfc-v2: the VM and its vCPU are asked; the fd-based memslot is the RFC's
    (intended), and the guest's accesses on that VM follow from it."""
    ops = [
        op("memfd_create", name="shared", flags=["MFD_ALLOW_SEALING"]),
        op("ftruncate", fd=3, length=16 * P),
        op("vm_create", name="vm0", type="KVM_X86_DEFAULT_VM"),
        op("vcpu_create", vm_id="0"),
        op(
            "set_user_memory_region",
            vm_id="0",
            slot=1,
            flags=["KVM_MEM_FD"],
            guest_phys_addr=GPA,
            memory_size=4 * P,
            userspace_addr=0,
            fd=3,
            private_fd=-1,
        ),
        access(gpa=GPA + 1, write=True, value=1),
        access(gpa=GPA + 1, private=True),
    ]
    rows = (await compare(client, ops, profile="rfc-v2"))["rows"]
    assert [r["status"] for r in rows] == [
        "agree",
        "agree",
        "agree",
        "agree",
        "intended",
        "follows",
        "intended",
    ], rows
    assert "never merged" in rows[4]["reason"] and "RFC's (op #5)" in rows[5]["reason"]
    assert "private_fd" in rows[6]["reason"]


@pytest.mark.anyio
async def test_confidential_ops_and_proposals_are_intended(client: httpx.AsyncClient) -> None:
    """SNP populate and finish, a memory failure and the in-place conversion proposal's
    KVM_SET_MEMORY_ATTRIBUTES2 are never asked of this machine: intended, each with why."""
    ops = [
        op("vm_create", name="snp", type="KVM_X86_SNP_VM"),
        op("vm_guest_memfd", vm_id="0", size=4 * P, flags=[]),
        region(slot=0, guest_phys_addr=0, memory_size=4 * P),
        op(
            "set_memory_attributes",
            vm_id="0",
            address=0,
            size=P,
            attributes=["KVM_MEMORY_ATTRIBUTE_PRIVATE"],
            flags=0,
        ),
        op("launch_update", vm_id="0", gpa=0, data_b64=base64.b64encode(b"boot").decode()),
        op("launch_finish", vm_id="0"),
        op("memory_failure", pfn=0),
        op("set_memory_attributes2", fd=3, offset=P, size=P, attributes=[], flags=[]),
    ]
    trace = {"profile": "guest-memfd", "phys_pages": 16384, "ops": ops}
    trace["variants"] = ["inplace_conversion"]
    r = await client.post("/api/v1/sessions", json={"trace": trace})
    assert r.status_code == 201, r.text
    r = await client.post(f"/api/v1/sessions/{r.json()['id']}/compare", json={})
    assert r.status_code == 200, r.text
    rows = r.json()["rows"]
    assert r.json()["unexpected"] == 0, rows
    reasons = {row["op"]: (row["status"], row["reason"]) for row in rows[4:]}
    assert reasons["launch_update"][0] == "intended" and "SNP or TDX" in reasons["launch_update"][1]
    assert reasons["launch_finish"][0] == "intended"
    assert reasons["memory_failure"] == ("intended", reasons["memory_failure"][1])
    assert "memory_failure()" in reasons["memory_failure"][1]
    status, why = reasons["set_memory_attributes2"]
    assert status == "intended" and "not merged" in why
