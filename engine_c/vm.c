/*
 * vm.c - VMs: KVM_CREATE_VM, KVM_CHECK_EXTENSION on the VM fd,
 * KVM_CREATE_GUEST_MEMFD, KVM_CREATE_VCPU.
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

struct owner *vm_get(struct ss_machine *m, int vm)
{
	if (vm < 0 || vm >= m->nowners || !m->owners[vm].vm)
		return NULL;
	return &m->owners[vm];
}

const struct owner *vm_get_const(const struct ss_machine *m, int vm)
{
	if (vm < 0 || vm >= m->nowners || !m->owners[vm].vm)
		return NULL;
	return &m->owners[vm];
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
		return -EINVAL;
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
	struct owner *o = vm_get(m, id);
	if (!o)
		return kvm_fail(m, SS_R_NO_VM, -EINVAL);
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
	struct owner *o = vm_get(m, id);
	if (!o)
		return kvm_fail(m, SS_R_NO_VM, -EINVAL);
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
