"""The client distribution (client/) builds without a compiler and works where neither the
engine nor the server's `app` package can be imported."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

from tests.api.helpers import ROOT, Server

PROGRAM = """
import sys
from sealscope.client import Client, SealscopeError
import sealscope.pytest_plugin, sealscope.ci
try:
    import app.engine
except ImportError:
    pass
else:
    raise SystemExit("app.engine was importable")
assert not [m for m in sys.modules if m == "app" or m.startswith("app.")], "app was imported"
with Client(sys.argv[1]) as c:
    s = c.create_session()
    with s.batch() as b:
        f = b.add("memfd_create", name="vm0", flags=["MFD_ALLOW_SEALING"])
        b.add("ftruncate", fd=3, length=8192)
        e = b.add("fcntl", fd=3, cmd="F_ADD_SEALS", seals=["F_SEAL_GUEST"])
    assert f.value().fd == 3
    try:
        e.value()
    except SealscopeError as err:
        print("errno", err.errno, err.errno_value, type(f.value()).__module__)
from sealscope.local import local_client
try:
    with local_client(None):
        pass
except RuntimeError as err:
    print("local:", err)
"""


def test_the_client_distribution_needs_no_engine(tmp_path: Path, live: Server) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheels),
            str(ROOT / "client"),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (wheel,) = wheels.glob("sealscope_client-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        z.extractall(site)
    assert not [n for n in names if n.startswith("app/") or n.endswith((".so", ".c"))]
    assert "sealscope/models/files.py" in names
    entry = (site / next(n for n in names if n.endswith("entry_points.txt"))).read_text()
    assert "sealscope = sealscope.pytest_plugin" in entry
    # -S: no site-packages processing, so no editable install of this checkout; the
    # venv's packages (pydantic, httpx) on the path by hand, after the wheel's
    path = f"{site}:{sysconfig.get_paths()['purelib']}"
    out = subprocess.run(
        [
            sys.executable,
            "-S",
            "-c",
            f"import sys; sys.path[:0] = {path.split(':')!r}\n{PROGRAM}",
            live.url,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "errno EBUSY 16 sealscope.models.files" in out.stdout
    assert "local: an in-process sealscope needs the full distribution" in out.stdout
