/*
 * test_pin.c - C unit tests of GUP pins of host mappings (kvm_pin.c):
 * pin_user_pages() on a range of the VMM's mapping, and what a pinned page
 * blocks; ss_check after every step (check_pins: refcounts cover the pins).
 */
#include "../sealscope.h"
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define PG 4096ull
#define PUNCH (SS_FALLOC_FL_PUNCH_HOLE | SS_FALLOC_FL_KEEP_SIZE)

static struct ss_machine *mk(int thp, unsigned int variants)
{
	struct ss_config c = { .profile = SS_PROFILE_GMEM, .thp = thp, .phys_pages = 4096,
			       .variants = variants };
	struct ss_machine *m = ss_machine_new(&c);
	if (!m) {
		fprintf(stderr, "machine_new failed\n");
		exit(2);
	}
	return m;
}

static int frame_state(struct ss_machine *m, uint64_t pfn)
{
	struct ss_frame_run r;
	uint64_t next;
	return ss_phys_runs(m, pfn, pfn + 1, &r, 1, &next) == 1 ? r.state : -1;
}

static uint64_t pin_pfn(struct ss_machine *m, int pin, uint64_t i)
{
	struct ss_pin_info pi;
	uint64_t pfns[8] = { 0 };
	if (ss_pin_info(m, pin, &pi, pfns, 8) || i >= pi.npages || i >= 8)
		return ~0ull;
	return pfns[i];
}

static uint64_t free_frames(struct ss_machine *m)
{
	struct ss_phys_info pi;
	ss_phys_info(m, &pi);
	return pi.free;
}

/* a shared guest_memfd of 4 pages (MMAP | INIT_SHARED) bound to a software VM,
 * mapped; *map its mapping */
static int shared_gmem(struct ss_machine *m, int type, int *vm, int *map)
{
	*vm = ss_vm_create(m, (uint64_t)type, "vm");
	EXPECT(m, ss_vcpu_create(m, *vm), 0);
	int g = ss_vm_gmem_create(m, *vm, 4 * PG, 3);
	EXPECT(m, g >= 3, 1);
	*map = ss_mmap(m, g, 0, (int64_t)(4 * PG), SS_PROT_READ | SS_PROT_WRITE, SS_MAP_SHARED);
	EXPECT(m, *map >= 1, 1);
	uint64_t addr = 0;
	ss_mapping_addr(m, *map, &addr);
	struct ss_region r = { .slot = 0, .flags = SS_MEM_GUEST_MEMFD, .memory_size = 4 * PG,
			       .userspace_addr = addr, .guest_memfd = (uint32_t)g };
	EXPECT(m, ss_vm_set_memory_region(m, *vm, &r), 0);
	return g;
}

/* "[PATCH v8 00/46] guest_memfd: In-place conversion support" (Ackerley Tng,
 * June 2026), "KVM: guest_memfd: Ensure pages are not in use before
 * conversion": shared -> private fails with EAGAIN while a folio has a
 * reference beyond the filemap's (a GUP pin of a host mapping is one) and
 * error_offset names the first such page; private -> shared has no check. */
static void test_pin_blocks_conversion(void)
{
	cur_test = "pin blocks shared -> private";
	struct ss_machine *m = mk(SS_THP_NEVER, SS_VAR_INPLACE);
	int vm, map, sig = -1, pin = -1;
	int g = shared_gmem(m, SS_VM_SW_PROTECTED, &vm, &map);
	EXPECT(m, ss_mapping_pin(m, map, 0, 0, 0, &sig, &pin), -EINVAL);  /* empty */
	RULE(m, SS_R_PIN_RANGE);
	EXPECT(m, ss_mapping_pin(m, 99, 0, PG, 0, &sig, &pin), -EINVAL);
	RULE(m, SS_R_NO_MAPPING);
	EXPECT(m, ss_mapping_pin(m, map, 3 * PG, 2 * PG, 0, &sig, &pin), -EFAULT);  /* past it */
	RULE(m, SS_R_PIN_FAULT);
	EXPECT(m, sig, SS_SIGSEGV);
	EXPECT(m, pin, 0);
	uint64_t before = free_frames(m);
	/* pages 2 and 3 (an unaligned range covers both) */
	EXPECT(m, ss_mapping_pin(m, map, 2 * PG + 100, PG, 0, &sig, &pin), 0);
	EXPECT(m, sig, 0);
	EXPECT(m, pin, 1);
	EXPECT(m, free_frames(m), before - 2);  /* faulted in as a host touch would */
	struct ss_pin_info pi;
	uint64_t pfns[4];
	EXPECT(m, ss_pin_info(m, pin, &pi, pfns, 4), 0);
	EXPECT(m, pi.offset, 2 * PG);
	EXPECT(m, pi.npages, 2);
	EXPECT(m, pi.map_id, map);
	struct ss_page_run pr;
	uint64_t next;
	EXPECT(m, ss_file_runs(m, g, 2, 3, &pr, 1, &next), 1);
	EXPECT(m, pr.refcount, 2);  /* the cache's and the pin's */
	uint64_t eo = 0;
	EXPECT(m, ss_gmem_set_attributes(m, g, 0, 4 * PG, SS_MEMORY_ATTRIBUTE_PRIVATE, 0, &eo), -EAGAIN);
	RULE(m, SS_R_CONVERT_BUSY);
	EXPECT(m, eo, 2 * PG);
	/* the pages before it convert; the pinned ones do not */
	EXPECT(m, ss_gmem_set_attributes(m, g, 0, 2 * PG, SS_MEMORY_ATTRIBUTE_PRIVATE, 0, &eo), 0);
	/* a private page cannot be pinned: its fault is SIGBUS, GUP says EFAULT */
	EXPECT(m, ss_mapping_pin(m, map, 0, PG, 0, &sig, &pin), -EFAULT);
	EXPECT(m, sig, SS_SIGBUS);
	EXPECT(m, ss_mapping_unpin(m, 7), -EINVAL);
	RULE(m, SS_R_NO_PIN);
	/* a pin outlives its mapping */
	EXPECT(m, ss_munmap(m, map), 0);
	EXPECT(m, ss_gmem_set_attributes(m, g, 2 * PG, PG, SS_MEMORY_ATTRIBUTE_PRIVATE, 0, &eo), -EAGAIN);
	EXPECT(m, eo, 2 * PG);
	EXPECT(m, ss_mapping_unpin(m, 1), 0);
	EXPECT(m, ss_mapping_unpin(m, 1), -EINVAL);  /* gone */
	EXPECT(m, ss_file_runs(m, g, 2, 3, &pr, 1, &next), 1);
	EXPECT(m, pr.refcount, 1);
	EXPECT(m, ss_gmem_set_attributes(m, g, 2 * PG, 2 * PG, SS_MEMORY_ATTRIBUTE_PRIVATE, 0, &eo), 0);
	ss_machine_free(m);
}

/* a punch of a pinned page leaves the frame referenced (an orphan) until the
 * unpin frees it (truncate_inode_folio drops only the cache's reference);
 * closing the file does the same; a clone carries the pins */
static void test_pin_punch_and_close(void)
{
	cur_test = "pin survives punch";
	struct ss_machine *m = mk(SS_THP_NEVER, 0);
	int vm, map, sig, pin;
	int g = shared_gmem(m, SS_VM_DEFAULT, &vm, &map);
	uint64_t before = free_frames(m);
	EXPECT(m, ss_mapping_pin(m, map, PG, 2 * PG, 0, &sig, &pin), 0);
	uint64_t p1 = pin_pfn(m, pin, 0), p2 = pin_pfn(m, pin, 1);
	EXPECT(m, ss_fallocate(m, g, PUNCH, (int64_t)PG, (int64_t)PG), 0);
	EXPECT(m, frame_state(m, p1), SS_FRAME_ORPHAN);
	EXPECT(m, frame_state(m, p2), SS_FRAME_CACHE);
	EXPECT(m, free_frames(m), before - 2);
	struct ss_machine *c = ss_machine_clone(m);
	TRUE(c != NULL);
	EXPECT(m, ss_mapping_unpin(m, pin), 0);
	EXPECT(m, frame_state(m, p1), SS_FRAME_FREE);
	EXPECT(m, frame_state(m, p2), SS_FRAME_CACHE);
	EXPECT(m, free_frames(m), before - 1);
	/* the file goes (its mapping is unmapped, its fd closed): the pinned page
	 * stays as an orphan of the closed file until the unpin */
	int fd = ss_memfd_create(m, "a", 0);
	EXPECT(m, ss_ftruncate(m, fd, (int64_t)PG), 0);
	int fmap = ss_mmap(m, fd, 0, (int64_t)PG, SS_PROT_READ, SS_MAP_SHARED);
	EXPECT(m, ss_mapping_pin(m, fmap, 0, PG, 0, &sig, &pin), 0);
	uint64_t fp = pin_pfn(m, pin, 0);
	EXPECT(m, ss_munmap(m, fmap), 0);
	EXPECT(m, ss_close(m, fd), 0);
	EXPECT(m, frame_state(m, fp), SS_FRAME_ORPHAN);
	EXPECT(m, ss_mapping_unpin(m, pin), 0);
	EXPECT(m, frame_state(m, fp), SS_FRAME_FREE);
	EXPECT(m, free_frames(m), before - 1);
	ss_machine_free(m);
	/* the clone: the pin is its own */
	EXPECT(c, frame_state(c, p1), SS_FRAME_ORPHAN);
	EXPECT(c, ss_mapping_unpin(c, 1), 0);
	EXPECT(c, frame_state(c, p1), SS_FRAME_FREE);
	EXPECT(c, frame_state(c, p2), SS_FRAME_CACHE);
	ss_machine_free(c);
}

/* a pinned page cannot migrate (migrate_folio_move: the expected refcount
 * does not match: EBUSY / -EAGAIN in the kernel; the engine answers EBUSY);
 * a hwpoisoned page cannot be pinned (VM_FAULT_HWPOISON: EHWPOISON) */
static void test_pin_migrate_poison(void)
{
	cur_test = "pin blocks migration";
	struct ss_machine *m = mk(SS_THP_NEVER, 0);
	int fd = ss_memfd_create(m, "a", 0);
	EXPECT(m, ss_ftruncate(m, fd, (int64_t)(2 * PG)), 0);
	int map = ss_mmap(m, fd, 0, (int64_t)(2 * PG), SS_PROT_READ, SS_MAP_SHARED);
	EXPECT(m, map >= 1, 1);
	int sig, pin;
	EXPECT(m, ss_mapping_pin(m, map, 0, PG, 0, &sig, &pin), 0);
	uint64_t p = pin_pfn(m, pin, 0);
	EXPECT(m, ss_migrate_page(m, p), -EBUSY);
	EXPECT(m, ss_mapping_unpin(m, pin), 0);
	int64_t to = ss_migrate_page(m, p);
	TRUE(to >= 0 && (uint64_t)to != p);
	check(m, __LINE__);
	int vm, gmap;
	int gfd = shared_gmem(m, SS_VM_DEFAULT, &vm, &gmap);
	EXPECT(m, ss_mapping_pin(m, gmap, 0, PG, 0, &sig, &pin), 0);
	uint64_t gp = pin_pfn(m, pin, 0);
	EXPECT(m, ss_mapping_unpin(m, pin), 0);
	EXPECT(m, ss_memory_failure(m, gp), 0);
	EXPECT(m, ss_mapping_pin(m, gmap, 0, 2 * PG, 0, &sig, &pin), -EHWPOISON);
	RULE(m, SS_R_PIN_HWPOISON);
	EXPECT(m, sig, SS_SIGBUS);
	/* a pinned page that fails, then is punched: an orphan until the unpin, whose
	 * last reference keeps the poisoned frame off the free lists */
	EXPECT(m, ss_mapping_pin(m, gmap, PG, PG, 0, &sig, &pin), 0);
	uint64_t pp = pin_pfn(m, pin, 0);
	EXPECT(m, ss_memory_failure(m, pp), 0);
	EXPECT(m, ss_fallocate(m, gfd, PUNCH, (int64_t)PG, (int64_t)PG), 0);
	EXPECT(m, frame_state(m, pp), SS_FRAME_ORPHAN);
	EXPECT(m, ss_mapping_unpin(m, pin), 0);
	EXPECT(m, frame_state(m, pp), SS_FRAME_HWPOISON);
	EXPECT(m, ss_frame_poisoned(m, pp), 1);
	ss_machine_free(m);
}

/* a huge page split with pinned tails: each tail takes its reference back
 * (the checker counts references per frame after the split) */
static void test_pin_huge_split(void)
{
	cur_test = "pin across a huge page split";
	struct ss_machine *m = mk(SS_THP_ALWAYS, 0);
	int fd = ss_memfd_create(m, "h", 0);
	EXPECT(m, ss_ftruncate(m, fd, (int64_t)(512 * PG)), 0);
	int map = ss_mmap(m, fd, 0, (int64_t)(512 * PG), SS_PROT_READ | SS_PROT_WRITE, SS_MAP_SHARED);
	int sig, pin;
	EXPECT(m, ss_mapping_pin(m, map, 4 * PG, 2 * PG, 0, &sig, &pin), 0);
	struct ss_page_run pr;
	uint64_t next;
	EXPECT(m, ss_file_runs(m, fd, 4, 5, &pr, 1, &next), 1);
	EXPECT(m, pr.order, 9);
	EXPECT(m, pr.refcount, 3);  /* the cache's and one per pinned page */
	EXPECT(m, ss_fallocate(m, fd, PUNCH, 0, (int64_t)PG), 0);  /* splits */
	EXPECT(m, ss_file_runs(m, fd, 4, 5, &pr, 1, &next), 1);
	EXPECT(m, pr.order, 0);
	EXPECT(m, pr.refcount, 2);
	EXPECT(m, ss_file_runs(m, fd, 1, 2, &pr, 1, &next), 1);
	EXPECT(m, pr.refcount, 1);
	EXPECT(m, ss_fallocate(m, fd, PUNCH, (int64_t)(4 * PG), (int64_t)PG), 0);
	EXPECT(m, frame_state(m, pin_pfn(m, pin, 0)), SS_FRAME_ORPHAN);
	EXPECT(m, ss_mapping_unpin(m, pin), 0);
	EXPECT(m, ss_munmap(m, map), 0);
	EXPECT(m, ss_close(m, fd), 0);
	EXPECT(m, free_frames(m), 4096);
	ss_machine_free(m);
}

int pin_tests(int *nchecks);
int pin_tests(int *nchecks)
{
	test_pin_blocks_conversion();
	test_pin_punch_and_close();
	test_pin_migrate_poison();
	test_pin_huge_split();
	*nchecks = checks;
	return failures;
}
