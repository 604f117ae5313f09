"""`sealscope serve [--host H] [--port P]` (also `python -m app`); `sealscope replay`,
`scenario` and `export` for CI jobs (sealscope/ci.py: `sealscope replay --help`)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import logging
import sys

from app.serving import RateLimitedWarnings, connection_cap, protocol_class, raise_nofile
from app.settings import Settings


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sealscope", description=__doc__)
    sub = p.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="run the web service (uvicorn)")
    serve.add_argument("--host", help="address to listen on (SEALSCOPE_HOST)")
    serve.add_argument("--port", type=int, help="port (SEALSCOPE_PORT)")
    serve.add_argument("--data", help="data directory (SEALSCOPE_DATA)")
    sub.add_parser("cluster", help="HAProxy, workers, PostgreSQL (docs/deploy.md)", add_help=False)
    for name, what in CI.items():
        sub.add_parser(name, help=what, add_help=False)
    return p


CI = {
    "replay": "replay a trace (and compare it with the kernel); exit 1 if it diverges",
    "scenario": "play a walkthrough, checking every step; exit 1 if one differs",
    "export": "write a session's page map and frame map as SVG",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "cluster":
        from app.cluster.launch import main as cluster_main

        return cluster_main(argv[1:])
    if argv and argv[0] in CI:
        from sealscope.ci import main as ci_main

        return ci_main(argv)
    args = _parser().parse_args(argv)
    if args.command not in (None, "serve"):
        return 2
    import uvicorn

    from app.main import create_app

    settings = Settings.from_env()
    changes = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    if getattr(args, "data", None):
        from pathlib import Path

        changes["data"] = Path(args.data)
    settings = dataclasses.replace(settings, **changes)
    # The cyclic GC's first generation every 50,000 allocations, not 700: each op allocates
    # a score of short-lived containers (pydantic models, dicts, lists) and almost none
    # form cycles; with the default the collector took a fifth of a batch's CPU time
    # (bench/api.py; the cycles that do form are still collected, a little later).
    gc.set_threshold(50_000, 20, 10)
    handler = BatchedStderr()
    handler.addFilter(RateLimitedWarnings())  # no client can flood the log
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    soft, hard = raise_nofile()
    cap = connection_cap(settings, soft)
    logging.getLogger("sealscope.serving").info(
        "open files: limit %d (hard %d); max_connections=%d, head_timeout=%gs, body_timeout=%gs",
        soft,
        hard,
        cap,
        settings.head_timeout,
        settings.body_timeout,
    )
    # records without thread and process names, nor the caller's file and line (the
    # logging HOWTO's "Optimization": _srcfile = None skips a stack walk a record, ~1 us
    # of the ~5 a request line costs): one line per request is logged, and they are all
    # the same process's main thread
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging._srcfile = None
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        access_log=False,
        log_level="info",
        http=protocol_class(settings, cap),
        timeout_graceful_shutdown=5,
    )
    handler.flush()
    return 0


class BatchedStderr(logging.Handler):
    """Log lines to stderr, written together a moment later: one write for the many
    request lines of a busy moment instead of a locked, flushed write for each (the
    request log cost the service several percent of its throughput, bench/api.py).
    Off an event loop (start-up, threads) a line is written at once."""

    delay = 0.05  # seconds a line may wait

    def __init__(self) -> None:
        super().__init__()
        self.plain = logging.Formatter("%(message)s")
        self.setFormatter(self.plain)
        self.lines: list[str] = []
        self.pending = False

    @property
    def takes_lines(self) -> bool:
        """An INFO record's line is its message, unfiltered: the request log may hand it
        over as text (take_line, app/middleware.py's log_line)."""
        return self.formatter is self.plain and all(
            getattr(f, "passes_info", False) for f in self.filters
        )

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.take_line(self.format(record))
        except Exception:
            self.handleError(record)

    def take_line(self, line: str) -> None:
        self.lines.append(line)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        if not self.pending:
            self.pending = True
            loop.call_later(self.delay, self.flush)

    def flush(self) -> None:
        self.pending = False
        lines, self.lines = self.lines, []
        if lines:
            sys.stderr.write("\n".join(lines) + "\n")
            sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main())
