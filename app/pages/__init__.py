"""The HTML pages and htmx fragments: the second router over the service layer.

`routes()` gives the pages (/, /s/{sid}, ...) and /static, for the app's route list
(flat, like the API's); the JSON twin of each page is under /api/v1 (app.api), named
by each answer's `Link: rel="alternate"` header.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from app.resources import static_dir


def routes() -> list[BaseRoute]:
    from app.pages import (
        actions,
        apidocs,
        charts,
        compare,
        find,
        guest_play,
        history,
        home,
        session,
        versus,
    )

    # compare before session: /s/{sid}/{part} would take /s/{sid}/diff
    mods = (home, apidocs, history, compare, charts, find, versus, guest_play, session, actions)
    out: list[BaseRoute] = [r for m in mods for r in m.router.routes]
    out.append(Mount("/static", StaticFiles(directory=static_dir()), name="static"))
    return out
