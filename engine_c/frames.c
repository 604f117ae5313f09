/*
 * frames.c - physical memory: frame descriptors and the buddy allocator.
 *
 * Like mm/page_alloc.c: free memory is kept in blocks of 2^order frames,
 * order 0..SS_MAX_ORDER, each block aligned to its size, on one free list
 * per order.  Allocation takes the first block of the smallest order that
 * fits and splits it, keeping the lower half and putting the upper halves
 * back (expand()); freeing merges a block with its buddy while the buddy is
 * a free block of the same order.  Lists are LIFO, so the engine is
 * deterministic and recently freed frames are reused first.
 *
 * Only the head frame of a free block is marked (F_BUDDY, order, links); the
 * other frames of the block are all-zero descriptors.
 */
#include "internal.h"
#include <stdlib.h>
#include <string.h>

size_t ss_frame_size(void)
{
	return sizeof(struct frame);
}

static void list_add(struct ss_machine *m, uint32_t pfn, unsigned int order)
{
	struct frame *f = frame_rw(m, pfn);
	f->flags = F_BUDDY;
	f->order = (uint8_t)order;
	f->state = SS_FRAME_FREE;
	f->prev = NIL;
	f->next = m->free_head[order];
	if (f->next != NIL)
		frame_rw(m, f->next)->prev = pfn;
	m->free_head[order] = pfn;
	m->nr_free_blocks[order]++;
}

static void list_del(struct ss_machine *m, uint32_t pfn, unsigned int order)
{
	struct frame *f = frame_rw(m, pfn);
	if (f->prev != NIL)
		frame_rw(m, f->prev)->next = f->next;
	else
		m->free_head[order] = f->next;
	if (f->next != NIL)
		frame_rw(m, f->next)->prev = f->prev;
	memset(f, 0, sizeof(*f));
	m->nr_free_blocks[order]--;
}

int frames_init(struct ss_machine *m)
{
	uint64_t n = m->cfg.phys_pages;
	if (fchunks_init(m))
		return -ENOMEM;
	for (unsigned int o = 0; o <= SS_MAX_ORDER; o++)
		m->free_head[o] = NIL;
	/* push in reverse so that pfn 0 heads the list */
	uint64_t block = 1u << SS_MAX_ORDER;
	for (uint64_t pfn = n; pfn >= block; pfn -= block)
		list_add(m, (uint32_t)(pfn - block), SS_MAX_ORDER);
	m->nr_free = n;
	return 0;
}

/* variant hugetlb_1g: an aligned 1 GiB range of wholly free max-order blocks,
 * taken off the free lists (the RFC's allocator takes 1 GiB folios from a
 * HugeTLB pool; here from the buddy allocator) */
static int64_t frames_alloc_giga(struct ss_machine *m)
{
	uint64_t nr = 1ull << SS_GIGA_ORDER, block = 1ull << SS_MAX_ORDER;
	for (uint64_t base = 0; base + nr <= m->cfg.phys_pages; base += nr) {
		bool all = true;
		for (uint64_t b = base; b < base + nr && all; b += block)
			all = (frame_ro(m, b)->flags & F_BUDDY) && frame_ro(m, b)->order == SS_MAX_ORDER;
		if (!all)
			continue;
		for (uint64_t b = base; b < base + nr; b += block)
			list_del(m, (uint32_t)b, SS_MAX_ORDER);
		m->nr_free -= nr;
		return (int64_t)base;
	}
	return -ENOMEM;
}

int64_t frames_alloc(struct ss_machine *m, unsigned int order)
{
	if (order == SS_GIGA_ORDER)
		return frames_alloc_giga(m);
	unsigned int o = order;
	while (o <= SS_MAX_ORDER && m->free_head[o] == NIL)
		o++;
	if (o > SS_MAX_ORDER)
		return -ENOMEM;
	uint32_t pfn = m->free_head[o];
	list_del(m, pfn, o);
	while (o > order) {
		o--;
		list_add(m, pfn + (1u << o), o);
	}
	m->nr_free -= 1u << order;
	return pfn;
}

void frames_free(struct ss_machine *m, uint32_t pfn, unsigned int order)
{
	if (order > SS_MAX_ORDER) {  /* a 1 GiB folio: back as max-order blocks */
		for (uint32_t b = 0; b < (1u << order); b += 1u << SS_MAX_ORDER)
			frames_free(m, pfn + b, SS_MAX_ORDER);
		return;
	}
	for (uint64_t p = pfn, end = pfn + (1ull << order); p < end;) {  /* a chunk at a time */
		uint64_t n = (m->fmask + 1ull) - (p & m->fmask);
		n = n < end - p ? n : end - p;
		memset(frame_rw(m, p), 0, n * sizeof(struct frame));
		p += n;
	}
	m->nr_free += 1u << order;
	while (order < SS_MAX_ORDER) {
		uint32_t buddy = pfn ^ (1u << order);
		if (buddy >= m->cfg.phys_pages)
			break;
		struct frame *b = frame_rw(m, buddy);
		if (!(b->flags & F_BUDDY) || b->order != order)
			break;
		list_del(m, buddy, order);
		pfn &= ~(1u << order);
		order++;
	}
	list_add(m, pfn, order);
}
