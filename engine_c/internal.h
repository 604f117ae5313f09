/*
 * internal.h - the engine's private structures, shared by its .c files.
 *
 * Glossary:
 *  frame   one 4 KiB physical page frame (struct page).  Identified by its
 *          pfn; read through frame_ro(m, pfn), written through frame_rw(m, pfn)
 *          (the frame array is in copy-on-write chunks shared by clones: chunks.c).
 *  inode   a shmem or guest_memfd file.  Userspace names it by an fd; an
 *          inode outlives its fd while mappings, owners or waiters hold it.
 *  tree    a radix tree (like the kernel's xarray) from a 64-bit index to a
 *          non-zero 64-bit value; used for page caches and gfn tables.
 *  owner   a guest (KVM or a recorder) that registered guest_ops.
 *  waiter  an operation the kernel would have put to sleep on a page lock.
 *
 * Frame invariants (checked by ss_check()):
 *  - a free frame is either the head of a buddy block (F_BUDDY, order,
 *    linked on free_area[order]) or a zeroed frame inside such a block;
 *  - a page-cache frame belongs to exactly one inode at one index, and that
 *    inode's tree maps the index back to it; a MAP_PRIVATE copy (SS_FRAME_COW)
 *    to exactly one mapping at one file index, its cow tree mapping back (cow.c);
 *  - in a compound (huge) page the head carries F_HEAD, the lock, the dirty
 *    bit and the reference count; tails carry F_TAIL and the same order;
 *  - a locked page has refcount >= 2 (the cache's and the holder's).
 */
#ifndef SS_INTERNAL_H
#define SS_INTERNAL_H

#include "sealscope.h"
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>

#define NIL 0xffffffffu
#define HPAGE_NR (1u << SS_HPAGE_ORDER)
#define SS_GIGA_ORDER 18       /* variant hugetlb_1g: 1 GiB folios */

#ifndef EUCLEAN
#define EUCLEAN 117
#endif
#ifndef ENOTSUPP
#define ENOTSUPP 524
#endif

/* frame flags */
#define F_LOCKED 0x01
#define F_DIRTY 0x02
#define F_UPTODATE 0x04
#define F_HEAD 0x08
#define F_TAIL 0x10
#define F_BUDDY 0x20
#define F_NEW 0x40             /* allocated by the fallocate in progress */
#define F_PREPARED 0x80        /* guest_memfd: the arch hook ran (SNP RMP assign, TDX S-EPT add) */

/* xflags of a used frame (in the free-list links' place) */
#define X_HWPOISON 0x1         /* memory_failure() hit it (kvm_poison.c) */
#define X_NO_DIRECT_MAP 0x2    /* variant no_direct_map: out of the direct map (kvm_coco.c) */
#define X_HWPOISON_RAW 0x4     /* this very frame failed (PageHWPoison of the raw page) */

struct frame {                 /* 32 bytes: see ss_frame_size() */
	uint64_t index;        /* page index in its inode */
	union {
		struct {
			uint32_t next, prev;   /* free: free list links (pfn or NIL) */
		};
		struct {
			uint32_t xflags;       /* used: X_* (0 when allocated) */
			uint32_t xspare;
		};
	};
	uint32_t ino;          /* inode number, 0 if none */
	int32_t refcount;      /* on the head of a compound page */
	uint32_t data;         /* data slot + 1, 0 when the page reads as zeros */
	uint8_t state;         /* SS_FRAME_* */
	uint8_t order;
	uint8_t flags;         /* F_* */
	uint8_t mapped;        /* owners mapping this frame (bitmask) */
};

/* ---- the frame array in copy-on-write chunks (chunks.c) ---- */
/*
 * A chunk holds 2^m->fshift frames, a group 2^m->gshift chunks; clones share
 * groups and chunks (refs counts their holders) until one side writes.  A
 * frame pointer is never indexed to another frame: a block spans chunks.
 * Never keep a frame_ro() pointer across a frame_rw() of the same chunk: the
 * write may move this machine to a copy.
 */
#define FCHUNK_SHIFT 6         /* 64 frames, 2 KiB a chunk: what a scattered write copies */
#define FGROUP_SHIFT 8         /* 256 chunks (64 MiB of memory) a group: 1024 for 16M frames */

struct fchunk {
	atomic_uint refs;      /* groups holding this chunk */
	uint32_t nr;           /* frames: 1 << fshift but in a small machine's last chunk */
	struct frame f[];
};

struct fgroup {
	atomic_uint refs;      /* machines holding this group */
	uint32_t n;            /* chunks: 1 << gshift but in the last group */
	struct fchunk *c[];
};

/* a machine whose chunks hold 2^fshift frames (0..16), its groups 2^gshift chunks
 * (0..16): tests pick small ones */
struct ss_machine *machine_new_chunked(const struct ss_config *cfg, unsigned int fshift,
				       unsigned int gshift);
int fchunks_init(struct ss_machine *m);              /* all frames zero; 0 or -ENOMEM */
int fchunks_clone(struct ss_machine *dst, const struct ss_machine *src, bool deep);
void fchunks_free(struct ss_machine *m);
/* this machine's own copy of chunk c (it or its group was shared): never fails
 * (aborts when out of memory: the operation in progress cannot be undone half way) */
struct fchunk *fchunk_unshare(struct ss_machine *m, uint32_t c);
uint64_t fchunks_owned_bytes(const struct ss_machine *m, const struct ss_machine *beside);

/* ---- radix tree (tree.c) ---- */
struct tnode;
struct tree {
	struct tnode *root;
	unsigned int shift;    /* of the root node; capacity 64 << shift */
	uint64_t count;
	uint64_t nodes;
};

void tree_init(struct tree *t);
void tree_destroy(struct tree *t);
/* a copy sharing src's nodes until either writes (deep: every node copied) */
int tree_clone(struct tree *dst, const struct tree *src, bool deep);
/* t's node bytes but for the nodes it shares with beside (NULL: none); a node held
 * by k machines counts 1/k */
uint64_t tree_owned_bytes(const struct tree *t, const struct tree *beside);
uint64_t tree_load(const struct tree *t, uint64_t index);
int tree_store(struct tree *t, uint64_t index, uint64_t value);  /* 0, -ENOMEM */
uint64_t tree_erase(struct tree *t, uint64_t index);             /* old value */
/* store value, value + 1, ... at index, index + 1, ... (n entries), a leaf
 * at a time; 0, or -ENOMEM with a prefix of the run stored */
int tree_store_run(struct tree *t, uint64_t index, uint64_t n, uint64_t value);
/* erase the entries of [index, index + n), a leaf at a time */
void tree_erase_run(struct tree *t, uint64_t index, uint64_t n);
/* first entry at index >= *index and <= max: its value, *index set; 0 if none */
uint64_t tree_find(const struct tree *t, uint64_t *index, uint64_t max);
/* how many entries from index on (below end) hold value, value + 1, ...:
 * scans whole leaves at a time */
uint64_t tree_consecutive(const struct tree *t, uint64_t index, uint64_t value, uint64_t end);

/* ---- inodes ---- */
/* memory attributes as runs of gfns (attributes.c); of a
 * guest_memfd's page indexes under variant inplace_conversion */
struct attr_run {
	uint64_t start, end, attrs;
};
struct attr_store {
	struct attr_run *runs;  /* sorted, disjoint, non-adjacent-alike, attrs != 0 */
	uint32_t n, cap;
};

struct reg {                   /* a registration of an owner on an inode */
	int owner;
	int users;             /* variant multi_owner: registrations - unregistrations */
};

struct mapping {
	int id;                /* map id, 0 when the slot is free */
	uint32_t ino;
	int64_t offset, length;
	int prot, flags;
	uint64_t addr;         /* in the VMM address space (vmm.c) */
	struct tree cow;       /* MAP_PRIVATE: file index -> pfn + 1 of its copies (cow.c) */
};

struct pin {                   /* a GUP pin of a mapping's pages (kvm_pin.c) */
	int id;                /* pin id, 0 when the slot is free */
	int map_id;
	uint32_t ino;
	uint64_t offset;       /* in the mapping, page aligned */
	uint64_t npages;
	uint32_t *pfns;        /* the pinned page of each */
	int write;             /* FOLL_WRITE: faulted in for write (kvm_pin.c) */
};

struct inode {
	uint32_t ino;          /* 0 when the slot is free */
	int kind;
	int fd;                /* -1 once closed */
	char name[256];
	int64_t size;
	int64_t keep_end;      /* pages may exist up to here (KEEP_SIZE) */
	uint32_t seals;
	uint64_t flags;
	struct tree cache;     /* index -> pfn + 1 */
	uint64_t nr_pages;
	int nregs;
	struct reg regs[SS_MAX_REGS];
	int maps, shared_maps;
	int pending;           /* waiters on this inode */
	int orphans;           /* its removed pages still referenced */
	int vm;                /* guest_memfd made by a VM: its owner id + 1 */
	struct attr_store gattrs; /* inplace_conversion: private indexes (kvm_inplace.c) */
};

/* ---- owners ---- */
struct memslot {
	int slot;              /* legacy: its index; VM: the user's slot number */
	uint32_t ino;          /* legacy file; VM: guest_memfd / rfc private_fd (0: none) */
	uint64_t gfn, index, npages;  /* VM: index = guest_memfd pgoff / rfc offset */
	/* VM slots only (vm != 0) */
	uint8_t vm, gmem_only, gmem_closed;
	uint32_t flags;        /* KVM_MEM_* */
	uint32_t shared_ino;   /* rfc-v2: the shared fd's file */
	uint64_t uaddr;        /* userspace_addr */
};


struct sha384 {                /* sha384.c */
	uint64_t h[8];
	uint64_t len;
	uint8_t buf[128];
	uint32_t n;
};
void sha384_init(struct sha384 *c);
void sha384_update(struct sha384 *c, const void *data, size_t len);
void sha384_final(const struct sha384 *c, uint8_t out[48]);

struct kvm_vm {                /* vm.c */
	int type;
	int nvcpus;
	uint64_t nr_memslot_pages;
	struct attr_store attrs;
	/* confidential VMs (kvm_coco.c) */
	int launch;            /* SS_LAUNCH_* */
	uint64_t nmeasured;    /* pages populated */
	uint8_t digest[48];    /* SNP: the launch digest; TDX: MRTD once finalized */
	struct sha384 mr;      /* TDX: the running MRTD hash */
	uint8_t closed;        /* the VM fd is closed (ss_vm_close) */
	uint8_t dead;          /* destroyed: only the owner record stays (patch 13's vm_is_dead) */
};

struct owner {
	int id;
	int kind;
	char name[64];
	int nslots;
	struct memslot *slots;
	struct tree gfns;      /* gfn -> (pfn + 1) << 1 | huge */
	uint64_t nmapped, nzapped, ncallbacks;
	struct kvm_vm *vm;     /* NULL: a legacy owner (ss_owner_create) */
};

/* ---- waiters ---- */
enum wkind {
	W_REMOVE,              /* punch / truncate sleeping on a page lock */
	W_GETLOCK,             /* get_lock_pfn sleeping on a page lock */
	W_FAULT,               /* a guest fault sleeping on a page lock */
	W_BLOCKED,             /* an op sleeping on i_rwsem behind a removal */
	W_VCPU,                /* rfc-v2: a vCPU's fault sleeping in get_lock_pfn */
};

struct waiter {
	enum wkind kind;
	uint64_t seq;          /* the event that went to sleep */
	int op;
	uint32_t ino;
	uint64_t start, end;   /* W_REMOVE: [start, end) pages */
	uint64_t resume;       /* W_REMOVE: where the removal goes on */
	uint64_t index;        /* W_GETLOCK / W_FAULT */
	int alloc;
	int owner;             /* W_FAULT */
	uint64_t gfn;          /* W_FAULT */
	uint64_t pfn;          /* head of the page it sleeps on */
	int64_t args[3];       /* W_BLOCKED */
	uint8_t *buf;          /* W_BLOCKED pwrite data */
	struct ss_access acc;  /* W_VCPU: the access, retried at the wake (owner: the VM) */
};

/* ---- events ---- */

/*
 * Callbacks are stored as runs: callback k of a run (k < count) is
 * {fn, owner, start + k * step, end + k * step}, so a punch of a million
 * contiguous pages is one record.  An event keeps at most SS_EV_KEEP runs
 * and SS_EV_KEEP touch records; past that its callbacks and touches are
 * counted (ncallbacks, ntouches) but not kept: the log stays bounded however
 * many pages one operation meets.  A machine keeps at most SS_LOG_KEEP runs
 * and SS_LOG_KEEP touch records in all; later events count only.  The kept
 * ones of an event are always a prefix.
 */
struct cbrun {
	int fn;
	int owner;
	uint64_t start, end;   /* of the run's first callback */
	uint64_t step;         /* 0 while the run holds one callback */
	uint64_t count;
	uint64_t first;        /* index of the run's first callback in its event */
};

struct evrec {
	struct ss_event e;
	uint64_t cb_first, t_first;  /* first run / touch record of the event */
	uint32_t cb_runs, t_kept;    /* runs and touch records kept */
	bool cb_full, t_full;        /* something was counted but not kept */
	struct ss_touch t_last;      /* the last touch counted (merging goes on past the cap) */
};

/* the log's arrays in copy-on-write segments (seglog.c) */
#define SEG_SHIFT 6             /* 64 events (12.8 KiB) a segment */
#define SEG_NR (1u << SEG_SHIFT)
struct seg {
	atomic_uint refs;      /* machines holding this segment */
	uint32_t spare;
	uint64_t b[];          /* SEG_NR elements */
};
struct seglog {
	struct seg **segs;
	uint64_t nsegs, capsegs;  /* capacity: nsegs * SEG_NR elements */
};
int seg_reserve(struct seglog *l, size_t esize, uint64_t need);  /* 0 or -ENOMEM */
void *seg_mut_slow(struct seglog *l, size_t esize, uint64_t i);  /* NULL: out of memory */
int seg_clone(struct seglog *dst, const struct seglog *src, size_t esize, uint64_t n, bool deep);
void seg_free(struct seglog *l);
uint64_t seg_owned_bytes(const struct seglog *l, const struct seglog *beside, size_t esize);
static inline const void *seg_at(const struct seglog *l, size_t esize, uint64_t i)
{
	return (const unsigned char *)l->segs[i >> SEG_SHIFT]->b + (i & (SEG_NR - 1)) * esize;
}
/* element i to write (its segment copied first if shared); NULL when out of memory */
static inline void *seg_mut(struct seglog *l, size_t esize, uint64_t i)
{
	struct seg *s = l->segs[i >> SEG_SHIFT];
	if (__builtin_expect(atomic_load_explicit(&s->refs, memory_order_acquire) != 1, 0))
		return seg_mut_slow(l, esize, i);
	return (unsigned char *)s->b + (i & (SEG_NR - 1)) * esize;
}

struct ss_machine {
	struct ss_config cfg;
	struct fgroup **fgroups;  /* the frames: groups of chunks (chunks.c) */
	uint32_t nfgroups;
	uint32_t fshift, fmask;   /* chunk i holds frames i << fshift .. (i + 1) << fshift - 1 */
	uint32_t gshift, gmask;   /* group j holds chunks j << gshift .. */
	uint32_t free_head[SS_MAX_ORDER + 1];
	uint64_t nr_free_blocks[SS_MAX_ORDER + 1];
	uint64_t nr_free;

	struct inode *inodes;  /* slot i holds ino i + 1 */
	int ninodes, cap_inodes;
	uint32_t *fdtab;       /* fd -> ino, 0 if free */
	int nfds;

	struct mapping *maps;
	int nmaps;

	struct owner owners[SS_MAX_OWNERS];
	int nowners;

	struct waiter *waiters;
	int nwaiters, cap_waiters;

	struct dpage **data;   /* data slots, 4096 bytes each (data.c: data_ro) */
	uint32_t ndata, cap_data, data_free; /* data_free: first free slot + 1 */
	uint32_t *data_next;

	struct seglog events;  /* struct evrec: ev_at() */
	uint64_t nevents;
	struct seglog cbs;     /* struct cbrun */
	uint64_t ncbs;
	struct seglog touches; /* struct ss_touch */
	uint64_t ntouches;
	struct evrec *cur;     /* the event being built (its segment this machine's own), NULL when none */

	struct pin *pins;      /* slot i holds pin id i + 1 (kvm_pin.c) */
	int npins;
	uint32_t *hwpoison;    /* raw pfns memory_failure hit, in order (kvm_poison.c) */
	uint32_t nhwpoison, cap_hwpoison;

	uint64_t vmm_lowest;   /* lowest VMM address handed out (0: none yet) */
	int kvm_rule;          /* SS_R_* of the last failing KVM call */
};

static inline const struct evrec *ev_at(const struct ss_machine *m, uint64_t i)
{
	return seg_at(&m->events, sizeof(struct evrec), i);
}
static inline const struct cbrun *cb_at(const struct ss_machine *m, uint64_t i)
{
	return seg_at(&m->cbs, sizeof(struct cbrun), i);
}
static inline const struct ss_touch *touch_at(const struct ss_machine *m, uint64_t i)
{
	return seg_at(&m->touches, sizeof(struct ss_touch), i);
}

/* frames.c */
int frames_init(struct ss_machine *m);
/* allocate 1 << order frames; the pfn of the first, or -ENOMEM */
int64_t frames_alloc(struct ss_machine *m, unsigned int order);
void frames_free(struct ss_machine *m, uint32_t pfn, unsigned int order);
static inline const struct frame *frame_ro(const struct ss_machine *m, uint64_t pfn)
{
	uint32_t c = (uint32_t)(pfn >> m->fshift);
	return &m->fgroups[c >> m->gshift]->c[c & m->gmask]->f[pfn & m->fmask];
}
static inline struct frame *frame_rw(struct ss_machine *m, uint64_t pfn)
{
	uint32_t c = (uint32_t)(pfn >> m->fshift);
	struct fgroup *g = m->fgroups[c >> m->gshift];
	struct fchunk *k = g->c[c & m->gmask];
	/* 1 and 1: only this machine holds them, and nobody can take a new
	 * reference but a clone of this machine, which its owner serializes with
	 * writes */
	if (__builtin_expect(atomic_load_explicit(&g->refs, memory_order_acquire) != 1 ||
			     atomic_load_explicit(&k->refs, memory_order_acquire) != 1, 0))
		k = fchunk_unshare(m, c);
	return &k->f[pfn & m->fmask];
}
static inline uint32_t frame_head(const struct ss_machine *m, uint32_t pfn)
{
	const struct frame *f = frame_ro(m, pfn);
	if (f->flags & F_TAIL)
		return pfn & ~((1u << f->order) - 1);
	return pfn;
}

/* data.c: page contents (shared by clones until written) */
struct dpage;
const uint8_t *data_ro(const struct ss_machine *m, uint32_t slot);  /* a frame's data - 1 */
int data_get(struct ss_machine *m, uint32_t pfn, uint8_t **out);  /* to write: allocate or unshare */
int data_zero(struct ss_machine *m, uint32_t pfn, unsigned int from, unsigned int to);
void data_drop(struct ss_machine *m, uint32_t pfn);
int data_clone(struct ss_machine *dst, const struct ss_machine *src, bool deep);
void data_free_all(struct ss_machine *m);
uint64_t data_bytes(const struct ss_machine *m, bool owned, const struct ss_machine *beside);

/* events.c */
void ev_begin(struct ss_machine *m, int op, int fd, int64_t a0, int64_t a1,
	      int64_t a2, int64_t a3);
int64_t ev_end(struct ss_machine *m, int64_t result);
void ev_hazard(struct ss_machine *m, int hazard, uint64_t raw);
void ev_callback(struct ss_machine *m, int fn, int owner, uint64_t start, uint64_t end);
void ev_touch(struct ss_machine *m, int what, int fd, int owner, uint64_t index,
	      uint64_t npages, uint64_t pfn);
void events_free(struct ss_machine *m);
int events_clone(struct ss_machine *dst, const struct ss_machine *src, bool deep);
/* the log's bytes; owned: but for the segments shared with beside (may be NULL) and
 * a segment held by k machines counting 1/k */
uint64_t events_bytes(const struct ss_machine *m, bool owned, const struct ss_machine *beside);

/* files.c */
struct inode *inode_get(struct ss_machine *m, uint32_t ino);
struct inode *fd_inode(struct ss_machine *m, int fd);
int inode_fd(const struct inode *in);
bool inode_has_pins(struct ss_machine *m, struct inode *in);
bool inode_has_locked(struct ss_machine *m, struct inode *in);
void inode_put_maybe(struct ss_machine *m, struct inode *in);
/* whether anything but waiter `skip` (-1: none) holds the file, page locks aside */
bool inode_held_but(struct ss_machine *m, struct inode *in, int skip);
/* the last reference went: evict (SS_PENDING while a locked page holds it) */
int inode_release(struct ss_machine *m, struct inode *in);

/* pagecache.c */
uint64_t inode_limit(const struct inode *in);  /* pages allowed: max(size, keep_end) */
int cache_alloc_page(struct ss_machine *m, struct inode *in, uint64_t index,
		     uint64_t *pfn_out, bool *new_out);
/* remove [start, end) (pages) from *resume on; 0 when done, SS_PENDING when
 * a locked page waits (*wait_pfn its head, *resume its index) */
int cache_remove_range(struct ss_machine *m, struct inode *in, uint64_t start,
		       uint64_t end, uint64_t *resume, uint64_t *wait_pfn);
/* zero the partial pages at the edges of bytes [lstart, lend) (lend <= 2^63) */
void cache_zero_edges(struct ss_machine *m, struct inode *in, uint64_t lstart, uint64_t lend);
void mark_falloc(struct ss_machine *m, uint32_t head);
void clear_falloc(struct ss_machine *m, struct inode *in, uint64_t start, uint64_t end);
void undo_new_pages(struct ss_machine *m, struct inode *in, uint64_t start, uint64_t end);
void cache_free_all(struct ss_machine *m, struct inode *in);
int cache_invalidate_range(struct ss_machine *m, struct inode *in, uint64_t start,
			   uint64_t end_incl);
void page_free_frames(struct ss_machine *m, uint32_t head);

/* guest.c */
void callback_invalidate(struct ss_machine *m, struct inode *in, uint64_t start,
			 uint64_t end_incl);
void callback_fallocate(struct ss_machine *m, struct inode *in, uint64_t start,
			uint64_t end);
void callback_gmem_invalidate(struct ss_machine *m, struct inode *in, uint64_t start,
			      uint64_t end);
int waiter_add(struct ss_machine *m, const struct waiter *w);
int waiter_block(struct ss_machine *m, struct inode *in, int op, int64_t a0, int64_t a1,
		 int64_t a2, const void *buf);
int removal_start(struct ss_machine *m, struct inode *in, uint64_t start, uint64_t end,
		  uint64_t seq);
void waiters_run(struct ss_machine *m);
void waiters_free(struct ss_machine *m);
int waiters_clone(struct ss_machine *dst, const struct ss_machine *src);
int do_register(struct ss_machine *m, struct inode *in, int owner);
/* memfd_register_guest's one-owner rule for owner on in: 0 or -EPERM */
int reg_refused(struct ss_machine *m, const struct inode *in, int owner);
/* files.c / rw.c workers (no event of their own) */
int do_gmem_create(struct ss_machine *m, int64_t size, uint64_t flags);
int do_add_seals(struct ss_machine *m, struct inode *in, unsigned int seals);
int do_ftruncate(struct ss_machine *m, struct inode *in, int64_t length, uint64_t seq);
int do_fallocate(struct ss_machine *m, struct inode *in, int mode, int64_t offset,
		 int64_t len, uint64_t seq);
int64_t do_pwrite(struct ss_machine *m, struct inode *in, const void *buf, int64_t count,
		  int64_t offset);
int do_get_lock_pfn(struct ss_machine *m, struct inode *in, uint64_t index, int alloc,
		    uint64_t *pfn, int *order);
int do_put_unlock(struct ss_machine *m, uint32_t pfn);

/* owners.c */
/* unmap the owner's gfns bound to ino's pages [start, end) */
void owner_zap(struct ss_machine *m, struct owner *o, uint32_t ino, uint64_t start, uint64_t end);
void owner_map(struct ss_machine *m, struct owner *o, const struct memslot *s,
	       uint64_t gfn, uint64_t pfn, int order, int *map_order);
/* the mapping of gfn: pfn + 1, 0 if none; *order of the mapping */
uint64_t owner_lookup(const struct owner *o, uint64_t gfn, int *order);
int fault_finish(struct ss_machine *m, int owner, uint64_t gfn, uint64_t pfn, int order);
void owners_free(struct ss_machine *m);
int owners_clone(struct ss_machine *dst, const struct ss_machine *src, bool deep);

/* ---- the KVM side ---- */
/* attributes.c */
void attrs_free(struct attr_store *a);
int attrs_clone(struct attr_store *dst, const struct attr_store *src);
uint64_t attrs_get(const struct attr_store *a, uint64_t gfn);
/* whether every gfn of [start, end) has exactly attrs */
bool attrs_all(const struct attr_store *a, uint64_t start, uint64_t end, uint64_t attrs);
int attrs_set(struct attr_store *a, uint64_t start, uint64_t end, uint64_t attrs);
/* the end of the run of gfns alike gfn (capped at end) */
uint64_t attrs_run_end(const struct attr_store *a, uint64_t gfn, uint64_t end);

/* vm.c */
struct owner *vm_get(struct ss_machine *m, int vm);
const struct owner *vm_get_const(const struct ss_machine *m, int vm);
/* the VM an ioctl names, NULL when there is none or its fd is closed: then
 * vm_fail(m, vm) ends the event with the rule and errno that say which */
struct owner *vm_ioctl_get(struct ss_machine *m, int vm);
int vm_fail(struct ss_machine *m, int vm);
/* a closed VM whose last guest_memfd went is destroyed (kvm_put_kvm) */
void vm_put_maybe(struct ss_machine *m, int vm);
bool vm_is_held(const struct ss_machine *m, int vm);
static inline bool owner_is_live_vm(const struct owner *o)
{
	return o->vm && !o->vm->dead;
}
static inline bool owner_is_dead_vm(const struct owner *o)
{
	return o->vm && o->vm->dead;
}
bool vm_has_private_mem(const struct kvm_vm *vm);
int kvm_fail(struct ss_machine *m, int rule, int err);
void vm_free(struct kvm_vm *vm);
struct kvm_vm *vm_clone(const struct kvm_vm *vm);

/* mmu.c: the secondary MMU of a VM (the owner's gfns tree) */
/* map gfn -> pfn (order: of the page; huge when alignment allows); order out */
int mmu_map(struct ss_machine *m, struct owner *o, const struct memslot *s, uint64_t gfn,
	    uint64_t pfn, int page_order, int *map_order);
/* zap mapped gfns of [g0, g1) whose frame belongs to ino (0: any) */
void mmu_zap(struct ss_machine *m, struct owner *o, uint64_t g0, uint64_t g1, uint32_t ino);
void mmu_rfc_alloc_unnotified(struct ss_machine *m, struct inode *in, uint64_t index);
/* the mmu notifier: the VMM's pages of ino [start, end) go (punch, truncate) */
void mmu_notify_file(struct ss_machine *m, uint32_t ino, uint64_t start, uint64_t end);
/* the mmu notifier: hva range [a, b) of a mapping of ino goes (munmap) */
void mmu_notify_hva(struct ss_machine *m, uint32_t ino, uint64_t a, uint64_t b);
/* whether o still maps pfn at some gfn (aliases) */
bool mmu_maps_pfn(const struct ss_machine *m, const struct owner *o, uint64_t pfn);
/* rfc-v2's fallocate callback: map the new private pages through vCPU 0 */
void mmu_rfc_fallocate(struct ss_machine *m, struct owner *o, struct inode *in, uint64_t start,
		       uint64_t end);
/* kvm_gmem_invalidate_begin for one VM slot */
void mmu_gmem_invalidate(struct ss_machine *m, struct owner *o, struct memslot *s, uint64_t a,
			 uint64_t b);

/* kvm_memslot.c */
/* the guest's accesses and the MMU are address space 0's (SMM's slots are never used) */
static inline bool slot_in_as0(const struct memslot *s)
{
	return (s->slot >> 16) == 0;
}
struct memslot *vm_slot_of(const struct owner *o, uint64_t gfn);
/* the last file reference of a guest_memfd went: unbind its slots */
void kvm_gmem_release(struct ss_machine *m, struct inode *in);
void kvm_destroy_memslots(struct ss_machine *m, struct owner *o);

/* kvm_fault.c: one guest access; 1 mapped (*pfn, *mo), 0 an exit (*out), or -errno */
int kvm_fault_page(struct ss_machine *m, struct owner *o, const struct ss_access *a,
		   struct ss_access_result *out, uint64_t *pfn, int *mo);
#define KVM_FAULT_SLEEPS 2  /* kvm_fault_page: the vCPU sleeps on *pfn's lock */
/* the access's byte on the page a fault mapped (ss_vcpu_access's end) */
int kvm_access_finish(struct ss_machine *m, struct owner *o, const struct ss_access *a,
		      struct ss_access_result *out, uint64_t pfn, int mo);

/* vmm.c */
const struct mapping *vmm_find(const struct ss_machine *m, uint64_t addr);
int vmm_assign(struct ss_machine *m, struct mapping *mp);
/* resolve hva: 0 with *in and *index (page), -EFAULT when nothing is mapped,
 * SS_SIGBUS past the file's end */
int vmm_resolve(struct ss_machine *m, uint64_t hva, const struct mapping **mpp, struct inode **inp,
		uint64_t *index);

/* kvm_coco.c: the arch hooks of a guest_memfd page (kvm_gmem_get_pfn's
 * prepare, .free_folio's reclaim) */
bool vm_is_coco(const struct kvm_vm *vm);
void gmem_prepare(struct ss_machine *m, struct owner *o, struct inode *in, uint64_t pfn, bool priv);
void gmem_reclaim(struct ss_machine *m, uint32_t head);
/* TDX: a zap of a private mapping of pfn removes its S-EPT entry (kvm_coco.c) */
void gmem_zap_private(struct ss_machine *m, const struct owner *o, uint64_t pfn, uint64_t n);
void gmem_direct_map_restore(struct ss_machine *m, uint32_t head);
/* kvm_poison.c: is the guest_memfd page at index hardware-poisoned */
bool gmem_poisoned(const struct ss_machine *m, const struct inode *in, uint64_t index);
/* freeing the block at head: the raw poisoned frames stay out of the free lists, the
 * others go back one by one; false when none is poisoned (the caller frees it) */
bool poison_keep_out(struct ss_machine *m, uint32_t head, unsigned int order);
/* kvm_inplace.c (variant inplace_conversion, a proposal) */
static inline bool is_inplace(const struct ss_machine *m)
{
	/* hugetlb_1g builds on conversion support (its part (a)) */
	return (m->cfg.variants & (SS_VAR_INPLACE | SS_VAR_HUGETLB_1G)) != 0;
}
static inline bool is_giga(const struct ss_machine *m, const struct inode *in)
{
	return (m->cfg.variants & SS_VAR_HUGETLB_1G) && in->kind == SS_KIND_GMEM;
}
/* hugetlb.c */
void giga_split(struct ss_machine *m, struct inode *in, uint32_t head);
void giga_split_range(struct ss_machine *m, struct inode *in, uint64_t start, uint64_t end);
void giga_merge_range(struct ss_machine *m, struct inode *in, uint64_t start, uint64_t end);
void inplace_gmem_init(struct ss_machine *m, struct inode *in);
int inplace_slot_sync(struct ss_machine *m, struct owner *o, const struct memslot *s);
bool inplace_private(const struct inode *in, uint64_t index);

/* kvm_pin.c */
void pin_split(struct ss_machine *m, uint32_t head, uint64_t nr);
int pins_clone(struct ss_machine *dst, const struct ss_machine *src);
void pins_free(struct ss_machine *m);
int check_pins(const struct ss_machine *m, char *msg, size_t len);

/* check.c: the checkers' failure (message into msg, -EUCLEAN) */
int check_fail(char *msg, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* check_kvm.c */
int check_kvm(const struct ss_machine *m, const uint64_t *mapped_per_owner, char *msg, size_t len);

static inline bool is_rfc(const struct ss_machine *m)
{
	return m->cfg.profile == SS_PROFILE_RFC_V2;
}

#include "cow.h"

#endif /* SS_INTERNAL_H */
