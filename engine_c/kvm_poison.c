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
 * poisoned already is EHWPOISON.  A removed poisoned frame goes back to the
 * free lists (the kernel would keep it off them for good): a simplification.
 */
#include "internal.h"

bool gmem_poisoned(const struct ss_machine *m, const struct inode *in, uint64_t index)
{
	uint64_t v = tree_load(&in->cache, index);
	return v && (m->frames[frame_head(m, (uint32_t)(v - 1))].xflags & X_HWPOISON);
}

int ss_frame_poisoned(const struct ss_machine *m, uint64_t pfn)
{
	if (pfn >= m->cfg.phys_pages || m->frames[pfn].state == SS_FRAME_FREE)
		return 0;
	return !!(m->frames[frame_head(m, (uint32_t)pfn)].xflags & X_HWPOISON);
}

int ss_memory_failure(struct ss_machine *m, uint64_t pfn)
{
	ev_begin(m, SS_OP_MEMORY_FAILURE, -1, (int64_t)pfn, 0, 0, 0);
	m->kvm_rule = SS_R_NONE;
	if (pfn >= m->cfg.phys_pages)
		return kvm_fail(m, SS_R_MF_PFN, -ENXIO);
	struct frame *f = &m->frames[pfn];
	struct inode *in = f->state == SS_FRAME_CACHE ? inode_get(m, f->ino) : NULL;
	if (!in || in->kind != SS_KIND_GMEM)
		return kvm_fail(m, SS_R_MF_NOT_GMEM, -EOPNOTSUPP);
	uint32_t head = frame_head(m, (uint32_t)pfn);
	struct frame *hf = &m->frames[head];
	if (hf->xflags & X_HWPOISON)
		return kvm_fail(m, SS_R_MF_AGAIN, -EHWPOISON);
	if (m->cur)
		m->cur->e.fd = inode_fd(in);
	hf->xflags |= X_HWPOISON;
	uint64_t nr = (hf->flags & F_HEAD) ? 1ull << hf->order : 1;
	callback_gmem_invalidate(m, in, hf->index, hf->index + nr);
	return (int)ev_end(m, 0);
}
