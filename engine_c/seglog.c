/*
 * seglog.c - the event log's arrays in copy-on-write segments.
 *
 * The log only grows, and only its last records change (the event being
 * built, the last callback run and touch record).  Its arrays (events,
 * callback runs, touch records) are segments of SEG_NR elements behind a
 * table: a clone takes a reference on every segment instead of copying
 * 10,000 events, and the first append of either side to the shared last
 * segment copies that one segment.  References are atomic, the unshare rule
 * that of chunks.c: a segment held once is written in place; a shared one is
 * copied, then the reference on it dropped.
 */
#include "internal.h"
#include <stdlib.h>
#include <string.h>

static size_t seg_bytes(size_t esize)
{
	return sizeof(struct seg) + (size_t)SEG_NR * esize;
}

static void seg_put(struct seg *s)
{
	if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
		free(s);
}

int seg_reserve(struct seglog *l, size_t esize, uint64_t need)
{
	uint64_t want = (need + SEG_NR - 1) >> SEG_SHIFT;
	if (want <= l->nsegs)
		return 0;
	if (want > l->capsegs) {
		uint64_t c = l->capsegs ? l->capsegs : 4;
		while (c < want)
			c *= 2;
		struct seg **t = realloc(l->segs, c * sizeof(*t));
		if (!t)
			return -ENOMEM;
		l->segs = t;
		l->capsegs = c;
	}
	while (l->nsegs < want) {
		struct seg *s = malloc(seg_bytes(esize));
		if (!s)
			return -ENOMEM;
		atomic_init(&s->refs, 1);
		l->segs[l->nsegs++] = s;
	}
	return 0;
}

void *seg_mut_slow(struct seglog *l, size_t esize, uint64_t i)
{
	struct seg *old = l->segs[i >> SEG_SHIFT];
	struct seg *s = malloc(seg_bytes(esize));
	if (!s)
		return NULL;
	atomic_init(&s->refs, 1);
	memcpy(s->b, old->b, (size_t)SEG_NR * esize);
	l->segs[i >> SEG_SHIFT] = s;
	seg_put(old);
	return (unsigned char *)s->b + (i & (SEG_NR - 1)) * esize;
}

int seg_clone(struct seglog *dst, const struct seglog *src, size_t esize, uint64_t n, bool deep)
{
	uint64_t want = (n + SEG_NR - 1) >> SEG_SHIFT;
	*dst = (struct seglog){ 0 };
	if (!want)
		return 0;
	dst->segs = malloc(want * sizeof(*dst->segs));
	if (!dst->segs)
		return -ENOMEM;
	dst->capsegs = want;
	for (uint64_t k = 0; k < want; k++) {
		struct seg *s = src->segs[k];
		if (deep) {
			struct seg *d = malloc(seg_bytes(esize));
			if (!d)
				return -ENOMEM;  /* dst holds the segments so far: seg_free undoes */
			atomic_init(&d->refs, 1);
			memcpy(d->b, s->b, (size_t)SEG_NR * esize);
			s = d;
		} else {
			atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
		}
		dst->segs[dst->nsegs++] = s;
	}
	return 0;
}

void seg_free(struct seglog *l)
{
	for (uint64_t k = 0; k < l->nsegs; k++)
		seg_put(l->segs[k]);
	free(l->segs);
	*l = (struct seglog){ 0 };
}

uint64_t seg_owned_bytes(const struct seglog *l, const struct seglog *beside, size_t esize)
{
	uint64_t b = l->capsegs * sizeof(*l->segs);
	for (uint64_t k = 0; k < l->nsegs; k++) {
		if (beside && k < beside->nsegs && beside->segs[k] == l->segs[k])
			continue;
		unsigned int refs = atomic_load_explicit(&l->segs[k]->refs, memory_order_relaxed);
		b += seg_bytes(esize) / (refs ? refs : 1);
	}
	return b;
}
