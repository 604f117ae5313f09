"""Every walkthrough played to the end over REST, one step at a time, through each step's
own REST call: each must end with the errno it states, give the answer it expects and
make exactly the owner callbacks it lists."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.service.scenarios import SCENARIOS

pytestmark = pytest.mark.anyio
API = "/api/v1"
TOPICS = {
    "lifecycle": "rfc-lifecycle",
    "seal refused": "guest-seal-refused",
    "locked out": "userspace-locked-out",
    "huge pages": "huge-pages-split",
    "page lock": "punch-waits-on-locked-page",
    "hazards": "rfc-hazards",
    "pins": "seal-write-vs-pins",
    "guest_memfd": "guest-memfd-lifecycle",
    "multi_owner": "multi-owner-fanout",
    "mmap_shared": "mmap-shared",
    "migration": "guest-pages-stay-put",
}


def check_expect(step: dict[str, Any], answer: dict[str, Any], event: dict[str, Any]) -> None:
    for key, want in step["expect"].items():
        if key.startswith("event."):
            got = event.get(key.removeprefix("event."))
        else:
            assert key in answer, (step["note"], key, answer)
            got = answer[key]
        assert got == want, (step["note"], key, got, want)


async def play_step(c: httpx.AsyncClient, sid: str, step: dict[str, Any]) -> None:
    before = (await c.get(f"{API}/sessions/{sid}")).json()["event_seq"]
    req = step["request"]
    r = await c.request(req["method"], req["path"].replace("{sid}", sid), json=req["body"])
    events = (await c.get(f"{API}/sessions/{sid}/events", params={"after": before})).json()
    events = events["events"]
    assert events, (step["note"], "the op made no event")
    answer = r.json() if r.content else {}
    if step["errno"]:
        assert r.status_code in (404, 409), (step["note"], r.status_code, r.text)
        assert answer["errno"] == step["errno"], (step["note"], answer)
    else:
        assert r.status_code in (200, 201, 204), (step["note"], r.status_code, r.text)
    check_expect(step, answer, events[0])
    if step["callbacks"] is not None:
        got = [
            {k: cb[k] for k in ("fn", "owner_id", "start", "end")}
            for ev in events
            for cb in ev["callbacks"]
        ]
        assert got == step["callbacks"], (step["note"], got)


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_every_step_gives_what_it_says(client: httpx.AsyncClient, name: str) -> None:
    sc = (await client.get(f"{API}/scenarios/{name}")).json()
    r = await client.post(f"{API}/scenarios/{name}/sessions")
    assert r.status_code == 201, r.text
    session = r.json()
    for key in ("profile", "thp", "phys_pages"):
        assert session[key] == sc[key]
    assert sorted(session["variants"]) == sorted(sc["variants"])
    assert session["seq"] == 0
    for step in sc["steps"]:
        assert step["note"] and step["request"]["path"].startswith("/api/v1/sessions/{sid}/")
        await play_step(client, session["id"], step)
    # the same steps as a trace replay to the same log
    trace = (await client.get(f"{API}/sessions/{session['id']}/trace")).json()
    assert [(o["op"], o["errno"]) for o in trace["ops"]] == [
        (s["op"], s["errno"]) for s in sc["steps"]
    ]
    assert trace["variants"] == sc["variants"] and trace["thp"] == sc["thp"]


async def test_the_walkthroughs_cover_the_review(client: httpx.AsyncClient) -> None:
    listed = (await client.get(f"{API}/scenarios")).json()["scenarios"]
    names = {s["name"] for s in listed}
    assert len(names) >= 10 and set(TOPICS.values()) <= names
    by_name = {s["name"]: s for s in listed}
    assert by_name["huge-pages-split"]["thp"] == "within_size"
    assert by_name["multi-owner-fanout"]["variants"] == ["multi_owner"]
    assert by_name["mmap-shared"]["variants"] == ["mmap_shared"]
    assert by_name["guest-memfd-lifecycle"]["profile"] == "guest-memfd"
    assert by_name["guest-memfd-lifecycle"]["twin"] == "rfc-lifecycle"
    for s in listed:
        assert s["steps_count"] > 0


async def test_start_part_way_and_unknown(client: httpx.AsyncClient) -> None:
    r = await client.post(f"{API}/scenarios/huge-pages-split/sessions", json={"steps": 6})
    assert r.status_code == 201 and r.json()["seq"] == 6 and r.json()["thp"] == "within_size"
    r = await client.post(f"{API}/scenarios/mmap-shared/sessions", json={"steps": None})
    assert r.status_code == 201 and r.json()["seq"] == len(SCENARIOS["mmap-shared"].steps)
    r = await client.post(f"{API}/scenarios/nope/sessions")
    assert r.status_code == 404 and r.json()["errno"] == "ENOENT"
    r = await client.post(f"{API}/scenarios/mmap-shared/sessions", json={"steps": -1})
    assert r.status_code == 422
