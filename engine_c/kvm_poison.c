/*
 * kvm_poison.c - memory failure of a guest_memfd page (mm/memory-failure.c
 * memory_failure() -> the mapping's .error_remove_folio, virt/kvm/guest_memfd.c
 * kvm_gmem_error_folio, 6.8+).
 *
 * The folio is marked hwpoison; guest_memfd zaps it in every VM bound to it
 * (kvm_gmem_invalidate_begin/end over the folio's indexes) but does not
 * truncate it: "what action is taken ... is userspace's decision", so it
 * answers MF_DELAYED and the page stays in the file.  A later guest fault
 * gets -EHWPOISON from kvm_gmem_get_pfn: KVM_RUN fails with EHWPOISON and
 * a KVM_EXIT_MEMORY_FAULT exit (Sean, Sep 2023: errno, not an exit flag).
 * A host touch of the page through a mapping is SIGBUS.  Punching the page
 * (or closing the file) removes it: the index reads as a fresh page again.
 *
 * The engine models guest_memfd pages only (other frames: EOPNOTSUPP, said
 * so); a pfn past the machine is ENXIO (pfn_to_online_page fails); a page
 * poisoned already is EHWPOISON.
 *
 * Once the page leaves the file (punch, truncate, the last close) its folio is
 * freed, but the failed frame never goes back to the buddy allocator (a
 * PageHWPoison page is taken off the free lists for good: take_page_off_buddy,
 * free_pages_prepare refusing hwpoisoned pages).  The frame becomes
 * SS_FRAME_HWPOISON; the rest of a compound folio returns page by page (the
 * kernel dissolves a poisoned huge folio the same way).
 *
 * The machine keeps the raw pfns memory_failure hit, in order (each once: a
 * poisoned frame is never handed out again), so the VM panel finds poisoned
 * gfns from this short list, never by walking the gfn space or the frames.
 */
#include "internal.h"
#include <stdlib.h>
#include <string.h>

bool poison_keep_out(struct ss_machine *m, uint32_t head, unsigned int order)
{
	uint64_t nr = 1ull << order;
	bool any = false;
	for (uint64_t i = 0; i < nr && !any; i++)
		any = (frame_ro(m, head + i)->xflags & X_HWPOISON_RAW) != 0;
	if (!any)
		return false;
	for (uint64_t i = 0; i < nr; i++) {
		struct frame *f = frame_rw(m, head + i);
		if (f->xflags & X_HWPOISON_RAW) {
			memset(f, 0, sizeof(*f));
			f->state = SS_FRAME_HWPOISON;
			f->xflags = X_HWPOISON | X_HWPOISON_RAW;
			ev_touch(m, SS_T_HWPOISON_KEEP, -1, -1, 0, 1, head + i);
		}
	}
	for (uint64_t i = 0; i < nr; i++)
		if (frame_ro(m, head + i)->state != SS_FRAME_HWPOISON)
			frames_free(m, head + (uint32_t)i, 0);
	return true;
}

bool gmem_poisoned(const struct ss_machine *m, const struct inode *in, uint64_t index)
{
	uint64_t v = tree_load(&in->cache, index);
	return v && (frame_ro(m, frame_head(m, (uint32_t)(v - 1)))->xflags & X_HWPOISON);
}

int ss_frame_poisoned(const struct ss_machine *m, uint64_t pfn)
{
	if (pfn >= m->cfg.phys_pages || frame_ro(m, pfn)->state == SS_FRAME_FREE)
		return 0;
	return !!(frame_ro(m, frame_head(m, (uint32_t)pfn))->xflags & X_HWPOISON);
}

static int hwpoison_reserve(struct ss_machine *m)
{
	if (m->nhwpoison < m->cap_hwpoison)
		return 0;
	uint32_t cap = m->cap_hwpoison ? 2 * m->cap_hwpoison : 16;
	uint32_t *p = realloc(m->hwpoison, cap * sizeof(*p));
	if (!p)
		return -ENOMEM;
	m->hwpoison = p;
	m->cap_hwpoison = cap;
	return 0;
}

int ss_memory_failure(struct ss_machine *m, uint64_t pfn)
{
	ev_begin(m, SS_OP_MEMORY_FAILURE, -1, (int64_t)pfn, 0, 0, 0);
	m->kvm_rule = SS_R_NONE;
	if (pfn >= m->cfg.phys_pages)
		return kvm_fail(m, SS_R_MF_PFN, -ENXIO);
	struct frame *f = frame_rw(m, pfn);
	if (f->state == SS_FRAME_HWPOISON)
		return kvm_fail(m, SS_R_MF_AGAIN, -EHWPOISON);  /* off the free lists already */
	struct inode *in = f->state == SS_FRAME_CACHE ? inode_get(m, f->ino) : NULL;
	if (!in || in->kind != SS_KIND_GMEM)
		return kvm_fail(m, SS_R_MF_NOT_GMEM, -EOPNOTSUPP);
	uint32_t head = frame_head(m, (uint32_t)pfn);
	struct frame *hf = frame_rw(m, head);
	if (hf->xflags & X_HWPOISON)
		return kvm_fail(m, SS_R_MF_AGAIN, -EHWPOISON);
	if (hwpoison_reserve(m))
		return (int)ev_end(m, -ENOMEM);
	m->hwpoison[m->nhwpoison++] = (uint32_t)pfn;
	if (m->cur)
		m->cur->e.fd = inode_fd(in);
	hf->xflags |= X_HWPOISON;
	f->xflags |= X_HWPOISON_RAW;
	uint64_t nr = (hf->flags & F_HEAD) ? 1ull << hf->order : 1;
	/* hwpoison_user_mappings -> try_to_unmap: the host mappings go, and the mmu
	 * notifier zaps what VMs map through them (a slot whose userspace_addr is
	 * this guest_memfd's mapping); then kvm_gmem_error_folio */
	mmu_notify_file(m, in->ino, hf->index, hf->index + nr);
	callback_gmem_invalidate(m, in, hf->index, hf->index + nr);
	return (int)ev_end(m, 0);
}

/* the poisoned gfns of one slot: the file range [i0, i1) of its guest_memfd */
static int slot_poisoned(const struct owner *o,
			 const struct memslot *s, uint64_t i0, uint64_t i1, uint64_t start,
			 uint64_t end, struct ss_gfn_span *out, int n, int max)
{
	if (i1 <= s->index || i0 >= s->index + s->npages)
		return n;
	uint64_t g = s->gfn + (i0 > s->index ? i0 - s->index : 0);
	uint64_t ge = s->gfn + (i1 < s->index + s->npages ? i1 - s->index : s->npages);
	g = g > start ? g : start;
	ge = ge < end ? ge : end;
	while (g < ge && n < max) {  /* served by the guest_memfd: private, or gmem-only */
		uint64_t a = attrs_get(&o->vm->attrs, g);
		uint64_t stop = attrs_run_end(&o->vm->attrs, g, ge);
		if (s->gmem_only || (a & SS_MEMORY_ATTRIBUTE_PRIVATE))
			out[n++] = (struct ss_gfn_span){ g, stop };
		g = stop;
	}
	return n;
}

static int span_cmp(const void *a, const void *b)
{
	const struct ss_gfn_span *x = a, *y = b;
	return x->start < y->start ? -1 : x->start > y->start;
}

int ss_vm_poisoned_gfns(const struct ss_machine *m, int id, uint64_t start, uint64_t end,
			struct ss_gfn_span *out, int max)
{
	const struct owner *o = vm_get_const(m, id);
	if (!o || max < 0)
		return -EINVAL;
	int n = 0;
	if (is_rfc(m))
		return 0;
	for (uint32_t k = 0; k < m->nhwpoison && n < max; k++) {
		uint32_t pfn = m->hwpoison[k];
		if (frame_ro(m, pfn)->state != SS_FRAME_CACHE)
			continue;  /* out of its file already: off the free lists for good */
		uint32_t head = frame_head(m, pfn);
		const struct frame *hf = frame_ro(m, head);
		uint64_t nr = (hf->flags & F_HEAD) ? 1ull << hf->order : 1;
		for (int i = 0; i < o->nslots && n < max; i++) {
			const struct memslot *s = &o->slots[i];
			if ((s->slot >> 16) == 0 && s->ino == hf->ino && (s->flags & SS_MEM_GUEST_MEMFD))
				n = slot_poisoned(o, s, hf->index, hf->index + nr, start, end, out, n,
						  max);
		}
	}
	qsort(out, (size_t)n, sizeof(*out), span_cmp);
	int w = 0;  /* merge: raw pfns of one folio, or adjacent pages */
	for (int r = 0; r < n; r++) {
		if (w && out[w - 1].end >= out[r].start) {
			if (out[r].end > out[w - 1].end)
				out[w - 1].end = out[r].end;
		} else {
			out[w++] = out[r];
		}
	}
	return w;
}
