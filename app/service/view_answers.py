"""The busiest views' answers as JSON bytes, formatted straight from the engine's runs.

GET .../pages is a read a client polls (bench/api.py: one request in eight): building a
PageExtent model a run (validated), then the Pages model, then serialising it cost ~2.5
us a run, most of the request for a window of many runs.  The bytes are those FastAPI
writes for the Pages model (compact JSON, the fields in the model's order);
tests/api/test_view_answers.py compares them with the model serialised.
"""

from __future__ import annotations

from itertools import combinations
from json.encoder import encode_basestring_ascii as _str

from app.engine import PageRun

_MAX_OWNERS = 8  # owner ids 0..7 (SS_MAX_OWNERS)
_BOOL = ("false", "true")
# every set of owner ids -> its JSON list of id strings
_OWNERS = {
    ids: "[" + ",".join(f'"{i}"' for i in ids) + "]"
    for n in range(_MAX_OWNERS + 1)
    for ids in combinations(range(_MAX_OWNERS), n)
}


def _num(v: int | None) -> str:
    return "null" if v is None else str(v)


def _extent(r: PageRun) -> str:
    owners = _OWNERS.get(tuple(r.mapped_by)) or "[" + ",".join(f'"{o}"' for o in r.mapped_by) + "]"
    return (
        f'{{"start":{r.start},"end":{r.end},"state":{_str(r.state)},'
        f'"pfn":{_num(r.pfn)},"order":{_num(r.order)},"locked":{_BOOL[r.locked]},'
        f'"refcount":{r.refcount},"dirty":{_BOOL[r.dirty]},"mapped_by":{owners},'
        f'"waiters":{r.waiters},"life":{"null" if r.life is None else _str(r.life)}}}'
    )


def pages_json(runs: list[PageRun], nxt: int | None) -> bytes:
    """The Pages answer of these runs and `next`, as FastAPI serialises the model."""
    body = ",".join([_extent(r) for r in runs])
    return f'{{"extents":[{body}],"next":{_num(nxt)}}}'.encode()
