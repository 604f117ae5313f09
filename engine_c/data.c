/*
 * data.c - page contents: 4 KiB buffers in slots, only for written pages.
 *
 * A frame's data field names its slot (+ 1); slot i holds a page, shared by
 * the clones of the machine that wrote it (a reference count, atomic as in
 * chunks.c) until one of them writes it again: data_get copies a shared page
 * first.  A clone copies the slot table (12 bytes a page) and takes a
 * reference on each page instead of copying 4 KiB.
 */
#include "internal.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dpage {
	atomic_uint refs;      /* machines holding this page */
	uint32_t spare;
	uint8_t b[SS_PAGE_SIZE];
};

static void page_put(struct dpage *p)
{
	if (p && atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1)
		free(p);
}

const uint8_t *data_ro(const struct ss_machine *m, uint32_t slot)
{
	return m->data[slot]->b;
}

/* slot's page, this machine's own (copied if shared); NULL when out of memory */
static uint8_t *data_mut(struct ss_machine *m, uint32_t slot)
{
	struct dpage *p = m->data[slot];
	if (atomic_load_explicit(&p->refs, memory_order_acquire) == 1)
		return p->b;
	struct dpage *c = malloc(sizeof(*c));
	if (!c)
		return NULL;
	atomic_init(&c->refs, 1);
	memcpy(c->b, p->b, sizeof(c->b));
	m->data[slot] = c;
	page_put(p);
	return c->b;
}

int data_get(struct ss_machine *m, uint32_t pfn, uint8_t **out)
{
	const struct frame *cf = frame_ro(m, pfn);
	if (cf->data) {
		*out = data_mut(m, cf->data - 1);
		return *out ? 0 : -ENOMEM;
	}
	struct dpage *page = calloc(1, sizeof(*page));
	if (!page)
		return -ENOMEM;
	atomic_init(&page->refs, 1);
	uint32_t slot;
	if (m->data_free) {
		slot = m->data_free - 1;
		m->data_free = m->data_next[slot];
	} else {
		if (m->ndata == m->cap_data) {
			uint32_t cap = m->cap_data ? m->cap_data * 2 : 64;
			struct dpage **d = realloc(m->data, cap * sizeof(*d));
			if (!d)
				goto err_page;
			m->data = d;
			uint32_t *nx = realloc(m->data_next, cap * sizeof(*nx));
			if (!nx)
				goto err_page;
			m->data_next = nx;
			m->cap_data = cap;
		}
		slot = m->ndata++;
	}
	m->data[slot] = page;
	frame_rw(m, pfn)->data = slot + 1;
	*out = page->b;
	return 0;
err_page:
	free(page);
	return -ENOMEM;
}

int data_zero(struct ss_machine *m, uint32_t pfn, unsigned int from, unsigned int to)
{
	const struct frame *f = frame_ro(m, pfn);
	if (!f->data || from >= to)
		return 0;
	uint8_t *b = data_mut(m, f->data - 1);
	if (!b)
		return -ENOMEM;
	memset(b + from, 0, to - from);
	return 0;
}

void data_drop(struct ss_machine *m, uint32_t pfn)
{
	const struct frame *cf = frame_ro(m, pfn);
	if (!cf->data)
		return;
	uint32_t slot = cf->data - 1;
	page_put(m->data[slot]);
	m->data[slot] = NULL;
	m->data_next[slot] = m->data_free;
	m->data_free = slot + 1;
	frame_rw(m, pfn)->data = 0;
}

int data_clone(struct ss_machine *dst, const struct ss_machine *src, bool deep)
{
	dst->data = NULL;
	dst->data_next = NULL;
	dst->ndata = dst->cap_data = 0;
	if (!src->cap_data)
		return 0;
	dst->data = calloc(src->cap_data, sizeof(*dst->data));
	dst->data_next = malloc(src->cap_data * sizeof(*dst->data_next));
	if (!dst->data || !dst->data_next)
		return -ENOMEM;
	memcpy(dst->data_next, src->data_next, src->cap_data * sizeof(*dst->data_next));
	dst->cap_data = src->cap_data;
	for (uint32_t i = 0; i < src->ndata; i++) {
		struct dpage *p = src->data[i];
		dst->ndata = i + 1;
		if (!p)
			continue;
		if (deep) {
			struct dpage *c = malloc(sizeof(*c));
			if (!c)
				return -ENOMEM;  /* data_free_all undoes */
			atomic_init(&c->refs, 1);
			memcpy(c->b, p->b, sizeof(c->b));
			p = c;
		} else {
			atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
		}
		dst->data[i] = p;
	}
	return 0;
}

void data_free_all(struct ss_machine *m)
{
	for (uint32_t i = 0; i < m->ndata; i++)
		page_put(m->data[i]);
	free(m->data);
	free(m->data_next);
	m->data = NULL;
	m->data_next = NULL;
	m->ndata = m->cap_data = 0;
}

uint64_t data_bytes(const struct ss_machine *m, bool owned, const struct ss_machine *beside)
{
	uint64_t b = (uint64_t)m->cap_data * (sizeof(*m->data) + sizeof(*m->data_next));
	for (uint32_t i = 0; i < m->ndata; i++) {
		const struct dpage *p = m->data[i];
		if (!p)
			continue;
		if (!owned) {
			b += sizeof(*p);
			continue;
		}
		if (beside && i < beside->ndata && beside->data[i] == p)
			continue;
		unsigned int refs = atomic_load_explicit(&p->refs, memory_order_relaxed);
		b += sizeof(*p) / (refs ? refs : 1);
	}
	return b;
}
