/*
 * events.c - the event log.
 *
 * Every public operation opens one event (ev_begin), adds the callbacks it
 * caused and the pages and frames it touched, and closes it with its result
 * (ev_end).  A waiting operation that completes later gets an SS_OP_WAKE
 * event of its own naming the event that slept.  Touches of one event that
 * continue each other (next index, next pfn) are merged into one run, so a
 * bulk fallocate of a gigabyte is a handful of records.
 *
 * Out of memory while logging drops the record (never the operation): the
 * log is a view of the machine, the frames are its truth.
 */
#include "internal.h"
#include <stdlib.h>
#include <string.h>

void ev_begin(struct ss_machine *m, int op, int fd, int64_t a0, int64_t a1,
	      int64_t a2, int64_t a3)
{
	struct evrec *r = NULL;
	if (!seg_reserve(&m->events, sizeof(*r), m->nevents + 1))
		r = seg_mut(&m->events, sizeof(*r), m->nevents);
	m->cur = r;
	if (!r)
		return;
	m->nevents++;
	memset(r, 0, sizeof(*r));
	r->e.seq = m->nevents;
	r->e.op = op;
	r->e.fd = fd;
	r->e.args[0] = a0;
	r->e.args[1] = a1;
	r->e.args[2] = a2;
	r->e.args[3] = a3;
	r->cb_first = m->ncbs;
	r->t_first = m->ntouches;
	m->cur = r;
}

int64_t ev_end(struct ss_machine *m, int64_t result)
{
	if (m->cur)
		m->cur->e.result = result;
	m->cur = NULL;
	return result;
}

void ev_hazard(struct ss_machine *m, int hazard, uint64_t raw)
{
	if (!m->cur)
		return;
	m->cur->e.hazard = hazard;
	m->cur->e.raw = raw;
}

/* Whether callback {fn, owner, start, end} continues run r. */
static bool run_continues(const struct cbrun *r, int fn, int owner, uint64_t start,
			  uint64_t end)
{
	if (r->fn != fn || r->owner != owner || start <= r->start ||
	    end - start != r->end - r->start)
		return false;
	if (r->count == 1)
		return true;  /* the second callback sets the step */
	return start - r->start == r->step * r->count;
}

void ev_callback(struct ss_machine *m, int fn, int owner, uint64_t start, uint64_t end)
{
	struct evrec *r = m->cur;
	if (!r)
		return;
	r->e.ncallbacks++;
	if (r->cb_full)
		return;
	if (r->cb_runs) {
		struct cbrun *l = seg_mut(&m->cbs, sizeof(*l), m->ncbs - 1);
		if (l && run_continues(l, fn, owner, start, end)) {
			if (l->count == 1)
				l->step = start - l->start;
			l->count++;
			r->e.callbacks_kept++;
			return;
		}
	}
	struct cbrun *c = NULL;
	if (r->cb_runs < SS_EV_KEEP && m->ncbs < SS_LOG_KEEP &&
	    !seg_reserve(&m->cbs, sizeof(*c), m->ncbs + 1))
		c = seg_mut(&m->cbs, sizeof(*c), m->ncbs);
	if (!c) {
		r->cb_full = true;  /* counted, not kept: the kept ones stay a prefix */
		return;
	}
	m->ncbs++;
	c->fn = fn;
	c->owner = owner;
	c->start = start;
	c->end = end;
	c->step = 0;
	c->count = 1;
	c->first = r->e.ncallbacks - 1;
	r->cb_runs++;
	r->e.callbacks_kept++;
}

void ev_touch(struct ss_machine *m, int what, int fd, int owner, uint64_t index,
	      uint64_t npages, uint64_t pfn)
{
	struct evrec *r = m->cur;
	if (!r || !npages)
		return;
	struct ss_touch *l = &r->t_last;
	if (r->e.ntouches && l->what == what && l->fd == fd && l->owner == owner &&
	    l->index + l->npages == index && l->pfn + l->npages == pfn) {
		l->npages += npages;
		struct ss_touch *t;
		if (!r->t_full && (t = seg_mut(&m->touches, sizeof(*t), m->ntouches - 1)))
			t->npages += npages;
		return;
	}
	*l = (struct ss_touch){ .what = what, .fd = fd, .owner = owner, .index = index,
				.npages = npages, .pfn = pfn };
	r->e.ntouches++;
	if (r->t_full)
		return;
	struct ss_touch *t = NULL;
	if (r->t_kept < SS_EV_KEEP && m->ntouches < SS_LOG_KEEP &&
	    !seg_reserve(&m->touches, sizeof(*t), m->ntouches + 1))
		t = seg_mut(&m->touches, sizeof(*t), m->ntouches);
	if (!t) {
		r->t_full = true;
		return;
	}
	*t = *l;
	m->ntouches++;
	r->t_kept++;
	r->e.touches_kept++;
}

void events_free(struct ss_machine *m)
{
	seg_free(&m->events);
	seg_free(&m->cbs);
	seg_free(&m->touches);
}

int events_clone(struct ss_machine *dst, const struct ss_machine *src, bool deep)
{
	dst->cur = NULL;
	dst->nevents = dst->ncbs = dst->ntouches = 0;
	if (seg_clone(&dst->events, &src->events, sizeof(struct evrec), src->nevents, deep) ||
	    seg_clone(&dst->cbs, &src->cbs, sizeof(struct cbrun), src->ncbs, deep) ||
	    seg_clone(&dst->touches, &src->touches, sizeof(struct ss_touch), src->ntouches, deep))
		return -ENOMEM;
	dst->nevents = src->nevents;
	dst->ncbs = src->ncbs;
	dst->ntouches = src->ntouches;
	return 0;
}

uint64_t events_bytes(const struct ss_machine *m, bool owned, const struct ss_machine *beside)
{
	if (owned)
		return seg_owned_bytes(&m->events, beside ? &beside->events : NULL, sizeof(struct evrec)) +
		       seg_owned_bytes(&m->cbs, beside ? &beside->cbs : NULL, sizeof(struct cbrun)) +
		       seg_owned_bytes(&m->touches, beside ? &beside->touches : NULL,
				       sizeof(struct ss_touch));
	return (m->events.nsegs * sizeof(struct evrec) + m->cbs.nsegs * sizeof(struct cbrun) +
		m->touches.nsegs * sizeof(struct ss_touch)) * SEG_NR;
}

uint64_t ss_event_count(const struct ss_machine *m)
{
	return m->nevents;
}

const uint64_t *ss_event_counter(const struct ss_machine *m)
{
	return &m->nevents;
}

int ss_event_get(const struct ss_machine *m, uint64_t seq, struct ss_event *out)
{
	if (seq < 1 || seq > m->nevents)
		return -ENOENT;
	*out = ev_at(m, seq - 1)->e;
	return 0;
}

int ss_event_callbacks(const struct ss_machine *m, uint64_t seq, uint32_t first,
		       struct ss_callback *out, int max)
{
	if (seq < 1 || seq > m->nevents || max < 0)
		return -ENOENT;
	const struct evrec *r = ev_at(m, seq - 1);
	if (first >= r->e.callbacks_kept || !max)
		return 0;
	/* the last run starting at or before first */
	uint32_t lo = 0, hi = r->cb_runs;
	while (hi - lo > 1) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (cb_at(m, r->cb_first + mid)->first <= first)
			lo = mid;
		else
			hi = mid;
	}
	int n = 0;
	uint64_t i = first;
	for (uint32_t k = lo; k < r->cb_runs && n < max; k++) {
		const struct cbrun *c = cb_at(m, r->cb_first + k);
		for (uint64_t j = i - c->first; j < c->count && n < max; j++, i++) {
			uint64_t d = j * c->step;
			out[n++] = (struct ss_callback){ .fn = c->fn, .owner = c->owner,
							 .start = c->start + d, .end = c->end + d };
		}
	}
	return n;
}

int ss_event_touches(const struct ss_machine *m, uint64_t seq, uint32_t first,
		     struct ss_touch *out, int max)
{
	if (seq < 1 || seq > m->nevents || max < 0)
		return -ENOENT;
	const struct evrec *r = ev_at(m, seq - 1);
	int n = 0;
	for (uint64_t i = first; i < r->e.touches_kept && n < max; i++)
		out[n++] = *touch_at(m, r->t_first + i);
	return n;
}
