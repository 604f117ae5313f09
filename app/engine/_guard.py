"""A machine's mutex as Machine's ``_lock`` (``struct ss_face``, engine_c/face.h).

The engine is not thread-safe and cffi releases the GIL on every call, so one machine
is entered by one thread at a time: the hot calls take the mutex inside their C
wrappers; every other method holds it for its whole body with ``with self._lock:``
(taking it releases the GIL while it waits, as every cffi call does, so a thread
waiting for it never blocks the one holding it).  It is not reentrant: a method
holding it calls no other locked method.
"""

from __future__ import annotations

from typing import Any

from app.engine._lib import lib

face_lock = lib.ss_face_lock
face_unlock = lib.ss_face_unlock


class FaceLock:
    """``with lock:`` holds the machine's mutex for the block."""

    __slots__ = ("_f",)

    def __init__(self, face: Any) -> None:
        self._f = face

    def __enter__(self) -> None:
        face_lock(self._f)

    def __exit__(self, *exc: object) -> None:
        face_unlock(self._f)

    def locked(self) -> bool:
        """Some thread holds it (a diagnostic for tests: it may change at once)."""
        return bool(lib.ss_face_locked(self._f))
