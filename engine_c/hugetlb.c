/*
 * hugetlb.c - variant hugetlb_1g: the proposal "[RFC PATCH v2 00/51] 1G page
 * support for guest_memfd" (Ackerley Tng, 14 May 2025; not merged).
 *
 * A guest_memfd's memory comes in 1 GiB folios (order 18; the RFC takes them
 * from a HugeTLB subpool, the engine from the buddy allocator: an aligned
 * range of wholly free max-order blocks).  Its size must be a multiple of
 * 1 GiB.  A conversion of part of a folio splits it to 4 KiB pages ("split 1G
 * folio to 4K on conversion"); once the folio's whole range has one
 * attribute again and its pages are still the folio's, unreferenced beyond
 * the file and unlocked, they merge back.  Conversion support is the RFC's
 * part (a): under this variant the in-place conversion ioctl is on too.
 * What the engine leaves out: the RFC's merge on PUNCH_HOLE (a punched page
 * of a split folio comes back as a 4 KiB page), and splitting to 2 MiB first.
 */
#include "internal.h"

#define GIGA_NR (1ull << SS_GIGA_ORDER)

void giga_split(struct ss_machine *m, struct inode *in, uint32_t head)
{
	struct frame *hf = frame_rw(m, head);
	uint8_t keep = hf->flags & (F_DIRTY | F_UPTODATE | F_PREPARED);
	uint32_t xkeep = hf->xflags;
	int32_t head_refs = hf->refcount;
	uint64_t nr = 1ull << hf->order;
	for (uint64_t i = 0; i < nr; i++) {
		struct frame *f = frame_rw(m, head + i);
		f->order = 0;
		f->flags = keep;
		/* the folio's flags; the raw poisoned mark stays on its own frame */
		f->xflags = (xkeep & ~(uint32_t)X_HWPOISON_RAW) | (f->xflags & X_HWPOISON_RAW);
		f->refcount = i ? 1 : head_refs;
	}
	pin_split(m, head, nr);
	ev_touch(m, SS_T_SPLIT, inode_fd(in), -1, hf->index, nr, head);
}

/* split every 1 GiB folio that [start, end) covers only in part */
void giga_split_range(struct ss_machine *m, struct inode *in, uint64_t start, uint64_t end)
{
	uint64_t edges[2] = { start, end - 1 };
	for (int k = 0; k < 2; k++) {
		uint64_t v = tree_load(&in->cache, edges[k]);
		if (!v)
			continue;
		uint32_t head = frame_head(m, (uint32_t)(v - 1));
		const struct frame *hf = frame_ro(m, head);
		if (!(hf->flags & F_HEAD) || hf->order != SS_GIGA_ORDER)
			continue;
		if (hf->index < start || hf->index + GIGA_NR > end)
			giga_split(m, in, head);
	}
}

/* the pages of [base, base + 1 GiB) can be one folio again */
static bool mergeable(struct ss_machine *m, struct inode *in, uint64_t base, uint64_t *head)
{
	uint64_t v = tree_load(&in->cache, base);
	if (!v || ((v - 1) & (GIGA_NR - 1)))
		return false;
	*head = v - 1;
	if (!attrs_all(&in->gattrs, base, base + GIGA_NR, attrs_get(&in->gattrs, base)))
		return false;
	if (tree_consecutive(&in->cache, base, v, base + GIGA_NR) < GIGA_NR)
		return false;
	for (uint64_t i = 0; i < GIGA_NR; i++) {
		const struct frame *f = frame_ro(m, *head + i);
		if (f->state != SS_FRAME_CACHE || (f->flags & (F_HEAD | F_TAIL | F_LOCKED)) ||
		    f->refcount != 1)
			return false;
	}
	return true;
}

void giga_merge_range(struct ss_machine *m, struct inode *in, uint64_t start, uint64_t end)
{
	for (uint64_t base = start & ~(GIGA_NR - 1); base < end; base += GIGA_NR) {
		uint64_t head;
		if (!mergeable(m, in, base, &head))
			continue;
		uint8_t keep = frame_ro(m, head)->flags & (F_DIRTY | F_UPTODATE | F_PREPARED);
		uint32_t xkeep = frame_ro(m, head)->xflags;
		for (uint64_t i = 0; i < GIGA_NR; i++) {
			struct frame *f = frame_rw(m, head + i);
			f->order = SS_GIGA_ORDER;
			f->flags = i ? (uint8_t)((keep & ~F_PREPARED) | F_TAIL) : (uint8_t)(keep | F_HEAD);
			f->xflags = i ? (f->xflags & X_HWPOISON_RAW) : xkeep;
			f->refcount = i ? 0 : 1;
		}
		ev_touch(m, SS_T_MERGE, inode_fd(in), -1, base, GIGA_NR, head);
	}
}
