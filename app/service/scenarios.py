"""Guided walkthroughs: each a trace with narration per step, the answer each step
expects, and the same step as a REST call (contents: app/service/walks/)."""

from __future__ import annotations

from typing import Any

from app.errors import NotFound
from app.models.scenarios import (
    Scenario,
    ScenarioList,
    ScenarioStep,
    ScenarioSummary,
    StepRequest,
)
from app.models.sessions import Session as SessionOut
from app.models.sessions import SessionCreate, Trace
from app.registry import Registry
from app.service import sessions
from app.service.walks import ALL

API = "/api/v1/sessions/{sid}"
# op -> (method, path under the session, the args that go into the path)
_ROUTES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "memfd_create": ("POST", "/memfds", ()),
    "guest_memfd_create": ("POST", "/guest_memfds", ()),
    "munmap": ("DELETE", "/mappings/{map_id}", ("map_id",)),
    "owner_create": ("POST", "/owners", ()),
    "put_unlock_pfn": ("POST", "/put_unlock_pfn", ()),
    "migrate_page": ("POST", "/migrate_page", ()),
    "memslot_create": ("POST", "/owners/{owner_id}/memslots", ("owner_id",)),
    "fault": ("POST", "/owners/{owner_id}/fault", ("owner_id",)),
    # the KVM side (API.md "The KVM side")
    "vm_create": ("POST", "/vms", ()),
    "vm_guest_memfd": ("POST", "/vms/{vm_id}/guest_memfd", ("vm_id",)),
    "set_user_memory_region": ("POST", "/vms/{vm_id}/memory_regions", ("vm_id",)),
    "set_memory_attributes": ("POST", "/vms/{vm_id}/memory_attributes", ("vm_id",)),
    "vcpu_create": ("POST", "/vms/{vm_id}/vcpus", ("vm_id",)),
    "vcpu_access": ("POST", "/vms/{vm_id}/vcpus/{vcpu_id}/access", ("vm_id", "vcpu_id")),
    "mapping_access": ("POST", "/mappings/{map_id}/access", ("map_id",)),
    "pre_fault_memory": (
        "POST",
        "/vms/{vm_id}/vcpus/{vcpu_id}/pre_fault_memory",
        ("vm_id", "vcpu_id"),
    ),
    # confidential VMs, memory failure, pins and the in-place proposal (app/api/kvm_coco.py)
    "launch_update": ("POST", "/vms/{vm_id}/launch/update", ("vm_id",)),
    "launch_finish": ("POST", "/vms/{vm_id}/launch/finish", ("vm_id",)),
    "memory_failure": ("POST", "/memory_failure", ()),
    "set_memory_attributes2": ("POST", "/files/{fd}/memory_attributes2", ("fd",)),
    "mapping_pin": ("POST", "/mappings/{map_id}/pin", ("map_id",)),
    "mapping_unpin": ("DELETE", "/pins/{pin_id}", ("pin_id",)),
    "vm_close": ("DELETE", "/vms/{vm_id}", ("vm_id",)),
}
_FILE_OPS = (
    "ftruncate",
    "fcntl",
    "fallocate",
    "pread",
    "pwrite",
    "mmap",
    "close",
    "register_guest",
    "unregister_guest",
    "get_lock_pfn",
    "invalidate",
)
for _op in _FILE_OPS:
    _ROUTES[_op] = ("POST", "/files/{fd}/" + _op, ("fd",))
_NO_BODY = ("munmap", "close", "vm_close", "mapping_unpin")


def rest_request(op: str, args: dict[str, Any]) -> StepRequest:
    """The REST call that makes op `op` with `args` (the path keeps "{sid}")."""
    method, path, in_path = _ROUTES[op]
    path = path.format(**{k: args[k] for k in in_path})
    body = None if op in _NO_BODY else {k: v for k, v in args.items() if k not in in_path}
    return StepRequest(method=method, path=API + path, body=body)  # type: ignore[arg-type]


def _scenario(d: dict[str, Any]) -> Scenario:
    steps = [
        ScenarioStep.model_validate(s | {"request": rest_request(s["op"], s["args"])})
        for s in d["steps"]
    ]
    settings = {
        "profile": d["profile"],
        "thp": d.get("thp", "never"),
        "phys_pages": d.get("phys_pages", 262144),
        "variants": d.get("variants", []),
    }
    trace = Trace.model_validate(
        settings | {"ops": [s.model_dump(include={"op", "args", "errno"}) for s in steps]}
    )
    extra = {k: d[k] for k in ("topics", "twin") if k in d}
    return Scenario(
        **{k: d[k] for k in ("name", "title", "summary")},
        **settings,
        **extra,
        steps_count=len(steps),
        steps=steps,
        trace=trace,
    )


SCENARIOS: dict[str, Scenario] = {d["name"]: _scenario(d) for d in ALL}


def list_all() -> ScenarioList:
    fields = set(ScenarioSummary.model_fields)
    return ScenarioList(
        scenarios=[
            ScenarioSummary.model_validate(s.model_dump(include=fields)) for s in SCENARIOS.values()
        ]
    )


def get(name: str) -> Scenario:
    scenario = SCENARIOS.get(name)
    if scenario is None:
        raise NotFound(f"no scenario {name[:64]!r}", op="scenario")
    return scenario


async def start(reg: Registry, name: str, steps: int | None) -> SessionOut:
    """A new session with the walkthrough's settings and its first `steps` steps played
    (None: all); each played step must end as the walkthrough says."""
    trace = get(name).trace
    ops = trace.ops if steps is None else trace.ops[:steps]
    body = SessionCreate(trace=trace.model_copy(update={"ops": ops}))
    return await sessions.create(reg, body)
