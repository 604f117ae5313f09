/*
 * check_kvm.c - the invariant checker's KVM side.
 *
 * For every VM:
 *  - every mapped gfn lies in a memslot of address space 0 and points at
 *    the frame that backs the right file page: the guest_memfd page of the
 *    binding for a private gfn or a guest_memfd-only slot, the page at
 *    userspace_addr in the VMM's mapping for a shared one, the RFC's
 *    private or shared file page at the slot's offset;
 *  - no private gfn maps a shared page and no shared gfn a private one
 *    (attributes and mappings agree; rfc-v2: a private mapping is a page
 *    of private_fd), nothing maps a punched or closed file's page (the
 *    frame must still be in that file's cache);
 *  - a huge mapping has alike attributes over its 512 gfns;
 *  - the frames carrying the VM's bit are exactly the frames it maps;
 *  - attribute runs are sorted, disjoint, non-empty, merged and non-zero;
 *  - a prepared frame (kvm_coco.c) is a used, uptodate head of a guest_memfd
 *    page whose VM is SNP or TDX; a VM's measured pages never exceed what it
 *    populated, and a finalized launch is only on SNP / TDX;
 *  - no VM maps a hwpoisoned frame (kvm_poison.c); the list of raw poisoned pfns
 *    is exactly the frames marked raw-poisoned, each once;
 *  - a TDX VM's private mapping is a prepared frame (its S-EPT entry: removed
 *    at each zap of a whole folio, added at each private fault).
 */
#include "internal.h"
#include <stdlib.h>

#define CHECK(cond, ...) do { if (!(cond)) { free(seen); return check_fail(msg, len, __VA_ARGS__); } } while (0)
#define ULL(x) ((unsigned long long)(x))

/* the file page gfn must map: 0 with *ino, *index (and *copy: pfn + 1 of the
 * private mapping's copy it must map, 0 for the file's page); 1 if none is allowed */
static int expected(const struct ss_machine *m, const struct owner *o, const struct memslot *s,
		    uint64_t gfn, uint32_t *ino, uint64_t *index, uint64_t *copy)
{
	*copy = 0;
	if (is_rfc(m) && (s->flags & SS_MEM_FD)) {
		*index = s->index + (gfn - s->gfn);
		const struct inode *pin = s->ino ? &m->inodes[s->ino - 1] : NULL;
		*ino = pin && tree_load(&pin->cache, *index) ? s->ino : s->shared_ino;
		return 0;
	}
	bool priv = !is_rfc(m) && vm_has_private_mem(o->vm) &&
		    (attrs_get(&o->vm->attrs, gfn) & SS_MEMORY_ATTRIBUTE_PRIVATE);
	if (priv || (!is_rfc(m) && s->gmem_only)) {
		if (!s->ino)
			return 1;
		*ino = s->ino;
		*index = s->index + (gfn - s->gfn);
		return 0;
	}
	uint64_t hva = s->uaddr + ((gfn - s->gfn) << SS_PAGE_SHIFT);
	const struct mapping *mp = vmm_find(m, hva);
	if (!mp)
		return 1;
	*ino = mp->ino;
	*index = ((uint64_t)mp->offset + (hva - mp->addr)) >> SS_PAGE_SHIFT;
	*copy = cow_lookup(mp, *index);  /* the PTE maps the copy once made (cow.c) */
	return 0;
}

static int check_attrs(const struct attr_store *a, int vm, char *msg, size_t len)
{
	uint8_t *seen = NULL;
	for (uint32_t i = 0; i < a->n; i++) {
		const struct attr_run *r = &a->runs[i];
		CHECK(r->start < r->end && r->attrs, "VM %d attribute run %u is empty or zero", vm, i);
		if (i)
			CHECK(a->runs[i - 1].end < r->start ||
			      (a->runs[i - 1].end == r->start && a->runs[i - 1].attrs != r->attrs),
			      "VM %d attribute runs %u and %u overlap or should merge", vm, i - 1, i);
	}
	return 0;
}

static int check_vm(const struct ss_machine *m, const struct owner *o, uint64_t bits, char *msg,
		    size_t len)
{
	uint8_t *seen = NULL;
	/* a destroyed VM keeps only its owner record; a closed one is held */
	CHECK(!o->vm->dead || (!o->nslots && !o->nmapped && !o->vm->attrs.n && !bits),
	      "VM %d is destroyed but keeps memslots, mappings or attributes", o->id);
	CHECK(o->vm->dead || !o->vm->closed || vm_is_held(m, o->id),
	      "VM %d is closed and no guest_memfd holds it, yet it lives", o->id);
	int r = check_attrs(&o->vm->attrs, o->id, msg, len);
	if (r)
		return r;
	if (o->nmapped) {
		seen = calloc((m->cfg.phys_pages + 7) / 8, 1);
		if (!seen)
			return 0;  /* no memory to check with: nothing found */
	}
	uint64_t k = 0, v, distinct = 0;
	while ((v = tree_find(&o->gfns, &k, UINT64_MAX))) {
		uint64_t n = (v & 1) ? HPAGE_NR : 1;
		uint64_t pfn = (v >> 1) - 1;
		const struct memslot *s = vm_slot_of(o, k);
		CHECK(s && k + n - 1 < s->gfn + s->npages, "VM %d maps gfn %llu outside its memslots",
		      o->id, ULL(k));
		if (n > 1 && !is_rfc(m))
			CHECK(attrs_all(&o->vm->attrs, k, k + n, attrs_get(&o->vm->attrs, k)),
			      "VM %d maps gfns %llu.. huge over mixed attributes", o->id, ULL(k));
		for (uint64_t i = 0; i < n; i++) {
			const struct frame *f = frame_ro(m, pfn + i);
			uint32_t ino = 0;
			uint64_t index = 0, copy;
			int e = expected(m, o, s, k + i, &ino, &index, &copy);
			CHECK(!e, "VM %d maps gfn %llu, which has no backing (closed file or no mapping)",
			      o->id, ULL(k + i));
			CHECK((copy ? pfn + i + 1 == copy : f->state == SS_FRAME_CACHE) && f->ino == ino &&
			      f->index == index,
			      "VM %d gfn %llu maps pfn %llu (file %u index %llu), expected file %u index %llu",
			      o->id, ULL(k + i), ULL(pfn + i), f->ino, ULL(f->index), ino, ULL(index));
			CHECK(f->mapped & (1u << o->id), "VM %d maps pfn %llu without its bit", o->id,
			      ULL(pfn + i));
			/* TDX: a private mapping is an S-EPT entry (kvm_coco.c gmem_zap_private) */
			CHECK(o->vm->type != SS_VM_TDX || is_rfc(m) ||
			      !(attrs_get(&o->vm->attrs, k + i) & SS_MEMORY_ATTRIBUTE_PRIVATE) ||
			      (frame_ro(m, frame_head(m, (uint32_t)(pfn + i)))->flags & F_PREPARED),
			      "TDX VM %d maps private gfn %llu to pfn %llu, which is in no S-EPT entry",
			      o->id, ULL(k + i), ULL(pfn + i));
			uint64_t p = pfn + i;
			if (!(seen[p / 8] & (1u << (p % 8)))) {
				seen[p / 8] |= (uint8_t)(1u << (p % 8));
				distinct++;
			}
		}
		k += n;
		if (!k)
			break;
	}
	CHECK(distinct == bits, "VM %d maps %llu frames but %llu frames carry its bit", o->id,
	      ULL(distinct), ULL(bits));
	free(seen);
	return 0;
}

/* the machine's list of raw poisoned pfns (kvm_poison.c) is exactly the frames
 * marked X_HWPOISON_RAW, each once */
static int check_hwpoison_list(const struct ss_machine *m, uint64_t raw, char *msg, size_t len)
{
	if (raw != m->nhwpoison)
		return check_fail(msg, len, "%llu raw poisoned frames but %u in the hwpoison list",
			    ULL(raw), m->nhwpoison);
	for (uint32_t k = 0; k < m->nhwpoison; k++) {
		uint32_t pfn = m->hwpoison[k];
		if (pfn >= m->cfg.phys_pages || frame_ro(m, pfn)->state == SS_FRAME_FREE ||
		    !(frame_ro(m, pfn)->xflags & X_HWPOISON_RAW))
			return check_fail(msg, len, "hwpoison list entry %u (pfn %u) is not a poisoned "
				    "frame", k, pfn);
	}
	return 0;
}

static int check_prepared(const struct ss_machine *m, char *msg, size_t len)
{
	uint64_t raw = 0;
	for (uint64_t p = 0; p < m->cfg.phys_pages; p++) {
		const struct frame *f = frame_ro(m, p);
		raw += f->state != SS_FRAME_FREE && (f->xflags & X_HWPOISON_RAW);
		if (f->state != SS_FRAME_FREE && (f->xflags & X_HWPOISON) &&
		    (f->mapped || frame_ro(m, frame_head(m, (uint32_t)p))->mapped))
			return check_fail(msg, len, "pfn %llu is hwpoisoned but still mapped", ULL(p));
		if (f->state != SS_FRAME_FREE && (f->xflags & X_NO_DIRECT_MAP) &&
		    (!(m->cfg.variants & SS_VAR_NO_DIRECT_MAP) || (f->flags & F_TAIL) || !f->ino ||
		     f->ino > (uint32_t)m->ninodes || m->inodes[f->ino - 1].kind != SS_KIND_GMEM))
			return check_fail(msg, len, "pfn %llu is out of the direct map but not a guest_memfd "
				    "page of variant no_direct_map", ULL(p));
		if (!(f->flags & F_PREPARED))
			continue;
		const struct inode *in = f->ino && f->ino <= (uint32_t)m->ninodes
						 ? &m->inodes[f->ino - 1] : NULL;
		const struct owner *o = in && in->vm ? vm_get_const(m, in->vm - 1) : NULL;
		if (f->state == SS_FRAME_FREE || (f->flags & F_TAIL) || !(f->flags & F_UPTODATE) ||
		    !in || in->kind != SS_KIND_GMEM || !o || !vm_is_coco(o->vm))
			return check_fail(msg, len, "pfn %llu is prepared but not an uptodate page of a "
				    "confidential VM's guest_memfd", ULL(p));
	}
	int hr = check_hwpoison_list(m, raw, msg, len);
	if (hr)
		return hr;
	for (int i = 0; i < m->nowners; i++) {
		const struct owner *o = &m->owners[i];
		const struct kvm_vm *vm = o->vm;
		if (vm && (vm->launch != SS_LAUNCH_NONE) != vm_is_coco(vm))
			return check_fail(msg, len, "VM %d: launch state %d on a VM of type %d", i,
				    vm->launch, vm->type);
		if (!vm || !is_inplace(m))
			continue;
		/* inplace_conversion: the VM's mirror equals the guest_memfd's attributes */
		for (int k = 0; k < o->nslots; k++) {
			const struct memslot *s = &o->slots[k];
			const struct inode *in = s->ino && s->ino <= (uint32_t)m->ninodes
							 ? &m->inodes[s->ino - 1] : NULL;
			if (!in || in->ino != s->ino || in->kind != SS_KIND_GMEM)
				continue;
			for (uint64_t g = 0; g < s->npages;) {
				if (attrs_get(&vm->attrs, s->gfn + g) != attrs_get(&in->gattrs, s->index + g))
					return check_fail(msg, len, "VM %d gfn %llu: attributes differ from its "
						    "guest_memfd's", i, ULL(s->gfn + g));
				uint64_t a = attrs_run_end(&vm->attrs, s->gfn + g, s->gfn + s->npages) - s->gfn;
				uint64_t b = attrs_run_end(&in->gattrs, s->index + g, s->index + s->npages) -
					     s->index;
				g = a < b ? a : b;
			}
		}
	}
	return 0;
}

int check_kvm(const struct ss_machine *m, const uint64_t *mapped_per_owner, char *msg, size_t len)
{
	int pr = check_prepared(m, msg, len);
	if (pr)
		return pr;
	for (int o = 0; o < m->nowners; o++) {
		if (!m->owners[o].vm)
			continue;
		int r = check_vm(m, &m->owners[o], mapped_per_owner[o], msg, len);
		if (r)
			return r;
	}
	return 0;
}
