/*
 * kvm_views.c - where each gfn of a VM is served from, as runs.
 *
 * For each gfn: its memslot, attributes, the source a fault would use
 * (kvm_fault.c's rules without faulting: guest_memfd, the VMM's mapping, the
 * RFC's files, nothing) and what the secondary MMU maps now.  Gaps between
 * memslots are skipped whole; inside a slot the walk is per gfn, bounded per
 * call (*next says where to go on).  A gfn the guest_memfd serves whose page
 * is hwpoisoned (kvm_poison.c) is SS_SRC_POISONED: the fault would get
 * EHWPOISON from kvm_gmem_get_pfn; fd and index still name the page.
 */
#include "internal.h"
#include <string.h>

#define WALK_BUDGET (1u << 16)

static void describe(const struct ss_machine *m, const struct owner *o, const struct memslot *s,
		     uint64_t gfn, struct ss_gfn_source *d)
{
	memset(d, 0, sizeof(*d));
	d->start = gfn;
	d->end = gfn + 1;
	d->fd = -1;
	d->attributes = attrs_get(&o->vm->attrs, gfn);
	int order;
	uint64_t v = owner_lookup(o, gfn, &order);
	if (v) {
		d->mapped = 1;
		d->pfn = v - 1;
		d->order = order;
	}
	if (!s) {
		d->source = SS_SRC_NONE;
		return;
	}
	d->slot = (uint32_t)s->slot;
	const struct inode *in = NULL;
	bool priv = (d->attributes & SS_MEMORY_ATTRIBUTE_PRIVATE) != 0;
	if (is_rfc(m) && (s->flags & SS_MEM_FD)) {
		const struct inode *pin = s->ino ? &m->inodes[s->ino - 1] : NULL;
		uint64_t index = s->index + (gfn - s->gfn);
		if (pin && tree_load(&pin->cache, index)) {
			d->source = SS_SRC_PRIVATE;
			in = pin;
		} else {
			d->source = SS_SRC_SHARED_FD;
			in = s->shared_ino ? &m->inodes[s->shared_ino - 1] : NULL;
		}
		d->index = index;
	} else if (!is_rfc(m) && (priv || s->gmem_only) && (s->flags & SS_MEM_GUEST_MEMFD)) {
		d->source = s->ino ? (priv ? SS_SRC_PRIVATE : SS_SRC_SHARED_GMEM) : SS_SRC_CLOSED;
		in = s->ino ? &m->inodes[s->ino - 1] : NULL;
		d->index = s->index + (gfn - s->gfn);
		if (in && gmem_poisoned(m, in, d->index))
			d->source = SS_SRC_POISONED;
	} else {
		uint64_t hva = s->uaddr + ((gfn - s->gfn) << SS_PAGE_SHIFT);
		const struct mapping *mp = vmm_find(m, hva);
		if (!mp || !mp->ino) {
			d->source = SS_SRC_UNMAPPED_HVA;
			d->index = hva >> SS_PAGE_SHIFT;  /* the page of the address */
			return;
		}
		d->source = SS_SRC_SHARED_HVA;
		in = &m->inodes[mp->ino - 1];
		d->index = ((uint64_t)mp->offset + (hva - mp->addr)) >> SS_PAGE_SHIFT;
	}
	d->fd = in ? in->fd : -1;
}

static bool extends(const struct ss_gfn_source *r, const struct ss_gfn_source *d)
{
	uint64_t n = r->end - r->start;
	return r->source == d->source && r->slot == d->slot && r->attributes == d->attributes &&
	       r->fd == d->fd && r->index + n == d->index && r->mapped == d->mapped &&
	       (!r->mapped || (r->pfn + n == d->pfn && r->order == d->order));
}

int ss_vm_gfn_sources(const struct ss_machine *m, int id, uint64_t start, uint64_t end,
		      struct ss_gfn_source *out, int max, uint64_t *next)
{
	const struct owner *o = vm_get_const(m, id);
	if (!o)
		return -EINVAL;
	int n = 0;
	uint32_t budget = WALK_BUDGET;
	uint64_t g = start;
	while (g < end && n <= max && budget) {
		const struct memslot *s = vm_slot_of(o, g);
		if (!s) {
			/* a gap: to the next slot or the end, alike up to attribute runs */
			uint64_t stop = end;
			for (int i = 0; i < o->nslots; i++)
				if ((o->slots[i].slot >> 16) == 0 && o->slots[i].gfn > g &&
				    o->slots[i].gfn < stop)
					stop = o->slots[i].gfn;
			stop = attrs_run_end(&o->vm->attrs, g, stop);
			struct ss_gfn_source d;
			describe(m, o, NULL, g, &d);
			d.mapped = 0;
			d.end = stop;
			if (n && out[n - 1].source == SS_SRC_NONE && out[n - 1].end == g &&
			    out[n - 1].attributes == d.attributes) {
				out[n - 1].end = stop;
			} else {
				if (n == max)
					break;
				out[n++] = d;
			}
			g = stop;
			budget--;
			continue;
		}
		struct ss_gfn_source d;
		describe(m, o, s, g, &d);
		if (n && out[n - 1].end == g && extends(&out[n - 1], &d)) {
			out[n - 1].end++;
		} else {
			if (n == max)
				break;
			out[n++] = d;
		}
		g++;
		budget--;
	}
	*next = g < end ? g : end;
	return n;
}
