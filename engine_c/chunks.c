/*
 * chunks.c - the frame array in copy-on-write chunks.
 *
 * A machine's frames live in chunks of 2^m->fshift descriptors (FCHUNK_SHIFT:
 * 2^12, 128 KiB) behind a table (m->fchunks).  A clone copies the table and
 * takes a reference on every chunk: 16M frames are 4096 chunks, a 32 KiB
 * table.  The first write to a frame of a shared chunk (frame_rw) gives the
 * writer its own copy and drops its reference on the shared one, so two
 * clones pay only for the chunks they change.
 *
 * Clones live in different threads, each machine entered by one thread at a
 * time: references are atomic.  A chunk with refs == 1 is written in place:
 * the one holder is this machine, and a new holder comes only from a clone
 * of this machine (serialized with its writes by its owner).  A chunk with
 * refs > 1 is never written: a writer copies it, then drops its reference
 * (release), so the last holder's acquire load of refs == 1 sees the copies
 * done before it writes in place.
 */
#include "internal.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t chunk_bytes(uint32_t nr)
{
	return sizeof(struct fchunk) + (size_t)nr * sizeof(struct frame);
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

static void chunk_put(struct fchunk *k)
{
	if (atomic_fetch_sub_explicit(&k->refs, 1, memory_order_acq_rel) == 1)
		free(k);
}

int fchunks_init(struct ss_machine *m)
{
	uint64_t pages = m->cfg.phys_pages;
	uint32_t n = (uint32_t)((pages + m->fmask) >> m->fshift);
	m->fchunks = calloc(n, sizeof(*m->fchunks));
	if (!m->fchunks)
		return -ENOMEM;
	m->nfchunks = n;
	for (uint32_t c = 0; c < n; c++) {
		uint64_t left = pages - ((uint64_t)c << m->fshift);
		uint32_t nr = left < m->fmask + 1ull ? (uint32_t)left : m->fmask + 1;
		struct fchunk *k = chunk_new(nr, true);
		if (!k)
			goto err;
		m->fchunks[c] = k;
	}
	return 0;
err:
	fchunks_free(m);
	return -ENOMEM;
}

int fchunks_clone(struct ss_machine *dst, const struct ss_machine *src, bool deep)
{
	dst->fchunks = calloc(src->nfchunks, sizeof(*dst->fchunks));
	if (!dst->fchunks)
		return -ENOMEM;
	dst->nfchunks = src->nfchunks;
	for (uint32_t c = 0; c < src->nfchunks; c++) {
		struct fchunk *k = src->fchunks[c];
		if (deep) {
			struct fchunk *d = chunk_new(k->nr, false);
			if (!d)
				goto err;
			memcpy(d->f, k->f, (size_t)k->nr * sizeof(struct frame));
			k = d;
		} else {
			atomic_fetch_add_explicit(&k->refs, 1, memory_order_relaxed);
		}
		dst->fchunks[c] = k;
	}
	return 0;
err:
	fchunks_free(dst);
	return -ENOMEM;
}

void fchunks_free(struct ss_machine *m)
{
	if (!m->fchunks)
		return;
	for (uint32_t c = 0; c < m->nfchunks; c++)
		if (m->fchunks[c])
			chunk_put(m->fchunks[c]);
	free(m->fchunks);
	m->fchunks = NULL;
	m->nfchunks = 0;
}

struct fchunk *fchunk_unshare(struct ss_machine *m, uint32_t c)
{
	struct fchunk *old = m->fchunks[c];
	struct fchunk *k = chunk_new(old->nr, false);
	if (!k) {
		fputs("sealscope: out of memory copying a shared frame chunk\n", stderr);
		abort();
	}
	memcpy(k->f, old->f, (size_t)old->nr * sizeof(struct frame));
	m->fchunks[c] = k;
	chunk_put(old);
	return k;
}

uint64_t fchunks_owned_bytes(const struct ss_machine *m, const struct ss_machine *beside)
{
	uint64_t b = (uint64_t)m->nfchunks * sizeof(*m->fchunks);
	bool pair = beside && beside->nfchunks == m->nfchunks;
	for (uint32_t c = 0; c < m->nfchunks; c++) {
		const struct fchunk *k = m->fchunks[c];
		if (pair && beside->fchunks[c] == k)
			continue;
		unsigned int refs = atomic_load_explicit(&k->refs, memory_order_relaxed);
		b += chunk_bytes(k->nr) / (refs ? refs : 1);
	}
	return b;
}
