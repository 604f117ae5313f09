/*
 * fuzz_ops.c - a fuzz target over random operation sequences on the engine.
 *
 * The input is a little program: its first bytes pick the machine (profile,
 * THP mode, variants, memory), then each op takes an opcode byte and the
 * bytes of its arguments.  Arguments are mostly small (fds, indexes and
 * lengths the machine can hold) with a table of edge values (0, -1, page
 * and huge-page boundaries, INT64 / UINT64 extremes) mixed in.  After every
 * op the invariant checker runs; a failure aborts, so libFuzzer (or the
 * driver in fuzz_main.c) reports the input.  Every so often the machine is
 * cloned (the snapshot path), both are checked, and the rest of the program
 * runs on the clone, with the original in lockstep for 32 ops: both must record
 * the same events (a clone that lost state answers differently).
 *
 * Config bit 7 adds the KVM ops of fuzz_kvm.c (VMs, guest_memfd, memslots,
 * attributes, vCPU and host accesses, pre-fault) to the file-side ones.
 *
 * Built with clang -fsanitize=fuzzer,address,undefined where clang is
 * present, else with gcc and fuzz_main.c (make fuzz).
 */
#include "fuzz.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define input fuzz_input
#define take fuzz_take

uint64_t fuzz_take(struct input *in, int nbytes)
{
	uint64_t v = 0;
	for (int i = 0; i < nbytes; i++) {
		v <<= 8;
		if (in->left) {
			v |= *in->p++;
			in->left--;
		}
	}
	return v;
}

static const int64_t EDGES[] = {
	0, 1, -1, 4095, 4096, 4097, 8192, 65536, 2 << 20, (2 << 20) - 4096,
	(2 << 20) + 4096, 4 << 20, INT32_MAX, INT64_MAX, INT64_MAX - 4095,
	INT64_MIN, 0x7ffff000LL,
};

/* a byte count or offset: usually pages within a few MiB, sometimes an edge */
static int64_t length(struct input *in)
{
	uint64_t sel = take(in, 1);
	if (sel < 24)
		return EDGES[sel % (sizeof(EDGES) / sizeof(EDGES[0]))];
	if (sel < 160)
		return (int64_t)(take(in, 1) % 1100) * 4096;   /* some beyond 4 MiB */
	return (int64_t)take(in, 3);                        /* unaligned */
}

static uint64_t index_of(struct input *in)
{
	uint64_t sel = take(in, 1);
	if (sel < 8)
		return sel < 4 ? UINT64_MAX - sel : (uint64_t)INT64_MAX;
	return take(in, 2) % 1100;
}

int fuzz_fd(struct input *in)
{
	uint64_t v = take(in, 1);
	return v < 250 ? 3 + (int)(v % 6) : (int)v - 253;   /* mostly 3..8; -3..2 */
}
#define fd_of fuzz_fd

/* FUZZ_VERBOSE=1: print each call and its result (to read a failing input) */
static int verbose;

static void print_events(const struct ss_machine *m, uint64_t after)
{
	struct ss_event e;
	for (uint64_t s = after + 1; s <= ss_event_count(m); s++)
		if (ss_event_get(m, s, &e) == 0)
			fprintf(stderr, "  #%llu op %d fd %d args %lld %lld %lld %lld -> %lld%s\n",
				(unsigned long long)s, e.op, e.fd, (long long)e.args[0],
				(long long)e.args[1], (long long)e.args[2], (long long)e.args[3],
				(long long)e.result, e.pending ? " (sleeps)" : "");
}

static void check_or_die(struct ss_machine *m, int step, int op)
{
	char msg[512];
	if (ss_check(m, msg, sizeof(msg))) {
		fprintf(stderr, "fuzz_ops: invariant broken after step %d (op %d): %s\n", step, op, msg);
		abort();
	}
}

void fuzz_check(struct ss_machine *m, const char *what)
{
	char msg[512];
	if (ss_check(m, msg, sizeof(msg))) {
		fprintf(stderr, "fuzz_ops: invariant broken after %s: %s\n", what, msg);
		abort();
	}
}

/* read every view once: the getters must stay in bounds on any state */
static void read_views(struct ss_machine *m)
{
	struct ss_page_run pr[8];
	struct ss_frame_run fr[8];
	struct ss_waiter_info w[8];
	struct ss_file_info fi;
	struct ss_owner_info oi;
	struct ss_memslot ms[4];
	struct ss_gfn_run gr[4];
	struct ss_callback cb[4];
	struct ss_touch t[4];
	struct ss_event ev;
	struct ss_phys_info pi;
	int fds[16];
	uint64_t next;
	int n = ss_file_list(m, fds, 16);
	for (int i = 0; i < n; i++) {
		ss_file_info(m, fds[i], &fi);
		ss_file_runs(m, fds[i], 0, UINT64_MAX, pr, 8, &next);
	}
	ss_phys_runs(m, 0, UINT64_MAX, fr, 8, &next);
	ss_phys_info(m, &pi);
	ss_waiters(m, w, 8);
	for (int o = 0; o < ss_owner_count(m); o++) {
		ss_owner_info(m, o, &oi);
		ss_owner_memslots(m, o, ms, 4);
		ss_owner_gfn_runs(m, o, 0, gr, 4);
	}
	uint64_t last = ss_event_count(m);
	if (last && ss_event_get(m, last, &ev) == 0) {
		ss_event_callbacks(m, last, 0, cb, 4);
		ss_event_touches(m, last, 0, t, 4);
	}
	(void)ss_memory_bytes(m);
}

#define FILE_OPS 21

/* a clone and its original, given the same op, record the same events */
static void same_events(const struct ss_machine *a, const struct ss_machine *b, uint64_t before,
			int step)
{
	struct ss_event x, y;
	uint64_t n = ss_event_count(a);
	if (ss_event_count(b) != n) {
		fprintf(stderr, "fuzz_ops: step %d: the clone has %llu events, the original %llu\n",
			step, (unsigned long long)n, (unsigned long long)ss_event_count(b));
		abort();
	}
	for (uint64_t s = before + 1; s <= n; s++) {
		if (ss_event_get(a, s, &x) || ss_event_get(b, s, &y))
			abort();
		if (x.op != y.op || x.fd != y.fd || memcmp(x.args, y.args, sizeof(x.args)) ||
		    x.result != y.result || x.hazard != y.hazard || x.raw != y.raw ||
		    memcmp(x.out, y.out, sizeof(x.out)) || x.ncallbacks != y.ncallbacks ||
		    x.ntouches != y.ntouches || x.pending != y.pending) {
			fprintf(stderr, "fuzz_ops: step %d: event %llu (op %d) differs between the "
				"clone (result %lld) and its original (result %lld)\n", step,
				(unsigned long long)s, x.op, (long long)x.result, (long long)y.result);
			abort();
		}
	}
}

static void step(struct ss_machine *m, struct input *in, int nops, uint8_t *buf,
		 size_t bufsize, uint64_t *pfns, int *npfns)
{
	uint64_t pfn = 0;
	int order = 0, fd;
	int op = (int)(take(in, 1) % (uint64_t)nops);
	if (op >= FILE_OPS) {
		fuzz_kvm_step(m, in, op - FILE_OPS);
		return;
	}
	switch (op) {
	case 0:
		ss_memfd_create(m, "f", (unsigned int)take(in, 1) & 0x3f);
		break;
	case 1:
		ss_gmem_create(m, length(in), take(in, 1) & 0x7);
		break;
	case 2:
		fd = fd_of(in);
		ss_ftruncate(m, fd, length(in));
		break;
	case 3:
		fd = fd_of(in);
		ss_add_seals(m, fd, (unsigned int)take(in, 1) & 0x7f);
		break;
	case 4:
		ss_get_seals(m, fd_of(in));
		break;
	case 5: {
		fd = fd_of(in);
		int mode = (int)take(in, 1) & 0x7;
		int64_t off = length(in);
		ss_fallocate(m, fd, mode, off, length(in));
		break;
	}
	case 6:
	case 7: {
		fd = fd_of(in);
		int64_t off = length(in);
		int64_t count = (int64_t)(take(in, 2) % (bufsize + 1));
		if (take(in, 1) == 0)
			count = -1;
		if (op == 6) {
			ss_pread(m, fd, buf, count < 0 ? 0 : count, off);
		} else {
			memset(buf, (int)take(in, 1), bufsize);
			ss_pwrite(m, fd, buf, count < 0 ? 0 : count, off);
		}
		break;
	}
	case 8: {
		fd = fd_of(in);
		int64_t off = length(in);
		int64_t len = length(in);
		int pf = (int)take(in, 1);
		ss_mmap(m, fd, off, len, pf & 3, (pf >> 2) & 3);
		break;
	}
	case 9:
		ss_munmap(m, (int)(take(in, 1) % 10) - 1);
		break;
	case 10:
		ss_close(m, fd_of(in));
		break;
	case 11: {
		int kind = (int)take(in, 1) % 3;   /* 2: no such kind */
		ss_owner_create(m, take(in, 1) == 0 ? -1 : kind, "o");
		break;
	}
	case 12:
		fd = fd_of(in);
		ss_register_guest(m, fd, (int)(take(in, 1) % 10) - 1);
		break;
	case 13:
		fd = fd_of(in);
		ss_unregister_guest(m, fd, (int)(take(in, 1) % 10) - 1);
		break;
	case 14: {
		fd = fd_of(in);
		uint64_t idx = index_of(in);
		if (ss_get_lock_pfn(m, fd, idx, (int)take(in, 1) & 1, &pfn, &order) == 0 && *npfns < 64)
			pfns[(*npfns)++] = pfn;
		break;
	}
	case 15:
		if (*npfns && take(in, 1) < 200) {
			int i = (int)(take(in, 1) % (uint64_t)*npfns);
			pfn = pfns[i];
			pfns[i] = pfns[--*npfns];
		} else {
			pfn = take(in, 2);
		}
		ss_put_unlock_pfn(m, pfn);
		break;
	case 16:
		ss_migrate_page(m, take(in, 1) < 8 ? UINT64_MAX : take(in, 2) % 4096);
		break;
	case 17: {
		fd = fd_of(in);
		uint64_t start = index_of(in);
		ss_invalidate(m, fd, start, take(in, 1) < 8 ? UINT64_MAX : start + take(in, 1));
		break;
	}
	case 18: {
		int owner = (int)(take(in, 1) % 10) - 1;
		fd = fd_of(in);
		uint64_t gfn = index_of(in), idx = index_of(in);
		ss_memslot_create(m, owner, fd, gfn, idx, index_of(in));
		break;
	}
	case 19: {
		int owner = (int)(take(in, 1) % 10) - 1;
		ss_fault(m, owner, index_of(in), &pfn, &order);
		break;
	}
	case 20:
		read_views(m);
		fuzz_kvm_views(m);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t buf[3 * 4096 + 17];
	static const uint64_t PAGES[] = { 1024, 2048, 4096, 1024 };
	struct input in = { data, size };
	uint64_t pfns[64];
	int npfns = 0;
	uint64_t cfg = take(&in, 1);
	/* bit 7: the KVM ops too (inputs saved before they existed have it clear) */
	int nops = cfg & 0x80 ? FILE_OPS + FUZZ_KVM_OPS : FILE_OPS;
	struct ss_config c = {
		.profile = (int)(cfg & 1),
		.thp = (int)(((cfg & 0x7f) >> 1) % 3),
		.variants = (uint32_t)(cfg >> 3) & 3,
		.phys_pages = PAGES[(cfg >> 5) & 3],
	};
	struct ss_machine *m = ss_machine_new(&c);
	if (!m)
		abort();   /* a valid config always makes a machine */
	check_or_die(m, 0, -1);
	verbose = getenv("FUZZ_VERBOSE") != NULL;
	if (verbose)
		fprintf(stderr, "config: profile %d thp %d variants %u pages %llu kvm %d\n", c.profile,
			c.thp, c.variants, (unsigned long long)c.phys_pages, nops > FILE_OPS);
	struct ss_machine *twin = NULL;   /* the original of the last clone, in lockstep */
	uint64_t tpfns[64];
	int tnpfns = 0, twin_left = 0;
	for (int i = 1; in.left && i <= 400; i++) {
		int op = in.left ? in.p[0] % nops : -1;
		uint64_t before = ss_event_count(m);
		struct input at = in;
		step(m, &in, nops, buf, sizeof(buf), pfns, &npfns);
		if (verbose)
			print_events(m, before);
		check_or_die(m, i, op);
		if (twin) {   /* the same op on the original answers the same */
			step(twin, &at, nops, buf, sizeof(buf), tpfns, &tnpfns);
			check_or_die(twin, i, op);
			same_events(m, twin, before, i);
			if (--twin_left == 0) {
				ss_machine_free(twin);
				twin = NULL;
			}
		}
		if (i % 64 == 0) {   /* the snapshot path: go on with the clone */
			struct ss_machine *copy = ss_machine_clone(m);
			if (!copy)
				abort();
			check_or_die(copy, i, -2);
			if (ss_event_count(copy) != ss_event_count(m))
				abort();
			ss_machine_free(twin);
			twin = m;
			twin_left = 32;
			memcpy(tpfns, pfns, sizeof(pfns));
			tnpfns = npfns;
			m = copy;
		}
	}
	read_views(m);
	ss_machine_free(twin);
	ss_machine_free(m);
	return 0;
}
