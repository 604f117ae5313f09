"""Build script for the private cffi module ``app.engine._sealscope``.

cffi "out-of-line API mode": the cdef below is written by hand from
``engine_c/sealscope.h`` (constants as ``#define X ...`` and structs ending
in ``...;`` so the C compiler supplies values and layouts), and the engine's
C sources are compiled into the extension with strict flags.  setuptools
runs this through ``setup.py``'s ``cffi_modules``; ``python
app/engine/_build.py`` builds the module in place for a quick try.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from cffi import FFI

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "engine_c"
CFLAGS = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-O2"]

CDEF = """
#define SS_PAGE_SHIFT ...
#define SS_PAGE_SIZE ...
#define SS_HPAGE_ORDER ...
#define SS_MAX_ORDER ...
#define SS_MAX_FILESIZE ...
#define SS_MAX_PHYS_PAGES ...
#define SS_MAX_OWNERS ...
#define SS_MAX_REGS ...
#define SS_PENDING ...
#define SS_EV_KEEP ...
#define SS_LOG_KEEP ...

#define SS_PROFILE_RFC_V2 ...
#define SS_PROFILE_GMEM ...
#define SS_THP_NEVER ...
#define SS_THP_ALWAYS ...
#define SS_THP_WITHIN_SIZE ...
#define SS_VAR_MULTI_OWNER ...
#define SS_VAR_MMAP_SHARED ...
#define SS_VAR_INPLACE ...
#define SS_VAR_NO_DIRECT_MAP ...
#define SS_VAR_HUGETLB_1G ...
#define SS_KIND_MEMFD ...
#define SS_KIND_GMEM ...

#define SS_MFD_CLOEXEC ...
#define SS_MFD_ALLOW_SEALING ...
#define SS_MFD_HUGETLB ...
#define SS_MFD_NOEXEC_SEAL ...
#define SS_MFD_EXEC ...
#define SS_GMEM_FLAG_MMAP ...
#define SS_GMEM_FLAG_INIT_SHARED ...

#define SS_F_SEAL_SEAL ...
#define SS_F_SEAL_SHRINK ...
#define SS_F_SEAL_GROW ...
#define SS_F_SEAL_WRITE ...
#define SS_F_SEAL_FUTURE_WRITE ...
#define SS_F_SEAL_GUEST ...
#define SS_F_SEAL_EXEC ...

#define SS_FALLOC_FL_KEEP_SIZE ...
#define SS_FALLOC_FL_PUNCH_HOLE ...
#define SS_PROT_READ ...
#define SS_PROT_WRITE ...
#define SS_MAP_SHARED ...
#define SS_MAP_PRIVATE ...

#define SS_OWNER_KVM ...
#define SS_OWNER_RECORDER ...
#define SS_PG_HOLE ...
#define SS_PG_PRESENT ...
#define SS_FRAME_FREE ...
#define SS_FRAME_CACHE ...
#define SS_FRAME_ORPHAN ...
#define SS_FRAME_HWPOISON ...
#define SS_FRAME_COW ...

enum ss_op {
    SS_OP_MEMFD_CREATE, SS_OP_GMEM_CREATE, SS_OP_FTRUNCATE, SS_OP_ADD_SEALS,
    SS_OP_GET_SEALS, SS_OP_FALLOCATE, SS_OP_PREAD, SS_OP_PWRITE, SS_OP_MMAP,
    SS_OP_MUNMAP, SS_OP_CLOSE, SS_OP_OWNER_CREATE, SS_OP_REGISTER_GUEST,
    SS_OP_UNREGISTER_GUEST, SS_OP_GET_LOCK_PFN, SS_OP_PUT_UNLOCK_PFN,
    SS_OP_INVALIDATE, SS_OP_MEMSLOT, SS_OP_FAULT, SS_OP_WAKE, SS_OP_MIGRATE,
    SS_OP_VM_CREATE, SS_OP_VM_GMEM, SS_OP_SET_REGION, SS_OP_SET_ATTRS, SS_OP_VCPU_CREATE,
    SS_OP_VCPU_ACCESS, SS_OP_MAP_ACCESS, SS_OP_PRE_FAULT, SS_OP_LAUNCH_UPDATE,
    SS_OP_LAUNCH_FINISH, SS_OP_MEMORY_FAILURE, SS_OP_GMEM_SET_ATTRS, SS_OP_MAP_PIN,
    SS_OP_MAP_UNPIN, SS_OP_VM_CLOSE, SS_OP__COUNT,
    ...
};

#define SS_HAZ_NONE ...
#define SS_HAZ_NULL_PAGE ...
#define SS_HAZ_ERRNO_AS_PFN ...
#define SS_HAZ_VM_BUG_ON_PAGE ...
#define SS_HAZ_UNSEALED_REGISTER ...

#define SS_CB_INVALIDATE ...
#define SS_CB_FALLOCATE ...
#define SS_CB_GMEM_INVALIDATE ...

#define SS_T_ALLOC ...
#define SS_T_FREE ...
#define SS_T_ZERO ...
#define SS_T_LOCK ...
#define SS_T_UNLOCK ...
#define SS_T_SPLIT ...
#define SS_T_WAIT ...
#define SS_T_ORPHAN ...
#define SS_T_MAP ...
#define SS_T_ZAP ...
#define SS_T_MIGRATE ...

struct ss_config {
    int profile;
    int thp;
    uint32_t variants;
    uint64_t phys_pages;
    ...;
};

struct ss_callback {
    int fn;
    int owner;
    uint64_t start, end;
    ...;
};

struct ss_touch {
    int what;
    int fd;
    int owner;
    uint64_t index;
    uint64_t npages;
    uint64_t pfn;
    ...;
};

struct ss_event {
    uint64_t seq;
    int op;
    int fd;
    int64_t args[4];
    int64_t result;
    int hazard;
    uint64_t raw;
    uint64_t wakes_seq;
    int wakes_op;
    int64_t out[2];
    int pending;
    uint32_t ncallbacks;
    uint32_t ntouches;
    uint32_t callbacks_kept;
    uint32_t touches_kept;
    ...;
};

struct ss_page_run {
    uint64_t start, end;
    int state;
    int order;
    uint64_t pfn;
    int locked, dirty;
    int refcount;
    uint32_t mapped_by;
    int waiters;
    int life;
    ...;
};

struct ss_frame_run {
    uint64_t start, end;
    int state;
    int order;
    int fd;
    uint64_t index;
    int no_direct_map;
    int map_id;
    ...;
};

struct ss_file_info {
    int fd;
    int kind;
    char name[...];
    int64_t size;
    uint32_t seals;
    uint64_t flags;
    uint32_t owners;
    uint64_t nr_pages;
    int mappings;
    int writable_maps;
    int pending;
    ...;
};

struct ss_owner_info {
    int id;
    int kind;
    char name[...];
    int nmemslots;
    uint64_t nmapped;
    uint64_t nzapped;
    uint64_t ncallbacks;
    ...;
};

struct ss_memslot {
    int slot;
    int fd;
    uint64_t gfn, index, npages;
    ...;
};

struct ss_gfn_run {
    uint64_t gfn, npages, pfn;
    int order;
    ...;
};

struct ss_waiter_info {
    uint64_t seq;
    int op;
    int fd;
    uint64_t pfn;
    ...;
};

struct ss_phys_info {
    uint64_t total, free, used;
    uint64_t free_by_order[...];
    ...;
};

struct ss_machine;

struct ss_machine *ss_machine_new(const struct ss_config *cfg);
void ss_machine_free(struct ss_machine *m);
void ss_machine_config(const struct ss_machine *m, struct ss_config *out);
struct ss_machine *ss_machine_clone(const struct ss_machine *m);
struct ss_machine *ss_machine_clone_full(const struct ss_machine *m);

int ss_memfd_create(struct ss_machine *m, const char *name, unsigned int flags);
int ss_gmem_create(struct ss_machine *m, int64_t size, uint64_t flags);
int ss_ftruncate(struct ss_machine *m, int fd, int64_t length);
int ss_add_seals(struct ss_machine *m, int fd, unsigned int seals);
int ss_get_seals(struct ss_machine *m, int fd);
int ss_fallocate(struct ss_machine *m, int fd, int mode, int64_t offset, int64_t len);
int64_t ss_pread(struct ss_machine *m, int fd, void *buf, int64_t count, int64_t offset);
int64_t ss_pwrite(struct ss_machine *m, int fd, const void *buf, int64_t count,
                  int64_t offset);
int ss_mmap(struct ss_machine *m, int fd, int64_t offset, int64_t length, int prot,
            int flags);
int ss_munmap(struct ss_machine *m, int map_id);
int ss_close(struct ss_machine *m, int fd);

int ss_owner_create(struct ss_machine *m, int kind, const char *name);
int ss_register_guest(struct ss_machine *m, int fd, int owner);
int ss_unregister_guest(struct ss_machine *m, int fd, int owner);
int ss_get_lock_pfn(struct ss_machine *m, int fd, uint64_t index, int alloc,
                    uint64_t *pfn, int *order);
int ss_put_unlock_pfn(struct ss_machine *m, uint64_t pfn);
int64_t ss_migrate_page(struct ss_machine *m, uint64_t pfn);
int ss_invalidate(struct ss_machine *m, int fd, uint64_t start, uint64_t end);
int ss_memslot_create(struct ss_machine *m, int owner, int fd, uint64_t gfn,
                      uint64_t index, uint64_t npages);
int ss_fault(struct ss_machine *m, int owner, uint64_t gfn, uint64_t *pfn, int *order);

int ss_file_info(const struct ss_machine *m, int fd, struct ss_file_info *out);
int ss_file_list(const struct ss_machine *m, int *fds, int max);
int ss_owner_info(const struct ss_machine *m, int owner, struct ss_owner_info *out);
int ss_owner_count(const struct ss_machine *m);
int ss_owner_memslots(const struct ss_machine *m, int owner, struct ss_memslot *out,
                      int max);
int ss_owner_gfn_runs(const struct ss_machine *m, int owner, uint64_t start,
                      struct ss_gfn_run *out, int max);
int ss_file_runs(const struct ss_machine *m, int fd, uint64_t start, uint64_t end,
                 struct ss_page_run *out, int max, uint64_t *next);
int ss_phys_runs(const struct ss_machine *m, uint64_t start, uint64_t end,
                 struct ss_frame_run *out, int max, uint64_t *next);
void ss_phys_info(const struct ss_machine *m, struct ss_phys_info *out);
#define SS_MAX_COLS ...
#define SS_DENS_HUGE ...
#define SS_DENS_LOCKED ...
#define SS_DENS_DIRTY ...
#define SS_DENS_MAPPED ...
#define SS_DENS_WAIT ...
#define SS_DENS_NONE ...
#define SS_DENS_MANY ...
#define SS_DENS_NOFILE ...
int ss_file_density(const struct ss_machine *m, int fd, uint64_t start, uint64_t end,
                    int cols, uint64_t *present, uint8_t *flags);
int ss_phys_density(const struct ss_machine *m, uint64_t start, uint64_t end, int cols,
                    uint64_t *used, int *fd);
int ss_waiters(const struct ss_machine *m, struct ss_waiter_info *out, int max);

uint64_t ss_event_count(const struct ss_machine *m);
const uint64_t *ss_event_counter(const struct ss_machine *m);
int ss_event_get(const struct ss_machine *m, uint64_t seq, struct ss_event *out);
int ss_event_callbacks(const struct ss_machine *m, uint64_t seq, uint32_t first,
                       struct ss_callback *out, int max);
int ss_event_touches(const struct ss_machine *m, uint64_t seq, uint32_t first,
                     struct ss_touch *out, int max);

int ss_check(const struct ss_machine *m, char *msg, size_t msglen);
uint64_t ss_memory_bytes(const struct ss_machine *m);
uint64_t ss_memory_owned(const struct ss_machine *m, const struct ss_machine *beside);
size_t ss_frame_size(void);
"""


def _rel(path: Path) -> str:
    """A path relative to the working directory when possible.

    setuptools places object files by the source path; relative paths keep
    them inside build/ instead of mirroring an absolute path.
    """
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive (not on Linux, but harmless)
        return str(path)


def _cdef(name: str, attr: str) -> str:
    """The declarations of a sibling script (``_build_kvm.py``, ``_build_face.py``), loaded
    by path: the package cannot be imported before the module this script builds exists."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return str(getattr(mod, attr))


def make_builder() -> FFI:
    """The FFI builder, with source paths relative to the working directory."""
    builder = FFI()
    builder.cdef(CDEF + _cdef("_build_kvm", "CDEF_KVM") + _cdef("_build_face", "CDEF_FACE"))
    builder.set_source(
        "app.engine._sealscope",
        '#include "sealscope.h"\n#include "face.h"\n',
        sources=[_rel(p) for p in sorted(ENGINE.glob("*.c"))],
        include_dirs=[_rel(ENGINE)],
        extra_compile_args=CFLAGS,
        depends=[_rel(p) for p in sorted(ENGINE.glob("*.h"))],
    )
    return builder


ffibuilder = make_builder()

if __name__ == "__main__":
    os.chdir(ROOT)
    make_builder().compile(tmpdir=".", verbose=True)
