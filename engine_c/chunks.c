/*
 * chunks.c - the frame array in copy-on-write chunks.
 *
 * A machine's frames live in chunks of 2^m->fshift descriptors (FCHUNK_SHIFT:
 * 64, 2 KiB), the chunks in groups of 2^m->gshift (FGROUP_SHIFT: 256) behind a
 * table (m->fgroups): a two-level tree.  A clone copies the table and takes a
 * reference on every group: 16M frames are 1024 groups, an 8 KiB table.  The
 * first write to a frame of a shared group gives the writer its own copy of
 * the group (256 pointers, a reference on each chunk) and of a shared chunk
 * its own copy of the chunk, dropping its reference on the shared ones: two
 * clones pay only for the chunks they change, a scattered write 2 KiB.
 *
 * Clones live in different threads, each machine entered by one thread at a
 * time: references are atomic.  A group or chunk with refs == 1 is written in
 * place: the one holder is this machine (or its group), and a new holder
 * comes only from a clone of this machine (serialized with its writes by its
 * owner).  One with refs > 1 is never written: a writer copies it, then
 * drops its reference (release), so the last holder's acquire load of
 * refs == 1 sees the copies done before it writes in place.
 */
#include "internal.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t chunk_bytes(uint32_t nr)
{
	return sizeof(struct fchunk) + (size_t)nr * sizeof(struct frame);
}

static size_t group_bytes(uint32_t n)
{
	return sizeof(struct fgroup) + (size_t)n * sizeof(struct fchunk *);
}

static struct fchunk *chunk_new(uint32_t nr, bool zero)
{
	struct fchunk *k = zero ? calloc(1, chunk_bytes(nr)) : malloc(chunk_bytes(nr));
	if (k) {
		atomic_init(&k->refs, 1);
		k->nr = nr;
	}
	return k;
}

static struct fgroup *group_new(uint32_t n)
{
	struct fgroup *g = calloc(1, group_bytes(n));
	if (g) {
		atomic_init(&g->refs, 1);
		g->n = n;
	}
	return g;
}

static void chunk_put(struct fchunk *k)
{
	if (atomic_fetch_sub_explicit(&k->refs, 1, memory_order_acq_rel) == 1)
		free(k);
}

static void group_put(struct fgroup *g)
{
	if (atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) != 1)
		return;
	for (uint32_t i = 0; i < g->n; i++)
		if (g->c[i])
			chunk_put(g->c[i]);
	free(g);
}

int fchunks_init(struct ss_machine *m)
{
	uint64_t pages = m->cfg.phys_pages;
	uint32_t nchunks = (uint32_t)((pages + m->fmask) >> m->fshift);
	uint32_t per = 1u << m->gshift;
	uint32_t n = (nchunks + per - 1) >> m->gshift;
	m->fgroups = calloc(n, sizeof(*m->fgroups));
	if (!m->fgroups)
		return -ENOMEM;
	m->nfgroups = n;
	for (uint32_t gi = 0; gi < n; gi++) {
		uint32_t left = nchunks - (gi << m->gshift);
		struct fgroup *g = group_new(left < per ? left : per);
		if (!g)
			goto err;
		m->fgroups[gi] = g;
		for (uint32_t i = 0; i < g->n; i++) {
			uint64_t first = (((uint64_t)gi << m->gshift) + i) << m->fshift;
			uint64_t nr = pages - first < m->fmask + 1ull ? pages - first : m->fmask + 1ull;
			if (!(g->c[i] = chunk_new((uint32_t)nr, true)))
				goto err;
		}
	}
	return 0;
err:
	fchunks_free(m);
	return -ENOMEM;
}

static struct fchunk *chunk_copy(const struct fchunk *k)
{
	struct fchunk *d = chunk_new(k->nr, false);
	if (d)
		memcpy(d->f, k->f, (size_t)k->nr * sizeof(struct frame));
	return d;
}

int fchunks_clone(struct ss_machine *dst, const struct ss_machine *src, bool deep)
{
	dst->fgroups = calloc(src->nfgroups, sizeof(*dst->fgroups));
	if (!dst->fgroups)
		return -ENOMEM;
	dst->nfgroups = src->nfgroups;
	for (uint32_t gi = 0; gi < src->nfgroups; gi++) {
		struct fgroup *g = src->fgroups[gi];
		if (!deep) {
			atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
			dst->fgroups[gi] = g;
			continue;
		}
		struct fgroup *d = group_new(g->n);
		if (!d)
			goto err;
		dst->fgroups[gi] = d;
		for (uint32_t i = 0; i < g->n; i++)
			if (!(d->c[i] = chunk_copy(g->c[i])))
				goto err;
	}
	return 0;
err:
	fchunks_free(dst);
	return -ENOMEM;
}

void fchunks_free(struct ss_machine *m)
{
	if (!m->fgroups)
		return;
	for (uint32_t gi = 0; gi < m->nfgroups; gi++)
		if (m->fgroups[gi])
			group_put(m->fgroups[gi]);
	free(m->fgroups);
	m->fgroups = NULL;
	m->nfgroups = 0;
}

static void out_of_memory(void)
{
	fputs("sealscope: out of memory copying a shared frame chunk\n", stderr);
	abort();
}

struct fchunk *fchunk_unshare(struct ss_machine *m, uint32_t c)
{
	uint32_t gi = c >> m->gshift, i = c & ((1u << m->gshift) - 1);
	struct fgroup *g = m->fgroups[gi];
	if (atomic_load_explicit(&g->refs, memory_order_acquire) != 1) {
		struct fgroup *d = group_new(g->n);
		if (!d)
			out_of_memory();
		for (uint32_t j = 0; j < g->n; j++) {
			d->c[j] = g->c[j];
			atomic_fetch_add_explicit(&d->c[j]->refs, 1, memory_order_relaxed);
		}
		m->fgroups[gi] = d;
		group_put(g);
		g = d;
	}
	struct fchunk *k = g->c[i];
	if (atomic_load_explicit(&k->refs, memory_order_acquire) == 1)
		return k;  /* the group was shared, the chunk only through it */
	struct fchunk *d = chunk_copy(k);
	if (!d)
		out_of_memory();
	g->c[i] = d;
	chunk_put(k);
	return d;
}

uint64_t fchunks_owned_bytes(const struct ss_machine *m, const struct ss_machine *beside)
{
	uint64_t b = (uint64_t)m->nfgroups * sizeof(*m->fgroups);
	bool pair = beside && beside->nfgroups == m->nfgroups && beside->gshift == m->gshift;
	for (uint32_t gi = 0; gi < m->nfgroups; gi++) {
		const struct fgroup *g = m->fgroups[gi], *o = pair ? beside->fgroups[gi] : NULL;
		if (g == o)
			continue;
		unsigned int grefs = atomic_load_explicit(&g->refs, memory_order_relaxed);
		grefs = grefs ? grefs : 1;
		b += group_bytes(g->n) / grefs;
		for (uint32_t i = 0; i < g->n; i++) {
			const struct fchunk *k = g->c[i];
			if (o && o->n == g->n && o->c[i] == k)
				continue;
			unsigned int refs = atomic_load_explicit(&k->refs, memory_order_relaxed);
			b += chunk_bytes(k->nr) / ((uint64_t)grefs * (refs ? refs : 1));
		}
	}
	return b;
}
