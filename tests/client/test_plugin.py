"""The pytest plugin through pytester: the `sealscope` fixture in-process and on a server,
its settings by marker and by indirect parametrization, and assert_like_kernel."""

from __future__ import annotations

import pytest

from app.models.compare import Answer, CompareRow, Comparison
from sealscope.pytest_plugin import assert_like_kernel
from tests.api.helpers import Server

pytest_plugins = ["pytester"]

SUITE = """
import pytest
from sealscope.client import SealscopeError
from sealscope.pytest_plugin import assert_like_kernel


@pytest.mark.sealscope(profile="guest-memfd")
def test_marker(sealscope):
    assert sealscope.info.profile == "guest-memfd"
    assert sealscope.guest_memfd_create(1 << 21).kind == "guest_memfd"


@pytest.mark.parametrize(
    "sealscope",
    [{"thp": "always"}, {"variants": ["multi_owner"], "phys_pages": 65536}],
    indirect=True,
)
def test_indirect(sealscope):
    info = sealscope.detail()
    assert info.thp == "always" or (info.variants, info.phys_pages) == (["multi_owner"], 65536)


def test_a_fresh_session_each(sealscope):
    assert sealscope.detail().seq == 0
    sealscope.memfd_create("vm0", ["MFD_ALLOW_SEALING"])


def test_like_linux(sealscope):
    with sealscope.batch() as b:
        b.add("memfd_create", name="vm0", flags=["MFD_ALLOW_SEALING"])
        b.add("ftruncate", fd=3, length=8192)
        b.add("fcntl", fd=3, cmd="F_ADD_SEALS", seals=["F_SEAL_SHRINK"])
        b.add("ftruncate", fd=3, length=4096)  # EPERM, in Linux too
        b.add("pwrite", fd=3, offset=0, data_b64="aGk=")
        b.add("pread", fd=3, offset=0, count=2)
    assert assert_like_kernel(sealscope) == 6


@pytest.mark.sealscope(color="blue")
def test_unknown_setting(sealscope):
    pass
"""


@pytest.mark.parametrize("where", ["in-process", "server"])
def test_the_fixture(pytester: pytest.Pytester, live: Server, where: str) -> None:
    pytester.makepyfile(test_suite=SUITE)
    args = ["-q", "-p", "no:cacheprovider"]
    if where == "server":
        args += ["--sealscope-url", live.url]
    result = pytester.runpytest_subprocess(*args, timeout=120)
    result.assert_outcomes(passed=5, errors=1)
    result.stdout.fnmatch_lines(["*unknown settings*color*"])
    assert "Warning" not in result.stdout.str()


class _Fake:
    """A session whose compare answers a fixed report."""

    def __init__(self, report: Comparison) -> None:
        self.report = report

    def compare(self, **window: object) -> Comparison:
        return self.report


def _report(status: str, available: bool = True) -> Comparison:
    ok = Answer(ok=True, value={"fd": 3}, text="fd 3")
    bad = Answer(ok=False, errno="EPERM", text="EPERM")
    row = CompareRow(
        n=2,
        op="ftruncate",
        args={"fd": 3, "length": 0},
        engine=ok,
        kernel=bad,
        status=status,  # type: ignore[arg-type]
        diverges=True,
        intended=status == "intended",
    )
    return Comparison(
        available=available,
        reason=None if available else "no memfd here",
        kernel="6.18.0",
        profile="rfc-v2",
        budget_bytes=1,
        ops=2,
        compared=2,
        unexpected=int(status == "diverge"),
        rows=[row],
    )


def test_assert_like_kernel_names_the_first_divergence() -> None:
    with pytest.raises(pytest.fail.Exception) as e:
        assert_like_kernel(_Fake(_report("diverge")))  # type: ignore[arg-type]
    assert "1 op(s) diverge from Linux 6.18.0; the first: op 2 ftruncate" in str(e.value)
    assert "kernel EPERM" in str(e.value)
    assert assert_like_kernel(_Fake(_report("intended"))) == 2  # type: ignore[arg-type]
    with pytest.raises(pytest.skip.Exception, match="no memfd here"):
        assert_like_kernel(_Fake(_report("agree", available=False)))  # type: ignore[arg-type]
