"""The history screen: the guest story of app/service/history_story.py played in each
design on its own temporary machine, op by op, and where the designs part."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from app.engine import Machine
from app.engine._types import Config
from app.models.history import History, HistoryCell, HistoryChapter, HistoryDesign, HistoryOp
from app.registry import Registry
from app.service import room
from app.service.history_story import CHAPTERS, DESIGNS, WHY
from app.service.ops import parse
from app.service.replay import apply

PHYS = 4096  # frames of each design's machine (the story uses a few)
STORY = "bounce-buffer"
_KEYS = (
    "exit", "backing", "fd", "index", "value", "signal", "nr_pages", "data_b64", "deleted", "pin_id"
)  # fmt: skip


def _words(result: Any) -> str:
    if result is None:
        return "ok"
    d = result.model_dump() if isinstance(result, BaseModel) else getattr(result, "_asdict", dict)()
    if not isinstance(d, dict):
        return "ok"
    out = []
    for k in _KEYS:
        v = d.get(k)
        if k == "exit" and isinstance(v, dict):
            out.append(str(v.get("type") or v.get("reason")))
        elif v is not None and k != "exit":
            out.append(f"{k} {v}")
    return ", ".join(out) or "ok"


def _errno(exc: Exception) -> str:
    return str(getattr(exc, "name", None) or getattr(exc, "errno_name", None) or "EINVAL")


def _play(design: dict[str, Any]) -> dict[str, list[HistoryOp]] | None:
    story = design["story"]
    if story is None:
        return None
    try:
        config = Config(
            profile=design["profile"], phys_pages=PHYS, variants=frozenset(design["variants"])
        )
    except ValueError:
        return None  # a variant this build does not have
    m = Machine(config)
    out: dict[str, list[HistoryOp]] = {}
    for key, steps in story().items():
        ops = []
        for s in steps:
            spec, args = parse(s["op"], s["args"])
            res = apply(m, spec, args)
            err = None if res.error is None else _errno(res.error)
            why = getattr(res.error, "message", None) or str(res.error)
            words = _words(res.result) if err is None else why[:160]
            ops.append(
                HistoryOp(op=s["op"], args=s["args"], note=s["note"], errno=err, answer=words)
            )
        out[key] = ops
    return out


def _sig(ops: list[HistoryOp]) -> list[tuple[str, str, str | None, str]]:
    return [(o.op, json.dumps(o.args, sort_keys=True), o.errno, o.answer) for o in ops]


def build() -> History:
    played = [_play(d) for d in DESIGNS]
    designs = [
        HistoryDesign(
            key=d["key"],
            title=d["title"],
            when=d["when"],
            profile=d["profile"],
            variants=d["variants"],
            available=p is not None,
            why=WHY.get(d["key"]),
        )
        for d, p in zip(DESIGNS, played, strict=True)
    ]
    chapters = []
    for key, title in CHAPTERS:
        cells, prev = [], None
        for d, p in zip(DESIGNS, played, strict=True):
            if p is None:
                cells.append(HistoryCell(design=d["key"], ops=[], parts=False, note="reserved"))
                continue
            ops = p[key]
            note = "" if ops else "nothing to do: the memory is shared in place"
            parts = prev is not None and _sig(ops) != _sig(prev)
            cells.append(HistoryCell(design=d["key"], ops=ops, parts=parts, note=note))
            prev = ops
        sigs = {str(_sig(c.ops)) for c in cells if c.note != "reserved"}
        chapters.append(HistoryChapter(key=key, title=title, cells=cells, parts=len(sigs) > 1))
    return History(story=STORY, designs=designs, chapters=chapters)


async def history(reg: Registry) -> History:
    """Each design's story on its own temporary machine (counted while they live)."""
    with room.machines(reg, len(DESIGNS), PHYS, "history"):
        return await reg.call(build)
