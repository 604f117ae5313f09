"""schemathesis over the KVM routes of the live schema (test_live.py's run covers every
route, but its session has no VM): generated bodies, values and ids against a session
with a VM, a vCPU, a bound guest_memfd and a VMM mapping. No 5xx, answers that fit the
schema, an errno name in every error, 422 only with EINVAL."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.helpers import Server
from tests.budget import examples

API = "/api/v1/sessions"
MiB = 1 << 20


def _setup(c: httpx.Client) -> str:
    sid = str(c.post(API, json={"profile": "guest-memfd"}).json()["id"])
    b = f"{API}/{sid}"
    assert c.post(f"{b}/vms", json={"type": "KVM_X86_SW_PROTECTED_VM"}).status_code == 201
    assert c.post(f"{b}/vms/0/vcpus", json={}).status_code == 201
    assert c.post(f"{b}/vms/0/guest_memfd", json={"size": 2 * MiB}).json()["fd"] == 3
    assert c.post(f"{b}/memfds", json={"name": "s"}).json()["fd"] == 4
    assert c.post(f"{b}/files/4/ftruncate", json={"length": 2 * MiB}).is_success
    body = {"offset": 0, "length": 2 * MiB, "prot": ["PROT_READ"], "flags": ["MAP_SHARED"]}
    mp = c.post(f"{b}/files/4/mmap", json=body).json()
    region = {
        "slot": 0,
        "flags": ["KVM_MEM_GUEST_MEMFD"],
        "memory_size": 2 * MiB,
        "userspace_addr": mp["addr"],
        "guest_memfd": 3,
    }
    assert c.post(f"{b}/vms/0/memory_regions", json=region).status_code == 200
    return sid


def _is_kvm(path: str) -> bool:
    return "/vms" in path or path.endswith("/mappings/{map_id}/access")


@pytest.mark.slow
def test_schemathesis_kvm_routes(server: Server) -> None:
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, Phase, given, settings

    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    with httpx.Client(base_url=server.url) as c:
        sid = _setup(c)
    live = {"vm_id": "0", "n": 0, "map_id": 1}
    checks = [
        schemathesis.checks.not_a_server_error,
        schemathesis.specs.openapi.checks.status_code_conformance,
        schemathesis.specs.openapi.checks.content_type_conformance,
        schemathesis.specs.openapi.checks.response_schema_conformance,
    ]
    failures: list[str] = []
    codes: dict[int, int] = {}
    ops = [op.ok() for op in schema.get_all_operations() if _is_kvm(op.ok().path)]
    paths = {op.path for op in ops}
    assert {
        "/api/v1/sessions/{sid}/vms",
        "/api/v1/sessions/{sid}/vms/{vm_id}/memory_regions",
        "/api/v1/sessions/{sid}/vms/{vm_id}/memory_attributes",
        "/api/v1/sessions/{sid}/vms/{vm_id}/guest_memfd",
        "/api/v1/sessions/{sid}/vms/{vm_id}/vcpus/{n}/access",
        "/api/v1/sessions/{sid}/vms/{vm_id}/vcpus/{n}/pre_fault_memory",
        "/api/v1/sessions/{sid}/mappings/{map_id}/access",
    } <= paths, paths
    for op in ops:

        @settings(
            max_examples=examples(40),
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=op.as_strategy())
        def run(case: Any) -> None:
            params = case.path_parameters or {}
            luck = hash(str(case.body)) % 8
            if case.method == "DELETE":  # close(vm_fd) of the live VM would end the rest's
                luck = 0  # 409s (its ioctls turn 404 EBADF): random ids only (test_kvm_close)
            if "sid" in params and luck:  # most cases reach the live session and its VM
                params["sid"] = sid
                if luck > 1:
                    params.update({k: v for k, v in live.items() if k in params})
            response = case.call(base_url=server.url, timeout=10)
            codes[response.status_code] = codes.get(response.status_code, 0) + 1
            where = f"{case.method} {case.formatted_path} {str(case.body)[:200]}"
            for check in checks:
                try:
                    case.validate_response(response, checks=[check])
                except Exception as exc:  # collect, report all at the end
                    failures.append(f"{where}: {exc}"[:600])
            if response.status_code >= 400:
                try:
                    body = response.json()
                except ValueError:
                    body = None
                errno = body.get("errno") if isinstance(body, dict) else None
                if not isinstance(errno, str) or not isinstance(body.get("errno_value"), int):
                    failures.append(f"{where}: {response.status_code} without errno")
                elif response.status_code == 422 and errno != "EINVAL":
                    failures.append(f"{where}: 422 with {errno}")

        run()
    assert {200, 201, 404, 409, 422} <= set(codes), codes
    assert failures == []
    with httpx.Client(base_url=server.url) as c:  # the service and the session go on
        assert c.get(f"{API}/{sid}/vms/0").status_code == 200
