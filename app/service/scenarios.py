"""Guided walkthroughs: each a trace with a note per step (POST its trace to replay it)."""

from __future__ import annotations

from typing import Any

from app.errors import NotFound
from app.models.sessions import Scenario, ScenarioList, ScenarioStep, ScenarioSummary, Trace

PUNCH = ["FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"]
SEAL = {"fd": 3, "cmd": "F_ADD_SEALS", "seals": ["F_SEAL_GUEST"]}


def _s(op: str, args: dict[str, Any], note: str, errno: str | None = None) -> dict[str, Any]:
    return {"op": op, "args": args, "note": note, "errno": errno}


def _guest_file(size: int, kind: str = "kvm") -> list[dict[str, Any]]:
    return [
        _s("memfd_create", {"name": "vm0", "flags": ["MFD_ALLOW_SEALING"]}, "an empty memfd"),
        _s("fcntl", SEAL, "F_SEAL_GUEST while it is empty"),
        _s("ftruncate", {"fd": 3, "length": size}, "give it a size (whole pages)"),
        _s("owner_create", {"name": "kvm0", "kind": kind}, f"a simulated {kind} owner"),
        _s("register_guest", {"fd": 3, "owner_id": "0"}, "memfd_register_guest"),
    ]


_SCENARIOS: list[dict[str, Any]] = [
    {
        "name": "guest-seal-needs-empty",
        "title": "F_SEAL_GUEST only on an empty memfd",
        "summary": "The RFC refuses the seal on a file with a size: EBUSY.",
        "profile": "rfc-v2",
        "steps": [
            _s("memfd_create", {"name": "vm0", "flags": ["MFD_ALLOW_SEALING"]}, "a memfd"),
            _s("ftruncate", {"fd": 3, "length": 8192}, "two pages long"),
            _s("fcntl", SEAL, "refused: the file is not empty", "EBUSY"),
            _s("ftruncate", {"fd": 3, "length": 0}, "back to empty"),
            _s("fcntl", SEAL, "now accepted"),
            _s("pread", {"fd": 3, "offset": 0, "count": 16}, "at the end: reads 0 bytes"),
        ],
    },
    {
        "name": "punch-invalidates-per-page",
        "title": "A punch calls invalidate_page_range once per page",
        "summary": "Four present pages punched: four callbacks, each with an inclusive end.",
        "profile": "rfc-v2",
        "steps": [
            *_guest_file(65536, "recorder"),
            _s(
                "fallocate",
                {"fd": 3, "mode": [], "offset": 0, "len": 65536},
                "allocate 16 pages: one fallocate callback, end exclusive",
            ),
            _s(
                "fallocate",
                {"fd": 3, "mode": PUNCH, "offset": 0, "len": 16384},
                "punch 4 pages: 4 invalidate_page_range callbacks",
            ),
        ],
    },
    {
        "name": "punch-waits-on-locked-page",
        "title": "A punch sleeps on a page held by get_lock_pfn",
        "summary": "The page is not freed under its holder: the punch waits for the unlock.",
        "profile": "rfc-v2",
        "steps": [
            *_guest_file(8192),
            _s("get_lock_pfn", {"fd": 3, "index": 0, "alloc": True}, "lock page 0 (pfn 0)"),
            _s(
                "fallocate",
                {"fd": 3, "mode": PUNCH, "offset": 0, "len": 4096},
                "the punch sleeps on the page lock: pending",
            ),
            _s("put_unlock_pfn", {"pfn": 0}, "the unlock wakes it: the page goes"),
        ],
    },
    {
        "name": "null-page-oops",
        "title": "get_lock_pfn without alloc on a hole",
        "summary": "The RFC's shmem_getpage returns no page and the code dereferences it.",
        "profile": "rfc-v2",
        "steps": [
            *_guest_file(8192),
            _s(
                "get_lock_pfn",
                {"fd": 3, "index": 1, "alloc": False},
                "a NULL-pointer oops",
                "EFAULT",
            ),
        ],
    },
    {
        "name": "kvm-fault-and-zap",
        "title": "A guest fault maps a page; a punch zaps it",
        "summary": "The owner's invalidate_page_range zaps the gfns of the punched pages.",
        "profile": "rfc-v2",
        "steps": [
            *_guest_file(65536),
            _s(
                "memslot_create",
                {"owner_id": "0", "fd": 3, "gfn": 256, "index": 0, "npages": 16},
                "gfns 256..271 -> file pages 0..15",
            ),
            _s("fault", {"owner_id": "0", "gfn": 256}, "the guest touches gfn 256"),
            _s("fault", {"owner_id": "0", "gfn": 257}, "and gfn 257"),
            _s(
                "fallocate",
                {"fd": 3, "mode": PUNCH, "offset": 0, "len": 4096},
                "punch page 0: gfn 256 is zapped",
            ),
        ],
    },
    {
        "name": "guest-memfd-basics",
        "title": "guest_memfd today (Linux 6.18)",
        "summary": "What KVM_CREATE_GUEST_MEMFD files answer to the usual syscalls.",
        "profile": "guest-memfd",
        "steps": [
            _s(
                "guest_memfd_create",
                {"size": 2097152, "flags": ["GUEST_MEMFD_FLAG_MMAP"]},
                "a 2 MiB guest_memfd that can be mmapped",
            ),
            _s("pread", {"fd": 3, "offset": 0, "count": 16}, "no read(2)", "ESPIPE"),
            _s(
                "fallocate",
                {"fd": 3, "mode": [], "offset": 0, "len": 4096},
                "mode 0 is refused",
                "EOPNOTSUPP",
            ),
            _s(
                "fallocate",
                {"fd": 3, "mode": ["FALLOC_FL_KEEP_SIZE"], "offset": 0, "len": 4096},
                "KEEP_SIZE allocates",
            ),
            _s(
                "mmap",
                {
                    "fd": 3,
                    "offset": 0,
                    "length": 4096,
                    "prot": ["PROT_READ"],
                    "flags": ["MAP_PRIVATE"],
                },
                "MAP_PRIVATE is refused",
                "EINVAL",
            ),
            _s(
                "mmap",
                {
                    "fd": 3,
                    "offset": 0,
                    "length": 4096,
                    "prot": ["PROT_READ"],
                    "flags": ["MAP_SHARED"],
                },
                "MAP_SHARED is accepted",
            ),
        ],
    },
]


def _scenario(d: dict[str, Any]) -> Scenario:
    steps = [ScenarioStep.model_validate(s) for s in d["steps"]]
    trace = Trace(
        profile=d["profile"],
        ops=[s.model_dump(include={"op", "args", "errno"}) for s in steps],  # type: ignore[misc]
    )
    return Scenario(
        **{k: d[k] for k in ("name", "title", "summary", "profile")}, steps=steps, trace=trace
    )


SCENARIOS: dict[str, Scenario] = {d["name"]: _scenario(d) for d in _SCENARIOS}


def list_all() -> ScenarioList:
    return ScenarioList(
        scenarios=[ScenarioSummary.model_validate(s.model_dump()) for s in SCENARIOS.values()]
    )


def get(name: str) -> Scenario:
    scenario = SCENARIOS.get(name)
    if scenario is None:
        raise NotFound(f"no scenario {name[:64]!r}", op="scenario")
    return scenario
