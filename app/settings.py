"""Service settings: a plain dataclass read from SEALSCOPE_* environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

MAX_LFS_FILESIZE = 2**63 - 1


def _env(name: str) -> str | None:
    return os.environ.get("SEALSCOPE_" + name.upper())


@dataclass(frozen=True)
class Settings:
    """Everything the service can be tuned with; each field is SEALSCOPE_<NAME> in the env."""

    data: Path = field(default_factory=lambda: Path("./data"))
    host: str = "127.0.0.1"
    port: int = 8000
    # limits of the service (answered 413 for sizes, 429 for counts and rates)
    max_sessions: int = 256
    max_phys_pages: int = 16777216
    max_total_phys_pages: int = 2**26  # all sessions together (32 bytes of engine memory each)
    max_file_bytes: int = MAX_LFS_FILESIZE  # the kernel's own limit: the engine's EFBIG wins
    max_ops: int = 100_000  # operations per session
    max_log_bytes: int = 64 * 1024 * 1024  # bytes of a session's op log (its args, JSON)
    max_body_bytes: int = 4 * 1024 * 1024
    max_read_bytes: int = 1024 * 1024  # pread count
    rate: float = 500.0  # requests per second per client address; 0 turns it off
    burst: int = 1000
    max_streams: int = 400  # open event streams (SSE), all sessions
    max_session_streams: int = 100  # open event streams of one session
    # slow clients (app/serving.py): open connections (lowered to what the open-file
    # limit allows), and the seconds a request's head and its body may take to come in
    max_connections: int = 4096
    head_timeout: float = 10.0
    body_timeout: float = 60.0
    session_ttl: float = 24 * 3600.0  # idle seconds before a session and its log go
    # the store: "normal" (WAL: a commit survives SIGKILL, not a power cut) or "full"
    # (an fsync per group commit, in a worker thread)
    sync: str = "normal"
    # where the op log lives: "sqlite" (SEALSCOPE_DATA/sealscope.db, one process) or a
    # postgresql:// URL shared by the workers of a cluster (docs/deploy.md)
    store: str = "sqlite"
    # rewind: an in-memory snapshot (Machine.clone) every K ops, within a byte budget per
    # session and one for all sessions (copy on write: a snapshot costs what it holds beside
    # the live machine; 128 MiB keeps a 10,000-op 64 GiB session previewable < 50 ms)
    snapshot_every: int = 256  # replay runs at ~45k ops/s: a rewind replays <= ~6 ms
    snapshot_budget: int = 128 * 1024 * 1024
    snapshot_total: int = 1024 * 1024 * 1024
    # run engine calls in the threadpool (True) or inline on the event loop (False)
    engine_threads: bool = False
    log_requests: bool = True
    # POST /sessions/{sid}/compare: whether the real kernel may be asked at all, and the
    # bytes its memfds may be given (fallocate and pwrite lengths, summed: an upper bound)
    compare_kernel: bool = True
    compare_bytes: int = 64 * 1024 * 1024

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Defaults, then SEALSCOPE_* variables, then explicit overrides."""
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = _env(f.name)
            if raw is None:
                continue
            default = getattr(cls(), f.name)
            values[f.name] = _parse(raw, default, f.name)
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


def _parse(raw: str, default: object, name: str) -> object:
    try:
        if isinstance(default, bool):
            return raw.strip().lower() in ("1", "true", "yes", "on")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, Path):
            return Path(raw)
    except ValueError as exc:
        raise ValueError(f"SEALSCOPE_{name.upper()}={raw!r}: {exc}") from exc
    return raw
