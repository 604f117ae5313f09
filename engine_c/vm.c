/*
 * vm.c - VMs: KVM_CREATE_VM, KVM_CHECK_EXTENSION on the VM fd,
 * KVM_CREATE_GUEST_MEMFD, KVM_CREATE_VCPU, and close(vm_fd).
 *
 * Closing the VM fd drops its reference (kvm_vm_release -> kvm_put_kvm); each
 * guest_memfd the VM made holds another (__kvm_gmem_create: kvm_get_kvm, put by
 * kvm_gmem_release), so the VM lives on, memslots and mappings intact and
 * ioctl-less, until the last of them is closed and unmapped; then
 * kvm_destroy_vm frees its memslots, secondary MMU and attributes.  The
 * simulator's vCPUs have no fds of their own: they go with the VM fd.  In
 * rfc-v2 nothing holds the VM: it is destroyed at once, and its registrations
 * on the memfds stay (the backing store is not told, patch 13's vm_is_dead):
 * callbacks reach a dead owner that does nothing, and another VM registering
 * the file meets EPERM (the dead_owner hazard).
 *
 * A VM is an owner of kind SS_OWNER_KVM with a struct kvm_vm: its type,
 * vCPUs and memory attributes.  Its secondary MMU is the owner's gfns tree
 * (mmu.c), its memslots the owner's slots (kvm_memslot.c).  The answers are
 * mainline x86's with a TDP MMU (arch/x86/kvm/x86.c kvm_vm_ioctl_check_extension,
 * virt/kvm/kvm_main.c kvm_vm_ioctl_check_extension_generic) for the
 * guest-memfd profile, and 5.15's for rfc-v2 (which has no guest_memfd).
 */
#include "internal.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int kvm_fail(struct ss_machine *m, int rule, int err)
{
	m->kvm_rule = rule;
	return (int)ev_end(m, err);
}

int ss_kvm_rule(const struct ss_machine *m)
{
	return m->kvm_rule;
}

const struct owner *vm_get_const(const struct ss_machine *m, int vm)
{
	if (vm < 0 || vm >= m->nowners || !owner_is_live_vm(&m->owners[vm]))
		return NULL;
	return &m->owners[vm];
}

struct owner *vm_get(struct ss_machine *m, int vm)
{
	return vm_get_const(m, vm) ? &m->owners[vm] : NULL;
}

struct owner *vm_ioctl_get(struct ss_machine *m, int vm)
{
	struct owner *o = vm_get(m, vm);
	return o && !o->vm->closed ? o : NULL;
}

int vm_fail(struct ss_machine *m, int vm)
{
	if (vm >= 0 && vm < m->nowners && m->owners[vm].vm)
		return kvm_fail(m, SS_R_VM_CLOSED, -EBADF);  /* closed, maybe destroyed */
	return kvm_fail(m, SS_R_NO_VM, -EINVAL);
}

/* a guest_memfd the VM made that is still open or mapped holds it */
bool vm_is_held(const struct ss_machine *m, int id)
{
	for (int i = 0; i < m->ninodes; i++) {
		const struct inode *in = &m->inodes[i];
		if (in->ino && in->vm == id + 1 && (in->fd >= 0 || in->maps))
			return true;
	}
	return false;
}

static void vm_destroy(struct ss_machine *m, struct owner *o)
{
	kvm_destroy_memslots(m, o);     /* kvm_free_memslots: their mappings go */
	mmu_zap(m, o, 0, UINT64_MAX, 0);  /* kvm_mmu_uninit_vm: whatever is left */
	attrs_free(&o->vm->attrs);
	memset(&o->vm->attrs, 0, sizeof(o->vm->attrs));
	o->vm->nvcpus = 0;
	o->vm->dead = 1;
	ev_touch(m, SS_T_VM_DESTROY, -1, o->id, 0, 1, 0);  /* npages 1: one VM */
}

void vm_put_maybe(struct ss_machine *m, int id)
{
	if (id < 0 || id >= m->nowners)
		return;
	struct owner *o = &m->owners[id];
	if (owner_is_live_vm(o) && o->vm->closed && !vm_is_held(m, id))
		vm_destroy(m, o);
}

int ss_vm_close(struct ss_machine *m, int id)
{
	ev_begin(m, SS_OP_VM_CLOSE, -1, id, 0, 0, 0);
	m->kvm_rule = SS_R_NONE;
	struct owner *o = vm_ioctl_get(m, id);
	if (!o)
		return vm_fail(m, id);
	o->vm->closed = 1;
	vm_put_maybe(m, id);
	return (int)ev_end(m, 0);
}

bool vm_has_private_mem(const struct kvm_vm *vm)
{
	return vm->type != SS_VM_DEFAULT;
}

void vm_free(struct kvm_vm *vm)
{
	if (!vm)
		return;
	attrs_free(&vm->attrs);
	free(vm);
}

struct kvm_vm *vm_clone(const struct kvm_vm *src)
{
	struct kvm_vm *vm = malloc(sizeof(*vm));
	if (!vm)
		return NULL;
	*vm = *src;
	if (attrs_clone(&vm->attrs, &src->attrs)) {
		free(vm);
		return NULL;
	}
	return vm;
}

static bool type_ok(const struct ss_machine *m, uint64_t type)
{
	if (is_rfc(m))
		return type == SS_VM_DEFAULT;  /* 5.15 kvm_arch_init_vm: if (type) EINVAL */
	return type == SS_VM_DEFAULT || type == SS_VM_SW_PROTECTED || type == SS_VM_SNP ||
	       type == SS_VM_TDX;
}

int ss_vm_create(struct ss_machine *m, uint64_t type, const char *name)
{
	ev_begin(m, SS_OP_VM_CREATE, -1, (int64_t)type, 0, 0, 0);
	m->kvm_rule = SS_R_NONE;
	if (!type_ok(m, type))
		return kvm_fail(m, SS_R_VM_TYPE, -EINVAL);
	if (!name || strlen(name) >= sizeof(m->owners[0].name))
		return kvm_fail(m, SS_R_NONE, -EINVAL);
	if (m->nowners == SS_MAX_OWNERS)
		return kvm_fail(m, SS_R_TOO_MANY, -ENOSPC);
	struct kvm_vm *vm = calloc(1, sizeof(*vm));
	if (!vm)
		return kvm_fail(m, SS_R_NOMEM, -ENOMEM);
	vm->type = (int)type;
	vm->launch = (type == SS_VM_SNP || type == SS_VM_TDX) ? SS_LAUNCH_INIT : SS_LAUNCH_NONE;
	sha384_init(&vm->mr);
	struct owner *o = &m->owners[m->nowners];
	memset(o, 0, sizeof(*o));
	o->id = m->nowners++;
	o->kind = SS_OWNER_KVM;
	o->vm = vm;
	snprintf(o->name, sizeof(o->name), "%s", name);
	tree_init(&o->gfns);
	return (int)ev_end(m, o->id);
}

int ss_vm_caps(const struct ss_machine *m, int id, struct ss_cap *out, int max)
{
	const struct owner *o = vm_get_const(m, id);
	if (!o)
		return id >= 0 && id < m->nowners && m->owners[id].vm ? -EBADF : -EINVAL;
	if (o->vm->closed)
		return -EBADF;  /* KVM_CHECK_EXTENSION on the VM fd */
	bool gmem = !is_rfc(m), priv = vm_has_private_mem(o->vm);
	bool prot_state = o->vm->type == SS_VM_SNP || o->vm->type == SS_VM_TDX;
	const struct ss_cap caps[] = {
		{ "KVM_CAP_USER_MEMORY", 1 },
		{ "KVM_CAP_SYNC_MMU", 1 },
		{ "KVM_CAP_NR_MEMSLOTS", SS_USER_MEM_SLOTS },
		/* kvm_arch_nr_memslot_as_ids(): no SMM address space with private memory */
		{ "KVM_CAP_MULTI_ADDRESS_SPACE", priv ? 1 : 2 },
		/* kvm_arch_has_readonly_mem(): not with protected state */
		{ "KVM_CAP_READONLY_MEM", prot_state ? 0 : 1 },
		{ "KVM_CAP_USER_MEMORY2", gmem },
		{ "KVM_CAP_MEMORY_FAULT_INFO", gmem },
		{ "KVM_CAP_MEMORY_ATTRIBUTES", gmem && priv ? (int64_t)SS_MEMORY_ATTRIBUTE_PRIVATE : 0 },
		{ "KVM_CAP_GUEST_MEMFD", gmem },
		{ "KVM_CAP_GUEST_MEMFD_FLAGS",
		  gmem ? (int64_t)(priv ? SS_GMEM_FLAG_MMAP : SS_GMEM_FLAG_MMAP | SS_GMEM_FLAG_INIT_SHARED) : 0 },
		{ "KVM_CAP_VM_TYPES",
		  gmem ? (1 << SS_VM_DEFAULT) | (1 << SS_VM_SW_PROTECTED) | (1 << SS_VM_SNP) | (1 << SS_VM_TDX) : 0 },
		{ "KVM_CAP_PRE_FAULT_MEMORY", gmem },  /* tdp_enabled */
		{ "KVM_CAP_MAX_VCPUS", SS_MAX_VCPUS },
	};
	int n = (int)(sizeof(caps) / sizeof(caps[0]));
	for (int i = 0; i < n && i < max; i++)
		out[i] = caps[i];
	return n < max ? n : max;
}

/* kvm_gmem_get_supported_flags(): INIT_SHARED only without private memory */
static uint64_t gmem_flags(const struct kvm_vm *vm)
{
	uint64_t f = SS_GMEM_FLAG_MMAP;
	if (!vm_has_private_mem(vm))
		f |= SS_GMEM_FLAG_INIT_SHARED;
	return f;  /* inplace_conversion: see ss_vm_gmem_create */
}

int ss_vm_gmem_create(struct ss_machine *m, int id, uint64_t size, uint64_t flags)
{
	ev_begin(m, SS_OP_VM_GMEM, -1, (int64_t)size, (int64_t)flags, id, 0);
	m->kvm_rule = SS_R_NONE;
	struct owner *o = vm_ioctl_get(m, id);
	if (!o)
		return vm_fail(m, id);
	if (is_rfc(m))
		return kvm_fail(m, SS_R_NO_IOCTL, -ENOTTY);
	/* kvm_gmem_create(): flags first, then the size (a loff_t) */
	if (flags & ~(gmem_flags(o->vm) | (is_inplace(m) ? SS_GMEM_FLAG_INIT_SHARED : 0)))
		return kvm_fail(m, SS_R_GMEM_FLAGS, -EINVAL);
	if ((int64_t)size <= 0 || (size & (SS_PAGE_SIZE - 1)))
		return kvm_fail(m, SS_R_GMEM_SIZE, -EINVAL);
	int fd = do_gmem_create(m, (int64_t)size, flags);
	if (fd < 0)
		return kvm_fail(m, SS_R_NONE, fd);
	fd_inode(m, fd)->vm = id + 1;
	if (m->cur)
		m->cur->e.fd = fd;
	return (int)ev_end(m, fd);
}

int ss_vcpu_create(struct ss_machine *m, int id)
{
	ev_begin(m, SS_OP_VCPU_CREATE, -1, id, 0, 0, 0);
	m->kvm_rule = SS_R_NONE;
	struct owner *o = vm_ioctl_get(m, id);
	if (!o)
		return vm_fail(m, id);
	if (o->vm->nvcpus >= SS_MAX_VCPUS)
		return kvm_fail(m, SS_R_VCPUS, -EINVAL);
	return (int)ev_end(m, o->vm->nvcpus++);
}

int ss_vm_info(const struct ss_machine *m, int id, struct ss_vm_info *out)
{
	const struct owner *o = vm_get_const(m, id);
	if (!o)
		return -EINVAL;
	out->id = id;
	out->type = o->vm->type;
	out->nvcpus = o->vm->nvcpus;
	out->nslots = o->nslots;
	out->nattr_runs = o->vm->attrs.n;
	out->attr_bytes = sizeof(struct attr_store) + o->vm->attrs.cap * sizeof(struct attr_run);
	out->closed = o->vm->closed;
	return 0;
}

int ss_vm_attr_runs(const struct ss_machine *m, int id, uint64_t start, uint64_t end,
		    struct ss_attr_run *out, int max)
{
	const struct owner *o = vm_get_const(m, id);
	if (!o)
		return -EINVAL;
	const struct attr_store *a = &o->vm->attrs;
	int n = 0;
	for (uint32_t i = 0; i < a->n && n < max; i++) {
		const struct attr_run *r = &a->runs[i];
		if (r->end <= start || r->start >= end)
			continue;
		out[n].start = r->start > start ? r->start : start;
		out[n].end = r->end < end ? r->end : end;
		out[n].attributes = r->attrs;
		n++;
	}
	return n;
}
