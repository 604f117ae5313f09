"""The CI commands (also `sealscope replay|scenario|export` of the full distribution):

  replay TRACE.json [--against-kernel] [--format text|json]
      replays the trace into a new session (every op must end with the errno the trace
      gives) and, with --against-kernel, runs the log against this machine's kernel
  scenario NAME|all [--format text|json]
      plays a guided walkthrough (or every one) step by step, checking each step's
      errno, answer and owner callbacks
  export SID|TRACE.json --svg OUT
      writes the session's page map and frame map as one SVG picture

Each takes --url URL (or SEALSCOPE_URL): the server to drive; without one, the service
runs in this process (the full distribution only). Exit status: 0 all as expected, 1 a
divergence (the first is printed), 2 a bad argument, input or a service error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sealscope.client import Client, SealscopeError, Session
from sealscope.walk import play

OK, DIVERGES, BAD = 0, 1, 2


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sealscope", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=os.environ.get("SEALSCOPE_URL"), help="a server")
    common.add_argument("--format", choices=("text", "json"), default="text")
    r = sub.add_parser("replay", parents=[common], help="replay a trace; exit 1 if it diverges")
    r.add_argument("trace", type=Path)
    r.add_argument("--against-kernel", action="store_true", help="and compare with the kernel")
    s = sub.add_parser("scenario", parents=[common], help="play a walkthrough, check each step")
    s.add_argument("name", help="a walkthrough's name, or all")
    e = sub.add_parser("export", parents=[common], help="the page and frame maps as SVG")
    e.add_argument("session", help="a session id, or a trace file to replay first")
    e.add_argument("--svg", type=Path, required=True, help="the SVG file to write")
    return p


@contextlib.contextmanager
def connect(url: str | None) -> Iterator[Client]:
    if url:
        with Client(url) as c:
            yield c
        return
    from sealscope.local import local_client

    with tempfile.TemporaryDirectory(prefix="sealscope-") as tmp, local_client(Path(tmp)) as c:
        yield c


def read_trace(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    if isinstance(data, dict) and isinstance(data.get("trace"), dict):
        data = data["trace"]
    if not isinstance(data, dict) or not isinstance(data.get("ops"), list):
        raise ValueError(f"{path}: not a trace (a JSON object with an 'ops' list)")
    return data


def replay(c: Client, args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    trace = read_trace(args.trace)
    out: dict[str, Any] = {"trace": str(args.trace), "ops": len(trace["ops"])}
    try:
        s = c.replay(trace)
    except SealscopeError as e:
        if e.status != 409:
            raise
        m = re.search(r"ops\[(\d+)\]", e.message)
        out["replay"] = {"ok": False, "index": int(m.group(1)) if m else None, "message": e.message}
        return DIVERGES, out
    out["replay"] = {"ok": True, "index": None, "message": None}
    try:
        if args.against_kernel:
            out["kernel"] = kernel(s)
            if out["kernel"]["first"] is not None:
                return DIVERGES, out
    finally:
        s.delete()
    return OK, out


def kernel(s: Session) -> dict[str, Any]:
    first, compared, report = 1, 0, None
    while True:
        c = s.compare(first=first, limit=5000, only_diverging=True)
        report = {"available": c.available, "reason": c.reason, "kernel": c.kernel}
        if not c.available:
            return {**report, "compared": 0, "unexpected": 0, "first": None}
        compared += c.compared
        bad = next((r for r in c.rows if r.status == "diverge"), None)
        if bad is not None or c.next is None:
            row = None if bad is None else bad.model_dump(mode="json")
            return {**report, "compared": compared, "unexpected": c.unexpected, "first": row}
        first = c.next


def text(command: str, out: dict[str, Any]) -> str:
    if command == "scenario" and "scenarios" in out:
        return "\n\n".join(text(command, sc) for sc in out["scenarios"])
    if command == "scenario":
        lines = [
            f"{'ok  ' if st['ok'] else 'FAIL'} step {st['step']} {st['op']}: {st['note']}"
            + "".join(f"\n       {p}" for p in st["problems"])
            for st in out["steps"]
        ]
        verdict = "every step as expected" if out["ok"] else f"step {out['first']} differs"
        return "\n".join([*lines, f"scenario {out['name']}: {verdict}"])
    if command == "export":
        return f"wrote {out['svg']} ({out['files']} files, {out['frames']} frames)"
    r = out["replay"]
    lines = [
        f"replay: {out['ops']} ops, each ending as the trace says"
        if r["ok"]
        else f"replay diverges: {r['message']}"
    ]
    k = out.get("kernel")
    if k and not k["available"]:
        lines.append(f"kernel: not compared here ({k['reason']})")
    elif k and k["first"] is None:
        lines.append(f"kernel (Linux {k['kernel']}): {k['compared']} ops, none diverges")
    elif k:
        row = k["first"]
        eng, ker = row["engine"], row["kernel"] or {}
        lines.append(
            f"kernel (Linux {k['kernel']}) diverges at op {row['n']} {row['op']} {row['args']}: "
            f"engine {eng['text']}, kernel {ker.get('text', 'not run')}"
            f" ({k['unexpected']} op(s) diverge)"
        )
    return "\n".join(lines)


def export(c: Client, args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    from sealscope.svg import MAX_RUNS, render

    made = None
    if Path(args.session).is_file():
        made = s = c.replay(read_trace(Path(args.session)))
    else:
        s = c.session(args.session)
    try:
        detail = s.detail()
        files = []
        for f in detail.files:
            pages = s.pages(f.fd, limit=MAX_RUNS)
            files.append((f, pages.extents, pages.next is not None))
        phys = s.phys(limit=MAX_RUNS)
        picture = render(
            f"sealscope session {s.id[:8]} after op {detail.seq}",
            files,
            (phys.total, phys.extents, phys.next is not None),
        )
    finally:
        if made is not None:
            made.delete()
    args.svg.write_text(picture)
    return OK, {"svg": str(args.svg), "files": len(files), "frames": phys.total}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        with connect(args.url) as c:
            if args.command == "replay":
                status, out = replay(c, args)
            elif args.command == "scenario":
                if args.name == "all":
                    every = [play(c, sc.name) for sc in c.scenarios().scenarios]
                    out = {"ok": all(sc["ok"] for sc in every), "scenarios": every}
                else:
                    out = play(c, args.name)
                status = OK if out["ok"] else DIVERGES
            else:
                status, out = export(c, args)
    except (SealscopeError, OSError, ValueError, RuntimeError) as e:
        print(f"sealscope {args.command}: {e}", file=sys.stderr)
        return BAD
    except Exception as e:  # httpx's transport errors and the like: not a divergence
        print(f"sealscope {args.command}: {type(e).__name__}: {e}", file=sys.stderr)
        return BAD
    print(json.dumps(out, indent=2) if args.format == "json" else text(args.command, out))
    return status


if __name__ == "__main__":
    sys.exit(main())
