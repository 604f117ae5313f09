/*
 * machine.c - a simulated machine: creation, deep copy, and the read-only
 * views (file and owner information, runs of alike pages and frames).
 *
 * Views never walk holes page by page: a file's runs come from the cache
 * tree's find-next, free memory from buddy blocks, so a 1 TiB file with a
 * few resident pages is a few runs.
 */
#include "internal.h"
#include <stdlib.h>
#include <string.h>

struct ss_machine *ss_machine_new(const struct ss_config *cfg)
{
	return machine_new_chunked(cfg, FCHUNK_SHIFT, FGROUP_SHIFT);
}

struct ss_machine *machine_new_chunked(const struct ss_config *cfg, unsigned int fshift,
				       unsigned int gshift)
{
	if (fshift > 16 || gshift > 16)
		return NULL;
	if (!cfg || cfg->profile < SS_PROFILE_RFC_V2 || cfg->profile > SS_PROFILE_GMEM ||
	    cfg->thp < SS_THP_NEVER || cfg->thp > SS_THP_WITHIN_SIZE ||
	    (cfg->variants & ~(uint32_t)(SS_VAR_MULTI_OWNER | SS_VAR_MMAP_SHARED | SS_VAR_INPLACE |
					  SS_VAR_NO_DIRECT_MAP | SS_VAR_HUGETLB_1G)) ||
	    cfg->phys_pages < (1u << SS_MAX_ORDER) || cfg->phys_pages > SS_MAX_PHYS_PAGES ||
	    (cfg->phys_pages & ((1u << SS_MAX_ORDER) - 1)))
		return NULL;
	struct ss_machine *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->cfg = *cfg;
	m->fshift = fshift;
	m->fmask = (1u << fshift) - 1;
	m->gshift = gshift;
	m->gmask = (1u << gshift) - 1;
	if (frames_init(m)) {
		free(m);
		return NULL;
	}
	return m;
}

void ss_machine_free(struct ss_machine *m)
{
	if (!m)
		return;
	for (int i = 0; i < m->ninodes; i++)
		if (m->inodes[i].ino) {
			tree_destroy(&m->inodes[i].cache);
			attrs_free(&m->inodes[i].gattrs);
		}
	owners_free(m);
	waiters_free(m);
	events_free(m);
	data_free_all(m);
	free(m->inodes);
	free(m->fdtab);
	cow_free_all(m);
	free(m->maps);
	pins_free(m);
	free(m->hwpoison);
	fchunks_free(m);
	free(m);
}

void ss_machine_config(const struct ss_machine *m, struct ss_config *out)
{
	*out = m->cfg;
}

static void *dup_mem(const void *p, size_t n)
{
	if (!n || !p)
		return NULL;
	void *q = malloc(n);
	if (q)
		memcpy(q, p, n);
	return q;
}

static struct ss_machine *clone(const struct ss_machine *src, bool deep)
{
	struct ss_machine *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	*m = *src;
	/* nothing shared with src from here on: reset owned pointers first */
	m->fgroups = NULL;
	m->nfgroups = 0;
	m->inodes = NULL;
	m->fdtab = NULL;
	m->maps = NULL;
	m->nmaps = 0;  /* set once maps and their copies' trees are cloned */
	m->pins = NULL;
	m->npins = 0;
	m->hwpoison = NULL;
	m->nhwpoison = m->cap_hwpoison = 0;
	m->data = NULL;
	m->data_next = NULL;
	m->ndata = m->cap_data = 0;
	m->events = m->cbs = m->touches = (struct seglog){ 0 };
	m->waiters = NULL;
	m->nwaiters = m->cap_waiters = 0;
	m->cur = NULL;
	for (int i = 0; i < m->nowners; i++) {
		m->owners[i].slots = NULL;
		m->owners[i].vm = NULL;
		tree_init(&m->owners[i].gfns);
	}
	int ninodes = m->ninodes;
	m->ninodes = 0;
	m->nevents = m->ncbs = m->ntouches = 0;  /* events_clone sets them */

	if (fchunks_clone(m, src, deep))
		goto err;
	if (src->cap_inodes) {
		m->inodes = calloc((size_t)src->cap_inodes, sizeof(struct inode));
		if (!m->inodes)
			goto err;
		for (int i = 0; i < ninodes; i++) {
			m->inodes[i] = src->inodes[i];
			tree_init(&m->inodes[i].cache);
			m->inodes[i].gattrs = (struct attr_store){ 0 };
			m->ninodes = i + 1;
			if (src->inodes[i].ino && tree_clone(&m->inodes[i].cache, &src->inodes[i].cache, deep))
				goto err;
			if (src->inodes[i].ino && attrs_clone(&m->inodes[i].gattrs, &src->inodes[i].gattrs))
				goto err;
		}
	}
	if (src->nfds && !(m->fdtab = dup_mem(src->fdtab, (size_t)src->nfds * sizeof(uint32_t))))
		goto err;
	if (src->nmaps && !(m->maps = dup_mem(src->maps, (size_t)src->nmaps * sizeof(struct mapping))))
		goto err;
	m->nmaps = src->nmaps;
	if (cow_clone(m, src, deep))  /* every tree reset first: a failure frees only its own */
		goto err;
	if (pins_clone(m, src))
		goto err;
	if (src->nhwpoison) {
		m->hwpoison = dup_mem(src->hwpoison, src->nhwpoison * sizeof(uint32_t));
		if (!m->hwpoison)
			goto err;
		m->nhwpoison = m->cap_hwpoison = src->nhwpoison;
	}
	if (data_clone(m, src, deep))
		goto err;
	if (owners_clone(m, src, deep) || waiters_clone(m, src))
		goto err;
	if (events_clone(m, src, deep))
		goto err;
	return m;
err:
	ss_machine_free(m);
	return NULL;
}

struct ss_machine *ss_machine_clone(const struct ss_machine *src)
{
	return clone(src, false);
}

struct ss_machine *ss_machine_clone_full(const struct ss_machine *src)
{
	return clone(src, true);
}

/* ---- information ---- */

int ss_file_info(const struct ss_machine *cm, int fd, struct ss_file_info *out)
{
	struct ss_machine *m = (struct ss_machine *)cm;
	struct inode *in = fd_inode(m, fd);
	if (!in)
		return -EBADF;
	memset(out, 0, sizeof(*out));
	out->fd = fd;
	out->kind = in->kind;
	memcpy(out->name, in->name, sizeof(out->name));
	out->size = in->size;
	out->seals = in->seals;
	out->flags = in->flags;
	for (int i = 0; i < in->nregs; i++)
		out->owners |= 1u << in->regs[i].owner;
	out->nr_pages = in->nr_pages;
	out->mappings = in->maps;
	out->writable_maps = in->shared_maps;
	for (int i = 0; i < m->nwaiters; i++)
		if (m->waiters[i].ino == in->ino)
			out->pending++;
	return 0;
}

int ss_file_list(const struct ss_machine *m, int *fds, int max)
{
	int n = 0;
	for (int fd = 0; fd < m->nfds && n < max; fd++)
		if (m->fdtab[fd])
			fds[n++] = fd;
	return n;
}

int ss_owner_count(const struct ss_machine *m)
{
	return m->nowners;
}

int ss_owner_info(const struct ss_machine *m, int owner, struct ss_owner_info *out)
{
	if (owner < 0 || owner >= m->nowners)
		return -ENOENT;
	const struct owner *o = &m->owners[owner];
	memset(out, 0, sizeof(*out));
	out->id = o->id;
	out->kind = o->kind;
	memcpy(out->name, o->name, sizeof(out->name));
	out->nmemslots = o->nslots;
	out->nmapped = o->nmapped;
	out->nzapped = o->nzapped;
	out->ncallbacks = o->ncallbacks;
	return 0;
}

int ss_owner_memslots(const struct ss_machine *cm, int owner, struct ss_memslot *out, int max)
{
	struct ss_machine *m = (struct ss_machine *)cm;
	if (owner < 0 || owner >= m->nowners)
		return -ENOENT;
	const struct owner *o = &m->owners[owner];
	int n = 0;
	for (int i = 0; i < o->nslots && n < max; i++) {
		struct inode *in = inode_get(m, o->slots[i].ino);
		out[n].slot = o->slots[i].slot;
		out[n].fd = in ? in->fd : -1;
		out[n].gfn = o->slots[i].gfn;
		out[n].index = o->slots[i].index;
		out[n].npages = o->slots[i].npages;
		n++;
	}
	return n;
}

int ss_owner_gfn_runs(const struct ss_machine *m, int owner, uint64_t start,
		      struct ss_gfn_run *out, int max)
{
	if (owner < 0 || owner >= m->nowners)
		return -ENOENT;
	const struct owner *o = &m->owners[owner];
	uint64_t k = start, v;
	int n = 0;
	while (n <= max && (v = tree_find(&o->gfns, &k, UINT64_MAX))) {
		uint64_t cnt = (v & 1) ? HPAGE_NR : 1;
		uint64_t pfn = (v >> 1) - 1;
		int order = (v & 1) ? SS_HPAGE_ORDER : 0;
		if (n && out[n - 1].order == order && out[n - 1].gfn + out[n - 1].npages == k &&
		    out[n - 1].pfn + out[n - 1].npages == pfn) {
			out[n - 1].npages += cnt;
		} else {
			if (n == max)
				break;
			out[n].gfn = k;
			out[n].npages = cnt;
			out[n].pfn = pfn;
			out[n].order = order;
			n++;
		}
		k += cnt;
		if (!k)
			break;
	}
	return n;
}

static int count_waiters(const struct ss_machine *m, uint64_t head)
{
	int n = 0;
	for (int i = 0; i < m->nwaiters; i++)
		if (m->waiters[i].kind != W_BLOCKED && m->waiters[i].pfn == head)
			n++;
	return n;
}

static void page_attrs(const struct ss_machine *m, uint64_t pfn, struct ss_page_run *r)
{
	uint32_t head = frame_head(m, (uint32_t)pfn);
	const struct frame *hf = frame_ro(m, head);
	r->state = SS_PG_PRESENT;
	r->order = (hf->flags & F_HEAD) ? hf->order : 0;
	r->locked = !!(hf->flags & F_LOCKED);
	r->dirty = !!(hf->flags & F_DIRTY);
	r->refcount = hf->refcount;
	r->mapped_by = frame_ro(m, pfn)->mapped;
	r->waiters = m->nwaiters ? count_waiters(m, head) : 0;
	const struct inode *in = hf->ino && hf->ino <= (uint32_t)m->ninodes ? &m->inodes[hf->ino - 1] : NULL;
	r->life = !in || in->kind != SS_KIND_GMEM ? 0
		  : (hf->xflags & X_HWPOISON)	   ? SS_LIFE_HWPOISON
		  : (hf->flags & F_PREPARED)	   ? SS_LIFE_PREPARED
		  : (hf->flags & F_UPTODATE)	   ? SS_LIFE_ZEROED
						   : SS_LIFE_ALLOCATED;
}

static bool same_attrs(const struct ss_page_run *a, const struct ss_page_run *b)
{
	return a->state == b->state && a->order == b->order && a->locked == b->locked &&
	       a->dirty == b->dirty && a->refcount == b->refcount &&
	       a->mapped_by == b->mapped_by && a->waiters == b->waiters && a->life == b->life;
}

int ss_file_runs(const struct ss_machine *cm, int fd, uint64_t start, uint64_t end,
		 struct ss_page_run *out, int max, uint64_t *next)
{
	struct ss_machine *m = (struct ss_machine *)cm;
	struct inode *in = fd_inode(m, fd);
	if (!in)
		return -EBADF;
	int n = 0;
	uint64_t idx = start;
	while (idx < end && n < max) {
		uint64_t at = idx;
		uint64_t v = tree_find(&in->cache, &at, end - 1);
		if (!v) {
			memset(&out[n], 0, sizeof(out[n]));
			out[n].start = idx;
			out[n].end = end;
			n++;
			idx = end;
			break;
		}
		if (at > idx) {
			memset(&out[n], 0, sizeof(out[n]));
			out[n].start = idx;
			out[n].end = at;
			n++;
			idx = at;
			if (n == max)
				break;
		}
		struct ss_page_run *r = &out[n];
		memset(r, 0, sizeof(*r));
		r->start = at;
		r->pfn = v - 1;
		page_attrs(m, v - 1, r);
		uint64_t span = tree_consecutive(&in->cache, at, v, end);
		uint64_t i = at + 1;
		while (i < at + span) {
			struct ss_page_run t;
			page_attrs(m, v - 1 + (i - at), &t);
			if (!same_attrs(r, &t))
				break;
			i++;
		}
		r->end = i;
		n++;
		idx = i;
	}
	*next = idx;
	return n;
}

int ss_phys_runs(const struct ss_machine *m, uint64_t start, uint64_t end,
		 struct ss_frame_run *out, int max, uint64_t *next)
{
	uint64_t total = m->cfg.phys_pages;
	if (end > total)
		end = total;
	uint64_t pfn = start;
	int n = 0;
	while (pfn < end) {
		const struct frame *f = frame_ro(m, pfn);
		struct ss_frame_run r = { .start = pfn, .fd = -1 };
		uint64_t len = 1;
		if (f->state == SS_FRAME_FREE) {
			/* find the buddy block holding pfn */
			uint64_t head = pfn;
			for (unsigned int o = 0; o <= SS_MAX_ORDER; o++) {
				uint64_t h = pfn & ~((1ULL << o) - 1);
				if ((frame_ro(m, h)->flags & F_BUDDY) && frame_ro(m, h)->order >= o &&
				    h + (1ULL << frame_ro(m, h)->order) > pfn) {
					head = h;
					break;
				}
			}
			r.state = SS_FRAME_FREE;
			r.order = frame_ro(m, head)->order;
			len = head + (1ULL << r.order) - pfn;
		} else {
			r.state = f->state;
			r.order = f->order;
			const struct inode *in = (f->ino && f->ino <= (uint32_t)m->ninodes)
						 ? &m->inodes[f->ino - 1] : NULL;
			r.fd = in ? in->fd : -1;
			r.index = f->index;
			r.no_direct_map = !!(frame_ro(m, frame_head(m, (uint32_t)pfn))->xflags & X_NO_DIRECT_MAP);
			r.map_id = f->state == SS_FRAME_COW ? (int)f->xspare : 0;
		}
		if (pfn + len > end)
			len = end - pfn;
		if (n) {
			struct ss_frame_run *l = &out[n - 1];
			bool merge = l->state == r.state && l->order == r.order && l->end == pfn &&
				     l->no_direct_map == r.no_direct_map && l->map_id == r.map_id &&
				     (r.state == SS_FRAME_FREE ||
				      (l->fd == r.fd && frame_ro(m, pfn - 1)->ino == f->ino &&
				       l->index + (pfn - l->start) == r.index));
			if (merge) {
				l->end = pfn + len;
				pfn += len;
				continue;
			}
		}
		if (n == max)
			break;
		r.end = pfn + len;
		out[n++] = r;
		pfn += len;
	}
	*next = pfn;
	return n;
}

void ss_phys_info(const struct ss_machine *m, struct ss_phys_info *out)
{
	memset(out, 0, sizeof(*out));
	out->total = m->cfg.phys_pages;
	out->free = m->nr_free;
	out->used = m->cfg.phys_pages - m->nr_free;
	for (int o = 0; o <= SS_MAX_ORDER; o++)
		out->free_by_order[o] = m->nr_free_blocks[o];
}

int ss_waiters(const struct ss_machine *cm, struct ss_waiter_info *out, int max)
{
	struct ss_machine *m = (struct ss_machine *)cm;
	int n = 0;
	for (int i = 0; i < m->nwaiters && n < max; i++) {
		struct inode *in = inode_get(m, m->waiters[i].ino);
		out[n].seq = m->waiters[i].seq;
		out[n].op = m->waiters[i].op;
		out[n].fd = in ? in->fd : -1;
		out[n].pfn = m->waiters[i].kind == W_BLOCKED ? UINT64_MAX : m->waiters[i].pfn;
		n++;
	}
	return n;
}

uint64_t ss_memory_bytes(const struct ss_machine *m)
{
	uint64_t b = sizeof(*m) + m->cfg.phys_pages * sizeof(struct frame);
	for (int i = 0; i < m->ninodes; i++)
		b += sizeof(struct inode) + m->inodes[i].cache.nodes * (8 + 8 + 64 * 8);
	for (int i = 0; i < m->nowners; i++)
		b += m->owners[i].gfns.nodes * (8 + 8 + 64 * 8) +
		     (uint64_t)m->owners[i].nslots * sizeof(struct memslot) +
		     (m->owners[i].vm ? sizeof(struct kvm_vm) +
				       m->owners[i].vm->attrs.cap * sizeof(struct attr_run) : 0);
	b += data_bytes(m, false, NULL);
	b += events_bytes(m, false, NULL);
	b += cow_bytes(m, false, NULL);
	return b;
}

uint64_t ss_memory_owned(const struct ss_machine *m, const struct ss_machine *beside)
{
	uint64_t b = sizeof(*m) + fchunks_owned_bytes(m, beside);
	for (int i = 0; i < m->ninodes; i++) {
		const struct inode *o = beside && i < beside->ninodes && beside->inodes[i].ino == m->inodes[i].ino
					? &beside->inodes[i] : NULL;
		b += sizeof(struct inode) + tree_owned_bytes(&m->inodes[i].cache, o ? &o->cache : NULL);
	}
	for (int i = 0; i < m->nowners; i++)
		b += tree_owned_bytes(&m->owners[i].gfns,
				      beside && i < beside->nowners ? &beside->owners[i].gfns : NULL) +
		     (uint64_t)m->owners[i].nslots * sizeof(struct memslot) +
		     (m->owners[i].vm ? sizeof(struct kvm_vm) +
				       m->owners[i].vm->attrs.cap * sizeof(struct attr_run) : 0);
	b += data_bytes(m, true, beside);
	b += events_bytes(m, true, beside);
	b += cow_bytes(m, true, beside);
	return b;
}
