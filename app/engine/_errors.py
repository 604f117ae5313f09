"""The one exception type of the engine, and its builtin-flavoured subclasses."""

from __future__ import annotations

from app.engine._names import errno_name


class EngineError(Exception):
    """A failure the simulated kernel returned.

    errno / name: the errno's value and name ("EBUSY"); op: the operation
    as events name it ("F_ADD_SEALS"); message: which rule refused, in
    words; hazard: an RFC hazard the call ran into ("null_page", ...);
    seq: the event that recorded the failure.
    """

    errno: int
    name: str
    op: str
    message: str
    hazard: str | None
    seq: int | None
    error_offset: int | None = None  # KVM_SET_MEMORY_ATTRIBUTES2's out field, on EAGAIN

    def __init__(
        self,
        op: str,
        errno: int,
        message: str,
        hazard: str | None = None,
        seq: int | None = None,
    ) -> None:
        self.errno = errno
        self.name = errno_name(errno)
        self.op = op
        self.message = message
        self.hazard = hazard
        self.seq = seq
        super().__init__(f"{op}: {self.name}: {message}")

    def to_dict(self) -> dict[str, object]:
        """The REST error body: errno, errno_value, op, message."""
        return {
            "errno": self.name,
            "errno_value": self.errno,
            "op": self.op,
            "message": self.message,
        }


class BadFdError(EngineError, LookupError):
    """EBADF: no open file with that fd."""


class NotFoundError(EngineError, LookupError):
    """ENOENT: no such owner, mapping or event."""


class InvariantError(AssertionError):
    """Machine.check() found the engine's state inconsistent."""


_SUBCLASSES: dict[str, type[EngineError]] = {"EBADF": BadFdError, "ENOENT": NotFoundError}


def make_error(
    op: str, errno: int, message: str, hazard: str | None = None, seq: int | None = None
) -> EngineError:
    """The EngineError (or the subclass for its errno) for a failure."""
    cls = _SUBCLASSES.get(errno_name(errno), EngineError)
    return cls(op, errno, message, hazard, seq)
