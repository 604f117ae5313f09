/*
 * face.h - a machine's mutex for the Python face (app/engine), which calls one
 * machine from several threads: the engine itself is not thread safe (callers
 * serialize, sealscope.h), and cffi releases the GIL on every call.
 *
 * A struct ss_face pairs a machine with a mutex (it does not own the machine).
 * Every call into the machine holds the mutex: ss_face_lock / ss_face_unlock
 * around a caller's sequence of calls, or one of the wrappers below, which
 * take it themselves, so the hot calls cost the caller one C call.
 *
 * A wrapper that succeeds returns with the mutex released; one that fails
 * (< 0, and SS_PENDING for get_lock_pfn) returns with it HELD, so the caller
 * reads the failure's event and the state the call left before anything else
 * can enter, then calls ss_face_unlock.
 */
#ifndef SEALSCOPE_FACE_H
#define SEALSCOPE_FACE_H

#include "sealscope.h"

struct ss_face;

struct ss_face *ss_face_new(struct ss_machine *m);   /* NULL: no memory */
void ss_face_free(struct ss_face *f);
void ss_face_lock(struct ss_face *f);
void ss_face_unlock(struct ss_face *f);
int ss_face_locked(struct ss_face *f);     /* 1: held by some thread (a diagnostic) */
uint64_t ss_face_event_count(struct ss_face *f);

/*
 * get_lock_pfn's answer, {pfn, order, 0, seq of the call's event}, is left in one of
 * two buffers of the face (ss_face_answer): the owner's (the first thread that called)
 * and the others'.  The owner's call returns 0, unlocked: only it writes its buffer,
 * so it reads it after the mutex is dropped.  Another thread's returns SS_FACE_HELD,
 * locked: it reads the others' buffer, then calls ss_face_unlock.  A failure or
 * SS_PENDING returns locked.  Any alloc but 0 is 1 (the engine records 0 or 1).
 */
#define SS_FACE_HELD 2
uint64_t *ss_face_answer(struct ss_face *f, int other);   /* 4 uint64_t */
int ss_face_get_lock_pfn(struct ss_face *f, int fd, uint64_t index, int alloc);
/* 0: unlocked; -errno: locked */
int ss_face_put_unlock_pfn(struct ss_face *f, uint64_t pfn);
/* 0 or SS_PENDING: unlocked; -errno: locked */
int ss_face_fallocate(struct ss_face *f, int fd, int mode, int64_t offset, int64_t len);
/* >= 0: unlocked; -errno: locked */
int ss_face_vm_set_memory_attributes(struct ss_face *f, int vm, uint64_t address,
				     uint64_t size, uint64_t attributes, uint64_t flags);

#endif /* SEALSCOPE_FACE_H */
