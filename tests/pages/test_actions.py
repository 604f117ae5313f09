"""The action forms: each answer is #result (what happened, or the errno with its
reason and rule) plus the #view out of band; owner callbacks show their range's end."""

from __future__ import annotations

import httpx
import pytest

from tests.pages.conftest import HX, act, api, guest_file, session

pytestmark = pytest.mark.anyio


async def test_seal_an_empty_memfd(client: httpx.AsyncClient) -> None:
    sid = await session(client)
    r = await act(client, sid, "memfd_create", name="vm0", flags="MFD_ALLOW_SEALING")
    assert r.status_code == 200 and "memfd_create" in r.text and "fd 3" in r.text
    assert r.headers["hx-push-url"] == f"/s/{sid}?fd=3"
    r = await act(client, sid, "seal", seals="F_SEAL_GUEST")
    assert r.status_code == 200, r.text
    assert r.text.startswith('<section id="result"')
    assert 'id="view" class="view" hx-swap-oob="true"' in r.text
    # htmx swaps out-of-band elements found at the top of the answer, not inside one
    tail = r.text[r.text.rindex("</section>") :]
    assert 'id="act-file" hx-swap-oob="true"' in tail and 'id="owner-ids"' in tail
    assert '<span class="badge seal guest">F_SEAL_GUEST</span>' in r.text
    assert (await api(client, "GET", f"/sessions/{sid}/files/3"))["seals"] == ["F_SEAL_GUEST"]


async def test_seal_on_a_non_empty_memfd_is_refused_with_the_rule(
    client: httpx.AsyncClient,
) -> None:
    sid = await session(client)
    await act(client, sid, "memfd_create", name="vm0", flags="MFD_ALLOW_SEALING")
    await act(client, sid, "ftruncate", length="8K")
    r = await act(client, sid, "seal", seals="F_SEAL_GUEST")
    assert r.status_code == 409
    assert "Refused" in r.text and "EBUSY (16)" in r.text
    assert "F_SEAL_GUEST needs an empty file (size is 8192)" in r.text
    assert "can only be set on an empty memfd" in r.text  # the rule
    assert "✗ EBUSY (16)" in r.text  # the timeline, swapped out of band
    why = await client.get(f"/s/{sid}/why/3", headers=HX)
    assert "F_SEAL_GUEST needs an empty file" in why.text and "Rule" in why.text


async def test_allocate_then_punch_shows_both_ends(client: httpx.AsyncClient) -> None:
    sid = await session(client)
    await guest_file(client, sid)
    r = await act(client, sid, "allocate", **{"from": "0", "to": "3", "keep": "1"})
    assert r.status_code == 200, r.text
    assert "fallocate" in r.text and "[0, 4)" in r.text and "exclusive" in r.text
    r = await act(client, sid, "punch", **{"from": "1", "to": "1"})
    assert r.status_code == 200
    assert "[1, 1]" in r.text and "inclusive" in r.text and "= page 1" in r.text
    pages = await api(client, "GET", f"/sessions/{sid}/files/3/pages")
    assert [(e["start"], e["end"], e["state"]) for e in pages["extents"][:3]] == [
        (0, 1, "present"),
        (1, 2, "hole"),
        (2, 4, "present"),
    ]


async def test_kvm_fault_then_punch_zaps_the_mapping(client: httpx.AsyncClient) -> None:
    sid = await session(client)
    await guest_file(client, sid)
    r = await act(client, sid, "memslot", owner="0", gfn="256", index="0", npages="16")
    assert r.status_code == 200 and "slot 0: gfn 256" in r.text
    r = await act(client, sid, "fault", owner="0", gfn="257")
    assert r.status_code == 200 and "pfn 0, order 0" in r.text
    view = await client.get(f"/s/{sid}?page=1", headers=HX)
    assert "kvm0 (owner 0) at gfn 257 (slot 0)" in view.text
    assert 'class="b present mapped"' in view.text or "present dirty mapped" in view.text
    r = await act(client, sid, "punch", **{"from": "1", "to": "1"})
    assert "invalidate_page_range" in r.text and "[1, 1]" in r.text
    assert "Zapped" in r.text and "gfn 257 → pfn 0" in r.text
    owner = await api(client, "GET", f"/sessions/{sid}/owners/0")
    assert owner["mapped"] == [] and owner["nzapped"] == 1


async def test_invalidate_and_the_lock_dance(client: httpx.AsyncClient) -> None:
    sid = await session(client)
    await guest_file(client, sid)
    r = await act(client, sid, "get_lock_pfn", index="0", alloc="1")
    assert "pfn 0, order 0" in r.text
    r = await act(client, sid, "punch", **{"from": "0", "to": "0"})
    assert "pending" in r.text and "sleeps on a page lock" in r.text
    r = await act(client, sid, "put_unlock_pfn", pfn="0")
    assert "woke #" in r.text
    r = await act(client, sid, "invalidate", **{"from": "0", "to": "3"})
    assert r.status_code == 200 and "invalidate" in r.text
    r = await act(client, sid, "put_unlock_pfn", pfn="0")
    assert r.status_code == 409 and "VM_BUG_ON_PAGE" in r.text


async def test_migrating_a_guest_sealed_page_is_refused_with_the_rule(
    client: httpx.AsyncClient,
) -> None:
    sid = await session(client)
    await guest_file(client, sid)
    r = await act(client, sid, "get_lock_pfn", index="0", alloc="1")
    assert "pfn 0, order 0" in r.text
    r = await act(client, sid, "put_unlock_pfn", pfn="0")
    r = await act(client, sid, "migrate_page", pfn="0")
    assert r.status_code == 409 and "ENOTSUPP" in r.text
    assert "refuse migration" in r.text


@pytest.mark.parametrize(
    ("op", "form", "words"),
    [
        ("allocate", {"from": "abc", "to": "1"}, "from: &#39;abc&#39; is not a number"),
        ("allocate", {"from": "5", "to": "1"}, "ends (page 1) before it starts (page 5)"),
        ("ftruncate", {"length": "12 parsecs"}, "is not a size"),
        ("register", {"owner": "7"}, "no owner"),
        ("fault", {"owner": "0", "gfn": "9"}, "in no memslot"),
        ("mmap", {"offset": "0", "length": "4K", "prot": "PROT_READ"}, "EPERM"),
        ("pread", {"offset": "0", "count": "4"}, "F_SEAL_GUEST forbids reading"),
    ],
    ids=["not-a-number", "backwards", "size", "owner", "gfn", "mmap", "pread"],
)
async def test_refusals_are_explained(
    client: httpx.AsyncClient, op: str, form: dict[str, str], words: str
) -> None:
    sid = await session(client)
    await guest_file(client, sid)
    r = await act(client, sid, op, **form)
    assert r.status_code in (404, 409, 422), r.text
    assert 'class="refusal"' in r.text and words in r.text


async def test_an_action_with_no_file_says_so(client: httpx.AsyncClient) -> None:
    sid = await session(client)
    r = await client.post(f"/s/{sid}/do/seal", data={"seals": "F_SEAL_GUEST"}, headers=HX)
    assert r.status_code == 422 and "no file is selected" in r.text


async def test_every_syscall_form(client: httpx.AsyncClient) -> None:
    sid = await session(client)
    await act(client, sid, "memfd_create", name="plain", flags="MFD_ALLOW_SEALING")
    for op, form in [
        ("ftruncate", {"length": "16K"}),
        ("pwrite", {"offset": "0", "text": "hello"}),
        ("pread", {"offset": "0", "count": "5"}),
        ("fallocate", {"mode": "FALLOC_FL_KEEP_SIZE", "offset": "0", "len": "8K"}),
        ("mmap", {"offset": "0", "length": "4K", "prot": "PROT_READ", "share": "MAP_SHARED"}),
        ("get_seals", {}),
        ("munmap", {"map_id": "1"}),
        ("owner_create", {"name": "rec", "kind": "recorder"}),
        ("close", {}),
    ]:
        r = await act(client, sid, op, **form)
        assert r.status_code == 200, (op, r.text[:600])
        if op == "pread":
            assert "read 5 bytes: b&#39;hello&#39;" in r.text
    detail = await api(client, "GET", f"/sessions/{sid}")
    assert detail["files"] == [] and detail["seq"] == 10


async def test_guest_memfd_profile(client: httpx.AsyncClient) -> None:
    sid = await session(client, profile="guest-memfd")
    page = await client.get(f"/s/{sid}")
    assert "KVM_CREATE_GUEST_MEMFD" in page.text and "F_SEAL_EXEC" in page.text
    r = await client.post(
        f"/s/{sid}/do/guest_memfd_create",
        data={"size": "2M", "gflags": "GUEST_MEMFD_FLAG_MMAP"},
        headers=HX,
    )
    assert r.status_code == 200 and "guest_memfd" in r.text
    r = await act(client, sid, "pread", offset="0", count="1")
    assert r.status_code == 409 and "ESPIPE" in r.text and "no read(2)" in r.text


async def test_without_htmx_an_action_redirects_to_the_view(client: httpx.AsyncClient) -> None:
    sid = await session(client)
    r = await client.post(f"/s/{sid}/do/memfd_create", data={"name": "vm0"})
    assert r.status_code == 303 and r.headers["location"] == f"/s/{sid}?fd=3"


async def test_unknown_action_and_session(client: httpx.AsyncClient) -> None:
    sid = await session(client)
    assert (await act(client, sid, "format_disk")).status_code == 404
    assert (await act(client, "nope" * 8, "seal")).status_code == 404
