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
 */
#include "internal.h"
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
	if (m->cur)
		m->cur->e.fd = inode_fd(in);
	hf->xflags |= X_HWPOISON;
	f->xflags |= X_HWPOISON_RAW;
	uint64_t nr = (hf->flags & F_HEAD) ? 1ull << hf->order : 1;
	callback_gmem_invalidate(m, in, hf->index, hf->index + nr);
	return (int)ev_end(m, 0);
}
