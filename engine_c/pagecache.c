/*
 * pagecache.c - a file's pages: allocation (with transparent huge pages),
 * removal (punch, truncate) with the RFC's per-page invalidation, and the
 * explicit invalidation that frees nothing.
 *
 * A file's cache is a tree from page index to pfn + 1.  A huge page is 512
 * entries pointing at 512 consecutive frames; its head frame holds the lock,
 * the dirty bit and the reference count (the cache holds one reference per
 * page, a get_lock_pfn holder one more).
 *
 * Removal follows shmem_undo_range() of 5.15 with the RFC's hook: for each
 * page in the range, the owners' invalidate_page_range(start', end') runs
 * with start' = max(start, page index) and end' = min(end, page index +
 * pages) - 1 (inclusive), then the page goes (a huge page only partly in the
 * range is split first and only its subpages inside go).  A locked page is
 * skipped and waited for: the caller gets SS_PENDING.
 */
#include "internal.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t inode_limit(const struct inode *in)
{
	uint64_t sz = ((uint64_t)in->size + SS_PAGE_SIZE - 1) >> SS_PAGE_SHIFT;
	uint64_t k = (uint64_t)in->keep_end;
	return sz > k ? sz : k;
}

static unsigned int alloc_order(struct ss_machine *m, struct inode *in, uint64_t index)
{
	if (is_giga(m, in)) {  /* hugetlb_1g: a 1 GiB folio where none of its pages is */
		uint64_t g = index & ~((1ull << SS_GIGA_ORDER) - 1);
		uint64_t i = g;
		return tree_find(&in->cache, &i, g + (1ull << SS_GIGA_ORDER) - 1) ? 0 : SS_GIGA_ORDER;
	}
	if (in->kind != SS_KIND_MEMFD || m->cfg.thp == SS_THP_NEVER)
		return 0;
	uint64_t h = index & ~(uint64_t)(HPAGE_NR - 1);
	if (h + HPAGE_NR > ((uint64_t)SS_MAX_FILESIZE >> SS_PAGE_SHIFT))
		return 0;
	if (m->cfg.thp == SS_THP_WITHIN_SIZE &&
	    (((uint64_t)in->size + SS_PAGE_SIZE - 1) >> SS_PAGE_SHIFT) < h + HPAGE_NR)
		return 0;
	uint64_t i = h;
	if (tree_find(&in->cache, &i, h + HPAGE_NR - 1))
		return 0;
	return SS_HPAGE_ORDER;
}

int cache_alloc_page(struct ss_machine *m, struct inode *in, uint64_t index,
		     uint64_t *pfn_out, bool *new_out)
{
	uint64_t v = tree_load(&in->cache, index);
	if (v) {
		*pfn_out = v - 1;
		*new_out = false;
		return 0;
	}
	unsigned int order = alloc_order(m, in, index);
	int64_t p = order ? frames_alloc(m, order) : -ENOMEM;
	if (p < 0 && order == SS_GIGA_ORDER)
		return (int)p;  /* the pool has no 1 GiB page left */
	if (p < 0) {
		order = 0;
		p = frames_alloc(m, 0);
		if (p < 0)
			return (int)p;
	}
	uint64_t nr = 1ULL << order;
	uint64_t base = index & ~(nr - 1);
	/* the whole page's entries in one pass over its leaves (512 for a huge page) */
	if (tree_store_run(&in->cache, base, nr, (uint64_t)p + 1)) {
		tree_erase_run(&in->cache, base, nr);
		frames_free(m, (uint32_t)p, order);
		return -ENOMEM;
	}
	for (uint64_t i = 0; i < nr; i++) {
		struct frame *f = frame_rw(m, p + i);
		f->state = SS_FRAME_CACHE;
		f->ino = in->ino;
		f->index = base + i;
		f->order = (uint8_t)order;
		f->flags = order ? (i ? F_TAIL : F_HEAD) : 0;
	}
	frame_rw(m, p)->refcount = 1;
	in->nr_pages += nr;
	if ((int64_t)(base + nr) > in->keep_end &&
	    base + nr > (((uint64_t)in->size + SS_PAGE_SIZE - 1) >> SS_PAGE_SHIFT))
		in->keep_end = (int64_t)(base + nr);
	ev_touch(m, SS_T_ALLOC, inode_fd(in), -1, base, nr, (uint64_t)p);
	*pfn_out = (uint64_t)p + (index - base);
	*new_out = true;
	return 0;
}

/* Drop the cache's reference on the page at head; free it if it was last. */
static void page_remove(struct ss_machine *m, struct inode *in, uint32_t head)
{
	struct frame *hf = frame_rw(m, head);
	uint64_t nr = (hf->flags & F_HEAD) ? 1ULL << hf->order : 1;
	uint64_t base = hf->index;
	tree_erase_run(&in->cache, base, nr);
	if (hf->flags & F_DIRTY)  /* only a dirty page has contents (check.c) */
		for (uint64_t i = 0; i < nr; i++)
			data_drop(m, head + (uint32_t)i);
	in->nr_pages -= nr;
	hf->refcount--;
	if (hf->refcount > 0) {
		for (uint64_t i = 0; i < nr; i++)
			frame_rw(m, head + i)->state = SS_FRAME_ORPHAN;
		in->orphans++;
		ev_touch(m, SS_T_ORPHAN, inode_fd(in), -1, base, nr, head);
		return;
	}
	ev_touch(m, SS_T_FREE, inode_fd(in), -1, base, nr, head);
	gmem_reclaim(m, head);
	gmem_direct_map_restore(m, head);
	if (!poison_keep_out(m, head, (unsigned int)(nr > 1 ? hf->order : 0)))
		frames_free(m, head, (unsigned int)(nr > 1 ? hf->order : 0));
}

void page_free_frames(struct ss_machine *m, uint32_t head)
{
	struct frame *hf = frame_rw(m, head);
	unsigned int order = (hf->flags & F_HEAD) ? hf->order : 0;
	struct inode *in = hf->state == SS_FRAME_ORPHAN ? inode_get(m, hf->ino) : NULL;
	ev_touch(m, SS_T_FREE, -1, -1, hf->index, 1ULL << order, head);
	gmem_reclaim(m, head);  /* .free_folio: the arch takes the page back */
	gmem_direct_map_restore(m, head);
	for (uint32_t i = 0; i < (1u << order); i++)
		data_drop(m, head + i);
	if (!poison_keep_out(m, head, order))
		frames_free(m, head, order);
	if (in) {
		in->orphans--;
		inode_put_maybe(m, in);  /* the file may have waited for it */
	}
}

/* split_huge_page(): 512 order-0 pages, each with the cache's reference;
 * references beyond the cache's (a sleeper on the page holds one, and
 * sleeps on the head's pfn) stay with the head page */
static void page_split(struct ss_machine *m, struct inode *in, uint32_t head)
{
	struct frame *hf = frame_rw(m, head);
	uint8_t keep = hf->flags & (F_DIRTY | F_UPTODATE);
	int32_t head_refs = hf->refcount;
	for (uint32_t i = 0; i < HPAGE_NR; i++) {
		struct frame *f = frame_rw(m, head + i);
		f->order = 0;
		f->flags = keep;
		f->refcount = i ? 1 : head_refs;
	}
	pin_split(m, head, HPAGE_NR);
	ev_touch(m, SS_T_SPLIT, inode_fd(in), -1, hf->index, HPAGE_NR, head);
}

static void page_zero(struct ss_machine *m, struct inode *in, uint64_t index,
		      unsigned int from, unsigned int to)
{
	uint64_t v = tree_load(&in->cache, index);
	if (!v || from >= to)
		return;
	if (data_zero(m, (uint32_t)(v - 1), from, to)) {  /* a shared page copied first */
		fputs("sealscope: out of memory copying a shared page\n", stderr);
		abort();
	}
	ev_touch(m, SS_T_ZERO, inode_fd(in), -1, index, 1, v - 1);
}

/* zero the partial pages at the byte edges of [lstart, lend) */
void cache_zero_edges(struct ss_machine *m, struct inode *in, uint64_t lstart, uint64_t lend)
{
	uint64_t s = lstart, e = lend;
	unsigned int ps = s & (SS_PAGE_SIZE - 1), pe = e & (SS_PAGE_SIZE - 1);
	if ((s >> SS_PAGE_SHIFT) == (e >> SS_PAGE_SHIFT)) {
		if (ps || pe)
			page_zero(m, in, s >> SS_PAGE_SHIFT, ps, pe ? pe : SS_PAGE_SIZE);
		return;
	}
	if (ps)
		page_zero(m, in, s >> SS_PAGE_SHIFT, ps, SS_PAGE_SIZE);
	if (pe)
		page_zero(m, in, e >> SS_PAGE_SHIFT, 0, pe);
}

int cache_remove_range(struct ss_machine *m, struct inode *in, uint64_t start,
		       uint64_t end, uint64_t *resume, uint64_t *wait_pfn)
{
	uint64_t idx = *resume;
	bool waiting = false;
	uint64_t v;
	if (idx >= end)
		return 0;
	while ((v = tree_find(&in->cache, &idx, end - 1))) {
		uint32_t head = frame_head(m, (uint32_t)(v - 1));
		struct frame *hf = frame_rw(m, head);
		uint64_t nr = (hf->flags & F_HEAD) ? 1ULL << hf->order : 1;
		uint64_t hidx = hf->index;
		uint64_t next = hidx + nr;
		if (hf->flags & F_LOCKED) {
			if (!waiting) {
				*wait_pfn = head;
				*resume = hidx;
				ev_touch(m, SS_T_WAIT, inode_fd(in), -1, hidx, nr, head);
			}
			waiting = true;
		} else {
			uint64_t s = hidx > start ? hidx : start;
			uint64_t e = next < end ? next : end;
			if (in->kind == SS_KIND_MEMFD)
				callback_invalidate(m, in, s, e - 1);
			mmu_notify_file(m, in->ino, s, e);  /* the VMM's mappings */
			if (nr > 1 && (s != hidx || e != next)) {
				if (hf->order == SS_GIGA_ORDER)
					giga_split(m, in, head);
				else
					page_split(m, in, head);
				for (uint64_t i = s; i < e; i++)
					page_remove(m, in, head + (uint32_t)(i - hidx));
			} else {
				page_remove(m, in, head);
			}
		}
		if (next >= end || next == 0)
			break;
		idx = next > idx ? next : idx + 1;  /* always forward */
	}
	if (!waiting)
		*resume = end;
	return waiting ? SS_PENDING : 0;
}

void cache_free_all(struct ss_machine *m, struct inode *in)
{
	uint64_t idx = 0, v;
	while ((v = tree_find(&in->cache, &idx, UINT64_MAX))) {
		uint32_t head = frame_head(m, (uint32_t)(v - 1));
		page_remove(m, in, head);
		idx = 0;
	}
}

int cache_invalidate_range(struct ss_machine *m, struct inode *in, uint64_t start,
			   uint64_t end_incl)
{
	uint64_t idx = start, v;
	int n = 0;
	while ((v = tree_find(&in->cache, &idx, end_incl))) {
		uint32_t head = frame_head(m, (uint32_t)(v - 1));
		struct frame *hf = frame_rw(m, head);
		uint64_t nr = (hf->flags & F_HEAD) ? 1ULL << hf->order : 1;
		uint64_t last = hf->index + nr - 1;
		uint64_t s = hf->index > start ? hf->index : start;
		uint64_t e = last < end_incl ? last : end_incl;
		callback_invalidate(m, in, s, e);
		n++;
		if (last >= end_incl)
			break;
		idx = last + 1;
	}
	return n;
}

/* ---- pages of a fallocate in progress (F_NEW on their heads) ---- */

void mark_falloc(struct ss_machine *m, uint32_t head)
{
	frame_rw(m, head)->flags |= F_NEW;
}

void clear_falloc(struct ss_machine *m, struct inode *in, uint64_t start, uint64_t end)
{
	uint64_t idx = start, v;
	while (idx < end && (v = tree_find(&in->cache, &idx, end - 1))) {
		uint32_t head = frame_head(m, (uint32_t)(v - 1));
		struct frame *hf = frame_rw(m, head);
		hf->flags &= (uint8_t)~F_NEW;
		idx = (hf->flags & F_HEAD) ? hf->index + (1ULL << hf->order) : idx + 1;
	}
}

void undo_new_pages(struct ss_machine *m, struct inode *in, uint64_t start, uint64_t end)
{
	uint64_t idx = start, v;
	while (idx < end && (v = tree_find(&in->cache, &idx, end - 1))) {
		uint32_t head = frame_head(m, (uint32_t)(v - 1));
		struct frame *hf = frame_rw(m, head);
		uint64_t next = (hf->flags & F_HEAD) ? hf->index + (1ULL << hf->order) : idx + 1;
		if (hf->flags & F_NEW)
			page_remove(m, in, head);
		idx = next;
	}
}

/* ---- migration (compaction) ---- */

static int migrate_check(struct ss_machine *m, uint64_t pfn, struct inode **inp)
{
	if (pfn >= m->cfg.phys_pages)
		return -EINVAL;
	uint32_t head = frame_head(m, (uint32_t)pfn);
	struct frame *hf = frame_rw(m, head);
	if (hf->state != SS_FRAME_CACHE)
		return -ENOENT;
	struct inode *in = inode_get(m, hf->ino);
	if (!in)
		return -ENOENT;
	*inp = in;
	if (is_rfc(m) && (in->seals & SS_F_SEAL_GUEST))
		return -ENOTSUPP;
	if (in->kind == SS_KIND_GMEM)
		return -EBUSY;
	if ((hf->flags & F_LOCKED) || hf->refcount > 1)
		return -EBUSY;
	uint64_t nr = (hf->flags & F_HEAD) ? 1ULL << hf->order : 1;
	for (uint64_t i = 0; i < nr; i++)
		if (frame_ro(m, head + i)->mapped)
			return -EBUSY;
	return 0;
}

int64_t ss_migrate_page(struct ss_machine *m, uint64_t pfn)
{
	ev_begin(m, SS_OP_MIGRATE, -1, (int64_t)pfn, 0, 0, 0);
	struct inode *in = NULL;
	int err = migrate_check(m, pfn, &in);
	if (in && m->cur)
		m->cur->e.fd = in->fd;
	if (err)
		return ev_end(m, err);
	uint32_t head = frame_head(m, (uint32_t)pfn);
	struct frame *hf = frame_rw(m, head);
	unsigned int order = (hf->flags & F_HEAD) ? hf->order : 0;
	uint64_t nr = 1ULL << order;
	int64_t to = frames_alloc(m, order);
	if (to < 0)
		return ev_end(m, to);
	for (uint64_t i = 0; i < nr; i++) {
		struct frame *src = frame_rw(m, head + i);
		*frame_rw(m, to + i) = *src;  /* index, file, flags, data, counts */
		src->data = 0;
		tree_store(&in->cache, src->index, (uint64_t)to + i + 1);  /* replaces */
	}
	ev_touch(m, SS_T_MIGRATE, in->fd, -1, hf->index, nr, (uint64_t)to);
	frames_free(m, head, order);
	return ev_end(m, to + (int64_t)(pfn - head));
}
