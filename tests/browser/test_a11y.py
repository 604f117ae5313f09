"""Accessibility (axe-core from static/vendor, injected by Playwright) on the main
pages, light and dark: no serious or critical violations. And the screenshots of the
main views, both colour schemes, for a person to look at."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser

from tests.browser.conftest import ROOT
from tests.browser.test_vm_ui import vm_session

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not (ROOT / "static" / "vendor" / "axe.min.js").is_file(),
        reason="static/vendor/axe.min.js is missing: run `make static/vendor`",
    ),
]
AXE = """async () => {
  const r = await axe.run(document, {resultTypes: ["violations"]});
  return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 4).map(n => n.target.join(" "))}));
}"""


def populated(rest: httpx.Client) -> str:
    """A session with a guest-sealed file, an owner, pages, a mapping, a refusal."""
    sid = rest.post("/sessions", json={}).json()["id"]
    s = f"/sessions/{sid}"
    for method, path, body in [
        ("POST", "/memfds", {"name": "vm0", "flags": ["MFD_ALLOW_SEALING"]}),
        ("POST", "/files/3/fcntl", {"cmd": "F_ADD_SEALS", "seals": ["F_SEAL_GUEST"]}),
        ("POST", "/files/3/ftruncate", {"length": 1 << 20}),
        ("POST", "/owners", {"name": "kvm0", "kind": "kvm"}),
        ("POST", "/files/3/register_guest", {"owner_id": "0"}),
        ("POST", "/files/3/fallocate", {"mode": [], "offset": 0, "len": 65536}),
        ("POST", "/owners/0/memslots", {"fd": 3, "gfn": 256, "index": 0, "npages": 256}),
        ("POST", "/owners/0/fault", {"gfn": 257}),
        ("POST", "/files/3/get_lock_pfn", {"index": 9, "alloc": True}),
        ("POST", "/files/3/pread", {"offset": 0, "count": 8}),
        ("POST", "/files/3/fallocate", {"mode": ["FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"],
                                         "offset": 4096, "len": 8192}),
    ]:  # fmt: skip
        rest.request(method, s + path, json=body)
    return sid


@pytest.mark.parametrize(
    ("scheme", "theme"),
    [("light", None), ("dark", None), ("light", "dark"), ("dark", "light")],
    ids=["light", "dark", "toggled-dark", "toggled-light"],
)
def test_no_serious_violations(
    browser: Browser,
    server: str,
    rest: httpx.Client,
    artifacts: Path,
    scheme: str,
    theme: str | None,
) -> None:
    sid = populated(rest)
    vsid = vm_session(rest)  # the VM panel
    rest.post(f"/sessions/{vsid}/vms/0/vcpus/0/access", json={"gpa": 0x5000, "private": True})
    priv = {"address": 0x6000, "size": 4096, "attributes": ["KVM_MEMORY_ATTRIBUTE_PRIVATE"]}
    rest.post(f"/sessions/{vsid}/vms/0/memory_attributes", json=priv)
    got = rest.post(f"/sessions/{vsid}/vms/0/vcpus/0/access", json={"gpa": 0x6000, "write": True})
    r = rest.post(f"/sessions/{vsid}/memory_failure", json={"pfn": got.json()["pfn"]})
    assert r.status_code == 200, r.text  # a poisoned gfn: its bar, legend entry and count
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, color_scheme=scheme)
    if theme:  # the header's Theme control, chosen earlier (static/theme.js)
        context.add_init_script(f"localStorage.setItem('sealscope-theme', '{theme}')")
    page = context.new_page()
    found: dict[str, list[dict[str, Any]]] = {}
    for name, path in [
        ("home", "/"),
        ("session", f"/s/{sid}?page=1"),
        ("preview", f"/s/{sid}?at=4"),
        ("diff", f"/s/{sid}/diff"),
        ("kernel", f"/s/{sid}/kernel"),
        ("versus", f"/s/{sid}/versus?a=4&b=11"),
        ("charts", f"/s/{sid}/charts?at=6"),
        ("walk", None),
        ("vm", f"/s/{vsid}?gfn=5"),
        ("history", "/history?chapter=use"),
    ]:
        if path is None:
            page.goto(server + "/")
            page.locator('form[action="/walk/punch-invalidates-per-page"] button').click()
            page.wait_for_url("**walk=*")
        else:
            page.goto(server + path)
        page.add_script_tag(url="/static/vendor/axe.min.js")
        bad = [v for v in page.evaluate(AXE) if v["impact"] in ("serious", "critical")]
        if bad:
            found[name] = bad
        page.screenshot(
            path=artifacts / f"{name}-{scheme}{'-' + theme if theme else ''}.png", full_page=True
        )
    context.close()
    assert not found, "\n".join(f"{k}: {v}" for k, v in found.items())
