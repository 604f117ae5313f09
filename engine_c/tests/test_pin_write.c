/*
 * test_pin_write.c - C unit tests of write pins (kvm_pin.c):
 * pin_user_pages(FOLL_WRITE | FOLL_LONGTERM) through a VMM mapping.  Without
 * PROT_WRITE: EFAULT, nothing pinned; through MAP_SHARED the page is faulted
 * in for write (a hole allocated) and dirty; through MAP_PRIVATE the COW
 * break makes the copy (a VM's mapping of the old page zapped) and the copy
 * is pinned; on a guest_memfd the write pin pins the read pin's page; a
 * multi-page pin that fails part way unpins what it took.  ss_check after
 * every step.
 */
#include "../sealscope.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "maptest.h"

#define PG 4096ull
#define RW (SS_PROT_READ | SS_PROT_WRITE)

static struct ss_machine *machine(unsigned int variants)
{
	struct ss_config c = { .profile = SS_PROFILE_GMEM, .thp = SS_THP_NEVER, .phys_pages = 1024,
			       .variants = variants };
	struct ss_machine *m = ss_machine_new(&c);
	if (!m)
		exit(2);
	return m;
}

/* the pages the last event's touches of kind what name (adjacent ones merge) */
static uint64_t last_pages(struct ss_machine *m, int what)
{
	struct ss_touch t[32];
	int n = ss_event_touches(m, ss_event_count(m), 0, t, 32);
	uint64_t k = 0;
	for (int i = 0; i < n; i++)
		k += t[i].what == what ? t[i].npages : 0;
	return k;
}

static int64_t last_arg(struct ss_machine *m, int i)
{
	struct ss_event e;
	return ss_event_get(m, ss_event_count(m), &e) ? -1 : e.args[i];
}

static uint64_t pin_pfn(struct ss_machine *m, int pin, uint64_t i)
{
	struct ss_pin_info pi;
	uint64_t pfns[8] = { 0 };
	if (ss_pin_info(m, pin, &pi, pfns, 8) || i >= pi.npages || i >= 8)
		return ~0ull;
	return pfns[i];
}

static struct ss_frame_run frame(struct ss_machine *m, uint64_t pfn)
{
	struct ss_frame_run r = { .state = -1 };
	uint64_t next;
	ss_phys_runs(m, pfn, pfn + 1, &r, 1, &next);
	return r;
}

static struct ss_page_run page(struct ss_machine *m, int fd, uint64_t index)
{
	struct ss_page_run r = { .state = -1 };
	uint64_t next;
	ss_file_runs(m, fd, index, index + 1, &r, 1, &next);
	return r;
}

/* check_vma_flags: FOLL_WRITE on a VMA without VM_WRITE is EFAULT (no
 * FOLL_FORCE), shared or private, before any page is faulted in */
static void test_write_pin_readonly(void)
{
	cur_test = "write_pin_readonly";
	struct ss_machine *m = machine(0);
	int fd = ss_memfd_create(m, "ram", 0);
	EXPECT(m, ss_ftruncate(m, fd, 4 * PG), 0);
	int ro = ss_mmap(m, fd, 0, 4 * PG, SS_PROT_READ, SS_MAP_SHARED);
	int rop = ss_mmap(m, fd, 0, 4 * PG, SS_PROT_READ, SS_MAP_PRIVATE);
	TRUE(ro > 0 && rop > 0);
	uint64_t u0 = used(m);
	int sig = -1, pin = -1;
	EXPECT(m, ss_mapping_pin(m, ro, PG, 2 * PG, 1, &sig, &pin), -EFAULT);
	RULE(m, SS_R_PIN_READONLY);
	EXPECT(m, sig, SS_SIGSEGV);
	EXPECT(m, pin, 0);
	EXPECT(m, last_arg(m, 3), 1);  /* the event says it was a write pin */
	EXPECT(m, used(m), u0);         /* no page faulted in */
	struct ss_pin_info pi;
	uint64_t pfns[1];
	EXPECT(m, ss_pin_info(m, 1, &pi, pfns, 1), -EINVAL);
	EXPECT(m, ss_mapping_pin(m, rop, 0, PG, 1, &sig, &pin), -EFAULT);
	RULE(m, SS_R_PIN_READONLY);
	EXPECT(m, used(m), u0);         /* no copy either */
	/* past the mapping is still the touch's SIGSEGV rule */
	EXPECT(m, ss_mapping_pin(m, ro, 4 * PG, PG, 1, &sig, &pin), -EFAULT);
	RULE(m, SS_R_PIN_FAULT);
	/* a read pin there is fine, and its event's write is 0 */
	EXPECT(m, ss_mapping_pin(m, ro, PG, PG, 0, &sig, &pin), 0);
	EXPECT(m, last_arg(m, 3), 0);
	EXPECT(m, page(m, fd, 1).dirty, 0);  /* a read pin does not dirty */
	EXPECT(m, ss_mapping_unpin(m, pin), 0);
	ss_machine_free(m);
}

/* MAP_SHARED: do_shared_fault allocates the hole and dirties the page */
static void test_write_pin_shared(void)
{
	cur_test = "write_pin_shared";
	struct ss_machine *m = machine(0);
	int fd = ss_memfd_create(m, "ram", 0);
	EXPECT(m, ss_ftruncate(m, fd, 4 * PG), 0);
	int map = ss_mmap(m, fd, 0, 4 * PG, RW, SS_MAP_SHARED);
	EXPECT(m, touch(m, map, 0, 0, 0), 0);  /* page 0 faulted in by a read: clean */
	EXPECT(m, page(m, fd, 0).dirty, 0);
	uint64_t u0 = used(m);
	int sig = -1, pin = -1;
	EXPECT(m, ss_mapping_pin(m, map, 0, 2 * PG, 1, &sig, &pin), 0);
	EXPECT(m, sig, 0);
	EXPECT(m, used(m), u0 + 1);  /* the hole at page 1 */
	TRUE(last_touches(m, SS_T_ALLOC) == 1 && last_touches(m, SS_T_LOCK) == 2);
	TRUE(last_touches(m, SS_T_COW) == 0);
	EXPECT(m, last_arg(m, 3), 1);
	struct ss_page_run p0 = page(m, fd, 0), p1 = page(m, fd, 1);
	TRUE(p0.dirty && p1.dirty);
	EXPECT(m, p0.refcount, 2);
	EXPECT(m, p1.refcount, 2);
	EXPECT(m, pin_pfn(m, pin, 0), p0.pfn);
	EXPECT(m, pin_pfn(m, pin, 1), p1.pfn);
	EXPECT(m, page(m, fd, 2).state == SS_PG_HOLE, 1);
	/* shared: what is written through the mapping is the file's page */
	EXPECT(m, touch(m, map, PG + 3, 1, 'w'), 'w');
	EXPECT(m, pread1(m, fd, PG + 3), 'w');
	EXPECT(m, used(m), u0 + 1);
	/* a write pin of a write-only mapping is allowed (VM_WRITE is what counts) */
	int wo = ss_mmap(m, fd, 0, 4 * PG, SS_PROT_WRITE, SS_MAP_SHARED);
	int pin2 = -1;
	EXPECT(m, ss_mapping_pin(m, wo, 3 * PG, PG, 1, &sig, &pin2), 0);
	TRUE(page(m, fd, 3).dirty);
	/* the unpins drop the references; the pages stay in the cache, dirty */
	EXPECT(m, ss_mapping_unpin(m, pin), 0);
	EXPECT(m, ss_mapping_unpin(m, pin2), 0);
	EXPECT(m, page(m, fd, 1).refcount, 1);
	TRUE(page(m, fd, 1).dirty);
	ss_machine_free(m);
}

/* MAP_PRIVATE: the write fault breaks COW (do_cow_fault for a page not mapped,
 * wp_page_copy for one mapped read only) and the copy is pinned; a write
 * through the mapping after it writes the pinned copy; unpin after munmap */
static void test_write_pin_private(void)
{
	cur_test = "write_pin_private";
	struct ss_machine *m = machine(0);
	int fd = ss_memfd_create(m, "ram", 0);
	EXPECT(m, ss_ftruncate(m, fd, 4 * PG), 0);
	EXPECT(m, ss_pwrite(m, fd, "f", 1, 5), 1);
	int priv = ss_mmap(m, fd, 0, 4 * PG, RW, SS_MAP_PRIVATE);
	TRUE(priv > 0);
	int sig = -1, rpin = -1, wpin = -1;
	uint64_t file0 = page(m, fd, 0).pfn;
	EXPECT(m, ss_mapping_pin(m, priv, 0, PG, 0, &sig, &rpin), 0);  /* a read pin: the file page */
	EXPECT(m, pin_pfn(m, rpin, 0), file0);
	uint64_t u0 = used(m);
	EXPECT(m, ss_mapping_pin(m, priv, 0, 2 * PG, 1, &sig, &wpin), 0);
	/* page 0: a copy; page 1: a hole, the file page faulted in first, then copied */
	EXPECT(m, used(m), u0 + 3);
	TRUE(last_touches(m, SS_T_COW) == 2 && last_touches(m, SS_T_ALLOC) == 1);
	uint64_t c0 = pin_pfn(m, wpin, 0), c1 = pin_pfn(m, wpin, 1);
	TRUE(c0 != file0 && c1 != page(m, fd, 1).pfn);
	struct ss_frame_run f0 = frame(m, c0);
	TRUE(f0.state == SS_FRAME_COW && f0.map_id == priv && f0.index == 0 && f0.fd == fd);
	EXPECT(m, pin_pfn(m, rpin, 0), file0);  /* the read pin keeps the file page */
	EXPECT(m, page(m, fd, 0).refcount, 2);
	EXPECT(m, page(m, fd, 1).dirty, 0);     /* copied from, not written */
	/* the copy has the file's bytes; the file never sees the mapping's writes */
	EXPECT(m, touch(m, priv, 5, 0, 0), 'f');
	EXPECT(m, touch(m, priv, 6, 1, 'g'), 'g');
	TRUE(last_touches(m, SS_T_COW) == 0);   /* the pinned copy, not a new one */
	EXPECT(m, used(m), u0 + 3);
	EXPECT(m, pread1(m, fd, 6), 0);
	/* a second write pin pins the same copy; no copy is made */
	int wpin2 = -1;
	EXPECT(m, ss_mapping_pin(m, priv, 0, PG, 1, &sig, &wpin2), 0);
	EXPECT(m, pin_pfn(m, wpin2, 0), c0);
	TRUE(last_touches(m, SS_T_COW) == 0);
	EXPECT(m, ss_mapping_unpin(m, wpin2), 0);
	/* munmap: the pinned copies are orphans until the unpin frees them */
	EXPECT(m, ss_munmap(m, priv), 0);
	TRUE(last_touches(m, SS_T_ORPHAN) == 2);
	EXPECT(m, frame(m, c0).state, SS_FRAME_ORPHAN);
	EXPECT(m, used(m), u0 + 3);
	EXPECT(m, ss_mapping_unpin(m, wpin), 0);
	TRUE(last_touches(m, SS_T_FREE) == 2);
	EXPECT(m, frame(m, c0).state, SS_FRAME_FREE);
	EXPECT(m, frame(m, c1).state, SS_FRAME_FREE);
	EXPECT(m, used(m), u0 + 1);             /* the file's page 1 stays in its cache */
	EXPECT(m, ss_mapping_unpin(m, rpin), 0);
	EXPECT(m, ss_close(m, fd), 0);
	EXPECT(m, used(m), 0);
	ss_machine_free(m);
}

/* the copy's wp_page_copy runs the mmu notifier: a VM mapping the file page
 * through the private userspace_addr zaps it, and refaults onto the pinned copy */
static void test_write_pin_zaps_vm(void)
{
	cur_test = "write_pin_zaps_vm";
	struct ss_machine *m = machine(0);
	int vm = ss_vm_create(m, SS_VM_DEFAULT, "vm");
	EXPECT(m, ss_vcpu_create(m, vm), 0);
	int fd = ss_memfd_create(m, "ram", 0);
	EXPECT(m, ss_ftruncate(m, fd, 4 * PG), 0);
	EXPECT(m, ss_pwrite(m, fd, "f", 1, PG), 1);
	int priv = ss_mmap(m, fd, 0, 4 * PG, RW, SS_MAP_PRIVATE);
	uint64_t addr = 0;
	EXPECT(m, ss_mapping_addr(m, priv, &addr), 0);
	struct ss_region r = { .slot = 0, .memory_size = 4 * PG, .userspace_addr = addr };
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), 0);
	struct ss_access a = { .gpa = PG, .write = 0, .private_ = -1 };
	struct ss_access_result out;
	EXPECT(m, ss_vcpu_access(m, vm, 0, &a, &out), 0);  /* the VM maps the file page */
	TRUE(out.value == 'f' && out.pfn == page(m, fd, 1).pfn);
	int sig = -1, pin = -1;
	EXPECT(m, ss_mapping_pin(m, priv, PG, PG, 1, &sig, &pin), 0);
	TRUE(last_touches(m, SS_T_ZAP) == 1 && last_touches(m, SS_T_COW) == 1);
	uint64_t copy = pin_pfn(m, pin, 0);
	struct ss_gfn_run gr[4];
	EXPECT(m, ss_owner_gfn_runs(m, vm, 0, gr, 4), 0);  /* zapped */
	EXPECT(m, ss_vcpu_access(m, vm, 0, &a, &out), 0);  /* refaults onto the copy */
	TRUE(out.value == 'f' && out.pfn == copy);
	/* a pin of a page already copied zaps nothing */
	int pin2 = -1;
	EXPECT(m, ss_mapping_pin(m, priv, PG, PG, 1, &sig, &pin2), 0);
	TRUE(last_touches(m, SS_T_ZAP) == 0 && pin_pfn(m, pin2, 0) == copy);
	EXPECT(m, ss_mapping_unpin(m, pin2), 0);
	/* the guest writes the pinned copy; the file keeps its byte */
	a.write = 1;
	a.value = 'v';
	EXPECT(m, ss_vcpu_access(m, vm, 0, &a, &out), 0);
	TRUE(out.pfn == copy);
	EXPECT(m, pread1(m, fd, PG), 'f');
	EXPECT(m, touch(m, priv, PG, 0, 0), 'v');
	EXPECT(m, ss_mapping_unpin(m, pin), 0);
	ss_machine_free(m);
}

/* guest_memfd (MMAP | INIT_SHARED, in-place conversion): mmap is shared only
 * (kvm_gmem_mmap refuses a COW mapping: EINVAL), so a write pin pins the page a
 * read pin does; shared -> private is EAGAIN at it as at a read pin */
static void test_write_pin_gmem(void)
{
	cur_test = "write_pin_gmem";
	struct ss_machine *m = machine(SS_VAR_INPLACE);
	int vm = ss_vm_create(m, SS_VM_SW_PROTECTED, "vm");
	EXPECT(m, ss_vcpu_create(m, vm), 0);
	int g = ss_vm_gmem_create(m, vm, 4 * PG, SS_GMEM_FLAG_MMAP | SS_GMEM_FLAG_INIT_SHARED);
	TRUE(g >= 3);
	EXPECT(m, ss_mmap(m, g, 0, 4 * PG, RW, SS_MAP_PRIVATE), -EINVAL);
	int map = ss_mmap(m, g, 0, 4 * PG, RW, SS_MAP_SHARED);
	int ro = ss_mmap(m, g, 0, 4 * PG, SS_PROT_READ, SS_MAP_SHARED);
	TRUE(map > 0 && ro > 0);
	int sig = -1, rpin = -1, wpin = -1;
	EXPECT(m, ss_mapping_pin(m, ro, 2 * PG, PG, 1, &sig, &wpin), -EFAULT);
	RULE(m, SS_R_PIN_READONLY);
	EXPECT(m, ss_mapping_pin(m, map, 2 * PG, PG, 0, &sig, &rpin), 0);
	EXPECT(m, page(m, g, 2).dirty, 0);
	EXPECT(m, ss_mapping_pin(m, map, 2 * PG, PG, 1, &sig, &wpin), 0);
	EXPECT(m, pin_pfn(m, wpin, 0), pin_pfn(m, rpin, 0));
	TRUE(last_touches(m, SS_T_COW) == 0);
	struct ss_page_run p = page(m, g, 2);
	TRUE(p.dirty);
	EXPECT(m, p.refcount, 3);  /* the cache's and the two pins' */
	uint64_t eo = 0;
	EXPECT(m, ss_gmem_set_attributes(m, g, 0, 4 * PG, SS_MEMORY_ATTRIBUTE_PRIVATE, 0, &eo), -EAGAIN);
	RULE(m, SS_R_CONVERT_BUSY);
	EXPECT(m, eo, 2 * PG);
	EXPECT(m, ss_mapping_unpin(m, rpin), 0);
	EXPECT(m, ss_gmem_set_attributes(m, g, 2 * PG, PG, SS_MEMORY_ATTRIBUTE_PRIVATE, 0, &eo), -EAGAIN);
	EXPECT(m, ss_mapping_unpin(m, wpin), 0);
	EXPECT(m, ss_gmem_set_attributes(m, g, 2 * PG, PG, SS_MEMORY_ATTRIBUTE_PRIVATE, 0, &eo), 0);
	/* a private page: the write pin's fault is SIGBUS, EFAULT as for a read pin */
	EXPECT(m, ss_mapping_pin(m, map, 2 * PG, PG, 1, &sig, &wpin), -EFAULT);
	RULE(m, SS_R_PIN_FAULT);
	EXPECT(m, sig, SS_SIGBUS);
	ss_machine_free(m);
}

/* a multi-page write pin that runs out of memory part way: the pages it took
 * are unpinned (their copies stay the mapping's, as faulted-in pages stay) */
static void test_write_pin_nomem(void)
{
	cur_test = "write_pin_nomem";
	struct ss_machine *m = machine(0);
	int fd = ss_memfd_create(m, "ram", 0);
	EXPECT(m, ss_ftruncate(m, fd, 4 * PG), 0);
	EXPECT(m, ss_fallocate(m, fd, 0, 0, (int64_t)(4 * PG)), 0);  /* the file pages exist */
	int priv = ss_mmap(m, fd, 0, 4 * PG, RW, SS_MAP_PRIVATE);
	int big = ss_memfd_create(m, "big", 0);
	EXPECT(m, ss_ftruncate(m, big, 1024 * (int64_t)PG), 0);
	EXPECT(m, ss_fallocate(m, big, 0, 0, (int64_t)(1024 - used(m) - 2) * (int64_t)PG), 0);
	EXPECT(m, used(m), 1022);  /* room for two copies of the four */
	int sig = -1, pin = -1;
	EXPECT(m, ss_mapping_pin(m, priv, 0, 4 * PG, 1, &sig, &pin), -ENOMEM);
	RULE(m, SS_R_NOMEM);
	TRUE(last_pages(m, SS_T_COW) == 2 && last_pages(m, SS_T_LOCK) == 2);
	EXPECT(m, pin, 0);
	EXPECT(m, used(m), 1024);
	struct ss_pin_info pi;
	uint64_t pfns[1];
	EXPECT(m, ss_pin_info(m, 1, &pi, pfns, 1), -EINVAL);
	/* nothing still holds the copies: munmap frees both, no orphan */
	EXPECT(m, ss_munmap(m, priv), 0);
	TRUE(last_pages(m, SS_T_ORPHAN) == 0 && last_pages(m, SS_T_FREE) == 2);
	EXPECT(m, used(m), 1022);
	ss_machine_free(m);
}

int pin_write_tests(int *nchecks);
int pin_write_tests(int *nchecks)
{
	test_write_pin_readonly();
	test_write_pin_shared();
	test_write_pin_private();
	test_write_pin_zaps_vm();
	test_write_pin_gmem();
	test_write_pin_nomem();
	*nchecks = checks;
	return failures;
}
