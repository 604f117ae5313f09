"""The packaging stays in step with the tree (no engine needed)."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_asset_folder_is_shipped_by_pip_install() -> None:
    """Each file of templates/ and static/ has a data-files line (they do not recurse)."""
    data_files = PYPROJECT["tool"]["setuptools"]["data-files"]
    patterns = [p for pats in data_files.values() for p in pats]
    missing = []
    for top in ("templates", "static"):
        for path in (ROOT / top).rglob("*") if (ROOT / top).is_dir() else []:
            rel = path.relative_to(ROOT).as_posix()
            if path.is_dir() or path.name.startswith(".") or path.name == ".stamp":
                continue
            if not any(
                fnmatch.fnmatchcase(rel, p) and rel.count("/") == p.count("/") for p in patterns
            ):
                missing.append(rel)
    assert not missing, f"add data-files lines in pyproject.toml for: {missing}"


def test_setup_py_only_declares_the_engine() -> None:
    text = (ROOT / "setup.py").read_text()
    assert 'cffi_modules=["app/engine/_build.py:ffibuilder"]' in text
    assert len(text.splitlines()) < 10


def test_runtime_dependencies_are_pinned() -> None:
    deps = (
        PYPROJECT["project"]["dependencies"] + PYPROJECT["project"]["optional-dependencies"]["test"]
    )
    assert deps and all("==" in d for d in deps), deps
    assert PYPROJECT["project"]["scripts"]["sealscope"] == "app.cli:main"


def test_resources_are_found_in_a_checkout() -> None:
    from app import resources

    assert (resources.CHECKOUT / "pyproject.toml").is_file()
    for name in ("templates", "static"):
        if (ROOT / name).is_dir():
            assert resources.resource_dir(name) == ROOT / name


def test_the_client_distribution_pins_what_the_service_pins() -> None:
    """client/ (sealscope-client) needs only pydantic and httpx, at the service's pins,
    and declares the same pytest plugin."""
    client = tomllib.loads((ROOT / "client" / "pyproject.toml").read_text())
    deps = client["project"]["dependencies"]
    assert sorted(d.split("==")[0] for d in deps) == ["httpx", "pydantic"]
    assert set(deps) <= set(PYPROJECT["project"]["dependencies"])
    plugin = PYPROJECT["project"]["entry-points"]["pytest11"]
    assert (
        client["project"]["entry-points"]["pytest11"]
        == plugin
        == {"sealscope": "sealscope.pytest_plugin"}
    )
    assert (ROOT / "client" / "sealscope").resolve() == ROOT / "sealscope"
