"""The guided walkthroughs: steps with narration, expected answers and REST calls."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, StrictInt

from app.models.common import Profile, Thp, examples
from app.models.sessions import Trace, TraceOp

_STEP = {
    "op": "fallocate",
    "args": {"fd": 3, "mode": ["FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"], "offset": 0},
    "errno": None,
    "note": "punch page 0: the owner's invalidate_page_range runs once for it",
    "rule": "removing pages: one invalidate_page_range per page, end inclusive",
    "look": "the timeline's arrow [0, 0]; page 0 turns into a hole",
    "expect": {"pending": False, "nr_pages": 15},
    "callbacks": [
        {"fn": "invalidate_page_range", "owner_id": "0", "start": 0, "end": 0},
    ],
    "request": {
        "method": "POST",
        "path": "/api/v1/sessions/{sid}/files/3/fallocate",
        "body": {"mode": ["FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"], "offset": 0},
    },
}


class ExpectedCallback(BaseModel):
    """An owner callback the step's op must make (in this order)."""

    fn: str
    owner_id: str
    start: int
    end: int = Field(description="inclusive for invalidate_page_range, else exclusive")
    model_config = examples({"fn": "invalidate_page_range", "owner_id": "0", "start": 3, "end": 3})


class StepRequest(BaseModel):
    """The same step as a REST call; `{sid}` stands for the session id."""

    method: Literal["POST", "DELETE"]
    path: str
    body: dict[str, Any] | None = None
    model_config = examples(
        {"method": "POST", "path": "/api/v1/sessions/{sid}/memfds", "body": {"name": "vm0"}},
        {"method": "DELETE", "path": "/api/v1/sessions/{sid}/mappings/1", "body": None},
    )


class ScenarioStep(TraceOp):
    """One op of a walkthrough. `errno` is what it must end with (null: success); `expect`
    is part of the answer it must give (keys of the REST answer's JSON), `callbacks` the
    owner callbacks it must make, every one (null: not checked)."""

    note: str = Field(default="", description="what happens")
    rule: str = Field(
        default="", description="which rule of the patch (or of today's kernel) applies"
    )
    look: str = Field(default="", description="what to look at on screen")
    twin: str = Field(default="", description="what the other end of the story did at this point")
    expect: dict[str, Any] = Field(default_factory=dict)
    callbacks: list[ExpectedCallback] | None = None
    request: StepRequest
    model_config = examples(_STEP)


class ScenarioSummary(BaseModel):
    name: str
    title: str
    summary: str
    profile: Profile
    thp: Thp = "never"
    phys_pages: int = 262144
    variants: list[str] = Field(default_factory=list)
    topics: list[str] = Field(default_factory=list, description="what the review asked about")
    twin: str | None = Field(
        default=None, description="a walkthrough to read side by side with this one"
    )
    steps_count: int = 0
    model_config = examples(
        {
            "name": "guest-seal-refused",
            "title": "F_SEAL_GUEST refused: a file with a size, a mapped file",
            "summary": "The seal only goes on an empty, unmapped memfd: EBUSY otherwise.",
            "profile": "rfc-v2",
            "thp": "never",
            "phys_pages": 262144,
            "variants": [],
            "topics": ["seal"],
            "twin": None,
            "steps_count": 8,
        }
    )


class ScenarioList(BaseModel):
    scenarios: list[ScenarioSummary]
    model_config = examples({"scenarios": []})


class Scenario(ScenarioSummary):
    steps: list[ScenarioStep]
    trace: Trace = Field(description="the steps as a trace: POST it to /api/v1/sessions")
    model_config = examples(
        {
            "name": "guest-seal-refused",
            "title": "F_SEAL_GUEST refused: a file with a size, a mapped file",
            "summary": "The seal only goes on an empty, unmapped memfd: EBUSY otherwise.",
            "profile": "rfc-v2",
            "steps_count": 1,
            "steps": [_STEP],
            "trace": {"profile": "rfc-v2", "ops": [{"op": "memfd_create", "args": {}}]},
        }
    )


class ScenarioStart(BaseModel):
    """A new session with the walkthrough's settings and its first `steps` steps played
    (0: none, ready for step 1; null: all of them)."""

    steps: StrictInt | None = Field(default=0, ge=0, le=1000)
    model_config = examples({"steps": 0}, {"steps": None})
