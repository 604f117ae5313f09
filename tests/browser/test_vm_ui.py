"""The KVM side in a real browser: the VM panel, a conversion played by clicks (the exit,
"answer as the VMM does", the retry), the history screen, and two of the KVM
walkthroughs stepped through. Screenshots: tests/artifacts/."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from app.service.scenarios import SCENARIOS
from tests.browser.test_walkthroughs import next_step, start

pytestmark = pytest.mark.browser
MiB = 1 << 20


def vm_session(rest: httpx.Client) -> str:
    """A SW_PROTECTED VM: guest_memfd fd 3 in slot 0, a memfd fd 4 at userspace_addr."""
    sid = rest.post("/sessions", json={"profile": "guest-memfd"}).json()["id"]
    s = f"/sessions/{sid}"
    assert rest.post(f"{s}/vms", json={"type": "KVM_X86_SW_PROTECTED_VM"}).status_code == 201
    rest.post(f"{s}/vms/0/vcpus", json={})
    rest.post(f"{s}/vms/0/guest_memfd", json={"size": 2 * MiB})
    rest.post(f"{s}/memfds", json={"name": "shared"})
    rest.post(f"{s}/files/4/ftruncate", json={"length": 2 * MiB})
    mp = rest.post(
        f"{s}/files/4/mmap",
        json={"offset": 0, "length": 2 * MiB, "prot": ["PROT_READ", "PROT_WRITE"],
              "flags": ["MAP_SHARED"]},
    ).json()  # fmt: skip
    r = rest.post(
        f"{s}/vms/0/memory_regions",
        json={"slot": 0, "flags": ["KVM_MEM_GUEST_MEMFD"], "guest_phys_addr": 0,
              "memory_size": 2 * MiB, "userspace_addr": mp["addr"], "guest_memfd": 3},
    )  # fmt: skip
    assert r.status_code == 200, r.text
    return str(sid)


def test_vm_panel_and_a_conversion_by_clicks(
    page: Page, server: str, rest: httpx.Client, artifacts: Path
) -> None:
    sid = vm_session(rest)
    page.goto(f"{server}/s/{sid}")
    vm = page.locator("#vm")
    expect(vm).to_contain_text("Guest memory: vm0")
    expect(vm.locator(".vtrack.slots .b.slot")).to_have_count(1)
    # the guest writes its bounce buffer shared, then asks for it private
    form = vm.locator("#vm-access")
    form.locator("#g-gpa").fill("0x5000")
    form.locator("#g-private").select_option("0")
    form.get_by_label("write", exact=True).check()
    form.locator("#g-value").fill("9")
    form.get_by_role("button", name="KVM_RUN: access").click()
    result = page.locator("#result")
    expect(result).to_contain_text("served from a shared page: fd 4 page 5")
    page.locator("#vm-access #g-private").select_option("1")
    page.locator("#vm-access").get_by_label("write", exact=True).uncheck()
    page.locator("#vm-access").get_by_role("button", name="KVM_RUN: access").click()
    expect(result).to_contain_text("KVM_EXIT_MEMORY_FAULT at gpa 0x5000")
    expect(result).to_contain_text("the guest asks for gpa 0x5000 as private memory")
    page.screenshot(path=artifacts / "vm-exit-request.png", full_page=True)
    page.locator("#vmm-answer").click()
    expect(result).to_contain_text("KVM_SET_MEMORY_ATTRIBUTES(gpa 0x5000")
    expect(result).to_contain_text("fallocate(fd 4, page 5, punch)")
    page.locator("#vm-retry").click()
    expect(result).to_contain_text("served from a private page: fd 3 page 5")
    # the panel shows gfn 5 private now; its detail links to the page and the frame
    page.locator("#vm-gfn").fill("5")
    page.locator("#vm .gfn-pick").get_by_role("button", name="Show").click()
    detail = page.locator("#gfn-detail")
    expect(detail).to_contain_text("a private page of the guest_memfd")
    detail.locator("a.gfn-page").click()
    page.wait_for_url("**page=5*")
    expect(page.locator("#gfn-back")).to_contain_text("page 5 of fd 3 serves gfn 5 of vm0")
    page.screenshot(path=artifacts / "vm-panel.png", full_page=True)
    # back to shared: on SW_PROTECTED no exit asks for it, the guest's hypercall does
    page.goto(f"{server}/s/{sid}?gfn=5")
    expect(page.locator("#vm-request-why")).to_contain_text("never exits")
    page.locator("#g-req-gpa").fill("0x5000")
    page.locator("#vm-ask-shared").click()
    expect(result).to_contain_text("KVM_EXIT_HYPERCALL KVM_HC_MAP_GPA_RANGE(gpa 0x5000")
    page.locator("#vmm-answer").click()
    expect(result).to_contain_text("KVM_SET_MEMORY_ATTRIBUTES(gpa 0x5000, 4 KiB, [])")
    expect(result).to_contain_text("fallocate(fd 3, page 5, punch)")
    page.locator("#vm-retry").click()
    expect(result).to_contain_text("served from a shared page: fd 4 page 5")


def test_vm_panel_poisoned_gfn(
    page: Page, server: str, rest: httpx.Client, artifacts: Path
) -> None:
    """memory_failure of gfn 6's private page: the gfn map draws it poisoned."""
    sid = vm_session(rest)
    s = f"/sessions/{sid}/vms/0"
    priv = ["KVM_MEMORY_ATTRIBUTE_PRIVATE"]
    rest.post(f"{s}/memory_attributes", json={"address": 0x6000, "size": 4096, "attributes": priv})
    got = rest.post(f"{s}/vcpus/0/access", json={"gpa": 0x6000, "write": True, "private": True})
    pfn = got.json()["pfn"]
    assert rest.post(f"/sessions/{sid}/memory_failure", json={"pfn": pfn}).status_code == 200
    page.goto(f"{server}/s/{sid}")
    vm = page.locator("#vm")
    bar = vm.locator(".vtrack.sources a.b.poison")
    expect(bar).to_have_count(1)
    expect(vm.locator(".legend .sw.poison")).to_have_count(1)
    expect(vm.locator(".poisoned-count")).to_have_text("1 poisoned gfn")
    bar.click()
    detail = page.locator("#gfn-detail")
    expect(detail).to_contain_text("gfn 6")
    expect(detail).to_contain_text("its guest_memfd page is hwpoisoned")
    expect(detail.locator("a.gfn-frame")).to_have_text(f"frame {pfn}")
    page.screenshot(path=artifacts / "vm-poisoned.png", full_page=True)


def test_in_place_conversion_by_clicks(page: Page, server: str, rest: httpx.Client) -> None:
    """The in-place proposal: the VMM answers with KVM_SET_MEMORY_ATTRIBUTES2."""
    r = rest.post("/sessions", json={"profile": "guest-memfd", "variants": ["inplace_conversion"]})
    sid = r.json()["id"]
    s = f"/sessions/{sid}"
    rest.post(f"{s}/vms", json={"type": "KVM_X86_SW_PROTECTED_VM"})
    rest.post(f"{s}/vms/0/vcpus", json={})
    flags = ["GUEST_MEMFD_FLAG_MMAP", "GUEST_MEMFD_FLAG_INIT_SHARED"]
    rest.post(f"{s}/vms/0/guest_memfd", json={"size": 2 * MiB, "flags": flags})
    mp = rest.post(
        f"{s}/files/3/mmap",
        json={"offset": 0, "length": 2 * MiB, "prot": ["PROT_READ", "PROT_WRITE"],
              "flags": ["MAP_SHARED"]},
    ).json()  # fmt: skip
    r = rest.post(
        f"{s}/vms/0/memory_regions",
        json={"slot": 0, "flags": ["KVM_MEM_GUEST_MEMFD"], "guest_phys_addr": 0,
              "memory_size": 2 * MiB, "userspace_addr": mp["addr"], "guest_memfd": 3},
    )  # fmt: skip
    assert r.status_code == 200, r.text
    page.goto(f"{server}/s/{sid}")
    form = page.locator("#vm-access")
    form.locator("#g-gpa").fill("0x5000")
    form.locator("#g-private").select_option("1")
    form.get_by_role("button", name="KVM_RUN: access").click()
    result = page.locator("#result")
    expect(result).to_contain_text("the guest asks for gpa 0x5000 as private memory")
    answer = page.locator("#vmm-answer")
    expect(answer).to_contain_text("KVM_SET_MEMORY_ATTRIBUTES2 on the guest_memfd")
    answer.click()
    expect(result).to_contain_text("KVM_SET_MEMORY_ATTRIBUTES2(fd 3, offset 0x5000")
    expect(result).to_contain_text("no discard")
    page.locator("#vm-retry").click()
    expect(result).to_contain_text("served from a private page: fd 3 page 5")


def test_history_screen(page: Page, server: str, artifacts: Path) -> None:
    page.goto(server + "/")
    page.locator("#history-link").click()
    page.wait_for_url("**/history")
    table = page.locator(".history-table")
    expect(table.locator("thead th.design")).to_have_count(5)
    expect(table).to_contain_text("KVM_EXIT_MEM_MAP_SHARED")
    expect(table).to_contain_text("Hugh Dickins")
    expect(table.locator("#ch-use td.parts").first).to_be_visible()
    # the in-place proposal's column: the fifth design, the fifth td of a row
    expect(table.locator("#d-in-place")).to_contain_text("In-place conversion (proposal)")
    back = table.locator("#ch-to-private td").nth(4)
    expect(back).to_have_class("cell parts")
    expect(back.locator("li")).to_have_count(6)
    expect(back.locator("li.refused")).to_contain_text("EAGAIN")
    expect(back).to_contain_text("error_offset=0x5000")
    expect(table.locator("#ch-to-shared td").nth(4)).to_contain_text("set_memory_attributes2(")
    expect(table).to_contain_text("[PATCH v8 00/46] guest_memfd: In-place conversion support")
    # the "why it changed" row lines up with the design columns (a generic .why rule once
    # made the row inline-block, its texts squeezed under the Chapter column)
    for k in range(5):
        head = table.locator("thead th.design").nth(k).bounding_box()
        why = table.locator("tr.why-changed td").nth(k).bounding_box()
        assert head and why, k
        assert abs(head["x"] - why["x"]) < 2 and abs(head["width"] - why["width"]) < 2, k
    page.goto(server + "/history?chapter=use")
    expect(page.locator("#ch-use")).to_have_class("chapter parts marked")
    page.screenshot(path=artifacts / "history.png", full_page=True)


@pytest.mark.parametrize("name", ["kvm-68-conversion", "kvm-rfc-conversion"])
def test_step_through_a_kvm_walkthrough(
    page: Page, server: str, artifacts: Path, name: str
) -> None:
    sc = SCENARIOS[name]
    start(page, server, sc.title, sc.name)
    walk = page.locator("#walk")
    for n, step in enumerate(sc.steps, 1):
        next_step(page, n)
        now = walk.locator(".walk-now")
        expect(now).to_contain_text(step.note)
        expect(now.locator(".got")).to_contain_text("✓")
    expect(walk).to_contain_text("The end")
    expect(page.locator("#vm")).to_contain_text("Guest memory")
    page.screenshot(path=artifacts / f"walk-{name}-end.png", full_page=True)
