/*
 * fuzz_kvm.c - the KVM ops of the fuzz target (fuzz_ops.c runs them when the
 * config byte's bit 7 is set): VMs of every type (and types no kernel has),
 * KVM_CREATE_GUEST_MEMFD, KVM_SET_USER_MEMORY_REGION2 / the RFC's region_ext,
 * memory attributes, vCPUs and their accesses (private / shared / the
 * attributes decide, read / write), the VMM's touches of its mappings, GUP
 * pins of them (read and FOLL_WRITE) and unpins, KVM_PRE_FAULT_MEMORY and the
 * KVM views.  The u64 fields take values from
 * the whole range: small page multiples (so that slots, mappings and accesses
 * meet), the kernel's limits on either side (access_ok, 2^31 pages, the max
 * gfn, the TDX alias bit, 2^63, 2^64 - 1) and raw random words.  The file
 * side's mmap, munmap, close and punch ops interleave with these; the driver
 * checks the invariants after every op.
 */
#include "fuzz.h"

#define take fuzz_take
#define PG 4096ull

static const uint64_t U64_EDGES[] = {
	0, 1, PG - 1, PG, PG + 1, 2 * PG, 1ull << 21, (1ull << 21) - PG,
	((1ull << 31) - 1) * PG, (1ull << 31) * PG,       /* KVM_MEM_MAX_NR_PAGES */
	1ull << 51, (1ull << 51) - PG,                    /* TDX shared bit, gfn bit 39 */
	1ull << 52, (1ull << 52) - PG,                    /* max gfn 2^40 */
	0x7ffffffff000ull, 0x7fffffffe000ull,             /* access_ok's edge */
	SS_VMM_TOP, SS_VMM_TOP - PG, SS_VMM_TOP - 64 * PG, SS_VMM_FLOOR,
	1ull << 63, (1ull << 63) - PG, (1ull << 63) + PG, /* negative loff_t */
	UINT64_MAX, UINT64_MAX - PG + 1, UINT64_MAX - 2 * PG + 1, (uint64_t)INT64_MAX,
	0x100000000ull, 0xffffffffull,
};
#define NEDGES (sizeof(U64_EDGES) / sizeof(U64_EDGES[0]))

/* a u64 size, offset or address: mostly pages a run can hold, else hostile */
static uint64_t u64_of(struct fuzz_input *in)
{
	uint64_t sel = take(in, 1);
	if (sel < 48)
		return U64_EDGES[sel % NEDGES];
	if (sel < 200)
		return (take(in, 1) % 1100) * PG;
	if (sel < 224)
		return take(in, 3);            /* unaligned */
	return take(in, 8);                    /* anywhere */
}

/* a gpa or guest range: mostly within the first pages, sometimes unaligned */
static uint64_t gpa_of(struct fuzz_input *in)
{
	uint64_t sel = take(in, 1);
	if (sel < 160)
		return (take(in, 1) % 64) * PG;
	if (sel < 192)
		return (take(in, 1) % 64) * PG + take(in, 2) % PG;
	return u64_of(in);
}

/* an owner id: mostly one that exists (VMs among them), else -1..8 */
static int vm_of(const struct ss_machine *m, struct fuzz_input *in)
{
	uint64_t sel = take(in, 1);
	int n = ss_owner_count(m);
	if (sel < 224 && n > 0)
		return (int)(sel % (uint64_t)n);
	return (int)(sel % 10) - 1;
}

/* a size or offset that fits what a run makes: mostly 0..63 pages */
static uint64_t small_of(struct fuzz_input *in)
{
	uint64_t sel = take(in, 1);
	return sel < 224 ? (sel % 64) * PG : u64_of(in);
}

/* a gpa inside one of the VM's memslots (else gpa_of): so that accesses,
 * attributes and pre-faults meet pages that exist */
static uint64_t slot_gpa(const struct ss_machine *m, int vm, struct fuzz_input *in)
{
	struct ss_vm_memslot ms[8];
	int n = ss_vm_memslots(m, vm, ms, 8);
	if (n <= 0 || take(in, 1) < 48)
		return gpa_of(in);
	const struct ss_vm_memslot *s = &ms[take(in, 1) % (uint64_t)(n > 8 ? 8 : n)];
	uint64_t pages = s->memory_size / PG;
	return s->guest_phys_addr + (pages ? take(in, 2) % pages : 0) * PG;
}

/* userspace_addr: mostly inside a mapping of the VMM, else any u64 */
static uint64_t uaddr_of(const struct ss_machine *m, struct fuzz_input *in)
{
	uint64_t addr;
	if (take(in, 1) < 128 && ss_mapping_addr(m, (int)(take(in, 1) % 8), &addr) == 0)
		return addr + (take(in, 1) % 16) * PG;
	return u64_of(in);
}

/* a map id: mostly a live mapping (the first from a random id on), else any */
static int map_of(const struct ss_machine *m, struct fuzz_input *in)
{
	uint64_t sel = take(in, 1), addr;
	for (int i = 0; sel < 224 && i < 64; i++)
		if (ss_mapping_addr(m, (int)(sel % 32) + 1 + i, &addr) == 0)
			return (int)(sel % 32) + 1 + i;
	return (int)(sel % 10) - 1;
}

static uint32_t slot_of(struct fuzz_input *in)
{
	static const uint32_t EDGE[] = {
		SS_USER_MEM_SLOTS - 1, SS_USER_MEM_SLOTS, 0xffff, 0x10000, 0x10001, 0x20000,
		0x7fffffff, UINT32_MAX,
	};
	uint64_t sel = take(in, 1);
	if (sel < 224)
		return (uint32_t)(sel % 6);
	return EDGE[sel % 8];
}

static void vm_create(struct ss_machine *m, struct fuzz_input *in)
{
	static const uint64_t TYPES[] = {
		SS_VM_DEFAULT, SS_VM_SW_PROTECTED, SS_VM_SNP, SS_VM_TDX, SS_VM_DEFAULT,
		SS_VM_SW_PROTECTED, 2, 3, 6, 1ull << 63, UINT64_MAX, 0x100000000ull,
	};
	uint64_t sel = take(in, 1);
	ss_vm_create(m, sel < 240 ? TYPES[sel % 12] : take(in, 8), "v");
}

static void region(struct ss_machine *m, struct fuzz_input *in)
{
	struct ss_region r = { 0 };
	uint64_t sel;
	int vm = vm_of(m, in);
	r.slot = slot_of(in);
	sel = take(in, 1);
	r.flags = sel < 192 ? (sel & 1 ? SS_MEM_GUEST_MEMFD : 0) | (sel & 6 ? (uint32_t)(sel >> 1) & 3 : 0)
			    : (uint32_t)take(in, 4);
	r.guest_phys_addr = gpa_of(in);
	r.memory_size = take(in, 1) < 32 ? 0 : small_of(in);   /* 0: delete */
	r.userspace_addr = uaddr_of(m, in);
	r.guest_memfd_offset = small_of(in);
	r.guest_memfd = (uint32_t)fuzz_fd(in);
	r.fd = fuzz_fd(in);
	r.private_fd = take(in, 1) < 64 ? -1 : fuzz_fd(in);
	ss_vm_set_memory_region(m, vm, &r);
}

static uint64_t attributes_of(struct fuzz_input *in)
{
	uint64_t sel = take(in, 1);
	if (sel < 96)
		return SS_MEMORY_ATTRIBUTE_PRIVATE;
	if (sel < 192)
		return 0;
	return sel < 224 ? 1ull << (sel % 64) : take(in, 8);
}

/* a coherent setup in one op, each call checked: a VM of a type, a vCPU, a
 * guest_memfd (rfc-v2: a guest-sealed memfd), a memfd the VMM maps, and a slot
 * binding them; so the ops after it meet slots that exist */
static void world(struct ss_machine *m, struct fuzz_input *in)
{
	static const uint64_t TYPES[] = { SS_VM_DEFAULT, SS_VM_SW_PROTECTED, SS_VM_SNP, SS_VM_TDX };
	struct ss_config mc;
	struct ss_region r = { 0 };
	uint64_t addr, sel = take(in, 1);
	uint64_t psel = take(in, 1);   /* mostly a few pages, sometimes 2 or 4 MiB (THP) */
	int64_t pages = psel < 224 ? (int64_t)(psel % 32 + 1) : (psel & 1 ? 512 : 1024);
	int64_t shared, priv = -1;
	int vm, rfc, map;
	ss_machine_config(m, &mc);
	rfc = mc.profile == SS_PROFILE_RFC_V2;
	vm = ss_vm_create(m, rfc ? SS_VM_DEFAULT : TYPES[sel & 3], "w");
	fuzz_check(m, "world: vm");
	if (vm < 0)
		return;
	ss_vcpu_create(m, vm);
	fuzz_check(m, "world: vcpu");
	shared = ss_memfd_create(m, "s", SS_MFD_ALLOW_SEALING);
	ss_ftruncate(m, (int)shared, pages * (int64_t)PG);
	map = ss_mmap(m, (int)shared, 0, pages * (int64_t)PG, SS_PROT_READ | SS_PROT_WRITE,
		      sel & 4 ? SS_MAP_PRIVATE : SS_MAP_SHARED);
	fuzz_check(m, "world: shared memfd");
	if (rfc) {
		priv = ss_memfd_create(m, "p", SS_MFD_ALLOW_SEALING);
		ss_add_seals(m, (int)priv, SS_F_SEAL_GUEST);
		ss_ftruncate(m, (int)priv, pages * (int64_t)PG);
	} else {
		priv = ss_vm_gmem_create(m, vm, (uint64_t)pages * PG, (sel >> 3) & 3);
		if (sel & 8 && priv >= 0)   /* GUEST_MEMFD_FLAG_MMAP: the VMM maps it (gmem-only) */
			map = ss_mmap(m, (int)priv, 0, pages * (int64_t)PG,
				      SS_PROT_READ | SS_PROT_WRITE, SS_MAP_SHARED);
	}
	fuzz_check(m, "world: private file");
	r.slot = (uint32_t)(sel >> 5);
	r.guest_phys_addr = (take(in, 1) % 8) * (uint64_t)pages * PG;
	r.memory_size = (uint64_t)pages * PG;
	if (rfc) {
		r.flags = SS_MEM_FD;
		r.fd = (int32_t)shared;
		r.private_fd = sel & 8 ? -1 : (int32_t)priv;
	} else {
		if (map >= 0 && ss_mapping_addr(m, map, &addr) == 0)
			r.userspace_addr = addr;
		r.flags = SS_MEM_GUEST_MEMFD;
		r.guest_memfd = (uint32_t)priv;
	}
	ss_vm_set_memory_region(m, vm, &r);
	fuzz_check(m, "world: region");
}

void fuzz_kvm_step(struct ss_machine *m, struct fuzz_input *in, int op)
{
	struct ss_access a;
	struct ss_access_result res;
	uint64_t gpa, size, v;
	int vm, sig;
	uint8_t byte;
	switch (op) {
	case 0:
		vm_create(m, in);
		break;
	case 1:
		vm = vm_of(m, in);
		size = small_of(in);
		v = take(in, 1);
		ss_vm_gmem_create(m, vm, size, v < 224 ? v & 3 : take(in, 8));
		break;
	case 2:
	case 3:                                 /* regions are the heart of it: twice as often */
		region(m, in);
		break;
	case 4:
		vm = vm_of(m, in);
		gpa = slot_gpa(m, vm, in);
		size = small_of(in);
		v = attributes_of(in);
		ss_vm_set_memory_attributes(m, vm, gpa, size, v, take(in, 1) < 240 ? 0 : take(in, 8));
		break;
	case 5:
		ss_vcpu_create(m, vm_of(m, in));
		break;
	case 6:
	case 7:
		vm = vm_of(m, in);
		v = take(in, 1);
		a.gpa = slot_gpa(m, vm, in);
		a.write = (int)(v & 1);
		a.private_ = (int)((v >> 1) % 3) - 1;   /* -1: the attributes decide */
		a.value = (uint8_t)take(in, 1);
		ss_vcpu_access(m, vm, (int)(v >> 6) - 1, &a, &res);
		break;
	case 8:
		v = take(in, 1);
		gpa = take(in, 1) < 200 ? (take(in, 1) % 32) * PG + take(in, 1) : u64_of(in);
		ss_mapping_access(m, (int)(v % 10) - 1, gpa, (int)(v >> 7), (uint8_t)v, &sig, &byte);
		break;
	case 9:
		vm = vm_of(m, in);
		gpa = slot_gpa(m, vm, in);
		size = small_of(in);
		v = take(in, 1);
		ss_vcpu_pre_fault(m, vm, (int)(v % 3) - 1, &gpa, &size, v < 240 ? 0 : take(in, 8));
		break;
	case 10: {                              /* a VMM mapping that slots can point at */
		int fd = fuzz_fd(in);
		v = take(in, 1);
		ss_mmap(m, fd, (int64_t)((v & 7) * PG), (int64_t)((take(in, 1) % 32 + 1) * PG),
			v & 8 ? SS_PROT_READ : SS_PROT_READ | SS_PROT_WRITE,
			v & 16 ? SS_MAP_PRIVATE : SS_MAP_SHARED);
		break;
	}
	case 11: {                              /* punch: a conversion's discard */
		int fd = fuzz_fd(in);
		uint64_t off = (take(in, 1) % 32) * PG;
		ss_fallocate(m, fd, SS_FALLOC_FL_PUNCH_HOLE | SS_FALLOC_FL_KEEP_SIZE, (int64_t)off,
			     (int64_t)((take(in, 1) % 32 + 1) * PG));
		break;
	}
	case 12:                                /* grow a file so that slots fit */
		ss_ftruncate(m, fuzz_fd(in), (int64_t)((take(in, 1) % 64) * PG));
		break;
	case 13:
		fuzz_kvm_views(m);
		break;
	case 14:
		world(m, in);
		break;
	case 15:                                /* close(vm_fd): destroyed now or later */
		ss_vm_close(m, vm_of(m, in));
		break;
	case 16: {                              /* pin_user_pages, read or FOLL_WRITE */
		int pin;
		v = take(in, 1);
		gpa = take(in, 1) < 200 ? (take(in, 1) % 8) * PG + take(in, 1) : u64_of(in);
		size = take(in, 1) < 224 ? (take(in, 1) % 4 + 1) * PG - (v & 64 ? 1 : 0) : u64_of(in);
		ss_mapping_pin(m, map_of(m, in), gpa, size, (int)(v >> 7), &sig, &pin);
		break;
	}
	case 17:                                /* unpin_user_pages (ids reuse freed slots) */
		ss_mapping_unpin(m, (int)(take(in, 1) % 10) - 1);
		break;
	}
}

void fuzz_kvm_views(const struct ss_machine *m)
{
	struct ss_cap caps[32];
	struct ss_vm_info vi;
	struct ss_vm_memslot ms[8];
	struct ss_attr_run ar[8];
	struct ss_gfn_source gs[8];
	uint64_t next;
	(void)ss_kvm_rule(m);
	for (int o = -1; o <= ss_owner_count(m); o++) {
		ss_vm_caps(m, o, caps, 32);
		ss_vm_info(m, o, &vi);
		ss_vm_memslots(m, o, ms, 8);
		ss_vm_attr_runs(m, o, 0, UINT64_MAX, ar, 8);
		ss_vm_attr_runs(m, o, UINT64_MAX, 0, ar, 8);
		ss_vm_gfn_sources(m, o, 0, 1ull << 40, gs, 8, &next);
		ss_vm_gfn_sources(m, o, 0, UINT64_MAX, gs, 8, &next);
		ss_vm_gfn_sources(m, o, UINT64_MAX - 4, UINT64_MAX, gs, 8, &next);
	}
}
