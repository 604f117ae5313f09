"""Rendering: one Jinja2 environment (autoescape always), whole pages or fragments.

A handler answers the fragment when the request comes from htmx (HX-Request) and
the whole page otherwise, including htmx's history restores; every answer sends
`Vary: HX-Request` and a `Link: rel="alternate"` to its JSON twin under /api/v1.
"""

from __future__ import annotations

import functools
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from app.pages.timeline import raw_words
from app.resources import static_dir, templates_dir

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)


def human_bytes(n: int) -> str:
    """4096 -> "4 KiB", 2**40 -> "1 TiB", 6144 -> "6 KiB", 5000 -> "4.9 KiB"."""
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
    i, v = 0, float(n)
    while v >= 1024 and i < len(units) - 1:
        v, i = v / 1024, i + 1
    if i == 0 or v == int(v):
        return f"{int(v)} {units[i]}"
    return f"{v:.1f} {units[i]}"


def expect_words(key: str, value: Any) -> str:
    """A walkthrough's expectation in words: "pending" / "not pending", "nr_pages=1,024",
    "event.raw=18,446,744,073,709,551,594 = 2^64 - 22"."""
    if isinstance(value, bool):
        return key if value else f"not {key}"
    if isinstance(value, int) and abs(value) >= 10000:
        return f"{key}={raw_words(value) if value >= 0 else f'{value:,}'}"
    return f"{key}={value}"


@functools.cache
def env() -> Environment:
    e = Environment(
        loader=FileSystemLoader(templates_dir()),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    e.filters["bytes"] = human_bytes
    e.filters["num"] = lambda n: f"{n:,}"
    e.globals["static"] = static_url
    e.globals["expect_words"] = expect_words
    return e


@functools.cache
def static_url(path: str) -> str:
    """/static/<path>?v=<mtime>: a changed file is fetched again."""
    try:
        version = int((static_dir() / path).stat().st_mtime)
    except OSError:
        version = 0
    return f"/static/{path}?v={version}"


def is_htmx(request: Request) -> bool:
    h = request.headers
    return h.get("hx-request") == "true" and h.get("hx-history-restore-request") != "true"


def render(name: str, **ctx: Any) -> str:
    return env().get_template(name).render(**ctx)


def respond(
    request: Request,
    page: str,
    fragment: str | None,
    ctx: dict[str, Any],
    *,
    alternate: str | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """The fragment for htmx, else the whole page; `alternate` is the JSON twin."""
    name = fragment if fragment and is_htmx(request) else page
    body = render(name, alternate=alternate, **ctx)
    out = {"Vary": "HX-Request", "Cache-Control": "no-store", "Content-Security-Policy": CSP}
    if alternate:
        out["Link"] = f'<{alternate}>; rel="alternate"; type="application/json"'
    out.update(headers or {})
    return HTMLResponse(body, status_code=status, headers=out)
