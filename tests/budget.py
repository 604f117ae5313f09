"""How many examples the property tests draw.

CI runs them bounded and derandomized: the same examples every run, so its verdict does
not change from one run to the next. `SEALSCOPE_SOAK=K` (`make soak`) multiplies every
budget by K and draws fresh examples each run: a longer hunt for disagreements (one
such run found the last-close eviction bug fixed in engine_c/files.c).
"""

from __future__ import annotations

import os


def _soak() -> int:
    raw = os.environ.get("SEALSCOPE_SOAK", "").strip()
    try:
        return max(0, int(raw)) if raw else 0
    except ValueError:
        raise ValueError(f"SEALSCOPE_SOAK must be a whole number, got {raw!r}") from None


SOAK = _soak()
DERANDOMIZE = SOAK == 0  # fresh examples when soaking


def examples(n: int) -> int:
    """The example budget `n` of a property, times the soak factor when soaking."""
    return n * SOAK if SOAK else n
