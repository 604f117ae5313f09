"""Loads the compiled engine (private; see _build.py)."""

from __future__ import annotations

from typing import Any

try:
    from app.engine._sealscope import ffi as _ffi
    from app.engine._sealscope import lib as _lib
except ImportError as e:  # pragma: no cover - depends on the build
    raise ImportError(
        "the sealscope C engine is not compiled: run `make venv` "
        "(or `pip install -e .`) in the repository first"
    ) from e

ffi: Any = _ffi
lib: Any = _lib
