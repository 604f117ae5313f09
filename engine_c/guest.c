/*
 * guest.c - the RFC's guest interface and the sleeping operations.
 *
 *   memfd_register_guest(inode, owner, guest_ops, &guest_mem_ops)
 *   get_lock_pfn(inode, index, alloc, &order) -> pfn   (page locked, +1 ref)
 *   put_unlock_pfn(pfn)                                 (dirty, unlock, -1 ref)
 *
 * and the owner callbacks the file makes: invalidate_page_range(start, end)
 * with an inclusive end, once per removed page; fallocate(start, end) with an
 * exclusive end, once per successful allocation.  In the guest-memfd
 * profile the upstream shape applies instead: kvm_gmem_get_pfn takes a
 * reference without holding the lock, and a punch calls
 * kvm_gmem_invalidate_begin once per bound memslot, end exclusive.
 *
 * Sleeping: an operation that would sleep on a page lock (or on i_rwsem
 * behind such a sleeper) becomes a waiter; after every unlock the waiters
 * are retried in FIFO order and each that finishes gets an SS_OP_WAKE event.
 */
#include "internal.h"
#include <stdlib.h>
#include <string.h>

/* ---- callbacks ---- */

void callback_invalidate(struct ss_machine *m, struct inode *in, uint64_t start,
			 uint64_t end_incl)
{
	for (int i = 0; i < in->nregs; i++) {
		struct owner *o = &m->owners[in->regs[i].owner];
		ev_callback(m, SS_CB_INVALIDATE, o->id, start, end_incl);
		o->ncallbacks++;
		if (owner_is_live_vm(o) && m->cur && m->cur->e.hazard == SS_HAZ_NONE)
			ev_hazard(m, SS_HAZ_ZAP_MISSES, 0);  /* vm_is_dead returns first */  /* patch 13: modelled as meant */
		if (o->kind == SS_OWNER_KVM)
			owner_zap(m, o, in->ino, start, end_incl + 1);
	}
}

void callback_fallocate(struct ss_machine *m, struct inode *in, uint64_t start, uint64_t end)
{
	for (int i = 0; i < in->nregs; i++) {
		struct owner *o = &m->owners[in->regs[i].owner];
		ev_callback(m, SS_CB_FALLOCATE, o->id, start, end);
		o->ncallbacks++;
		if (o->vm)
			mmu_rfc_fallocate(m, o, in, start, end);
	}
}

void callback_gmem_invalidate(struct ss_machine *m, struct inode *in, uint64_t start,
			      uint64_t end)
{
	for (int oi = 0; oi < m->nowners; oi++) {
		struct owner *o = &m->owners[oi];
		for (int s = 0; s < o->nslots; s++) {
			struct memslot *sl = &o->slots[s];
			if (sl->ino != in->ino)
				continue;
			uint64_t a = start > sl->index ? start : sl->index;
			uint64_t b = end < sl->index + sl->npages ? end : sl->index + sl->npages;
			if (a >= b)
				continue;
			ev_callback(m, SS_CB_GMEM_INVALIDATE, o->id, a, b);
			o->ncallbacks++;
			if (o->vm)
				mmu_gmem_invalidate(m, o, sl, a, b);
			else
				owner_zap(m, o, in->ino, a, b);
		}
	}
}

/* ---- registration ---- */

/* -EPERM when another owner holds the file (the thread's multi_owner variant lets
 * any in); a destroyed VM holding it marks the dead_owner hazard (patch 13 checks
 * vm_is_dead instead of unregistering, so the file stays the dead VM's) */
int reg_refused(struct ss_machine *m, const struct inode *in, int owner)
{
	if (!in->nregs || (m->cfg.variants & SS_VAR_MULTI_OWNER))
		return 0;
	for (int i = 0; i < in->nregs; i++)
		if (in->regs[i].owner == owner)
			return 0;
	if (owner_is_dead_vm(&m->owners[in->regs[0].owner]))
		ev_hazard(m, SS_HAZ_DEAD_OWNER, 0);
	return -EPERM;
}

int do_register(struct ss_machine *m, struct inode *in, int owner)
{
	if (owner < 0 || owner >= m->nowners)
		return -EINVAL;
	if (in->kind != SS_KIND_MEMFD)
		return -EINVAL;
	bool multi = m->cfg.variants & SS_VAR_MULTI_OWNER;
	for (int i = 0; i < in->nregs; i++)
		if (in->regs[i].owner == owner) {
			/* the same owner again: its ops replace the old (the RFC);
			 * the thread's suggestion counts its users */
			if (multi)
				in->regs[i].users++;
			return 0;
		}
	int err = reg_refused(m, in, owner);
	if (err)
		return err;
	if (in->nregs == SS_MAX_REGS)
		return -ENOSPC;
	in->regs[in->nregs].owner = owner;
	in->regs[in->nregs].users = 1;
	in->nregs++;
	return 0;
}

int ss_register_guest(struct ss_machine *m, int fd, int owner)
{
	ev_begin(m, SS_OP_REGISTER_GUEST, fd, owner, 0, 0, 0);
	struct inode *in = fd_inode(m, fd);
	if (!in)
		return (int)ev_end(m, -EBADF);
	if (!is_rfc(m))
		return (int)ev_end(m, -EINVAL);
	int r = do_register(m, in, owner);
	if (!r && !(in->seals & SS_F_SEAL_GUEST))
		ev_hazard(m, SS_HAZ_UNSEALED_REGISTER, 0);
	return (int)ev_end(m, r);
}

static int slots_on(const struct owner *o, uint64_t ino)
{
	int n = 0;
	for (int i = 0; i < o->nslots; i++)   /* an rfc-v2 fd slot uses its shared fd too */
		n += o->slots[i].ino == ino || o->slots[i].shared_ino == ino;
	return n;
}

int ss_unregister_guest(struct ss_machine *m, int fd, int owner)
{
	ev_begin(m, SS_OP_UNREGISTER_GUEST, fd, owner, 0, 0, 0);
	struct inode *in = fd_inode(m, fd);
	if (!in)
		return (int)ev_end(m, -EBADF);
	if (!(m->cfg.variants & SS_VAR_MULTI_OWNER))
		return (int)ev_end(m, -EINVAL);  /* the RFC has no unregister */
	for (int i = 0; i < in->nregs; i++) {
		if (in->regs[i].owner != owner)
			continue;
		/* each memslot of the owner on this file holds a use (made with the
		 * slot): unregistering it would leave the slot faulting pages whose
		 * invalidations no longer reach the owner */
		if (in->regs[i].users <= slots_on(&m->owners[owner], in->ino))
			return (int)ev_end(m, -EBUSY);
		if (--in->regs[i].users > 0)
			return (int)ev_end(m, in->regs[i].users);
		memmove(&in->regs[i], &in->regs[i + 1], (size_t)(in->nregs - i - 1) * sizeof(in->regs[0]));
		in->nregs--;
		owner_zap(m, &m->owners[owner], in->ino, 0, UINT64_MAX);
		return (int)ev_end(m, 0);
	}
	return (int)ev_end(m, -ENOENT);
}

/* ---- get_lock_pfn / put_unlock_pfn ---- */

int do_get_lock_pfn(struct ss_machine *m, struct inode *in, uint64_t index, int alloc,
		    uint64_t *pfn, int *order)
{
	uint64_t pages = ((uint64_t)in->size + SS_PAGE_SIZE - 1) >> SS_PAGE_SHIFT;
	if (index >= pages)
		return -EINVAL;
	uint64_t v = tree_load(&in->cache, index);
	uint64_t p;
	if (v) {
		p = v - 1;
	} else if (!alloc && in->kind == SS_KIND_MEMFD) {
		ev_hazard(m, SS_HAZ_NULL_PAGE, 0);
		return -EFAULT;
	} else {
		bool isnew;
		int err = cache_alloc_page(m, in, index, &p, &isnew);
		if (err)
			return err;
		if (isnew && in->kind == SS_KIND_MEMFD && in->nregs)
			mmu_rfc_alloc_unnotified(m, in, index);
	}
	uint32_t head = frame_head(m, (uint32_t)p);
	struct frame *hf = frame_rw(m, head);
	*pfn = p;
	*order = (hf->flags & F_HEAD) ? hf->order : 0;
	if (in->kind == SS_KIND_GMEM) {
		hf->refcount++;
		ev_touch(m, SS_T_LOCK, in->fd, -1, index, 1, p);
		return 0;
	}
	if (hf->flags & F_LOCKED) {
		*pfn = head;
		return SS_PENDING;
	}
	hf->flags |= F_LOCKED;
	hf->refcount++;
	ev_touch(m, SS_T_LOCK, in->fd, -1, index, 1, p);
	return 0;
}

int ss_get_lock_pfn(struct ss_machine *m, int fd, uint64_t index, int alloc,
		    uint64_t *pfn, int *order)
{
	ev_begin(m, SS_OP_GET_LOCK_PFN, fd, (int64_t)index, alloc, 0, 0);
	struct inode *in = fd_inode(m, fd);
	if (!in)
		return (int)ev_end(m, -EBADF);
	if (is_rfc(m) != (in->kind == SS_KIND_MEMFD))
		return (int)ev_end(m, -EINVAL);
	uint64_t p = 0;
	int ord = 0;
	int r = do_get_lock_pfn(m, in, index, alloc, &p, &ord);
	if (r == SS_PENDING) {
		struct waiter w = { .kind = W_GETLOCK, .seq = m->nevents, .op = SS_OP_GET_LOCK_PFN,
				    .ino = in->ino, .index = index, .alloc = alloc, .pfn = p };
		ev_touch(m, SS_T_WAIT, fd, -1, index, 1, p);
		if (waiter_add(m, &w))
			r = -ENOMEM;
		else
			frame_rw(m, p)->refcount++;  /* lock_page() callers hold the page */
	} else if (r == 0) {
		m->cur->e.out[0] = (int64_t)p;
		m->cur->e.out[1] = ord;
		m->cur->e.raw = p;
		*pfn = p;
		*order = ord;
	} else if (is_rfc(m) && m->cur && m->cur->e.hazard == SS_HAZ_NONE) {
		ev_hazard(m, SS_HAZ_ERRNO_AS_PFN, (uint64_t)(int64_t)r);
	}
	return (int)ev_end(m, r);
}

int do_put_unlock(struct ss_machine *m, uint32_t pfn)
{
	if (pfn >= m->cfg.phys_pages)
		return -EINVAL;
	uint32_t head = frame_head(m, pfn);
	struct frame *hf = frame_rw(m, head);
	if (is_rfc(m)) {
		if (hf->state == SS_FRAME_FREE || !(hf->flags & F_LOCKED)) {
			ev_hazard(m, SS_HAZ_VM_BUG_ON_PAGE, pfn);
			return -EINVAL;
		}
		hf->flags &= (uint8_t)~F_LOCKED;
	} else if (hf->state == SS_FRAME_FREE ||
		   hf->refcount < (hf->state == SS_FRAME_CACHE ? 2 : 1)) {
		return -EINVAL;  /* no reference of the caller's to drop */
	}
	hf->flags |= F_DIRTY;
	hf->refcount--;
	struct inode *in = inode_get(m, hf->ino);
	ev_touch(m, SS_T_UNLOCK, in ? in->fd : -1, -1, frame_ro(m, pfn)->index, 1, pfn);
	if (hf->refcount == 0)
		page_free_frames(m, head);
	return 0;
}

int ss_put_unlock_pfn(struct ss_machine *m, uint64_t pfn)
{
	ev_begin(m, SS_OP_PUT_UNLOCK_PFN, -1, (int64_t)pfn, 0, 0, 0);
	uint32_t ino = pfn < m->cfg.phys_pages ? frame_ro(m, pfn)->ino : 0;
	int r = pfn >= m->cfg.phys_pages ? -EINVAL : do_put_unlock(m, (uint32_t)pfn);
	struct inode *in = inode_get(m, ino);
	if (!r && in && m->cur)
		m->cur->e.fd = in->fd;
	ev_end(m, r);
	if (!r)
		waiters_run(m);
	in = inode_get(m, ino);
	if (!r && in && in->fd < 0)
		inode_put_maybe(m, in);  /* a closed file waited for this page */
	return r;
}

/* ---- explicit invalidation ---- */

int ss_invalidate(struct ss_machine *m, int fd, uint64_t start, uint64_t end)
{
	ev_begin(m, SS_OP_INVALIDATE, fd, (int64_t)start, (int64_t)end, 0, 0);
	struct inode *in = fd_inode(m, fd);
	if (!in)
		return (int)ev_end(m, -EBADF);
	if (start > end)
		return (int)ev_end(m, -EINVAL);
	if (in->kind == SS_KIND_GMEM) {
		uint32_t before = m->cur ? m->cur->e.ncallbacks : 0;
		callback_gmem_invalidate(m, in, start, end == UINT64_MAX ? end : end + 1);
		return (int)ev_end(m, m->cur ? (int64_t)(m->cur->e.ncallbacks - before) : 0);
	}
	if (!is_rfc(m))
		return (int)ev_end(m, -EINVAL);
	return (int)ev_end(m, cache_invalidate_range(m, in, start, end));
}

/* ---- waiters ---- */

static void inode_count_waiter(struct ss_machine *m, const struct waiter *w, int delta)
{
	struct inode *in = inode_get(m, w->ino);
	if (in && (w->kind == W_REMOVE || w->kind == W_BLOCKED))
		in->pending += delta;
}

int waiter_add(struct ss_machine *m, const struct waiter *w)
{
	if (m->nwaiters == m->cap_waiters) {
		int cap = m->cap_waiters ? m->cap_waiters * 2 : 8;
		struct waiter *p = realloc(m->waiters, (size_t)cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		m->waiters = p;
		m->cap_waiters = cap;
	}
	m->waiters[m->nwaiters++] = *w;
	inode_count_waiter(m, w, 1);
	if (m->cur)
		m->cur->e.pending = 1;
	return 0;
}

int waiter_block(struct ss_machine *m, struct inode *in, int op, int64_t a0, int64_t a1,
		 int64_t a2, const void *buf)
{
	struct waiter w = { .kind = W_BLOCKED, .seq = m->nevents, .op = op, .ino = in->ino,
			    .args = { a0, a1, a2 } };
	if (buf && a1 > 0) {
		w.buf = malloc((size_t)a1);
		if (!w.buf)
			return -ENOMEM;
		memcpy(w.buf, buf, (size_t)a1);
	}
	if (waiter_add(m, &w)) {
		free(w.buf);
		return -ENOMEM;
	}
	return SS_PENDING;
}

int removal_start(struct ss_machine *m, struct inode *in, uint64_t start, uint64_t end,
		  uint64_t seq)
{
	uint64_t resume = start, wpfn = 0;
	int r = cache_remove_range(m, in, start, end, &resume, &wpfn);
	if (r != SS_PENDING)
		return r;
	struct waiter w = { .kind = W_REMOVE, .seq = seq, .op = ev_at(m, seq - 1)->e.op,
			    .ino = in->ino, .start = start, .end = end, .resume = resume,
			    .pfn = wpfn };
	return waiter_add(m, &w) ? -ENOMEM : SS_PENDING;
}

static bool page_locked(const struct ss_machine *m, uint64_t pfn)
{
	return pfn < m->cfg.phys_pages && (frame_ro(m, pfn)->flags & F_LOCKED);
}

static int64_t run_blocked(struct ss_machine *m, struct inode *in, struct waiter *w, uint64_t seq)
{
	switch (w->op) {
	case SS_OP_FTRUNCATE:
		return do_ftruncate(m, in, w->args[0], seq);
	case SS_OP_FALLOCATE:
		return do_fallocate(m, in, (int)w->args[0], w->args[1], w->args[2], seq);
	case SS_OP_ADD_SEALS:
		return do_add_seals(m, in, (unsigned int)w->args[0]);
	case SS_OP_PWRITE:
		return do_pwrite(m, in, w->buf, w->args[1], w->args[0]);
	}
	return -EINVAL;
}

/* a sleeper on a page lock holds a reference to the page (drop it) */
static void drop_sleeper_ref(struct ss_machine *m, uint64_t pfn)
{
	uint32_t head = frame_head(m, (uint32_t)pfn);
	struct frame *hf = frame_rw(m, head);
	if (--hf->refcount == 0)
		page_free_frames(m, head);  /* an orphan: removed while we slept */
}

static void waiter_remove(struct ss_machine *m, int i)
{
	inode_count_waiter(m, &m->waiters[i], -1);
	free(m->waiters[i].buf);
	memmove(&m->waiters[i], &m->waiters[i + 1],
		(size_t)(m->nwaiters - i - 1) * sizeof(m->waiters[0]));
	m->nwaiters--;
}

/* try one waiter: 0 still sleeping, 1 finished.  Works on a copy: running
 * an operation may add waiters and move the array. */
static int waiter_try(struct ss_machine *m, int i)
{
	struct waiter w = m->waiters[i];
	struct inode *in = inode_get(m, w.ino);
	bool page_sleeper = w.kind == W_GETLOCK || w.kind == W_FAULT || w.kind == W_VCPU;
	if (w.kind == W_BLOCKED) {
		for (int j = 0; j < i; j++)
			if (m->waiters[j].ino == w.ino &&
			    (m->waiters[j].kind == W_REMOVE || m->waiters[j].kind == W_BLOCKED))
				return 0;
	} else if (page_locked(m, w.pfn) && in && in->kind == SS_KIND_MEMFD) {
		return 0;
	}
	ev_begin(m, SS_OP_WAKE, in ? in->fd : -1, 0, 0, 0, 0);
	uint64_t seq = m->nevents;
	if (m->cur) {
		m->cur->e.wakes_seq = w.seq;
		m->cur->e.wakes_op = w.op;
	}
	if (page_sleeper)
		drop_sleeper_ref(m, w.pfn);  /* woken: look the page up again */
	int nbefore = m->nwaiters;
	int64_t r = -EBADF;
	if (in) {
		switch (w.kind) {
		case W_REMOVE:
			r = cache_remove_range(m, in, w.start, w.end, &w.resume, &w.pfn);
			break;
		case W_GETLOCK:
		case W_FAULT: {
			uint64_t p = 0;
			int ord = 0;
			if (w.kind == W_FAULT) {
				/* another fault of the same gfn may have mapped it
				 * while this one slept: KVM finds the spte present */
				int mo = 0;
				uint64_t v = owner_lookup(&m->owners[w.owner], w.gfn, &mo);
				if (v) {
					if (m->cur) {
						m->cur->e.out[0] = (int64_t)(v - 1);
						m->cur->e.out[1] = mo;
						m->cur->e.raw = v - 1;
					}
					r = 0;
					break;
				}
			}
			r = do_get_lock_pfn(m, in, w.index, w.alloc, &p, &ord);
			if (r == SS_PENDING) {
				w.pfn = p;
				frame_rw(m, p)->refcount++;  /* sleeps on the new page */
				break;
			}
			if (r == 0 && m->cur) {
				m->cur->e.out[0] = (int64_t)p;
				m->cur->e.out[1] = ord;
				m->cur->e.raw = p;
			}
			if (r == 0 && w.kind == W_FAULT)
				r = fault_finish(m, w.owner, w.gfn, p, ord);
			break;
		}
		case W_BLOCKED:
			r = run_blocked(m, in, &w, seq);
			break;
		case W_VCPU: {
			/* the vCPU's fault goes on: the whole access again (the page may
			 * be gone, or private now: an exit then), ended by this wake */
			struct owner *o = vm_get(m, w.owner);
			struct ss_access_result out;
			memset(&out, 0, sizeof(out));
			uint64_t p = 0;
			int mo = 0;
			r = o ? kvm_fault_page(m, o, &w.acc, &out, &p, &mo) : -EINTR;
			if (r == KVM_FAULT_SLEEPS) {
				w.pfn = p;
				frame_rw(m, p)->refcount++;  /* sleeps on it again */
				r = SS_PENDING;
			} else if (r == 1) {
				r = kvm_access_finish(m, o, &w.acc, &out, p, mo);
			}
			break;
		}
		}
	}
	bool sleeps = false;
	if (w.kind == W_BLOCKED && m->nwaiters > nbefore) {
		/* a queued op that went to sleep itself (a removal meeting a
		 * locked page) keeps its place in the queue: it still holds the
		 * file's lock, ahead of what was queued after it */
		struct waiter nw = m->waiters[m->nwaiters - 1];
		m->nwaiters--;
		free(m->waiters[i].buf);
		m->waiters[i] = nw;   /* pending counts: -1 blocked, +1 removal */
		inode_count_waiter(m, &w, -1);
		sleeps = true;
	} else if (w.kind != W_BLOCKED && r == SS_PENDING) {
		m->waiters[i] = w;  /* woke, did some, sleeps again */
		sleeps = true;
	} else if (in && (w.kind == W_REMOVE || w.kind == W_BLOCKED) &&
		   !inode_held_but(m, in, i) && inode_has_locked(m, in)) {
		/* the woken syscall held the file's last reference (the file was
		 * closed while it slept): at its end the final truncate runs in
		 * it, frees what it can lock and sleeps on the rest */
		struct waiter nw = { .kind = W_REMOVE, .seq = w.seq, .op = w.op, .ino = in->ino,
				     .start = 0, .end = UINT64_MAX };
		if (cache_remove_range(m, in, 0, UINT64_MAX, &nw.resume, &nw.pfn) == SS_PENDING) {
			inode_count_waiter(m, &m->waiters[i], -1);
			free(m->waiters[i].buf);
			m->waiters[i] = nw;
			inode_count_waiter(m, &nw, 1);
			sleeps = true;
		}
	}
	if (sleeps && m->cur)
		m->cur->e.pending = 1;
	ev_end(m, r);
	if (sleeps)
		return 0;
	waiter_remove(m, i);
	if (in)
		inode_put_maybe(m, in);
	return 1;
}

void waiters_run(struct ss_machine *m)
{
	bool progress = true;
	while (progress) {
		progress = false;
		for (int i = 0; i < m->nwaiters; i++) {
			if (waiter_try(m, i)) {
				progress = true;
				break;
			}
		}
	}
}

void waiters_free(struct ss_machine *m)
{
	for (int i = 0; i < m->nwaiters; i++)
		free(m->waiters[i].buf);
	free(m->waiters);
}

int waiters_clone(struct ss_machine *dst, const struct ss_machine *src)
{
	dst->waiters = NULL;
	dst->cap_waiters = dst->nwaiters = 0;
	for (int i = 0; i < src->nwaiters; i++) {
		struct waiter w = src->waiters[i];
		if (w.buf) {
			w.buf = malloc((size_t)w.args[1]);
			if (!w.buf)
				return -ENOMEM;
			memcpy(w.buf, src->waiters[i].buf, (size_t)w.args[1]);
		}
		if (dst->nwaiters == dst->cap_waiters) {
			int cap = dst->cap_waiters ? dst->cap_waiters * 2 : 8;
			struct waiter *p = realloc(dst->waiters, (size_t)cap * sizeof(*p));
			if (!p) {
				free(w.buf);
				return -ENOMEM;
			}
			dst->waiters = p;
			dst->cap_waiters = cap;
		}
		dst->waiters[dst->nwaiters++] = w;
	}
	return 0;
}
