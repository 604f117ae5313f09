/*
 * test_kvm_sleep.c - rfc-v2: a vCPU's fault meets a page get_lock_pfn holds
 * (shmem_getpage's lock_page): the access sleeps (SS_PENDING, a W_VCPU waiter
 * holding the page) and the holder's put_unlock_pfn wakes it; the wake retries
 * the whole access.  ss_check after every step.
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

static int run(struct ss_machine *m, int vm, uint64_t gpa, int write, int priv, uint8_t value,
	       struct ss_access_result *out)
{
	struct ss_access a = { .gpa = gpa, .write = write, .private_ = priv, .value = value };
	int rc = ss_vcpu_access(m, vm, 0, &a, out);
	check(m, __LINE__);
	return rc;
}

static void test_vcpu_sleeps_on_a_locked_page(void)
{
	cur_test = "vcpu_sleeps_on_a_locked_page";
	struct ss_config c = { .profile = SS_PROFILE_RFC_V2, .thp = SS_THP_NEVER, .phys_pages = 4096 };
	struct ss_machine *m = ss_machine_new(&c);
	if (!m)
		exit(2);
	int vm = ss_vm_create(m, SS_VM_DEFAULT, "vm");
	EXPECT(m, ss_vcpu_create(m, vm), 0);
	int sh = ss_memfd_create(m, "shared", SS_MFD_ALLOW_SEALING);
	int pr = ss_memfd_create(m, "private", SS_MFD_ALLOW_SEALING);
	EXPECT(m, ss_add_seals(m, pr, SS_F_SEAL_GUEST), 0);
	EXPECT(m, ss_ftruncate(m, sh, (int64_t)MiB), 0);
	EXPECT(m, ss_ftruncate(m, pr, (int64_t)MiB), 0);
	struct ss_region r = { .slot = 0, .flags = SS_MEM_FD, .guest_phys_addr = 0,
			       .memory_size = MiB, .fd = sh, .private_fd = pr };
	EXPECT(m, ss_vm_set_memory_region(m, vm, &r), 0);
	uint64_t pfn;
	int order;
	EXPECT(m, ss_get_lock_pfn(m, sh, 2, 1, &pfn, &order), 0);   /* another holder */
	struct ss_access_result out;
	EXPECT(m, run(m, vm, 2 * PG + 7, 1, 0, 9, &out), SS_PENDING);
	uint64_t slept = ss_event_count(m);
	struct ss_event ev;
	ss_event_get(m, slept, &ev);
	EXPECT(m, ev.pending, 1);
	struct ss_gfn_run gr[4];
	EXPECT(m, ss_owner_gfn_runs(m, vm, 0, gr, 4), 0);   /* nothing mapped yet */
	/* the holder unlocks: the vCPU's access goes on in a wake event */
	EXPECT(m, ss_put_unlock_pfn(m, pfn), 0);
	uint64_t last = ss_event_count(m);
	TRUE(last == slept + 2);
	ss_event_get(m, last, &ev);
	EXPECT(m, ev.op, SS_OP_WAKE);
	EXPECT(m, ev.wakes_seq, slept);
	EXPECT(m, ev.wakes_op, SS_OP_VCPU_ACCESS);
	EXPECT(m, ev.result, 0);
	EXPECT(m, ev.out[0], (int64_t)pfn);
	EXPECT(m, ss_owner_gfn_runs(m, vm, 0, gr, 4), 1);   /* mapped by the woken fault */
	uint8_t b = 0;
	EXPECT(m, ss_pread(m, sh, &b, 1, (int64_t)(2 * PG + 7)), 1);
	EXPECT(m, b, 9);                                    /* its write landed */
	EXPECT(m, run(m, vm, 2 * PG + 7, 0, 0, 0, &out), 0);
	EXPECT(m, out.value, 9);
	/* asleep again: the page is private by then (fallocate private_fd) and the
	 * retried shared access exits MAP_SHARED at the wake */
	EXPECT(m, ss_get_lock_pfn(m, sh, 3, 1, &pfn, &order), 0);
	EXPECT(m, run(m, vm, 3 * PG, 0, 0, 0, &out), SS_PENDING);
	EXPECT(m, ss_fallocate(m, pr, 0, (int64_t)(3 * PG), (int64_t)PG), 0);
	EXPECT(m, ss_put_unlock_pfn(m, pfn), 0);
	ss_event_get(m, ss_event_count(m), &ev);
	EXPECT(m, ev.op, SS_OP_WAKE);
	EXPECT(m, ev.result, 0);
	struct ss_touch t[8];
	int n = ss_event_touches(m, ss_event_count(m), 0, t, 8);
	bool exited = false;
	for (int i = 0; i < n; i++)
		exited |= t[i].what == SS_T_EXIT && t[i].pfn == SS_EXIT_MEMORY_ERROR;
	TRUE(exited);
	/* a clone carries the sleeper */
	EXPECT(m, ss_get_lock_pfn(m, sh, 4, 1, &pfn, &order), 0);
	EXPECT(m, run(m, vm, 4 * PG, 1, 0, 4, &out), SS_PENDING);
	struct ss_machine *twin = ss_machine_clone(m);
	TRUE(twin != NULL);
	EXPECT(twin, ss_put_unlock_pfn(twin, pfn), 0);
	EXPECT(twin, ss_pread(twin, sh, &b, 1, (int64_t)(4 * PG)), 1);
	EXPECT(twin, b, 4);
	EXPECT(m, ss_pread(m, sh, &b, 1, (int64_t)(4 * PG)), 1);
	EXPECT(m, b, 0);                                     /* the original still sleeps */
	ss_machine_free(twin);
	EXPECT(m, ss_put_unlock_pfn(m, pfn), 0);
	ss_machine_free(m);
}

int sleep_tests(int *nchecks);
int sleep_tests(int *nchecks)
{
	test_vcpu_sleeps_on_a_locked_page();
	*nchecks = checks;
	return failures;
}
