"""HAProxy in front of the workers: each session's requests go to one worker, chosen by
a consistent hash of the sid in the path (/api/v1/sessions/{sid}/... and /s/{sid}/...
hash alike); health checks every HEALTH_MS take a dead worker out (its sessions rehash
onto the others, which claim them from the op log: app/ownership.py). Requests that
name no session (creating one, the index pages) go round robin."""

from __future__ import annotations

from pathlib import Path

HEALTH_MS = 300  # between two health checks of a worker


def config(port: int, workers: list[int], rate: float, host: str = "127.0.0.1") -> str:
    """haproxy.cfg for the balancer on host:port and workers on host:workers[i]. The
    per-address rate limit moves here (every client reaches a worker from the balancer's
    address): `rate` requests a second, 429 past it, 0 for none."""
    servers = "\n".join(
        f"    server w{i} {host}:{p} check inter {HEALTH_MS} fall 1 rise 2"
        for i, p in enumerate(workers, 1)
    )
    limit = ""
    if rate > 0:
        limit = (
            "    stick-table type ip size 100k expire 30s store http_req_rate(1s)\n"
            "    http-request track-sc0 src\n"
            f"    http-request deny deny_status 429 if {{ sc_http_req_rate(0) gt {int(rate)} }}\n"
        )
    return f"""global
    maxconn 4096

defaults
    mode http
    # a refused connection (a dead worker) is retried on another one after the
    # turn-around of min(timeout connect, 1 s): keep it short on a LAN
    option redispatch 1
    retries 2
    timeout connect 200ms
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h
    timeout http-keep-alive 10s

frontend sealscope
    bind {host}:{port}
{limit}    default_backend workers

backend workers
    http-request set-var(txn.sid) path,field(5,/) if {{ path_beg /api/v1/sessions/ }}
    http-request set-var(txn.sid) path,field(3,/) if {{ path_beg /s/ }}
    balance hash var(txn.sid)
    hash-type consistent
    option httpchk GET /api/v1/scenarios
    http-check expect status 200
{servers}
"""


def write_config(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
