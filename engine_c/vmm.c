/*
 * vmm.c - the VMM's address space: where its mmaps sit, what userspace_addr
 * points at, and the VMM touching its own mappings.
 *
 * Addresses are deterministic (the contract with the real-kernel oracle):
 * a new mapping goes right below the lowest address handed out so far,
 * starting from SS_VMM_TOP; addresses are never reused.  A host touch
 * follows the fault handlers: past the mapping or against its protection
 * SIGSEGV; past the file's end SIGBUS (shmem_fault, kvm_gmem_fault_user_mapping);
 * a guest_memfd without GUEST_MEMFD_FLAG_INIT_SHARED is private: SIGBUS.
 * A touch allocates the page as a fault does; guest and host share frames,
 * so a byte the guest wrote is the byte the host reads and the reverse.  A
 * write through a MAP_PRIVATE mapping copies the page for that mapping
 * (cow.c), whose later touches at that index see the copy.
 */
#include "internal.h"
#include <string.h>

static uint64_t map_len(const struct mapping *mp)
{
	return ((uint64_t)mp->length + SS_PAGE_SIZE - 1) & ~(uint64_t)(SS_PAGE_SIZE - 1);
}

int vmm_assign(struct ss_machine *m, struct mapping *mp)
{
	uint64_t lowest = m->vmm_lowest ? m->vmm_lowest : SS_VMM_TOP;
	uint64_t len = map_len(mp);
	if (len > lowest - SS_VMM_FLOOR)
		return -ENOMEM;
	mp->addr = lowest - len;
	m->vmm_lowest = mp->addr;
	return 0;
}

const struct mapping *vmm_find(const struct ss_machine *m, uint64_t addr)
{
	for (int i = 0; i < m->nmaps; i++) {
		const struct mapping *mp = &m->maps[i];
		if (mp->id && addr >= mp->addr && addr - mp->addr < map_len(mp))
			return mp;
	}
	return NULL;
}

int ss_mapping_addr(const struct ss_machine *m, int map_id, uint64_t *addr)
{
	if (map_id < 1 || map_id > m->nmaps || !m->maps[map_id - 1].id)
		return -EINVAL;
	*addr = m->maps[map_id - 1].addr;
	return 0;
}

static uint64_t file_pages(const struct inode *in)
{
	return ((uint64_t)in->size + SS_PAGE_SIZE - 1) >> SS_PAGE_SHIFT;
}

int vmm_resolve(struct ss_machine *m, uint64_t hva, const struct mapping **mpp, struct inode **inp,
		uint64_t *index)
{
	const struct mapping *mp = vmm_find(m, hva);
	if (!mp)
		return -EFAULT;
	struct inode *in = inode_get(m, mp->ino);
	if (!in)
		return -EFAULT;
	uint64_t idx = ((uint64_t)mp->offset + (hva - mp->addr)) >> SS_PAGE_SHIFT;
	*mpp = mp;
	*inp = in;
	*index = idx;
	if (idx >= file_pages(in))
		return SS_SIGBUS;
	if (in->kind == SS_KIND_GMEM && is_inplace(m))
		return inplace_private(in, idx) ? SS_SIGBUS : 0;  /* per-page, the proposal */
	if (in->kind == SS_KIND_GMEM && !(in->flags & SS_GMEM_FLAG_INIT_SHARED))
		return SS_SIGBUS;  /* kvm_gmem_fault_user_mapping(): private memory */
	return 0;
}

static int touch_check(const struct mapping *mp, uint64_t offset, int write)
{
	if (offset >= map_len(mp))
		return SS_SIGSEGV;
	if (write ? !(mp->prot & SS_PROT_WRITE) : !(mp->prot & (SS_PROT_READ | SS_PROT_WRITE)))
		return SS_SIGSEGV;
	return 0;
}

int ss_mapping_access(struct ss_machine *m, int map_id, uint64_t offset, int write,
		      uint8_t value, int *signal, uint8_t *value_out)
{
	ev_begin(m, SS_OP_MAP_ACCESS, -1, map_id, (int64_t)offset, write, value);
	m->kvm_rule = SS_R_NONE;
	*signal = 0;
	*value_out = 0;
	if (map_id < 1 || map_id > m->nmaps || !m->maps[map_id - 1].id)
		return kvm_fail(m, SS_R_NO_MAPPING, -EINVAL);
	const struct mapping *mp = &m->maps[map_id - 1];
	struct inode *in = inode_get(m, mp->ino);
	if (m->cur && in)
		m->cur->e.fd = in->fd;
	int sig = touch_check(mp, offset, write);
	uint64_t index = 0;
	if (!sig) {
		const struct mapping *found;
		sig = vmm_resolve(m, mp->addr + offset, &found, &in, &index);
		if (sig < 0)
			sig = SS_SIGBUS;
	}
	if (sig) {
		*signal = sig;
		ev_touch(m, SS_T_SIGNAL, in ? in->fd : -1, -1, index, 1, (uint64_t)sig);
		return (int)ev_end(m, 0);
	}
	if (in->kind == SS_KIND_GMEM && gmem_poisoned(m, in, index)) {
		*signal = SS_SIGBUS;  /* a hwpoison page: memory_failure's SIGBUS */
		ev_touch(m, SS_T_SIGNAL, in->fd, -1, index, 1, SS_SIGBUS);
		return (int)ev_end(m, 0);
	}
	uint64_t pfn, v = cow_lookup(mp, index);
	bool isnew;
	int err = 0;
	if (v)
		pfn = v - 1;  /* this mapping's copy (cow.c) */
	else if (write && map_is_private(mp))  /* do_cow_fault / wp_page_copy */
		err = cow_break(m, &m->maps[map_id - 1], in, index, &pfn);
	else
		err = cache_alloc_page(m, in, index, &pfn, &isnew);
	if (err)
		return kvm_fail(m, SS_R_NOMEM, err);
	if (in->kind == SS_KIND_GMEM)  /* kvm_gmem_fault_user_mapping: zeroed, uptodate */
		frame_rw(m, frame_head(m, (uint32_t)pfn))->flags |= F_UPTODATE;
	unsigned int off = (unsigned int)((mp->offset + offset) & (SS_PAGE_SIZE - 1));
	if (write) {
		uint8_t *p;
		if (data_get(m, (uint32_t)pfn, &p))
			return kvm_fail(m, SS_R_NOMEM, -ENOMEM);
		p[off] = value;
		frame_rw(m, frame_head(m, (uint32_t)pfn))->flags |= F_DIRTY;
	}
	const struct frame *f = frame_ro(m, pfn);  /* after the writes: they may copy its chunk */
	*value_out = f->data ? data_ro(m, f->data - 1)[off] : 0;
	if (m->cur) {
		m->cur->e.out[0] = (int64_t)pfn;
		m->cur->e.out[1] = (int64_t)index;
	}
	return (int)ev_end(m, 0);
}
