/*
 * test_vm_close.c - C unit tests of close(vm_fd) (vm.c): a guest_memfd keeps
 * its VM alive (__kvm_gmem_create's kvm_get_kvm), ioctls on the closed VM fd
 * are EBADF, the last guest_memfd's release destroys the VM; rfc-v2 destroys
 * at once and leaves its registrations (patch 13's vm_is_dead).  ss_check
 * after every step.
 */
#include "../sealscope.h"
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define PG 4096ull
#define MiB (1ull << 20)
#define PUNCH (SS_FALLOC_FL_PUNCH_HOLE | SS_FALLOC_FL_KEEP_SIZE)

static struct ss_machine *mk(int profile)
{
	struct ss_config c = { .profile = profile, .thp = SS_THP_NEVER, .phys_pages = 4096 };
	struct ss_machine *m = ss_machine_new(&c);
	if (!m) {
		fprintf(stderr, "machine_new failed\n");
		exit(2);
	}
	return m;
}

static uint64_t free_frames(struct ss_machine *m)
{
	struct ss_phys_info pi;
	ss_phys_info(m, &pi);
	return pi.free;
}

static int run(struct ss_machine *m, int vm, uint64_t gpa, int write, int priv)
{
	struct ss_access a = { .gpa = gpa, .write = write, .private_ = priv, .value = 9 };
	struct ss_access_result out;
	int rc = ss_vcpu_access(m, vm, 0, &a, &out);
	check(m, __LINE__);
	return rc < 0 ? rc : out.exit_reason;
}

static int mapped(struct ss_machine *m, int vm)
{
	struct ss_gfn_run gr[8];
	int n = ss_owner_gfn_runs(m, vm, 0, gr, 8);
	uint64_t pages = 0;
	for (int i = 0; i < n; i++)
		pages += gr[i].npages;
	return n < 0 ? n : (int)pages;
}

static bool last_event_destroys(struct ss_machine *m, int vm)
{
	struct ss_touch t[16];
	int n = ss_event_touches(m, ss_event_count(m), 0, t, 16);
	for (int i = 0; i < n; i++)
		if (t[i].what == SS_T_VM_DESTROY && t[i].owner == vm)
			return true;
	return false;
}

static void test_gmem_keeps_the_vm(void)
{
	cur_test = "gmem_keeps_the_vm";
	struct ss_machine *m = mk(SS_PROFILE_GMEM);
	uint64_t free0 = free_frames(m);
	int vm = ss_vm_create(m, SS_VM_SW_PROTECTED, "vm");
	EXPECT(m, ss_vcpu_create(m, vm), 0);
	int g = ss_vm_gmem_create(m, vm, 1 * MiB, 0);
	EXPECT(m, g, 3);
	struct ss_region r = { .slot = 0, .flags = SS_MEM_GUEST_MEMFD, .guest_phys_addr = 0,
			       .memory_size = 1 * MiB, .userspace_addr = 0x10000000,
			       .guest_memfd_offset = 0, .guest_memfd = (uint32_t)g };
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), 0);
	EXPECT(m, ss_vm_set_memory_attributes(m, vm, 0, 8 * PG, SS_MEMORY_ATTRIBUTE_PRIVATE, 0), 0);
	EXPECT(m, run(m, vm, 0, 1, -1), 0);
	EXPECT(m, run(m, vm, PG, 1, -1), 0);
	EXPECT(m, mapped(m, vm), 2);

	EXPECT(m, ss_vm_close(m, vm), 0);
	TRUE(!last_event_destroys(m, vm));
	struct ss_vm_info vi;
	EXPECT(m, ss_vm_info(m, vm, &vi), 0);   /* alive: the guest_memfd holds it */
	EXPECT(m, vi.closed, 1);
	EXPECT(m, vi.nslots, 1);
	/* the VM fd is gone: every ioctl on it is EBADF */
	EXPECT(m, ss_vm_close(m, vm), -EBADF);
	RULE(m, SS_R_VM_CLOSED);
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), -EBADF);
	RULE(m, SS_R_VM_CLOSED);
	EXPECT(m, ss_vm_set_memory_attributes(m, vm, 0, PG, 0, 0), -EBADF);
	EXPECT(m, ss_vm_gmem_create(m, vm, PG, 0), -EBADF);
	EXPECT(m, ss_vcpu_create(m, vm), -EBADF);
	EXPECT(m, run(m, vm, 0, 0, -1), -EBADF);
	struct ss_cap caps[4];
	EXPECT(m, ss_vm_caps(m, vm, caps, 4), -EBADF);
	/* the file still works, and its invalidations still reach the VM */
	EXPECT(m, ss_fallocate(m, g, SS_FALLOC_FL_KEEP_SIZE, 16 * PG, 4 * PG), 0);
	EXPECT(m, ss_fallocate(m, g, PUNCH, 0, (int64_t)PG), 0);
	EXPECT(m, mapped(m, vm), 1);
	/* the last close of the guest_memfd destroys the VM */
	EXPECT(m, ss_close(m, g), 0);
	TRUE(last_event_destroys(m, vm));
	EXPECT(m, ss_vm_info(m, vm, &vi), -EINVAL);
	EXPECT(m, mapped(m, vm), 0);
	EXPECT(m, ss_vm_close(m, vm), -EBADF);
	EXPECT(m, free_frames(m), free0);
	/* a new VM takes the next owner id; the dead one's stays taken */
	EXPECT(m, ss_vm_create(m, SS_VM_DEFAULT, "next"), vm + 1);
	ss_machine_free(m);
}

static void test_no_gmem_destroys_at_once(void)
{
	cur_test = "no_gmem_destroys_at_once";
	struct ss_machine *m = mk(SS_PROFILE_GMEM);
	int vm = ss_vm_create(m, SS_VM_DEFAULT, "vm");
	EXPECT(m, ss_vcpu_create(m, vm), 0);
	int fd = ss_memfd_create(m, "ram", 0);
	EXPECT(m, ss_ftruncate(m, fd, (int64_t)(16 * PG)), 0);
	int map = ss_mmap(m, fd, 0, (int64_t)(16 * PG), SS_PROT_READ | SS_PROT_WRITE, SS_MAP_SHARED);
	TRUE(map >= 0);
	uint64_t addr = 0;
	EXPECT(m, ss_mapping_addr(m, map, &addr), 0);
	struct ss_region r = { .slot = 0, .flags = 0, .guest_phys_addr = 0,
			       .memory_size = 16 * PG, .userspace_addr = addr };
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), 0);
	EXPECT(m, run(m, vm, 0, 1, -1), 0);
	EXPECT(m, mapped(m, vm), 1);
	EXPECT(m, ss_vm_close(m, vm), 0);
	TRUE(last_event_destroys(m, vm));
	EXPECT(m, mapped(m, vm), 0);
	struct ss_vm_info vi;
	EXPECT(m, ss_vm_info(m, vm, &vi), -EINVAL);
	/* the VMM's memory is its own: the page stays in the memfd */
	struct ss_file_info fi;
	EXPECT(m, ss_file_info(m, fd, &fi), 0);
	EXPECT(m, fi.nr_pages, 1);
	ss_machine_free(m);
}

static void test_mapped_gmem_keeps_the_vm(void)
{
	cur_test = "mapped_gmem_keeps_the_vm";
	struct ss_machine *m = mk(SS_PROFILE_GMEM);
	int vm = ss_vm_create(m, SS_VM_DEFAULT, "vm");
	int g = ss_vm_gmem_create(m, vm, 16 * PG, SS_GMEM_FLAG_MMAP | SS_GMEM_FLAG_INIT_SHARED);
	TRUE(g >= 0);
	int map = ss_mmap(m, g, 0, (int64_t)(16 * PG), SS_PROT_READ | SS_PROT_WRITE, SS_MAP_SHARED);
	TRUE(map >= 0);
	EXPECT(m, ss_close(m, g), 0);     /* the mapping holds the file */
	EXPECT(m, ss_vm_close(m, vm), 0);
	struct ss_vm_info vi;
	EXPECT(m, ss_vm_info(m, vm, &vi), 0);
	EXPECT(m, ss_munmap(m, map), 0);  /* the file's last reference: the VM's too */
	TRUE(last_event_destroys(m, vm));
	EXPECT(m, ss_vm_info(m, vm, &vi), -EINVAL);
	ss_machine_free(m);
}

static void test_rfc_dead_owner(void)
{
	cur_test = "rfc_dead_owner";
	struct ss_machine *m = mk(SS_PROFILE_RFC_V2);
	uint64_t free0 = free_frames(m);
	int vm = ss_vm_create(m, SS_VM_DEFAULT, "vm");
	EXPECT(m, ss_vcpu_create(m, vm), 0);
	int sh = ss_memfd_create(m, "shared", SS_MFD_ALLOW_SEALING);
	int pr = ss_memfd_create(m, "private", SS_MFD_ALLOW_SEALING);
	EXPECT(m, ss_add_seals(m, pr, SS_F_SEAL_GUEST), 0);
	EXPECT(m, ss_ftruncate(m, sh, (int64_t)(1 * MiB)), 0);
	EXPECT(m, ss_ftruncate(m, pr, (int64_t)(1 * MiB)), 0);
	struct ss_region r = { .slot = 0, .flags = SS_MEM_FD, .guest_phys_addr = 0,
			       .memory_size = 1 * MiB, .fd = sh, .private_fd = pr };
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), 0);
	EXPECT(m, ss_fallocate(m, pr, 0, 0, (int64_t)(2 * PG)), 0);  /* mapped eagerly */
	EXPECT(m, run(m, vm, 4 * PG, 1, 0), 0);                       /* shared */
	EXPECT(m, mapped(m, vm), 3);

	EXPECT(m, ss_vm_close(m, vm), 0);   /* nothing holds an rfc-v2 VM */
	TRUE(last_event_destroys(m, vm));
	EXPECT(m, mapped(m, vm), 0);
	struct ss_file_info fi;
	EXPECT(m, ss_file_info(m, pr, &fi), 0);
	EXPECT(m, fi.owners, 1u << vm);     /* the backing store was not told */
	/* a punch still calls the dead owner's invalidate_page_range: vm_is_dead */
	EXPECT(m, ss_fallocate(m, pr, PUNCH, 0, (int64_t)PG), 0);
	struct ss_event ev;
	ss_event_get(m, ss_event_count(m), &ev);
	EXPECT(m, ev.ncallbacks, 1);
	EXPECT(m, ev.hazard, SS_HAZ_NONE);  /* the posted zap never runs */
	/* the next VM cannot have the files: the dead VM is still their owner */
	int vm2 = ss_vm_create(m, SS_VM_DEFAULT, "vm2");
	EXPECT(m, ss_vm_set_memory_region(m, vm2, &r), -EPERM);
	RULE(m, SS_R_RFC_OWNER);
	ss_event_get(m, ss_event_count(m), &ev);
	EXPECT(m, ev.hazard, SS_HAZ_DEAD_OWNER);
	int k = ss_owner_create(m, SS_OWNER_KVM, "legacy");
	EXPECT(m, ss_register_guest(m, pr, k), -EPERM);
	ss_event_get(m, ss_event_count(m), &ev);
	EXPECT(m, ev.hazard, SS_HAZ_DEAD_OWNER);
	/* the dead registration holds nothing: the files go with their fds */
	EXPECT(m, ss_close(m, sh), 0);
	EXPECT(m, ss_close(m, pr), 0);
	EXPECT(m, free_frames(m), free0);
	ss_machine_free(m);
}

int vm_close_tests(int *nchecks);
int vm_close_tests(int *nchecks)
{
	test_gmem_keeps_the_vm();
	test_no_gmem_destroys_at_once();
	test_mapped_gmem_keeps_the_vm();
	test_rfc_dead_owner();
	*nchecks = checks;
	return failures;
}
