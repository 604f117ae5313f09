"""Numbers typed into the forms: one parser for every field, so each says the same.

    4096  0x1000  1,048,576  1_048_576     plain, hex, with separators
    64K  64KiB  1.5M  2G  1T  1PiB  9E     binary suffixes (K = 1024 ... E = 2^60)
    16p  3 pages                           pages (4096 bytes; sizes only)
    -1                                     negative: the kernel answers (EINVAL)

A fraction is fine while the result is whole (1.5M, 0.5K); the range a field takes is
checked here with the field's name and the number in words, never by the browser.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

PAGE = 4096
INT64_MIN, INT64_MAX, UINT64_MAX = -(2**63), 2**63 - 1, 2**64 - 1
_NUM = re.compile(
    r"^\s*([+-]?)\s*(0x[0-9a-f_]+|[0-9][0-9,_]*(?:\.[0-9]*)?|\.[0-9]+)\s*([a-z]*)\s*$",
    re.IGNORECASE,
)
_BINARY = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40, "e": 2**60}
SIZE_HINT = "try 65536, 0x10000, 64K, 1.5M, 2G, 1T, 9E or 16p"
NUMBER_HINT = "try 4096, 0x1000, 1,048,576, 4K or 1.5M"


def _unit(suffix: str, sizes: bool) -> int | None:
    s = suffix.lower()
    if sizes and s in ("p", "page", "pages"):
        return PAGE
    if s in ("pb", "pib"):
        return 2**50
    if s in ("b",) and sizes:
        return 1
    if (s.endswith("ib") and len(s) == 3) or (s.endswith("b") and len(s) == 2 and sizes):
        s = s[0]
    return _BINARY.get(s) if s != "p" else None


def parse_number(raw: str, *, sizes: bool = False) -> int:
    """The integer `raw` names; ValueError (in words) if it names none. With `sizes`,
    bytes: a `p`/`pages` suffix counts pages and a `B` may end a unit (64KiB, 2MB)."""
    text = (raw or "").strip()
    m = _NUM.match(text)
    unit = _unit(m.group(3), sizes) if m else None
    if m is None or unit is None:
        what, hint = ("a size", SIZE_HINT) if sizes else ("a number", NUMBER_HINT)
        raise ValueError(f"{text[:40]!r} is not {what} ({hint})")
    sign, digits = -1 if m.group(1) == "-" else 1, m.group(2).replace(",", "").replace("_", "")
    if digits.lower().startswith("0x"):
        value = Decimal(int(digits, 16))
    else:
        try:
            value = Decimal(digits)
        except InvalidOperation as exc:
            raise ValueError(f"{text[:40]!r} is not a number ({NUMBER_HINT})") from exc
    total = value * unit
    if total != total.to_integral_value():
        of = " of bytes" if sizes else ""
        raise ValueError(f"{text[:40]!r} is {total:f}: not a whole number{of}")
    return sign * int(total)


def in_range(key: str, raw: str, value: int, lo: int, hi: int, what: str) -> int:
    """`value` if lo <= value <= hi, else a ValueError naming the field and the bound."""
    if value > hi:
        bound = "2^63 - 1" if hi == INT64_MAX else "2^64 - 1" if hi == UINT64_MAX else f"{hi:,}"
        raise ValueError(
            f"{key}: {raw.strip()[:40]} is {value:,}, more than {bound} ({hi:,}), "
            f"the largest {what}"
        )
    if value < lo:
        raise ValueError(f"{key}: {raw.strip()[:40]} is {value:,}, less than {lo:,}")
    return value
