"""cffi declarations of ``engine_c/face.h`` (used by ``_build.py``): a machine's mutex
for the Python face and the hot calls that take it in C (app/engine/_guard.py)."""

CDEF_FACE = """
struct ss_face;
struct ss_face *ss_face_new(struct ss_machine *m);
void ss_face_free(struct ss_face *f);
void ss_face_lock(struct ss_face *f);
void ss_face_unlock(struct ss_face *f);
int ss_face_locked(struct ss_face *f);
uint64_t ss_face_event_count(struct ss_face *f);
#define SS_FACE_HELD ...
uint64_t *ss_face_answer(struct ss_face *f, int other);
int ss_face_get_lock_pfn(struct ss_face *f, int fd, uint64_t index, int alloc);
int ss_face_put_unlock_pfn(struct ss_face *f, uint64_t pfn);
int ss_face_fallocate(struct ss_face *f, int fd, int mode, int64_t offset, int64_t len);
int ss_face_vm_set_memory_attributes(struct ss_face *f, int vm, uint64_t address,
                                     uint64_t size, uint64_t attributes, uint64_t flags);
"""
