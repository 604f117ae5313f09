"""Op payloads stay on disk: once an op is stored, the in-memory log keeps a light copy
of it (a pwrite's data replaced by its length), and whatever needs the real arguments
(replays: rewind, previews, diff, compare, why; the trace export) reads them back from
the store. A session's log in memory then costs some bytes an op, whatever was written.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from app.store import StoredOp

# op name -> its payload argument (base64 text)
PAYLOADS = {"pwrite": "data_b64"}

# (sid, lo, hi) -> {seq: args text} of the payload ops lo < seq <= hi, from the store
Fetch = Callable[[int, int], dict[int, str]]


def light(op: StoredOp) -> StoredOp:
    """The op as memory keeps it once stored: its payload replaced by the payload's size
    in bytes (`data_bytes`); unchanged when it has none."""
    key = PAYLOADS.get(op.name)
    if key is None or op.elided:
        return op
    try:
        args = json.loads(op.args)
    except ValueError:
        return op
    value = args.pop(key, None) if isinstance(args, dict) else None
    if not isinstance(value, str):
        return op
    size = len(value) * 3 // 4 - value[-2:].count("=")
    args["data_bytes"] = size
    return op._replace(args=json.dumps(args, separators=(",", ":")), elided=True)


def restore(ops: list[StoredOp], first: int, fetch: Fetch | None) -> list[StoredOp]:
    """ops (ops[0] being op first + 1) with every light op's arguments read back."""
    if not any(o.elided for o in ops):
        return ops
    if fetch is None:
        raise RuntimeError("the log's payloads are in the store, and there is none")
    rows = fetch(first, first + len(ops))
    out = []
    for o in ops:
        if o.elided:
            args = rows.get(o.seq)
            if args is None:
                raise RuntimeError(f"op {o.seq} ({o.name}): its arguments are not in the store")
            o = o._replace(args=args, elided=False)
        out.append(o)
    return out
