"""`sealscope serve [--host H] [--port P]` (also `python -m app`)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys

from app.settings import Settings


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sealscope", description=__doc__)
    sub = p.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="run the web service (uvicorn)")
    serve.add_argument("--host", help="address to listen on (SEALSCOPE_HOST)")
    serve.add_argument("--port", type=int, help="port (SEALSCOPE_PORT)")
    serve.add_argument("--data", help="data directory (SEALSCOPE_DATA)")
    return p


def main(argv: list[str] | None = None) -> int:
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
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        access_log=False,
        log_level="info",
        timeout_graceful_shutdown=5,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
