/*
 * test_cow_map.c - C unit tests of MAP_PRIVATE copy-on-write (cow.c): host writes
 * copy the page for the mapping only; punch keeps copies, truncate drops those
 * past EOF, munmap frees them; F_SEAL_WRITE allows it; a vCPU write through a
 * private userspace_addr maps the copy and a host copy zaps the VM's old page;
 * the copy's frame is named in the frames view and the event says it copied;
 * ss_check after every step.
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

static struct ss_machine *machine(int profile)
{
	struct ss_config c = { .profile = profile, .thp = SS_THP_NEVER, .phys_pages = 1024 };
	struct ss_machine *m = ss_machine_new(&c);
	if (!m)
		exit(2);
	return m;
}

static void test_host_write_copies(void)
{
	cur_test = "host_write_copies";
	struct ss_machine *m = machine(SS_PROFILE_GMEM);
	int fd = ss_memfd_create(m, "ram", 0);
	EXPECT(m, ss_ftruncate(m, fd, 4 * PG), 0);
	EXPECT(m, ss_pwrite(m, fd, "a", 1, PG + 5), 1);
	int priv = ss_mmap(m, fd, 0, 4 * PG, RW, SS_MAP_PRIVATE);
	int shared = ss_mmap(m, fd, 0, 4 * PG, RW, SS_MAP_SHARED);
	TRUE(priv > 0 && shared > 0);
	uint64_t u0 = used(m);
	EXPECT(m, touch(m, priv, PG + 5, 0, 0), 'a');       /* a read maps the file's page */
	EXPECT(m, used(m), u0);
	EXPECT(m, touch(m, priv, PG + 6, 1, 'b'), 'b');     /* the write copies it */
	TRUE(last_touches(m, SS_T_COW) == 1);
	EXPECT(m, used(m), u0 + 1);
	EXPECT(m, touch(m, priv, PG + 5, 0, 0), 'a');       /* the copy has the file's bytes */
	EXPECT(m, touch(m, priv, PG + 6, 0, 0), 'b');
	EXPECT(m, pread1(m, fd, PG + 6), 0);                /* the file never sees it */
	EXPECT(m, touch(m, shared, PG + 6, 0, 0), 0);
	EXPECT(m, touch(m, shared, PG + 5, 1, 'z'), 'z');   /* nor the copy the file's later bytes */
	EXPECT(m, touch(m, priv, PG + 5, 0, 0), 'a');
	EXPECT(m, touch(m, priv, PG + 6, 1, 'c'), 'c');     /* a second write: the same copy */
	TRUE(last_touches(m, SS_T_COW) == 0);
	EXPECT(m, used(m), u0 + 1);
	u0 = used(m);
	EXPECT(m, touch(m, priv, 3 * PG, 1, 'h'), 'h');     /* a hole: the file page, then the copy */
	TRUE(last_touches(m, SS_T_ALLOC) == 1 && last_touches(m, SS_T_COW) == 1);
	EXPECT(m, used(m), u0 + 2);
	EXPECT(m, pread1(m, fd, 3 * PG), 0);
	/* the frames view names the copy's mapping */
	struct ss_frame_run fr[32];
	uint64_t next;
	int n = ss_phys_runs(m, 0, 1024, fr, 32, &next), cows = 0;
	for (int i = 0; i < n; i++)
		if (fr[i].state == SS_FRAME_COW) {
			cows += (int)(fr[i].end - fr[i].start);
			TRUE(fr[i].map_id == priv && fr[i].fd == fd);
		} else {
			TRUE(fr[i].map_id == 0);
		}
	TRUE(cows == 2);
	/* a clone carries the copies and diverges */
	struct ss_machine *c = ss_machine_clone(m);
	TRUE(c != NULL);
	EXPECT(c, touch(c, priv, PG + 6, 1, 'q'), 'q');
	EXPECT(m, touch(m, priv, PG + 6, 0, 0), 'c');
	EXPECT(c, ss_munmap(c, priv), 0);
	EXPECT(m, touch(m, priv, 3 * PG, 0, 0), 'h');
	ss_machine_free(c);
	/* munmap frees them; closing first does not */
	u0 = used(m);
	EXPECT(m, ss_close(m, fd), 0);
	EXPECT(m, used(m), u0);
	EXPECT(m, touch(m, priv, PG + 6, 0, 0), 'c');
	EXPECT(m, ss_munmap(m, priv), 0);
	EXPECT(m, used(m), u0 - 2);
	EXPECT(m, ss_munmap(m, shared), 0);
	ss_machine_free(m);
}

static void test_punch_keeps_truncate_drops(void)
{
	cur_test = "punch_keeps_truncate_drops";
	struct ss_machine *m = machine(SS_PROFILE_GMEM);
	int fd = ss_memfd_create(m, "ram", 0);
	EXPECT(m, ss_ftruncate(m, fd, 4 * PG), 0);
	int priv = ss_mmap(m, fd, 0, 4 * PG, RW, SS_MAP_PRIVATE);
	for (uint64_t i = 0; i < 4; i++)
		EXPECT(m, touch(m, priv, i * PG, 1, (uint8_t)(10 + i)), 10 + i);
	EXPECT(m, ss_fallocate(m, fd, SS_FALLOC_FL_PUNCH_HOLE | SS_FALLOC_FL_KEEP_SIZE, 0, 4 * PG), 0);
	for (uint64_t i = 0; i < 4; i++)  /* even_cows=0: the copies stay */
		EXPECT(m, touch(m, priv, i * PG, 0, 0), 10 + i);
	uint64_t u0 = used(m);
	EXPECT(m, ss_ftruncate(m, fd, PG + 1), 0);        /* even_cows=1 past the new EOF page */
	EXPECT(m, used(m), u0 - 2);
	EXPECT(m, touch(m, priv, 0, 0, 0), 10);
	EXPECT(m, touch(m, priv, PG, 0, 0), 11);          /* the partial page's copy stays */
	EXPECT(m, touch(m, priv, 2 * PG, 0, 0), 1000 + SS_SIGBUS);
	EXPECT(m, ss_ftruncate(m, fd, 4 * PG), 0);
	EXPECT(m, touch(m, priv, 2 * PG, 0, 0), 0);       /* the file's page, a new hole */
	ss_machine_free(m);
}

static void test_sealed_write_copies_and_nomem(void)
{
	cur_test = "sealed_write_copies_and_nomem";
	struct ss_machine *m = machine(SS_PROFILE_GMEM);
	int fd = ss_memfd_create(m, "ram", SS_MFD_ALLOW_SEALING);
	EXPECT(m, ss_ftruncate(m, fd, 2 * PG), 0);
	EXPECT(m, ss_add_seals(m, fd, SS_F_SEAL_WRITE), 0);
	int priv = ss_mmap(m, fd, 0, 2 * PG, RW, SS_MAP_PRIVATE);
	TRUE(priv > 0);
	EXPECT(m, touch(m, priv, 7, 1, 9), 9);            /* the seal does not forbid a copy */
	EXPECT(m, pread1(m, fd, 7), 0);
	int fut = ss_memfd_create(m, "fut", SS_MFD_ALLOW_SEALING);
	EXPECT(m, ss_ftruncate(m, fut, PG), 0);
	EXPECT(m, ss_add_seals(m, fut, SS_F_SEAL_FUTURE_WRITE), 0);
	EXPECT(m, ss_mmap(m, fut, 0, PG, RW, SS_MAP_SHARED), -EPERM);
	int fpriv = ss_mmap(m, fut, 0, PG, RW, SS_MAP_PRIVATE);
	TRUE(fpriv > 0);
	EXPECT(m, touch(m, fpriv, 3, 1, 4), 4);           /* nor does F_SEAL_FUTURE_WRITE */
	EXPECT(m, pread1(m, fut, 3), 0);
	EXPECT(m, ss_munmap(m, fpriv), 0);
	EXPECT(m, ss_close(m, fut), 0);
	/* the last free frame: the file page is allocated, the copy has none */
	int big = ss_memfd_create(m, "big", 0);
	EXPECT(m, ss_ftruncate(m, big, 1024 * PG), 0);
	EXPECT(m, ss_fallocate(m, big, 0, 0, (int64_t)(1024 - used(m) - 1) * (int64_t)PG), 0);
	EXPECT(m, used(m), 1023);
	EXPECT(m, touch(m, priv, PG, 1, 1), -ENOMEM);
	RULE(m, SS_R_NOMEM);
	EXPECT(m, used(m), 1024);
	EXPECT(m, touch(m, priv, PG, 0, 0), 0);           /* nothing half made */
	ss_machine_free(m);
}

static void test_vcpu_through_private_hva(int profile)
{
	cur_test = profile == SS_PROFILE_RFC_V2 ? "vcpu_private_hva_rfc" : "vcpu_private_hva";
	struct ss_machine *m = machine(profile);
	int vm = ss_vm_create(m, SS_VM_DEFAULT, "vm");
	EXPECT(m, ss_vcpu_create(m, vm), 0);
	int fd = ss_memfd_create(m, "ram", 0);
	EXPECT(m, ss_ftruncate(m, fd, 4 * PG), 0);
	EXPECT(m, ss_pwrite(m, fd, "f", 1, PG), 1);
	int priv = ss_mmap(m, fd, 0, 4 * PG, RW, SS_MAP_PRIVATE);
	uint64_t addr = 0;
	EXPECT(m, ss_mapping_addr(m, priv, &addr), 0);
	struct ss_region r = { .slot = 0, .guest_phys_addr = 0, .memory_size = 4 * PG, .userspace_addr = addr };
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), 0);
	struct ss_access a = { .gpa = PG, .write = 0, .private_ = -1 };
	struct ss_access_result out;
	EXPECT(m, ss_vcpu_access(m, vm, 0, &a, &out), 0);  /* a read maps the file page */
	TRUE(out.value == 'f' && out.fd == fd && out.index == 1);
	uint64_t file_pfn = out.pfn;
	a.write = 1;
	a.value = 'g';
	EXPECT(m, ss_vcpu_access(m, vm, 0, &a, &out), 0);  /* the write breaks COW: a new page */
	TRUE(out.value == 'g' && out.pfn != file_pfn && out.index == 1);
	uint64_t copy = out.pfn;
	EXPECT(m, pread1(m, fd, PG), 'f');
	EXPECT(m, touch(m, priv, PG, 0, 0), 'g');          /* the host sees the VM's copy */
	/* a host write at a page the VM read: the copy replaces it, the VM's mapping goes */
	a.gpa = 2 * PG;
	a.write = 0;
	EXPECT(m, ss_vcpu_access(m, vm, 0, &a, &out), 0);
	EXPECT(m, touch(m, priv, 2 * PG + 1, 1, 'h'), 'h');
	TRUE(last_touches(m, SS_T_ZAP) == 1 && last_touches(m, SS_T_COW) == 1);
	a.gpa = 2 * PG + 1;
	EXPECT(m, ss_vcpu_access(m, vm, 0, &a, &out), 0);  /* refaults onto the copy */
	TRUE(out.value == 'h');
	/* a punch zaps the VM's mappings through the range but keeps the copies */
	EXPECT(m, ss_fallocate(m, fd, SS_FALLOC_FL_PUNCH_HOLE | SS_FALLOC_FL_KEEP_SIZE, 0, 4 * PG), 0);
	TRUE(last_touches(m, SS_T_ZAP) == 2);              /* both copies the VM mapped */
	a.gpa = PG;
	EXPECT(m, ss_vcpu_access(m, vm, 0, &a, &out), 0);
	TRUE(out.value == 'g' && out.pfn == copy);
	/* munmap zaps the VM's mappings of the copies, and frees them */
	EXPECT(m, ss_munmap(m, priv), 0);
	struct ss_gfn_run gr[4];
	EXPECT(m, ss_owner_gfn_runs(m, vm, 0, gr, 4), 0);
	ss_machine_free(m);
}

static void test_pinned_copy_outlives_its_mapping(void)
{
	cur_test = "pinned_copy_outlives_its_mapping";
	struct ss_machine *m = machine(SS_PROFILE_GMEM);
	int fd = ss_memfd_create(m, "ram", 0);
	EXPECT(m, ss_ftruncate(m, fd, 2 * PG), 0);
	int priv = ss_mmap(m, fd, 0, 2 * PG, RW, SS_MAP_PRIVATE);
	EXPECT(m, touch(m, priv, 1, 1, 5), 5);
	int sig = -1, pin = 0;
	EXPECT(m, ss_mapping_pin(m, priv, 0, 2 * PG, 0, &sig, &pin), 0);  /* the copy and page 1 */
	struct ss_frame_run fr[8];
	uint64_t next;
	uint64_t u0 = used(m);
	EXPECT(m, ss_munmap(m, priv), 0);
	TRUE(last_touches(m, SS_T_ORPHAN) == 1 && used(m) == u0);  /* the pin holds the copy */
	int n = ss_phys_runs(m, 0, 1024, fr, 8, &next), orphans = 0;
	for (int i = 0; i < n; i++)
		orphans += fr[i].state == SS_FRAME_ORPHAN;
	TRUE(orphans == 1);
	EXPECT(m, ss_close(m, fd), 0);
	EXPECT(m, ss_mapping_unpin(m, pin), 0);
	EXPECT(m, used(m), 0);  /* the copy, then the file with its pages */
	ss_machine_free(m);
}

int cow_map_tests(int *nchecks);
int cow_map_tests(int *nchecks)
{
	test_host_write_copies();
	test_punch_keeps_truncate_drops();
	test_sealed_write_copies_and_nomem();
	test_pinned_copy_outlives_its_mapping();
	test_vcpu_through_private_hva(SS_PROFILE_GMEM);
	test_vcpu_through_private_hva(SS_PROFILE_RFC_V2);
	*nchecks = checks;
	return failures;
}
