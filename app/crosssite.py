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

from starlette.types import ASGIApp, Receive, Scope, Send

SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


def refusal(scope: Scope) -> str | None:
    """Why the request must be refused as cross-site, or None."""
    if scope.get("method", "GET") in SAFE:
        return None
    headers = {
        k: v for k, v in scope.get("headers", ()) if k in (b"sec-fetch-site", b"origin", b"host")
    }
    site = headers.get(b"sec-fetch-site")
    if site is not None:
        if site in (b"same-origin", b"none"):
            return None
        return f"Sec-Fetch-Site is {site.decode('latin-1')[:40]!r}"
    origin = headers.get(b"origin")
    if origin is None:
        return None
    host = headers.get(b"host", b"").decode("latin-1").lower()
    parts = urlsplit(origin.decode("latin-1").lower())
    if origin != b"null" and parts.netloc == host:
        return None
    return f"Origin {origin.decode('latin-1')[:80]!r} is not this host ({host[:80]!r})"


class CrossSite:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        why = refusal(scope) if scope["type"] == "http" else None
        if why is None:
            await self.app(scope, receive, send)
            return
        body = json.dumps(
            {
                "errno": "EPERM",
                "errno_value": errno_mod.EPERM,
                "op": None,
                "message": f"a cross-site {scope['method']} is refused: {why}",
            }
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"vary", b"Origin, Sec-Fetch-Site"),
        ]
        await send({"type": "http.response.start", "status": 403, "headers": headers})
        await send({"type": "http.response.body", "body": body})
