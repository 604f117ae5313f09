"""Shared test setup: browser tests skip (with the reason) where Chromium is missing.

`make test` installs Debian's chromium when it is missing and the user is
root; elsewhere tests marked `browser` (or under tests/browser/) are skipped.
SEALSCOPE_CHROMIUM names another Chromium binary.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["tests.pgserver"]  # the private PostgreSQL fixtures (postgres, pg_url)
CHROMIUM = os.environ.get("SEALSCOPE_CHROMIUM", "/usr/bin/chromium")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.access(CHROMIUM, os.X_OK):
        return
    skip = pytest.mark.skip(
        reason=f"{CHROMIUM} is missing (make test installs Debian's chromium when run as root)"
    )
    for item in items:
        if "browser" in item.keywords or "browser" in Path(str(item.path)).parts:
            item.add_marker(skip)
