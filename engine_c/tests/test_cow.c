/*
 * test_cow.c - copy-on-write clones (chunks.c, tree.c).
 *
 * Random programs of the fuzz target's ops (fuzz_ops.c, fuzz_kvm.c: the
 * file and KVM sides) drive machines whose frame chunks and groups are small
 * (16 frames, 2 chunks: a huge page spans 16 groups).  A machine and its
 * copy-on-write clones are mutated in a random interleaving, each next to a
 * reference: a full copy (ss_machine_clone_full) made at the same moment and
 * given the same ops.  After every op the invariant checker runs on the side
 * that moved, and the side must equal its reference: every frame descriptor,
 * the free lists, every file's page cache and page contents, every mapping's
 * private copies (cow.c), every GUP pin (read and write: kvm_pin.c), every
 * owner's gfn table, every event.  Then clones mutated from two threads at once
 * (with the original in a third), compared with references run one after
 * the other.
 */
#include "../fuzz/fuzz_ops.c"
#include "../fuzz/fuzz_kvm.c"
#undef input
#undef take

#include "../internal.h"
#include <pthread.h>  /* not threads.h: gcc's TSan intercepts pthread_create only */

#include "harness.h"

#define SMALL_SHIFT 4  /* 16 frames a chunk: blocks span chunks */

static uint64_t rnd(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

struct program {
	uint8_t *bytes;
	size_t n;
};

static struct program program_new(uint64_t seed, size_t n)
{
	struct program p = { malloc(n), n };
	for (size_t i = 0; i < n; i++)
		p.bytes[i] = (uint8_t)(rnd(&seed) >> 24);
	return p;
}

/* one machine of the test with what the fuzz ops keep beside it */
struct side {
	struct ss_machine *m, *ref;
	uint64_t pfns[64], rpfns[64];
	int npfns, nrpfns;
	struct fuzz_input in;  /* its program */
};

static uint8_t buf[3 * 4096 + 17];
static uint64_t cow_copies_seen;  /* private mappings' copies compared: the programs reach them */
static uint64_t write_pins_seen;  /* write pins compared (kvm_pin.c), of copies among them */
static uint64_t pinned_copies_seen;

/* ---- equality, white box ---- */

static int diff(const char *what, uint64_t at)
{
	FAILF("clone differs from its reference: %s at %llu", what, (unsigned long long)at);
	return 1;
}

static int same_tree(const struct tree *a, const struct tree *b)
{
	if (a->count != b->count)
		return diff("tree count", a->count);
	uint64_t i = 0, j = 0, va, vb;
	for (;;) {
		va = tree_find(a, &i, UINT64_MAX);
		vb = tree_find(b, &j, UINT64_MAX);
		if (va != vb || (va && i != j))
			return diff("tree entry", i);
		if (!va || ++i == 0 || ++j == 0)
			return 0;
	}
}

static int same_machine(const struct ss_machine *a, const struct ss_machine *b)
{
	uint64_t n = a->cfg.phys_pages;
	if (b->cfg.phys_pages != n || a->nr_free != b->nr_free)
		return diff("nr_free", a->nr_free);
	if (memcmp(a->free_head, b->free_head, sizeof(a->free_head)) ||
	    memcmp(a->nr_free_blocks, b->nr_free_blocks, sizeof(a->nr_free_blocks)))
		return diff("free lists", 0);
	for (uint64_t p = 0; p < n; p++) {
		const struct frame *x = frame_ro(a, p), *y = frame_ro(b, p);
		if (memcmp(x, y, sizeof(*x)))
			return diff("frame", p);
		if (x->data && memcmp(data_ro(a, x->data - 1), data_ro(b, y->data - 1), SS_PAGE_SIZE))
			return diff("page contents", p);
	}
	if (a->ninodes != b->ninodes)
		return diff("inodes", (uint64_t)a->ninodes);
	for (int i = 0; i < a->ninodes; i++) {
		const struct inode *x = &a->inodes[i], *y = &b->inodes[i];
		if (x->ino != y->ino || x->size != y->size || x->nr_pages != y->nr_pages ||
		    x->fd != y->fd || x->seals != y->seals)
			return diff("inode", (uint64_t)i);
		if (x->ino && same_tree(&x->cache, &y->cache))
			return 1;
	}
	if (a->nowners != b->nowners)
		return diff("owners", (uint64_t)a->nowners);
	for (int i = 0; i < a->nowners; i++) {
		if (a->owners[i].nmapped != b->owners[i].nmapped)
			return diff("owner nmapped", (uint64_t)i);
		if (same_tree(&a->owners[i].gfns, &b->owners[i].gfns))
			return 1;
	}
	if (a->nmaps != b->nmaps)
		return diff("mappings", (uint64_t)a->nmaps);
	for (int i = 0; i < a->nmaps; i++) {  /* MAP_PRIVATE copies (cow.c) */
		if (a->maps[i].id != b->maps[i].id || a->maps[i].addr != b->maps[i].addr)
			return diff("mapping", (uint64_t)i);
		if (same_tree(&a->maps[i].cow, &b->maps[i].cow))
			return 1;
		cow_copies_seen += a->maps[i].cow.count;
	}
	if (a->npins != b->npins)
		return diff("pin slots", (uint64_t)a->npins);
	for (int i = 0; i < a->npins; i++) {  /* GUP pins (kvm_pin.c), read and write */
		const struct pin *x = &a->pins[i], *y = &b->pins[i];
		if (x->id != y->id || x->map_id != y->map_id || x->ino != y->ino ||
		    x->offset != y->offset || x->npages != y->npages || x->write != y->write ||
		    (x->id && memcmp(x->pfns, y->pfns, x->npages * sizeof(*x->pfns))))
			return diff("pin", (uint64_t)i);
		write_pins_seen += x->id && x->write;
		for (uint64_t j = 0; x->id && j < x->npages; j++)
			pinned_copies_seen += frame_ro(a, x->pfns[j])->state == SS_FRAME_COW;
	}
	if (ss_event_count(a) != ss_event_count(b))
		return diff("event count", ss_event_count(a));
	for (uint64_t s = 1; s <= ss_event_count(a); s++) {
		struct ss_event x, y;
		if (ss_event_get(a, s, &x) || ss_event_get(b, s, &y) || memcmp(&x, &y, sizeof(x)))
			return diff("event", s);
	}
	return 0;
}

/* one op of the side's program on it and on its reference */
static void side_step(struct side *s, int nops)
{
	struct fuzz_input at = s->in;
	step(s->m, &s->in, nops, buf, sizeof(buf), s->pfns, &s->npfns);
	step(s->ref, &at, nops, buf, sizeof(buf), s->rpfns, &s->nrpfns);
}

static bool side_clone(struct side *dst, const struct side *src, struct program *prog)
{
	*dst = *src;
	dst->m = ss_machine_clone(src->m);
	dst->ref = ss_machine_clone_full(src->ref);
	dst->in = (struct fuzz_input){ prog->bytes, prog->n };
	return dst->m && dst->ref;
}

static void side_free(struct side *s)
{
	ss_machine_free(s->m);
	ss_machine_free(s->ref);
	s->m = s->ref = NULL;
}

static const uint64_t PAGES[] = { 1024, 2048, 4096, 8192 };

static struct ss_machine *machine_of(uint8_t cfg)
{
	struct ss_config c = {
		.profile = cfg & 1,
		.thp = ((cfg & 0x7f) >> 1) % 3,
		.variants = (uint32_t)(cfg >> 3) & 3,
		.phys_pages = PAGES[(cfg >> 5) & 3],
	};
	return machine_new_chunked(&c, SMALL_SHIFT, 1);  /* groups of 2 chunks */
}

#define MAX_SIDES 4

/* a machine and its clones, mutated in a random interleaving */
static void interleaved(uint64_t seed)
{
	uint64_t r = seed * 0x9e3779b97f4a7c15ull + 1;
	uint8_t cfg = (uint8_t)rnd(&r);
	int nops = cfg & 0x80 ? FILE_OPS + FUZZ_KVM_OPS : FILE_OPS;
	struct program progs[MAX_SIDES];
	for (int i = 0; i < MAX_SIDES; i++)
		progs[i] = program_new(rnd(&r), 6000);
	struct side sides[MAX_SIDES];
	memset(sides, 0, sizeof(sides));
	int nsides = 1;
	struct side *s0 = &sides[0];
	s0->m = machine_of(cfg);
	if (!s0->m) {
		FAILF("no machine for config %u", cfg);
		goto out;
	}
	s0->ref = ss_machine_clone_full(s0->m);
	s0->in = (struct fuzz_input){ progs[0].bytes, progs[0].n };
	for (int i = 0; i < 120; i++)  /* a past to share */
		side_step(s0, nops);
	int spawned = 1;
	for (int i = 0; i < 400; i++) {
		uint64_t pick = rnd(&r);
		if (pick % 16 == 0 && nsides < MAX_SIDES && spawned < MAX_SIDES) {
			int from = (int)((pick >> 8) % (uint64_t)nsides);
			if (!side_clone(&sides[nsides], &sides[from], &progs[spawned]))
				FAILF("clone failed");
			check(sides[nsides].m, __LINE__);
			nsides++;
			spawned++;
			continue;
		}
		if (pick % 61 == 1 && nsides > 1) {  /* the original or a clone goes */
			int k = (int)((pick >> 8) % (uint64_t)nsides);
			side_free(&sides[k]);
			sides[k] = sides[--nsides];
			continue;
		}
		struct side *s = &sides[(pick >> 8) % (uint64_t)nsides];
		if (!s->in.left)
			continue;
		side_step(s, nops);
		check(s->m, __LINE__);
		checks++;
		if (same_machine(s->m, s->ref)) {
			fprintf(stderr, "  seed %llu, step %d\n", (unsigned long long)seed, i);
			break;
		}
	}
	for (int k = 0; k < nsides; k++) {
		checks++;
		same_machine(sides[k].m, sides[k].ref);
		side_free(&sides[k]);
	}
out:
	for (int i = 0; i < MAX_SIDES; i++)
		free(progs[i].bytes);
}

/* a clone right after cloning shares every chunk and node: it owns almost nothing */
static void owned_bytes(void)
{
	cur_test = "cow owned bytes";
	struct ss_config c = { .profile = SS_PROFILE_GMEM, .thp = SS_THP_ALWAYS,
			       .phys_pages = 1u << 20 };
	struct ss_machine *m = ss_machine_new(&c);
	int fd = ss_memfd_create(m, "big", 0);
	EXPECT(m, ss_fallocate(m, fd, 0, 0, 2ll << 30), 0);  /* 2 GiB of 4 GiB */
	uint64_t whole = ss_memory_owned(m, NULL);
	TRUE(whole >= (1u << 20) * sizeof(struct frame));
	struct ss_machine *a = ss_machine_clone(m), *full = ss_machine_clone_full(m);
	check(a, __LINE__);
	/* (a copy's event arrays are cut to fit: a little less) */
	TRUE(ss_memory_owned(full, NULL) <= whole && ss_memory_owned(full, NULL) + 64 * 1024 > whole);
	/* the two share all: each counts half, and nothing beside the other */
	TRUE(ss_memory_owned(a, NULL) < whole / 2 + 64 * 1024);
	TRUE(ss_memory_owned(m, NULL) < whole / 2 + 64 * 1024);
	TRUE(ss_memory_owned(a, m) < 64 * 1024);
	TRUE(ss_memory_owned(full, m) + 64 * 1024 > whole);
	/* one page written: one chunk, a tree path and a log segment copied */
	uint64_t chunk = sizeof(struct fchunk) + (1u << FCHUNK_SHIFT) * sizeof(struct frame);
	EXPECT(a, ss_pwrite(a, fd, "x", 1, 12345 * 4096), 1);
	TRUE(ss_memory_owned(a, NULL) < whole / 2 + chunk + 128 * 1024);
	TRUE(ss_memory_owned(a, m) > chunk && ss_memory_owned(a, m) < chunk + 128 * 1024);
	TRUE(same_machine(m, full) == 0);
	char got[2] = { 0 };
	EXPECT(m, ss_pread(m, fd, got, 1, 12345 * 4096), 1);
	TRUE(got[0] == 0);
	EXPECT(a, ss_pread(a, fd, got, 1, 12345 * 4096), 1);
	TRUE(got[0] == 'x');
	/* the original punches it all: the clone keeps its pages */
	EXPECT(m, ss_fallocate(m, fd, SS_FALLOC_FL_PUNCH_HOLE | SS_FALLOC_FL_KEEP_SIZE, 0, 2ll << 30), 0);
	struct ss_file_info fi;
	EXPECT(a, ss_file_info(a, fd, &fi), 0);
	TRUE(fi.nr_pages == (2ull << 30) / 4096);
	EXPECT(m, ss_file_info(m, fd, &fi), 0);
	TRUE(fi.nr_pages == 0);
	/* a holds the 2 GiB file's frames and cache tree beside m now */
	TRUE(ss_memory_owned(a, m) > (2ull << 30) / 4096 * sizeof(struct frame));
	ss_machine_free(m);
	check(a, __LINE__);
	TRUE(ss_memory_owned(a, NULL) + 64 * 1024 > whole);  /* alone now */
	ss_machine_free(a);
	ss_machine_free(full);
}

/* ---- clones mutated from two threads at once ---- */

struct job {
	struct side s;
	int nops, steps, bad;
	uint64_t seed;
	uint8_t buf[3 * 4096 + 17];
};

static void *run_job(void *arg)
{
	struct job *j = arg;
	uint64_t r = j->seed;
	char msg[256];
	for (int i = 0; i < j->steps && j->s.in.left; i++) {
		step(j->s.m, &j->s.in, j->nops, j->buf, sizeof(j->buf), j->s.pfns, &j->s.npfns);
		if (ss_check(j->s.m, msg, sizeof(msg))) {
			fprintf(stderr, "FAIL thread job: invariant after step %d: %s\n", i, msg);
			j->bad++;
			break;
		}
		if (rnd(&r) % 50 == 0) {  /* a snapshot taken and dropped: refs up and down */
			struct ss_machine *c = ss_machine_clone(j->s.m);
			if (!c || ss_check(c, msg, sizeof(msg)))
				j->bad++;
			ss_machine_free(c);
		}
	}
	return NULL;
}

static void threads(uint64_t seed)
{
	cur_test = "cow threads";
	uint64_t r = seed;
	uint8_t cfg = (uint8_t)(0x80 | 0x60 | (rnd(&r) & 0x1f));  /* 8192 pages, KVM ops too */
	int nops = FILE_OPS + FUZZ_KVM_OPS;
	struct program base = program_new(rnd(&r), 4000);
	struct side b = { .m = machine_of(cfg) };
	if (!b.m) {
		FAILF("no machine");
		free(base.bytes);
		return;
	}
	b.ref = ss_machine_clone_full(b.m);
	b.in = (struct fuzz_input){ base.bytes, base.n };
	for (int i = 0; i < 300; i++)
		side_step(&b, nops);
	check(b.m, __LINE__);
	static struct job jobs[3];
	struct program progs[3];
	for (int k = 0; k < 3; k++) {
		progs[k] = program_new(rnd(&r), 20000);
		jobs[k] = (struct job){ .nops = nops, .steps = 1500, .seed = rnd(&r) };
		jobs[k].s = b;
		/* job 0 is the original itself, jobs 1 and 2 its clones */
		jobs[k].s.m = k ? ss_machine_clone(b.m) : b.m;
		jobs[k].s.ref = ss_machine_clone_full(b.ref);
		jobs[k].s.in = (struct fuzz_input){ progs[k].bytes, progs[k].n };
	}
	pthread_t t[3];
	for (int k = 0; k < 3; k++)
		TRUE(pthread_create(&t[k], NULL, run_job, &jobs[k]) == 0);
	for (int k = 0; k < 3; k++)
		pthread_join(t[k], NULL);
	for (int k = 0; k < 3; k++) {
		TRUE(jobs[k].bad == 0);
		/* the reference: the same program alone, with no sharing */
		struct job ref = jobs[k];
		ref.s.m = jobs[k].s.ref;
		ref.s.in = (struct fuzz_input){ progs[k].bytes, progs[k].n };
		memcpy(ref.s.pfns, b.pfns, sizeof(b.pfns));
		ref.s.npfns = b.npfns;
		run_job(&ref);
		checks++;
		if (same_machine(jobs[k].s.m, ref.s.m))
			fprintf(stderr, "  thread job %d, seed %llu\n", k, (unsigned long long)seed);
		side_free(&jobs[k].s);
		free(progs[k].bytes);
	}
	ss_machine_free(b.ref);
	free(base.bytes);
}

int cow_tests(int *nchecks);
int cow_tests(int *nchecks)
{
	const char *only = getenv("SS_CTEST_ONLY");  /* the TSan build runs the threads only */
	if (!only) {
		cur_test = "cow interleaved";
		for (uint64_t seed = 1; seed <= 48; seed++)
			interleaved(seed);
		TRUE(cow_copies_seen > 0);
		TRUE(write_pins_seen > 0 && pinned_copies_seen > 0);
		owned_bytes();
	}
	for (uint64_t seed = 1; seed <= (only ? 2u : 4u); seed++)
		threads(seed);
	*nchecks = checks;
	return failures;
}
