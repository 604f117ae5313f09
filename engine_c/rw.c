/*
 * rw.c - pread, pwrite, mmap and munmap on simulated files.
 *
 * Data lives per frame (a 4 KiB buffer, only once written); holes and
 * fallocated pages read as zeros.  mmap maps nothing: it records a mapping
 * that counts for the seal rules (F_SEAL_WRITE needs no shared mapping,
 * F_SEAL_GUEST no mapping at all).
 */
#include "internal.h"
#include <stdlib.h>
#include <string.h>

#define MAX_RW_COUNT (0x7ffff000LL)

int64_t ss_pread(struct ss_machine *m, int fd, void *buf, int64_t count, int64_t offset)
{
	ev_begin(m, SS_OP_PREAD, fd, offset, count, 0, 0);
	struct inode *in = fd_inode(m, fd);
	if (offset < 0)
		return ev_end(m, -EINVAL);
	if (!in)
		return ev_end(m, -EBADF);
	if (in->kind == SS_KIND_GMEM)
		return ev_end(m, -ESPIPE);
	if (count < 0)
		return ev_end(m, -EFAULT);  /* a huge size_t: access_ok() fails */
	if (count > SS_MAX_FILESIZE - offset)
		return ev_end(m, -EINVAL);
	if (count > MAX_RW_COUNT)
		count = MAX_RW_COUNT;
	if (!count || offset >= in->size)
		return ev_end(m, 0);
	if (is_rfc(m) && (in->seals & SS_F_SEAL_GUEST))
		return ev_end(m, -EPERM);
	int64_t n = in->size - offset < count ? in->size - offset : count;
	uint8_t *out = buf;
	int64_t done = 0;
	while (done < n) {
		uint64_t pos = (uint64_t)(offset + done);
		uint64_t idx = pos >> SS_PAGE_SHIFT;
		unsigned int off = pos & (SS_PAGE_SIZE - 1);
		int64_t chunk = SS_PAGE_SIZE - off;
		if (chunk > n - done)
			chunk = n - done;
		uint64_t v = tree_load(&in->cache, idx);
		const struct frame *f = v ? frame_ro(m, v - 1) : NULL;
		if (f && f->data)
			memcpy(out + done, data_ro(m, f->data - 1) + off, (size_t)chunk);
		else
			memset(out + done, 0, (size_t)chunk);
		done += chunk;
	}
	return ev_end(m, n);
}

static int write_check(struct ss_machine *m, struct inode *in, int64_t pos, int64_t len)
{
	if (in->seals & (SS_F_SEAL_WRITE | SS_F_SEAL_FUTURE_WRITE))
		return -EPERM;
	if (is_rfc(m) && (in->seals & SS_F_SEAL_GUEST))
		return -EPERM;
	if ((in->seals & SS_F_SEAL_GROW) && pos + len > in->size)
		return -EPERM;
	return 0;
}

/* what vfs_write() checks before the file system takes the inode lock */
static int pwrite_precheck(struct inode *in, int64_t count, int64_t offset)
{
	if (in->kind == SS_KIND_GMEM)
		return -ESPIPE;
	if (count < 0)
		return -EFAULT;
	if (count > SS_MAX_FILESIZE - offset)
		return -EINVAL;
	if (in->flags & SS_MFD_HUGETLB)
		return -EINVAL;
	return 0;
}

int64_t do_pwrite(struct ss_machine *m, struct inode *in, const void *buf, int64_t count,
		  int64_t offset)
{
	int err = pwrite_precheck(in, count, offset);
	if (err)
		return err;
	if (count > MAX_RW_COUNT)
		count = MAX_RW_COUNT;
	if (!count)
		return 0;
	const uint8_t *src = buf;
	int64_t done = 0;
	err = 0;
	while (done < count) {
		int64_t pos = offset + done;
		uint64_t idx = (uint64_t)pos >> SS_PAGE_SHIFT;
		unsigned int off = pos & (SS_PAGE_SIZE - 1);
		int64_t chunk = SS_PAGE_SIZE - off;
		if (chunk > count - done)
			chunk = count - done;
		err = write_check(m, in, pos, chunk);
		if (err)
			break;
		uint64_t pfn;
		bool isnew;
		err = cache_alloc_page(m, in, idx, &pfn, &isnew);
		uint8_t *dst;
		if (!err)
			err = data_get(m, (uint32_t)pfn, &dst);
		if (err)
			break;
		memcpy(dst + off, src + done, (size_t)chunk);
		frame_rw(m, frame_head(m, (uint32_t)pfn))->flags |= F_DIRTY | F_UPTODATE;
		done += chunk;
		if (pos + chunk > in->size)
			in->size = pos + chunk;
	}
	return done ? done : err;
}

int64_t ss_pwrite(struct ss_machine *m, int fd, const void *buf, int64_t count, int64_t offset)
{
	ev_begin(m, SS_OP_PWRITE, fd, offset, count, 0, 0);
	struct inode *in = fd_inode(m, fd);
	if (offset < 0)
		return ev_end(m, -EINVAL);
	if (!in)
		return ev_end(m, -EBADF);
	int err = pwrite_precheck(in, count, offset);
	if (err)
		return ev_end(m, err);
	if (in->pending && in->kind == SS_KIND_MEMFD)
		return ev_end(m, waiter_block(m, in, SS_OP_PWRITE, offset, count, 0, buf));
	return ev_end(m, do_pwrite(m, in, buf, count, offset));
}

static int do_mmap(struct ss_machine *m, struct inode *in, int64_t offset, int64_t length,
		   int prot, int flags)
{
	int type = flags & (SS_MAP_SHARED | SS_MAP_PRIVATE);
	if (prot & ~(SS_PROT_READ | SS_PROT_WRITE))
		return -EINVAL;
	/* ksys_mmap_pgoff() rounds a hugetlbfs length up to the huge page size:
	 * a length that wraps to 0 there is EINVAL in do_mmap() */
	if ((in->flags & SS_MFD_HUGETLB) && in->kind == SS_KIND_MEMFD &&
	    (uint64_t)length > UINT64_MAX - ((1u << 21) - 1))
		return -EINVAL;
	/* do_mmap()'s order: length, its rounding, the offset, then the type */
	if (length == 0)
		return -EINVAL;
	if (length < 0 || length > (1LL << 47))
		return -ENOMEM;
	if (offset < 0 || offset > SS_MAX_FILESIZE - length)
		return -EOVERFLOW;
	if (!type)
		return -EINVAL;
	/* MAP_SHARED | MAP_PRIVATE is MAP_SHARED_VALIDATE */
	bool shared = type & SS_MAP_SHARED;
	if (type == (SS_MAP_SHARED | SS_MAP_PRIVATE) && (flags & 0x80000))
		return -EOPNOTSUPP;  /* MAP_SYNC: not supported by shmem */
	if (in->flags & SS_MFD_HUGETLB && in->kind == SS_KIND_MEMFD) {
		if (offset & ((1 << 21) - 1))
			return -EINVAL;  /* hugetlbfs_file_mmap(): 2 MiB aligned */
		return -ENOMEM;  /* no huge pages reserved */
	}
	bool counts = shared;
	if (in->kind == SS_KIND_GMEM) {
		if (!(in->flags & SS_GMEM_FLAG_MMAP))
			return -ENODEV;
		if (!shared)
			return -EINVAL;
	} else {
		if (is_rfc(m) && (in->seals & SS_F_SEAL_GUEST) &&
		    !(m->cfg.variants & SS_VAR_MMAP_SHARED))
			return -EPERM;
		if (in->seals & (SS_F_SEAL_WRITE | SS_F_SEAL_FUTURE_WRITE)) {
			if (shared && (prot & SS_PROT_WRITE))
				return -EPERM;
			counts = false;  /* VM_MAYWRITE cleared */
		}
	}
	/* map ids are never reused, like addresses a test would not expect back */
	if (m->nmaps >= 65536)
		return -ENOMEM;
	/* get_unmapped_area(): the VMM address space (vmm.c) */
	struct mapping probe = { .length = length };
	uint64_t saved = m->vmm_lowest;
	if (vmm_assign(m, &probe))
		return -ENOMEM;
	struct mapping *p = realloc(m->maps, (size_t)(m->nmaps + 1) * sizeof(*p));
	if (!p) {
		m->vmm_lowest = saved;
		return -ENOMEM;
	}
	m->maps = p;
	int id = ++m->nmaps;
	struct mapping *mp = &m->maps[id - 1];
	mp->id = id;
	mp->addr = probe.addr;
	mp->ino = in->ino;
	mp->offset = offset;
	mp->length = length;
	mp->prot = prot;
	mp->flags = flags | (counts ? 0x100000 : 0);
	tree_init(&mp->cow);
	in->maps++;
	if (counts)
		in->shared_maps++;
	return id;
}

int ss_mmap(struct ss_machine *m, int fd, int64_t offset, int64_t length, int prot, int flags)
{
	ev_begin(m, SS_OP_MMAP, fd, offset, length, prot, flags);
	struct inode *in = fd_inode(m, fd);
	if (offset & (SS_PAGE_SIZE - 1))
		return (int)ev_end(m, -EINVAL);
	if (!in)
		return (int)ev_end(m, -EBADF);
	return (int)ev_end(m, do_mmap(m, in, offset, length, prot, flags));
}

int ss_munmap(struct ss_machine *m, int map_id)
{
	ev_begin(m, SS_OP_MUNMAP, -1, map_id, 0, 0, 0);
	if (map_id < 1 || map_id > m->nmaps || !m->maps[map_id - 1].id)
		return (int)ev_end(m, -EINVAL);
	struct mapping *mp = &m->maps[map_id - 1];
	struct inode *in = inode_get(m, mp->ino);
	if (in) {
		if (m->cur)
			m->cur->e.fd = in->fd;
		/* the mmu notifier: VMs mapping through these addresses zap them */
		mmu_notify_hva(m, in->ino, mp->addr,
			       mp->addr + (((uint64_t)mp->length + SS_PAGE_SIZE - 1) & ~(uint64_t)(SS_PAGE_SIZE - 1)));
		in->maps--;
		if (mp->flags & 0x100000)
			in->shared_maps--;
	}
	cow_unmap(m, mp);  /* zap_pte_range frees its private copies (cow.c) */
	memset(mp, 0, sizeof(*mp));
	return (int)ev_end(m, in ? inode_release(m, in) : 0);
}
