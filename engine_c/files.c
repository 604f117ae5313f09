/*
 * files.c - memfd and guest_memfd files: creation, the fd table, seals,
 * ftruncate, fallocate, close.
 *
 * Each function validates in the kernel's order and only then acts, so a
 * failing call changes nothing.  The rules and their order are those of
 * mm/memfd.c and mm/shmem.c (5.15 plus the RFC for the rfc-v2 profile,
 * 6.18 for the guest-memfd profile) and virt/kvm/guest_memfd.c (6.18).
 *
 * An inode lives while an fd, a mapping, an owner registration, a memslot
 * or a waiter refers to it; when the last goes its pages are freed.
 */
#include "internal.h"
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#define MFD_NAME_MAX_LEN 249
#define MFD_ALL_RFC (SS_MFD_CLOEXEC | SS_MFD_ALLOW_SEALING | SS_MFD_HUGETLB)
#define MFD_ALL_GMEM (MFD_ALL_RFC | SS_MFD_NOEXEC_SEAL | SS_MFD_EXEC)
#define SEALS_RFC 0x3fu
#define SEALS_GMEM 0x3fu

struct inode *inode_get(struct ss_machine *m, uint32_t ino)
{
	if (ino < 1 || ino > (uint32_t)m->ninodes || m->inodes[ino - 1].ino != ino)
		return NULL;
	return &m->inodes[ino - 1];
}

struct inode *fd_inode(struct ss_machine *m, int fd)
{
	if (fd < 0 || fd >= m->nfds || !m->fdtab[fd])
		return NULL;
	return inode_get(m, m->fdtab[fd]);
}

int inode_fd(const struct inode *in)
{
	return in->fd;
}

/* a registration holds the file while its owner lives (the VM's memslots
 * hold the struct file); a destroyed VM's stays on the inode but holds nothing */
static bool regs_hold(const struct ss_machine *m, const struct inode *in)
{
	for (int i = 0; i < in->nregs; i++)
		if (!owner_is_dead_vm(&m->owners[in->regs[i].owner]))
			return true;
	return false;
}

/* references to the file besides the page locks get_lock_pfn holds, not
 * counting waiter `skip` (-1: count all) */
bool inode_held_but(struct ss_machine *m, struct inode *in, int skip)
{
	int pending = in->pending;
	if (skip >= 0 && m->waiters[skip].ino == in->ino &&
	    (m->waiters[skip].kind == W_REMOVE || m->waiters[skip].kind == W_BLOCKED))
		pending--;
	if (in->fd >= 0 || in->maps || regs_hold(m, in) || pending)
		return true;
	for (int i = 0; i < m->nwaiters; i++)
		if (i != skip && m->waiters[i].ino == in->ino)
			return true;
	for (int o = 0; o < m->nowners; o++)
		for (int s = 0; s < m->owners[o].nslots; s++) {
			const struct memslot *sl = &m->owners[o].slots[s];
			/* a guest_memfd binding does not hold the file (kvm_gmem_bind) */
			if ((sl->ino == in->ino && !(sl->vm && in->kind == SS_KIND_GMEM)) ||
			    sl->shared_ino == in->ino)
				return true;
		}
	return false;
}

static bool inode_held(struct ss_machine *m, struct inode *in)
{
	return inode_held_but(m, in, -1);
}

static bool inode_in_use(struct ss_machine *m, struct inode *in)
{
	/* a page locked by get_lock_pfn is never freed under its holder */
	return inode_held(m, in) || inode_has_locked(m, in);
}

void inode_put_maybe(struct ss_machine *m, struct inode *in)
{
	if (inode_in_use(m, in))
		return;
	cache_free_all(m, in);
	/* pages still referenced (a guest_memfd page KVM holds) left the cache
	 * as orphans; the inode record stays until the last one is freed */
	if (in->orphans)
		return;
	tree_destroy(&in->cache);
	attrs_free(&in->gattrs);
	memset(in, 0, sizeof(*in));
	in->fd = -1;
}

/* the op that drops the file's last reference (close, munmap) runs its final
 * truncate (evict): every page it can lock goes at once, then it sleeps on the
 * lock of each page get_lock_pfn holds (SS_PENDING) and finishes the removal
 * when put_unlock_pfn drops it; the file goes with its last page */
int inode_release(struct ss_machine *m, struct inode *in)
{
	if (in->kind == SS_KIND_GMEM && in->fd < 0 && !in->maps)
		kvm_gmem_release(m, in);  /* the file's last reference: unbind */
	if (inode_held(m, in))
		return 0;
	if (inode_has_locked(m, in))
		return removal_start(m, in, 0, UINT64_MAX, m->nevents);
	inode_put_maybe(m, in);
	return 0;
}

static int fd_alloc(struct ss_machine *m, uint32_t ino)
{
	int fd = 3;
	while (fd < m->nfds && m->fdtab[fd])
		fd++;
	if (fd >= 1024)
		return -EMFILE;
	if (fd >= m->nfds) {
		int n = m->nfds ? m->nfds * 2 : 16;
		uint32_t *t = realloc(m->fdtab, (size_t)n * sizeof(*t));
		if (!t)
			return -ENOMEM;
		memset(t + m->nfds, 0, (size_t)(n - m->nfds) * sizeof(*t));
		m->fdtab = t;
		m->nfds = n;
	}
	m->fdtab[fd] = ino;
	return fd;
}

static struct inode *inode_new(struct ss_machine *m)
{
	for (int i = 0; i < m->ninodes; i++)
		if (!m->inodes[i].ino) {
			m->inodes[i].ino = (uint32_t)i + 1;
			return &m->inodes[i];
		}
	if (m->ninodes >= 4096)
		return NULL;
	if (m->ninodes == m->cap_inodes) {
		int cap = m->cap_inodes ? m->cap_inodes * 2 : 8;
		struct inode *p = realloc(m->inodes, (size_t)cap * sizeof(*p));
		if (!p)
			return NULL;
		m->inodes = p;
		m->cap_inodes = cap;
	}
	struct inode *in = &m->inodes[m->ninodes++];
	memset(in, 0, sizeof(*in));
	in->ino = (uint32_t)m->ninodes;
	in->fd = -1;
	return in;
}

static int install(struct ss_machine *m, struct inode *in)
{
	int fd = fd_alloc(m, in->ino);
	if (fd < 0) {
		memset(in, 0, sizeof(*in));
		in->fd = -1;
		return fd;
	}
	in->fd = fd;
	return fd;
}

static int do_memfd_create(struct ss_machine *m, const char *name, unsigned int flags)
{
	unsigned int all = is_rfc(m) ? MFD_ALL_RFC : MFD_ALL_GMEM;
	if (flags & SS_MFD_HUGETLB)
		all |= 0x3fu << 26;  /* MFD_HUGE_MASK << MFD_HUGE_SHIFT: page size */
	if (flags & ~all)
		return -EINVAL;
	if (!name || strlen(name) > MFD_NAME_MAX_LEN)
		return -EINVAL;
	if ((flags & SS_MFD_EXEC) && (flags & SS_MFD_NOEXEC_SEAL))
		return -EINVAL;
	struct inode *in = inode_new(m);
	if (!in)
		return -ENFILE;
	in->kind = SS_KIND_MEMFD;
	snprintf(in->name, sizeof(in->name), "%s", name);
	in->flags = flags;
	in->seals = SS_F_SEAL_SEAL;
	if (flags & SS_MFD_NOEXEC_SEAL)
		in->seals = SS_F_SEAL_EXEC;
	else if (flags & SS_MFD_ALLOW_SEALING)
		in->seals = 0;
	tree_init(&in->cache);
	return install(m, in);
}

int ss_memfd_create(struct ss_machine *m, const char *name, unsigned int flags)
{
	ev_begin(m, SS_OP_MEMFD_CREATE, -1, flags, name ? (int64_t)strlen(name) : -1, 0, 0);
	return (int)ev_end(m, do_memfd_create(m, name, flags));
}

int do_gmem_create(struct ss_machine *m, int64_t size, uint64_t flags)
{
	if (is_rfc(m))
		return -ENOTTY;  /* no KVM_CREATE_GUEST_MEMFD in 5.15 */
	if (flags & ~(SS_GMEM_FLAG_MMAP | SS_GMEM_FLAG_INIT_SHARED))
		return -EINVAL;
	if (size <= 0 || (size & (SS_PAGE_SIZE - 1)))
		return -EINVAL;
	if ((m->cfg.variants & SS_VAR_HUGETLB_1G) && (size & ((SS_PAGE_SIZE << SS_GIGA_ORDER) - 1)))
		return -EINVAL;  /* hugetlb_1g: a multiple of the 1 GiB page */
	struct inode *in = inode_new(m);
	if (!in)
		return -ENFILE;
	in->kind = SS_KIND_GMEM;
	snprintf(in->name, sizeof(in->name), "kvm-guest-memfd");
	in->flags = flags;
	in->size = size;
	tree_init(&in->cache);
	inplace_gmem_init(m, in);
	return install(m, in);
}

int ss_gmem_create(struct ss_machine *m, int64_t size, uint64_t flags)
{
	ev_begin(m, SS_OP_GMEM_CREATE, -1, size, (int64_t)flags, 0, 0);
	return (int)ev_end(m, do_gmem_create(m, size, flags));
}

/* ---- seals ---- */

/* whether any page of the file (a huge page counts once, by its head)
 * matches: a walk of the cache tree that skips holes */
static bool any_page(struct ss_machine *m, struct inode *in, bool (*match)(const struct frame *))
{
	uint64_t idx = 0, v;
	while ((v = tree_find(&in->cache, &idx, UINT64_MAX))) {
		uint32_t head = frame_head(m, (uint32_t)(v - 1));
		const struct frame *hf = frame_ro(m, head);
		if (match(hf))
			return true;
		uint64_t nr = (hf->flags & F_HEAD) ? 1ULL << hf->order : 1;
		idx = hf->index + nr;
		if (!idx)
			break;
	}
	return false;
}

static bool is_locked(const struct frame *hf)
{
	return hf->flags & F_LOCKED;
}

static bool is_pinned(const struct frame *hf)
{
	return hf->refcount > 1;  /* a reference beyond the page cache's */
}

bool inode_has_locked(struct ss_machine *m, struct inode *in)
{
	return any_page(m, in, is_locked);
}

bool inode_has_pins(struct ss_machine *m, struct inode *in)
{
	return any_page(m, in, is_pinned);
}

int do_add_seals(struct ss_machine *m, struct inode *in, unsigned int seals)
{
	if (in->kind != SS_KIND_MEMFD)
		return -EINVAL;
	if (seals & ~(is_rfc(m) ? SEALS_RFC : SEALS_GMEM))
		return -EINVAL;
	if (in->seals & SS_F_SEAL_SEAL)
		return -EPERM;
	/* 6.18: F_SEAL_EXEC on an executable memfd implies the write seals,
	 * before they are checked (so a shared mapping makes it EBUSY) */
	if (!is_rfc(m) && (seals & SS_F_SEAL_EXEC) && !(in->flags & SS_MFD_NOEXEC_SEAL))
		seals |= SS_F_SEAL_SHRINK | SS_F_SEAL_GROW | SS_F_SEAL_WRITE | SS_F_SEAL_FUTURE_WRITE;
	if ((seals & SS_F_SEAL_WRITE) && !(in->seals & SS_F_SEAL_WRITE)) {
		if (in->shared_maps)
			return -EBUSY;
		if (inode_has_pins(m, in))
			return -EBUSY;
	}
	if (is_rfc(m) && (seals & SS_F_SEAL_GUEST)) {
		if (in->maps)
			return -EBUSY;
		if (in->size)
			return -EBUSY;
	}
	in->seals |= seals;
	return 0;
}

int ss_add_seals(struct ss_machine *m, int fd, unsigned int seals)
{
	ev_begin(m, SS_OP_ADD_SEALS, fd, seals, 0, 0, 0);
	struct inode *in = fd_inode(m, fd);
	if (!in)
		return (int)ev_end(m, -EBADF);
	/* checked before memfd_add_seals() takes the inode lock */
	if (seals & ~(is_rfc(m) ? SEALS_RFC : SEALS_GMEM))
		return (int)ev_end(m, -EINVAL);
	if (in->pending)
		return (int)ev_end(m, waiter_block(m, in, SS_OP_ADD_SEALS, seals, 0, 0, NULL));
	return (int)ev_end(m, do_add_seals(m, in, seals));
}

int ss_get_seals(struct ss_machine *m, int fd)
{
	ev_begin(m, SS_OP_GET_SEALS, fd, 0, 0, 0, 0);
	struct inode *in = fd_inode(m, fd);
	if (!in)
		return (int)ev_end(m, -EBADF);
	if (in->kind != SS_KIND_MEMFD)
		return (int)ev_end(m, -EINVAL);
	return (int)ev_end(m, in->seals);
}

/* ---- ftruncate ---- */

int do_ftruncate(struct ss_machine *m, struct inode *in, int64_t length, uint64_t seq)
{
	if (length < 0)
		return -EINVAL;
	if (in->kind == SS_KIND_GMEM)
		return -EINVAL;
	if (in->flags & SS_MFD_HUGETLB && (length & ((1 << 21) - 1)))
		return -EINVAL;
	if ((length < in->size && (in->seals & SS_F_SEAL_SHRINK)) ||
	    (length > in->size && (in->seals & SS_F_SEAL_GROW)))
		return -EPERM;
	if (is_rfc(m) && (in->seals & SS_F_SEAL_GUEST) && (length & (SS_PAGE_SIZE - 1)))
		return -EINVAL;
	int64_t old = in->size;
	in->size = length;
	if (length > old)
		return 0;
	/* like shmem_setattr(): shrinking, or the same size, truncates */
	/* the tail of the new last page; rounded up in unsigned: within a page of
	 * 2^63 the page's end is past INT64_MAX */
	cache_zero_edges(m, in, (uint64_t)length,
			 ((uint64_t)length + SS_PAGE_SIZE - 1) & ~(uint64_t)(SS_PAGE_SIZE - 1));
	uint64_t start = ((uint64_t)length + SS_PAGE_SIZE - 1) >> SS_PAGE_SHIFT;
	in->keep_end = 0;
	/* truncate_pagecache: unmap_mapping_range(holebegin, 0, even_cows=1) */
	cow_truncate(m, in, start);
	return removal_start(m, in, start, UINT64_MAX, seq);
}

int ss_ftruncate(struct ss_machine *m, int fd, int64_t length)
{
	ev_begin(m, SS_OP_FTRUNCATE, fd, length, 0, 0, 0);
	struct inode *in = fd_inode(m, fd);
	if (length < 0)
		return (int)ev_end(m, -EINVAL);
	if (!in)
		return (int)ev_end(m, -EBADF);
	if (in->pending)
		return (int)ev_end(m, waiter_block(m, in, SS_OP_FTRUNCATE, length, 0, 0, NULL));
	return (int)ev_end(m, do_ftruncate(m, in, length, m->nevents));
}

/* ---- fallocate ---- */

/* vfs_fallocate()'s mode checks: the modes the VFS knows pass here (the
 * file system refuses them later, after the range checks) */
static int vfs_fallocate_mode(int mode)
{
	const int mode_mask = 0x02 | 0x08 | 0x10 | 0x20 | 0x40 | 0x80;
	if (mode & ~(mode_mask | SS_FALLOC_FL_KEEP_SIZE))
		return -EOPNOTSUPP;
	switch (mode & mode_mask) {
	case 0:          /* allocate */
	case 0x40:       /* UNSHARE_RANGE */
	case 0x10:       /* ZERO_RANGE */
		return 0;
	case SS_FALLOC_FL_PUNCH_HOLE:
		return (mode & SS_FALLOC_FL_KEEP_SIZE) ? 0 : -EOPNOTSUPP;
	case 0x08:       /* COLLAPSE_RANGE */
	case 0x20:       /* INSERT_RANGE */
	case 0x80:       /* WRITE_ZEROES */
		return (mode & SS_FALLOC_FL_KEEP_SIZE) ? -EOPNOTSUPP : 0;
	}
	return -EOPNOTSUPP;
}

static int gmem_fallocate_check(struct inode *in, int mode, int64_t offset, int64_t len)
{
	if (!(mode & SS_FALLOC_FL_KEEP_SIZE))
		return -EOPNOTSUPP;
	if ((offset & (SS_PAGE_SIZE - 1)) || (len & (SS_PAGE_SIZE - 1)))
		return -EINVAL;
	if (!(mode & SS_FALLOC_FL_PUNCH_HOLE) && offset + len > in->size)
		return -EINVAL;
	return 0;
}

static int fallocate_alloc(struct ss_machine *m, struct inode *in, int mode,
			   int64_t offset, int64_t len)
{
	uint64_t start = (uint64_t)offset >> SS_PAGE_SHIFT;
	uint64_t end = ((uint64_t)offset + (uint64_t)len + SS_PAGE_SIZE - 1) >> SS_PAGE_SHIFT;
	int64_t old_keep = in->keep_end;
	uint64_t idx = start;
	while (idx < end) {
		uint64_t pfn;
		bool isnew;
		int err = cache_alloc_page(m, in, idx, &pfn, &isnew);
		if (err) {
			/* give back what this call allocated: the pages not
			 * present before are exactly the new ones */
			undo_new_pages(m, in, start, idx);
			in->keep_end = old_keep;
			return err;
		}
		uint32_t head = frame_head(m, (uint32_t)pfn);
		struct frame *hf = frame_rw(m, head);
		if (isnew)
			mark_falloc(m, head);
		idx = ((hf->flags & F_HEAD) ? hf->index + (1ULL << hf->order) : idx + 1);
	}
	clear_falloc(m, in, start, end);
	if (!(mode & SS_FALLOC_FL_KEEP_SIZE) && offset + len > in->size)
		in->size = offset + len;
	if (in->kind == SS_KIND_MEMFD)
		callback_fallocate(m, in, start, end);
	return 0;
}

/* what vfs_fallocate() and the file system check before the inode lock */
static int fallocate_precheck(struct inode *in, int mode, int64_t offset, int64_t len)
{
	if (offset < 0 || len <= 0)
		return -EINVAL;
	int err = vfs_fallocate_mode(mode);
	if (err)
		return err;
	if (offset > SS_MAX_FILESIZE - len)
		return -EFBIG;
	/* shmem and guest_memfd know only KEEP_SIZE and PUNCH_HOLE */
	if (mode & ~(SS_FALLOC_FL_KEEP_SIZE | SS_FALLOC_FL_PUNCH_HOLE))
		return -EOPNOTSUPP;
	if (in->kind == SS_KIND_GMEM)
		return gmem_fallocate_check(in, mode, offset, len);
	return 0;
}

int do_fallocate(struct ss_machine *m, struct inode *in, int mode, int64_t offset,
		 int64_t len, uint64_t seq)
{
	int err = fallocate_precheck(in, mode, offset, len);
	if (err)
		return err;
	if (mode & SS_FALLOC_FL_PUNCH_HOLE) {
		if (in->kind == SS_KIND_MEMFD) {
			if (in->seals & (SS_F_SEAL_WRITE | SS_F_SEAL_FUTURE_WRITE))
				return -EPERM;
			if (is_rfc(m) && (in->seals & SS_F_SEAL_GUEST) &&
			    ((offset | len) & (SS_PAGE_SIZE - 1)))
				return -EINVAL;
		}
		uint64_t start = ((uint64_t)offset + SS_PAGE_SIZE - 1) >> SS_PAGE_SHIFT;
		uint64_t end = ((uint64_t)offset + (uint64_t)len) >> SS_PAGE_SHIFT;
		cache_zero_edges(m, in, (uint64_t)offset, (uint64_t)offset + (uint64_t)len);
		if (in->kind == SS_KIND_GMEM && start < end)
			callback_gmem_invalidate(m, in, start, end);
		if (start >= end)
			return 0;
		if (in->kind == SS_KIND_MEMFD)
			cow_punch(m, in, start, end);  /* even_cows=0: unmap_mapping_range */
		return removal_start(m, in, start, end, seq);
	}
	/* shmem_fallocate and hugetlbfs_fallocate both refuse growth past a
	 * F_SEAL_GROW before they allocate anything */
	if ((in->seals & SS_F_SEAL_GROW) && offset + len > in->size)
		return -EPERM;
	if (in->flags & SS_MFD_HUGETLB)
		return -ENOSPC;  /* no hugetlb pages reserved on this machine */
	return fallocate_alloc(m, in, mode, offset, len);
}

int ss_fallocate(struct ss_machine *m, int fd, int mode, int64_t offset, int64_t len)
{
	ev_begin(m, SS_OP_FALLOCATE, fd, mode, offset, len, 0);
	struct inode *in = fd_inode(m, fd);
	if (!in)
		return (int)ev_end(m, -EBADF);
	int err = fallocate_precheck(in, mode, offset, len);
	if (err)
		return (int)ev_end(m, err);
	if (in->pending)
		return (int)ev_end(m, waiter_block(m, in, SS_OP_FALLOCATE, mode, offset, len, NULL));
	return (int)ev_end(m, do_fallocate(m, in, mode, offset, len, m->nevents));
}

/* ---- close ---- */

int ss_close(struct ss_machine *m, int fd)
{
	ev_begin(m, SS_OP_CLOSE, fd, 0, 0, 0, 0);
	struct inode *in = fd_inode(m, fd);
	if (!in)
		return (int)ev_end(m, -EBADF);
	m->fdtab[fd] = 0;
	in->fd = -1;
	return (int)ev_end(m, inode_release(m, in));
}
