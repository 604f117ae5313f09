/*
 * test_coco.c - C unit tests of the confidential VM side (kvm_coco.c): the
 * life of a guest_memfd page and its arch hooks, populate, the launch
 * measurement and its finalization; ss_check after every step.
 */
#include "../sealscope.h"
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define PG 4096ull

static struct ss_machine *mk(void)
{
	struct ss_config c = { .profile = SS_PROFILE_GMEM, .thp = SS_THP_NEVER, .phys_pages = 4096 };
	struct ss_machine *m = ss_machine_new(&c);
	if (!m) {
		fprintf(stderr, "machine_new failed\n");
		exit(2);
	}
	return m;
}

/* a VM of type with one vCPU, a guest_memfd of npages bound at gpa 0; *gfd its fd */
static int vm_with_gmem(struct ss_machine *m, int type, uint64_t npages, int *gfd)
{
	int vm = ss_vm_create(m, (uint64_t)type, "vm");
	EXPECT(m, vm >= 0, 1);
	EXPECT(m, ss_vcpu_create(m, vm), 0);
	*gfd = ss_vm_gmem_create(m, vm, npages * PG, 0);
	EXPECT(m, *gfd >= 3, 1);
	struct ss_region r = { .slot = 0, .flags = SS_MEM_GUEST_MEMFD, .memory_size = npages * PG,
			       .guest_memfd = (uint32_t)*gfd };
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), 0);
	return vm;
}

static int life_at(struct ss_machine *m, int fd, uint64_t index)
{
	struct ss_page_run r;
	uint64_t next;
	int n = ss_file_runs(m, fd, index, index + 1, &r, 1, &next);
	return n == 1 && r.state == SS_PG_PRESENT ? r.life : -1;
}

static uint64_t pfn_at(struct ss_machine *m, int fd, uint64_t index)
{
	struct ss_page_run r;
	uint64_t next;
	ss_file_runs(m, fd, index, index + 1, &r, 1, &next);
	return r.pfn;
}

/* the last event has a callback fn over [start, end) */
static bool last_has_cb(struct ss_machine *m, int fn, uint64_t start, uint64_t end)
{
	struct ss_callback cbs[16];
	int n = ss_event_callbacks(m, ss_event_count(m), 0, cbs, 16);
	for (int i = 0; i < n; i++)
		if (cbs[i].fn == fn && cbs[i].start == start && cbs[i].end == end)
			return true;
	return false;
}

/* how many callbacks fn the last event has */
static int last_count_cb(struct ss_machine *m, int fn)
{
	struct ss_callback cbs[16];
	int n = ss_event_callbacks(m, ss_event_count(m), 0, cbs, 16), c = 0;
	for (int i = 0; i < n; i++)
		c += cbs[i].fn == fn;
	return c;
}

static int last_ncbs(struct ss_machine *m)
{
	struct ss_callback cbs[16];
	return ss_event_callbacks(m, ss_event_count(m), 0, cbs, 16);
}

static int private_read(struct ss_machine *m, int vm, uint64_t gpa)
{
	struct ss_access a = { .gpa = gpa, .private_ = 1 };
	struct ss_access_result out;
	int rc = ss_vcpu_access(m, vm, 0, &a, &out);
	check(m, __LINE__);
	return rc ? rc : (int)out.exit_reason;
}

/* allocated -> zeroed + prepared on the first private fault -> reclaimed when
 * punched, with the arch's hook named per VM type */
static void test_lifecycle(int type, int add, int reclaim)
{
	cur_test = type == SS_VM_SNP ? "lifecycle snp" : "lifecycle tdx";
	struct ss_machine *m = mk();
	int g;
	int vm = vm_with_gmem(m, type, 4, &g);
	EXPECT(m, ss_fallocate(m, g, SS_FALLOC_FL_KEEP_SIZE, 0, (int64_t)PG), 0);
	EXPECT(m, life_at(m, g, 0), SS_LIFE_ALLOCATED);
	EXPECT(m, last_ncbs(m), 0);  /* fallocate prepares nothing (6.11+) */
	EXPECT(m, ss_vm_set_memory_attributes(m, vm, 0, 2 * PG, SS_MEMORY_ATTRIBUTE_PRIVATE, 0), 0);
	uint64_t pfn = pfn_at(m, g, 0);
	EXPECT(m, private_read(m, vm, 0), 0);
	EXPECT(m, life_at(m, g, 0), SS_LIFE_PREPARED);
	TRUE(last_has_cb(m, add, pfn, pfn + 1));
	/* SNP: a second fault of the same page prepares nothing again (the RMP
	 * entry outlives the zap).  TDX: the S-EPT entry is the mapping; the zap of
	 * the conversion removes it (tdx_sept_remove_private_spte: BLOCK, TRACK,
	 * PAGE.REMOVE) and the next private fault adds it back (PAGE.AUG) */
	EXPECT(m, ss_vm_set_memory_attributes(m, vm, 0, 2 * PG, 0, 0), 0);
	if (type == SS_VM_TDX) {
		TRUE(last_has_cb(m, reclaim, pfn, pfn + 1));
		EXPECT(m, life_at(m, g, 0), SS_LIFE_ZEROED);
	} else {
		EXPECT(m, last_ncbs(m), 0);
	}
	EXPECT(m, ss_vm_set_memory_attributes(m, vm, 0, 2 * PG, SS_MEMORY_ATTRIBUTE_PRIVATE, 0), 0);
	EXPECT(m, private_read(m, vm, 0), 0);
	if (type == SS_VM_TDX)
		TRUE(last_has_cb(m, add, pfn, pfn + 1));
	else
		EXPECT(m, last_ncbs(m), 0);
	EXPECT(m, life_at(m, g, 0), SS_LIFE_PREPARED);
	/* a hole: allocated, zeroed and prepared in one fault */
	EXPECT(m, private_read(m, vm, PG), 0);
	uint64_t pfn1 = pfn_at(m, g, 1);
	EXPECT(m, life_at(m, g, 1), SS_LIFE_PREPARED);
	TRUE(last_has_cb(m, add, pfn1, pfn1 + 1));
	/* punch: the folio is freed, the arch reclaims it */
	EXPECT(m, ss_fallocate(m, g, SS_FALLOC_FL_PUNCH_HOLE | SS_FALLOC_FL_KEEP_SIZE, 0, (int64_t)PG), 0);
	TRUE(last_has_cb(m, reclaim, pfn, pfn + 1));
	EXPECT(m, last_count_cb(m, reclaim), 1);  /* TDX: at the zap, not again at the free */
	EXPECT(m, life_at(m, g, 0), -1);
	/* closing the guest_memfd frees (and reclaims) the rest */
	EXPECT(m, ss_close(m, g), 0);
	TRUE(last_has_cb(m, reclaim, pfn1, pfn1 + 1));
	ss_machine_free(m);
}

/* a VM without an arch hook: zeroed, never prepared */
static void test_lifecycle_sw_protected(void)
{
	cur_test = "lifecycle sw_protected";
	struct ss_machine *m = mk();
	int g;
	int vm = vm_with_gmem(m, SS_VM_SW_PROTECTED, 2, &g);
	EXPECT(m, ss_vm_set_memory_attributes(m, vm, 0, PG, SS_MEMORY_ATTRIBUTE_PRIVATE, 0), 0);
	EXPECT(m, private_read(m, vm, 0), 0);
	EXPECT(m, life_at(m, g, 0), SS_LIFE_ZEROED);
	EXPECT(m, last_ncbs(m), 0);
	uint64_t done;
	uint8_t src[4096] = { 0 };
	EXPECT(m, ss_vm_launch_update(m, vm, 0, src, PG, &done), -ENOTTY);
	RULE(m, SS_R_NOT_COCO);
	EXPECT(m, ss_vm_launch_finish(m, vm), -ENOTTY);
	ss_machine_free(m);
}

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed + i * 7);
}

static void test_populate(int type)
{
	cur_test = type == SS_VM_SNP ? "populate snp" : "populate tdx";
	struct ss_machine *m = mk();
	int g;
	int vm = vm_with_gmem(m, type, 8, &g);
	static uint8_t src[8 * 4096];
	fill(src, sizeof(src), 3);
	uint64_t done = 99;
	/* range checks, then a shared gfn */
	EXPECT(m, ss_vm_launch_update(m, vm, 0, src, 0, &done), -EINVAL);
	RULE(m, SS_R_POPULATE_RANGE);
	EXPECT(m, ss_vm_launch_update(m, vm, 100, src, PG, &done), -EINVAL);
	RULE(m, SS_R_POPULATE_RANGE);
	EXPECT(m, ss_vm_launch_update(m, vm, 64 * PG, src, PG, &done), -EINVAL);
	RULE(m, SS_R_POPULATE_SLOT);
	EXPECT(m, ss_vm_launch_update(m, vm, 0, src, PG, &done), -EINVAL);
	RULE(m, SS_R_POPULATE_SHARED);
	EXPECT(m, done, 0);
	EXPECT(m, life_at(m, g, 0), SS_LIFE_ALLOCATED);  /* allocated before the check */
	EXPECT(m, ss_vm_set_memory_attributes(m, vm, 0, 6 * PG, SS_MEMORY_ATTRIBUTE_PRIVATE, 0), 0);
	struct ss_launch_info li;
	EXPECT(m, ss_vm_launch_info(m, vm, &li), 0);
	EXPECT(m, li.state, SS_LAUNCH_INIT);
	EXPECT(m, li.pages, 0);
	uint8_t d0[48];
	memcpy(d0, li.digest, 48);
	EXPECT(m, ss_vm_launch_update(m, vm, 0, src, 2 * PG, &done), 2);
	EXPECT(m, done, 2);
	uint64_t pfn = pfn_at(m, g, 0);
	int add = type == SS_VM_SNP ? SS_CB_RMP_ASSIGN : SS_CB_SEPT_ADD;
	TRUE(last_has_cb(m, add, pfn, pfn + 1));
	EXPECT(m, life_at(m, g, 0), SS_LIFE_PREPARED);
	EXPECT(m, life_at(m, g, 1), SS_LIFE_PREPARED);
	/* the guest reads what was populated */
	struct ss_access a = { .gpa = PG + 5, .private_ = 1 };
	struct ss_access_result out;
	EXPECT(m, ss_vcpu_access(m, vm, 0, &a, &out), 0);
	EXPECT(m, out.value, src[PG + 5]);
	EXPECT(m, ss_vm_launch_info(m, vm, &li), 0);
	EXPECT(m, li.pages, 2);
	if (type == SS_VM_SNP)
		TRUE(memcmp(d0, li.digest, 48) != 0);
	else
		EXPECT(m, li.have_digest, 0);  /* MRTD only once finalized */
	/* an already prepared page: EEXIST */
	EXPECT(m, ss_vm_launch_update(m, vm, PG, src, PG, &done), -EEXIST);
	RULE(m, SS_R_POPULATE_EXISTS);
	/* a page the guest faulted in is prepared too: EEXIST */
	a.gpa = 2 * PG;
	EXPECT(m, ss_vcpu_access(m, vm, 0, &a, &out), 0);
	EXPECT(m, ss_vm_launch_update(m, vm, 2 * PG, src, PG, &done), -EEXIST);
	/* 4..5 private, 6 shared: SNP answers 2 done, TDX the error with 2 done */
	EXPECT(m, ss_vm_launch_update(m, vm, 4 * PG, src, 3 * PG, &done),
		type == SS_VM_SNP ? 2 : -EINVAL);
	EXPECT(m, done, 2);
	/* the range is cut at the slot's end */
	EXPECT(m, ss_vm_launch_update(m, vm, 7 * PG, src, 4 * PG, &done), -EINVAL);
	RULE(m, SS_R_POPULATE_SHARED);
	EXPECT(m, ss_vm_launch_finish(m, vm), 0);
	EXPECT(m, ss_vm_launch_info(m, vm, &li), 0);
	EXPECT(m, li.state, SS_LAUNCH_DONE);
	EXPECT(m, li.have_digest, 1);
	EXPECT(m, li.pages, 4);
	EXPECT(m, ss_vm_launch_finish(m, vm), type == SS_VM_SNP ? -EIO : -EINVAL);
	RULE(m, SS_R_LAUNCH_DONE);
	EXPECT(m, ss_vm_set_memory_attributes(m, vm, 3 * PG, PG, 0, 0), 0);
	EXPECT(m, ss_vm_launch_update(m, vm, 3 * PG, src, PG, &done), type == SS_VM_SNP ? -EIO : -EINVAL);
	RULE(m, SS_R_LAUNCH_DONE);
	ss_machine_free(m);
}

/* the digest depends on the order of what was populated */
static void test_measurement_order(void)
{
	cur_test = "measurement order";
	uint8_t d[2][48];
	static uint8_t src[2 * 4096];
	fill(src, sizeof(src), 11);
	for (int k = 0; k < 2; k++) {
		struct ss_machine *m = mk();
		int g;
		int vm = vm_with_gmem(m, SS_VM_SNP, 2, &g);
		EXPECT(m, ss_vm_set_memory_attributes(m, vm, 0, 2 * PG, SS_MEMORY_ATTRIBUTE_PRIVATE, 0), 0);
		uint64_t done;
		uint64_t first = k ? PG : 0, second = k ? 0 : PG;
		EXPECT(m, ss_vm_launch_update(m, vm, first, src + first, PG, &done), 1);
		EXPECT(m, ss_vm_launch_update(m, vm, second, src + second, PG, &done), 1);
		struct ss_launch_info li;
		EXPECT(m, ss_vm_launch_info(m, vm, &li), 0);
		memcpy(d[k], li.digest, 48);
		ss_machine_free(m);
	}
	TRUE(memcmp(d[0], d[1], 48) != 0);
}

/* TDX INIT_MEM_REGION is a vCPU ioctl; pre-fault only after the launch */
static void test_tdx_vcpu_and_prefault(void)
{
	cur_test = "tdx vcpu, pre-fault";
	struct ss_machine *m = mk();
	int td = ss_vm_create(m, SS_VM_TDX, "td");
	uint64_t done;
	uint8_t src[4096] = { 1 };
	EXPECT(m, ss_vm_launch_update(m, td, 0, src, PG, &done), -EINVAL);
	RULE(m, SS_R_LAUNCH_NO_VCPU);
	int g;
	int snp = vm_with_gmem(m, SS_VM_SNP, 4, &g);
	uint64_t gpa = 0, size = 4 * PG;
	EXPECT(m, ss_vcpu_pre_fault(m, snp, 0, &gpa, &size, 0), -EOPNOTSUPP);
	RULE(m, SS_R_PREFAULT_NOT_YET);
	EXPECT(m, ss_vm_launch_finish(m, snp), 0);
	EXPECT(m, ss_vm_set_memory_attributes(m, snp, 0, PG, SS_MEMORY_ATTRIBUTE_PRIVATE, 0), 0);
	/* gfn 0 private from the guest_memfd, 1.. shared with no userspace mapping */
	EXPECT(m, ss_vcpu_pre_fault(m, snp, 0, &gpa, &size, 0), 0);
	EXPECT(m, gpa, PG);
	EXPECT(m, size, 3 * PG);
	EXPECT(m, life_at(m, g, 0), SS_LIFE_PREPARED);
	ss_machine_free(m);
}

/* memory_failure: zapped in every VM, kept (MF_DELAYED), EHWPOISON for the
 * guest, SIGBUS for the host, cleared by a punch */
static void test_memory_failure(void)
{
	cur_test = "memory failure";
	struct ss_machine *m = mk();
	int vm = ss_vm_create(m, SS_VM_DEFAULT, "vm");
	EXPECT(m, ss_vcpu_create(m, vm), 0);
	int g = ss_vm_gmem_create(m, vm, 4 * PG, 3 /* MMAP | INIT_SHARED */);
	EXPECT(m, g >= 3, 1);
	int map = ss_mmap(m, g, 0, (int64_t)(4 * PG), SS_PROT_READ | SS_PROT_WRITE, SS_MAP_SHARED);
	EXPECT(m, map >= 1, 1);
	uint64_t addr = 0;
	ss_mapping_addr(m, map, &addr);
	struct ss_region r = { .slot = 0, .flags = SS_MEM_GUEST_MEMFD, .memory_size = 4 * PG,
			       .userspace_addr = addr, .guest_memfd = (uint32_t)g };
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), 0);
	struct ss_access a = { .gpa = PG, .write = 1, .private_ = -1, .value = 9 };
	struct ss_access_result out;
	EXPECT(m, ss_vcpu_access(m, vm, 0, &a, &out), 0);
	EXPECT(m, out.exit_reason, 0);
	uint64_t pfn = out.pfn;
	struct ss_gfn_run gr[4];
	EXPECT(m, ss_owner_gfn_runs(m, vm, 0, gr, 4), 1);
	EXPECT(m, ss_memory_failure(m, 4096 * 16), -ENXIO);
	RULE(m, SS_R_MF_PFN);
	EXPECT(m, ss_memory_failure(m, pfn), 0);
	TRUE(last_has_cb(m, SS_CB_GMEM_INVALIDATE, 1, 2));
	EXPECT(m, ss_owner_gfn_runs(m, vm, 0, gr, 4), 0);  /* zapped */
	EXPECT(m, ss_frame_poisoned(m, pfn), 1);
	EXPECT(m, life_at(m, g, 1), SS_LIFE_HWPOISON);     /* kept in the file */
	/* the gfn view: gfn 1 poisoned (its page still named), 0 and 2.. shared in place */
	struct ss_gfn_source src[4];
	uint64_t gnext;
	EXPECT(m, ss_vm_gfn_sources(m, vm, 0, 4, src, 4, &gnext), 3);
	EXPECT(m, src[0].source, SS_SRC_SHARED_GMEM);
	EXPECT(m, src[1].source, SS_SRC_POISONED);
	EXPECT(m, src[1].start, 1);
	EXPECT(m, src[1].end, 2);
	EXPECT(m, src[1].fd, g);
	EXPECT(m, src[1].index, 1);
	EXPECT(m, src[2].source, SS_SRC_SHARED_GMEM);
	struct ss_gfn_span sp[4];
	EXPECT(m, ss_vm_poisoned_gfns(m, vm, 0, 1ull << 40, sp, 4), 1);  /* from the list */
	EXPECT(m, sp[0].start, 1);
	EXPECT(m, sp[0].end, 2);
	EXPECT(m, ss_vm_poisoned_gfns(m, vm, 2, 4, sp, 4), 0);
	EXPECT(m, ss_vm_poisoned_gfns(m, vm, 0, 4, sp, 0), 0);
	EXPECT(m, ss_vm_poisoned_gfns(m, vm + 7, 0, 4, sp, 4), -EINVAL);
	EXPECT(m, ss_memory_failure(m, pfn), -EHWPOISON);
	RULE(m, SS_R_MF_AGAIN);
	a.write = 0;
	EXPECT(m, ss_vcpu_access(m, vm, 0, &a, &out), 0);
	EXPECT(m, out.exit_reason, SS_EXIT_MEMORY_FAULT);
	EXPECT(m, out.exit_errno, EHWPOISON);
	int sig;
	uint8_t val;
	EXPECT(m, ss_mapping_access(m, map, PG + 3, 0, 0, &sig, &val), 0);
	EXPECT(m, sig, SS_SIGBUS);
	EXPECT(m, ss_mapping_access(m, map, 2 * PG, 0, 0, &sig, &val), 0);
	EXPECT(m, sig, 0);  /* another page: fine */
	struct ss_phys_info pinfo;
	ss_phys_info(m, &pinfo);
	uint64_t free_before = pinfo.free;
	EXPECT(m, ss_fallocate(m, g, SS_FALLOC_FL_PUNCH_HOLE | SS_FALLOC_FL_KEEP_SIZE, (int64_t)PG,
			       (int64_t)PG), 0);
	/* the punch frees the folio, but a hwpoisoned frame never returns to the
	 * buddy allocator (take_page_off_buddy / free_pages_prepare) */
	ss_phys_info(m, &pinfo);
	EXPECT(m, pinfo.free, free_before);
	struct ss_frame_run fr;
	uint64_t fnext;
	EXPECT(m, ss_phys_runs(m, pfn, pfn + 1, &fr, 1, &fnext), 1);
	EXPECT(m, fr.state, SS_FRAME_HWPOISON);
	EXPECT(m, ss_frame_poisoned(m, pfn), 1);
	EXPECT(m, ss_memory_failure(m, pfn), -EHWPOISON);
	a.write = 0;
	EXPECT(m, ss_vcpu_access(m, vm, 0, &a, &out), 0);
	EXPECT(m, out.exit_reason, 0);
	EXPECT(m, out.value, 0);  /* a fresh page, on another frame */
	EXPECT(m, ss_vm_gfn_sources(m, vm, 1, 2, src, 4, &gnext), 1);
	EXPECT(m, src[0].source, SS_SRC_SHARED_GMEM);  /* the punch dropped the poisoned page */
	EXPECT(m, ss_vm_poisoned_gfns(m, vm, 0, 4, sp, 4), 0);
	TRUE(out.pfn != pfn);
	EXPECT(m, ss_frame_poisoned(m, out.pfn), 0);
	/* the allocator never hands the poisoned frame out: take every free frame */
	int hog = ss_memfd_create(m, "hog", 0);
	ss_phys_info(m, &pinfo);
	int64_t rest = (int64_t)(pinfo.free * PG);
	EXPECT(m, ss_ftruncate(m, hog, rest + (int64_t)PG), 0);
	EXPECT(m, ss_fallocate(m, hog, 0, 0, rest + (int64_t)PG), -ENOMEM);  /* one too many */
	EXPECT(m, ss_fallocate(m, hog, 0, 0, rest), 0);
	ss_phys_info(m, &pinfo);
	EXPECT(m, pinfo.free, 0);
	EXPECT(m, ss_phys_runs(m, pfn, pfn + 1, &fr, 1, &fnext), 1);
	EXPECT(m, fr.state, SS_FRAME_HWPOISON);
	EXPECT(m, ss_close(m, hog), 0);
	/* a frame that is not a guest_memfd page */
	int fd = ss_memfd_create(m, "plain", 0);
	EXPECT(m, ss_ftruncate(m, fd, (int64_t)PG), 0);
	uint8_t b = 1;
	EXPECT(m, ss_pwrite(m, fd, &b, 1, 0), 1);
	struct ss_page_run pr;
	uint64_t next;
	EXPECT(m, ss_file_runs(m, fd, 0, 1, &pr, 1, &next), 1);
	EXPECT(m, ss_memory_failure(m, pr.pfn), -EOPNOTSUPP);
	RULE(m, SS_R_MF_NOT_GMEM);
	ss_machine_free(m);
}

/* variant inplace_conversion: "[PATCH v8 00/46] guest_memfd: In-place conversion
 * support" - KVM_SET_MEMORY_ATTRIBUTES2 on the guest_memfd */
static void test_inplace(void)
{
	cur_test = "inplace";
	struct ss_config c = { .profile = SS_PROFILE_GMEM, .thp = SS_THP_NEVER, .phys_pages = 4096,
			       .variants = SS_VAR_INPLACE };
	struct ss_machine *m = ss_machine_new(&c);
	int vm = ss_vm_create(m, SS_VM_SW_PROTECTED, "vm");
	EXPECT(m, ss_vcpu_create(m, vm), 0);
	/* INIT_SHARED allowed on a private-memory VM; MMAP: one page for both states */
	int g = ss_vm_gmem_create(m, vm, 4 * PG, 3);
	EXPECT(m, g >= 3, 1);
	int map = ss_mmap(m, g, 0, (int64_t)(4 * PG), SS_PROT_READ | SS_PROT_WRITE, SS_MAP_SHARED);
	uint64_t addr = 0;
	ss_mapping_addr(m, map, &addr);
	struct ss_region r = { .slot = 0, .flags = SS_MEM_GUEST_MEMFD, .memory_size = 4 * PG,
			       .userspace_addr = addr, .guest_memfd = (uint32_t)g };
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), 0);
	/* the VM ioctl no longer takes PRIVATE */
	EXPECT(m, ss_vm_set_memory_attributes(m, vm, 0, PG, SS_MEMORY_ATTRIBUTE_PRIVATE, 0), -EINVAL);
	int sig;
	uint8_t val;
	EXPECT(m, ss_mapping_access(m, map, 5, 1, 0x42, &sig, &val), 0);
	EXPECT(m, sig, 0);
	uint64_t eo = 99;
	/* checks: flags, attributes, range */
	EXPECT(m, ss_gmem_set_attributes(m, g, 0, PG, SS_MEMORY_ATTRIBUTE_PRIVATE, 3, &eo), -EINVAL);
	EXPECT(m, ss_gmem_set_attributes(m, g, 0, PG, 1, 0, &eo), -EINVAL);
	EXPECT(m, ss_gmem_set_attributes(m, g, 0, 8 * PG, SS_MEMORY_ATTRIBUTE_PRIVATE, 0, &eo), -EINVAL);
	EXPECT(m, ss_gmem_set_attributes(m, g, 1, PG, SS_MEMORY_ATTRIBUTE_PRIVATE, 0, &eo), -EINVAL);
	/* a page with an extra reference: EAGAIN with error_offset at it */
	uint64_t pfn;
	int order;
	EXPECT(m, ss_get_lock_pfn(m, g, 2, 1, &pfn, &order), 0);
	EXPECT(m, ss_gmem_set_attributes(m, g, 0, 4 * PG, SS_MEMORY_ATTRIBUTE_PRIVATE, 0, &eo), -EAGAIN);
	RULE(m, SS_R_CONVERT_BUSY);
	EXPECT(m, eo, 2 * PG);
	EXPECT(m, ss_put_unlock_pfn(m, pfn), 0);
	/* shared -> private in place (PRESERVE honoured by a software VM) */
	EXPECT(m, ss_gmem_set_attributes(m, g, 0, 2 * PG, SS_MEMORY_ATTRIBUTE_PRIVATE, 2, &eo), 0);
	EXPECT(m, ss_mapping_access(m, map, 5, 0, 0, &sig, &val), 0);
	EXPECT(m, sig, SS_SIGBUS);  /* private: the host cannot touch it */
	struct ss_access a = { .gpa = 5, .private_ = 1 };
	struct ss_access_result out;
	EXPECT(m, ss_vcpu_access(m, vm, 0, &a, &out), 0);
	EXPECT(m, out.exit_reason, 0);
	EXPECT(m, out.value, 0x42);  /* the same page, its bytes kept */
	uint64_t priv_pfn = out.pfn;
	/* the range has the attributes already: nothing happens */
	EXPECT(m, ss_gmem_set_attributes(m, g, 0, PG, SS_MEMORY_ATTRIBUTE_PRIVATE, 0, &eo), 0);
	/* private -> shared takes no reference check, even with a hold; ZERO zeroes */
	EXPECT(m, ss_get_lock_pfn(m, g, 0, 0, &pfn, &order), 0);
	EXPECT(m, ss_gmem_set_attributes(m, g, 0, PG, 0, 1, &eo), 0);
	EXPECT(m, ss_put_unlock_pfn(m, pfn), 0);
	struct ss_gfn_run gr[4];
	EXPECT(m, ss_owner_gfn_runs(m, vm, 0, gr, 4), 0);  /* zapped */
	EXPECT(m, ss_mapping_access(m, map, 5, 0, 0, &sig, &val), 0);
	EXPECT(m, sig, 0);
	EXPECT(m, val, 0);
	a.private_ = 0;
	EXPECT(m, ss_vcpu_access(m, vm, 0, &a, &out), 0);
	EXPECT(m, out.pfn, priv_pfn);  /* in place: the same frame, shared now */
	struct ss_attr_run ar[4];
	EXPECT(m, ss_gmem_attr_runs(m, g, 0, 4, ar, 4), 1);
	EXPECT(m, ar[0].start, 1);
	EXPECT(m, ar[0].end, 2);
	ss_machine_free(m);
	/* a confidential VM: PRESERVE cannot be honoured; a guest_memfd without
	 * INIT_SHARED starts private */
	m = ss_machine_new(&c);
	int snp = ss_vm_create(m, SS_VM_SNP, "snp");
	g = ss_vm_gmem_create(m, snp, 4 * PG, 0);
	EXPECT(m, ss_gmem_set_attributes(m, g, 0, PG, 0, 2, &eo), -EOPNOTSUPP);
	RULE(m, SS_R_CONTENT_MODE);
	EXPECT(m, ss_gmem_attr_runs(m, g, 0, 4, ar, 4), 1);
	EXPECT(m, ar[0].attributes, SS_MEMORY_ATTRIBUTE_PRIVATE);
	ss_machine_free(m);
	/* without the variant there is no such ioctl */
	m = mk();
	vm = ss_vm_create(m, SS_VM_SW_PROTECTED, "vm");
	g = ss_vm_gmem_create(m, vm, 4 * PG, 0);
	EXPECT(m, ss_gmem_set_attributes(m, g, 0, PG, 0, 0, &eo), -ENOTTY);
	ss_machine_free(m);
}

/* variant no_direct_map ("Direct Map Removal Support for guest_memfd", Patrick Roy,
 * v7, Sep 2025): a prepared folio leaves the direct map, comes back when freed */
static void test_no_direct_map(void)
{
	cur_test = "no_direct_map";
	struct ss_config c = { .profile = SS_PROFILE_GMEM, .thp = SS_THP_NEVER, .phys_pages = 4096,
			       .variants = SS_VAR_NO_DIRECT_MAP };
	struct ss_machine *m = ss_machine_new(&c);
	int g;
	int vm = vm_with_gmem(m, SS_VM_SNP, 4, &g);
	EXPECT(m, ss_vm_set_memory_attributes(m, vm, 0, 4 * PG, SS_MEMORY_ATTRIBUTE_PRIVATE, 0), 0);
	EXPECT(m, ss_fallocate(m, g, SS_FALLOC_FL_KEEP_SIZE, 0, (int64_t)PG), 0);
	uint64_t pfn = pfn_at(m, g, 0);
	struct ss_frame_run fr;
	uint64_t next;
	EXPECT(m, ss_phys_runs(m, pfn, pfn + 1, &fr, 1, &next), 1);
	EXPECT(m, fr.no_direct_map, 0);  /* allocated: still in the direct map */
	EXPECT(m, private_read(m, vm, 0), 0);
	TRUE(last_has_cb(m, SS_CB_DIRECT_MAP_REMOVE, pfn, pfn + 1));
	EXPECT(m, ss_phys_runs(m, pfn, pfn + 1, &fr, 1, &next), 1);
	EXPECT(m, fr.no_direct_map, 1);
	EXPECT(m, ss_fallocate(m, g, SS_FALLOC_FL_PUNCH_HOLE | SS_FALLOC_FL_KEEP_SIZE, 0, (int64_t)PG), 0);
	TRUE(last_has_cb(m, SS_CB_DIRECT_MAP_RESTORE, pfn, pfn + 1));
	EXPECT(m, ss_phys_runs(m, pfn, pfn + 1, &fr, 1, &next), 1);
	EXPECT(m, fr.no_direct_map, 0);
	ss_machine_free(m);
}

/* variant hugetlb_1g: "[RFC PATCH v2 00/51] 1G page support for guest_memfd" - a
 * 1 GiB folio splits to 4 KiB pages on a partial conversion, merges back after */
static int order_at(struct ss_machine *m, int fd, uint64_t index)
{
	struct ss_page_run r;
	uint64_t next;
	return ss_file_runs(m, fd, index, index + 1, &r, 1, &next) == 1 ? r.order : -1;
}

static void test_hugetlb_1g(void)
{
	cur_test = "hugetlb_1g";
	const uint64_t GIB = 1ull << 30, NR = GIB / PG;
	struct ss_config c = { .profile = SS_PROFILE_GMEM, .thp = SS_THP_NEVER,
			       .phys_pages = 2 * NR, .variants = SS_VAR_HUGETLB_1G };
	struct ss_machine *m = ss_machine_new(&c);
	int vm = ss_vm_create(m, SS_VM_SW_PROTECTED, "vm");
	EXPECT(m, ss_vcpu_create(m, vm), 0);
	EXPECT(m, ss_vm_gmem_create(m, vm, GIB + PG, 3), -EINVAL);  /* not a 1 GiB multiple */
	int g = ss_vm_gmem_create(m, vm, GIB, 3);
	EXPECT(m, g >= 3, 1);
	EXPECT(m, ss_fallocate(m, g, SS_FALLOC_FL_KEEP_SIZE, 0, (int64_t)PG), 0);
	EXPECT(m, order_at(m, g, 0), 18);
	EXPECT(m, order_at(m, g, NR - 1), 18);
	uint64_t head = pfn_at(m, g, 0);
	EXPECT(m, head % NR, 0);
	struct ss_frame_run fr[4];
	uint64_t next;
	EXPECT(m, ss_phys_runs(m, head, head + NR, fr, 4, &next), 1);
	EXPECT(m, fr[0].order, 18);
	/* a part converts: split to 4 KiB pages */
	uint64_t eo;
	EXPECT(m, ss_gmem_set_attributes(m, g, 5 * PG, PG, SS_MEMORY_ATTRIBUTE_PRIVATE, 0, &eo), 0);
	EXPECT(m, order_at(m, g, 0), 0);
	EXPECT(m, order_at(m, g, 5), 0);
	EXPECT(m, pfn_at(m, g, 5), head + 5);  /* in place */
	EXPECT(m, ss_phys_runs(m, head, head + NR, fr, 4, &next), 1);
	EXPECT(m, fr[0].order, 0);
	/* back to one attribute over the whole folio: merged */
	EXPECT(m, ss_gmem_set_attributes(m, g, 5 * PG, PG, 0, 0, &eo), 0);
	EXPECT(m, order_at(m, g, 5), 18);
	EXPECT(m, ss_phys_runs(m, head, head + NR, fr, 4, &next), 1);
	EXPECT(m, fr[0].order, 18);
	/* the whole folio converts without a split */
	EXPECT(m, ss_gmem_set_attributes(m, g, 0, GIB, SS_MEMORY_ATTRIBUTE_PRIVATE, 0, &eo), 0);
	EXPECT(m, order_at(m, g, 7), 18);
	/* a page of it held: shared -> private of a part is refused, nothing splits */
	EXPECT(m, ss_gmem_set_attributes(m, g, 0, PG, 0, 0, &eo), 0);
	uint64_t pfn;
	int order;
	EXPECT(m, ss_get_lock_pfn(m, g, 0, 0, &pfn, &order), 0);
	EXPECT(m, ss_gmem_set_attributes(m, g, 0, PG, SS_MEMORY_ATTRIBUTE_PRIVATE, 0, &eo), -EAGAIN);
	EXPECT(m, ss_put_unlock_pfn(m, pfn), 0);
	/* a punch of a part splits; the rest is freed as the file goes */
	EXPECT(m, ss_fallocate(m, g, SS_FALLOC_FL_PUNCH_HOLE | SS_FALLOC_FL_KEEP_SIZE, (int64_t)(3 * PG),
			       (int64_t)PG), 0);
	EXPECT(m, order_at(m, g, 4), 0);
	EXPECT(m, ss_close(m, g), 0);
	struct ss_phys_info pi;
	ss_phys_info(m, &pi);
	EXPECT(m, pi.free, 2 * NR);
	ss_machine_free(m);
}

/* TDX on 1 GiB folios: a zap of one 4 KiB mapping of a folio leaves the other
 * mappings' S-EPT entries (the checker: every private TDX mapping is prepared);
 * going shared reclaims the converted page alone once the folio is split */
static void test_tdx_zap_part_of_a_folio(void)
{
	cur_test = "tdx zap of part of a 1 GiB folio";
	const uint64_t GIB = 1ull << 30, NR = GIB / PG;
	struct ss_config c = { .profile = SS_PROFILE_GMEM, .thp = SS_THP_NEVER,
			       .phys_pages = 2 * NR, .variants = SS_VAR_HUGETLB_1G };
	struct ss_machine *m = ss_machine_new(&c);
	int g;
	int vm = ss_vm_create(m, SS_VM_TDX, "td");
	EXPECT(m, ss_vcpu_create(m, vm), 0);
	g = ss_vm_gmem_create(m, vm, GIB, 0);  /* private from the start */
	EXPECT(m, g >= 3, 1);
	struct ss_region r = { .slot = 0, .flags = SS_MEM_GUEST_MEMFD, .memory_size = GIB,
			       .guest_memfd = (uint32_t)g };
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), 0);
	EXPECT(m, ss_vm_launch_finish(m, vm), 0);
	EXPECT(m, private_read(m, vm, 0), 0);
	EXPECT(m, private_read(m, vm, PG), 0);
	uint64_t head = pfn_at(m, g, 0);
	uint64_t eo;
	EXPECT(m, ss_gmem_set_attributes(m, g, 0, PG, 0, 0, &eo), 0);
	TRUE(last_has_cb(m, SS_CB_SEPT_REMOVE, head, head + 1));
	EXPECT(m, last_count_cb(m, SS_CB_SEPT_REMOVE), 1);
	EXPECT(m, life_at(m, g, 1), SS_LIFE_PREPARED);  /* gfn 1 keeps its entry */
	EXPECT(m, private_read(m, vm, PG), 0);
	EXPECT(m, last_ncbs(m), 0);
	EXPECT(m, ss_close(m, g), 0);
	ss_machine_free(m);
}

/* the byte a private access at gpa answers (a write of value first when write) */
static int private_byte(struct ss_machine *m, int vm, uint64_t gpa, int write, uint8_t value)
{
	struct ss_access a = { .gpa = gpa, .write = write, .private_ = 1, .value = value };
	struct ss_access_result out;
	int rc = ss_vcpu_access(m, vm, 0, &a, &out);
	check(m, __LINE__);
	return rc ? rc : out.exit_reason ? -1000 - out.exit_reason : out.value;
}

/* TDX clears a page it removes from the S-EPT (tdx_sept_remove_private_spte ->
 * tdx_clear_page after TDH.MEM.PAGE.REMOVE): after a zap, the page added again
 * (TDH.MEM.PAGE.AUG) reads zeros.  SNP's RMP entry and the bytes outlive a zap. */
static void test_tdx_zap_clears_the_page(int type)
{
	cur_test = type == SS_VM_SNP ? "snp zap keeps the bytes" : "tdx zap clears the page";
	struct ss_machine *m = mk();
	int g;
	int vm = vm_with_gmem(m, type, 4, &g);
	EXPECT(m, ss_vm_set_memory_attributes(m, vm, 0, 4 * PG, SS_MEMORY_ATTRIBUTE_PRIVATE, 0), 0);
	EXPECT(m, ss_vm_launch_finish(m, vm), 0);
	EXPECT(m, private_byte(m, vm, PG + 5, 1, 0x5a), 0x5a);
	EXPECT(m, private_byte(m, vm, 2 * PG, 1, 0x6b), 0x6b);
	uint64_t pfn = pfn_at(m, g, 1);
	EXPECT(m, ss_vm_set_memory_attributes(m, vm, PG, PG, 0, 0), 0);  /* the zap */
	EXPECT(m, ss_vm_set_memory_attributes(m, vm, PG, PG, SS_MEMORY_ATTRIBUTE_PRIVATE, 0), 0);
	EXPECT(m, private_byte(m, vm, PG + 5, 0, 0), type == SS_VM_TDX ? 0 : 0x5a);
	EXPECT(m, pfn_at(m, g, 1), pfn);  /* the same folio, added again */
	EXPECT(m, private_byte(m, vm, 2 * PG, 0, 0), 0x6b);  /* a page not zapped keeps its bytes */
	/* a memslot deletion zaps too */
	struct ss_region del = { .slot = 0, .flags = SS_MEM_GUEST_MEMFD, .memory_size = 0,
				 .guest_memfd = (uint32_t)g };
	EXPECT(m, ss_vm_set_memory_region(m, vm, &del), 0);
	struct ss_region r = { .slot = 0, .flags = SS_MEM_GUEST_MEMFD, .memory_size = 4 * PG,
			       .guest_memfd = (uint32_t)g };
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), 0);
	EXPECT(m, private_byte(m, vm, 2 * PG, 0, 0), type == SS_VM_TDX ? 0 : 0x6b);
	EXPECT(m, ss_close(m, g), 0);
	ss_machine_free(m);
}

int coco_tests(int *nchecks);
int coco_tests(int *nchecks)
{
	test_lifecycle(SS_VM_SNP, SS_CB_RMP_ASSIGN, SS_CB_RMP_RECLAIM);
	test_lifecycle(SS_VM_TDX, SS_CB_SEPT_ADD, SS_CB_SEPT_REMOVE);
	test_lifecycle_sw_protected();
	test_populate(SS_VM_SNP);
	test_populate(SS_VM_TDX);
	test_measurement_order();
	test_tdx_vcpu_and_prefault();
	test_memory_failure();
	test_inplace();
	test_no_direct_map();
	test_hugetlb_1g();
	test_tdx_zap_part_of_a_folio();
	test_tdx_zap_clears_the_page(SS_VM_TDX);
	test_tdx_zap_clears_the_page(SS_VM_SNP);
	*nchecks = checks;
	return failures;
}
