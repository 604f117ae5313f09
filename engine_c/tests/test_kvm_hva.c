/*
 * test_kvm_hva.c - C unit tests of KVM_RUN through userspace_addr (kvm_fault.c
 * map_hva) where the mapping is a guest_memfd's own: a hwpoisoned page is never
 * mapped again (SIGBUS to the vCPU thread, KVM_RUN EINTR); ss_check after every step.
 */
#include "../sealscope.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define PG 4096ull
#define MiB (1ull << 20)

static void test_poisoned_page_behind_userspace_addr(void)
{
	cur_test = "poisoned_page_behind_userspace_addr";
	struct ss_config c = { .profile = SS_PROFILE_GMEM, .thp = SS_THP_NEVER, .phys_pages = 4096 };
	struct ss_machine *m = ss_machine_new(&c);
	if (!m)
		exit(2);
	int vm = ss_vm_create(m, SS_VM_DEFAULT, "vm");
	EXPECT(m, ss_vcpu_create(m, vm), 0);
	int g = ss_vm_gmem_create(m, vm, MiB, SS_GMEM_FLAG_MMAP | SS_GMEM_FLAG_INIT_SHARED);
	TRUE(g >= 0);
	int map = ss_mmap(m, g, 0, (int64_t)MiB, SS_PROT_READ | SS_PROT_WRITE, SS_MAP_SHARED);
	TRUE(map >= 0);
	uint64_t addr = 0;
	EXPECT(m, ss_mapping_addr(m, map, &addr), 0);
	/* a plain slot (no KVM_MEM_GUEST_MEMFD) whose userspace_addr is the guest_memfd's mapping */
	struct ss_region r = { .slot = 0, .guest_phys_addr = 0, .memory_size = MiB, .userspace_addr = addr };
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), 0);
	struct ss_access a = { .gpa = PG, .write = 1, .private_ = -1, .value = 3 };
	struct ss_access_result out;
	EXPECT(m, ss_vcpu_access(m, vm, 0, &a, &out), 0);
	uint64_t pfn = out.pfn;
	EXPECT(m, ss_memory_failure(m, pfn), 0);
	a.write = 0;
	EXPECT(m, ss_vcpu_access(m, vm, 0, &a, &out), -EINTR);
	RULE(m, SS_R_RUN_HVA_HWPOISON);
	struct ss_gfn_run gr[4];
	EXPECT(m, ss_owner_gfn_runs(m, vm, 0, gr, 4), 0);   /* never mapped again */
	/* the next page is fine */
	a.gpa = 2 * PG;
	EXPECT(m, ss_vcpu_access(m, vm, 0, &a, &out), 0);
	TRUE(out.pfn != pfn);
	ss_machine_free(m);
}

int hva_tests(int *nchecks);
int hva_tests(int *nchecks)
{
	test_poisoned_page_behind_userspace_addr();
	*nchecks = checks;
	return failures;
}
