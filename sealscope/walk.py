"""Playing a guided walkthrough step by step through its REST calls, checking that each
step ends with the errno it states, gives the answer it expects (`expect`: keys of the
answer, or `event.<field>` of its first event) and makes exactly the owner callbacks it
lists."""

from __future__ import annotations

from typing import Any

from sealscope.client import Client
from sealscope.models.scenarios import ScenarioStep


def check_step(step: ScenarioStep, status: int, answer: Any, events: list[Any]) -> list[str]:
    """What is wrong with a step's outcome (nothing: [])."""
    problems = []
    answer = answer if isinstance(answer, dict) else {}
    if not events:
        problems.append("the op made no event")
    if step.errno:
        got = answer.get("errno")
        if status not in (404, 409) or got != step.errno:
            problems.append(f"expected {step.errno}, got HTTP {status} {got or 'success'}")
    elif status >= 400:
        problems.append(f"expected success, got HTTP {status} {answer.get('errno')}")
    first = events[0].model_dump(mode="json") if events else {}
    for key, want in step.expect.items():
        if key.startswith("event."):
            got = first.get(key.removeprefix("event."))
        elif key not in answer:
            problems.append(f"the answer has no {key!r}")
            continue
        else:
            got = answer[key]
        if got != want:
            problems.append(f"{key}: expected {want!r}, got {got!r}")
    if step.callbacks is not None:
        want_cbs = [cb.model_dump() for cb in step.callbacks]
        got_cbs = [
            {"fn": cb.fn, "owner_id": cb.owner_id, "start": cb.start, "end": cb.end}
            for ev in events
            for cb in ev.callbacks
        ]
        if got_cbs != want_cbs:
            problems.append(f"callbacks: expected {want_cbs}, got {got_cbs}")
    return problems


def play(c: Client, name: str) -> dict[str, Any]:
    """Every step of walkthrough `name` in a new session; a report of each."""
    sc = c.scenario(name)
    s = c.start_scenario(name, steps=0)
    steps = []
    try:
        for i, step in enumerate(sc.steps, 1):
            before = s.detail().event_seq
            req = step.request
            r = c.request(req.method, req.path.replace("{sid}", s.id), req.body)
            answer = r.json() if r.content else None
            events = s.events(after=before).events
            problems = check_step(step, r.status_code, answer, events)
            steps.append(
                {
                    "step": i,
                    "op": step.op,
                    "note": step.note,
                    "ok": not problems,
                    "problems": problems,
                }
            )
    finally:
        s.delete()
    bad = [st["step"] for st in steps if not st["ok"]]
    return {"name": name, "ok": not bad, "first": bad[0] if bad else None, "steps": steps}
