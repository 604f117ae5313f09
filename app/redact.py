"""Session ids out of the logs: a session's id is its only credential, so a log line
carries a short prefix of it (8 of its 32 characters), never the whole id."""

from __future__ import annotations

import re

KEEP = 8  # characters of a session id a log line keeps
# a path segment after /sessions/ or /s/ is a session id
_SID_IN_PATH = re.compile(r"(/(?:api/v1/sessions|s)/)([^/]+)")


def short(sid: str) -> str:
    """What a log line may say of session `sid`."""
    return sid[:KEEP]


def path(p: str) -> str:
    """`p` with any session id cut to its prefix and a "~" (e.g. /s/AbCdEfGh~/diff)."""
    return _SID_IN_PATH.sub(lambda m: m[1] + (m[2] if len(m[2]) <= KEEP else m[2][:KEEP] + "~"), p)
