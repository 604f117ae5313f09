/*
 * sealscope.h - the public face of the sealscope engine.
 *
 * A machine (struct ss_machine) simulates one small piece of a Linux kernel:
 * a physical frame allocator (buddy, orders 0..10), shmem-backed files
 * (memfd, and KVM guest_memfd in the guest-memfd profile) with their page
 * cache and seals, the F_SEAL_GUEST RFC v2 guest hooks (memfd_register_guest,
 * get_lock_pfn, put_unlock_pfn, the owner's invalidate_page_range and
 * fallocate callbacks), and simulated owners (a KVM with memslots and a
 * gfn -> pfn table, and a recorder).
 *
 * Conventions (the kernel's):
 *  - every operation returns 0 or a non-negative value on success and a
 *    negative errno on failure; a failing operation changes nothing but the
 *    event log (which records the failure);
 *  - syscall-like operations take bytes, guest operations take page indexes;
 *  - the machine is deterministic: the same calls give the same frames and
 *    the same events;
 *  - a machine is not thread safe: callers serialize.
 *
 * The engine never aborts on bad input: out-of-range ids are -EBADF /
 * -ENOENT / -EINVAL.  Operations that the kernel would put to sleep (a punch
 * meeting a page locked by get_lock_pfn, get_lock_pfn on a locked page)
 * return SS_PENDING and leave a waiter that completes when the lock drops.
 */
#ifndef SEALSCOPE_H
#define SEALSCOPE_H

#include <stdint.h>
#include <stddef.h>

#define SS_PAGE_SHIFT 12
#define SS_PAGE_SIZE 4096
#define SS_HPAGE_ORDER 9
#define SS_MAX_ORDER 10               /* orders 0..10 like MAX_ORDER-1 */
#define SS_MAX_FILESIZE 0x7fffffffffffffffLL   /* MAX_LFS_FILESIZE */
#define SS_MAX_PHYS_PAGES (1u << 26)  /* 256 GiB of 4 KiB frames */
#define SS_MAX_OWNERS 8               /* owner ids are 0..7 */
#define SS_MAX_REGS 8                 /* registrations per file (variants) */
#define SS_PENDING 1                  /* the operation is waiting on a lock */

/* profiles */
#define SS_PROFILE_RFC_V2 0
#define SS_PROFILE_GMEM 1

/* thp modes */
#define SS_THP_NEVER 0
#define SS_THP_ALWAYS 1
#define SS_THP_WITHIN_SIZE 2

/* design variants (bitmask; 0 is the RFC as posted) */
#define SS_VAR_MULTI_OWNER 0x1        /* a registration list, fan-out */
#define SS_VAR_MMAP_SHARED 0x2        /* mmap allowed where not encrypted */

/* file kinds */
#define SS_KIND_MEMFD 0
#define SS_KIND_GMEM 1

/* memfd_create flags (uapi values) */
#define SS_MFD_CLOEXEC 0x0001u
#define SS_MFD_ALLOW_SEALING 0x0002u
#define SS_MFD_HUGETLB 0x0004u
#define SS_MFD_NOEXEC_SEAL 0x0008u
#define SS_MFD_EXEC 0x0010u

/* guest_memfd flags (uapi values) */
#define SS_GMEM_FLAG_MMAP 0x1ull
#define SS_GMEM_FLAG_INIT_SHARED 0x2ull

/* seals (uapi values; 0x20 is F_SEAL_GUEST in rfc-v2, F_SEAL_EXEC later) */
#define SS_F_SEAL_SEAL 0x0001u
#define SS_F_SEAL_SHRINK 0x0002u
#define SS_F_SEAL_GROW 0x0004u
#define SS_F_SEAL_WRITE 0x0008u
#define SS_F_SEAL_FUTURE_WRITE 0x0010u
#define SS_F_SEAL_GUEST 0x0020u
#define SS_F_SEAL_EXEC 0x0020u

/* fallocate modes */
#define SS_FALLOC_FL_KEEP_SIZE 0x01
#define SS_FALLOC_FL_PUNCH_HOLE 0x02

/* mmap */
#define SS_PROT_READ 0x1
#define SS_PROT_WRITE 0x2
#define SS_MAP_SHARED 0x01
#define SS_MAP_PRIVATE 0x02

/* owner kinds */
#define SS_OWNER_KVM 0
#define SS_OWNER_RECORDER 1

/* page states in views */
#define SS_PG_HOLE 0
#define SS_PG_PRESENT 1

/* frame states */
#define SS_FRAME_FREE 0
#define SS_FRAME_CACHE 1      /* in a file's page cache */
#define SS_FRAME_ORPHAN 2     /* removed from the cache, still referenced */

/* operations, as recorded in events */
enum ss_op {
	SS_OP_MEMFD_CREATE = 1,
	SS_OP_GMEM_CREATE,
	SS_OP_FTRUNCATE,
	SS_OP_ADD_SEALS,
	SS_OP_GET_SEALS,
	SS_OP_FALLOCATE,
	SS_OP_PREAD,
	SS_OP_PWRITE,
	SS_OP_MMAP,
	SS_OP_MUNMAP,
	SS_OP_CLOSE,
	SS_OP_OWNER_CREATE,
	SS_OP_REGISTER_GUEST,
	SS_OP_UNREGISTER_GUEST,
	SS_OP_GET_LOCK_PFN,
	SS_OP_PUT_UNLOCK_PFN,
	SS_OP_INVALIDATE,
	SS_OP_MEMSLOT,
	SS_OP_FAULT,
	SS_OP_WAKE,           /* a waiting operation completed */
	SS_OP_MIGRATE,        /* page migration (compaction) of one page */
	SS_OP__COUNT
};

/* hazards of the RFC, marked on events */
#define SS_HAZ_NONE 0
#define SS_HAZ_NULL_PAGE 1        /* get_lock_pfn(alloc=false) on a hole */
#define SS_HAZ_ERRNO_AS_PFN 2     /* an errno returned through the pfn */
#define SS_HAZ_VM_BUG_ON_PAGE 3   /* put_unlock_pfn on an unlocked page */
#define SS_HAZ_UNSEALED_REGISTER 4 /* registered on a file without the seal */

/* callback kinds */
#define SS_CB_INVALIDATE 0        /* invalidate_page_range, end inclusive */
#define SS_CB_FALLOCATE 1         /* fallocate, end exclusive */
#define SS_CB_GMEM_INVALIDATE 2   /* kvm_gmem_invalidate_begin, end exclusive */

/* what an event did to pages and frames */
#define SS_T_ALLOC 0      /* pages added to the cache */
#define SS_T_FREE 1       /* pages removed and frames freed */
#define SS_T_ZERO 2       /* partial page zeroed */
#define SS_T_LOCK 3
#define SS_T_UNLOCK 4
#define SS_T_SPLIT 5      /* a huge page split */
#define SS_T_WAIT 6       /* an operation sleeps on this page's lock */
#define SS_T_ORPHAN 7     /* removed from the cache, frame still referenced */
#define SS_T_MAP 8        /* an owner mapped gfns to these frames */
#define SS_T_ZAP 9        /* an owner unmapped gfns */
#define SS_T_MIGRATE 10   /* a page moved to new frames (pfn: the new first) */

struct ss_config {
	int profile;             /* SS_PROFILE_* */
	int thp;                 /* SS_THP_* */
	uint32_t variants;       /* SS_VAR_* */
	uint64_t phys_pages;     /* 1024 .. SS_MAX_PHYS_PAGES, multiple of 1024 */
};

struct ss_callback {
	int fn;                  /* SS_CB_* */
	int owner;               /* owner id */
	uint64_t start, end;     /* as the callee received them */
};

struct ss_touch {
	int what;                /* SS_T_* */
	int fd;                  /* -1 for none */
	int owner;               /* -1 unless MAP / ZAP */
	uint64_t index;          /* first page index (gfn for MAP / ZAP) */
	uint64_t npages;
	uint64_t pfn;            /* first frame; frames are consecutive */
};

struct ss_event {
	uint64_t seq;            /* 1, 2, 3 ... */
	int op;                  /* enum ss_op */
	int fd;                  /* file the op names, -1 if none */
	int64_t args[4];         /* op-specific, see ss_op_args() */
	int64_t result;          /* >= 0 value, < 0 -errno, SS_PENDING */
	int hazard;              /* SS_HAZ_* */
	uint64_t raw;            /* what an RFC caller would have seen (pfn) */
	uint64_t wakes_seq;      /* SS_OP_WAKE: the event that was waiting */
	int wakes_op;            /* SS_OP_WAKE: the op that was waiting */
	int64_t out[2];          /* outputs: get_lock_pfn / fault: pfn, order */
	int pending;             /* the op went to sleep: a waiter names this seq */
	uint32_t ncallbacks;
	uint32_t ntouches;
};

/* a run of alike pages of a file: [start, end) */
struct ss_page_run {
	uint64_t start, end;
	int state;               /* SS_PG_* */
	int order;
	uint64_t pfn;            /* pfn of the page at start (pfns consecutive) */
	int locked, dirty;
	int refcount;
	uint32_t mapped_by;      /* bitmask of owner ids */
	int waiters;             /* operations sleeping on this page */
};

/* a run of alike frames: [start, end) */
struct ss_frame_run {
	uint64_t start, end;
	int state;               /* SS_FRAME_* */
	int order;
	int fd;                  /* -1 if free */
	uint64_t index;          /* file index of the frame at start */
};

struct ss_file_info {
	int fd;
	int kind;                /* SS_KIND_* */
	char name[256];
	int64_t size;
	uint32_t seals;
	uint64_t flags;          /* MFD_* or GUEST_MEMFD_FLAG_* */
	uint32_t owners;         /* bitmask of registered owner ids */
	uint64_t nr_pages;       /* resident 4 KiB pages */
	int mappings;            /* live mmaps */
	int writable_maps;       /* MAP_SHARED mappings (block F_SEAL_WRITE) */
	int pending;             /* operations of this file waiting on locks */
};

struct ss_owner_info {
	int id;
	int kind;
	char name[64];
	int nmemslots;
	uint64_t nmapped;        /* gfns mapped */
	uint64_t nzapped;        /* gfns zapped so far */
	uint64_t ncallbacks;     /* callbacks received */
};

struct ss_memslot {
	int slot;
	int fd;
	uint64_t gfn, index, npages;
};

/* a run of mapped gfns: [gfn, gfn + npages) -> [pfn, pfn + npages) */
struct ss_gfn_run {
	uint64_t gfn, npages, pfn;
	int order;               /* 0 or 9 (a huge mapping) */
};

struct ss_waiter_info {
	uint64_t seq;            /* event of the waiting operation */
	int op;
	int fd;
	uint64_t pfn;            /* the page it sleeps on */
};

struct ss_phys_info {
	uint64_t total, free, used;
	uint64_t free_by_order[SS_MAX_ORDER + 1];   /* blocks per order */
};

struct ss_machine;

/* lifecycle: NULL on bad config or out of memory */
struct ss_machine *ss_machine_new(const struct ss_config *cfg);
void ss_machine_free(struct ss_machine *m);
void ss_machine_config(const struct ss_machine *m, struct ss_config *out);
/* a deep copy (for snapshots); NULL when out of memory */
struct ss_machine *ss_machine_clone(const struct ss_machine *m);

/* files (syscall-like; bytes) */
int ss_memfd_create(struct ss_machine *m, const char *name, unsigned int flags);
int ss_gmem_create(struct ss_machine *m, int64_t size, uint64_t flags);
int ss_ftruncate(struct ss_machine *m, int fd, int64_t length);
int ss_add_seals(struct ss_machine *m, int fd, unsigned int seals);
int ss_get_seals(struct ss_machine *m, int fd);
/* returns 0, -errno, or SS_PENDING (a punch waiting on a locked page) */
int ss_fallocate(struct ss_machine *m, int fd, int mode, int64_t offset, int64_t len);
int64_t ss_pread(struct ss_machine *m, int fd, void *buf, int64_t count, int64_t offset);
int64_t ss_pwrite(struct ss_machine *m, int fd, const void *buf, int64_t count, int64_t offset);
/* returns a map id >= 1 */
int ss_mmap(struct ss_machine *m, int fd, int64_t offset, int64_t length, int prot, int flags);
/* munmap and close return 0, -errno, or SS_PENDING: the file's last reference
 * went and its final truncate sleeps on a page get_lock_pfn holds (the pages it
 * could lock are gone; the rest go at put_unlock_pfn) */
int ss_munmap(struct ss_machine *m, int map_id);
int ss_close(struct ss_machine *m, int fd);

/* owners and the guest interface (kernel-internal; page indexes) */
int ss_owner_create(struct ss_machine *m, int kind, const char *name);
/* owner < 0 means "no owner" (-EINVAL) */
int ss_register_guest(struct ss_machine *m, int fd, int owner);
/* variant multi_owner: drop one use; returns the uses left (0: unregistered,
 * its mappings of the file zapped) */
int ss_unregister_guest(struct ss_machine *m, int fd, int owner);
/* returns 0 with *pfn and *order, -errno, or SS_PENDING (waits; the wake
 * event carries the pfn) */
int ss_get_lock_pfn(struct ss_machine *m, int fd, uint64_t index, int alloc,
		    uint64_t *pfn, int *order);
int ss_put_unlock_pfn(struct ss_machine *m, uint64_t pfn);
/* migrate the page holding pfn to new frames (what compaction does); returns
 * the pfn the same 4 KiB page has now.  Refused: -ENOTSUPP for a page of an
 * F_SEAL_GUEST file (the RFC: guest pages are pinned for good), -EBUSY for a
 * guest_memfd page (unmovable), a locked or referenced page, or a page an
 * owner maps (no hook would tell it the page moved), -ENOENT for a frame
 * that holds no page, -ENOMEM with no free block of the page's order */
int64_t ss_migrate_page(struct ss_machine *m, uint64_t pfn);
/* runs the owners' invalidate_page_range over [start, end] page by page,
 * freeing nothing; returns the number of callbacks made */
int ss_invalidate(struct ss_machine *m, int fd, uint64_t start, uint64_t end);
/* returns the memslot id */
int ss_memslot_create(struct ss_machine *m, int owner, int fd, uint64_t gfn,
		      uint64_t index, uint64_t npages);
/* returns 0 with *pfn, *order (of the mapping), -errno, or SS_PENDING */
int ss_fault(struct ss_machine *m, int owner, uint64_t gfn, uint64_t *pfn, int *order);

/* reading state */
int ss_file_info(const struct ss_machine *m, int fd, struct ss_file_info *out);
/* fds of open files, ascending; returns how many (at most max) */
int ss_file_list(const struct ss_machine *m, int *fds, int max);
int ss_owner_info(const struct ss_machine *m, int owner, struct ss_owner_info *out);
int ss_owner_count(const struct ss_machine *m);
int ss_owner_memslots(const struct ss_machine *m, int owner, struct ss_memslot *out, int max);
/* gfn runs from gfn >= start; returns count (at most max) */
int ss_owner_gfn_runs(const struct ss_machine *m, int owner, uint64_t start,
		      struct ss_gfn_run *out, int max);
/* runs over [start, end) (a hole runs to end); returns the count (at
 * most max); *next is where the next call should start (== end when done) */
int ss_file_runs(const struct ss_machine *m, int fd, uint64_t start, uint64_t end,
		 struct ss_page_run *out, int max, uint64_t *next);
int ss_phys_runs(const struct ss_machine *m, uint64_t start, uint64_t end,
		 struct ss_frame_run *out, int max, uint64_t *next);
void ss_phys_info(const struct ss_machine *m, struct ss_phys_info *out);

/* density (density.c): [start, end) cut into cols columns (1..SS_MAX_COLS);
 * per column the present pages of fd, or used frames, and what they are.
 * Returns 0, -EINVAL (empty window, bad cols), -EBADF (not an open file). */
#define SS_MAX_COLS 4096
#define SS_DENS_HUGE 0x01             /* flags: some page of the column is ... */
#define SS_DENS_LOCKED 0x02
#define SS_DENS_DIRTY 0x04
#define SS_DENS_MAPPED 0x08
#define SS_DENS_WAIT 0x10
#define SS_DENS_NONE (-1)             /* fd: no frame in use in the column */
#define SS_DENS_MANY (-2)             /* frames of more than one file */
#define SS_DENS_NOFILE (-3)           /* frames of no open file (closed, orphans) */
int ss_file_density(const struct ss_machine *m, int fd, uint64_t start, uint64_t end, int cols,
		    uint64_t *present, uint8_t *flags);
int ss_phys_density(const struct ss_machine *m, uint64_t start, uint64_t end, int cols,
		    uint64_t *used, int *fd);
int ss_waiters(const struct ss_machine *m, struct ss_waiter_info *out, int max);

/* events: seq 1..ss_event_count() */
uint64_t ss_event_count(const struct ss_machine *m);
/* the live event counter, for callers that read it after every call */
const uint64_t *ss_event_counter(const struct ss_machine *m);
int ss_event_get(const struct ss_machine *m, uint64_t seq, struct ss_event *out);
int ss_event_callbacks(const struct ss_machine *m, uint64_t seq, uint32_t first,
		       struct ss_callback *out, int max);
int ss_event_touches(const struct ss_machine *m, uint64_t seq, uint32_t first,
		     struct ss_touch *out, int max);

/* invariant checker: 0 when consistent, else -EUCLEAN with a description */
int ss_check(const struct ss_machine *m, char *msg, size_t msglen);

/* bytes of memory the machine uses (descriptors, cache trees, data, log) */
uint64_t ss_memory_bytes(const struct ss_machine *m);
size_t ss_frame_size(void);

#endif /* SEALSCOPE_H */
