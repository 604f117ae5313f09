"""A batch's answers built as JSON bytes straight from the engine's typed values.

A batch answers each op as it would answer alone; most of a batch op's time went into
reading the file back (``Machine.file``: names decoded, lists built) and validating the
answer model only to serialise it at once. For the ops here the batch takes the file's
row as the engine has it (``Machine.file_row``) and formats the answer's bytes itself.
What does not change from op to op (kind, name, seals, flags, owners) is built once per
batch through the same path as the single op (``file_out``: the File model, validated)
and serialised by the model's own serialisers, so the bytes are the single op's answer
(tests/api/test_batch_answers.py compares them); the rest are the engine's ints.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import TypeAdapter

from app.engine import Machine
from app.models.files import FallocateArgs
from app.service.convert import fd_arg, file_out

_STR_LIST = TypeAdapter(list[str])
_STR = TypeAdapter(str)

# (kind, name, seals, flags, owners) -> the bytes of those fields, one batch's worth
Memo = dict[tuple[int, bytes, int, int, int], tuple[bytes, bytes]]
# (machine, the op's validated args, the batch's memo) -> the answer's JSON
FastAnswer = Callable[[Machine, Any, Memo], bytes]
_MEMO_CAP = 256  # distinct files' fixed parts kept a batch (a batch has 10,000 ops at most)


def _fixed(m: Machine, fd: int) -> tuple[bytes, bytes]:
    """The fixed parts of fd's File answer: the model built and validated as for a
    single op, its fields serialised by the model's own serialisers."""
    f = file_out(m.file(fd))
    head = b'"kind":%s,"name":%s,' % (_STR.dump_json(f.kind), _STR.dump_json(f.name))
    lists = b'"seals":%s,"flags":%s,"owners":%s,' % (
        _STR_LIST.dump_json(f.seals),
        _STR_LIST.dump_json(f.flags),
        _STR_LIST.dump_json(f.owners),
    )
    return head, lists


def file_json(m: Machine, fd: int, memo: Memo, tail: bytes) -> bytes:
    """fd's File answer as JSON, `tail` (b'' or b',"field":value...') before its '}'."""
    row = m.file_row(fd)
    if row is None:  # not open: Machine.file raises its own error for it
        m.file(fd)
        raise RuntimeError(f"fd {fd} is open again")  # only if another thread opened it
    fd, kind, name, size, seals, flags, owners, nr_pages, mappings, writable, pending = row
    key = (kind, name, seals, flags, owners)
    parts = memo.get(key)
    if parts is None:
        parts = _fixed(m, fd)
        if len(memo) >= _MEMO_CAP:
            memo.clear()
        memo[key] = parts
    return (
        b'{"fd":%d,%s"size":%d,%s"nr_pages":%d,"mappings":%d,"seals_value":%d,'
        b'"writable_maps":%d,"waiters":%d%s}'
        % (fd, parts[0], size, parts[1], nr_pages, mappings, seals, writable, pending, tail)
    )


def fallocate(m: Machine, a: FallocateArgs, memo: Memo) -> bytes:
    """ops.fallocate's answer (FallocateAnswer) as JSON."""
    pending = m.fallocate(fd_arg(a.fd), a.mode, a.offset, a.len)
    seq = m.event_count
    tail = b',"pending":%s,"seq":%d' % (b"true" if pending else b"false", seq)
    return file_json(m, a.fd, memo, tail)


# op name -> its answer as bytes; the batch runs these instead of the op's handler
FAST: dict[str, FastAnswer] = {"fallocate": fallocate}
