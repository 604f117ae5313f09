/*
 * kvm_coco.c - what makes SNP and TDX VMs confidential: the life of a
 * guest_memfd page, populate, the launch measurement and its finalization.
 *
 * A guest_memfd page is allocated (in the file, not uptodate), zeroed when
 * first handed to a guest (kvm_gmem_get_pfn -> kvm_gmem_prepare_folio clears
 * a !uptodate folio), then *prepared* by the arch on first private use:
 * SNP's sev_gmem_prepare makes its RMP entry guest-owned (rmp_make_private),
 * TDX adds it to the Secure EPT (TDH.MEM.PAGE.AUG; TDH.MEM.PAGE.ADD when
 * populated).  When the folio is freed (.free_folio) the arch reclaims it:
 * SNP sev_gmem_invalidate (rmp_make_shared), TDX TDH.MEM.PAGE.REMOVE.  On
 * TDX the S-EPT entry is the mapping: each zap of a private mapping removes
 * it (gmem_zap_private), clearing the page, and the next private fault adds
 * it again (a zero page for the TD).
 * Each hook is a callback of the event with its pfn range [start, end).
 *
 * Populate (virt/kvm/guest_memfd.c kvm_gmem_populate, 6.11+; SNP
 * snp_launch_update, TDX tdx_vcpu_init_mem_region): the range must be page
 * aligned, non-empty and not wrap (EINVAL); the first gfn needs a
 * guest_memfd memslot (EINVAL), an open guest_memfd (EFAULT); the range is
 * cut at the slot's end.  Page by page: the page is allocated (a hwpoisoned
 * one is EHWPOISON); an uptodate
 * one is EEXIST; a gfn that is not private EINVAL (after the allocation, as
 * kvm_gmem_populate orders it); else the source is copied in, the page
 * prepared, measured, and marked uptodate.  kvm_gmem_populate answers the
 * number done when any, else the error: SNP answers 0 then with params
 * advanced, TDX (one page per kvm_gmem_populate call) returns the error
 * with the region advanced.
 *
 * Measurement: SNP's launch digest (SNP ABI spec, PAGE_INFO, as
 * sev-snp-measure computes it): digest = SHA-384(digest || SHA-384(page) ||
 * u16 0x70 || PAGE_TYPE_NORMAL 1 || IMI 0 || VMPL3..1 perms 0 || 0 || u64 gpa),
 * from 48 zero bytes.  TDX's MRTD (TDX module spec): one SHA-384 over, per
 * page, TDH.MEM.PAGE.ADD's 128 bytes ("MEM.PAGE.ADD", gpa at byte 16) and
 * per 256 bytes TDH.MR.EXTEND's 128 bytes ("MR.EXTEND", gpa) + the chunk
 * (KVM_TDX_MEASURE_MEMORY_REGION), finalized by TDH.MR.FINALIZE.
 *
 * Finalize (SNP LAUNCH_FINISH, TDX KVM_TDX_FINALIZE_VM): allowed once;
 * afterwards pre_fault_allowed is true (KVM_PRE_FAULT_MEMORY works) and
 * populate is refused (TDX: state != TD_STATE_INITIALIZED, EINVAL; SNP: the
 * firmware's guest is no longer in the launch state, EIO).
 */
#include "internal.h"
#include <string.h>

bool vm_is_coco(const struct kvm_vm *vm)
{
	return vm && (vm->type == SS_VM_SNP || vm->type == SS_VM_TDX);
}

static void hook(struct ss_machine *m, int owner, int type, bool add, uint64_t pfn, uint64_t n)
{
	int fn = type == SS_VM_SNP ? (add ? SS_CB_RMP_ASSIGN : SS_CB_RMP_RECLAIM)
				   : (add ? SS_CB_SEPT_ADD : SS_CB_SEPT_REMOVE);
	ev_callback(m, fn, owner, pfn, pfn + n);
	/* TDX: after TDH.MEM.PAGE.REMOVE (and TDH.PHYMEM.PAGE.WBINVD) KVM clears the
	 * page (tdx_sept_remove_private_spte -> tdx_clear_page, MOVDIR64B): what the
	 * TD had there is gone, and a page added again (TDH.MEM.PAGE.AUG) reads zeros.
	 * SNP's reclaim (rmp_make_shared) leaves the bytes. */
	if (type == SS_VM_TDX && !add)
		for (uint64_t i = 0; i < n; i++)
			data_drop(m, (uint32_t)(pfn + i));
}

static void mark_zeroed(struct ss_machine *m, struct inode *in, uint32_t head)
{
	struct frame *hf = frame_rw(m, head);
	if (hf->flags & F_UPTODATE)
		return;
	hf->flags |= F_UPTODATE;
	ev_touch(m, SS_T_ZERO, inode_fd(in), -1, hf->index, 1, head);
}

/* variant no_direct_map (a proposal: "Direct Map Removal Support for guest_memfd",
 * Patrick Roy, v7 Sep 2025): a folio leaves the direct map after its preparation
 * and gets it back when freed (every folio, shared or private) */
static void direct_map_remove(struct ss_machine *m, struct owner *o, uint32_t head)
{
	struct frame *hf = frame_rw(m, head);
	if (!(m->cfg.variants & SS_VAR_NO_DIRECT_MAP) || (hf->xflags & X_NO_DIRECT_MAP))
		return;
	hf->xflags |= X_NO_DIRECT_MAP;
	ev_callback(m, SS_CB_DIRECT_MAP_REMOVE, o ? o->id : -1, head,
		    head + (1ull << ((hf->flags & F_HEAD) ? hf->order : 0)));
}

void gmem_prepare(struct ss_machine *m, struct owner *o, struct inode *in, uint64_t pfn, bool priv)
{
	if (in->kind != SS_KIND_GMEM)
		return;
	uint32_t head = frame_head(m, (uint32_t)pfn);
	struct frame *hf = frame_rw(m, head);
	mark_zeroed(m, in, head);
	if (priv && o->vm && vm_is_coco(o->vm) && !(hf->flags & F_PREPARED)) {
		hf->flags |= F_PREPARED;
		hook(m, o->id, o->vm->type, true, head, 1ull << ((hf->flags & F_HEAD) ? hf->order : 0));
	}
	direct_map_remove(m, o, head);
}

void gmem_direct_map_restore(struct ss_machine *m, uint32_t head)
{
	struct frame *hf = frame_rw(m, head);
	if (!(hf->xflags & X_NO_DIRECT_MAP))
		return;
	hf->xflags &= ~(uint32_t)X_NO_DIRECT_MAP;
	struct inode *in = inode_get(m, hf->ino);
	ev_callback(m, SS_CB_DIRECT_MAP_RESTORE, in && in->vm ? in->vm - 1 : -1, head,
		    head + (1ull << ((hf->flags & F_HEAD) ? hf->order : 0)));
}

void gmem_reclaim(struct ss_machine *m, uint32_t head)
{
	struct frame *hf = frame_rw(m, head);
	if (!(hf->flags & F_PREPARED))
		return;
	hf->flags &= (uint8_t)~F_PREPARED;
	struct inode *in = inode_get(m, hf->ino);
	int vm = in && in->vm ? in->vm - 1 : -1;
	struct owner *o = vm >= 0 ? vm_get(m, vm) : NULL;
	if (o)
		hook(m, vm, o->vm->type, false, head, 1ull << ((hf->flags & F_HEAD) ? hf->order : 0));
}

/* a zap of a mapping of pfn in o's secondary MMU: on TDX a private mapping is a
 * Secure EPT entry, and every zap removes it (arch/x86/kvm/vmx/tdx.c
 * tdx_sept_remove_private_spte: TDH.MEM.RANGE.BLOCK, TDH.MEM.TRACK, then
 * TDH.MEM.PAGE.REMOVE), not only the free; the next private fault adds it again
 * (tdx_sept_set_private_spte: TDH.MEM.PAGE.AUG).  SNP's RMP entry outlives a zap. */
void gmem_zap_private(struct ss_machine *m, const struct owner *o, uint64_t pfn, uint64_t n)
{
	if (!o->vm || o->vm->type != SS_VM_TDX)
		return;
	uint32_t head = frame_head(m, (uint32_t)pfn);
	struct frame *hf = frame_rw(m, head);
	if (hf->state == SS_FRAME_FREE || !(hf->flags & F_PREPARED))
		return;
	/* the engine keeps "prepared" per folio: a zap of a part of a huge folio
	 * leaves it to the free (or to the zap of a whole-folio mapping) */
	if (n != 1ull << ((hf->flags & F_HEAD) ? hf->order : 0))
		return;
	hf->flags &= (uint8_t)~F_PREPARED;
	hook(m, o->id, SS_VM_TDX, false, head, 1ull << ((hf->flags & F_HEAD) ? hf->order : 0));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void measure(struct kvm_vm *vm, uint64_t gpa, const uint8_t *page)
{
	if (vm->type == SS_VM_SNP) {
		uint8_t info[0x70] = { 0 };
		struct sha384 c;
		memcpy(info, vm->digest, 48);
		sha384_init(&c);
		sha384_update(&c, page, SS_PAGE_SIZE);
		sha384_final(&c, info + 48);
		info[0x60] = 0x70;          /* LENGTH */
		info[0x62] = 1;             /* PAGE_TYPE_NORMAL */
		put_le64(info + 0x68, gpa);
		sha384_init(&c);
		sha384_update(&c, info, sizeof(info));
		sha384_final(&c, vm->digest);
	} else {
		uint8_t hdr[128] = "MEM.PAGE.ADD";
		put_le64(hdr + 16, gpa);
		sha384_update(&vm->mr, hdr, sizeof(hdr));
		for (unsigned int off = 0; off < SS_PAGE_SIZE; off += 256) {
			uint8_t ext[128] = "MR.EXTEND";
			put_le64(ext + 16, gpa + off);
			sha384_update(&vm->mr, ext, sizeof(ext));
			sha384_update(&vm->mr, page + off, 256);
		}
	}
	vm->nmeasured++;
}

/* one page of kvm_gmem_populate: 0 or -errno */
static int populate_one(struct ss_machine *m, struct owner *o, struct memslot *s,
			struct inode *in, uint64_t gfn, const uint8_t *src)
{
	uint64_t pfn;
	bool isnew;
	int r = cache_alloc_page(m, in, s->index + (gfn - s->gfn), &pfn, &isnew);
	if (r) {
		m->kvm_rule = SS_R_NOMEM;
		return r;
	}
	uint32_t head = frame_head(m, (uint32_t)pfn);
	if (frame_ro(m, head)->xflags & X_HWPOISON) {  /* __kvm_gmem_get_pfn: -EHWPOISON */
		m->kvm_rule = SS_R_RUN_HWPOISON;
		return -EHWPOISON;
	}
	if (frame_ro(m, head)->flags & F_UPTODATE) {
		m->kvm_rule = SS_R_POPULATE_EXISTS;
		return -EEXIST;
	}
	if (!(attrs_get(&o->vm->attrs, gfn) & SS_MEMORY_ATTRIBUTE_PRIVATE)) {
		m->kvm_rule = SS_R_POPULATE_SHARED;
		return -EINVAL;
	}
	uint8_t *p;
	if (data_get(m, (uint32_t)pfn, &p)) {
		m->kvm_rule = SS_R_NOMEM;
		return -ENOMEM;
	}
	memcpy(p, src, SS_PAGE_SIZE);
	frame_rw(m, head)->flags |= F_DIRTY | F_PREPARED;
	hook(m, o->id, o->vm->type, true, head, 1);
	measure(o->vm, gfn << SS_PAGE_SHIFT, p);
	frame_rw(m, head)->flags |= F_UPTODATE;
	direct_map_remove(m, o, head);
	return 0;
}

int ss_vm_launch_update(struct ss_machine *m, int id, uint64_t gpa, const uint8_t *src,
			uint64_t len, uint64_t *done)
{
	ev_begin(m, SS_OP_LAUNCH_UPDATE, -1, id, (int64_t)gpa, (int64_t)len, 0);
	m->kvm_rule = SS_R_NONE;
	*done = 0;
	struct owner *o = vm_ioctl_get(m, id);
	if (!o)
		return vm_fail(m, id);
	if (is_rfc(m) || !vm_is_coco(o->vm))
		return kvm_fail(m, SS_R_NOT_COCO, -ENOTTY);
	bool tdx = o->vm->type == SS_VM_TDX;
	if (tdx && !o->vm->nvcpus)
		return kvm_fail(m, SS_R_LAUNCH_NO_VCPU, -EINVAL);
	if (o->vm->launch == SS_LAUNCH_DONE)
		return kvm_fail(m, SS_R_LAUNCH_DONE, tdx ? -EINVAL : -EIO);
	if (!len || ((gpa | len) & (SS_PAGE_SIZE - 1)) || gpa + len <= gpa)
		return kvm_fail(m, SS_R_POPULATE_RANGE, -EINVAL);
	uint64_t gfn = gpa >> SS_PAGE_SHIFT, npages = len >> SS_PAGE_SHIFT;
	struct memslot *s = vm_slot_of(o, gfn);
	if (!s || !(s->flags & SS_MEM_GUEST_MEMFD))
		return kvm_fail(m, SS_R_POPULATE_SLOT, -EINVAL);
	struct inode *in = inode_get(m, s->ino);
	if (!in || s->gmem_closed)
		return kvm_fail(m, SS_R_POPULATE_CLOSED, -EFAULT);
	if (npages > s->gfn + s->npages - gfn)
		npages = s->gfn + s->npages - gfn;
	int r = 0;
	uint64_t i;
	for (i = 0; i < npages; i++) {
		r = populate_one(m, o, s, in, gfn + i, src + (i << SS_PAGE_SHIFT));
		if (r)
			break;
	}
	*done = i;
	if (m->cur)
		m->cur->e.out[0] = (int64_t)i;
	if (r && (tdx || !i))
		return kvm_fail(m, m->kvm_rule, r);
	m->kvm_rule = SS_R_NONE;
	return (int)ev_end(m, (int64_t)i);
}

int ss_vm_launch_finish(struct ss_machine *m, int id)
{
	ev_begin(m, SS_OP_LAUNCH_FINISH, -1, id, 0, 0, 0);
	m->kvm_rule = SS_R_NONE;
	struct owner *o = vm_ioctl_get(m, id);
	if (!o)
		return vm_fail(m, id);
	if (is_rfc(m) || !vm_is_coco(o->vm))
		return kvm_fail(m, SS_R_NOT_COCO, -ENOTTY);
	if (o->vm->launch == SS_LAUNCH_DONE)
		return kvm_fail(m, SS_R_LAUNCH_DONE, o->vm->type == SS_VM_TDX ? -EINVAL : -EIO);
	o->vm->launch = SS_LAUNCH_DONE;
	if (o->vm->type == SS_VM_TDX)
		sha384_final(&o->vm->mr, o->vm->digest);
	return (int)ev_end(m, 0);
}

int ss_vm_launch_info(const struct ss_machine *m, int id, struct ss_launch_info *out)
{
	const struct owner *o = vm_get_const(m, id);
	if (!o)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->state = o->vm->launch;
	out->pages = o->vm->nmeasured;
	out->have_digest = o->vm->type == SS_VM_SNP ||
			   (o->vm->type == SS_VM_TDX && o->vm->launch == SS_LAUNCH_DONE);
	if (out->have_digest)
		memcpy(out->digest, o->vm->digest, 48);
	return 0;
}
