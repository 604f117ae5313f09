/*
 * kvm_prefault.c - KVM_PRE_FAULT_MEMORY (virt/kvm/kvm_main.c
 * kvm_vcpu_pre_fault_memory, arch/x86/kvm/mmu/mmu.c
 * kvm_arch_vcpu_pre_fault_memory and kvm_tdp_map_page, 6.18).
 *
 * Order: flags != 0, then an unaligned, empty or wrapping range (EINVAL);
 * a VM whose pre_fault_allowed is false (SNP and TDX until their launch is
 * finalized: LAUNCH_FINISH / FINALIZE_VM set it, kvm_coco.c): EOPNOTSUPP; rfc-v2's 5.15 has no such ioctl (ENOTTY).  Then
 * page after page: a read fault, private when the attribute says so; a
 * mapping ends the step at its end (a 2 MiB mapping covers the rest of its
 * 2 MiB).  A gfn without memslot ends it with ENOENT (RET_PF_EMULATE), a
 * fault that fails (a MEMORY_FAULT exit, no page at userspace_addr) with its
 * errno.  Success when at least one page was mapped: the answer is what is
 * left; otherwise the first failure's errno.
 */
#include "internal.h"
#include <string.h>

static int prefault_one(struct ss_machine *m, struct owner *o, uint64_t gpa, uint64_t *step)
{
	struct ss_access a = { .gpa = gpa, .private_ = -1 };
	struct ss_access_result out;
	uint64_t pfn = 0;
	int mo = 0;
	memset(&out, 0, sizeof(out));
	if (vm_has_private_mem(o->vm) &&
	    (attrs_get(&o->vm->attrs, gpa >> SS_PAGE_SHIFT) & SS_MEMORY_ATTRIBUTE_PRIVATE))
		a.private_ = 1;
	else if (o->vm->type != SS_VM_DEFAULT)
		a.private_ = 0;
	int r = kvm_fault_page(m, o, &a, &out, &pfn, &mo);
	if (r == KVM_FAULT_SLEEPS) {  /* rfc-v2 has no pre-fault: never reached */
		m->kvm_rule = SS_R_RUN_LOCKED;
		return -EAGAIN;
	}
	if (r < 0) {
		m->kvm_rule = SS_R_PREFAULT_FAULT;
		return r;
	}
	if (r == 0) {
		m->kvm_rule = out.exit_reason == SS_EXIT_MMIO ? SS_R_PREFAULT_NOSLOT : SS_R_PREFAULT_FAULT;
		return out.exit_reason == SS_EXIT_MMIO ? -ENOENT : -EFAULT;
	}
	uint64_t span = mo == SS_HPAGE_ORDER ? (uint64_t)HPAGE_NR << SS_PAGE_SHIFT : SS_PAGE_SIZE;
	*step = ((gpa & ~(span - 1)) + span) - gpa;
	return 0;
}

int ss_vcpu_pre_fault(struct ss_machine *m, int id, int vcpu, uint64_t *gpa, uint64_t *size,
		      uint64_t flags)
{
	ev_begin(m, SS_OP_PRE_FAULT, -1, id, vcpu, (int64_t)*gpa, (int64_t)*size);
	m->kvm_rule = SS_R_NONE;
	struct owner *o = vm_ioctl_get(m, id);
	if (!o)
		return vm_fail(m, id);
	if (is_rfc(m))
		return kvm_fail(m, SS_R_NO_IOCTL, -ENOTTY);
	if (vcpu < 0 || vcpu >= o->vm->nvcpus)
		return kvm_fail(m, SS_R_NO_VCPU, -ENOENT);
	if (flags)
		return kvm_fail(m, SS_R_PREFAULT_FLAGS, -EINVAL);
	if ((*gpa | *size) & (SS_PAGE_SIZE - 1) || *gpa + *size <= *gpa)
		return kvm_fail(m, SS_R_PREFAULT_RANGE, -EINVAL);
	if (vm_is_coco(o->vm) && o->vm->launch != SS_LAUNCH_DONE)
		return kvm_fail(m, SS_R_PREFAULT_NOT_YET, -EOPNOTSUPP);
	uint64_t full = *size;
	int r = 0;
	while (*size) {
		uint64_t step = 0;
		r = prefault_one(m, o, *gpa, &step);
		if (r)
			break;
		if (step > *size)
			step = *size;
		*gpa += step;
		*size -= step;
	}
	if (r && *size == full)
		return kvm_fail(m, m->kvm_rule, r);
	m->kvm_rule = SS_R_NONE;
	return (int)ev_end(m, 0);
}
