"""Cross-site request refusal: a state-changing request (POST, PUT, PATCH, DELETE) that a
browser says comes from another site is refused (403 EPERM) before any route runs, so a
page elsewhere cannot drive the forms (/new, /import, /walk/*, /s/{sid}/do/*, rewind,
delete) nor the API with a visitor's browser.

The check is the one Go's net/http CrossOriginProtection makes: `Sec-Fetch-Site` (every
current browser sends it) must be same-origin or none (typed in, a bookmark); without it,
an `Origin` header must name this host; a request with neither is not from a browser
(curl, scripts, tests) and passes.
"""

from __future__ import annotations

import errno as errno_mod
import json
from urllib.parse import urlsplit

from starlette.types import Send

SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


def refusal_of(site: bytes | None, origin: bytes | None, host: bytes | None) -> str | None:
    """Why a state-changing request with these headers (Sec-Fetch-Site, Origin, Host;
    None where absent) must be refused as cross-site, or None. app/middleware.py's Front
    calls it for every method not in SAFE."""
    if site is not None:
        if site in (b"same-origin", b"none"):
            return None
        return f"Sec-Fetch-Site is {site.decode('latin-1')[:40]!r}"
    if origin is None:
        return None
    host_name = (host or b"").decode("latin-1").lower()
    parts = urlsplit(origin.decode("latin-1").lower())
    if origin != b"null" and parts.netloc == host_name:
        return None
    return f"Origin {origin.decode('latin-1')[:80]!r} is not this host ({host_name[:80]!r})"


async def cross_site_refusal(send: Send, method: str, why: str) -> None:
    """The 403 EPERM answer."""
    body = json.dumps(
        {
            "errno": "EPERM",
            "errno_value": errno_mod.EPERM,
            "op": None,
            "message": f"a cross-site {method} is refused: {why}",
        }
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"vary", b"Origin, Sec-Fetch-Site"),
    ]
    await send({"type": "http.response.start", "status": 403, "headers": headers})
    await send({"type": "http.response.body", "body": body})
