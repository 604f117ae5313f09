"""docs/testing.md's examples run as they are: the client snippet against a live server,
the example suite through pytester (in-process)."""

from __future__ import annotations

import re

import pytest

from tests.api.helpers import ROOT, Server

pytest_plugins = ["pytester"]
DOC = (ROOT / "docs" / "testing.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", DOC, re.S)


def test_the_client_example(live: Server, capsys: pytest.CaptureFixture[str]) -> None:
    (code,) = [b for b in BLOCKS if b.startswith("from sealscope.client import Client")]
    exec(compile(code.replace("http://127.0.0.1:8000", live.url), "testing.md", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("F_SEAL_GUEST") and lines[0].endswith("409")
    assert lines[1] == "AAAAAAAAAAA="  # 8 zero bytes
    assert lines[2] == "1 memfd_create" and lines[-1] == "1004 pread"


def test_the_example_suite(pytester: pytest.Pytester) -> None:
    (code,) = [b for b in BLOCKS if b.startswith("# test_guest_seal.py")]
    pytester.makepyfile(test_guest_seal=code)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(passed=4)
