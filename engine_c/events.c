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

static int grow(void **arr, uint64_t *cap, uint64_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	uint64_t c = *cap ? *cap : 64;
	while (c < need)
		c *= 2;
	void *p = realloc(*arr, c * elem);
	if (!p)
		return -ENOMEM;
	*arr = p;
	*cap = c;
	return 0;
}

void ev_begin(struct ss_machine *m, int op, int fd, int64_t a0, int64_t a1,
	      int64_t a2, int64_t a3)
{
	if (grow((void **)&m->events, &m->cap_events, m->nevents + 1, sizeof(struct evrec))) {
		m->cur = NULL;
		return;
	}
	struct evrec *r = &m->events[m->nevents++];
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

void ev_callback(struct ss_machine *m, int fn, int owner, uint64_t start, uint64_t end)
{
	if (!m->cur || grow((void **)&m->cbs, &m->cap_cbs, m->ncbs + 1, sizeof(*m->cbs)))
		return;
	struct ss_callback *c = &m->cbs[m->ncbs++];
	c->fn = fn;
	c->owner = owner;
	c->start = start;
	c->end = end;
	m->cur->e.ncallbacks++;
}

void ev_touch(struct ss_machine *m, int what, int fd, int owner, uint64_t index,
	      uint64_t npages, uint64_t pfn)
{
	struct evrec *r = m->cur;
	if (!r || !npages)
		return;
	if (r->e.ntouches) {
		struct ss_touch *l = &m->touches[m->ntouches - 1];
		if (l->what == what && l->fd == fd && l->owner == owner &&
		    l->index + l->npages == index && l->pfn + l->npages == pfn) {
			l->npages += npages;
			return;
		}
	}
	if (grow((void **)&m->touches, &m->cap_touches, m->ntouches + 1, sizeof(*m->touches)))
		return;
	struct ss_touch *t = &m->touches[m->ntouches++];
	t->what = what;
	t->fd = fd;
	t->owner = owner;
	t->index = index;
	t->npages = npages;
	t->pfn = pfn;
	r->e.ntouches++;
}

void events_free(struct ss_machine *m)
{
	free(m->events);
	free(m->cbs);
	free(m->touches);
}

static int dup_array(void **dst, const void *src, uint64_t n, size_t elem)
{
	*dst = NULL;
	if (!n)
		return 0;
	*dst = malloc(n * elem);
	if (!*dst)
		return -ENOMEM;
	memcpy(*dst, src, n * elem);
	return 0;
}

int events_clone(struct ss_machine *dst, const struct ss_machine *src)
{
	dst->cap_events = src->nevents;
	dst->cap_cbs = src->ncbs;
	dst->cap_touches = src->ntouches;
	dst->cur = NULL;
	if (dup_array((void **)&dst->events, src->events, src->nevents, sizeof(struct evrec)) ||
	    dup_array((void **)&dst->cbs, src->cbs, src->ncbs, sizeof(struct ss_callback)) ||
	    dup_array((void **)&dst->touches, src->touches, src->ntouches, sizeof(struct ss_touch)))
		return -ENOMEM;
	return 0;
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
	*out = m->events[seq - 1].e;
	return 0;
}

int ss_event_callbacks(const struct ss_machine *m, uint64_t seq, uint32_t first,
		       struct ss_callback *out, int max)
{
	if (seq < 1 || seq > m->nevents || max < 0)
		return -ENOENT;
	const struct evrec *r = &m->events[seq - 1];
	int n = 0;
	for (uint64_t i = first; i < r->e.ncallbacks && n < max; i++)
		out[n++] = m->cbs[r->cb_first + i];
	return n;
}

int ss_event_touches(const struct ss_machine *m, uint64_t seq, uint32_t first,
		     struct ss_touch *out, int max)
{
	if (seq < 1 || seq > m->nevents || max < 0)
		return -ENOENT;
	const struct evrec *r = &m->events[seq - 1];
	int n = 0;
	for (uint64_t i = first; i < r->e.ntouches && n < max; i++)
		out[n++] = m->touches[r->t_first + i];
	return n;
}
