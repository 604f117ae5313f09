/*
 * owners.c - simulated owners of guest memory.
 *
 * A KVM owner has memslots binding guest frames [gfn, gfn + npages) to file
 * pages [index, index + npages), and a secondary page table gfn -> pfn (a
 * tree; a huge mapping is one entry at its 512-aligned gfn with bit 0 set).
 * A guest fault maps through get_lock_pfn / put_unlock_pfn; the owner's
 * invalidate callback zaps the gfns of the invalidated indexes (a huge
 * mapping that is touched goes whole, as KVM zaps the whole PMD).
 * A recorder owner only counts and records the callbacks it receives.
 *
 * Every frame an owner maps carries the owner's bit in frame->mapped; the
 * checker verifies both directions.  Memslots of one owner may not overlap
 * in gfns nor alias the same file pages (EEXIST), so a frame is mapped at
 * most once per owner.
 */
#include "internal.h"
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#define MAX_GFN (1ULL << 40)

int ss_owner_create(struct ss_machine *m, int kind, const char *name)
{
	ev_begin(m, SS_OP_OWNER_CREATE, -1, kind, 0, 0, 0);
	if (kind != SS_OWNER_KVM && kind != SS_OWNER_RECORDER)
		return (int)ev_end(m, -EINVAL);
	if (!name || strlen(name) >= sizeof(m->owners[0].name))
		return (int)ev_end(m, -EINVAL);
	if (m->nowners == SS_MAX_OWNERS)
		return (int)ev_end(m, -ENOSPC);
	struct owner *o = &m->owners[m->nowners];
	memset(o, 0, sizeof(*o));
	o->id = m->nowners++;
	o->kind = kind;
	snprintf(o->name, sizeof(o->name), "%s", name);
	tree_init(&o->gfns);
	return (int)ev_end(m, o->id);
}

static void set_mapped(struct ss_machine *m, uint64_t pfn, uint64_t n, int owner, bool on)
{
	for (uint64_t i = 0; i < n; i++) {
		if (on)
			frame_rw(m, pfn + i)->mapped |= (uint8_t)(1u << owner);
		else
			frame_rw(m, pfn + i)->mapped &= (uint8_t)~(1u << owner);
	}
}

uint64_t owner_lookup(const struct owner *o, uint64_t gfn, int *order)
{
	uint64_t v = tree_load(&o->gfns, gfn);
	if (v && !(v & 1)) {
		*order = 0;
		return v >> 1;
	}
	uint64_t base = gfn & ~(uint64_t)(HPAGE_NR - 1);
	v = tree_load(&o->gfns, base);
	if (v && (v & 1)) {
		*order = SS_HPAGE_ORDER;
		return (v >> 1) + (gfn - base);
	}
	return 0;
}

void owner_map(struct ss_machine *m, struct owner *o, const struct memslot *s,
	       uint64_t gfn, uint64_t pfn, int order, int *map_order)
{
	uint64_t index = s->index + (gfn - s->gfn);
	uint64_t base = gfn & ~(uint64_t)(HPAGE_NR - 1);
	uint64_t probe = base;
	int fd = -1;
	struct inode *in = inode_get(m, s->ino);
	if (in)
		fd = in->fd;
	*map_order = 0;
	if (order == SS_HPAGE_ORDER && (index & (HPAGE_NR - 1)) == (gfn & (HPAGE_NR - 1)) &&
	    base >= s->gfn && base + HPAGE_NR <= s->gfn + s->npages &&
	    !tree_find(&o->gfns, &probe, base + HPAGE_NR - 1)) {
		uint64_t head = pfn - (gfn - base);
		if (tree_store(&o->gfns, base, ((head + 1) << 1) | 1) == 0) {
			set_mapped(m, head, HPAGE_NR, o->id, true);
			o->nmapped += HPAGE_NR;
			ev_touch(m, SS_T_MAP, fd, o->id, base, HPAGE_NR, head);
			*map_order = SS_HPAGE_ORDER;
			return;
		}
	}
	if (tree_store(&o->gfns, gfn, (pfn + 1) << 1) == 0) {
		set_mapped(m, pfn, 1, o->id, true);
		o->nmapped++;
		ev_touch(m, SS_T_MAP, fd, o->id, gfn, 1, pfn);
	}
}

static void zap_gfns(struct ss_machine *m, struct owner *o, int fd, uint64_t g0, uint64_t g1)
{
	uint64_t k = g0 & ~(uint64_t)(HPAGE_NR - 1), v;
	while (k < g1 && (v = tree_find(&o->gfns, &k, g1 - 1))) {
		uint64_t n = (v & 1) ? HPAGE_NR : 1;
		if (k + n > g0) {
			uint64_t pfn = (v >> 1) - 1;
			tree_erase(&o->gfns, k);
			set_mapped(m, pfn, n, o->id, false);
			o->nmapped -= n;
			o->nzapped += n;
			ev_touch(m, SS_T_ZAP, fd, o->id, k, n, pfn);
		}
		k += n;
	}
}

void owner_zap(struct ss_machine *m, struct owner *o, uint32_t ino, uint64_t start, uint64_t end)
{
	struct inode *in = inode_get(m, ino);
	int fd = in ? in->fd : -1;
	for (int i = 0; i < o->nslots; i++) {
		struct memslot *s = &o->slots[i];
		if (o->vm) {  /* the RFC's two files of a fd-based slot */
			if (s->ino != ino && s->shared_ino != ino)
				continue;
			uint64_t a = start > s->index ? start : s->index;
			uint64_t b = end < s->index + s->npages ? end : s->index + s->npages;
			if (a < b && slot_in_as0(s))
				mmu_zap(m, o, s->gfn + (a - s->index), s->gfn + (b - s->index), ino);
			continue;
		}
		if (s->ino != ino)
			continue;
		uint64_t a = start > s->index ? start : s->index;
		uint64_t b = end < s->index + s->npages ? end : s->index + s->npages;
		if (a < b)
			zap_gfns(m, o, fd, s->gfn + (a - s->index), s->gfn + (b - s->index));
	}
}

static struct owner *owner_get(struct ss_machine *m, int owner)
{
	return owner >= 0 && owner < m->nowners ? &m->owners[owner] : NULL;
}

static int memslot_check(struct ss_machine *m, struct owner *o, struct inode *in,
			 uint64_t gfn, uint64_t index, uint64_t npages)
{
	if (!npages || gfn >= MAX_GFN || npages > MAX_GFN - gfn)
		return -EINVAL;
	if (index > ((uint64_t)SS_MAX_FILESIZE >> SS_PAGE_SHIFT) - npages)
		return -EINVAL;
	if (is_rfc(m) ? in->kind != SS_KIND_MEMFD : in->kind != SS_KIND_GMEM)
		return -EINVAL;
	if (in->kind == SS_KIND_GMEM && index + npages > ((uint64_t)in->size >> SS_PAGE_SHIFT))
		return -EINVAL;
	for (int i = 0; i < o->nslots; i++) {
		struct memslot *s = &o->slots[i];
		if (gfn < s->gfn + s->npages && s->gfn < gfn + npages)
			return -EEXIST;
		if (s->ino == in->ino && index < s->index + s->npages && s->index < index + npages)
			return -EEXIST;
	}
	if (in->kind == SS_KIND_GMEM) {
		for (int oi = 0; oi < m->nowners; oi++)
			for (int i = 0; i < m->owners[oi].nslots; i++) {
				struct memslot *s = &m->owners[oi].slots[i];
				if (s->ino == in->ino && index < s->index + s->npages &&
				    s->index < index + npages)
					return -EEXIST;
			}
	}
	return 0;
}

int ss_memslot_create(struct ss_machine *m, int owner, int fd, uint64_t gfn,
		      uint64_t index, uint64_t npages)
{
	ev_begin(m, SS_OP_MEMSLOT, fd, (int64_t)gfn, (int64_t)index, (int64_t)npages, owner);
	struct owner *o = owner_get(m, owner);
	if (!o || o->kind != SS_OWNER_KVM || o->vm)
		return (int)ev_end(m, -EINVAL);  /* a VM: KVM_SET_USER_MEMORY_REGION */
	struct inode *in = fd_inode(m, fd);
	if (!in)
		return (int)ev_end(m, -EBADF);
	int err = memslot_check(m, o, in, gfn, index, npages);
	if (err)
		return (int)ev_end(m, err);
	if (o->nslots >= 512)
		return (int)ev_end(m, -ENOSPC);
	struct memslot *p = realloc(o->slots, (size_t)(o->nslots + 1) * sizeof(*p));
	if (!p)
		return (int)ev_end(m, -ENOMEM);
	o->slots = p;
	if (in->kind == SS_KIND_MEMFD) {
		/* the RFC's KVM registers with the file when the slot is made */
		err = do_register(m, in, owner);
		if (err)
			return (int)ev_end(m, err);
		if (!(in->seals & SS_F_SEAL_GUEST))
			ev_hazard(m, SS_HAZ_UNSEALED_REGISTER, 0);
	}
	struct memslot *s = &o->slots[o->nslots];
	memset(s, 0, sizeof(*s));  /* the VM fields stay 0: a legacy slot */
	s->slot = o->nslots++;
	s->ino = in->ino;
	s->gfn = gfn;
	s->index = index;
	s->npages = npages;
	return (int)ev_end(m, s->slot);
}

int fault_finish(struct ss_machine *m, int owner, uint64_t gfn, uint64_t pfn, int order)
{
	struct owner *o = owner_get(m, owner);
	for (int i = 0; o && i < o->nslots; i++) {
		struct memslot *s = &o->slots[i];
		if (gfn < s->gfn || gfn >= s->gfn + s->npages)
			continue;
		int mo = 0;
		owner_map(m, o, s, gfn, pfn, order, &mo);
		if (m->cur) {
			m->cur->e.out[0] = (int64_t)pfn;
			m->cur->e.out[1] = mo;
		}
		return do_put_unlock(m, (uint32_t)pfn);
	}
	return -EFAULT;
}

int ss_fault(struct ss_machine *m, int owner, uint64_t gfn, uint64_t *pfn, int *order)
{
	ev_begin(m, SS_OP_FAULT, -1, (int64_t)gfn, owner, 0, 0);
	struct owner *o = owner_get(m, owner);
	if (!o || o->kind != SS_OWNER_KVM || o->vm)
		return (int)ev_end(m, -EINVAL);
	struct memslot *s = NULL;
	for (int i = 0; i < o->nslots; i++)
		if (gfn >= o->slots[i].gfn && gfn < o->slots[i].gfn + o->slots[i].npages)
			s = &o->slots[i];
	if (!s)
		return (int)ev_end(m, -EFAULT);
	struct inode *in = inode_get(m, s->ino);
	if (!in)
		return (int)ev_end(m, -EFAULT);
	if (m->cur)
		m->cur->e.fd = in->fd;
	int mo = 0;
	uint64_t v = owner_lookup(o, gfn, &mo);
	if (v) {
		*pfn = v - 1;
		*order = mo;
		if (m->cur) {
			m->cur->e.out[0] = (int64_t)(v - 1);
			m->cur->e.out[1] = mo;
		}
		return (int)ev_end(m, 0);
	}
	uint64_t p = 0;
	int ord = 0;
	int r = do_get_lock_pfn(m, in, s->index + (gfn - s->gfn), 1, &p, &ord);
	if (r == SS_PENDING) {
		struct waiter w = { .kind = W_FAULT, .seq = m->nevents, .op = SS_OP_FAULT,
				    .ino = in->ino, .index = s->index + (gfn - s->gfn), .alloc = 1,
				    .owner = owner, .gfn = gfn, .pfn = p };
		ev_touch(m, SS_T_WAIT, in->fd, -1, w.index, 1, p);
		if (waiter_add(m, &w))
			r = -ENOMEM;
		else
			frame_rw(m, p)->refcount++;  /* lock_page() callers hold the page */
		return (int)ev_end(m, r);
	}
	if (r < 0)
		return (int)ev_end(m, r);
	r = fault_finish(m, owner, gfn, p, ord);
	if (!r && m->cur) {
		*pfn = p;
		*order = (int)m->cur->e.out[1];
	}
	ev_end(m, r);
	if (!r)
		waiters_run(m);
	return r;
}

void owners_free(struct ss_machine *m)
{
	for (int i = 0; i < m->nowners; i++) {
		free(m->owners[i].slots);
		tree_destroy(&m->owners[i].gfns);
		vm_free(m->owners[i].vm);
	}
}

int owners_clone(struct ss_machine *dst, const struct ss_machine *src, bool deep)
{
	for (int i = 0; i < src->nowners; i++) {
		struct owner *d = &dst->owners[i];
		const struct owner *s = &src->owners[i];
		d->slots = NULL;
		d->vm = NULL;
		tree_init(&d->gfns);
		if (s->vm && !(d->vm = vm_clone(s->vm)))
			return -ENOMEM;
		if (s->nslots) {
			d->slots = malloc((size_t)s->nslots * sizeof(*d->slots));
			if (!d->slots)
				return -ENOMEM;
			memcpy(d->slots, s->slots, (size_t)s->nslots * sizeof(*d->slots));
		}
		if (tree_clone(&d->gfns, &s->gfns, deep))
			return -ENOMEM;
	}
	return 0;
}
