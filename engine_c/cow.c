/*
 * cow.c - MAP_PRIVATE copy-on-write: the anonymous pages a private mapping of a
 * memfd gets when something writes through it.
 *
 * A read through a private mapping maps the file's page (shmem_fault; a hole
 * is allocated as a shared touch does).  A write fault (mm/memory.c
 * do_cow_fault for a page not mapped yet, wp_page_copy for one mapped read
 * only) allocates an anonymous page, copies the file page into it (the file
 * page is faulted in first: __do_fault, then copy_mc_user_highpage) and maps
 * the copy for this mapping only: later reads and writes through the mapping
 * at that index see the copy, the file (pread, other mappings) never does.
 * The copy's frame comes from the one allocator (ENOMEM when none is free).
 *
 * A mapping keeps its copies in its cow tree (file index -> pfn + 1).  A copy
 * is a frame in state SS_FRAME_COW with the file's ino and index (the page it
 * copied: what views and VM faults name) and the map id in xspare; it has one
 * reference (the mapping's PTE) and one per GUP pin (kvm_pin.c), F_DIRTY so it
 * may hold contents.  A pinned copy whose mapping drops it is an orphan until
 * the unpin.
 *
 * They go:
 *  - munmap: zap_pte_range frees them (the mmu notifier zapped VM mappings
 *    through the range first, rw.c);
 *  - a truncate down: truncate_pagecache's unmap_mapping_range(holebegin, 0,
 *    even_cows=1) drops every copy at or past the new EOF page;
 *  - not on a hole punch (shmem_fallocate: unmap_mapping_range(..., 0),
 *    even_cows=0 keeps private COW pages; the mmu notifier still covers the
 *    range, so a VM mapping a copy there zaps it: cow_punch), nor on close
 *    (the mapping holds the file).
 * The PTE change of wp_page_copy runs the mmu notifier
 * (mmu_notifier_invalidate_range_start over the page): a VM mapping the old
 * page through this address zaps it, and its next fault maps the copy
 * (hva_to_pfn with FOLL_WRITE, virt/kvm/kvm_main.c).
 */
#include "internal.h"
#include <string.h>

uint64_t cow_lookup(const struct mapping *mp, uint64_t index)
{
	return map_is_private(mp) ? tree_load(&mp->cow, index) : 0;
}

bool cow_any(const struct mapping *mp, uint64_t start, uint64_t n)
{
	uint64_t idx = start;
	return map_is_private(mp) && mp->cow.count && tree_find(&mp->cow, &idx, start + n - 1);
}

bool cow_pending(const struct ss_machine *m, uint64_t hva)
{
	const struct mapping *mp = vmm_find(m, hva);
	if (!mp || !map_is_private(mp))
		return false;
	uint64_t index = ((uint64_t)mp->offset + (hva - mp->addr)) >> SS_PAGE_SHIFT;
	return !tree_load(&mp->cow, index);
}

/* the mapping's reference goes; a pinned copy stays an orphan until the unpin
 * (kvm_pin.c), as a punched pinned page does (pagecache.c page_remove) */
static void cow_free_frame(struct ss_machine *m, struct inode *in, uint64_t index, uint32_t pfn)
{
	struct frame *f = frame_rw(m, pfn);
	data_drop(m, pfn);
	if (--f->refcount > 0 && in) {
		f->state = SS_FRAME_ORPHAN;
		f->xspare = 0;
		in->orphans++;
		ev_touch(m, SS_T_ORPHAN, inode_fd(in), -1, index, 1, pfn);
		return;
	}
	ev_touch(m, SS_T_FREE, in ? inode_fd(in) : -1, -1, index, 1, pfn);
	frames_free(m, pfn, 0);
}

int cow_break(struct ss_machine *m, struct mapping *mp, struct inode *in, uint64_t index,
	      uint64_t *pfn)
{
	uint64_t v = tree_load(&mp->cow, index);
	if (v) {
		*pfn = v - 1;
		return 0;
	}
	uint64_t src;
	bool isnew;
	int err = cache_alloc_page(m, in, index, &src, &isnew);  /* __do_fault first */
	if (err)
		return err;
	int64_t p = frames_alloc(m, 0);
	if (p < 0)
		return (int)p;
	if (tree_store(&mp->cow, index, (uint64_t)p + 1)) {
		frames_free(m, (uint32_t)p, 0);
		return -ENOMEM;
	}
	uint8_t buf[SS_PAGE_SIZE];
	uint32_t sdata = frame_ro(m, src)->data;
	if (sdata)  /* data_get may move slots: copy out first */
		memcpy(buf, data_ro(m, sdata - 1), SS_PAGE_SIZE);
	struct frame *f = frame_rw(m, (uint64_t)p);
	f->state = SS_FRAME_COW;
	f->ino = in->ino;
	f->index = index;
	f->refcount = 1;
	f->xspare = (uint32_t)mp->id;
	f->flags = F_DIRTY | F_UPTODATE;
	uint8_t *d;
	if (sdata) {
		if (data_get(m, (uint32_t)p, &d)) {
			tree_erase(&mp->cow, index);
			frames_free(m, (uint32_t)p, 0);
			return -ENOMEM;
		}
		memcpy(d, buf, SS_PAGE_SIZE);
	}
	/* wp_page_copy: the mmu notifier over the page's address */
	uint64_t hva = mp->addr + ((index - ((uint64_t)mp->offset >> SS_PAGE_SHIFT)) << SS_PAGE_SHIFT);
	mmu_notify_hva(m, in->ino, hva, hva + SS_PAGE_SIZE);
	ev_touch(m, SS_T_COW, inode_fd(in), -1, index, 1, (uint64_t)p);
	*pfn = (uint64_t)p;
	return 0;
}

void cow_unmap(struct ss_machine *m, struct mapping *mp)
{
	struct inode *in = inode_get(m, mp->ino);
	uint64_t idx = 0, v;
	while ((v = tree_find(&mp->cow, &idx, UINT64_MAX))) {
		cow_free_frame(m, in, idx, (uint32_t)(v - 1));
		if (++idx == 0)
			break;
	}
	tree_destroy(&mp->cow);
}

void cow_truncate(struct ss_machine *m, struct inode *in, uint64_t from)
{
	for (int i = 0; i < m->nmaps; i++) {
		struct mapping *mp = &m->maps[i];
		if (!mp->id || mp->ino != in->ino || !mp->cow.count)
			continue;
		uint64_t idx = from, v, first = (uint64_t)mp->offset >> SS_PAGE_SHIFT;
		while ((v = tree_find(&mp->cow, &idx, UINT64_MAX))) {
			/* unmap_mapping_range(even_cows=1): a VM's mapping of it goes first */
			uint64_t hva = mp->addr + ((idx - first) << SS_PAGE_SHIFT);
			mmu_notify_hva(m, in->ino, hva, hva + SS_PAGE_SIZE);
			tree_erase(&mp->cow, idx);
			cow_free_frame(m, in, idx, (uint32_t)(v - 1));
			if (++idx == 0)
				break;
		}
	}
}

void cow_punch(struct ss_machine *m, struct inode *in, uint64_t start, uint64_t end)
{
	for (int i = 0; i < m->nmaps; i++) {
		const struct mapping *mp = &m->maps[i];
		if (!mp->id || mp->ino != in->ino || !mp->cow.count)
			continue;
		uint64_t first = (uint64_t)mp->offset >> SS_PAGE_SHIFT, idx = start;
		/* zap_page_range_single's notifier covers the range, copies too: a VM
		 * mapping a copy zaps it (the copy stays; its next fault maps it again) */
		while (idx < end && tree_find(&mp->cow, &idx, end - 1)) {
			uint64_t hva = mp->addr + ((idx - first) << SS_PAGE_SHIFT);
			mmu_notify_hva(m, in->ino, hva, hva + SS_PAGE_SIZE);
			if (++idx == 0)
				break;
		}
	}
}

int cow_clone(struct ss_machine *dst, const struct ss_machine *src, bool deep)
{
	for (int i = 0; i < dst->nmaps; i++)
		tree_init(&dst->maps[i].cow);
	for (int i = 0; i < dst->nmaps; i++)
		if (src->maps[i].id && tree_clone(&dst->maps[i].cow, &src->maps[i].cow, deep))
			return -ENOMEM;
	return 0;
}

void cow_free_all(struct ss_machine *m)
{
	for (int i = 0; i < m->nmaps; i++)
		tree_destroy(&m->maps[i].cow);
}

uint64_t cow_bytes(const struct ss_machine *m, bool owned, const struct ss_machine *beside)
{
	uint64_t b = 0;
	for (int i = 0; i < m->nmaps; i++) {
		const struct tree *t = &m->maps[i].cow;
		if (!owned) {
			b += t->nodes * (8 + 8 + 64 * 8);
			continue;
		}
		const struct tree *o = beside && i < beside->nmaps && beside->maps[i].id == m->maps[i].id
				       ? &beside->maps[i].cow : NULL;
		b += tree_owned_bytes(t, o);
	}
	return b;
}

/* the mapping side of the frame invariants: every copy a COW frame of its
 * mapping at that index, below the file's end (a truncate down dropped the rest);
 * the frame side (each COW frame in its mapping's tree) is check.c's */
int cow_check(const struct ss_machine *m, uint64_t *ncow, char *msg, size_t len)
{
	uint64_t n = 0;
	for (int i = 0; i < m->nmaps; i++) {
		const struct mapping *mp = &m->maps[i];
		if (!mp->id) {
			if (mp->cow.count)
				return check_fail(msg, len, "unmapped slot %d keeps copies", i + 1);
			continue;
		}
		if (mp->cow.count && !map_is_private(mp))
			return check_fail(msg, len, "shared mapping %d has copies", mp->id);
		const struct inode *in = &m->inodes[mp->ino - 1];
		uint64_t idx = 0, v, seen = 0;
		while ((v = tree_find(&mp->cow, &idx, UINT64_MAX))) {
			if (v - 1 >= m->cfg.phys_pages)
				return check_fail(msg, len, "mapping %d copy %llu past memory", mp->id,
						      (unsigned long long)idx);
			const struct frame *f = frame_ro(m, v - 1);
			if (f->state != SS_FRAME_COW || f->ino != mp->ino || f->index != idx ||
			    f->xspare != (uint32_t)mp->id || f->refcount < 1 || f->order ||
			    (f->flags & ~(F_DIRTY | F_UPTODATE)))
				return check_fail(msg, len,
						      "mapping %d index %llu -> frame %llu that is not its copy",
						      mp->id, (unsigned long long)idx,
						      (unsigned long long)(v - 1));
			if (idx >= (((uint64_t)in->size + SS_PAGE_SIZE - 1) >> SS_PAGE_SHIFT))
				return check_fail(msg, len, "mapping %d keeps a copy at %llu past EOF",
						      mp->id, (unsigned long long)idx);
			seen++;
			if (++idx == 0)
				break;
		}
		if (seen != mp->cow.count)
			return check_fail(msg, len, "mapping %d: %llu copies, tree says %llu", mp->id,
					      (unsigned long long)seen, (unsigned long long)mp->cow.count);
		n += seen;
	}
	*ncow = n;
	return 0;
}
