/*
 * kvm_memslot.c - KVM_SET_USER_MEMORY_REGION2 (guest-memfd) and the RFC's
 * fd-based KVM_SET_USER_MEMORY_REGION with KVM_MEM_FD (rfc-v2).
 *
 * The checks run in the kernel's order, so which errno wins when two rules
 * break is the kernel's answer:
 *   kvm_vm_ioctl_set_memory_region: (u16)slot < KVM_USER_MEM_SLOTS;
 *   kvm_set_memory_region: check_memory_region_flags, size / gpa /
 *   userspace_addr alignment and access_ok (skipped for KVM_MEM_FD),
 *   guest_memfd_offset alignment and wrap, as_id and id, gpa wrap, size
 *   limit, delete (an empty slot is EINVAL), modify (guest_memfd slots are
 *   immutable; uaddr, size and READONLY must stay), gpa overlap (EEXIST);
 *   then kvm_gmem_bind (EBADF; not a guest_memfd, another VM's, offset +
 *   size past the end, a range already bound: EINVAL) and
 *   kvm_arch_prepare_memory_region (past the max gfn, a TDX alias: EINVAL).
 *   rfc-v2 (5.15 + patches 03 and 06): the same up to the overlap; then both
 *   files registered (EBADF; not shmem EINVAL; another owner EPERM).
 * A failing call changes nothing.  A guest_memfd binding does not hold the
 * file (the file pins KVM, not the reverse): its release unbinds the slots
 * (kvm_gmem_release).  An fd-based slot holds both files until deleted;
 * the registrations stay (patch 01 has no unregister).
 */
#include "internal.h"
#include <stdlib.h>
#include <string.h>

#define USER_PTR_MAX 0x7fffffffefffull   /* x86-64, 4-level paging */
#define MEM_MAX_NR_PAGES ((1ull << 31) - 1)
#define MAX_GFN ((1ull << 40) - 1)       /* 52 physical address bits */
#define TDX_SHARED_GFN (1ull << 39)      /* GPA bit 51 */

struct memslot *vm_slot_of(const struct owner *o, uint64_t gfn)
{
	for (int i = 0; i < o->nslots; i++) {
		struct memslot *s = &o->slots[i];
		if ((s->slot >> 16) == 0 && gfn >= s->gfn && gfn - s->gfn < s->npages)
			return s;
	}
	return NULL;
}

static struct memslot *slot_by_id(struct owner *o, uint32_t slot)
{
	for (int i = 0; i < o->nslots; i++)
		if ((uint32_t)o->slots[i].slot == slot)
			return &o->slots[i];
	return NULL;
}

static bool access_ok(uint64_t addr, uint64_t size)
{
	uint64_t sum = addr + size;
	return sum >= addr && sum <= USER_PTR_MAX;
}

static bool overlaps(const struct owner *o, uint32_t slot, uint64_t gfn, uint64_t npages)
{
	for (int i = 0; i < o->nslots; i++) {
		const struct memslot *s = &o->slots[i];
		if ((uint32_t)s->slot == slot || (s->slot >> 16) != (int)(slot >> 16))
			continue;
		if (gfn < s->gfn + s->npages && s->gfn < gfn + npages)
			return true;
	}
	return false;
}

/* the checks both profiles share, up to the overlap; *old the slot or NULL */
static int common_checks(struct ss_machine *m, struct owner *o, const struct ss_region *r,
			 struct memslot **old, int *rule)
{
	bool rfc = is_rfc(m), fd_based = rfc && (r->flags & SS_MEM_FD);
	bool gmem = !rfc && (r->flags & SS_MEM_GUEST_MEMFD);
	uint32_t id = r->slot & 0xffff, as_id = r->slot >> 16;
	int nr_as = !rfc && vm_has_private_mem(o->vm) ? 1 : 2;
#define FAIL(rl, e) do { *rule = (rl); return (e); } while (0)
	if (id >= SS_USER_MEM_SLOTS)
		FAIL(SS_R_SLOT_ID, -EINVAL);
	uint32_t valid = SS_MEM_LOG_DIRTY_PAGES;
	if (rfc) {
		valid |= SS_MEM_READONLY | SS_MEM_FD;
	} else {
		valid |= SS_MEM_GUEST_MEMFD;
		if (gmem)
			valid &= ~SS_MEM_LOG_DIRTY_PAGES;
		bool ro = o->vm->type != SS_VM_SNP && o->vm->type != SS_VM_TDX;
		if (ro && !gmem)
			valid |= SS_MEM_READONLY;
	}
	if (r->flags & ~valid)
		FAIL(SS_R_REGION_FLAGS, -EINVAL);
	if (r->memory_size & (SS_PAGE_SIZE - 1))
		FAIL(SS_R_SIZE_ALIGN, -EINVAL);
	if (r->guest_phys_addr & (SS_PAGE_SIZE - 1))
		FAIL(SS_R_GPA_ALIGN, -EINVAL);
	if ((r->userspace_addr & (SS_PAGE_SIZE - 1)) ||
	    (!fd_based && !access_ok(r->userspace_addr, r->memory_size)))
		FAIL(SS_R_UADDR, -EINVAL);
	if (gmem && ((r->guest_memfd_offset & (SS_PAGE_SIZE - 1)) ||
		     r->guest_memfd_offset + r->memory_size < r->guest_memfd_offset))
		FAIL(SS_R_GMEM_OFFSET, -EINVAL);
	if (as_id >= (uint32_t)nr_as)
		FAIL(SS_R_AS_ID, -EINVAL);
	if (r->guest_phys_addr + r->memory_size < r->guest_phys_addr)
		FAIL(SS_R_GPA_WRAP, -EINVAL);
	uint64_t npages = r->memory_size >> SS_PAGE_SHIFT;
	*old = slot_by_id(o, r->slot);
	if (!rfc && npages > MEM_MAX_NR_PAGES)
		FAIL(SS_R_TOO_BIG, -EINVAL);
	if (!r->memory_size) {
		if (!*old)
			FAIL(SS_R_DELETE_NONE, -EINVAL);
		return 0;
	}
	if (rfc && npages > MEM_MAX_NR_PAGES)
		FAIL(SS_R_TOO_BIG, -EINVAL);   /* 5.15 checks it after the delete path */
	uint64_t gfn = r->guest_phys_addr >> SS_PAGE_SHIFT;
	struct memslot *s = *old;
	if (s) {
		/* "Private memslots are immutable, they can only be deleted" */
		if (gmem || (rfc && ((r->flags | s->flags) & SS_MEM_FD)))
			FAIL(SS_R_IMMUTABLE, -EINVAL);
		uint32_t fixed = SS_MEM_READONLY | (rfc ? 0 : SS_MEM_GUEST_MEMFD);
		if (r->userspace_addr != s->uaddr || npages != s->npages ||
		    ((r->flags ^ s->flags) & fixed))
			FAIL(SS_R_MODIFY, -EINVAL);
		if (gfn == s->gfn)
			return 0;
	}
	if (overlaps(o, r->slot, gfn, npages))
		FAIL(SS_R_OVERLAP, -EEXIST);
	if (!rfc && (gfn + npages - 1 > MAX_GFN ||
		     (o->vm->type == SS_VM_TDX && ((gfn + npages - 1) & TDX_SHARED_GFN))))
		*rule = SS_R_MAX_GFN;  /* kvm_arch_prepare_memory_region: after the bind */
	return 0;
#undef FAIL
}

/* kvm_gmem_bind()'s checks, in order */
static int gmem_bind_check(struct ss_machine *m, struct owner *o, const struct ss_region *r,
			   struct inode **inp, int *rule)
{
	uint64_t npages = r->memory_size >> SS_PAGE_SHIFT;
	struct inode *in = r->guest_memfd <= 0x7fffffff ? fd_inode(m, (int)r->guest_memfd) : NULL;
	if (!in) {
		*rule = SS_R_BADF;
		return -EBADF;
	}
	*rule = in->kind != SS_KIND_GMEM ? SS_R_NOT_GMEM : in->vm != o->id + 1 ? SS_R_OTHER_VM : 0;
	if (*rule)
		return -EINVAL;
	int64_t off = (int64_t)r->guest_memfd_offset;
	if (off < 0 || r->memory_size > (uint64_t)in->size ||
	    (uint64_t)off > (uint64_t)in->size - r->memory_size) {
		*rule = SS_R_GMEM_RANGE;
		return -EINVAL;
	}
	uint64_t start = (uint64_t)off >> SS_PAGE_SHIFT;
	for (int i = 0; i < o->nslots; i++) {
		const struct memslot *s = &o->slots[i];
		if (s->ino == in->ino && start < s->index + s->npages && s->index < start + npages) {
			*rule = SS_R_GMEM_BOUND;
			return -EINVAL;
		}
	}
	*inp = in;
	return 0;
}

/* patch 06: both files must take the VM's registration */
static int rfc_file_check(struct ss_machine *m, struct owner *o, int fd, struct inode **inp,
			  int *rule)
{
	struct inode *in = fd_inode(m, fd);
	if (!in) {
		*rule = SS_R_BADF;
		return -EBADF;
	}
	if (in->kind != SS_KIND_MEMFD) {
		*rule = SS_R_RFC_NOT_MEMFD;
		return -EINVAL;
	}
	if (reg_refused(m, in, o->id)) {
		*rule = SS_R_RFC_OWNER;
		return -EPERM;
	}
	*inp = in;
	return 0;
}

/* variant multi_owner: a registration counts its uses; a deleted fd-based slot
 * drops one (the RFC as posted has no unregister: the VM stays the owner) */
static void drop_use(struct ss_machine *m, struct owner *o, uint32_t ino)
{
	struct inode *in = inode_get(m, ino);
	if (!in || !(m->cfg.variants & SS_VAR_MULTI_OWNER))
		return;
	for (int i = 0; i < in->nregs; i++) {
		if (in->regs[i].owner != o->id || --in->regs[i].users > 0)
			continue;
		memmove(&in->regs[i], &in->regs[i + 1], (size_t)(in->nregs - i - 1) * sizeof(in->regs[0]));
		in->nregs--;
		return;
	}
}

static void slot_delete(struct ss_machine *m, struct owner *o, struct memslot *s)
{
	/* kvm_arch_flush_shadow_memslot: the slot's gfns go */
	if (slot_in_as0(s))
		mmu_zap(m, o, s->gfn, s->gfn + s->npages, 0);
	uint32_t inos[2] = { s->vm && !is_rfc(m) ? 0 : s->ino, s->shared_ino };
	if (is_rfc(m) && (s->flags & SS_MEM_FD)) {
		drop_use(m, o, s->shared_ino);
		drop_use(m, o, s->ino);
	}
	o->vm->nr_memslot_pages -= s->npages;
	int i = (int)(s - o->slots);
	memmove(&o->slots[i], &o->slots[i + 1], (size_t)(o->nslots - i - 1) * sizeof(*s));
	o->nslots--;
	for (int k = 0; k < 2; k++) {
		struct inode *in = inode_get(m, inos[k]);
		if (in && in->fd < 0)
			inode_release(m, in);  /* the slot held the file's last reference */
	}
}

static int do_set_region(struct ss_machine *m, struct owner *o, const struct ss_region *r)
{
	bool rfc = is_rfc(m);
	struct memslot *old = NULL;
	int rule = 0;
	int err = common_checks(m, o, r, &old, &rule);
	if (err)
		return kvm_fail(m, rule, err);
	int late_rule = rule;  /* the arch check runs after the bind */
	if (!r->memory_size) {
		slot_delete(m, o, old);
		return (int)ev_end(m, 0);
	}
	uint64_t gfn = r->guest_phys_addr >> SS_PAGE_SHIFT;
	if (old) {
		if (gfn == old->gfn) {  /* flags only, or nothing */
			old->flags = r->flags;
			return (int)ev_end(m, 0);
		}
		if (late_rule)
			return kvm_fail(m, late_rule, -EINVAL);
		if (slot_in_as0(old))  /* KVM_MR_MOVE */
			mmu_zap(m, o, old->gfn, old->gfn + old->npages, 0);
		old->gfn = gfn;
		old->flags = r->flags;
		return (int)ev_end(m, 0);
	}
	struct inode *gm = NULL, *shared = NULL, *priv = NULL;
	if (!rfc && (r->flags & SS_MEM_GUEST_MEMFD)) {
		err = gmem_bind_check(m, o, r, &gm, &rule);
		if (err)
			return kvm_fail(m, rule, err);
	}
	if (late_rule)
		return kvm_fail(m, late_rule, -EINVAL);
	if (rfc && (r->flags & SS_MEM_FD)) {
		err = rfc_file_check(m, o, r->fd, &shared, &rule);
		if (!err && r->private_fd != -1)
			err = rfc_file_check(m, o, r->private_fd, &priv, &rule);
		if (err)
			return kvm_fail(m, rule, err);
	}
	struct memslot *p = realloc(o->slots, (size_t)(o->nslots + 1) * sizeof(*p));
	if (!p)
		return kvm_fail(m, SS_R_NOMEM, -ENOMEM);
	o->slots = p;
	struct memslot *s = &o->slots[o->nslots++];
	memset(s, 0, sizeof(*s));
	s->slot = (int)r->slot;
	s->vm = 1;
	s->flags = r->flags;
	s->gfn = gfn;
	s->npages = r->memory_size >> SS_PAGE_SHIFT;
	s->uaddr = r->userspace_addr;
	if (gm) {
		s->ino = gm->ino;
		s->index = r->guest_memfd_offset >> SS_PAGE_SHIFT;
		s->gmem_only = (gm->flags & SS_GMEM_FLAG_MMAP) != 0;
		if (m->cur)
			m->cur->e.fd = gm->fd;
		if (inplace_slot_sync(m, o, s))
			return kvm_fail(m, SS_R_NOMEM, -ENOMEM);
	}
	if (shared) {
		s->index = r->userspace_addr >> SS_PAGE_SHIFT;  /* the offset into both files */
		s->shared_ino = shared->ino;
		do_register(m, shared, o->id);
		if (priv) {
			s->ino = priv->ino;
			do_register(m, priv, o->id);
			if (!(priv->seals & SS_F_SEAL_GUEST))
				ev_hazard(m, SS_HAZ_UNSEALED_REGISTER, 0);
		}
		if (m->cur)
			m->cur->e.fd = priv ? priv->fd : shared->fd;
	}
	o->vm->nr_memslot_pages += s->npages;
	return (int)ev_end(m, 0);
}

int ss_vm_set_memory_region(struct ss_machine *m, int id, const struct ss_region *r)
{
	ev_begin(m, SS_OP_SET_REGION, -1, r->slot, r->flags, (int64_t)r->guest_phys_addr,
		 (int64_t)r->memory_size);
	m->kvm_rule = SS_R_NONE;
	struct owner *o = vm_ioctl_get(m, id);
	if (!o)
		return vm_fail(m, id);
	return do_set_region(m, o, r);
}

void kvm_gmem_release(struct ss_machine *m, struct inode *in)
{
	for (int oi = 0; oi < m->nowners; oi++) {
		struct owner *o = &m->owners[oi];
		if (!o->vm)
			continue;
		for (int i = 0; i < o->nslots; i++) {
			struct memslot *s = &o->slots[i];
			if (s->ino != in->ino)
				continue;
			ev_callback(m, SS_CB_GMEM_INVALIDATE, o->id, s->index, s->index + s->npages);
			o->ncallbacks++;
			if (slot_in_as0(s))
				mmu_zap(m, o, s->gfn, s->gfn + s->npages, in->ino);
			s->ino = 0;
			s->gmem_closed = 1;
		}
	}
	if (in->vm)
		vm_put_maybe(m, in->vm - 1);  /* kvm_gmem_release: kvm_put_kvm */
}

void kvm_destroy_memslots(struct ss_machine *m, struct owner *o)
{
	while (o->nslots)
		slot_delete(m, o, &o->slots[o->nslots - 1]);
	free(o->slots);
	o->slots = NULL;
}

int ss_vm_memslots(const struct ss_machine *m, int id, struct ss_vm_memslot *out, int max)
{
	const struct owner *o = vm_get_const(m, id);
	if (!o)
		return -EINVAL;
	int n = 0;
	for (int i = 0; i < o->nslots && n < max; i++, n++) {
		const struct memslot *s = &o->slots[i];
		struct ss_vm_memslot *d = &out[n];
		memset(d, 0, sizeof(*d));
		d->slot = (uint32_t)s->slot;
		d->flags = s->flags;
		d->guest_phys_addr = s->gfn << SS_PAGE_SHIFT;
		d->memory_size = s->npages << SS_PAGE_SHIFT;
		d->userspace_addr = s->uaddr;
		d->guest_memfd = d->fd = d->private_fd = -1;
		d->gmem_closed = s->gmem_closed;
		d->gmem_only = s->gmem_only;
		const struct inode *in = s->ino && s->ino <= (uint32_t)m->ninodes ? &m->inodes[s->ino - 1] : NULL;
		const struct inode *sh = s->shared_ino && s->shared_ino <= (uint32_t)m->ninodes
						 ? &m->inodes[s->shared_ino - 1] : NULL;
		if (is_rfc(m)) {
			d->private_fd = in ? in->fd : -1;
			d->fd = sh ? sh->fd : -1;
		} else {
			d->guest_memfd = in ? in->fd : -1;
			d->guest_memfd_offset = (s->flags & SS_MEM_GUEST_MEMFD) ? s->index << SS_PAGE_SHIFT : 0;
		}
	}
	return n;
}
