/*
 * kvm_inplace.c - variant inplace_conversion: the proposal "[PATCH v8 00/46]
 * guest_memfd: In-place conversion support" (Ackerley Tng, 18 Jun 2026; not
 * merged).  Shared/private-ness becomes a property of the guest_memfd's
 * memory: KVM_SET_MEMORY_ATTRIBUTES2 on the guest_memfd fd
 * (struct kvm_memory_attributes2 {offset, size, attributes, flags,
 * error_offset}) sets it per page index, and one page serves both states.
 *
 *  - Without GUEST_MEMFD_FLAG_INIT_SHARED a guest_memfd starts private
 *    (kvm_gmem_is_private_mem); INIT_SHARED is allowed on x86 CoCo VMs
 *    ("enable INIT_SHARED for x86 CoCo VMs").
 *  - The VM's KVM_SET_MEMORY_ATTRIBUTES no longer tracks PRIVATE (v8: "only
 *    tracking of PRIVATE in VM attrs" is deprecated): PRIVATE there is EINVAL.
 *    The engine mirrors the guest_memfd's attributes into the VM's store for
 *    every bound slot (at bind and on each conversion), so the fault path
 *    reads one place; the invariant checker keeps the two equal.
 *  - Order of checks: flags beyond the content modes, or ZERO with PRESERVE,
 *    EINVAL; attributes beyond PRIVATE EINVAL; offset / size unaligned, size
 *    0, wrapping or past i_size EINVAL; a content mode the arch cannot honour
 *    EOPNOTSUPP (PRESERVE on SNP / TDX: the conversion encrypts); a range with
 *    the attributes already: 0 ("return early if range already has attrs").
 *  - shared -> private: "Ensure pages are not in use before conversion": a
 *    page with a reference beyond guest_memfd's own (a get_lock_pfn hold, a
 *    pin) fails with EAGAIN, error_offset at the first such page.  private ->
 *    shared: no such check (the guest is the only user of private pages).
 *  - The range is zapped in every binding (the arch invalidate hooks run:
 *    SNP reclaims a prepared page's RMP entry); content mode ZERO zeroes the
 *    pages, PRESERVE and UNSPECIFIED keep the bytes (unspecified: the
 *    engine's choice).
 *  - A host touch of a private page is SIGBUS (vmm.c).
 */
#include "internal.h"
#include <string.h>

#define MODE_ZERO 0x1ull
#define MODE_PRESERVE 0x2ull

bool inplace_private(const struct inode *in, uint64_t index)
{
	return (attrs_get(&in->gattrs, index) & SS_MEMORY_ATTRIBUTE_PRIVATE) != 0;
}

void inplace_gmem_init(struct ss_machine *m, struct inode *in)
{
	if (!is_inplace(m) || (in->flags & SS_GMEM_FLAG_INIT_SHARED))
		return;
	attrs_set(&in->gattrs, 0, (uint64_t)in->size >> SS_PAGE_SHIFT, SS_MEMORY_ATTRIBUTE_PRIVATE);
}

/* the VM's attributes over the slot = the guest_memfd's over its indexes */
int inplace_slot_sync(struct ss_machine *m, struct owner *o, const struct memslot *s)
{
	struct inode *in = inode_get(m, s->ino);
	if (!is_inplace(m) || !in || !o->vm)
		return 0;
	uint64_t i = s->index, end = s->index + s->npages;
	while (i < end) {
		uint64_t a = attrs_get(&in->gattrs, i);
		uint64_t j = attrs_run_end(&in->gattrs, i, end);
		int r = attrs_set(&o->vm->attrs, s->gfn + (i - s->index), s->gfn + (j - s->index), a);
		if (r)
			return r;
		i = j;
	}
	return 0;
}

static int fail_at(struct ss_machine *m, int rule, int err)
{
	return kvm_fail(m, rule, err);
}

static void convert_pages(struct ss_machine *m, struct inode *in,
			  uint64_t start, uint64_t end, bool to_private, uint64_t flags)
{
	uint64_t idx = start;
	uint64_t v;
	while (idx < end && (v = tree_find(&in->cache, &idx, end - 1))) {
		uint32_t head = frame_head(m, (uint32_t)(v - 1));
		if (flags & MODE_ZERO)
			data_drop(m, (uint32_t)(v - 1));
		if (!to_private && (frame_ro(m, head)->flags & F_PREPARED))
			gmem_reclaim(m, head);  /* the arch's invalidate hook on conversion */
		idx++;
	}
}

int ss_gmem_set_attributes(struct ss_machine *m, int fd, uint64_t offset, uint64_t size,
			   uint64_t attributes, uint64_t flags, uint64_t *error_offset)
{
	ev_begin(m, SS_OP_GMEM_SET_ATTRS, fd, (int64_t)offset, (int64_t)size,
		 (int64_t)attributes, (int64_t)flags);
	m->kvm_rule = SS_R_NONE;
	*error_offset = 0;
	struct inode *in = fd_inode(m, fd);
	if (!in)
		return fail_at(m, SS_R_BADF, -EBADF);
	if (is_rfc(m) || !is_inplace(m) || in->kind != SS_KIND_GMEM)
		return fail_at(m, SS_R_NO_IOCTL, -ENOTTY);
	if ((flags & ~(MODE_ZERO | MODE_PRESERVE)) || flags == (MODE_ZERO | MODE_PRESERVE))
		return fail_at(m, SS_R_ATTR_FLAGS, -EINVAL);
	if (attributes & ~SS_MEMORY_ATTRIBUTE_PRIVATE)
		return fail_at(m, SS_R_ATTR_UNSUPPORTED, -EINVAL);
	if (!size || ((offset | size) & (SS_PAGE_SIZE - 1)) || offset + size < offset ||
	    offset + size > (uint64_t)in->size)
		return fail_at(m, SS_R_ATTR_RANGE, -EINVAL);
	struct owner *o = in->vm ? vm_get(m, in->vm - 1) : NULL;
	if ((flags & MODE_PRESERVE) && o && vm_is_coco(o->vm))
		return fail_at(m, SS_R_CONTENT_MODE, -EOPNOTSUPP);
	uint64_t start = offset >> SS_PAGE_SHIFT, end = (offset + size) >> SS_PAGE_SHIFT;
	if (attrs_all(&in->gattrs, start, end, attributes))
		return (int)ev_end(m, 0);
	bool to_private = attributes & SS_MEMORY_ATTRIBUTE_PRIVATE;
	if (to_private) {
		uint64_t idx = start;
		uint64_t v;
		while (idx < end && (v = tree_find(&in->cache, &idx, end - 1))) {
			const struct frame *hf = frame_ro(m, frame_head(m, (uint32_t)(v - 1)));
			if (hf->refcount > 1 || (hf->flags & F_LOCKED)) {
				*error_offset = idx << SS_PAGE_SHIFT;
				if (m->cur)
					m->cur->e.out[0] = (int64_t)*error_offset;
				return fail_at(m, SS_R_CONVERT_BUSY, -EAGAIN);
			}
			idx++;
		}
	}
	callback_gmem_invalidate(m, in, start, end);  /* zap every binding */
	if (attrs_set(&in->gattrs, start, end, attributes))
		return fail_at(m, SS_R_NOMEM, -ENOMEM);
	if (is_giga(m, in))
		giga_split_range(m, in, start, end);  /* hugetlb_1g: a part of a 1 GiB folio */
	convert_pages(m, in, start, end, to_private, flags);
	if (is_giga(m, in))
		giga_merge_range(m, in, start, end);
	ev_touch(m, SS_T_ATTR, fd, -1, start, end - start, attributes);
	if (o) {
		for (int i = 0; i < o->nslots; i++)
			if (o->slots[i].ino == in->ino && inplace_slot_sync(m, o, &o->slots[i]))
				return fail_at(m, SS_R_NOMEM, -ENOMEM);
	}
	return (int)ev_end(m, 0);
}

int ss_gmem_attr_runs(const struct ss_machine *m, int fd, uint64_t start, uint64_t end,
		      struct ss_attr_run *out, int max)
{
	const struct inode *in = fd_inode((struct ss_machine *)m, fd);
	if (!in || in->kind != SS_KIND_GMEM)
		return -EBADF;
	int n = 0;
	for (uint32_t i = 0; i < in->gattrs.n && n < max; i++) {
		const struct attr_run *r = &in->gattrs.runs[i];
		if (r->end <= start || r->start >= end)
			continue;
		out[n].start = r->start > start ? r->start : start;
		out[n].end = r->end < end ? r->end : end;
		out[n].attributes = r->attrs;
		n++;
	}
	return n;
}
