/*
 * kvm_fault.c - KVM_RUN for one guest access (a byte at gpa), per profile
 * and VM type, and the gfn sources view.
 *
 * guest-memfd (arch/x86/kvm/mmu/mmu.c, 6.18): the access is private as the
 * guest says (SNP C-bit, TDX shared bit), or, on SW_PROTECTED VMs, as the
 * attributes say (kvm_mmu_page_fault ORs PFERR_PRIVATE_ACCESS in); the
 * default VM has no private access.  A present mapping of the same kind
 * serves it.  Otherwise kvm_mmu_faultin_pfn: a private-ness that differs
 * from the attribute exits KVM_EXIT_MEMORY_FAULT (EFAULT); no memslot: a
 * private access exits MEMORY_FAULT, a shared one is emulated MMIO; private
 * or guest_memfd-only: kvm_mmu_faultin_pfn_gmem (a slot without guest_memfd,
 * or whose guest_memfd is closed, exits MEMORY_FAULT); shared: the page at
 * userspace_addr in the VMM's mapping (none: KVM_RUN fails with EFAULT).
 * A write to a READONLY slot is emulated MMIO.
 *
 * rfc-v2 (patch 07): private iff allocated in private_fd.  A private access
 * without private_fd fails; to a hole exits KVM_EXIT_MEMORY_ERROR
 * MAP_PRIVATE (the posted code calls get_pfn(alloc=false) there: marked);
 * a shared access to a page the private file has exits MAP_SHARED; else
 * get_lock_pfn on the file, map, put_unlock_pfn.
 */
#include "internal.h"
#include <string.h>

#define MAX_GFN ((1ull << 40) - 1)

static int do_exit(struct ss_machine *m, struct owner *o, struct ss_access_result *out,
		   int reason, uint64_t gfn)
{
	out->exit_reason = reason;
	ev_touch(m, SS_T_EXIT, -1, o->id, gfn, 1, (uint64_t)reason);
	return 0;
}

static int memory_fault(struct ss_machine *m, struct owner *o, struct ss_access_result *out,
			uint64_t gfn, bool priv, int err)
{
	out->exit_flags = priv ? SS_MEMORY_EXIT_FLAG_PRIVATE : 0;
	out->exit_gpa = gfn << SS_PAGE_SHIFT;
	out->exit_size = SS_PAGE_SIZE;
	out->exit_errno = err;
	return do_exit(m, o, out, SS_EXIT_MEMORY_FAULT, gfn);
}

static int mmio(struct ss_machine *m, struct owner *o, struct ss_access_result *out, uint64_t gpa)
{
	out->exit_gpa = gpa;
	out->exit_size = 1;
	return do_exit(m, o, out, SS_EXIT_MMIO, gpa >> SS_PAGE_SHIFT);
}

static int memory_error(struct ss_machine *m, struct owner *o, struct ss_access_result *out,
			uint64_t gfn, int type)
{
	out->exit_type = type;
	out->exit_gpa = gfn << SS_PAGE_SHIFT;
	out->exit_size = SS_PAGE_SIZE;
	return do_exit(m, o, out, SS_EXIT_MEMORY_ERROR, gfn);
}

static bool page_locked_at(struct ss_machine *m, struct inode *in, uint64_t index)
{
	uint64_t v = tree_load(&in->cache, index);
	return v && (frame_ro(m, frame_head(m, (uint32_t)(v - 1)))->flags & F_LOCKED);
}

/* map through get_lock_pfn / put_unlock_pfn (rfc-v2 and kvm_gmem_get_pfn) */
static int map_locked(struct ss_machine *m, struct owner *o, struct memslot *s,
		      struct inode *in, uint64_t gfn, int alloc, uint64_t *pfn, int *mo)
{
	uint64_t index = s->index + (gfn - s->gfn);
	int ord = 0;
	if (in->kind == SS_KIND_MEMFD && page_locked_at(m, in, index)) {
		/* shmem_getpage's lock_page: the vCPU thread sleeps until the holder's
		 * put_unlock_pfn; the access is retried then (a W_VCPU waiter) */
		*pfn = frame_head(m, (uint32_t)(tree_load(&in->cache, index) - 1));
		return KVM_FAULT_SLEEPS;
	}
	int r = do_get_lock_pfn(m, in, index, alloc, pfn, &ord);
	if (r < 0)
		return r;
	uint64_t base = gfn & ~(uint64_t)(HPAGE_NR - 1);
	int huge = ord == SS_HPAGE_ORDER && (gfn & (HPAGE_NR - 1)) == (*pfn & (HPAGE_NR - 1)) &&
		   base >= s->gfn && base + HPAGE_NR <= s->gfn + s->npages &&
		   (!o->vm || is_rfc(m) ||
		    attrs_all(&o->vm->attrs, base, base + HPAGE_NR, attrs_get(&o->vm->attrs, gfn)));
	if (o->vm && !is_rfc(m))  /* kvm_gmem_get_pfn: zero, then the arch's prepare */
		gmem_prepare(m, o, in, *pfn,
			     vm_has_private_mem(o->vm) &&
				     (attrs_get(&o->vm->attrs, gfn) & SS_MEMORY_ATTRIBUTE_PRIVATE));
	r = mmu_map(m, o, s, gfn, *pfn, huge, mo);
	int u = do_put_unlock(m, (uint32_t)*pfn);
	return r ? r : u;
}

/* the shared page at userspace_addr: what get_user_pages would find */
static int map_hva(struct ss_machine *m, struct owner *o, struct memslot *s, uint64_t gfn,
		   int write, uint64_t *pfn, int *mo)
{
	uint64_t hva = s->uaddr + ((gfn - s->gfn) << SS_PAGE_SHIFT);
	const struct mapping *mp;
	struct inode *in;
	uint64_t index;
	int r = vmm_resolve(m, hva, &mp, &in, &index);
	if (r || (write && !(mp->prot & SS_PROT_WRITE)) || !(mp->prot & (SS_PROT_READ | SS_PROT_WRITE))) {
		m->kvm_rule = SS_R_RUN_HVA;
		return -EFAULT;
	}
	if (in->kind == SS_KIND_GMEM && gmem_poisoned(m, in, index)) {
		/* hva_to_pfn: KVM_PFN_ERR_HWPOISON; kvm_handle_error_pfn sends the vCPU
		 * thread SIGBUS (BUS_MCEERR_AR) and retries, and the pending signal ends
		 * KVM_RUN with KVM_EXIT_INTR, -EINTR */
		m->kvm_rule = SS_R_RUN_HVA_HWPOISON;
		return -EINTR;
	}
	/* hva_to_pfn: a write is FOLL_WRITE, which breaks COW (cow.c); a read maps
	 * what the PTE maps: the mapping's copy, or the file page */
	uint64_t v = cow_lookup(mp, index);
	bool isnew;
	if (v)
		*pfn = v - 1;
	else if (write && map_is_private(mp))
		r = cow_break(m, &m->maps[mp->id - 1], in, index, pfn);
	else
		r = cache_alloc_page(m, in, index, pfn, &isnew);
	if (r)
		return r;
	const struct frame *f = frame_ro(m, *pfn);
	uint64_t base = gfn & ~(uint64_t)(HPAGE_NR - 1);
	uint64_t hbase = hva - ((gfn - base) << SS_PAGE_SHIFT);
	int huge = (f->flags & (F_HEAD | F_TAIL)) && f->order == SS_HPAGE_ORDER &&
		   (gfn & (HPAGE_NR - 1)) == (*pfn & (HPAGE_NR - 1)) && base >= s->gfn &&
		   base + HPAGE_NR <= s->gfn + s->npages && hbase >= mp->addr &&
		   hbase + (HPAGE_NR << SS_PAGE_SHIFT) <= mp->addr + (uint64_t)mp->length &&
		   !cow_any(mp, index - (gfn - base), HPAGE_NR) &&  /* the host PMD was split */
		   (!vm_has_private_mem(o->vm) || attrs_all(&o->vm->attrs, base, base + HPAGE_NR, 0));
	return mmu_map(m, o, s, gfn, *pfn, huge, mo);
}

/* a write through a present mapping of a file page that a MAP_PRIVATE mapping
 * maps read only (not copied yet): the write protection fault breaks COW */
static bool wp_fault(const struct ss_machine *m, const struct memslot *s, uint64_t gfn, int write)
{
	return write && cow_pending(m, s->uaddr + ((gfn - s->gfn) << SS_PAGE_SHIFT));
}

static int gmem_fault(struct ss_machine *m, struct owner *o, const struct ss_access *a,
		      struct ss_access_result *out, uint64_t *pfn, int *mo)
{
	uint64_t gfn = a->gpa >> SS_PAGE_SHIFT;
	bool attr_priv = vm_has_private_mem(o->vm) &&
			 (attrs_get(&o->vm->attrs, gfn) & SS_MEMORY_ATTRIBUTE_PRIVATE);
	bool priv;
	switch (o->vm->type) {
	case SS_VM_DEFAULT:
		priv = false;
		break;
	case SS_VM_SW_PROTECTED:
		priv = attr_priv || a->private_ == 1;
		break;
	default:
		priv = a->private_ < 0 ? attr_priv : a->private_ == 1;
	}
	struct memslot *s = vm_slot_of(o, gfn);
	if (s && a->write && (s->flags & SS_MEM_READONLY))
		return mmio(m, o, out, a->gpa);
	int order;
	uint64_t v = owner_lookup(o, gfn, &order);
	if (v && priv == attr_priv && (!s || priv || s->gmem_only || !wp_fault(m, s, gfn, a->write))) {
		*pfn = v - 1;
		*mo = order;
		return 1;
	}
	if (priv != attr_priv)
		return memory_fault(m, o, out, gfn, priv, EFAULT);
	if (!s)
		return priv ? memory_fault(m, o, out, gfn, priv, EFAULT) : mmio(m, o, out, a->gpa);
	if (priv || s->gmem_only) {
		struct inode *in = inode_get(m, s->ino);
		if (!(s->flags & SS_MEM_GUEST_MEMFD) || !in)
			return memory_fault(m, o, out, gfn, priv, EFAULT);
		if (gmem_poisoned(m, in, s->index + (gfn - s->gfn)))  /* kvm_gmem_get_pfn */
			return memory_fault(m, o, out, gfn, priv, EHWPOISON);
		int r = map_locked(m, o, s, in, gfn, 1, pfn, mo);
		return r < 0 || r == KVM_FAULT_SLEEPS ? r : 1;
	}
	int r = map_hva(m, o, s, gfn, a->write, pfn, mo);
	return r < 0 || r == KVM_FAULT_SLEEPS ? r : 1;
}

static int rfc_fault(struct ss_machine *m, struct owner *o, const struct ss_access *a,
		     struct ss_access_result *out, uint64_t *pfn, int *mo)
{
	uint64_t gfn = a->gpa >> SS_PAGE_SHIFT;
	bool priv = a->private_ == 1;
	struct memslot *s = vm_slot_of(o, gfn);
	if (!s || (a->write && (s->flags & SS_MEM_READONLY)))
		return mmio(m, o, out, a->gpa);
	int order;
	uint64_t v = owner_lookup(o, gfn, &order);
	if (v && (s->ino && frame_ro(m, v - 1)->ino == s->ino) == priv &&
	    (priv || (s->flags & SS_MEM_FD) || !wp_fault(m, s, gfn, a->write))) {
		*pfn = v - 1;
		*mo = order;
		return 1;
	}
	if (!(s->flags & SS_MEM_FD)) {
		if (priv) {
			m->kvm_rule = SS_R_RUN_NO_PRIVATE_FD;
			return -EFAULT;
		}
		int r = map_hva(m, o, s, gfn, a->write, pfn, mo);
		return r < 0 || r == KVM_FAULT_SLEEPS ? r : 1;
	}
	uint64_t index = s->index + (gfn - s->gfn);
	struct inode *pin = inode_get(m, s->ino);
	if (priv) {
		if (!pin) {
			m->kvm_rule = SS_R_RUN_NO_PRIVATE_FD;
			return -EFAULT;
		}
		if (!tree_load(&pin->cache, index)) {
			ev_hazard(m, SS_HAZ_NULL_PAGE, 0);
			return memory_error(m, o, out, gfn, SS_EXIT_MEM_MAP_PRIVATE);
		}
		int r = map_locked(m, o, s, pin, gfn, 0, pfn, mo);
		return r < 0 || r == KVM_FAULT_SLEEPS ? r : 1;
	}
	if (pin && tree_load(&pin->cache, index))
		return memory_error(m, o, out, gfn, SS_EXIT_MEM_MAP_SHARED);
	struct inode *sin = inode_get(m, s->shared_ino);
	if (!sin) {
		m->kvm_rule = SS_R_RUN_HVA;
		return -EFAULT;
	}
	int r = map_locked(m, o, s, sin, gfn, 1, pfn, mo);
	if (r == -EINVAL) {
		/* past the file's end: get_lock_pfn fails, and patch 07 tests the
		 * unsigned pfn for >= 0, so the posted code would map the errno as a
		 * pfn: modelled as meant (the fault fails), the hazard marked */
		ev_hazard(m, SS_HAZ_ERRNO_AS_PFN, (uint64_t)(int64_t)r);
		m->kvm_rule = SS_R_RUN_HVA;
		r = -EFAULT;
	}
	return r < 0 || r == KVM_FAULT_SLEEPS ? r : 1;
}

int kvm_fault_page(struct ss_machine *m, struct owner *o, const struct ss_access *a,
		   struct ss_access_result *out, uint64_t *pfn, int *mo)
{
	if ((a->gpa >> SS_PAGE_SHIFT) > MAX_GFN)
		return mmio(m, o, out, a->gpa);
	return is_rfc(m) ? rfc_fault(m, o, a, out, pfn, mo) : gmem_fault(m, o, a, out, pfn, mo);
}

int ss_vcpu_access(struct ss_machine *m, int id, int vcpu, const struct ss_access *a,
		   struct ss_access_result *out)
{
	ev_begin(m, SS_OP_VCPU_ACCESS, -1, id, vcpu, (int64_t)a->gpa,
		 a->write | ((int64_t)(a->private_ + 1) << 1) | ((int64_t)a->value << 8));
	m->kvm_rule = SS_R_NONE;
	memset(out, 0, sizeof(*out));
	out->fd = -1;
	struct owner *o = vm_ioctl_get(m, id);
	if (!o)
		return vm_fail(m, id);
	if (vcpu < 0 || vcpu >= o->vm->nvcpus)
		return kvm_fail(m, SS_R_NO_VCPU, -ENOENT);
	uint64_t pfn = 0;
	int mo = 0;
	int r;
	r = kvm_fault_page(m, o, a, out, &pfn, &mo);
	if (r < 0)
		return kvm_fail(m, m->kvm_rule ? m->kvm_rule : SS_R_NOMEM, r);
	if (r == 0)
		return (int)ev_end(m, 0);  /* an exit */
	if (r == KVM_FAULT_SLEEPS) {
		struct inode *in = inode_get(m, frame_ro(m, pfn)->ino);
		struct waiter w = { .kind = W_VCPU, .seq = m->nevents, .op = SS_OP_VCPU_ACCESS,
				    .ino = in->ino, .index = frame_ro(m, pfn)->index, .owner = id,
				    .gfn = a->gpa >> SS_PAGE_SHIFT, .pfn = pfn, .acc = *a };
		ev_touch(m, SS_T_WAIT, in->fd, -1, w.index, 1, pfn);
		if (waiter_add(m, &w))
			return kvm_fail(m, SS_R_NOMEM, -ENOMEM);
		frame_rw(m, pfn)->refcount++;  /* lock_page() callers hold the page */
		if (m->cur)
			m->cur->e.fd = in->fd;
		return (int)ev_end(m, SS_PENDING);
	}
	r = kvm_access_finish(m, o, a, out, pfn, mo);
	return (int)ev_end(m, r);
}

int kvm_access_finish(struct ss_machine *m, struct owner *o, const struct ss_access *a,
		      struct ss_access_result *out, uint64_t pfn, int mo)
{
	unsigned int off = (unsigned int)(a->gpa & (SS_PAGE_SIZE - 1));
	if (a->write) {
		uint8_t *p;
		if (data_get(m, (uint32_t)pfn, &p)) {
			m->kvm_rule = SS_R_NOMEM;
			return -ENOMEM;
		}
		p[off] = a->value;
		frame_rw(m, frame_head(m, (uint32_t)pfn))->flags |= F_DIRTY;
	}
	const struct frame *f = frame_ro(m, pfn);  /* after the writes: they may copy its chunk */
	struct inode *in = inode_get(m, f->ino);
	out->value = f->data ? data_ro(m, f->data - 1)[off] : 0;
	struct memslot *s = vm_slot_of(o, a->gpa >> SS_PAGE_SHIFT);
	bool priv = is_rfc(m) ? (s && s->ino && f->ino == s->ino)
			      : (vm_has_private_mem(o->vm) &&
				 (attrs_get(&o->vm->attrs, a->gpa >> SS_PAGE_SHIFT) & SS_MEMORY_ATTRIBUTE_PRIVATE));
	out->backing = priv ? 1 : 2;
	out->fd = in ? in->fd : -1;
	out->index = f->index;
	out->pfn = pfn;
	out->order = mo;
	if (m->cur) {
		m->cur->e.fd = out->fd;
		m->cur->e.out[0] = (int64_t)pfn;
		m->cur->e.out[1] = mo;
	}
	return 0;
}
