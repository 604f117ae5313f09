/*
 * face.c - a machine's mutex and the hot calls that take it (face.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "face.h"
#include <pthread.h>
#include <stdlib.h>

struct ss_face {
	struct ss_machine *m;
	pthread_mutex_t mu;
	pthread_t owner;        /* the first thread to lock a page through the face */
	int owned;
	uint64_t own[4];        /* its answers: only it writes them, it reads them unlocked */
	uint64_t other[4];      /* any other thread's: read under the mutex */
};

struct ss_face *ss_face_new(struct ss_machine *m)
{
	struct ss_face *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	if (pthread_mutex_init(&f->mu, NULL))
		goto fail;
	f->m = m;
	return f;
fail:
	free(f);
	return NULL;
}

void ss_face_free(struct ss_face *f)
{
	if (!f)
		return;
	pthread_mutex_destroy(&f->mu);
	free(f);
}

void ss_face_lock(struct ss_face *f)
{
	pthread_mutex_lock(&f->mu);
}

void ss_face_unlock(struct ss_face *f)
{
	pthread_mutex_unlock(&f->mu);
}

int ss_face_locked(struct ss_face *f)
{
	if (pthread_mutex_trylock(&f->mu))
		return 1;
	pthread_mutex_unlock(&f->mu);
	return 0;
}

uint64_t ss_face_event_count(struct ss_face *f)
{
	pthread_mutex_lock(&f->mu);
	uint64_t n = ss_event_count(f->m);
	pthread_mutex_unlock(&f->mu);
	return n;
}

uint64_t *ss_face_answer(struct ss_face *f, int other)
{
	return other ? f->other : f->own;
}

int ss_face_get_lock_pfn(struct ss_face *f, int fd, uint64_t index, int alloc)
{
	uint64_t pfn = 0;
	int order = 0;
	pthread_mutex_lock(&f->mu);
	int rc = ss_get_lock_pfn(f->m, fd, index, alloc != 0, &pfn, &order);
	if (rc)
		return rc;
	if (!f->owned) {
		f->owner = pthread_self();
		f->owned = 1;
	}
	int mine = pthread_equal(f->owner, pthread_self());
	uint64_t *out = mine ? f->own : f->other;
	out[0] = pfn;
	out[1] = (uint64_t)order;
	out[2] = 0;
	out[3] = ss_event_count(f->m);
	if (!mine)
		return SS_FACE_HELD;
	pthread_mutex_unlock(&f->mu);
	return 0;
}

int ss_face_put_unlock_pfn(struct ss_face *f, uint64_t pfn)
{
	pthread_mutex_lock(&f->mu);
	int rc = ss_put_unlock_pfn(f->m, pfn);
	if (rc >= 0)
		pthread_mutex_unlock(&f->mu);
	return rc;
}

int ss_face_fallocate(struct ss_face *f, int fd, int mode, int64_t offset, int64_t len)
{
	pthread_mutex_lock(&f->mu);
	int rc = ss_fallocate(f->m, fd, mode, offset, len);
	if (rc >= 0)
		pthread_mutex_unlock(&f->mu);
	return rc;
}

int ss_face_vm_set_memory_attributes(struct ss_face *f, int vm, uint64_t address,
				     uint64_t size, uint64_t attributes, uint64_t flags)
{
	pthread_mutex_lock(&f->mu);
	int rc = ss_vm_set_memory_attributes(f->m, vm, address, size, attributes, flags);
	if (rc >= 0)
		pthread_mutex_unlock(&f->mu);
	return rc;
}
