/*
 * test_kvm.c - C unit tests of the KVM side (KVM.md), one or more per rule;
 * the invariant checker runs after every step (OK / ERR / EXPECT).
 */
#include "../sealscope.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define GMEM SS_PROFILE_GMEM
#define RFC SS_PROFILE_RFC_V2
#define MiB (1ull << 20)

static struct ss_machine *mk(int profile, int thp)
{
	struct ss_config c = { .profile = profile, .thp = thp, .phys_pages = 8192 };
	struct ss_machine *m = ss_machine_new(&c);
	if (!m) {
		fprintf(stderr, "machine_new failed\n");
		exit(2);
	}
	return m;
}

static int64_t cap(struct ss_machine *m, int vm, const char *name)
{
	struct ss_cap caps[32];
	int n = ss_vm_caps(m, vm, caps, 32);
	for (int i = 0; i < n; i++)
		if (!strcmp(caps[i].name, name))
			return caps[i].value;
	return -1;
}

static struct ss_region gmem_region(uint32_t slot, uint64_t gpa, uint64_t size, uint64_t uaddr,
				    int gfd, uint64_t off)
{
	struct ss_region r = { .slot = slot, .flags = gfd >= 0 ? SS_MEM_GUEST_MEMFD : 0,
			       .guest_phys_addr = gpa, .memory_size = size, .userspace_addr = uaddr,
			       .guest_memfd_offset = off, .guest_memfd = (uint32_t)gfd };
	return r;
}

static struct ss_access_result access(struct ss_machine *m, int vm, uint64_t gpa, int write,
				      int priv, uint8_t value, int *rc)
{
	struct ss_access a = { .gpa = gpa, .write = write, .private_ = priv, .value = value };
	struct ss_access_result out;
	*rc = ss_vcpu_access(m, vm, 0, &a, &out);
	check(m, __LINE__);
	return out;
}

static uint64_t map_addr(struct ss_machine *m, int map_id)
{
	uint64_t addr = 0;
	ss_mapping_addr(m, map_id, &addr);
	return addr;
}

static void test_vms_and_caps(void)
{
	cur_test = "vms_and_caps";
	struct ss_machine *m = mk(GMEM, SS_THP_NEVER);
	EXPECT(m, ss_vm_create(m, 2, "sev"), -EINVAL);
	RULE(m, SS_R_VM_TYPE);
	EXPECT(m, ss_vm_create(m, 99, "x"), -EINVAL);
	int d = ss_vm_create(m, SS_VM_DEFAULT, "d");
	int p = ss_vm_create(m, SS_VM_SW_PROTECTED, "p");
	int t = ss_vm_create(m, SS_VM_TDX, "t");
	EXPECT(m, d, 0);
	EXPECT(m, p, 1);
	EXPECT(m, cap(m, d, "KVM_CAP_NR_MEMSLOTS"), 32764);
	EXPECT(m, cap(m, d, "KVM_CAP_GUEST_MEMFD_FLAGS"), 3);
	EXPECT(m, cap(m, p, "KVM_CAP_GUEST_MEMFD_FLAGS"), 1);
	EXPECT(m, cap(m, d, "KVM_CAP_MEMORY_ATTRIBUTES"), 0);
	EXPECT(m, cap(m, p, "KVM_CAP_MEMORY_ATTRIBUTES"), 8);
	EXPECT(m, cap(m, t, "KVM_CAP_READONLY_MEM"), 0);
	EXPECT(m, cap(m, d, "KVM_CAP_MULTI_ADDRESS_SPACE"), 2);
	EXPECT(m, cap(m, p, "KVM_CAP_MULTI_ADDRESS_SPACE"), 1);
	/* guest_memfd flags per VM: INIT_SHARED only without private memory */
	EXPECT(m, ss_vm_gmem_create(m, p, 4096, SS_GMEM_FLAG_INIT_SHARED), -EINVAL);
	RULE(m, SS_R_GMEM_FLAGS);
	EXPECT(m, ss_vm_gmem_create(m, d, 4096, SS_GMEM_FLAG_MMAP | SS_GMEM_FLAG_INIT_SHARED), 3);
	EXPECT(m, ss_vm_gmem_create(m, d, 4095, 0), -EINVAL);
	RULE(m, SS_R_GMEM_SIZE);
	EXPECT(m, ss_vm_gmem_create(m, d, 1ull << 63, 4), -EINVAL);  /* flags first */
	RULE(m, SS_R_GMEM_FLAGS);
	EXPECT(m, ss_vm_gmem_create(m, d, 1ull << 63, 0), -EINVAL);
	RULE(m, SS_R_GMEM_SIZE);
	EXPECT(m, ss_vcpu_create(m, d), 0);
	EXPECT(m, ss_vcpu_create(m, d), 1);
	EXPECT(m, ss_vm_set_memory_attributes(m, d, 0, 4096, SS_MEMORY_ATTRIBUTE_PRIVATE, 0), -EINVAL);
	RULE(m, SS_R_ATTR_UNSUPPORTED);
	/* mainline's order on the default VM: flags first; no attributes is a no-op */
	EXPECT(m, ss_vm_set_memory_attributes(m, d, 0, 4096, SS_MEMORY_ATTRIBUTE_PRIVATE, 1), -EINVAL);
	RULE(m, SS_R_ATTR_FLAGS);
	EXPECT(m, ss_vm_set_memory_attributes(m, d, 0, 4096, 0, 0), 0);
	EXPECT(m, ss_vm_set_memory_attributes(m, d, 1, 4096, 0, 0), -EINVAL);
	RULE(m, SS_R_ATTR_ALIGN);
	ss_machine_free(m);

	m = mk(RFC, SS_THP_NEVER);
	EXPECT(m, ss_vm_create(m, SS_VM_SW_PROTECTED, "p"), -EINVAL);
	d = ss_vm_create(m, SS_VM_DEFAULT, "d");
	EXPECT(m, d, 0);
	EXPECT(m, ss_vm_gmem_create(m, d, 4096, 0), -ENOTTY);
	EXPECT(m, ss_vm_set_memory_attributes(m, d, 0, 4096, 0, 0), -ENOTTY);
	EXPECT(m, cap(m, d, "KVM_CAP_GUEST_MEMFD"), 0);
	ss_machine_free(m);
}

static void test_binding_rules(void)
{
	cur_test = "binding_rules";
	struct ss_machine *m = mk(GMEM, SS_THP_NEVER);
	int vm = ss_vm_create(m, SS_VM_SW_PROTECTED, "vm");
	int other = ss_vm_create(m, SS_VM_SW_PROTECTED, "other");
	int g = ss_vm_gmem_create(m, vm, 4 * MiB, 0);
	int og = ss_vm_gmem_create(m, other, 4 * MiB, 0);
	int mfd = ss_memfd_create(m, "plain", 0);
	struct ss_region r;
	r = gmem_region(0, 0, 2 * MiB, 0, g, 4096 + 1);
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), -EINVAL);
	RULE(m, SS_R_GMEM_OFFSET);
	r = gmem_region(0, 0, 2 * MiB, 0, g, 3 * MiB);
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), -EINVAL);   /* past the end */
	RULE(m, SS_R_GMEM_RANGE);
	r = gmem_region(0, 0, 4096, 0, g, 4 * MiB);
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), -EINVAL);   /* offset == size */
	r = gmem_region(0, 0, 2 * MiB, 0, g, UINT64_MAX & ~4095ull);
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), -EINVAL);   /* wraps */
	RULE(m, SS_R_GMEM_OFFSET);
	r = gmem_region(0, 0, 2 * MiB, 0, og, 0);
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), -EINVAL);
	RULE(m, SS_R_OTHER_VM);
	r = gmem_region(0, 0, 2 * MiB, 0, mfd, 0);
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), -EINVAL);
	RULE(m, SS_R_NOT_GMEM);
	r = gmem_region(0, 0, 2 * MiB, 0, 77, 0);
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), -EBADF);
	r = gmem_region(0, 0, 2 * MiB, 0, -1, 0);
	r.flags = SS_MEM_GUEST_MEMFD;
	r.guest_memfd = 0xffffffffu;
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), -EBADF);
	r.flags |= SS_MEM_LOG_DIRTY_PAGES;
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), -EINVAL);  /* flags before the fd */
	RULE(m, SS_R_REGION_FLAGS);
	r = gmem_region(0, 0, 2 * MiB, 0, g, 0);
	r.flags |= SS_MEM_READONLY;
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), -EINVAL);
	r = gmem_region(32764, 0, 2 * MiB, 0, g, 0);
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), -EINVAL);
	RULE(m, SS_R_SLOT_ID);
	r = gmem_region(1u << 16, 0, 2 * MiB, 0, g, 0);   /* SMM space: none with private memory */
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), -EINVAL);
	RULE(m, SS_R_AS_ID);
	r = gmem_region(0, 0, 2 * MiB, 0x1001, g, 0);
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), -EINVAL);
	RULE(m, SS_R_UADDR);
	r = gmem_region(0, 0, 2 * MiB, 0x7ffffffff000ull, g, 0);
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), -EINVAL);   /* not access_ok */
	r = gmem_region(0, 0, 2 * MiB, 0, g, 2 * MiB);   /* ends at the end: ok */
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), 0);
	r = gmem_region(1, 2 * MiB, 2 * MiB, 0, g, 2 * MiB);   /* bound already */
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), -EINVAL);
	RULE(m, SS_R_GMEM_BOUND);
	r = gmem_region(1, MiB, 2 * MiB, 0, 77, 0);   /* overlap beats a bad fd */
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), -EEXIST);
	RULE(m, SS_R_OVERLAP);
	r = gmem_region(1, 2 * MiB, 2 * MiB, 0, g, 0);
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), 0);
	/* immutable: the same again, a new offset, a move */
	r = gmem_region(1, 2 * MiB, 2 * MiB, 0, g, 0);
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), -EINVAL);
	RULE(m, SS_R_IMMUTABLE);
	r = gmem_region(1, 8 * MiB, 2 * MiB, 0, -1, 0);
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), -EINVAL);
	RULE(m, SS_R_MODIFY);
	/* delete, delete again */
	r = gmem_region(1, 0, 0, 0, -1, 0);
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), 0);
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), -EINVAL);
	RULE(m, SS_R_DELETE_NONE);
	/* a gmem fd without the flag is ignored */
	r = gmem_region(2, 16 * MiB, 2 * MiB, 0, -1, 0);
	r.guest_memfd = (uint32_t)mfd;
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), 0);
	/* past the max gfn: EINVAL after the bind */
	r = gmem_region(3, (1ull << 52) - 4096, 8192, 0, g, 0);
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), -EINVAL);
	RULE(m, SS_R_MAX_GFN);
	ss_machine_free(m);
}

static void test_attributes(void)
{
	cur_test = "attributes";
	struct ss_machine *m = mk(GMEM, SS_THP_NEVER);
	int vm = ss_vm_create(m, SS_VM_SW_PROTECTED, "vm");
	uint64_t P = SS_MEMORY_ATTRIBUTE_PRIVATE;
	EXPECT(m, ss_vm_set_memory_attributes(m, vm, 0, 4096, P, 1), -EINVAL);
	RULE(m, SS_R_ATTR_FLAGS);
	EXPECT(m, ss_vm_set_memory_attributes(m, vm, 0, 4096, 1, 0), -EINVAL);
	RULE(m, SS_R_ATTR_UNSUPPORTED);
	EXPECT(m, ss_vm_set_memory_attributes(m, vm, 0, 0, P, 0), -EINVAL);
	RULE(m, SS_R_ATTR_RANGE);
	EXPECT(m, ss_vm_set_memory_attributes(m, vm, UINT64_MAX - 4095, 8192, P, 0), -EINVAL);
	RULE(m, SS_R_ATTR_RANGE);
	EXPECT(m, ss_vm_set_memory_attributes(m, vm, 1, 4096, P, 0), -EINVAL);
	RULE(m, SS_R_ATTR_ALIGN);
	/* a 1 TiB VM: all private, one shared hole -> 2 runs; 3 runs after */
	EXPECT(m, ss_vm_set_memory_attributes(m, vm, 0, 1ull << 40, P, 0), 0);
	EXPECT(m, ss_vm_set_memory_attributes(m, vm, 1ull << 30, 1ull << 21, 0, 0), 0);
	EXPECT(m, ss_vm_set_memory_attributes(m, vm, 1ull << 35, 4096, 0, 0), 0);
	struct ss_vm_info info;
	ss_vm_info(m, vm, &info);
	EXPECT(m, info.nattr_runs, 3);
	TRUE(info.attr_bytes < 64 * 1024);
	struct ss_attr_run runs[8];
	EXPECT(m, ss_vm_attr_runs(m, vm, 0, UINT64_MAX, runs, 8), 3);
	EXPECT(m, runs[1].start, (1ull << 18) + 512);
	/* back to one run */
	EXPECT(m, ss_vm_set_memory_attributes(m, vm, 0, 1ull << 40, P, 0), 0);
	ss_vm_info(m, vm, &info);
	EXPECT(m, info.nattr_runs, 1);
	EXPECT(m, ss_vm_set_memory_attributes(m, vm, 0, 1ull << 40, 0, 0), 0);
	ss_vm_info(m, vm, &info);
	EXPECT(m, info.nattr_runs, 0);
	ss_machine_free(m);
}

static void test_sw_protected_conversion(void)
{
	cur_test = "sw_protected_conversion";
	struct ss_machine *m = mk(GMEM, SS_THP_NEVER);
	int vm = ss_vm_create(m, SS_VM_SW_PROTECTED, "vm");
	ss_vcpu_create(m, vm);
	int g = ss_vm_gmem_create(m, vm, 2 * MiB, 0);
	int mfd = ss_memfd_create(m, "shared", 0);
	EXPECT(m, ss_ftruncate(m, mfd, 2 * MiB), 0);
	int map = ss_mmap(m, mfd, 0, 2 * MiB, SS_PROT_READ | SS_PROT_WRITE, SS_MAP_SHARED);
	uint64_t addr = map_addr(m, map);
	EXPECT(m, addr, SS_VMM_TOP - 2 * MiB);
	struct ss_region r = gmem_region(0, 0, 2 * MiB, addr, g, 0);
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), 0);
	int rc;
	/* shared: the VMM's memfd page; the host reads the guest's byte */
	struct ss_access_result a = access(m, vm, 0x1005, 1, -1, 0xab, &rc);
	EXPECT(m, rc, 0);
	EXPECT(m, a.exit_reason, 0);
	EXPECT(m, a.backing, 2);
	EXPECT(m, a.fd, mfd);
	EXPECT(m, a.index, 1);
	uint8_t b = 0;
	EXPECT(m, ss_pread(m, mfd, &b, 1, 0x1005), 1);
	EXPECT(m, b, 0xab);
	int sig;
	uint8_t val;
	EXPECT(m, ss_mapping_access(m, map, 0x1006, 1, 0xcd, &sig, &val), 0);
	a = access(m, vm, 0x1006, 0, -1, 0, &rc);
	EXPECT(m, a.value, 0xcd);
	/* convert to private: the shared mapping is zapped, the access is private */
	EXPECT(m, ss_vm_set_memory_attributes(m, vm, 0x1000, 4096, SS_MEMORY_ATTRIBUTE_PRIVATE, 0), 0);
	struct ss_gfn_run gr[4];
	EXPECT(m, ss_owner_gfn_runs(m, vm, 0, gr, 4), 0);
	a = access(m, vm, 0x1005, 0, -1, 0, &rc);
	EXPECT(m, rc, 0);
	EXPECT(m, a.backing, 1);
	EXPECT(m, a.fd, g);
	EXPECT(m, a.value, 0);   /* a fresh private page */
	a = access(m, vm, 0x1005, 1, -1, 0x77, &rc);
	EXPECT(m, a.value, 0x77);
	/* the VMM discards the shared copy; the private byte stays */
	EXPECT(m, ss_fallocate(m, mfd, SS_FALLOC_FL_PUNCH_HOLE | SS_FALLOC_FL_KEEP_SIZE, 0x1000, 4096), 0);
	a = access(m, vm, 0x1005, 0, -1, 0, &rc);
	EXPECT(m, a.value, 0x77);
	/* punching the guest_memfd zaps and the page reads zeros */
	EXPECT(m, ss_fallocate(m, g, SS_FALLOC_FL_PUNCH_HOLE | SS_FALLOC_FL_KEEP_SIZE, 0x1000, 4096), 0);
	EXPECT(m, ss_owner_gfn_runs(m, vm, 1, gr, 4), 0);
	a = access(m, vm, 0x1005, 0, -1, 0, &rc);
	EXPECT(m, a.value, 0);
	/* back to shared: the private mapping goes */
	EXPECT(m, ss_vm_set_memory_attributes(m, vm, 0x1000, 4096, 0, 0), 0);
	a = access(m, vm, 0x1005, 0, -1, 0, &rc);
	EXPECT(m, a.backing, 2);
	/* a private access to a shared gfn on SW_PROTECTED: MEMORY_FAULT */
	a = access(m, vm, 0x2000, 0, 1, 0, &rc);
	EXPECT(m, a.exit_reason, SS_EXIT_MEMORY_FAULT);
	EXPECT(m, a.exit_flags, SS_MEMORY_EXIT_FLAG_PRIVATE);
	EXPECT(m, a.exit_gpa, 0x2000);
	EXPECT(m, a.exit_size, 4096);
	EXPECT(m, a.exit_errno, EFAULT);
	/* no memslot: shared MMIO, private MEMORY_FAULT */
	a = access(m, vm, 64 * MiB + 3, 0, -1, 0, &rc);
	EXPECT(m, a.exit_reason, SS_EXIT_MMIO);
	EXPECT(m, a.exit_gpa, 64 * MiB + 3);
	EXPECT(m, ss_vm_set_memory_attributes(m, vm, 64 * MiB, 4096, SS_MEMORY_ATTRIBUTE_PRIVATE, 0), 0);
	a = access(m, vm, 64 * MiB, 0, -1, 0, &rc);
	EXPECT(m, a.exit_reason, SS_EXIT_MEMORY_FAULT);
	/* munmap: the shared mappings through it go; the access fails EFAULT */
	a = access(m, vm, 0x3000, 0, -1, 0, &rc);
	EXPECT(m, rc, 0);
	EXPECT(m, ss_munmap(m, map), 0);
	EXPECT(m, ss_owner_gfn_runs(m, vm, 0, gr, 4), 0);
	a = access(m, vm, 0x3000, 0, -1, 0, &rc);
	EXPECT(m, rc, -EFAULT);
	RULE(m, SS_R_RUN_HVA);
	/* clone carries the VM */
	struct ss_machine *c = ss_machine_clone(m);
	TRUE(c != NULL);
	check(c, __LINE__);
	struct ss_vm_info i1, i2;
	ss_vm_info(m, vm, &i1);
	ss_vm_info(c, vm, &i2);
	EXPECT(c, i2.nattr_runs, i1.nattr_runs);
	EXPECT(c, i2.nvcpus, 1);
	a = access(c, vm, 0x1005, 0, 1, 0, &rc);
	EXPECT(c, a.exit_reason, SS_EXIT_MEMORY_FAULT);
	ss_machine_free(c);
	ss_machine_free(m);
}

static void test_gmem_close_and_tdx(void)
{
	cur_test = "gmem_close_and_tdx";
	struct ss_machine *m = mk(GMEM, SS_THP_NEVER);
	int vm = ss_vm_create(m, SS_VM_TDX, "td");
	ss_vcpu_create(m, vm);
	int g = ss_vm_gmem_create(m, vm, 4 * MiB, 0);
	struct ss_region r = gmem_region(0, 0, 2 * MiB, 0, g, 0);
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), 0);
	r = gmem_region(1, 2 * MiB, 2 * MiB, 0, g, 2 * MiB);  /* one guest_memfd, two slots */
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), 0);
	EXPECT(m, ss_vm_set_memory_attributes(m, vm, 0, 4 * MiB, SS_MEMORY_ATTRIBUTE_PRIVATE, 0), 0);
	int rc;
	struct ss_access_result a = access(m, vm, 0x10, 1, 1, 9, &rc);
	EXPECT(m, a.backing, 1);
	a = access(m, vm, 2 * MiB, 1, 1, 9, &rc);
	EXPECT(m, a.backing, 1);
	EXPECT(m, a.index, 512);
	/* a shared access (the shared bit) to a private gfn: MEMORY_FAULT, flags 0 */
	a = access(m, vm, 0x10, 0, 0, 0, &rc);
	EXPECT(m, a.exit_reason, SS_EXIT_MEMORY_FAULT);
	EXPECT(m, a.exit_flags, 0);
	/* a punch across both slots zaps in both */
	EXPECT(m, ss_fallocate(m, g, SS_FALLOC_FL_PUNCH_HOLE | SS_FALLOC_FL_KEEP_SIZE, 0, 4 * MiB), 0);
	struct ss_gfn_run gr[4];
	EXPECT(m, ss_owner_gfn_runs(m, vm, 0, gr, 4), 0);
	a = access(m, vm, 0x10, 0, 1, 0, &rc);
	EXPECT(m, a.value, 0);
	/* close: memory goes, the slot stays; private access MEMORY_FAULT */
	EXPECT(m, ss_close(m, g), 0);
	EXPECT(m, ss_owner_gfn_runs(m, vm, 0, gr, 4), 0);
	a = access(m, vm, 0x10, 0, 1, 0, &rc);
	EXPECT(m, rc, 0);
	EXPECT(m, a.exit_reason, SS_EXIT_MEMORY_FAULT);
	EXPECT(m, a.exit_flags, SS_MEMORY_EXIT_FLAG_PRIVATE);
	r = gmem_region(2, 0, 4096, 0, -1, 0);
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), -EEXIST);
	struct ss_vm_memslot ms[4];
	EXPECT(m, ss_vm_memslots(m, vm, ms, 4), 2);
	EXPECT(m, ms[0].gmem_closed, 1);
	struct ss_phys_info pi;
	ss_phys_info(m, &pi);
	EXPECT(m, pi.used, 0);
	ss_machine_free(m);
}

static void test_gmem_mmap_default(void)
{
	cur_test = "gmem_mmap_default";
	struct ss_machine *m = mk(GMEM, SS_THP_NEVER);
	int vm = ss_vm_create(m, SS_VM_DEFAULT, "vm");
	ss_vcpu_create(m, vm);
	int g = ss_vm_gmem_create(m, vm, 2 * MiB, SS_GMEM_FLAG_MMAP | SS_GMEM_FLAG_INIT_SHARED);
	int priv = ss_vm_gmem_create(m, vm, 8192, SS_GMEM_FLAG_MMAP);
	int map = ss_mmap(m, g, 0, 2 * MiB, SS_PROT_READ | SS_PROT_WRITE, SS_MAP_SHARED);
	int pmap = ss_mmap(m, priv, 0, 3 * 4096, SS_PROT_READ | SS_PROT_WRITE, SS_MAP_SHARED);
	EXPECT(m, map_addr(m, pmap), SS_VMM_TOP - 2 * MiB - 3 * 4096);
	EXPECT(m, ss_mmap(m, g, 0, 4096, SS_PROT_READ, SS_MAP_PRIVATE), -EINVAL);
	struct ss_region r = gmem_region(0, 0, 2 * MiB, map_addr(m, map), g, 0);
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), 0);
	int rc, sig;
	uint8_t val;
	struct ss_access_result a = access(m, vm, 0x2001, 1, -1, 0x5a, &rc);
	EXPECT(m, a.backing, 2);
	EXPECT(m, a.fd, g);
	EXPECT(m, ss_mapping_access(m, map, 0x2001, 0, 0, &sig, &val), 0);
	EXPECT(m, sig, 0);
	EXPECT(m, val, 0x5a);
	EXPECT(m, ss_mapping_access(m, map, 0x3000, 1, 0x11, &sig, &val), 0);
	a = access(m, vm, 0x3000, 0, -1, 0, &rc);
	EXPECT(m, a.value, 0x11);
	/* without INIT_SHARED every host touch is SIGBUS; past the end SIGBUS */
	EXPECT(m, ss_mapping_access(m, pmap, 0, 0, 0, &sig, &val), 0);
	EXPECT(m, sig, SS_SIGBUS);
	EXPECT(m, ss_mapping_access(m, map, 2 * MiB, 0, 0, &sig, &val), 0);
	EXPECT(m, sig, SS_SIGSEGV);
	/* punch, then the host and the guest read zeros */
	EXPECT(m, ss_fallocate(m, g, SS_FALLOC_FL_PUNCH_HOLE | SS_FALLOC_FL_KEEP_SIZE, 0x2000, 4096), 0);
	EXPECT(m, ss_mapping_access(m, map, 0x2001, 0, 0, &sig, &val), 0);
	EXPECT(m, val, 0);
	a = access(m, vm, 0x2001, 0, -1, 0, &rc);
	EXPECT(m, a.value, 0);
	/* closed while mmapped: stays bound until the munmap */
	EXPECT(m, ss_close(m, g), 0);
	a = access(m, vm, 0x3000, 0, -1, 0, &rc);
	EXPECT(m, a.value, 0x11);
	EXPECT(m, ss_munmap(m, map), 0);
	a = access(m, vm, 0x3000, 0, -1, 0, &rc);
	EXPECT(m, a.exit_reason, SS_EXIT_MEMORY_FAULT);
	ss_machine_free(m);
}

static void test_huge_shared(void)
{
	cur_test = "huge_shared";
	struct ss_machine *m = mk(GMEM, SS_THP_ALWAYS);
	int vm = ss_vm_create(m, SS_VM_SW_PROTECTED, "vm");
	ss_vcpu_create(m, vm);
	int mfd = ss_memfd_create(m, "shared", 0);
	ss_ftruncate(m, mfd, 4 * MiB);
	int map = ss_mmap(m, mfd, 0, 4 * MiB, SS_PROT_READ | SS_PROT_WRITE, SS_MAP_SHARED);
	struct ss_region r = gmem_region(0, 0, 4 * MiB, map_addr(m, map), -1, 0);
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), 0);
	int rc;
	struct ss_access_result a = access(m, vm, 0x5000, 0, -1, 0, &rc);
	EXPECT(m, a.order, 9);
	/* an attribute change inside the 2 MiB zaps the huge mapping; 4K after */
	EXPECT(m, ss_vm_set_memory_attributes(m, vm, 0x100000, 4096, SS_MEMORY_ATTRIBUTE_PRIVATE, 0), 0);
	a = access(m, vm, 0x5000, 0, -1, 0, &rc);
	EXPECT(m, a.order, 0);
	/* a punch of the memfd (the mmu notifier) zaps */
	EXPECT(m, ss_fallocate(m, mfd, SS_FALLOC_FL_PUNCH_HOLE | SS_FALLOC_FL_KEEP_SIZE, 0x5000, 4096), 0);
	struct ss_gfn_run gr[4];
	EXPECT(m, ss_owner_gfn_runs(m, vm, 0, gr, 4), 0);
	ss_machine_free(m);
}

static void test_rfc_fd_slots(void)
{
	cur_test = "rfc_fd_slots";
	struct ss_machine *m = mk(RFC, SS_THP_NEVER);
	int vm = ss_vm_create(m, SS_VM_DEFAULT, "vm");
	int vm2 = ss_vm_create(m, SS_VM_DEFAULT, "vm2");
	ss_vcpu_create(m, vm);
	int sh = ss_memfd_create(m, "shared", SS_MFD_ALLOW_SEALING);
	int pr = ss_memfd_create(m, "private", SS_MFD_ALLOW_SEALING);
	EXPECT(m, ss_add_seals(m, pr, SS_F_SEAL_GUEST), 0);
	ss_ftruncate(m, sh, 2 * MiB);
	ss_ftruncate(m, pr, 2 * MiB);
	struct ss_region r = { .slot = 0, .flags = SS_MEM_FD, .guest_phys_addr = 0,
			       .memory_size = 2 * MiB, .userspace_addr = 0, .fd = sh, .private_fd = pr };
	r.fd = 55;
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), -EBADF);
	r.fd = sh;
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), 0);
	struct ss_file_info fi;
	ss_file_info(m, pr, &fi);
	EXPECT(m, fi.owners, 1u << vm);
	r.slot = 1;
	r.guest_phys_addr = 4 * MiB;
	EXPECT(m, ss_vm_set_memory_region(m, vm2, &r), -EPERM);   /* another owner */
	RULE(m, SS_R_RFC_OWNER);
	int rc;
	/* private access to a hole: MEMORY_ERROR MAP_PRIVATE */
	struct ss_access_result a = access(m, vm, 0x1000, 0, 1, 0, &rc);
	EXPECT(m, a.exit_reason, SS_EXIT_MEMORY_ERROR);
	EXPECT(m, a.exit_type, SS_EXIT_MEM_MAP_PRIVATE);
	/* shared access: the shared fd's page */
	a = access(m, vm, 0x1000, 1, 0, 0x42, &rc);
	EXPECT(m, a.backing, 2);
	EXPECT(m, a.fd, sh);
	uint8_t b;
	EXPECT(m, ss_pread(m, sh, &b, 1, 0x1000), 1);
	EXPECT(m, b, 0x42);
	/* the VMM converts: fallocate private (mapped eagerly), punch shared */
	EXPECT(m, ss_fallocate(m, pr, 0, 0x1000, 4096), 0);
	struct ss_gfn_run gr[4];
	EXPECT(m, ss_owner_gfn_runs(m, vm, 0, gr, 4), 1);
	EXPECT(m, ss_fallocate(m, sh, SS_FALLOC_FL_PUNCH_HOLE | SS_FALLOC_FL_KEEP_SIZE, 0x1000, 4096), 0);
	a = access(m, vm, 0x1000, 0, 1, 0, &rc);
	EXPECT(m, a.backing, 1);
	EXPECT(m, a.fd, pr);
	a = access(m, vm, 0x1000, 0, 0, 0, &rc);
	EXPECT(m, a.exit_reason, SS_EXIT_MEMORY_ERROR);
	EXPECT(m, a.exit_type, SS_EXIT_MEM_MAP_SHARED);
	/* back: punch private -> zapped, private contents gone */
	EXPECT(m, ss_fallocate(m, pr, SS_FALLOC_FL_PUNCH_HOLE | SS_FALLOC_FL_KEEP_SIZE, 0x1000, 4096), 0);
	EXPECT(m, ss_owner_gfn_runs(m, vm, 0, gr, 4), 0);
	a = access(m, vm, 0x1000, 0, 0, 0, &rc);
	EXPECT(m, a.value, 0);
	/* past the shared file's end: the fault fails, the errno-as-pfn hazard marked */
	struct ss_region r2 = { .slot = 2, .flags = SS_MEM_FD, .guest_phys_addr = 8 * MiB,
				.memory_size = 4 * MiB, .fd = sh, .private_fd = -1 };
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r2), 0);
	a = access(m, vm, 8 * MiB + 3 * MiB, 0, 0, 0, &rc);
	EXPECT(m, rc, -EFAULT);
	struct ss_event ev;
	ss_event_get(m, ss_event_count(m), &ev);
	EXPECT(m, ev.hazard, SS_HAZ_ERRNO_AS_PFN);
	/* immutable, deletion keeps the registration */
	r.slot = 0;
	r.guest_phys_addr = 0;
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), -EINVAL);
	RULE(m, SS_R_IMMUTABLE);
	r.memory_size = 0;
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), 0);
	ss_file_info(m, pr, &fi);
	EXPECT(m, fi.owners, 1u << vm);
	EXPECT(m, ss_close(m, pr), 0);
	ss_machine_free(m);
}

static void test_pre_fault(void)
{
	cur_test = "pre_fault";
	struct ss_machine *m = mk(GMEM, SS_THP_ALWAYS);
	int vm = ss_vm_create(m, SS_VM_SW_PROTECTED, "vm");
	int td = ss_vm_create(m, SS_VM_TDX, "td");
	ss_vcpu_create(m, vm);
	ss_vcpu_create(m, td);
	int g = ss_vm_gmem_create(m, vm, 4 * MiB, 0);
	int mfd = ss_memfd_create(m, "shared", 0);
	ss_ftruncate(m, mfd, 4 * MiB);
	int map = ss_mmap(m, mfd, 0, 4 * MiB, SS_PROT_READ | SS_PROT_WRITE, SS_MAP_SHARED);
	struct ss_region r = gmem_region(0, 0, 4 * MiB, map_addr(m, map), g, 0);
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), 0);
	EXPECT(m, ss_vm_set_memory_attributes(m, vm, 2 * MiB, 4096, SS_MEMORY_ATTRIBUTE_PRIVATE, 0), 0);
	uint64_t gpa = 0, size = 4096;
	EXPECT(m, ss_vcpu_pre_fault(m, vm, 0, &gpa, &size, 1), -EINVAL);
	RULE(m, SS_R_PREFAULT_FLAGS);
	size = 0;
	EXPECT(m, ss_vcpu_pre_fault(m, vm, 0, &gpa, &size, 0), -EINVAL);
	RULE(m, SS_R_PREFAULT_RANGE);
	gpa = 0;
	size = 4096;
	EXPECT(m, ss_vcpu_pre_fault(m, td, 0, &gpa, &size, 0), -EOPNOTSUPP);
	/* a 2 MiB shared mapping covers the first 2 MiB at once; the private gfn
	 * maps from the guest_memfd; past the slot: what is left */
	gpa = 0;
	size = 8 * MiB;
	EXPECT(m, ss_vcpu_pre_fault(m, vm, 0, &gpa, &size, 0), 0);
	EXPECT(m, gpa, 4 * MiB);
	EXPECT(m, size, 4 * MiB);
	struct ss_gfn_run gr[8];
	int n = ss_owner_gfn_runs(m, vm, 0, gr, 8);
	TRUE(n >= 2);
	EXPECT(m, gr[0].order, 9);
	/* nothing mapped at all: the first page's ENOENT */
	gpa = 64 * MiB;
	size = 4096;
	EXPECT(m, ss_vcpu_pre_fault(m, vm, 0, &gpa, &size, 0), -ENOENT);
	RULE(m, SS_R_PREFAULT_NOSLOT);
	ss_machine_free(m);
}

static void test_smm_address_space(void)
{
	cur_test = "smm_address_space";
	struct ss_machine *m = mk(GMEM, SS_THP_NEVER);
	int vm = ss_vm_create(m, SS_VM_DEFAULT, "vm");
	ss_vcpu_create(m, vm);
	int a = ss_memfd_create(m, "normal", 0), b = ss_memfd_create(m, "smm", 0);
	ss_ftruncate(m, a, MiB);
	ss_ftruncate(m, b, MiB);
	int ma = ss_mmap(m, a, 0, MiB, SS_PROT_READ | SS_PROT_WRITE, SS_MAP_SHARED);
	int mb = ss_mmap(m, b, 0, MiB, SS_PROT_READ | SS_PROT_WRITE, SS_MAP_SHARED);
	struct ss_region r = gmem_region(0, 0, MiB, map_addr(m, ma), -1, 0);
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), 0);
	r = gmem_region(1u << 16, 0, MiB, map_addr(m, mb), -1, 0);  /* SMM: same gpa, ok */
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), 0);
	int rc;
	struct ss_access_result x = access(m, vm, 0x1000, 1, -1, 4, &rc);
	EXPECT(m, x.fd, a);
	/* the SMM slot's mapping going, or the slot's deletion, leaves address space 0 be */
	EXPECT(m, ss_munmap(m, mb), 0);
	r = gmem_region(1u << 16, 0, 0, map_addr(m, mb), -1, 0);
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), 0);
	struct ss_gfn_run gr[2];
	EXPECT(m, ss_owner_gfn_runs(m, vm, 0, gr, 2), 1);
	ss_machine_free(m);
}

static void test_rfc_multi_owner_delete(void)
{
	cur_test = "rfc_multi_owner_delete";
	struct ss_config c = { .profile = RFC, .variants = SS_VAR_MULTI_OWNER, .phys_pages = 8192 };
	struct ss_machine *m = ss_machine_new(&c);
	int vm = ss_vm_create(m, SS_VM_DEFAULT, "vm");
	int vm2 = ss_vm_create(m, SS_VM_DEFAULT, "vm2");
	int sh = ss_memfd_create(m, "shared", 0);
	ss_ftruncate(m, sh, MiB);
	struct ss_region r = { .slot = 0, .flags = SS_MEM_FD, .memory_size = MiB, .fd = sh,
			       .private_fd = -1 };
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), 0);
	EXPECT(m, ss_vm_set_memory_region(m, vm2, &r), 0);  /* several owners: the variant */
	struct ss_file_info fi;
	ss_file_info(m, sh, &fi);
	EXPECT(m, fi.owners, (1u << vm) | (1u << vm2));
	r.memory_size = 0;
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), 0);
	ss_file_info(m, sh, &fi);
	EXPECT(m, fi.owners, 1u << vm2);  /* the deletion dropped vm's use */
	ss_machine_free(m);
}

/* a legacy owner's memslot still holds its guest_memfd after the close (its new
 * VM fields start zeroed: garbage there once made the slot a VM binding) */
static void test_legacy_slot_holds_gmem(void)
{
	cur_test = "legacy_slot_holds_gmem";
	struct ss_machine *m = mk(GMEM, SS_THP_NEVER);
	int k = ss_owner_create(m, SS_OWNER_KVM, "kvm0");
	int g = ss_gmem_create(m, 65536, SS_GMEM_FLAG_MMAP);
	uint64_t pfn;
	int order;
	EXPECT(m, ss_get_lock_pfn(m, g, 0, 0, &pfn, &order), 0);
	EXPECT(m, ss_put_unlock_pfn(m, pfn), 0);
	EXPECT(m, ss_memslot_create(m, k, g, 0, 0, 1), 0);
	EXPECT(m, ss_close(m, g), 0);
	struct ss_phys_info pi;
	ss_phys_info(m, &pi);
	EXPECT(m, pi.used, 1);
	ss_machine_free(m);
}

/* rfc-v2, thp always: fallocate of private pages inside a 2 MiB page allocates
 * all of it; the pages the request did not name are private too, so their
 * shared mappings go (the fuzzer found the shared mapping kept: corpus
 * rfc-thp-fallocate-edge.bin) */
static void test_rfc_fallocate_huge_edges(void)
{
	cur_test = "rfc_fallocate_huge_edges";
	struct ss_machine *m = mk(RFC, SS_THP_ALWAYS);
	int vm = ss_vm_create(m, SS_VM_DEFAULT, "vm");
	ss_vcpu_create(m, vm);
	int sh = ss_memfd_create(m, "shared", SS_MFD_ALLOW_SEALING);
	int pr = ss_memfd_create(m, "private", SS_MFD_ALLOW_SEALING);
	EXPECT(m, ss_add_seals(m, pr, SS_F_SEAL_GUEST), 0);
	ss_ftruncate(m, sh, 20480);
	ss_ftruncate(m, pr, 20480);
	struct ss_region r = { .slot = 0, .flags = SS_MEM_FD, .guest_phys_addr = 0x23000,
			       .memory_size = 20480, .fd = sh, .private_fd = pr };
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), 0);
	int rc;
	struct ss_access_result a = access(m, vm, 0x26000, 1, 0, 0xff, &rc);   /* index 3 */
	EXPECT(m, rc, 0);
	EXPECT(m, a.fd, sh);
	/* pages [56, 149) and the size to 609262: one 2 MiB page, index 0..511 */
	EXPECT(m, ss_fallocate(m, pr, 0, 229376, 379886), 0);
	struct ss_file_info fi;
	ss_file_info(m, pr, &fi);
	EXPECT(m, fi.nr_pages, 512);
	a = access(m, vm, 0x26000, 0, 1, 0, &rc);   /* index 3 is private now */
	EXPECT(m, rc, 0);
	EXPECT(m, a.backing, 1);
	EXPECT(m, a.fd, pr);
	a = access(m, vm, 0x26000, 0, 0, 0, &rc);
	EXPECT(m, a.exit_reason, SS_EXIT_MEMORY_ERROR);
	EXPECT(m, a.exit_type, SS_EXIT_MEM_MAP_SHARED);
	ss_machine_free(m);
}

/* get_lock_pfn(alloc) on a private fd adds a folio without the fallocate
 * callback: the VM's shared mapping of a gfn in it goes (modelled as meant),
 * the hazard marked (the fuzzer's rfc-thp-get-lock-pfn-private.bin) */
static void test_rfc_get_lock_pfn_alloc_unnotified(void)
{
	cur_test = "rfc_get_lock_pfn_alloc_unnotified";
	for (int thp = 0; thp < 2; thp++) {
		struct ss_machine *m = mk(RFC, thp ? SS_THP_ALWAYS : SS_THP_NEVER);
		int vm = ss_vm_create(m, SS_VM_DEFAULT, "vm");
		ss_vcpu_create(m, vm);
		int sh = ss_memfd_create(m, "shared", SS_MFD_ALLOW_SEALING);
		int pr = ss_memfd_create(m, "private", SS_MFD_ALLOW_SEALING);
		EXPECT(m, ss_add_seals(m, pr, SS_F_SEAL_GUEST), 0);
		ss_ftruncate(m, sh, 4 * MiB);
		ss_ftruncate(m, pr, 4 * MiB);
		struct ss_region r = { .slot = 0, .flags = SS_MEM_FD, .guest_phys_addr = 0,
				       .memory_size = 4 * MiB, .fd = sh, .private_fd = pr };
		EXPECT(m, ss_vm_set_memory_region(m, vm, &r), 0);
		int rc;
		struct ss_access_result a = access(m, vm, 0, 1, 0, 0x5a, &rc);
		EXPECT(m, rc, 0);
		EXPECT(m, a.fd, sh);
		struct ss_gfn_run gr[4];
		EXPECT(m, ss_owner_gfn_runs(m, vm, 0, gr, 4), 1);
		uint64_t pfn;
		int order;
		/* index 130: in the 2 MiB folio of gfn 0 with thp, a page of its own without */
		EXPECT(m, ss_get_lock_pfn(m, pr, 130, 1, &pfn, &order), 0);
		struct ss_event ev;
		ss_event_get(m, ss_event_count(m), &ev);
		EXPECT(m, ev.hazard, thp ? SS_HAZ_ALLOC_UNNOTIFIED : SS_HAZ_NONE);
		EXPECT(m, ss_owner_gfn_runs(m, vm, 0, gr, 4), thp ? 0 : 1);
		EXPECT(m, ss_put_unlock_pfn(m, pfn), 0);
		/* the same at gfn 0 itself, 4 KiB pages: its own mapping goes */
		if (!thp) {
			EXPECT(m, ss_get_lock_pfn(m, pr, 0, 1, &pfn, &order), 0);
			ss_event_get(m, ss_event_count(m), &ev);
			EXPECT(m, ev.hazard, SS_HAZ_ALLOC_UNNOTIFIED);
			EXPECT(m, ss_owner_gfn_runs(m, vm, 0, gr, 4), 0);
			EXPECT(m, ss_put_unlock_pfn(m, pfn), 0);
		}
		/* gfn 0 is private now: a private access maps the private page */
		a = access(m, vm, 0, 0, 1, 0, &rc);
		EXPECT(m, rc, 0);
		EXPECT(m, a.fd, pr);
		EXPECT(m, a.value, 0);
		ss_machine_free(m);
	}
}

/* multi_owner: a VM's fd slot holds a use of its shared fd as of its private
 * one; unregistering it is EBUSY (else the VM faulted pages of the shared fd
 * that a truncate freed under its mapping: the fuzzer's
 * rfc-unregister-shared-fd.bin) */
static void test_rfc_unregister_shared_fd_in_use(void)
{
	cur_test = "rfc_unregister_shared_fd_in_use";
	struct ss_config c = { .profile = RFC, .variants = SS_VAR_MULTI_OWNER, .phys_pages = 8192 };
	struct ss_machine *m = ss_machine_new(&c);
	int vm = ss_vm_create(m, SS_VM_DEFAULT, "vm");
	ss_vcpu_create(m, vm);
	int sh = ss_memfd_create(m, "shared", 0);
	ss_ftruncate(m, sh, 69632);
	struct ss_region r = { .slot = 0, .flags = SS_MEM_FD, .guest_phys_addr = 348160,
			       .memory_size = 69632, .fd = sh, .private_fd = -1 };
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), 0);
	EXPECT(m, ss_unregister_guest(m, sh, vm), -EBUSY);
	int rc;
	struct ss_access_result a = access(m, vm, 380928, 0, 0, 0, &rc);
	EXPECT(m, rc, 0);
	EXPECT(m, a.fd, sh);
	EXPECT(m, ss_ftruncate(m, sh, 20480), 0);   /* the VM is told: the mapping goes */
	struct ss_gfn_run gr[2];
	EXPECT(m, ss_owner_gfn_runs(m, vm, 0, gr, 2), 0);
	r.memory_size = 0;
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), 0);
	EXPECT(m, ss_unregister_guest(m, sh, vm), -ENOENT);   /* the delete dropped the use */
	ss_machine_free(m);
}

int kvm_tests(int *nchecks);
int kvm_tests(int *nchecks)
{
	test_vms_and_caps();
	test_binding_rules();
	test_attributes();
	test_sw_protected_conversion();
	test_gmem_close_and_tdx();
	test_gmem_mmap_default();
	test_huge_shared();
	test_rfc_fd_slots();
	test_pre_fault();
	test_smm_address_space();
	test_rfc_multi_owner_delete();
	test_legacy_slot_holds_gmem();
	test_rfc_fallocate_huge_edges();
	test_rfc_unregister_shared_fd_in_use();
	test_rfc_get_lock_pfn_alloc_unnotified();
	*nchecks = checks;
	return failures;
}
