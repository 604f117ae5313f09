"""A private PostgreSQL for a cluster (and the tests): Debian's server binaries
(/usr/lib/postgresql/*/bin), a data directory of its own, loopback TCP only, trust
authentication (nothing but this host's processes can reach it), run as a non-root user
when we are root (PostgreSQL refuses to run as root)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

DEBIAN_BIN = "/usr/lib/postgresql/*/bin"
PG_USER = "postgres"  # the account Debian's package makes
DB = "sealscope"


class Missing(RuntimeError):
    """A program the cluster needs is not installed (and could not be)."""


def pg_bin() -> Path:
    """The directory of initdb and pg_ctl (the newest Debian server, else the PATH's)."""
    found = sorted(glob.glob(DEBIAN_BIN + "/initdb"), key=_version)
    if found:
        return Path(found[-1]).parent
    which = shutil.which("initdb")
    if which:
        return Path(which).parent
    raise Missing("PostgreSQL's initdb and pg_ctl are not installed: apt-get install postgresql")


def _version(path: str) -> float:
    try:
        return float(Path(path).parent.parent.name)
    except ValueError:
        return 0.0


def apt_install(*packages: str) -> None:
    """Install Debian packages when we are root and have apt-get (Missing otherwise)."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise Missing(f"{' '.join(packages)} missing, and this is not root with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *packages], check=True, env=env)


def _run_as() -> str | None:
    """The user to run the server as: ourselves, or PG_USER when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(PG_USER)
    except KeyError as exc:
        raise Missing(f"root, and no {PG_USER!r} user to run PostgreSQL as") from exc
    return PG_USER


def check_reachable(path: Path, user: str | None) -> None:
    """Every directory above `path` lets `user` through (a 0700 parent would make
    initdb fail with a bare 'Permission denied')."""
    if user is None:
        return
    for parent in path.resolve().parents:
        if not os.stat(parent).st_mode & 0o001:
            raise RuntimeError(
                f"PostgreSQL runs as the user {user} and cannot reach {path}: {parent} is "
                "not open to other users (chmod o+x it, or give SEALSCOPE_DATA another "
                "directory)"
            )


@dataclass
class Postgres:
    root: Path  # its data directory
    port: int
    user: str | None = None
    extra: str = ""  # more server options (the tests': fsync off, a throwaway server)

    @property
    def url(self) -> str:
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/{DB}"

    def _cmd(self, *argv: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(a) for a in argv],
            user=self.user,
            check=check,
            capture_output=True,
            text=True,
            cwd="/",
        )

    def start(self) -> Postgres:
        """initdb when the directory is new, then start and wait; creates the database."""
        bindir = pg_bin()
        self.user = _run_as()
        check_reachable(self.root, self.user)
        self.root.mkdir(parents=True, exist_ok=True)
        if self.user is not None:
            shutil.chown(self.root, self.user)
        os.chmod(self.root, 0o700)
        if not (self.root / "PG_VERSION").exists():
            self._cmd(
                bindir / "initdb", "-D", self.root, "-U", PG_USER, "--auth=trust",
                "-E", "UTF8", "--no-instructions",
            )  # fmt: skip
        opts = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories='' "
            f"-c max_connections=200 -c shared_buffers=64MB {self.extra}"
        )
        done = self._cmd(
            bindir / "pg_ctl", "-D", self.root, "-o", opts, "-l", self.root / "server.log",
            "-w", "-t", "30", "start", check=False,
        )  # fmt: skip
        if done.returncode != 0:
            log = (self.root / "server.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"PostgreSQL did not start: {done.stderr.strip()}\n{log}")
        self._create_db()
        return self

    def _create_db(self) -> None:
        import psycopg

        admin = self.url.rsplit("/", 1)[0] + "/postgres"
        deadline = time.monotonic() + 10
        while True:
            try:
                with psycopg.connect(admin, autocommit=True) as c:
                    sql = "SELECT 1 FROM pg_database WHERE datname = %s"
                    if not c.execute(sql, (DB,)).fetchone():
                        c.execute(f"CREATE DATABASE {DB}")
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        self._cmd(pg_bin() / "pg_ctl", "-D", self.root, "-m", "fast", "-w", "stop", check=False)
