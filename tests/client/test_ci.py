"""The CI commands: exit status and output of replay, scenario and export."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from app.models.compare import Answer
from app.service import kernel
from sealscope.ci import main
from sealscope.client import Client
from sealscope.models.scenarios import ScenarioStep
from sealscope.walk import check_step
from tests.api.helpers import ROOT, Server

OPS: list[dict[str, Any]] = [
    {"op": "memfd_create", "args": {"name": "vm0", "flags": ["MFD_ALLOW_SEALING"]}},
    {"op": "ftruncate", "args": {"fd": 3, "length": 65536}, "errno": None},
    {"op": "fcntl", "args": {"fd": 3, "cmd": "F_ADD_SEALS", "seals": ["F_SEAL_SHRINK"]}},
    {"op": "fallocate", "args": {"fd": 3, "mode": [], "offset": 0, "len": 16384}},
    {"op": "ftruncate", "args": {"fd": 3, "length": 4096}, "errno": "EPERM"},
]


def _trace(tmp_path: Path, ops: list[dict[str, Any]], name: str = "t.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({"profile": "rfc-v2", "ops": ops}))
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_replay(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(capsys, "replay", str(_trace(tmp_path, OPS)))
    assert rc == 0 and out == "replay: 5 ops, each ending as the trace says\n"
    wrong = [*OPS[:4], {**OPS[4], "errno": "EBUSY"}]
    rc, out, _ = _run(capsys, "replay", str(_trace(tmp_path, wrong)), "--format", "json")
    assert rc == 1
    report = json.loads(out)
    assert report["replay"]["ok"] is False and report["replay"]["index"] == 4
    assert "ended with EPERM, the trace says EBUSY" in report["replay"]["message"]
    rc, out, _ = _run(capsys, "replay", str(_trace(tmp_path, wrong)))
    assert rc == 1 and out.startswith("replay diverges: ") and "ops[4] (ftruncate)" in out


def test_bad_input_is_status_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = _run(capsys, "replay", str(tmp_path / "missing.json"))
    assert rc == 2 and "missing.json" in err
    (tmp_path / "x.json").write_text('{"not": "a trace"}')
    rc, _, err = _run(capsys, "replay", str(tmp_path / "x.json"))
    assert rc == 2 and "not a trace" in err
    bad = [{"op": "ftruncate", "args": {"fd": 3, "length": "big"}}]
    rc, _, err = _run(capsys, "replay", str(_trace(tmp_path, bad)))
    assert rc == 2 and "ops[0]" in err
    rc, _, err = _run(capsys, "export", "no-such-session", "--svg", str(tmp_path / "o.svg"))
    assert rc == 2 and "ENOENT" in err
    with pytest.raises(SystemExit):
        main(["replay"])


def test_replay_against_the_kernel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    trace = str(_trace(tmp_path, OPS))
    rc, out, _ = _run(capsys, "replay", trace, "--against-kernel")
    assert rc == 0
    lines = out.splitlines()
    assert lines[1].startswith("kernel") and ("none diverges" in out or "not compared" in out)
    if "not compared" in out:
        pytest.skip(f"the kernel cannot be asked here: {out}")
    real = kernel.kernel_op

    def lying_kernel(side: Any, profile: str, p: Any, m: Any) -> Any:
        ker, skip = real(side, profile, p, m)
        if p.n == 2:  # the kernel "refuses" the first ftruncate
            return Answer(ok=False, errno="EINVAL", text="EINVAL"), None
        return ker, skip

    monkeypatch.setattr(kernel, "kernel_op", lying_kernel)
    rc, out, _ = _run(capsys, "replay", trace, "--against-kernel")
    assert rc == 1
    assert "diverges at op 2 ftruncate" in out and "kernel EINVAL" in out
    rc, out, _ = _run(capsys, "replay", trace, "--against-kernel", "--format", "json")
    assert rc == 1 and json.loads(out)["kernel"]["first"]["n"] == 2


def test_scenario(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    rc, out, _ = _run(capsys, "scenario", "punch-waits-on-locked-page")
    assert rc == 0 and out.splitlines()[-1].endswith("every step as expected")
    assert all(line.startswith("ok") for line in out.splitlines()[:-1])
    rc, out, _ = _run(capsys, "scenario", "all", "--format", "json")
    report = json.loads(out)
    assert rc == 0 and report["ok"] and len(report["scenarios"]) >= 10
    assert {sc["name"] for sc in report["scenarios"]} >= {"rfc-lifecycle", "mmap-shared"}
    real = Client.scenario

    def wrong(self: Client, name: str) -> Any:
        sc = real(self, name)
        if name == "rfc-lifecycle":
            sc.steps[2] = sc.steps[2].model_copy(update={"errno": "EBUSY"})
        return sc

    monkeypatch.setattr(Client, "scenario", wrong)
    rc, out, _ = _run(capsys, "scenario", "rfc-lifecycle", "--format", "json")
    report = json.loads(out)
    assert rc == 1 and report["first"] == 3 and not report["steps"][2]["ok"]
    assert report["steps"][2]["problems"] == ["expected EBUSY, got HTTP 200 success"]
    rc, out, _ = _run(capsys, "scenario", "rfc-lifecycle")
    assert rc == 1 and "FAIL step 3" in out and "step 3 differs" in out
    rc, out, _ = _run(capsys, "scenario", "all")
    assert rc == 1 and "scenario rfc-lifecycle: step 3 differs" in out
    assert "scenario mmap-shared: every step as expected" in out


def test_check_step_names_each_problem() -> None:
    step = ScenarioStep(
        op="fallocate",
        args={},
        expect={"size": 8192, "event.ok": True},
        callbacks=[{"fn": "fallocate", "owner_id": "0", "start": 0, "end": 2}],  # type: ignore[list-item]
        request={"method": "POST", "path": "/x"},  # type: ignore[arg-type]
    )
    problems = check_step(step, 200, {"size": 4096}, [])
    assert problems == [
        "the op made no event",
        "size: expected 8192, got 4096",
        "event.ok: expected True, got None",
        "callbacks: expected [{'fn': 'fallocate', 'owner_id': '0', 'start': 0, 'end': 2}], got []",
    ]


def test_export_svg(tmp_path: Path, live: Server, capsys: pytest.CaptureFixture[str]) -> None:
    with Client(live.url) as c:
        s = c.replay({"profile": "rfc-v2", "ops": OPS})
        s.owner_create("kvm0", "kvm")
        s.memfd_create("second")
    out_svg = tmp_path / "maps.svg"
    rc, out, _ = _run(capsys, "export", s.id, "--svg", str(out_svg), "--url", live.url)
    assert rc == 0 and out == f"wrote {out_svg} (2 files, 262144 frames)\n"
    svg = ET.parse(out_svg).getroot()
    ns = "{http://www.w3.org/2000/svg}"
    texts = [t.text or "" for t in svg.iter(f"{ns}text")]
    assert "Page map" in texts and "Frame map" in texts
    assert any("fd 3 'vm0'" in t and "4 resident pages" in t for t in texts)
    titles = [t.text for t in svg.iter(f"{ns}title")]
    assert "pages 0-3: present, pfn 0 order 0" in titles
    assert any(t and t.startswith("frames 0-3: cache") for t in titles)
    # a trace file instead of a session: replayed in-process, then drawn
    rc, _, _ = _run(capsys, "export", str(_trace(tmp_path, OPS)), "--svg", str(out_svg))
    assert rc == 0 and ET.parse(out_svg).getroot().tag == f"{ns}svg"


def test_the_console_script_runs_them(tmp_path: Path) -> None:
    wrong = [*OPS[:4], {**OPS[4], "errno": None}]
    r = subprocess.run(
        [sys.executable, "-m", "app", "replay", str(_trace(tmp_path, wrong))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1 and "ended with EPERM, the trace says success" in r.stdout
