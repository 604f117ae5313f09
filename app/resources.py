"""Where the web assets are: the top-level templates/ and static/ folders.

They live at the top of the repository, not inside the package.  Looked up
in this order, the first folder that exists wins:

1. ``$SEALSCOPE_HOME/templates`` (and ``/static``), when that variable is set;
2. the checkout this package was imported from (a folder holding
   ``pyproject.toml`` next to ``app/``): ``make run``, ``pip install -e .``,
   and the tests all use the files in place, edits show up at once;
3. ``<prefix>/share/sealscope/``, where ``pip install .`` copies them
   (``[tool.setuptools.data-files]`` in pyproject.toml; a new sub-folder of
   templates/ or static/ needs a line there, tests/test_packaging.py checks).
"""

from __future__ import annotations

import os
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent


def _roots() -> Iterator[Path]:
    home = os.environ.get("SEALSCOPE_HOME")
    if home:
        yield Path(home)
    if (CHECKOUT / "pyproject.toml").is_file():
        yield CHECKOUT
    yield Path(sysconfig.get_path("data")) / "share" / "sealscope"
    yield Path(sys.prefix) / "share" / "sealscope"


def resource_dir(name: str) -> Path:
    """The folder `name` ("templates" or "static"); FileNotFoundError if none."""
    tried = []
    for root in _roots():
        path = root / name
        if path.is_dir():
            return path
        tried.append(str(path))
    raise FileNotFoundError(f"no {name}/ folder found (looked in {', '.join(tried)})")


def templates_dir() -> Path:
    return resource_dir("templates")


def static_dir() -> Path:
    return resource_dir("static")
