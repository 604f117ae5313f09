/*
 * mmu.c - a VM's secondary MMU: gfn -> pfn, and every source of zaps.
 *
 * The table is the owner's gfns tree (owners.c's encoding: (pfn + 1) << 1,
 * bit 0 for a 2 MiB mapping at its 512-aligned gfn).  A gfn maps huge when
 * the page is huge, gfn and pfn agree modulo 512, the whole 2 MiB lies in
 * the memslot (and, for the VMM's mapping, in that mapping) and the
 * attributes are alike over it (kvm_mmu_max_mapping_level / hugepage_has_attrs).
 *
 * Zap sources (each zap is a SS_T_ZAP touch of the event that caused it):
 *  - a guest_memfd punch: kvm_gmem_invalidate_begin in every bound slot
 *    (mmu_gmem_invalidate; only gfns mapped from that file);
 *  - the RFC's invalidate_page_range on either file of a fd-based slot;
 *  - the mmu notifier: pages of a file the VMM maps go (punch, truncate) or
 *    the VMM unmaps (mmu_notify_file, mmu_notify_hva);
 *  - an attribute change, a memslot deletion or move, a guest_memfd's release.
 *
 * Every frame a VM maps carries the VM's bit in frame->mapped; two gfns may
 * map one frame (two slots at one userspace_addr), so a zap clears the bit
 * only when no other gfn of the VM maps the frame (mmu_maps_pfn).
 */
#include "internal.h"

static uint64_t lookup_pfn1(const struct owner *o, uint64_t gfn)
{
	int order;
	return owner_lookup(o, gfn, &order);
}

/* the gfn of slot s at which file page (ino, index) would appear, or false */
static bool slot_gfn_of(const struct ss_machine *m, const struct memslot *s, uint32_t ino,
			uint64_t index, uint64_t *gfn, const struct mapping **next_map, int *mi)
{
	(void)next_map;
	if (*mi < 0) {
		*mi = 0;
		if (s->ino == ino || (s->shared_ino && s->shared_ino == ino)) {
			if (index >= s->index && index - s->index < s->npages) {
				*gfn = s->gfn + (index - s->index);
				return true;
			}
		}
	}
	if (is_rfc(m) && (s->flags & SS_MEM_FD))
		return false;  /* fd-based slots have no hva */
	if (!m->inodes[ino - 1].maps)
		return false;  /* the VMM maps nothing of the file */
	for (; *mi < m->nmaps; (*mi)++) {
		const struct mapping *mp = &m->maps[*mi];
		if (!mp->id || mp->ino != ino)
			continue;
		uint64_t first = (uint64_t)mp->offset >> SS_PAGE_SHIFT;
		uint64_t len = ((uint64_t)mp->length + SS_PAGE_SIZE - 1) >> SS_PAGE_SHIFT;
		if (index < first || index - first >= len)
			continue;
		uint64_t hva = mp->addr + ((index - first) << SS_PAGE_SHIFT);
		if (hva >= s->uaddr && ((hva - s->uaddr) >> SS_PAGE_SHIFT) < s->npages) {
			*gfn = s->gfn + ((hva - s->uaddr) >> SS_PAGE_SHIFT);
			(*mi)++;
			return true;
		}
	}
	return false;
}

bool mmu_maps_pfn(const struct ss_machine *m, const struct owner *o, uint64_t pfn)
{
	const struct frame *f = frame_ro(m, pfn);
	if (!f->ino)
		return false;
	if (o->nmapped == 0)
		return false;
	for (int i = 0; i < o->nslots; i++) {
		if (!slot_in_as0(&o->slots[i]))
			continue;
		int mi = -1;
		uint64_t gfn;
		while (slot_gfn_of(m, &o->slots[i], f->ino, f->index, &gfn, NULL, &mi))
			if (lookup_pfn1(o, gfn) == pfn + 1)
				return true;
	}
	return false;
}

static void mark(struct ss_machine *m, uint64_t pfn, uint64_t n, int owner)
{
	for (uint64_t i = 0; i < n; i++)
		frame_rw(m, pfn + i)->mapped |= (uint8_t)(1u << owner);
}

static void unmark(struct ss_machine *m, const struct owner *o, uint64_t pfn, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		if (!mmu_maps_pfn(m, o, pfn + i))
			frame_rw(m, pfn + i)->mapped &= (uint8_t)~(1u << o->id);
}

static void zap_entry(struct ss_machine *m, struct owner *o, uint64_t k, uint64_t v, uint32_t ino)
{
	uint64_t n = (v & 1) ? HPAGE_NR : 1;
	uint64_t pfn = (v >> 1) - 1;
	if (ino && frame_ro(m, pfn)->ino != ino)
		return;
	struct inode *in = inode_get(m, frame_ro(m, pfn)->ino);
	tree_erase(&o->gfns, k);
	unmark(m, o, pfn, n);
	o->nmapped -= n;
	o->nzapped += n;
	ev_touch(m, SS_T_ZAP, in ? in->fd : -1, o->id, k, n, pfn);
	if (in && in->kind == SS_KIND_GMEM)
		gmem_zap_private(m, o, pfn, n);  /* TDX: the S-EPT entry goes with it */
}

void mmu_zap(struct ss_machine *m, struct owner *o, uint64_t g0, uint64_t g1, uint32_t ino)
{
	if (g0 >= g1)
		return;
	/* a 2 MiB mapping starting below g0 that covers it (KVM zaps the whole PMD) */
	uint64_t base = g0 & ~(uint64_t)(HPAGE_NR - 1), v;
	if (base < g0 && ((v = tree_load(&o->gfns, base)) & 1))
		zap_entry(m, o, base, v, ino);
	uint64_t k = g0;
	while (k < g1 && (v = tree_find(&o->gfns, &k, g1 - 1))) {
		zap_entry(m, o, k, v, ino);
		k += (v & 1) ? HPAGE_NR : 1;
		if (!k)
			break;
	}
}

int mmu_map(struct ss_machine *m, struct owner *o, const struct memslot *s, uint64_t gfn,
	    uint64_t pfn, int huge, int *map_order)
{
	(void)s;
	struct inode *in = inode_get(m, frame_ro(m, pfn)->ino);
	int fd = in ? in->fd : -1;
	uint64_t base = gfn & ~(uint64_t)(HPAGE_NR - 1);
	*map_order = 0;
	if (huge) {
		mmu_zap(m, o, base, base + HPAGE_NR, 0);
		uint64_t head = pfn - (gfn - base);
		if (tree_store(&o->gfns, base, ((head + 1) << 1) | 1))
			return -ENOMEM;
		mark(m, head, HPAGE_NR, o->id);
		o->nmapped += HPAGE_NR;
		ev_touch(m, SS_T_MAP, fd, o->id, base, HPAGE_NR, head);
		*map_order = SS_HPAGE_ORDER;
		return 0;
	}
	mmu_zap(m, o, gfn, gfn + 1, 0);
	if (tree_store(&o->gfns, gfn, (pfn + 1) << 1))
		return -ENOMEM;
	mark(m, pfn, 1, o->id);
	o->nmapped++;
	ev_touch(m, SS_T_MAP, fd, o->id, gfn, 1, pfn);
	return 0;
}

static bool any_vm(const struct ss_machine *m)
{
	for (int i = 0; i < m->nowners; i++)
		if (m->owners[i].vm)
			return true;
	return false;
}

void mmu_notify_hva(struct ss_machine *m, uint32_t ino, uint64_t a, uint64_t b)
{
	for (int oi = 0; oi < m->nowners; oi++) {
		struct owner *o = &m->owners[oi];
		if (!o->vm)
			continue;
		for (int i = 0; i < o->nslots; i++) {
			struct memslot *s = &o->slots[i];
			if ((is_rfc(m) && (s->flags & SS_MEM_FD)) || !slot_in_as0(s))
				continue;
			uint64_t end = s->uaddr + (s->npages << SS_PAGE_SHIFT);
			uint64_t x = a > s->uaddr ? a : s->uaddr, y = b < end ? b : end;
			if (x >= y)
				continue;
			mmu_zap(m, o, s->gfn + ((x - s->uaddr) >> SS_PAGE_SHIFT),
				s->gfn + ((y - s->uaddr + SS_PAGE_SIZE - 1) >> SS_PAGE_SHIFT), ino);
		}
	}
}

void mmu_notify_file(struct ss_machine *m, uint32_t ino, uint64_t start, uint64_t end)
{
	const struct inode *in = inode_get(m, ino);
	if (!in || !in->maps || !any_vm(m))
		return;  /* nothing maps the file, or nobody to tell */
	for (int i = 0; i < m->nmaps; i++) {
		const struct mapping *mp = &m->maps[i];
		if (!mp->id || mp->ino != ino)
			continue;
		uint64_t first = (uint64_t)mp->offset >> SS_PAGE_SHIFT;
		uint64_t len = ((uint64_t)mp->length + SS_PAGE_SIZE - 1) >> SS_PAGE_SHIFT;
		uint64_t x = start > first ? start : first;
		uint64_t y = end < first + len ? end : first + len;
		if (x < y)
			mmu_notify_hva(m, ino, mp->addr + ((x - first) << SS_PAGE_SHIFT),
				       mp->addr + ((y - first) << SS_PAGE_SHIFT));
	}
}

void mmu_gmem_invalidate(struct ss_machine *m, struct owner *o, struct memslot *s, uint64_t a,
			 uint64_t b)
{
	if (slot_in_as0(s))
		mmu_zap(m, o, s->gfn + (a - s->index), s->gfn + (b - s->index), s->ino);
}

/* [*start, *end) grown to the huge pages at its edges: an allocation inside a
 * 2 MiB page allocates all of it (shmem rounds the index down), so pages the
 * request did not name are in private_fd now, private by the RFC's rule */
static void folio_bounds(const struct ss_machine *m, const struct inode *in, uint64_t *start,
			 uint64_t *end)
{
	uint64_t v;
	if ((v = tree_load(&in->cache, *start))) {
		const struct frame *hf = frame_ro(m, frame_head(m, (uint32_t)(v - 1)));
		if (hf->flags & F_HEAD)
			*start = hf->index;
	}
	if (*end > *start && (v = tree_load(&in->cache, *end - 1))) {
		const struct frame *hf = frame_ro(m, frame_head(m, (uint32_t)(v - 1)));
		if (hf->flags & F_HEAD)
			*end = hf->index + (1ull << hf->order);
	}
}

/* rfc-v2: get_lock_pfn(alloc) added the folio holding `index` to a private file
 * without the fallocate callback (patch 1 calls it from shmem_fallocate only), so
 * gfns a VM maps shared over that folio are private by the RFC's rule while the
 * VM's mapping still points at the shared copy.  Modelled as meant (the stale
 * shared mappings go, nothing maps eagerly: the caller is not the VM's fault),
 * the hazard marked (the event's raw stays the pfn get_lock_pfn returns). */
void mmu_rfc_alloc_unnotified(struct ss_machine *m, struct inode *in, uint64_t index)
{
	uint64_t start = index, end = index + 1;
	folio_bounds(m, in, &start, &end);
	for (int r = 0; r < in->nregs; r++) {
		struct owner *o = &m->owners[in->regs[r].owner];
		if (!o->vm)
			continue;
		for (int i = 0; i < o->nslots; i++) {
			struct memslot *s = &o->slots[i];
			if (s->ino != in->ino)
				continue;
			uint64_t a = start > s->index ? start : s->index;
			uint64_t b = end < s->index + s->npages ? end : s->index + s->npages;
			if (a >= b)
				continue;
			uint64_t g0 = s->gfn + (a - s->index), g1 = s->gfn + (b - s->index);
			for (uint64_t g = g0; g < g1; g++) {
				int order;
				if (!owner_lookup(o, g, &order))
					continue;
				if (m->cur && m->cur->e.hazard == SS_HAZ_NONE)
					ev_hazard(m, SS_HAZ_ALLOC_UNNOTIFIED, 0);
				mmu_zap(m, o, g0, g1, 0);
				break;
			}
		}
	}
}

void mmu_rfc_fallocate(struct ss_machine *m, struct owner *o, struct inode *in, uint64_t start,
		       uint64_t end)
{
	folio_bounds(m, in, &start, &end);
	for (int i = 0; i < o->nslots; i++) {
		struct memslot *s = &o->slots[i];
		if (s->ino != in->ino || !slot_in_as0(s))
			continue;  /* only the private view maps eagerly */
		uint64_t a = start > s->index ? start : s->index;
		uint64_t b = end < s->index + s->npages ? end : s->index + s->npages;
		if (a >= b)
			continue;
		/* the shared copy's mapping goes; the private pages map through
		 * vCPU 0 (patches 11-12: kvm_map_gfn_range), if it exists */
		mmu_zap(m, o, s->gfn + (a - s->index), s->gfn + (b - s->index), 0);
		if (o->vm->nvcpus < 1)
			continue;
		for (uint64_t idx = a; idx < b; idx++) {
			uint64_t v = tree_load(&in->cache, idx);
			if (!v)
				continue;
			int mo;
			if (mmu_map(m, o, s, s->gfn + (idx - s->index), v - 1, 0, &mo))
				return;
		}
	}
}
