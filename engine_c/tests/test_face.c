/*
 * test_face.c - C unit tests of the face's mutex and hot wrappers (face.c): who holds
 * the mutex after each kind of return, which buffer an answer lands in, and threads
 * hammering one machine through the wrappers; ss_check after every step.
 */
#define _POSIX_C_SOURCE 200809L
#include "../sealscope.h"
#include "../face.h"
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "harness.h"

#define PG 4096ull
#define PUNCH (SS_FALLOC_FL_PUNCH_HOLE | SS_FALLOC_FL_KEEP_SIZE)
#define THREADS 3
#define ROUNDS 20000

static struct ss_machine *mk(void)
{
	struct ss_config c = { .profile = SS_PROFILE_RFC_V2, .thp = SS_THP_NEVER,
			       .phys_pages = 4096 };
	struct ss_machine *m = ss_machine_new(&c);
	if (!m) {
		fprintf(stderr, "machine_new failed\n");
		exit(2);
	}
	return m;
}

static int memfd(struct ss_machine *m, int pages)
{
	int fd = ss_memfd_create(m, "face", SS_MFD_ALLOW_SEALING);
	if (fd < 0 || ss_ftruncate(m, fd, (int64_t)(pages * PG))) {
		fprintf(stderr, "memfd failed\n");
		exit(2);
	}
	return fd;
}

static void test_who_holds_the_mutex(void)
{
	cur_test = "face: who holds the mutex";
	struct ss_machine *m = mk();
	struct ss_face *f = ss_face_new(m);
	TRUE(f != NULL);
	int fd = memfd(m, 4);
	const uint64_t *own = ss_face_answer(f, 0);
	EXPECT(m, ss_face_get_lock_pfn(f, fd, 1, 7), 0);   /* 7: any alloc but 0 is 1 */
	EXPECT(m, ss_face_locked(f), 0);
	struct ss_event e;
	EXPECT(m, ss_event_get(m, own[3], &e), 0);
	TRUE(e.op == SS_OP_GET_LOCK_PFN && e.args[1] == 1 && (uint64_t)e.out[0] == own[0]);
	TRUE(own[1] == 0 && own[2] == 0 && own[3] == ss_event_count(m));
	EXPECT(m, ss_face_fallocate(f, fd, PUNCH, PG, PG), SS_PENDING);   /* waits: unlocked */
	EXPECT(m, ss_face_locked(f), 0);
	EXPECT(m, ss_face_put_unlock_pfn(f, own[0]), 0);
	EXPECT(m, ss_face_locked(f), 0);
	/* failures return locked: the caller reads them, then unlocks */
	EXPECT(m, ss_face_get_lock_pfn(f, fd + 9, 0, 1), -EBADF);
	EXPECT(m, ss_face_locked(f), 1);
	ss_face_unlock(f);
	EXPECT(m, ss_face_put_unlock_pfn(f, 1u << 30), -EINVAL);
	EXPECT(m, ss_face_locked(f), 1);
	ss_face_unlock(f);
	EXPECT(m, ss_face_fallocate(f, fd, 0, -1, PG), -EINVAL);
	EXPECT(m, ss_face_locked(f), 1);
	ss_face_unlock(f);
	EXPECT(m, ss_face_vm_set_memory_attributes(f, 5, 0, PG, 0, 0) < 0, 1);
	EXPECT(m, ss_face_locked(f), 1);
	ss_face_unlock(f);
	EXPECT(m, ss_face_event_count(f), ss_event_count(m));
	ss_face_lock(f);
	EXPECT(m, ss_face_locked(f), 1);
	ss_face_unlock(f);
	ss_face_free(f);
	ss_machine_free(m);
}

struct worker {
	struct ss_face *f;
	struct ss_machine *m;
	int fd;
	int bad;       /* answers that were not this thread's page */
	int events;    /* events its calls made */
};

static void *work(void *arg)
{
	struct worker *w = arg;
	for (int i = 0; i < ROUNDS; i++) {
		uint64_t index = (uint64_t)(i % 8);
		int rc = ss_face_get_lock_pfn(w->f, w->fd, index, 1);
		w->events += 2;
		if (rc != 0 && rc != SS_FACE_HELD) {   /* a failure: locked */
			w->bad++;
			ss_face_unlock(w->f);
			continue;
		}
		const uint64_t *out = ss_face_answer(w->f, rc == SS_FACE_HELD);
		uint64_t pfn = out[0];   /* the owner's: read unlocked, only it writes them */
		if (rc == 0)
			ss_face_lock(w->f);   /* to read the frame below */
		struct ss_frame_run r;
		uint64_t next;
		if (ss_phys_runs(w->m, pfn, pfn + 1, &r, 1, &next) != 1 || r.fd != w->fd ||
		    r.index != index)
			w->bad++;   /* another thread's page */
		ss_face_unlock(w->f);
		if (ss_face_put_unlock_pfn(w->f, pfn)) {
			w->bad++;
			ss_face_unlock(w->f);
		}
	}
	return NULL;
}

static void test_threads_through_the_wrappers(void)
{
	cur_test = "face: threads through the wrappers";
	struct ss_machine *m = mk();
	struct ss_face *f = ss_face_new(m);
	TRUE(f != NULL);
	struct worker w[THREADS];
	pthread_t t[THREADS];
	uint64_t before = ss_event_count(m);
	for (int k = 0; k < THREADS; k++) {
		w[k] = (struct worker){ .f = f, .m = m, .fd = memfd(m, 8) };
		before = ss_event_count(m);
	}
	for (int k = 0; k < THREADS; k++)
		TRUE(pthread_create(&t[k], NULL, work, &w[k]) == 0);
	int events = 0;
	for (int k = 0; k < THREADS; k++) {
		TRUE(pthread_join(t[k], NULL) == 0);
		TRUE(w[k].bad == 0);
		events += w[k].events;
	}
	EXPECT(m, ss_event_count(m), before + (uint64_t)events);
	EXPECT(m, ss_face_locked(f), 0);
	ss_face_free(f);
	ss_machine_free(m);
}

int face_tests(int *nchecks);
int face_tests(int *nchecks)
{
	test_who_holds_the_mutex();
	test_threads_through_the_wrappers();
	*nchecks = checks;
	return failures;
}
