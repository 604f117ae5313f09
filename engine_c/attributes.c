/*
 * attributes.c - a VM's memory attributes (KVM_SET_MEMORY_ATTRIBUTES) as
 * runs of gfns.
 *
 * The kernel keeps one xarray entry per gfn (mem_attr_array); the simulator
 * keeps sorted, disjoint runs [start, end) with non-zero attributes and
 * merges alike neighbours, so a 1 TiB VM with three runs holds three
 * entries and no operation walks a range page by page: a lookup is a
 * binary search, a set replaces the runs it covers.
 */
#include "internal.h"
#include <stdlib.h>
#include <string.h>

void attrs_free(struct attr_store *a)
{
	free(a->runs);
	a->runs = NULL;
	a->n = a->cap = 0;
}

int attrs_clone(struct attr_store *dst, const struct attr_store *src)
{
	dst->runs = NULL;
	dst->n = dst->cap = 0;
	if (!src->n)
		return 0;
	dst->runs = malloc(src->n * sizeof(*dst->runs));
	if (!dst->runs)
		return -ENOMEM;
	memcpy(dst->runs, src->runs, src->n * sizeof(*dst->runs));
	dst->n = dst->cap = src->n;
	return 0;
}

/* index of the first run with end > gfn (a->n if none) */
static uint32_t first_after(const struct attr_store *a, uint64_t gfn)
{
	uint32_t lo = 0, hi = a->n;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (a->runs[mid].end <= gfn)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

uint64_t attrs_get(const struct attr_store *a, uint64_t gfn)
{
	uint32_t i = first_after(a, gfn);
	return i < a->n && a->runs[i].start <= gfn ? a->runs[i].attrs : 0;
}

uint64_t attrs_run_end(const struct attr_store *a, uint64_t gfn, uint64_t end)
{
	uint32_t i = first_after(a, gfn);
	uint64_t e;
	if (i == a->n)
		e = end;
	else if (a->runs[i].start <= gfn)
		e = a->runs[i].end;
	else
		e = a->runs[i].start;
	return e < end ? e : end;
}

bool attrs_all(const struct attr_store *a, uint64_t start, uint64_t end, uint64_t attrs)
{
	for (uint64_t g = start; g < end;) {
		if (attrs_get(a, g) != attrs)
			return false;
		g = attrs_run_end(a, g, end);
	}
	return true;
}

static int reserve(struct attr_store *a, uint32_t need)
{
	if (need <= a->cap)
		return 0;
	uint32_t cap = a->cap ? a->cap * 2 : 4;
	while (cap < need)
		cap *= 2;
	struct attr_run *p = realloc(a->runs, cap * sizeof(*p));
	if (!p)
		return -ENOMEM;
	a->runs = p;
	a->cap = cap;
	return 0;
}

int attrs_set(struct attr_store *a, uint64_t start, uint64_t end, uint64_t attrs)
{
	if (start >= end)
		return 0;
	/* at most two runs are cut, one is added: room first, then act */
	if (reserve(a, a->n + 2))
		return -ENOMEM;
	uint32_t i = first_after(a, start);
	uint32_t j = i;
	struct attr_run left = { 0 }, right = { 0 };
	bool has_left = false, has_right = false;
	while (j < a->n && a->runs[j].start < end) {
		if (a->runs[j].start < start) {
			left = (struct attr_run){ a->runs[j].start, start, a->runs[j].attrs };
			has_left = true;
		}
		if (a->runs[j].end > end) {
			right = (struct attr_run){ end, a->runs[j].end, a->runs[j].attrs };
			has_right = true;
		}
		j++;
	}
	struct attr_run mid = { start, end, attrs };
	struct attr_run repl[3];
	uint32_t k = 0;
	if (has_left)
		repl[k++] = left;
	if (attrs)
		repl[k++] = mid;
	if (has_right)
		repl[k++] = right;
	/* replace runs [i, j) by repl[0..k) */
	memmove(&a->runs[i + k], &a->runs[j], (a->n - j) * sizeof(*a->runs));
	memcpy(&a->runs[i], repl, k * sizeof(*a->runs));
	a->n = a->n - (j - i) + k;
	/* merge alike neighbours around the change */
	uint32_t lo = i > 0 ? i - 1 : 0, hi = i + k + 1 < a->n ? i + k + 1 : a->n;
	for (uint32_t x = lo; x + 1 < hi && x + 1 < a->n;) {
		struct attr_run *p = &a->runs[x], *q = &a->runs[x + 1];
		if (p->end == q->start && p->attrs == q->attrs) {
			p->end = q->end;
			memmove(q, q + 1, (a->n - x - 2) * sizeof(*a->runs));
			a->n--;
			hi--;
		} else {
			x++;
		}
	}
	return 0;
}

/* ---- KVM_SET_MEMORY_ATTRIBUTES (kvm_vm_ioctl_set_mem_attributes) ---- */

int ss_vm_set_memory_attributes(struct ss_machine *m, int id, uint64_t address,
				uint64_t size, uint64_t attributes, uint64_t flags)
{
	ev_begin(m, SS_OP_SET_ATTRS, -1, (int64_t)address, (int64_t)size, (int64_t)attributes,
		 (int64_t)flags);
	m->kvm_rule = SS_R_NONE;
	struct owner *o = vm_ioctl_get(m, id);
	if (!o)
		return vm_fail(m, id);
	if (is_rfc(m))
		return kvm_fail(m, SS_R_NO_IOCTL, -ENOTTY);
	/* inplace_conversion (a proposal): PRIVATE lives in the guest_memfd */
	uint64_t supported = vm_has_private_mem(o->vm) && !is_inplace(m) ? SS_MEMORY_ATTRIBUTE_PRIVATE : 0;
	/* mainline's order: flags, then attributes the VM does not support (a
	 * VM without private memory supports none: EINVAL for PRIVATE; this
	 * machine's kernel, built without the attribute ioctl, says ENOTTY) */
	if (flags)
		return kvm_fail(m, SS_R_ATTR_FLAGS, -EINVAL);
	if (attributes & ~supported)
		return kvm_fail(m, SS_R_ATTR_UNSUPPORTED, -EINVAL);
	if (size == 0 || address + size < address)
		return kvm_fail(m, SS_R_ATTR_RANGE, -EINVAL);
	if ((address | size) & (SS_PAGE_SIZE - 1))
		return kvm_fail(m, SS_R_ATTR_ALIGN, -EINVAL);
	uint64_t start = address >> SS_PAGE_SHIFT, end = (address + size) >> SS_PAGE_SHIFT;
	struct attr_store *a = &o->vm->attrs;
	/* nothing to do if the whole range has them already */
	if (attrs_all(a, start, end, attributes))
		return (int)ev_end(m, 0);
	if (reserve(a, a->n + 2))
		return kvm_fail(m, SS_R_NOMEM, -ENOMEM);
	/* kvm_pre_set_memory_attributes: the range is zapped in every slot */
	for (int i = 0; i < o->nslots; i++) {
		struct memslot *s = &o->slots[i];
		uint64_t x = start > s->gfn ? start : s->gfn;
		uint64_t y = end < s->gfn + s->npages ? end : s->gfn + s->npages;
		if (x < y && slot_in_as0(s))
			mmu_zap(m, o, x, y, 0);
	}
	attrs_set(a, start, end, attributes);
	ev_touch(m, SS_T_ATTR, -1, o->id, start, end - start, attributes);
	return (int)ev_end(m, 0);
}
