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
#define SS_EV_KEEP 4096               /* callback runs and touch records one event keeps */
#define SS_LOG_KEEP (1u << 20)        /* ... and a machine's log in all (48 + 40 MiB at most) */

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
#define SS_VAR_INPLACE 0x4            /* proposal: in-place conversion (v8, June 2026) */
#define SS_VAR_NO_DIRECT_MAP 0x8      /* proposal: guest_memfd without direct map (v7, 2025) */
#define SS_VAR_HUGETLB_1G 0x10        /* proposal: 1 GiB HugeTLB guest_memfd (RFC v2, 2025) */

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

/* the life of a guest_memfd page (ss_page_run.life; 0 for other files and holes) */
#define SS_LIFE_ALLOCATED 1   /* in the file, not yet uptodate */
#define SS_LIFE_ZEROED 2      /* uptodate: zeroed (or populated) before the guest saw it */
#define SS_LIFE_PREPARED 3    /* the arch hook ran: SNP RMP assigned, TDX in the S-EPT */
#define SS_LIFE_HWPOISON 4    /* memory_failure() hit it; kept in the file (MF_DELAYED) */

/* launch state of a confidential VM */
#define SS_LAUNCH_NONE 0      /* not SNP / TDX */
#define SS_LAUNCH_INIT 1      /* populating: LAUNCH_UPDATE / INIT_MEM_REGION */
#define SS_LAUNCH_DONE 2      /* LAUNCH_FINISH / FINALIZE_VM done */

/* frame states */
#define SS_FRAME_FREE 0
#define SS_FRAME_CACHE 1      /* in a file's page cache */
#define SS_FRAME_ORPHAN 2     /* removed from the cache, still referenced */
#define SS_FRAME_HWPOISON 3   /* hwpoisoned and removed: kept off the free lists for good */
#define SS_FRAME_COW 4        /* a MAP_PRIVATE mapping's copy of a file page (cow.c) */

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
	SS_OP_VM_CREATE,      /* KVM_CREATE_VM */
	SS_OP_VM_GMEM,        /* KVM_CREATE_GUEST_MEMFD on a VM */
	SS_OP_SET_REGION,     /* KVM_SET_USER_MEMORY_REGION(2) */
	SS_OP_SET_ATTRS,      /* KVM_SET_MEMORY_ATTRIBUTES */
	SS_OP_VCPU_CREATE,    /* KVM_CREATE_VCPU */
	SS_OP_VCPU_ACCESS,    /* KVM_RUN: one guest access */
	SS_OP_MAP_ACCESS,     /* the VMM touches its mapping */
	SS_OP_PRE_FAULT,      /* KVM_PRE_FAULT_MEMORY */
	SS_OP_LAUNCH_UPDATE,  /* SNP LAUNCH_UPDATE / TDX INIT_MEM_REGION */
	SS_OP_LAUNCH_FINISH,  /* SNP LAUNCH_FINISH / TDX FINALIZE_VM */
	SS_OP_MEMORY_FAILURE, /* memory_failure() of a pfn (an MCE) */
	SS_OP_GMEM_SET_ATTRS, /* proposal: KVM_SET_MEMORY_ATTRIBUTES2 on a guest_memfd */
	SS_OP_MAP_PIN,        /* pin_user_pages() on a range of a mapping (kvm_pin.c) */
	SS_OP_MAP_UNPIN,      /* unpin_user_pages() of a pin */
	SS_OP_VM_CLOSE,       /* close(vm_fd): destroyed now, or when its guest_memfds go */
	SS_OP__COUNT
};

/* hazards of the RFC, marked on events */
#define SS_HAZ_NONE 0
#define SS_HAZ_NULL_PAGE 1        /* get_lock_pfn(alloc=false) on a hole */
#define SS_HAZ_ERRNO_AS_PFN 2     /* an errno returned through the pfn */
#define SS_HAZ_VM_BUG_ON_PAGE 3   /* put_unlock_pfn on an unlocked page */
#define SS_HAZ_UNSEALED_REGISTER 4 /* registered on a file without the seal */
#define SS_HAZ_ZAP_MISSES 5       /* patch 13: the posted zap misses its range */
#define SS_HAZ_ALLOC_UNNOTIFIED 6 /* get_lock_pfn(alloc) made gfns a VM maps shared private, no callback */
#define SS_HAZ_DEAD_OWNER 7       /* patch 13: a destroyed VM stays the file's owner (EPERM for the next) */

/* callback kinds */
#define SS_CB_INVALIDATE 0        /* invalidate_page_range, end inclusive */
#define SS_CB_FALLOCATE 1         /* fallocate, end exclusive */
#define SS_CB_GMEM_INVALIDATE 2   /* kvm_gmem_invalidate_begin, end exclusive */
/* arch hooks of a confidential VM's guest_memfd page: start, end = pfns, end exclusive */
#define SS_CB_RMP_ASSIGN 3        /* SNP: sev_gmem_prepare / post_populate, rmp_make_private */
#define SS_CB_RMP_RECLAIM 4       /* SNP: sev_gmem_invalidate on free, rmp_make_shared */
#define SS_CB_SEPT_ADD 5          /* TDX: TDH.MEM.PAGE.AUG / PAGE.ADD into the S-EPT */
#define SS_CB_SEPT_REMOVE 6       /* TDX: TDH.MEM.PAGE.REMOVE, the page reclaimed */
/* variant no_direct_map (a proposal): start, end = pfns */
#define SS_CB_DIRECT_MAP_REMOVE 7 /* set_direct_map_valid_noflush(false) after preparation */
#define SS_CB_DIRECT_MAP_RESTORE 8 /* the direct map entries come back when the folio is freed */

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
#define SS_T_EXIT 11      /* a vCPU exit: index = gfn, pfn = SS_EXIT_* */
#define SS_T_ATTR 12      /* attributes of gfns [index, index + npages) set to pfn */
#define SS_T_SIGNAL 13    /* a host touch of a mapping faulted: pfn = signal */
#define SS_T_MERGE 14     /* hugetlb_1g: 4 KiB pages merged back into a 1 GiB folio */
#define SS_T_HWPOISON_KEEP 15 /* a freed hwpoisoned frame (pfn) stays off the free lists */
#define SS_T_VM_DESTROY 16 /* kvm_destroy_vm of VM `owner` (npages 1): memslots, mappings went */
#define SS_T_COW 17       /* a write through a MAP_PRIVATE mapping copied file page index to pfn */

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
	uint32_t ncallbacks;     /* callbacks made, all counted */
	uint32_t ntouches;       /* touch records, all counted */
	uint32_t callbacks_kept; /* the first callbacks_kept can be read back */
	uint32_t touches_kept;   /* the first touches_kept can be read back */
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
	int life;                /* SS_LIFE_*: guest_memfd pages */
};

/* a run of alike frames: [start, end) */
struct ss_frame_run {
	uint64_t start, end;
	int state;               /* SS_FRAME_* */
	int order;
	int fd;                  /* -1 if free */
	uint64_t index;          /* file index of the frame at start */
	int no_direct_map;       /* variant no_direct_map: out of the kernel's direct map */
	int map_id;              /* SS_FRAME_COW: the mapping whose copy it is (0: none) */
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
/* a copy (for snapshots); NULL when out of memory.  It shares the frame
 * array's chunks and the page-cache and gfn trees' nodes with m until either
 * writes them (copy on write, thread-safe: the two may be used from two
 * threads).  ss_machine_clone_full copies everything at once (the baseline
 * of bench/clone.py). */
struct ss_machine *ss_machine_clone(const struct ss_machine *m);
struct ss_machine *ss_machine_clone_full(const struct ss_machine *m);

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
/* the part of that m holds beside machine `beside` (NULL: none): what the two
 * share (frame chunks, tree nodes, log segments; a clone's and its original's)
 * counts nothing, anything else held by k machines counts 1/k.  A snapshot's
 * cost beside the live machine (app/registry.py). */
uint64_t ss_memory_owned(const struct ss_machine *m, const struct ss_machine *beside);
size_t ss_frame_size(void);

/* ---- the KVM side (KVM.md): VMs, memslots, attributes, vCPUs, the VMM ----
 * A VM is an owner of kind SS_OWNER_KVM made by ss_vm_create; its owner id
 * is its vm id.  Failures of these calls leave the rule that refused in
 * ss_kvm_rule() (SS_R_*) until the next KVM call. */

/* VM types (uapi KVM_X86_*_VM) */
#define SS_VM_DEFAULT 0
#define SS_VM_SW_PROTECTED 1
#define SS_VM_SNP 4
#define SS_VM_TDX 5

/* memslot flags (uapi KVM_MEM_*) */
#define SS_MEM_LOG_DIRTY_PAGES 0x1u
#define SS_MEM_READONLY 0x2u
#define SS_MEM_GUEST_MEMFD 0x4u      /* guest-memfd profile */
#define SS_MEM_FD 0x4u               /* rfc-v2: struct kvm_userspace_memory_region_ext */

#define SS_MEMORY_ATTRIBUTE_PRIVATE (1ull << 3)
#define SS_MEMORY_EXIT_FLAG_PRIVATE (1ull << 3)

/* exits (uapi KVM_EXIT_*) */
#define SS_EXIT_NONE 0
#define SS_EXIT_MMIO 6
#define SS_EXIT_MEMORY_ERROR 36      /* rfc-v2, patch 02 */
#define SS_EXIT_MEMORY_FAULT 39
#define SS_EXIT_MEM_MAP_SHARED 1     /* KVM_EXIT_MEMORY_ERROR types */
#define SS_EXIT_MEM_MAP_PRIVATE 2

/* signals of a host touch */
#define SS_SIGBUS 7
#define SS_SIGSEGV 11

#define SS_VMM_TOP 0x7f0000000000ull  /* the first mapping ends here */
#define SS_VMM_FLOOR 0x10000ull       /* mmap_min_addr */
#define SS_USER_MEM_SLOTS 32764       /* KVM_USER_MEM_SLOTS on x86 */
#define SS_MAX_VCPUS 4096

/* which rule refused the last failing KVM call */
enum ss_kvm_rule {
	SS_R_NONE = 0,
	SS_R_NO_VM,              /* not a VM */
	SS_R_VM_TYPE,            /* type not supported */
	SS_R_NO_IOCTL,           /* the ioctl does not exist in this profile (ENOTTY) */
	SS_R_TOO_MANY,           /* owner table full */
	SS_R_GMEM_FLAGS,         /* guest_memfd flags not supported by the VM */
	SS_R_GMEM_SIZE,          /* guest_memfd size <= 0 or unaligned */
	SS_R_SLOT_ID,            /* (u16)slot >= KVM_USER_MEM_SLOTS */
	SS_R_REGION_FLAGS,       /* check_memory_region_flags */
	SS_R_SIZE_ALIGN,         /* memory_size not page aligned */
	SS_R_GPA_ALIGN,
	SS_R_UADDR,              /* userspace_addr unaligned or not access_ok */
	SS_R_GMEM_OFFSET,        /* guest_memfd_offset unaligned or offset + size wraps */
	SS_R_AS_ID,              /* address space id too big */
	SS_R_GPA_WRAP,
	SS_R_TOO_BIG,            /* more than KVM_MEM_MAX_NR_PAGES */
	SS_R_DELETE_NONE,        /* deleting a slot that does not exist */
	SS_R_IMMUTABLE,          /* a guest_memfd / private slot cannot be modified */
	SS_R_MODIFY,             /* a modify changes userspace_addr, size or READONLY */
	SS_R_OVERLAP,            /* gpa range overlaps another slot (EEXIST) */
	SS_R_MAX_GFN,            /* past the MMU's max gfn, or a TDX alias */
	SS_R_BADF,               /* the fd is not open */
	SS_R_NOT_GMEM,           /* the fd is not a guest_memfd */
	SS_R_OTHER_VM,           /* the guest_memfd belongs to another VM */
	SS_R_GMEM_RANGE,         /* offset + size past the guest_memfd's end */
	SS_R_GMEM_BOUND,         /* the range is already bound by another slot */
	SS_R_RFC_NOT_MEMFD,      /* rfc-v2: fd not a shmem file */
	SS_R_RFC_OWNER,          /* rfc-v2: file registered by another owner (EPERM) */
	SS_R_ATTR_FLAGS,         /* KVM_SET_MEMORY_ATTRIBUTES flags != 0 */
	SS_R_ATTR_UNSUPPORTED,   /* attribute not supported by the VM */
	SS_R_ATTR_RANGE,         /* size 0 or wraps */
	SS_R_ATTR_ALIGN,
	SS_R_NO_VCPU,
	SS_R_VCPUS,              /* too many vCPUs */
	SS_R_RUN_HVA,            /* KVM_RUN: userspace_addr of the gfn is not mapped (EFAULT) */
	SS_R_RUN_NO_PRIVATE_FD,  /* rfc-v2: private access, slot without private_fd */
	SS_R_RUN_LOCKED,         /* the page is held locked by get_lock_pfn */
	SS_R_RUN_COW,            /* unused since cow.c copies the page (kept: rule numbers stay) */
	SS_R_NO_MAPPING,
	SS_R_VMM_FULL,           /* no room left in the VMM address space */
	SS_R_NOMEM,
	SS_R_PREFAULT_FLAGS,     /* KVM_PRE_FAULT_MEMORY: flags != 0 */
	SS_R_PREFAULT_RANGE,     /* unaligned, empty or wrapping range */
	SS_R_PREFAULT_NOT_YET,   /* pre_fault_allowed is false (SNP / TDX before launch) */
	SS_R_PREFAULT_NOSLOT,    /* the first page has no memslot (ENOENT) */
	SS_R_PREFAULT_FAULT,     /* the first page's fault failed */
	SS_R_NOT_COCO,           /* launch ops on a VM that is not SNP / TDX (ENOTTY) */
	SS_R_LAUNCH_DONE,        /* the launch is finalized already */
	SS_R_LAUNCH_NO_VCPU,     /* TDX INIT_MEM_REGION is a vCPU ioctl: no vCPU */
	SS_R_POPULATE_RANGE,     /* gpa / length unaligned, empty or wrapping */
	SS_R_POPULATE_SLOT,      /* the first gfn has no guest_memfd memslot */
	SS_R_POPULATE_CLOSED,    /* the slot's guest_memfd is closed (EFAULT) */
	SS_R_POPULATE_SHARED,    /* a gfn is not private */
	SS_R_POPULATE_EXISTS,    /* the page is uptodate (prepared) already (EEXIST) */
	SS_R_MF_PFN,             /* memory_failure: no such pfn (ENXIO) */
	SS_R_MF_NOT_GMEM,        /* only guest_memfd pages are simulated (EOPNOTSUPP) */
	SS_R_MF_AGAIN,           /* the page is poisoned already (EHWPOISON) */
	SS_R_RUN_HWPOISON,       /* KVM_RUN: the page is poisoned (EHWPOISON) */
	SS_R_CONTENT_MODE,       /* inplace: the arch cannot honour the content mode */
	SS_R_CONVERT_BUSY,       /* inplace: a page has an extra reference (EAGAIN) */
	SS_R_NO_PIN,             /* unpin: no such pin (EINVAL) */
	SS_R_PIN_RANGE,          /* pin: empty, wrapping or too long a range (EINVAL) */
	SS_R_PIN_FAULT,          /* pin: a page's fault would be a signal (EFAULT) */
	SS_R_PIN_HWPOISON,       /* pin: a page is hwpoisoned (EHWPOISON) */
	SS_R_PIN_MAX,            /* pin: the machine's pin table is full (ENOSPC) */
	SS_R_VM_CLOSED,          /* an ioctl on a VM whose fd is closed (EBADF) */
	SS_R_RUN_HVA_HWPOISON,   /* KVM_RUN: userspace_addr maps a poisoned page: SIGBUS, EINTR */
	SS_R_PIN_READONLY,       /* pin: FOLL_WRITE through a mapping without PROT_WRITE (EFAULT) */
	SS_R__COUNT
};

struct ss_cap {
	const char *name;        /* "KVM_CAP_..." */
	int64_t value;
};

/* KVM_SET_USER_MEMORY_REGION2 / the RFC's region_ext, as one struct */
struct ss_region {
	uint32_t slot, flags;
	uint64_t guest_phys_addr, memory_size, userspace_addr;
	uint64_t guest_memfd_offset;   /* guest-memfd */
	uint32_t guest_memfd;          /* guest-memfd: __u32 fd */
	int32_t fd, private_fd;        /* rfc-v2 */
};

struct ss_access {
	uint64_t gpa;
	int write;
	int private_;            /* -1: the attributes / profile decide */
	uint8_t value;           /* written when write */
};

struct ss_access_result {
	int exit_reason;         /* SS_EXIT_* */
	uint64_t exit_flags, exit_gpa, exit_size;
	int exit_type;           /* MEMORY_ERROR: SS_EXIT_MEM_MAP_* */
	int exit_errno;          /* MEMORY_FAULT: KVM_RUN's errno (positive) */
	int backing;             /* 0 none, 1 private, 2 shared */
	int fd;                  /* file of the backing page, -1 if none */
	uint64_t index, pfn;
	int order;               /* of the mapping */
	uint8_t value;           /* the byte at gpa after the access */
};

struct ss_vm_info {
	int id;
	int type;
	int nvcpus;
	int nslots;
	uint64_t nattr_runs;
	uint64_t attr_bytes;     /* memory the attribute store uses */
	int closed;              /* the VM fd is closed: alive while its guest_memfds are */
};

struct ss_vm_memslot {
	uint32_t slot, flags;
	uint64_t guest_phys_addr, memory_size, userspace_addr;
	uint64_t guest_memfd_offset;
	int guest_memfd;         /* fd, -1 none or closed */
	int gmem_closed;         /* bound to a guest_memfd since closed */
	int gmem_only;           /* KVM_MEMSLOT_GMEM_ONLY (mmap-able guest_memfd) */
	int fd, private_fd;      /* rfc-v2, -1 none */
};

struct ss_attr_run {
	uint64_t start, end;     /* gfns, end exclusive */
	uint64_t attributes;
};

/* where a gfn is served from, as runs of alike gfns */
#define SS_SRC_NONE 0            /* no memslot: MMIO */
#define SS_SRC_PRIVATE 1         /* the guest_memfd / private_fd */
#define SS_SRC_SHARED_GMEM 2     /* the guest_memfd, shared in place (gmem-only slot) */
#define SS_SRC_SHARED_HVA 3      /* userspace_addr: the VMM's mapping */
#define SS_SRC_SHARED_FD 4       /* rfc-v2: the shared fd */
#define SS_SRC_UNMAPPED_HVA 5    /* userspace_addr points at no mapping */
#define SS_SRC_CLOSED 6          /* a guest_memfd since closed */
#define SS_SRC_POISONED 7        /* its guest_memfd page is hwpoisoned (kvm_poison.c) */
struct ss_gfn_source {
	uint64_t start, end;     /* gfns */
	int source;              /* SS_SRC_* */
	uint32_t slot;
	uint64_t attributes;
	int fd;                  /* -1 if none */
	uint64_t index;          /* file index at start (pages) */
	int mapped;              /* the secondary MMU maps these gfns */
	uint64_t pfn;            /* pfn at start when mapped */
	int order;
};

int ss_kvm_rule(const struct ss_machine *m);
int ss_vm_create(struct ss_machine *m, uint64_t type, const char *name);
int ss_vm_caps(const struct ss_machine *m, int vm, struct ss_cap *out, int max);
int ss_vm_gmem_create(struct ss_machine *m, int vm, uint64_t size, uint64_t flags);
int ss_vm_set_memory_region(struct ss_machine *m, int vm, const struct ss_region *r);
int ss_vm_set_memory_attributes(struct ss_machine *m, int vm, uint64_t address,
				uint64_t size, uint64_t attributes, uint64_t flags);
int ss_vcpu_create(struct ss_machine *m, int vm);
/* 0 with *out (an exit is a result, not an error), or -errno */
int ss_vcpu_access(struct ss_machine *m, int vm, int vcpu, const struct ss_access *a,
		   struct ss_access_result *out);
/* the VMM touches byte `offset` of its mapping: 0 with *signal (0, SS_SIGBUS,
 * SS_SIGSEGV) and *value, or -errno */
int ss_mapping_access(struct ss_machine *m, int map_id, uint64_t offset, int write,
		      uint8_t value, int *signal, uint8_t *value_out);
int ss_mapping_addr(const struct ss_machine *m, int map_id, uint64_t *addr);
/* KVM_PRE_FAULT_MEMORY: maps [*gpa, *gpa + *size) ahead as read faults; 0 with
 * *gpa, *size what is left (0 when all), or -errno when the first page fails */
int ss_vcpu_pre_fault(struct ss_machine *m, int vm, int vcpu, uint64_t *gpa, uint64_t *size,
		      uint64_t flags);
int ss_vm_info(const struct ss_machine *m, int vm, struct ss_vm_info *out);
/* close(vm_fd): the VM is destroyed (memslots, mappings, attributes) at once,
 * or, while a guest_memfd it made is open or mapped, when the last goes;
 * 0 or -errno (EINVAL no such VM, EBADF closed already) */
int ss_vm_close(struct ss_machine *m, int vm);
/* SNP LAUNCH_UPDATE / TDX INIT_MEM_REGION (through vCPU 0) of len bytes of src at
 * gpa: pages done (>= 0; SNP answers 0 with the rest when some were done), or
 * -errno (TDX: also after some pages); *done is the number of pages done */
int ss_vm_launch_update(struct ss_machine *m, int vm, uint64_t gpa, const uint8_t *src,
			uint64_t len, uint64_t *done);
int ss_vm_launch_finish(struct ss_machine *m, int vm);
/* memory_failure(pfn): a guest_memfd page is zapped in every VM and kept
 * (MF_DELAYED): 0, or -errno */
int ss_memory_failure(struct ss_machine *m, uint64_t pfn);
/* variant inplace_conversion (a proposal): KVM_SET_MEMORY_ATTRIBUTES2 on a
 * guest_memfd; flags: content mode ZERO 1, PRESERVE 2; EAGAIN sets *error_offset */
/* pin_user_pages() of the pages of [offset, offset + length) of a mapping
 * (kvm_pin.c), FOLL_WRITE when write: 0 with *pin_id; -EFAULT / -EHWPOISON
 * with *signal what a host touch (a write touch for a write pin) of the first
 * such page would get (nothing pinned), or -errno */
#define SS_MAX_PINS 1024
#define SS_PIN_MAX_PAGES 4096
struct ss_pin_info {
	int map_id;
	uint64_t offset;         /* page aligned, in the mapping */
	uint64_t npages;
};
int ss_mapping_pin(struct ss_machine *m, int map_id, uint64_t offset, uint64_t length,
		   int write, int *signal, int *pin_id);
int ss_mapping_unpin(struct ss_machine *m, int pin_id);
/* the pin's range and up to max of its pfns: 0, -EINVAL for no such pin */
int ss_pin_info(const struct ss_machine *m, int pin_id, struct ss_pin_info *out, uint64_t *pfns,
		int max);
int ss_gmem_set_attributes(struct ss_machine *m, int fd, uint64_t offset, uint64_t size,
			   uint64_t attributes, uint64_t flags, uint64_t *error_offset);
/* variant inplace_conversion: the guest_memfd's attribute runs over [start, end) */
int ss_gmem_attr_runs(const struct ss_machine *m, int fd, uint64_t start, uint64_t end,
		      struct ss_attr_run *out, int max);
/* is the frame hardware-poisoned (1) */
int ss_frame_poisoned(const struct ss_machine *m, uint64_t pfn);
struct ss_launch_info {
	int state;               /* SS_LAUNCH_* */
	uint64_t pages;          /* pages measured */
	int have_digest;         /* SNP: always; TDX: once finalized */
	uint8_t digest[48];
};
int ss_vm_launch_info(const struct ss_machine *m, int vm, struct ss_launch_info *out);
int ss_vm_memslots(const struct ss_machine *m, int vm, struct ss_vm_memslot *out, int max);
/* attribute runs over [start, end) from the store (gfns without attributes are
 * left out); returns the count (at most max) */
int ss_vm_attr_runs(const struct ss_machine *m, int vm, uint64_t start, uint64_t end,
		    struct ss_attr_run *out, int max);
/* sources of gfns [start, end) as runs; *next where to go on (== end when done) */
int ss_vm_gfn_sources(const struct ss_machine *m, int vm, uint64_t start, uint64_t end,
		      struct ss_gfn_source *out, int max, uint64_t *next);
/* the gfns of [start, end) whose source is SS_SRC_POISONED, as sorted disjoint runs
 * (at most max; the count, -EINVAL for no such VM): read from the list of poisoned
 * frames (kvm_poison.c), never a walk of the gfn space */
struct ss_gfn_span {
	uint64_t start, end;
};
int ss_vm_poisoned_gfns(const struct ss_machine *m, int vm, uint64_t start, uint64_t end,
			struct ss_gfn_span *out, int max);

#endif /* SEALSCOPE_H */
