/*
 * check.c - the invariant checker.
 *
 * Verifies, from scratch, what every other file promises:
 *  - every frame is free (inside exactly one buddy block on the right free
 *    list) or used (in exactly one file's cache at one index, orphaned with a
 *    reference, or one MAP_PRIVATE mapping's copy: cow.c), never both, and
 *    the free counters add up;
 *  - a file's cache tree and the frames point at each other, the resident
 *    page count matches, and nothing lies past the file's end;
 *  - compound pages are whole and aligned; locks, dirty bits and reference
 *    counts live on heads; a locked page is referenced by its holder; only
 *    a dirty page has contents (a clean one is freed without looking);
 *  - owners' gfn tables and the frames' mapped bits agree both ways;
 *  - every waiter sleeps on something that is really locked.
 * Returns 0, or -EUCLEAN with the first violation described in msg.
 */
#include "internal.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the checkers' one way to fail: the message into msg (when given), -EUCLEAN */
int check_fail(char *msg, size_t len, const char *fmt, ...)
{
	if (msg && len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(msg, len, fmt, ap);
		va_end(ap);
	}
	return -EUCLEAN;
}

#define CHECK(cond, ...) do { if (!(cond)) return check_fail(msg, len, __VA_ARGS__); } while (0)

static int check_free_lists(const struct ss_machine *m, char *msg, size_t len)
{
	uint64_t free_frames = 0;
	for (unsigned int o = 0; o <= SS_MAX_ORDER; o++) {
		uint64_t cnt = 0;
		uint32_t prev = NIL;
		for (uint32_t p = m->free_head[o]; p != NIL; p = frame_ro(m, p)->next) {
			CHECK(p < m->cfg.phys_pages, "free list %u holds pfn %u past the end", o, p);
			const struct frame *f = frame_ro(m, p);
			CHECK(f->flags == F_BUDDY && f->order == o, "pfn %u on free list %u is not a free block of that order", p, o);
			CHECK(f->prev == prev, "pfn %u: broken free-list link", p);
			CHECK((p & ((1u << o) - 1)) == 0, "free block %u misaligned for order %u", p, o);
			prev = p;
			CHECK(++cnt <= m->cfg.phys_pages, "free list %u loops", o);
		}
		CHECK(cnt == m->nr_free_blocks[o], "free list %u has %llu blocks, counter says %llu", o,
		      (unsigned long long)cnt, (unsigned long long)m->nr_free_blocks[o]);
		free_frames += cnt << o;
	}
	CHECK(free_frames == m->nr_free, "free lists hold %llu frames, nr_free is %llu",
	      (unsigned long long)free_frames, (unsigned long long)m->nr_free);
	return 0;
}

static int check_frames(const struct ss_machine *m, uint64_t *mapped_per_owner, uint64_t *ncow,
			char *msg, size_t len)
{
	static const struct frame zero;
	uint64_t n = m->cfg.phys_pages, free_frames = 0;
	for (uint64_t p = 0; p < n;) {
		const struct frame *f = frame_ro(m, p);
		if (f->flags & F_BUDDY) {
			uint64_t sz = 1ULL << f->order;
			CHECK(p + sz <= n, "free block at %llu runs past memory", (unsigned long long)p);
			for (uint64_t i = 1; i < sz; i++)
				CHECK(!memcmp(frame_ro(m, p + i), &zero, sizeof(zero)),
				      "frame %llu inside free block %llu is not clear",
				      (unsigned long long)(p + i), (unsigned long long)p);
			free_frames += sz;
			p += sz;
			continue;
		}
		CHECK(f->state != SS_FRAME_FREE, "frame %llu is free but in no buddy block", (unsigned long long)p);
		if (f->state == SS_FRAME_HWPOISON) {  /* off the free lists for good (kvm_poison.c) */
			CHECK(!f->ino && !f->refcount && !f->mapped && !f->data && !f->flags &&
			      f->xflags == (X_HWPOISON | X_HWPOISON_RAW),
			      "hwpoisoned frame %llu kept off the free lists is not clear",
			      (unsigned long long)p);
			p++;
			continue;
		}
		CHECK(f->ino && f->ino <= (uint32_t)m->ninodes && m->inodes[f->ino - 1].ino == f->ino,
		      "frame %llu belongs to no file", (unsigned long long)p);
		const struct inode *in = &m->inodes[f->ino - 1];
		uint64_t v = tree_load(&in->cache, f->index);
		if (f->state == SS_FRAME_COW) {  /* a private mapping's copy (cow.c) */
			uint32_t id = f->xspare;
			CHECK(id >= 1 && id <= (uint32_t)m->nmaps && m->maps[id - 1].id == (int)id &&
			      m->maps[id - 1].ino == f->ino && tree_load(&m->maps[id - 1].cow, f->index) == p + 1,
			      "copy frame %llu says mapping %u index %llu, the mapping disagrees",
			      (unsigned long long)p, id, (unsigned long long)f->index);
			(*ncow)++;
		} else if (f->state == SS_FRAME_CACHE) {
			CHECK(v == p + 1, "frame %llu says file %u index %llu, the cache disagrees",
			      (unsigned long long)p, f->ino, (unsigned long long)f->index);
			CHECK(f->index < inode_limit(in) || in->pending, "page %llu of file %u lies past its end",
			      (unsigned long long)f->index, f->ino);
		} else {
			CHECK(f->state == SS_FRAME_ORPHAN, "frame %llu has bad state %u", (unsigned long long)p, f->state);
			CHECK(v != p + 1, "orphan frame %llu is still in the cache", (unsigned long long)p);
		}
		CHECK(!(f->flags & F_NEW), "frame %llu still marked as in a fallocate", (unsigned long long)p);
		CHECK(!f->data || (f->flags & F_DIRTY), "frame %llu has contents but is not dirty",
		      (unsigned long long)p);
		for (int o = 0; o < SS_MAX_OWNERS; o++)
			if (f->mapped & (1u << o)) {
				CHECK(o < m->nowners, "frame %llu mapped by unknown owner %d", (unsigned long long)p, o);
				mapped_per_owner[o]++;
			}
		if (f->flags & F_HEAD) {
			uint64_t sz = 1ULL << f->order;
			CHECK((f->order == SS_HPAGE_ORDER ||
			       (f->order == SS_GIGA_ORDER && (m->cfg.variants & SS_VAR_HUGETLB_1G))) &&
				      (p & (sz - 1)) == 0 && (f->index & (sz - 1)) == 0,
			      "huge page at %llu misshapen", (unsigned long long)p);
			CHECK(f->refcount >= 1, "huge page %llu has refcount %d", (unsigned long long)p, f->refcount);
			CHECK(!(f->flags & F_LOCKED) || f->refcount >= 2 || !is_rfc(m),
			      "locked page %llu has no holder reference", (unsigned long long)p);
			for (uint64_t i = 1; i < sz; i++) {
				const struct frame *t = frame_ro(m, p + i);
				CHECK(t->flags & F_TAIL && !(t->flags & (F_LOCKED | F_HEAD)) && t->order == f->order &&
				      t->ino == f->ino && t->index == f->index + i && t->refcount == 0 &&
				      t->state == f->state,
				      "tail %llu of huge page %llu inconsistent", (unsigned long long)(p + i),
				      (unsigned long long)p);
				CHECK(!t->data || (f->flags & F_DIRTY),
				      "tail %llu has contents but its head is not dirty",
				      (unsigned long long)(p + i));
				if (t->state == SS_FRAME_CACHE)
					CHECK(tree_load(&in->cache, t->index) == p + i + 1,
					      "tail %llu not in the cache", (unsigned long long)(p + i));
				for (int o = 0; o < SS_MAX_OWNERS; o++)
					if (t->mapped & (1u << o))
						mapped_per_owner[o]++;
			}
			p += sz;
			continue;
		}
		CHECK(!(f->flags & F_TAIL) && f->order == 0, "frame %llu: stray tail or order", (unsigned long long)p);
		CHECK(f->refcount >= 1, "page %llu has refcount %d", (unsigned long long)p, f->refcount);
		CHECK(!(f->flags & F_LOCKED) || f->refcount >= 2,
		      "locked page %llu has no holder reference", (unsigned long long)p);
		p++;
	}
	CHECK(free_frames == m->nr_free, "buddy blocks hold %llu frames, nr_free is %llu",
	      (unsigned long long)free_frames, (unsigned long long)m->nr_free);
	return 0;
}

static int check_inodes(const struct ss_machine *m, char *msg, size_t len)
{
	for (int i = 0; i < m->ninodes; i++) {
		const struct inode *in = &m->inodes[i];
		if (!in->ino)
			continue;
		CHECK(in->ino == (uint32_t)i + 1, "inode slot %d holds ino %u", i, in->ino);
		CHECK(in->cache.count == in->nr_pages, "file %u: tree has %llu pages, nr_pages %llu",
		      in->ino, (unsigned long long)in->cache.count, (unsigned long long)in->nr_pages);
		CHECK(in->fd < 0 || (in->fd < m->nfds && m->fdtab[in->fd] == in->ino),
		      "file %u: fd %d does not point back", in->ino, in->fd);
		uint64_t idx = 0, v, seen = 0;
		while ((v = tree_find(&in->cache, &idx, UINT64_MAX))) {
			CHECK(v - 1 < m->cfg.phys_pages, "file %u index %llu: pfn out of range", in->ino,
			      (unsigned long long)idx);
			const struct frame *f = frame_ro(m, v - 1);
			CHECK(f->state == SS_FRAME_CACHE && f->ino == in->ino && f->index == idx,
			      "file %u index %llu -> frame %llu which says file %u index %llu", in->ino,
			      (unsigned long long)idx, (unsigned long long)(v - 1), f->ino,
			      (unsigned long long)f->index);
			seen++;
			if (++idx == 0)
				break;
		}
		CHECK(seen == in->nr_pages, "file %u: walked %llu pages, expected %llu", in->ino,
		      (unsigned long long)seen, (unsigned long long)in->nr_pages);
		int w = 0;
		for (int k = 0; k < m->nwaiters; k++)
			if (m->waiters[k].ino == in->ino &&
			    (m->waiters[k].kind == W_REMOVE || m->waiters[k].kind == W_BLOCKED))
				w++;
		CHECK(w == in->pending, "file %u: %d sleeping ops, pending says %d", in->ino, w, in->pending);
	}
	return 0;
}

static int check_owners(const struct ss_machine *m, const uint64_t *mapped_per_owner, char *msg, size_t len)
{
	for (int o = 0; o < m->nowners; o++) {
		const struct owner *ow = &m->owners[o];
		uint64_t k = 0, v, cnt = 0;
		while ((v = tree_find(&ow->gfns, &k, UINT64_MAX))) {
			uint64_t n = (v & 1) ? HPAGE_NR : 1;
			uint64_t pfn = (v >> 1) - 1;
			CHECK(pfn + n <= m->cfg.phys_pages, "owner %d gfn %llu maps past memory", o, (unsigned long long)k);
			for (uint64_t i = 0; i < n; i++) {
				const struct frame *f = frame_ro(m, pfn + i);
				CHECK((f->state == SS_FRAME_CACHE || f->state == SS_FRAME_COW) &&
				      (f->mapped & (1u << o)),
				      "owner %d maps gfn %llu to frame %llu that is %s", o,
				      (unsigned long long)(k + i), (unsigned long long)(pfn + i),
				      f->state == SS_FRAME_CACHE ? "not marked mapped" : "not a cache page");
			}
			cnt += n;
			k += n;
			if (!k)
				break;
		}
		CHECK(cnt == ow->nmapped, "owner %d maps %llu gfns, counter says %llu", o,
		      (unsigned long long)cnt, (unsigned long long)ow->nmapped);
		if (ow->vm)
			continue;  /* a VM may map a frame at two gfns: check_kvm() */
		CHECK(cnt == mapped_per_owner[o], "owner %d maps %llu gfns but %llu frames carry its bit", o,
		      (unsigned long long)cnt, (unsigned long long)mapped_per_owner[o]);
	}
	return 0;
}

static int check_waiters(const struct ss_machine *m, char *msg, size_t len)
{
	for (int i = 0; i < m->nwaiters; i++) {
		const struct waiter *w = &m->waiters[i];
		CHECK(w->seq >= 1 && w->seq <= m->nevents, "waiter %d names event %llu", i, (unsigned long long)w->seq);
		if (w->kind == W_BLOCKED)
			continue;
		CHECK(w->pfn < m->cfg.phys_pages && (frame_ro(m, w->pfn)->flags & F_LOCKED),
		      "waiter %d (event %llu) sleeps on pfn %llu which is not locked", i,
		      (unsigned long long)w->seq, (unsigned long long)w->pfn);
	}
	return 0;
}

/* the newest events' callback runs and touch records: kept ones a prefix within the
 * caps, runs in order and adding up (older events do not change once closed) */
static int check_events(const struct ss_machine *m, char *msg, size_t len)
{
	uint64_t from = m->nevents > 256 ? m->nevents - 16 : 0;
	for (uint64_t s = from; s < m->nevents; s++) {
		const struct evrec *r = ev_at(m, s);
		CHECK(r->e.callbacks_kept <= r->e.ncallbacks && r->cb_runs <= SS_EV_KEEP,
		      "event %llu keeps %u of %u callbacks in %u runs", (unsigned long long)s + 1,
		      r->e.callbacks_kept, r->e.ncallbacks, r->cb_runs);
		CHECK(r->e.touches_kept <= r->e.ntouches && r->t_kept <= SS_EV_KEEP &&
		      r->t_kept == r->e.touches_kept, "event %llu keeps %u of %u touches",
		      (unsigned long long)s + 1, r->e.touches_kept, r->e.ntouches);
		CHECK(r->cb_first + r->cb_runs <= m->ncbs && r->t_first + r->t_kept <= m->ntouches,
		      "event %llu: records past the log", (unsigned long long)s + 1);
		uint64_t next = 0;
		for (uint32_t k = 0; k < r->cb_runs; k++) {
			const struct cbrun *c = cb_at(m, r->cb_first + k);
			CHECK(c->first == next && c->count >= 1 && (c->count == 1 || c->step > 0),
			      "event %llu: callback run %u starts at %llu, want %llu",
			      (unsigned long long)s + 1, k, (unsigned long long)c->first,
			      (unsigned long long)next);
			next += c->count;
		}
		CHECK(next == r->e.callbacks_kept, "event %llu: runs hold %llu callbacks, kept %u",
		      (unsigned long long)s + 1, (unsigned long long)next, r->e.callbacks_kept);
	}
	return 0;
}

int ss_check(const struct ss_machine *m, char *msg, size_t len)
{
	uint64_t mapped[SS_MAX_OWNERS] = { 0 }, ncow = 0, ncopies = 0;
	int r;
	if (msg && len)
		msg[0] = 0;
	if ((r = check_free_lists(m, msg, len)) || (r = check_frames(m, mapped, &ncow, msg, len)) ||
	    (r = cow_check(m, &ncopies, msg, len)) ||
	    (r = check_inodes(m, msg, len)) || (r = check_owners(m, mapped, msg, len)) ||
	    (r = check_waiters(m, msg, len)) || (r = check_events(m, msg, len)) ||
	    (r = check_kvm(m, mapped, msg, len)) || (r = check_pins(m, msg, len)))
		return r;
	if (ncow != ncopies)
		return check_fail(msg, len, "%llu copy frames but the mappings hold %llu copies",
			    (unsigned long long)ncow, (unsigned long long)ncopies);
	return 0;
}
