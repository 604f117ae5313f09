"""/docs (Swagger UI) and /redoc from the service's own static/vendor/ (npm, like htmx):
FastAPI's defaults load them from a CDN, and a page must work without the internet.

Each answer carries a Content-Security-Policy that lets the browser fetch nothing from
another host (ReDoc's footer logo, for one, points at its vendor's CDN: the browser
refuses it and ReDoc leaves the logo out); the one inline script is allowed by its hash.
"""

from __future__ import annotations

import base64
import hashlib
import re

from fastapi import APIRouter
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse

from app.pages.render import static_url

router = APIRouter(include_in_schema=False)
TITLE = "sealscope — REST API"
_INLINE = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


def _offline(page: HTMLResponse) -> HTMLResponse:
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(m.group(1)).digest()).decode() + "'"
        for m in _INLINE.finditer(bytes(page.body))
    )
    page.headers["Content-Security-Policy"] = (
        f"default-src 'self'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; "
        "font-src 'self' data:; base-uri 'self'; frame-ancestors 'none'"
    )
    page.headers["Cache-Control"] = "no-cache"
    return page


@router.get("/docs", name="api_docs", response_class=HTMLResponse)
async def swagger() -> HTMLResponse:
    return _offline(
        get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=TITLE,
            swagger_js_url=static_url("vendor/swagger-ui-bundle.js"),
            swagger_css_url=static_url("vendor/swagger-ui.css"),
            swagger_favicon_url=static_url("favicon.svg"),
            # no badge from the online validator
            swagger_ui_parameters={"validatorUrl": None},
        )
    )


@router.get("/redoc", name="api_redoc", response_class=HTMLResponse)
async def redoc() -> HTMLResponse:
    return _offline(
        get_redoc_html(
            openapi_url="/openapi.json",
            title=TITLE,
            redoc_js_url=static_url("vendor/redoc.standalone.js"),
            redoc_favicon_url=static_url("favicon.svg"),
            with_google_fonts=False,
        )
    )
