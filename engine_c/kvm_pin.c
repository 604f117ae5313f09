/*
 * kvm_pin.c - a long-term GUP pin of a host mapping (mm/gup.c pin_user_pages:
 * what O_DIRECT, vhost and VFIO do to the VMM's memory).
 *
 * A pin covers the pages of [offset, offset + length) of a mapping.  Each page
 * is faulted in as a host touch would (vmm.c): past the mapping or against its
 * protection, past the file's end, a private guest_memfd page -> the fault
 * would be a signal, and GUP answers EFAULT (faultin_page: VM_FAULT_SIGBUS /
 * SIGSEGV); a hwpoisoned page EHWPOISON (VM_FAULT_HWPOISON).  Every page is
 * checked before any is touched: the pin is all or nothing.  Then each page
 * gets one reference (on the head of its compound page: try_grab_folio).
 *
 * A write pin is pin_user_pages(FOLL_WRITE | FOLL_LONGTERM) (no FOLL_FORCE):
 *  - check_vma_flags (mm/gup.c): FOLL_WRITE on a VMA without VM_WRITE is
 *    EFAULT without FOLL_FORCE, before any page is looked at; a memfd's (shmem)
 *    or guest_memfd's shared writable VMA needs no dirty tracking (no
 *    page_mkwrite, no writeback), so writable_file_mapping_allowed lets
 *    FOLL_LONGTERM through;
 *  - follow_page_pte finds no PTE it can follow for write (can_follow_write_pte:
 *    not mapped, or mapped read only), so faultin_page faults with
 *    FAULT_FLAG_WRITE (mm/memory.c): through MAP_SHARED do_shared_fault
 *    allocates a hole as a write touch does and fault_dirty_shared_page marks
 *    the page dirty (follow_page_pte's FOLL_TOUCH folio_mark_dirty does the same
 *    for a page already mapped writable); through MAP_PRIVATE do_cow_fault /
 *    wp_page_copy breaks COW exactly as a write through the mapping does
 *    (cow_break: the file page is faulted in, the copy made, a VM's mapping of
 *    the old page zapped) and the copy is pinned, already dirty;
 *  - a guest_memfd is never mapped private (kvm_gmem_mmap refuses a COW
 *    mapping: do_mmap EINVAL, rw.c), so a write pin there is the read pin's
 *    page, made dirty; the in-place conversion's EAGAIN while pinned is the same.
 * A read pin does not unshare: through MAP_PRIVATE it pins the copy where
 * there is one, the file page otherwise (gup_must_unshare is for anonymous
 * pages only).
 *
 * A pinned page is "a reference beyond guest_memfd's own": shared -> private
 * in KVM_SET_MEMORY_ATTRIBUTES2 is EAGAIN at it (kvm_inplace.c), migration is
 * EBUSY (a pinned page cannot move), and a punch leaves it an orphan until
 * the unpin drops the last reference (pagecache.c).  A split of a compound
 * page hands each pinned tail its own reference back (pin_split).  A pin
 * outlives its mapping (munmap does not unpin), as in the kernel.
 */
#include "internal.h"
#include <stdlib.h>
#include <string.h>

static struct pin *pin_get(struct ss_machine *m, int id)
{
	if (id < 1 || id > m->npins || !m->pins[id - 1].id)
		return NULL;
	return &m->pins[id - 1];
}

static int pin_slot(struct ss_machine *m)
{
	for (int i = 0; i < m->npins; i++)
		if (!m->pins[i].id)
			return i;
	if (m->npins >= SS_MAX_PINS)
		return -ENOSPC;
	struct pin *p = realloc(m->pins, (size_t)(m->npins + 1) * sizeof(*p));
	if (!p)
		return -ENOMEM;
	m->pins = p;
	memset(&m->pins[m->npins], 0, sizeof(*p));
	return m->npins++;
}

/* the signal a host touch of page `pg` of the mapping would get, 0 if none;
 * -EHWPOISON for a poisoned page, -EACCES for a write pin through a mapping
 * without PROT_WRITE (check_vma_flags: a write touch there is SIGSEGV) */
static int pin_page_check(struct ss_machine *m, const struct mapping *mp, uint64_t pg, int write)
{
	uint64_t off = pg << SS_PAGE_SHIFT;
	uint64_t len = ((uint64_t)mp->length + SS_PAGE_SIZE - 1) & ~(uint64_t)(SS_PAGE_SIZE - 1);
	if (off >= len || !(mp->prot & (SS_PROT_READ | SS_PROT_WRITE)))
		return SS_SIGSEGV;
	if (write && !(mp->prot & SS_PROT_WRITE))
		return -EACCES;
	const struct mapping *found;
	struct inode *in;
	uint64_t index;
	int sig = vmm_resolve(m, mp->addr + off, &found, &in, &index);
	if (sig)
		return sig < 0 ? SS_SIGBUS : sig;
	if (in->kind == SS_KIND_GMEM && gmem_poisoned(m, in, index))
		return -EHWPOISON;
	return 0;
}

static void pin_drop_refs(struct ss_machine *m, const uint32_t *pfns, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		uint32_t head = frame_head(m, pfns[i]);
		if (--frame_rw(m, head)->refcount == 0)
			page_free_frames(m, head);  /* an orphan: punched while pinned */
	}
}

/* fault page `index` of `in` in through mapping `mp` for the pin: what the
 * PTE maps after the fault (a read pin: the copy if any, else the file page;
 * a write pin: faultin_page with FAULT_FLAG_WRITE, see the header) */
static int pin_fault(struct ss_machine *m, struct mapping *mp, struct inode *in, uint64_t index,
		     int write, uint64_t *pfn)
{
	uint64_t copy = cow_lookup(mp, index);
	bool isnew;
	if (copy) {
		*pfn = copy - 1;
		return 0;
	}
	if (write && map_is_private(mp))
		return cow_break(m, mp, in, index, pfn);  /* do_cow_fault / wp_page_copy */
	int err = cache_alloc_page(m, in, index, pfn, &isnew);
	if (err)
		return err;
	if (write)  /* fault_dirty_shared_page; follow_page_pte's FOLL_TOUCH folio_mark_dirty */
		frame_rw(m, frame_head(m, (uint32_t)*pfn))->flags |= F_DIRTY;
	return 0;
}

int ss_mapping_pin(struct ss_machine *m, int map_id, uint64_t offset, uint64_t length,
		   int write, int *signal, int *pin_id)
{
	write = !!write;
	ev_begin(m, SS_OP_MAP_PIN, -1, map_id, (int64_t)offset, (int64_t)length, write);
	m->kvm_rule = SS_R_NONE;
	*signal = 0;
	*pin_id = 0;
	if (map_id < 1 || map_id > m->nmaps || !m->maps[map_id - 1].id)
		return kvm_fail(m, SS_R_NO_MAPPING, -EINVAL);
	const struct mapping *mp = &m->maps[map_id - 1];
	struct inode *in = inode_get(m, mp->ino);
	if (m->cur && in)
		m->cur->e.fd = in->fd;
	if (!length || offset + length < offset)
		return kvm_fail(m, SS_R_PIN_RANGE, -EINVAL);
	uint64_t first = offset >> SS_PAGE_SHIFT;
	uint64_t end = (offset + length + SS_PAGE_SIZE - 1) >> SS_PAGE_SHIFT;
	if (end - first > SS_PIN_MAX_PAGES)
		return kvm_fail(m, SS_R_PIN_RANGE, -EINVAL);
	for (uint64_t pg = first; pg < end; pg++) {
		int sig = pin_page_check(m, mp, pg, write);
		if (!sig)
			continue;
		*signal = sig == -EACCES ? SS_SIGSEGV : sig < 0 ? SS_SIGBUS : sig;
		ev_touch(m, SS_T_SIGNAL, in ? in->fd : -1, -1, pg, 1, (uint64_t)*signal);
		if (m->cur)
			m->cur->e.out[0] = (int64_t)(pg << SS_PAGE_SHIFT);
		if (sig == -EACCES)
			return kvm_fail(m, SS_R_PIN_READONLY, -EFAULT);
		return kvm_fail(m, sig < 0 ? SS_R_PIN_HWPOISON : SS_R_PIN_FAULT,
				sig < 0 ? -EHWPOISON : -EFAULT);
	}
	int slot = pin_slot(m);
	if (slot < 0)
		return kvm_fail(m, slot == -ENOSPC ? SS_R_PIN_MAX : SS_R_NOMEM, slot);
	uint32_t *pfns = malloc((end - first) * sizeof(*pfns));
	if (!pfns)
		return kvm_fail(m, SS_R_NOMEM, -ENOMEM);
	uint64_t n = 0;
	for (uint64_t pg = first; pg < end; pg++, n++) {
		const struct mapping *found;
		uint64_t index, pfn;
		vmm_resolve(m, mp->addr + (pg << SS_PAGE_SHIFT), &found, &in, &index);
		int err = pin_fault(m, &m->maps[found->id - 1], in, index, write, &pfn);
		if (err) {  /* the pages taken so far are unpinned (faulted in, they stay) */
			pin_drop_refs(m, pfns, n);
			free(pfns);
			return kvm_fail(m, SS_R_NOMEM, err);
		}
		uint32_t head = frame_head(m, (uint32_t)pfn);
		if (in->kind == SS_KIND_GMEM)
			frame_rw(m, head)->flags |= F_UPTODATE;
		frame_rw(m, head)->refcount++;
		pfns[n] = (uint32_t)pfn;
		ev_touch(m, SS_T_LOCK, in->fd, -1, index, 1, pfn);
	}
	struct pin *p = &m->pins[slot];
	*p = (struct pin){ .id = slot + 1, .map_id = map_id, .ino = mp->ino,
			   .offset = first << SS_PAGE_SHIFT, .npages = n, .pfns = pfns,
			   .write = write };
	*pin_id = p->id;
	if (m->cur) {
		m->cur->e.out[0] = p->id;
		m->cur->e.out[1] = pfns[0];
	}
	return (int)ev_end(m, 0);
}

int ss_mapping_unpin(struct ss_machine *m, int pin_id)
{
	ev_begin(m, SS_OP_MAP_UNPIN, -1, pin_id, 0, 0, 0);
	m->kvm_rule = SS_R_NONE;
	struct pin *p = pin_get(m, pin_id);
	if (!p)
		return kvm_fail(m, SS_R_NO_PIN, -EINVAL);
	struct inode *in = inode_get(m, p->ino);
	if (m->cur && in)
		m->cur->e.fd = in->fd;
	for (uint64_t i = 0; i < p->npages; i++)
		ev_touch(m, SS_T_UNLOCK, in ? inode_fd(in) : -1, -1, frame_ro(m, p->pfns[i])->index, 1,
			 p->pfns[i]);
	pin_drop_refs(m, p->pfns, p->npages);
	free(p->pfns);
	memset(p, 0, sizeof(*p));
	return (int)ev_end(m, 0);
}

int ss_pin_info(const struct ss_machine *m, int pin_id, struct ss_pin_info *out, uint64_t *pfns,
		int max)
{
	if (pin_id < 1 || pin_id > m->npins || !m->pins[pin_id - 1].id)
		return -EINVAL;
	const struct pin *p = &m->pins[pin_id - 1];
	out->map_id = p->map_id;
	out->offset = p->offset;
	out->npages = p->npages;
	for (uint64_t i = 0; i < p->npages && i < (uint64_t)max; i++)
		pfns[i] = p->pfns[i];
	return 0;
}

/* a compound page at head split into order-0 pages: the pinned tails take
 * their reference back from the head */
void pin_split(struct ss_machine *m, uint32_t head, uint64_t nr)
{
	for (int i = 0; i < m->npins; i++) {
		const struct pin *p = &m->pins[i];
		for (uint64_t j = 0; p->id && j < p->npages; j++) {
			if (p->pfns[j] > head && p->pfns[j] < head + nr) {
				frame_rw(m, head)->refcount--;
				frame_rw(m, p->pfns[j])->refcount++;
			}
		}
	}
}

int pins_clone(struct ss_machine *dst, const struct ss_machine *src)
{
	dst->pins = NULL;
	dst->npins = 0;
	if (!src->npins)
		return 0;
	dst->pins = calloc((size_t)src->npins, sizeof(struct pin));
	if (!dst->pins)
		return -ENOMEM;
	dst->npins = src->npins;
	for (int i = 0; i < src->npins; i++) {
		dst->pins[i] = src->pins[i];
		if (!src->pins[i].id)
			continue;
		dst->pins[i].pfns = malloc(src->pins[i].npages * sizeof(uint32_t));
		if (!dst->pins[i].pfns) {
			dst->pins[i].id = 0;
			return -ENOMEM;
		}
		memcpy(dst->pins[i].pfns, src->pins[i].pfns, src->pins[i].npages * sizeof(uint32_t));
	}
	return 0;
}

void pins_free(struct ss_machine *m)
{
	for (int i = 0; i < m->npins; i++)
		free(m->pins[i].pfns);
	free(m->pins);
	m->pins = NULL;
	m->npins = 0;
}

/* every pin's pages are used frames of its file (in its cache or orphans),
 * and each head's refcount covers its pins plus the cache's reference */
int check_pins(const struct ss_machine *m, char *msg, size_t len)
{
	int32_t *pins = calloc(m->cfg.phys_pages ? m->cfg.phys_pages : 1, sizeof(int32_t));
	if (!pins)
		return -ENOMEM;
	int r = 0;
	for (int i = 0; i < m->npins && !r; i++) {
		const struct pin *p = &m->pins[i];
		if (!p->id)
			continue;
		if (p->id != i + 1 || !p->npages) {
			r = check_fail(msg, len, "pin slot %d has id %d, %llu pages", i, p->id,
				       (unsigned long long)p->npages);
			break;
		}
		for (uint64_t j = 0; j < p->npages && !r; j++) {
			uint32_t pfn = p->pfns[j];
			const struct frame *f = pfn < m->cfg.phys_pages ? frame_ro(m, pfn) : NULL;
			if (!f || f->state == SS_FRAME_FREE || f->ino != p->ino)
				r = check_fail(msg, len, "pin %d holds pfn %u, not a page of its file",
					       p->id, pfn);
			else
				pins[frame_head(m, pfn)]++;
		}
	}
	for (uint64_t pfn = 0; pfn < m->cfg.phys_pages && !r; pfn++) {
		const struct frame *f = frame_ro(m, pfn);
		int32_t need = pins[pfn] + (f->state == SS_FRAME_CACHE || f->state == SS_FRAME_COW ? 1 : 0);
		if (pins[pfn] && f->refcount < need)
			r = check_fail(msg, len, "pfn %llu: refcount %d below its %d pins + cache or mapping",
				       (unsigned long long)pfn, f->refcount, pins[pfn]);
	}
	free(pins);
	return r;
}
