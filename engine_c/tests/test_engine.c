/*
 * test_engine.c - C unit tests of the engine, run plain and under
 * AddressSanitizer + UndefinedBehaviorSanitizer (make ctest).
 *
 * Every operation goes through OK()/ERR(), which also runs the invariant
 * checker, so each test checks the machine after every step.
 */
#include "../sealscope.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static struct ss_machine *mk(int profile, int thp, uint32_t variants, uint64_t pages)
{
	struct ss_config c = { .profile = profile, .thp = thp, .variants = variants, .phys_pages = pages };
	struct ss_machine *m = ss_machine_new(&c);
	if (!m) {
		fprintf(stderr, "machine_new failed\n");
		exit(2);
	}
	check(m, 0);
	return m;
}

static struct ss_event last_event(struct ss_machine *m)
{
	struct ss_event e;
	ss_event_get(m, ss_event_count(m), &e);
	return e;
}

static struct ss_callback callback(struct ss_machine *m, uint64_t seq, uint32_t i)
{
	struct ss_callback c = { 0 };
	ss_event_callbacks(m, seq, i, &c, 1);
	return c;
}

static void test_config(void)
{
	cur_test = "config";
	struct ss_config bad = { .profile = 0, .thp = 0, .phys_pages = 1000 };
	TRUE(ss_machine_new(&bad) == NULL);
	bad.phys_pages = 1024;
	bad.thp = 7;
	TRUE(ss_machine_new(&bad) == NULL);
	TRUE(ss_machine_new(NULL) == NULL);
	TRUE(ss_frame_size() <= 64);
}

static void test_seal_guest_lifecycle(void)
{
	cur_test = "lifecycle";
	struct ss_machine *m = mk(SS_PROFILE_RFC_V2, SS_THP_NEVER, 0, 4096);
	int fd = ss_memfd_create(m, "vm0", SS_MFD_ALLOW_SEALING);
	EXPECT(m, fd, 3);
	EXPECT(m, ss_add_seals(m, fd, SS_F_SEAL_GUEST), 0);
	EXPECT(m, ss_get_seals(m, fd), SS_F_SEAL_GUEST);
	EXPECT(m, ss_ftruncate(m, fd, 4097), -EINVAL);
	EXPECT(m, ss_ftruncate(m, fd, 8 * 4096), 0);
	int kvm = ss_owner_create(m, SS_OWNER_KVM, "kvm0");
	EXPECT(m, kvm, 0);
	EXPECT(m, ss_memslot_create(m, kvm, fd, 0x100, 0, 8), 0);
	EXPECT(m, ss_fallocate(m, fd, 0, 0, 4 * 4096), 0);
	struct ss_event e = last_event(m);
	EXPECT(m, e.ncallbacks, 1);
	struct ss_callback c = callback(m, e.seq, 0);
	EXPECT(m, c.fn, SS_CB_FALLOCATE);
	EXPECT(m, c.start, 0);
	EXPECT(m, c.end, 4);
	uint64_t pfn = 0;
	int order = -1;
	EXPECT(m, ss_fault(m, kvm, 0x101, &pfn, &order), 0);
	EXPECT(m, order, 0);
	struct ss_page_run runs[8];
	uint64_t next;
	int n = ss_file_runs(m, fd, 0, 8, runs, 8, &next);
	EXPECT(m, n, 4);  /* [0,1) [1,2) mapped [2,4) [4,8) hole */
	EXPECT(m, runs[1].mapped_by, 1);
	EXPECT(m, runs[1].pfn, pfn);
	EXPECT(m, runs[3].state, SS_PG_HOLE);
	/* punch two pages: one invalidate per page, inclusive end */
	EXPECT(m, ss_fallocate(m, fd, SS_FALLOC_FL_PUNCH_HOLE | SS_FALLOC_FL_KEEP_SIZE, 4096, 2 * 4096), 0);
	e = last_event(m);
	EXPECT(m, e.ncallbacks, 2);
	c = callback(m, e.seq, 0);
	EXPECT(m, c.fn, SS_CB_INVALIDATE);
	EXPECT(m, c.start, 1);
	EXPECT(m, c.end, 1);
	c = callback(m, e.seq, 1);
	EXPECT(m, c.start, 2);
	EXPECT(m, c.end, 2);
	struct ss_owner_info oi;
	ss_owner_info(m, kvm, &oi);
	EXPECT(m, oi.nmapped, 0);
	EXPECT(m, oi.nzapped, 1);
	/* userspace locked out */
	char buf[16];
	EXPECT(m, ss_pread(m, fd, buf, 16, 0), -EPERM);
	EXPECT(m, ss_pread(m, fd, buf, 16, 8 * 4096), 0);
	EXPECT(m, ss_pwrite(m, fd, "x", 1, 0), -EPERM);
	EXPECT(m, ss_mmap(m, fd, 0, 4096, SS_PROT_READ, SS_MAP_SHARED), -EPERM);
	EXPECT(m, ss_fallocate(m, fd, SS_FALLOC_FL_PUNCH_HOLE | SS_FALLOC_FL_KEEP_SIZE, 1, 4096), -EINVAL);
	ss_machine_free(m);
}

static void test_seal_refusals(void)
{
	cur_test = "seal refusals";
	struct ss_machine *m = mk(SS_PROFILE_RFC_V2, SS_THP_NEVER, 0, 1024);
	int fd = ss_memfd_create(m, "a", SS_MFD_ALLOW_SEALING);
	EXPECT(m, ss_ftruncate(m, fd, 8192), 0);
	EXPECT(m, ss_add_seals(m, fd, SS_F_SEAL_GUEST), -EBUSY);
	EXPECT(m, ss_ftruncate(m, fd, 0), 0);
	int map = ss_mmap(m, fd, 0, 4096, SS_PROT_READ, SS_MAP_PRIVATE);
	EXPECT(m, map, 1);
	EXPECT(m, ss_add_seals(m, fd, SS_F_SEAL_GUEST), -EBUSY);
	EXPECT(m, ss_add_seals(m, fd, SS_F_SEAL_WRITE), 0);  /* private maps don't count */
	EXPECT(m, ss_munmap(m, map), 0);
	EXPECT(m, ss_add_seals(m, fd, 0x40), -EINVAL);
	int nos = ss_memfd_create(m, "b", 0);
	EXPECT(m, ss_get_seals(m, nos), SS_F_SEAL_SEAL);
	EXPECT(m, ss_add_seals(m, nos, SS_F_SEAL_GUEST), -EPERM);
	EXPECT(m, ss_add_seals(m, 99, SS_F_SEAL_GUEST), -EBADF);
	/* shared read-only mapping blocks F_SEAL_WRITE */
	int c = ss_memfd_create(m, "c", SS_MFD_ALLOW_SEALING);
	map = ss_mmap(m, c, 0, 4096, SS_PROT_READ, SS_MAP_SHARED);
	EXPECT(m, ss_add_seals(m, c, SS_F_SEAL_WRITE), -EBUSY);
	EXPECT(m, ss_munmap(m, map), 0);
	EXPECT(m, ss_add_seals(m, c, SS_F_SEAL_WRITE), 0);
	EXPECT(m, ss_fallocate(m, c, SS_FALLOC_FL_PUNCH_HOLE | SS_FALLOC_FL_KEEP_SIZE, 0, 4096), -EPERM);
	ss_machine_free(m);
}

static void test_register(void)
{
	cur_test = "register";
	struct ss_machine *m = mk(SS_PROFILE_RFC_V2, SS_THP_NEVER, 0, 1024);
	int fd = ss_memfd_create(m, "a", SS_MFD_ALLOW_SEALING);
	int k0 = ss_owner_create(m, SS_OWNER_KVM, "k0");
	int r1 = ss_owner_create(m, SS_OWNER_RECORDER, "r1");
	EXPECT(m, ss_register_guest(m, fd, -1), -EINVAL);
	EXPECT(m, ss_register_guest(m, fd, k0), 0);
	EXPECT(m, last_event(m).hazard, SS_HAZ_UNSEALED_REGISTER);
	EXPECT(m, ss_register_guest(m, fd, k0), 0);
	EXPECT(m, ss_register_guest(m, fd, r1), -EPERM);
	ss_machine_free(m);

	m = mk(SS_PROFILE_RFC_V2, SS_THP_NEVER, SS_VAR_MULTI_OWNER, 1024);
	fd = ss_memfd_create(m, "a", SS_MFD_ALLOW_SEALING);
	k0 = ss_owner_create(m, SS_OWNER_KVM, "k0");
	r1 = ss_owner_create(m, SS_OWNER_RECORDER, "r1");
	EXPECT(m, ss_ftruncate(m, fd, 4 * 4096), 0);
	EXPECT(m, ss_register_guest(m, fd, k0), 0);
	EXPECT(m, ss_register_guest(m, fd, r1), 0);
	EXPECT(m, ss_fallocate(m, fd, 0, 0, 4096), 0);
	EXPECT(m, last_event(m).ncallbacks, 2);
	EXPECT(m, ss_fallocate(m, fd, 3, 0, 4096), 0);
	EXPECT(m, last_event(m).ncallbacks, 2);
	EXPECT(m, ss_register_guest(m, fd, r1), 0);       /* a second user */
	EXPECT(m, ss_unregister_guest(m, fd, r1), 1);     /* one user left */
	EXPECT(m, ss_unregister_guest(m, fd, r1), 0);
	EXPECT(m, ss_unregister_guest(m, fd, r1), -ENOENT);
	EXPECT(m, ss_fallocate(m, fd, 0, 0, 4096), 0);
	EXPECT(m, last_event(m).ncallbacks, 1);
	ss_machine_free(m);
}

static void test_get_lock_and_wait(void)
{
	cur_test = "locks and waits";
	struct ss_machine *m = mk(SS_PROFILE_RFC_V2, SS_THP_NEVER, 0, 1024);
	int fd = ss_memfd_create(m, "a", SS_MFD_ALLOW_SEALING);
	int rec = ss_owner_create(m, SS_OWNER_RECORDER, "rec");
	EXPECT(m, ss_add_seals(m, fd, SS_F_SEAL_GUEST), 0);
	EXPECT(m, ss_ftruncate(m, fd, 4 * 4096), 0);
	EXPECT(m, ss_register_guest(m, fd, rec), 0);
	uint64_t pfn = 0, pfn2 = 0;
	int order = 0;
	EXPECT(m, ss_get_lock_pfn(m, fd, 4, 1, &pfn, &order), -EINVAL);
	EXPECT(m, last_event(m).hazard, SS_HAZ_ERRNO_AS_PFN);
	EXPECT(m, last_event(m).raw, (uint64_t)(int64_t)-EINVAL);
	EXPECT(m, ss_get_lock_pfn(m, fd, 1, 0, &pfn, &order), -EFAULT);
	EXPECT(m, last_event(m).hazard, SS_HAZ_NULL_PAGE);
	EXPECT(m, ss_get_lock_pfn(m, fd, 1, 1, &pfn, &order), 0);
	EXPECT(m, ss_get_lock_pfn(m, fd, 1, 1, &pfn2, &order), SS_PENDING);
	EXPECT(m, ss_add_seals(m, fd, SS_F_SEAL_WRITE), -EBUSY);  /* pinned */
	/* punch meets the locked page: waits */
	EXPECT(m, ss_fallocate(m, fd, SS_FALLOC_FL_PUNCH_HOLE | SS_FALLOC_FL_KEEP_SIZE, 0, 4 * 4096), SS_PENDING);
	uint64_t punch_seq = last_event(m).seq;
	struct ss_file_info fi;
	ss_file_info(m, fd, &fi);
	EXPECT(m, fi.nr_pages, 1);
	/* ftruncate sleeps behind the punch on i_rwsem */
	EXPECT(m, ss_ftruncate(m, fd, 8 * 4096), SS_PENDING);
	EXPECT(m, ss_put_unlock_pfn(m, pfn + 1), -EINVAL);
	EXPECT(m, ss_put_unlock_pfn(m, pfn), 0);
	/* put wakes: get_lock (FIFO first) takes the lock, punch still waits */
	struct ss_event e = last_event(m);
	EXPECT(m, e.op, SS_OP_WAKE);
	EXPECT(m, e.out[0], pfn);
	ss_file_info(m, fd, &fi);
	EXPECT(m, fi.size, 4 * 4096);
	EXPECT(m, ss_put_unlock_pfn(m, pfn), 0);
	/* now the punch finishes, then the truncate */
	uint64_t nev = ss_event_count(m);
	struct ss_event w1, w2;
	ss_event_get(m, nev - 1, &w1);
	ss_event_get(m, nev, &w2);
	EXPECT(m, w1.op, SS_OP_WAKE);
	EXPECT(m, w1.wakes_seq, punch_seq);
	EXPECT(m, w1.ncallbacks, 1);
	EXPECT(m, w2.wakes_op, SS_OP_FTRUNCATE);
	ss_file_info(m, fd, &fi);
	EXPECT(m, fi.nr_pages, 0);
	EXPECT(m, fi.size, 8 * 4096);
	EXPECT(m, ss_put_unlock_pfn(m, pfn), -EINVAL);
	EXPECT(m, last_event(m).hazard, SS_HAZ_VM_BUG_ON_PAGE);
	ss_machine_free(m);
}

static void test_huge(void)
{
	cur_test = "huge";
	struct ss_machine *m = mk(SS_PROFILE_RFC_V2, SS_THP_WITHIN_SIZE, 0, 4096);
	int fd = ss_memfd_create(m, "a", SS_MFD_ALLOW_SEALING);
	int rec = ss_owner_create(m, SS_OWNER_RECORDER, "rec");
	EXPECT(m, ss_add_seals(m, fd, SS_F_SEAL_GUEST), 0);
	EXPECT(m, ss_ftruncate(m, fd, 4 << 20), 0);
	EXPECT(m, ss_register_guest(m, fd, rec), 0);
	EXPECT(m, ss_fallocate(m, fd, 0, 0, 4 << 20), 0);
	struct ss_file_info fi;
	ss_file_info(m, fd, &fi);
	EXPECT(m, fi.nr_pages, 1024);
	uint64_t pfn;
	int order;
	EXPECT(m, ss_get_lock_pfn(m, fd, 700, 0, &pfn, &order), 0);
	EXPECT(m, order, 9);
	EXPECT(m, ss_put_unlock_pfn(m, pfn), 0);
	/* punch pages [100, 600): first huge page split (clamped [100, 511]),
	 * second clamped [512, 599] */
	EXPECT(m, ss_fallocate(m, fd, SS_FALLOC_FL_PUNCH_HOLE | SS_FALLOC_FL_KEEP_SIZE, 100 * 4096, 500 * 4096), 0);
	struct ss_event e = last_event(m);
	EXPECT(m, e.ncallbacks, 2);
	struct ss_callback c = callback(m, e.seq, 0);
	EXPECT(m, c.start, 100);
	EXPECT(m, c.end, 511);
	c = callback(m, e.seq, 1);
	EXPECT(m, c.start, 512);
	EXPECT(m, c.end, 599);
	ss_file_info(m, fd, &fi);
	EXPECT(m, fi.nr_pages, 1024 - 500);
	EXPECT(m, ss_get_lock_pfn(m, fd, 50, 0, &pfn, &order), 0);
	EXPECT(m, order, 0);
	EXPECT(m, ss_put_unlock_pfn(m, pfn), 0);
	/* within_size: past i_size no huge page */
	EXPECT(m, ss_close(m, fd), 0);
	ss_machine_free(m);
}

static void test_enomem_undo(void)
{
	cur_test = "enomem";
	struct ss_machine *m = mk(SS_PROFILE_RFC_V2, SS_THP_NEVER, 0, 1024);
	int fd = ss_memfd_create(m, "a", 0);
	int rec = ss_owner_create(m, SS_OWNER_RECORDER, "rec");
	EXPECT(m, ss_register_guest(m, fd, rec), 0);
	EXPECT(m, ss_fallocate(m, fd, 0, 0, 10 * 4096), 0);
	EXPECT(m, ss_fallocate(m, fd, 0, 0, 2000 * 4096), -ENOMEM);
	EXPECT(m, last_event(m).ncallbacks, 0);
	struct ss_file_info fi;
	ss_file_info(m, fd, &fi);
	EXPECT(m, fi.nr_pages, 10);
	EXPECT(m, fi.size, 10 * 4096);
	struct ss_phys_info pi;
	ss_phys_info(m, &pi);
	EXPECT(m, pi.free, 1014);
	ss_machine_free(m);
}

static void test_rw_and_clone(void)
{
	cur_test = "rw clone";
	struct ss_machine *m = mk(SS_PROFILE_GMEM, SS_THP_NEVER, 0, 1024);
	int fd = ss_memfd_create(m, "a", SS_MFD_ALLOW_SEALING);
	EXPECT(m, ss_pwrite(m, fd, "hello", 5, 4094), 5);
	char buf[8] = { 0 };
	EXPECT(m, ss_pread(m, fd, buf, 8, 4094), 5);
	TRUE(!memcmp(buf, "hello", 5));
	struct ss_machine *c = ss_machine_clone(m);
	TRUE(c != NULL);
	check(c, __LINE__);
	EXPECT(m, ss_fallocate(m, fd, SS_FALLOC_FL_PUNCH_HOLE | SS_FALLOC_FL_KEEP_SIZE, 4095, 2), 0);
	EXPECT(m, ss_pread(m, fd, buf, 8, 4094), 5);
	TRUE(!memcmp(buf, "h\0\0lo", 5));
	EXPECT(c, ss_pread(c, fd, buf, 8, 4094), 5);
	TRUE(!memcmp(buf, "hello", 5));
	EXPECT(c, ss_event_count(c) + 1, ss_event_count(m));
	/* F_SEAL_EXEC on an executable memfd implies write seals */
	EXPECT(m, ss_add_seals(m, fd, SS_F_SEAL_EXEC), 0);
	EXPECT(m, ss_get_seals(m, fd), 0x3e);
	ss_machine_free(c);
	ss_machine_free(m);
}

static void test_gmem(void)
{
	cur_test = "gmem";
	struct ss_machine *m = mk(SS_PROFILE_GMEM, SS_THP_ALWAYS, 0, 4096);
	EXPECT(m, ss_gmem_create(m, 4095, 0), -EINVAL);
	EXPECT(m, ss_gmem_create(m, 4096, 4), -EINVAL);
	int fd = ss_gmem_create(m, 1 << 20, SS_GMEM_FLAG_MMAP);
	EXPECT(m, fd, 3);
	char b[4];
	EXPECT(m, ss_pread(m, fd, b, 4, 0), -ESPIPE);
	EXPECT(m, ss_ftruncate(m, fd, 0), -EINVAL);
	EXPECT(m, ss_add_seals(m, fd, 0), -EINVAL);
	EXPECT(m, ss_fallocate(m, fd, 0, 0, 4096), -EOPNOTSUPP);
	EXPECT(m, ss_fallocate(m, fd, SS_FALLOC_FL_KEEP_SIZE, 0, 100), -EINVAL);
	EXPECT(m, ss_fallocate(m, fd, SS_FALLOC_FL_KEEP_SIZE, 0, 2 << 20), -EINVAL);
	EXPECT(m, ss_mmap(m, fd, 0, 4096, SS_PROT_READ, SS_MAP_PRIVATE), -EINVAL);
	EXPECT(m, ss_mmap(m, fd, 8 << 20, 4096, SS_PROT_READ, SS_MAP_SHARED), 1);
	int kvm = ss_owner_create(m, SS_OWNER_KVM, "kvm");
	EXPECT(m, ss_memslot_create(m, kvm, fd, 0, 0, 256), 0);
	EXPECT(m, ss_fallocate(m, fd, SS_FALLOC_FL_KEEP_SIZE, 0, 1 << 20), 0);
	uint64_t pfn;
	int order;
	EXPECT(m, ss_fault(m, kvm, 10, &pfn, &order), 0);
	EXPECT(m, order, 0);
	EXPECT(m, ss_fallocate(m, fd, SS_FALLOC_FL_PUNCH_HOLE | SS_FALLOC_FL_KEEP_SIZE, 0, 2 << 20), 0);
	struct ss_event e = last_event(m);
	EXPECT(m, e.ncallbacks, 1);
	struct ss_callback c = callback(m, e.seq, 0);
	EXPECT(m, c.fn, SS_CB_GMEM_INVALIDATE);
	EXPECT(m, c.start, 0);
	EXPECT(m, c.end, 256);
	ss_machine_free(m);
}

static void test_big_sparse(void)
{
	cur_test = "sparse";
	struct ss_machine *m = mk(SS_PROFILE_RFC_V2, SS_THP_NEVER, 0, 1024);
	int fd = ss_memfd_create(m, "big", 0);
	EXPECT(m, ss_ftruncate(m, fd, 1LL << 40), 0);
	EXPECT(m, ss_fallocate(m, fd, 0, (1LL << 40) - 4096, 4096), 0);
	EXPECT(m, ss_fallocate(m, fd, 0, 0x7ffffffffffff000LL, 4096), -EFBIG);
	struct ss_page_run runs[4];
	uint64_t next;
	EXPECT(m, ss_file_runs(m, fd, 0, 1ULL << 28, runs, 4, &next), 2);
	EXPECT(m, runs[0].end, (1ULL << 28) - 1);
	TRUE(ss_memory_bytes(m) < 2 * 1024 * 1024);
	EXPECT(m, ss_ftruncate(m, fd, 0), 0);
	ss_machine_free(m);
}

/* density: a single page among 2^28 counts 1 in its column; a 64 MiB block
 * fills its columns; the columns add up to the resident pages; frames name
 * their one file, or "many" */
static void test_density(void)
{
	cur_test = "density";
	struct ss_machine *m = mk(SS_PROFILE_RFC_V2, SS_THP_NEVER, 0, 32768);
	int fd = ss_memfd_create(m, "big", 0), fd2 = ss_memfd_create(m, "b", 0);
	EXPECT(m, ss_ftruncate(m, fd, 1LL << 40), 0);
	EXPECT(m, ss_ftruncate(m, fd2, 1 << 20), 0);
	EXPECT(m, ss_fallocate(m, fd, 0, 12345LL << 12, 4096), 0);          /* page 12345 */
	EXPECT(m, ss_fallocate(m, fd, 0, 1LL << 39, 64LL << 20), 0);        /* 16384 pages */
	EXPECT(m, ss_fallocate(m, fd, 0, (1LL << 40) - 4096, 4096), 0);     /* the last page */
	uint64_t present[1000], used[1000], total = 0;
	uint8_t flags[1000];
	int fds[1000];
	EXPECT(m, ss_file_density(m, fd, 0, 1ULL << 28, 1000, present, flags), 0);
	EXPECT(m, present[0], 1);
	EXPECT(m, present[500], 16384);      /* 2^27 starts column 500 */
	EXPECT(m, present[999], 1);
	for (int c = 0; c < 1000; c++)
		total += present[c];
	EXPECT(m, total, 16386);
	EXPECT(m, flags[0], 0);              /* a clean 4 KiB page, unlocked, unmapped */
	EXPECT(m, ss_fallocate(m, fd2, 0, 0, 8192), 0);
	EXPECT(m, ss_phys_density(m, 0, 32768, 1000, used, fds), 0);
	total = 0;
	for (int c = 0; c < 1000; c++)
		total += used[c];
	EXPECT(m, total, 16388);
	EXPECT(m, fds[0], fd);               /* frames 0..32: all fd's */
	EXPECT(m, fds[999], SS_DENS_NONE);
	EXPECT(m, ss_phys_density(m, 16384, 16390, 6, used, fds), 0);
	EXPECT(m, fds[1], fd);               /* pfn 16385: the last page of fd */
	EXPECT(m, fds[2], fd2);
	EXPECT(m, ss_phys_density(m, 16384, 16390, 1, used, fds), 0);
	EXPECT(m, fds[0], SS_DENS_MANY);
	EXPECT(m, used[0], 4);
	/* one column per page: exact; bad windows */
	EXPECT(m, ss_file_density(m, fd, 12344, 12348, 4, present, flags), 0);
	EXPECT(m, present[0] + present[1] * 10 + present[2] * 100 + present[3] * 1000, 10);
	EXPECT(m, ss_get_lock_pfn(m, fd, 12345, 0, &used[0], &fds[0]), 0);
	EXPECT(m, ss_file_density(m, fd, 0, 1ULL << 28, 1000, present, flags), 0);
	EXPECT(m, flags[0], SS_DENS_LOCKED);
	EXPECT(m, ss_put_unlock_pfn(m, used[0]), 0);
	EXPECT(m, ss_file_density(m, fd, 5, 5, 4, present, flags), -EINVAL);
	EXPECT(m, ss_file_density(m, fd, 0, 8, 0, present, flags), -EINVAL);
	EXPECT(m, ss_file_density(m, fd, 0, 8, SS_MAX_COLS + 1, present, flags), -EINVAL);
	EXPECT(m, ss_file_density(m, 99, 0, 8, 4, present, flags), -EBADF);
	EXPECT(m, ss_phys_density(m, 40000, 50000, 4, used, fds), -EINVAL);
	ss_machine_free(m);
}

/* a sleeper holds a reference on the huge page it sleeps on; a truncate
 * queued before it splits the page: the reference must survive the split */
static void test_split_keeps_sleeper_reference(void)
{
	cur_test = "split sleeper ref";
	struct ss_machine *m = mk(SS_PROFILE_RFC_V2, SS_THP_WITHIN_SIZE, 0, 4096);
	int fd = ss_memfd_create(m, "a", SS_MFD_ALLOW_SEALING);
	EXPECT(m, ss_ftruncate(m, fd, 4 << 20), 0);
	EXPECT(m, ss_fallocate(m, fd, 0, 0, 4 << 20), 0);
	uint64_t pfn, pfn2;
	int order;
	EXPECT(m, ss_get_lock_pfn(m, fd, 600, 0, &pfn, &order), 0);     /* huge page 1 */
	EXPECT(m, ss_fallocate(m, fd, SS_FALLOC_FL_PUNCH_HOLE | SS_FALLOC_FL_KEEP_SIZE,
			       0, 4096), 0);                               /* split page 0 */
	EXPECT(m, ss_ftruncate(m, fd, 3 << 20), SS_PENDING);              /* sleeps on page 1 */
	EXPECT(m, ss_get_lock_pfn(m, fd, 512, 0, &pfn2, &order), SS_PENDING);
	EXPECT(m, ss_put_unlock_pfn(m, pfn), 0);  /* truncate splits page 1, then the sleeper */
	struct ss_file_info fi;
	ss_file_info(m, fd, &fi);
	EXPECT(m, fi.nr_pages, 511 + 256);
	EXPECT(m, ss_put_unlock_pfn(m, pfn - 600 + 512), 0);
	ss_machine_free(m);
}

static void test_migrate(void)
{
	cur_test = "migrate";
	struct ss_machine *m = mk(SS_PROFILE_RFC_V2, SS_THP_NEVER, 0, 1024);
	int fd = ss_memfd_create(m, "a", SS_MFD_ALLOW_SEALING);
	EXPECT(m, ss_pwrite(m, fd, "moved", 5, 4096), 5);
	struct ss_page_run r;
	uint64_t next;
	ss_file_runs(m, fd, 1, 2, &r, 1, &next);
	int64_t to = ss_migrate_page(m, r.pfn);
	TRUE(to >= 0 && (uint64_t)to != r.pfn);
	check(m, __LINE__);
	char buf[8] = { 0 };
	EXPECT(m, ss_pread(m, fd, buf, 5, 4096), 5);
	TRUE(!memcmp(buf, "moved", 5));
	EXPECT(m, ss_migrate_page(m, r.pfn), -ENOENT);      /* the old frame is free */
	uint64_t pfn;
	int order;
	EXPECT(m, ss_get_lock_pfn(m, fd, 1, 0, &pfn, &order), 0);
	EXPECT(m, ss_migrate_page(m, pfn), -EBUSY);           /* locked */
	EXPECT(m, ss_put_unlock_pfn(m, pfn), 0);
	int g = ss_memfd_create(m, "g", SS_MFD_ALLOW_SEALING);
	EXPECT(m, ss_add_seals(m, g, SS_F_SEAL_GUEST), 0);
	EXPECT(m, ss_ftruncate(m, g, 4096), 0);
	EXPECT(m, ss_fallocate(m, g, 0, 0, 4096), 0);
	ss_file_runs(m, g, 0, 1, &r, 1, &next);
	EXPECT(m, ss_migrate_page(m, r.pfn), -524);           /* ENOTSUPP */
	ss_machine_free(m);
}

/* the last close's final truncate: the pages it can lock go at once, then it
 * sleeps on the page get_lock_pfn holds; put_unlock_pfn finishes it */
static void test_last_close_waits_on_locked_page(void)
{
	cur_test = "last close waits";
	struct ss_machine *m = mk(SS_PROFILE_RFC_V2, SS_THP_NEVER, 0, 1024);
	int fd = ss_memfd_create(m, "a", SS_MFD_ALLOW_SEALING);
	EXPECT(m, ss_pwrite(m, fd, "x", 1, 4096), 1);
	EXPECT(m, ss_pwrite(m, fd, "y", 1, 3 * 4096), 1);
	uint64_t pfn;
	int order;
	EXPECT(m, ss_get_lock_pfn(m, fd, 0, 1, &pfn, &order), 0);
	int map = ss_mmap(m, fd, 0, 4096, SS_PROT_READ, SS_MAP_SHARED);
	TRUE(map >= 1);
	EXPECT(m, ss_close(m, fd), 0);            /* the mapping still holds the file */
	struct ss_phys_info pi;
	ss_phys_info(m, &pi);
	EXPECT(m, pi.used, 3);
	EXPECT(m, ss_munmap(m, map), SS_PENDING); /* the last reference: evict sleeps */
	uint64_t evict_seq = last_event(m).seq;
	TRUE(last_event(m).pending);
	ss_phys_info(m, &pi);
	EXPECT(m, pi.used, 1);                    /* pages 1 and 3 went at once */
	EXPECT(m, ss_put_unlock_pfn(m, pfn), 0);
	struct ss_event w = last_event(m);
	EXPECT(m, w.op, SS_OP_WAKE);
	EXPECT(m, w.wakes_seq, evict_seq);
	EXPECT(m, w.result, 0);
	ss_phys_info(m, &pi);
	EXPECT(m, pi.used, 0);
	/* a punch sleeping on page 0 holds the file past its close: when it wakes
	 * it runs the final truncate, frees page 2 and sleeps on page 3 */
	fd = ss_memfd_create(m, "c", SS_MFD_ALLOW_SEALING);
	EXPECT(m, ss_ftruncate(m, fd, 4 * 4096), 0);
	EXPECT(m, ss_fallocate(m, fd, 0, 0, 4 * 4096), 0);
	uint64_t p0, p3;
	EXPECT(m, ss_get_lock_pfn(m, fd, 0, 0, &p0, &order), 0);
	EXPECT(m, ss_get_lock_pfn(m, fd, 3, 0, &p3, &order), 0);
	EXPECT(m, ss_fallocate(m, fd, SS_FALLOC_FL_PUNCH_HOLE | SS_FALLOC_FL_KEEP_SIZE, 0, 2 * 4096),
	       SS_PENDING);
	uint64_t punch_seq = last_event(m).seq;
	EXPECT(m, ss_close(m, fd), 0);            /* the sleeping punch holds the file */
	ss_phys_info(m, &pi);
	EXPECT(m, pi.used, 3);
	EXPECT(m, ss_put_unlock_pfn(m, p0), 0);
	w = last_event(m);
	EXPECT(m, w.wakes_seq, punch_seq);
	TRUE(w.pending);                          /* on into the final truncate: sleeps on 3 */
	ss_phys_info(m, &pi);
	EXPECT(m, pi.used, 1);
	EXPECT(m, ss_put_unlock_pfn(m, p3), 0);
	w = last_event(m);
	EXPECT(m, w.wakes_seq, punch_seq);
	TRUE(!w.pending);
	ss_phys_info(m, &pi);
	EXPECT(m, pi.used, 0);
	/* a close with no page locked frees everything at once */
	fd = ss_memfd_create(m, "b", SS_MFD_ALLOW_SEALING);
	EXPECT(m, ss_pwrite(m, fd, "z", 1, 0), 1);
	EXPECT(m, ss_close(m, fd), 0);
	ss_phys_info(m, &pi);
	EXPECT(m, pi.used, 0);
	ss_machine_free(m);
}

/* a punch or an invalidate meets one page after another: the event keeps its
 * callbacks as runs (one record for a contiguous range), at most SS_EV_KEEP
 * runs and touch records, and counts the rest */
static void test_callback_runs(void)
{
	cur_test = "callback_runs";
	const int pages = 15000;
	struct ss_machine *m = mk(SS_PROFILE_RFC_V2, SS_THP_NEVER, 0, 16384);
	int fd = ss_memfd_create(m, "vm", SS_MFD_ALLOW_SEALING);
	EXPECT(m, ss_add_seals(m, fd, SS_F_SEAL_GUEST), 0);
	EXPECT(m, ss_ftruncate(m, fd, (int64_t)pages * 4096), 0);
	int rec = ss_owner_create(m, SS_OWNER_RECORDER, "rec");
	EXPECT(m, ss_register_guest(m, fd, rec), 0);
	EXPECT(m, ss_fallocate(m, fd, 0, 0, (int64_t)pages * 4096), 0);
	uint64_t before = ss_memory_bytes(m);
	EXPECT(m, ss_invalidate(m, fd, 0, UINT64_MAX), pages);
	struct ss_event e = last_event(m);
	EXPECT(m, e.ncallbacks, pages);
	EXPECT(m, e.callbacks_kept, pages);
	TRUE(ss_memory_bytes(m) - before < 4096);  /* one run, not 15000 records */
	struct ss_callback c = callback(m, e.seq, pages - 1);
	EXPECT(m, c.fn, SS_CB_INVALIDATE);
	EXPECT(m, c.start, pages - 1);
	EXPECT(m, c.end, pages - 1);
	struct ss_callback page[4];
	EXPECT(m, ss_event_callbacks(m, e.seq, 7000, page, 4), 4);
	EXPECT(m, page[3].start, 7003);
	EXPECT(m, ss_event_callbacks(m, e.seq, pages, page, 4), 0);
	/* every third page punched: runs of two pages, 5000 runs, more than kept */
	for (int i = 0; i < pages; i += 3)
		EXPECT(m, ss_fallocate(m, fd, SS_FALLOC_FL_PUNCH_HOLE | SS_FALLOC_FL_KEEP_SIZE,
				       (int64_t)i * 4096, 4096), 0);
	EXPECT(m, ss_invalidate(m, fd, 0, UINT64_MAX), pages - pages / 3);
	e = last_event(m);
	EXPECT(m, e.ncallbacks, pages - pages / 3);
	EXPECT(m, e.callbacks_kept, 2 * SS_EV_KEEP);
	c = callback(m, e.seq, 2 * SS_EV_KEEP - 1);
	EXPECT(m, c.start, 3 * SS_EV_KEEP - 1);  /* 1 2 4 5 ...: the 8192nd is 12287 */
	EXPECT(m, ss_event_callbacks(m, e.seq, 2 * SS_EV_KEEP, page, 4), 0);
	/* the punch of what is left touches 5000 runs of frames: kept up to the cap */
	EXPECT(m, ss_fallocate(m, fd, SS_FALLOC_FL_PUNCH_HOLE | SS_FALLOC_FL_KEEP_SIZE, 0,
			       (int64_t)pages * 4096), 0);
	e = last_event(m);
	EXPECT(m, e.ncallbacks, pages - pages / 3);
	TRUE(e.touches_kept <= SS_EV_KEEP && e.touches_kept <= e.ntouches);
	TRUE(e.ntouches >= 5000);
	struct ss_machine *twin = ss_machine_clone(m);
	TRUE(twin != NULL);
	if (twin) {
		EXPECT(twin, ss_event_callbacks(twin, e.seq, 100, page, 1), 1);
		ss_machine_free(twin);
	}
	ss_machine_free(m);
}

/* runs never merge what differs: two owners alternate page by page, and huge
 * pages make one callback per 512 pages */
static void test_callback_runs_interleaved(void)
{
	cur_test = "callback_runs_interleaved";
	struct ss_machine *m = mk(SS_PROFILE_RFC_V2, SS_THP_ALWAYS, SS_VAR_MULTI_OWNER, 8192);
	int fd = ss_memfd_create(m, "vm", SS_MFD_ALLOW_SEALING);
	EXPECT(m, ss_add_seals(m, fd, SS_F_SEAL_GUEST), 0);
	EXPECT(m, ss_ftruncate(m, fd, 4096LL * 4096), 0);
	int a = ss_owner_create(m, SS_OWNER_RECORDER, "a");
	int b = ss_owner_create(m, SS_OWNER_RECORDER, "b");
	EXPECT(m, ss_register_guest(m, fd, a), 0);
	EXPECT(m, ss_register_guest(m, fd, b), 0);
	EXPECT(m, ss_fallocate(m, fd, 0, 0, 4096LL * 4096), 0);
	EXPECT(m, ss_invalidate(m, fd, 0, UINT64_MAX), 8);  /* 8 huge pages */
	struct ss_event e = last_event(m);
	EXPECT(m, e.ncallbacks, 16);
	EXPECT(m, e.callbacks_kept, 16);
	struct ss_callback cbs[16];
	EXPECT(m, ss_event_callbacks(m, e.seq, 0, cbs, 16), 16);
	for (int i = 0; i < 16; i++) {
		EXPECT(m, cbs[i].owner, i % 2 ? b : a);
		EXPECT(m, cbs[i].start, (uint64_t)(i / 2) * 512);
		EXPECT(m, cbs[i].end, (uint64_t)(i / 2) * 512 + 511);
	}
	EXPECT(m, ss_event_callbacks(m, e.seq, 13, cbs, 16), 3);
	EXPECT(m, cbs[0].start, 6 * 512);
	ss_machine_free(m);
}

/* the whole log is bounded too: past SS_LOG_KEEP runs, events count only */
static void test_log_keep(void)
{
	cur_test = "log_keep";
	const int pages = 6200;  /* every third punched: 2066 runs of two */
	struct ss_machine *m = mk(SS_PROFILE_RFC_V2, SS_THP_NEVER, 0, 8192);
	int fd = ss_memfd_create(m, "vm", SS_MFD_ALLOW_SEALING);
	EXPECT(m, ss_add_seals(m, fd, SS_F_SEAL_GUEST), 0);
	EXPECT(m, ss_ftruncate(m, fd, (int64_t)pages * 4096), 0);
	EXPECT(m, ss_register_guest(m, fd, ss_owner_create(m, SS_OWNER_RECORDER, "r")), 0);
	EXPECT(m, ss_fallocate(m, fd, 0, 0, (int64_t)pages * 4096), 0);
	for (int i = 0; i < pages; i += 3)
		ss_fallocate(m, fd, SS_FALLOC_FL_PUNCH_HOLE | SS_FALLOC_FL_KEEP_SIZE, (int64_t)i * 4096, 4096);
	int64_t runs = 0, n = 0;
	while (runs <= SS_LOG_KEEP) {
		n = ss_invalidate(m, fd, 0, UINT64_MAX);
		runs += (n + 1) / 2;
	}
	check(m, __LINE__);
	struct ss_event e = last_event(m);
	EXPECT(m, e.ncallbacks, n);
	TRUE(e.callbacks_kept < e.ncallbacks);
	TRUE(ss_memory_bytes(m) < 80u * 1024 * 1024);
	EXPECT(m, ss_invalidate(m, fd, 0, UINT64_MAX), n);
	e = last_event(m);
	EXPECT(m, e.callbacks_kept, 0);
	struct ss_callback c;
	EXPECT(m, ss_event_callbacks(m, e.seq, 0, &c, 1), 0);
	ss_machine_free(m);
}

/* found by the fuzzer (engine_c/fuzz): a memslot holds a use of its owner's
 * registration; unregistering that one left the slot faulting pages of a file
 * whose truncate no longer told the owner, so it mapped freed frames */
static void test_memslot_holds_its_registration(void)
{
	cur_test = "memslot holds its registration";
	struct ss_machine *m = mk(SS_PROFILE_RFC_V2, SS_THP_NEVER, SS_VAR_MULTI_OWNER, 1024);
	int fd = ss_memfd_create(m, "a", SS_MFD_ALLOW_SEALING);
	int k0 = ss_owner_create(m, SS_OWNER_KVM, "k0");
	uint64_t pfn = 0;
	int order = 0;
	EXPECT(m, ss_ftruncate(m, fd, 16 * 4096), 0);
	EXPECT(m, ss_memslot_create(m, k0, fd, 100, 0, 16), 0);
	EXPECT(m, ss_unregister_guest(m, fd, k0), -EBUSY);   /* the slot's use */
	EXPECT(m, ss_register_guest(m, fd, k0), 0);           /* one more use */
	EXPECT(m, ss_unregister_guest(m, fd, k0), 1);         /* that one may go */
	EXPECT(m, ss_unregister_guest(m, fd, k0), -EBUSY);
	EXPECT(m, ss_fault(m, k0, 105, &pfn, &order), 0);
	EXPECT(m, ss_ftruncate(m, fd, 0), 0);                  /* zaps the owner's map */
	struct ss_owner_info oi;
	EXPECT(m, ss_owner_info(m, k0, &oi), 0);
	EXPECT(m, oi.nmapped, 0);
	ss_machine_free(m);
}

/* found by the fuzzer: a truncate to within a page of 2^63 rounded the end of its
 * last page up past INT64_MAX (signed overflow) */
static void test_truncate_near_the_largest_size(void)
{
	cur_test = "truncate near 2^63";
	struct ss_machine *m = mk(SS_PROFILE_RFC_V2, SS_THP_NEVER, 0, 1024);
	int fd = ss_memfd_create(m, "a", 0);
	EXPECT(m, ss_ftruncate(m, fd, INT64_MAX - 10), 0);
	EXPECT(m, ss_ftruncate(m, fd, INT64_MAX - 10), 0);    /* the same size truncates */
	EXPECT(m, ss_ftruncate(m, fd, INT64_MAX), 0);
	EXPECT(m, ss_ftruncate(m, fd, INT64_MAX - 4096), 0);
	char b = 7;
	EXPECT(m, ss_pwrite(m, fd, &b, 1, INT64_MAX - 4097), 1);
	EXPECT(m, ss_ftruncate(m, fd, INT64_MAX - 4097), 0);   /* zeroes the page's tail */
	ss_machine_free(m);
}

int kvm_tests(int *nchecks);  /* test_kvm.c */
int bulk_tests(int *nchecks);  /* test_bulk.c */
int coco_tests(int *nchecks); /* test_coco.c */
int pin_tests(int *nchecks);  /* test_pin.c */
int pin_write_tests(int *nchecks);  /* test_pin_write.c */
int vm_close_tests(int *nchecks);  /* test_vm_close.c */
int hva_tests(int *nchecks);  /* test_kvm_hva.c */
int cow_map_tests(int *nchecks);  /* test_cow_map.c */
int sleep_tests(int *nchecks);  /* test_kvm_sleep.c */
int cow_tests(int *nchecks);  /* test_cow.c */
int face_tests(int *nchecks); /* test_face.c */

int main(void)
{
	int kvm_checks = 0, bulk_checks = 0;
	failures += cow_tests(&kvm_checks);
	checks += kvm_checks;
	if (getenv("SS_CTEST_ONLY")) {  /* the TSan build: the copy-on-write threads only */
		printf("%d checks, %d failures\n", checks, failures);
		return failures ? 1 : 0;
	}
	failures += bulk_tests(&bulk_checks);
	checks += bulk_checks;
	failures += kvm_tests(&kvm_checks);
	checks += kvm_checks;
	test_truncate_near_the_largest_size();
	test_memslot_holds_its_registration();
	failures += coco_tests(&kvm_checks);
	checks += kvm_checks;
	failures += pin_tests(&kvm_checks);
	checks += kvm_checks;
	failures += pin_write_tests(&kvm_checks);
	checks += kvm_checks;
	failures += vm_close_tests(&kvm_checks);
	checks += kvm_checks;
	failures += hva_tests(&kvm_checks);
	checks += kvm_checks;
	failures += cow_map_tests(&kvm_checks);
	checks += kvm_checks;
	failures += sleep_tests(&kvm_checks);
	checks += kvm_checks;
	failures += face_tests(&kvm_checks);
	checks += kvm_checks;
	test_last_close_waits_on_locked_page();
	test_migrate();
	test_split_keeps_sleeper_reference();
	test_config();
	test_seal_guest_lifecycle();
	test_seal_refusals();
	test_register();
	test_get_lock_and_wait();
	test_huge();
	test_enomem_undo();
	test_rw_and_clone();
	test_gmem();
	test_big_sparse();
	test_callback_runs();
	test_callback_runs_interleaved();
	test_log_keep();
	test_density();
	printf("%d checks, %d failures\n", checks, failures);
	return failures ? 1 : 0;
}
