/*
 * test_bulk.c - the bulk paths: the radix tree's run operations against its
 * one-entry ones, and fallocate / punch of huge pages in bulk (thp=always)
 * against what the per-page rules make (events, callbacks, touches, pages,
 * contents).  The invariant checker runs after every engine step.
 */
#include "../internal.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/* ---- the tree: a run is the same as its entries one by one ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(uint64_t n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state % n;
}

/* the same entries, counts and node counts, and the same answers to finds */
static void same_trees(const struct tree *a, const struct tree *b, uint64_t span, int round)
{
	checks++;
	if (a->count != b->count || a->nodes != b->nodes || a->shift != b->shift) {
		FAILF("round %d: count %llu/%llu nodes %llu/%llu shift %u/%u", round,
		      (unsigned long long)a->count, (unsigned long long)b->count,
		      (unsigned long long)a->nodes, (unsigned long long)b->nodes, a->shift, b->shift);
		return;
	}
	uint64_t ia = 0, ib = 0, va, vb;
	for (;;) {
		va = tree_find(a, &ia, span);
		vb = tree_find(b, &ib, span);
		if (va != vb || (va && ia != ib)) {
			FAILF("round %d: find gives %llu@%llu and %llu@%llu", round,
			      (unsigned long long)va, (unsigned long long)ia, (unsigned long long)vb,
			      (unsigned long long)ib);
			return;
		}
		if (!va || ia == span)
			return;
		ia++;
		ib = ia;
	}
}

static void test_tree_runs(void)
{
	cur_test = "tree_runs";
	const uint64_t span = 1 << 14;  /* four levels' worth of leaves, sparse */
	struct tree runs, ones;
	tree_init(&runs);
	tree_init(&ones);
	for (int round = 0; round < 800; round++) {
		uint64_t at = rnd(span), n = 1 + rnd(round % 3 ? 200 : 1100);
		if (at + n > span + 1)
			n = span + 1 - at;
		uint64_t value = 1 + rnd(1ULL << 40);
		if (rnd(3)) {
			TRUE(tree_store_run(&runs, at, n, value) == 0);
			for (uint64_t i = 0; i < n; i++)
				TRUE(tree_store(&ones, at + i, value + i) == 0);
		} else {
			tree_erase_run(&runs, at, n);
			for (uint64_t i = 0; i < n; i++)
				tree_erase(&ones, at + i);
		}
		same_trees(&runs, &ones, span, round);
		if (failures)
			break;
	}
	/* erase everything by runs: both trees empty, every node freed */
	tree_erase_run(&runs, 0, span + 1);
	tree_erase_run(&ones, 0, span + 1);
	TRUE(runs.root == NULL && runs.nodes == 0 && runs.count == 0);
	TRUE(ones.root == NULL && ones.nodes == 0 && ones.count == 0);
	/* a run at the very top of the index space stops at the end (no wrap) */
	TRUE(tree_store_run(&runs, UINT64_MAX - 2, 3, 7) == 0);
	TRUE(runs.count == 3 && tree_load(&runs, UINT64_MAX) == 9 && tree_load(&runs, 0) == 0);
	tree_erase_run(&runs, UINT64_MAX - 2, 3);
	TRUE(runs.root == NULL && runs.count == 0 && runs.nodes == 0);
	tree_destroy(&runs);
	tree_destroy(&ones);
}

/* ---- huge pages in bulk ---- */

static struct ss_event last_event(struct ss_machine *m)
{
	struct ss_event e;
	ss_event_get(m, ss_event_count(m), &e);
	return e;
}

#define PUNCH (SS_FALLOC_FL_PUNCH_HOLE | SS_FALLOC_FL_KEEP_SIZE)

/* the order of the page holding index of fd's file, -1 when none */
static int page_order(struct ss_machine *m, int fd, uint64_t index)
{
	struct inode *in = fd_inode(m, fd);
	uint64_t v = in ? tree_load(&in->cache, index) : 0;
	if (!v)
		return -1;
	const struct frame *hf = frame_ro(m, frame_head(m, (uint32_t)(v - 1)));
	return (hf->flags & F_HEAD) ? hf->order : 0;
}

static void test_thp_bulk(void)
{
	cur_test = "thp_bulk";
	const int64_t hp = 512 * 4096, nhuge = 16;
	struct ss_config c = { .profile = SS_PROFILE_RFC_V2, .thp = SS_THP_ALWAYS,
			       .phys_pages = 16384 };
	struct ss_machine *m = ss_machine_new(&c);
	if (!m) {
		FAILF("machine_new");
		return;
	}
	int fd = ss_memfd_create(m, "bulk", SS_MFD_ALLOW_SEALING);
	int rec = ss_owner_create(m, SS_OWNER_RECORDER, "rec");
	EXPECT(m, ss_register_guest(m, fd, rec), 0);
	EXPECT(m, ss_fallocate(m, fd, SS_FALLOC_FL_KEEP_SIZE, 0, nhuge * hp), 0);
	struct ss_event e = last_event(m);
	EXPECT(m, e.ntouches, 1);            /* the allocations merge: pfns are consecutive */
	EXPECT(m, e.ncallbacks, 1);          /* one fallocate callback for the range */
	struct ss_file_info fi;
	ss_file_info(m, fd, &fi);
	EXPECT(m, fi.nr_pages, nhuge * 512);
	EXPECT(m, page_order(m, fd, 5 * 512 + 7), 9);
	/* contents in the 3rd huge page (a tail) and the 10th (its head) */
	uint8_t buf[64];
	memset(buf, 0xab, sizeof(buf));
	EXPECT(m, ss_pwrite(m, fd, buf, sizeof(buf), 2 * hp + 300 * 4096 + 10), sizeof(buf));
	EXPECT(m, ss_pwrite(m, fd, buf, sizeof(buf), 9 * hp), sizeof(buf));
	EXPECT(m, ss_pwrite(m, fd, buf, sizeof(buf), hp + 10), sizeof(buf));  /* stays */
	/* punch [1.5, 12.25) huge pages: two split edges, whole pages between */
	EXPECT(m, ss_fallocate(m, fd, PUNCH, hp + hp / 2, 10 * hp + hp / 4 * 3), 0);
	e = last_event(m);
	EXPECT(m, e.ncallbacks, 12);         /* one per huge page met (two clamped) */
	struct ss_callback cb[12];
	EXPECT(m, ss_event_callbacks(m, e.seq, 0, cb, 12), 12);
	EXPECT(m, cb[0].start, 512 + 256);
	EXPECT(m, cb[0].end, 1023);
	EXPECT(m, cb[1].start, 1024);
	EXPECT(m, cb[1].end, 1535);
	EXPECT(m, cb[11].start, 12 * 512);
	EXPECT(m, cb[11].end, 12 * 512 + 127);
	ss_file_info(m, fd, &fi);
	EXPECT(m, fi.nr_pages, nhuge * 512 - (12 * 512 + 128 - (512 + 256)));
	EXPECT(m, page_order(m, fd, 9 * 512), -1);
	EXPECT(m, ss_pread(m, fd, buf, sizeof(buf), hp + 10), sizeof(buf));
	EXPECT(m, buf[0], 0xab);             /* the split page's kept half keeps its contents */
	EXPECT(m, ss_pread(m, fd, buf, sizeof(buf), 9 * hp), sizeof(buf));
	EXPECT(m, buf[0], 0);                /* the punched page reads as zeros */
	EXPECT(m, page_order(m, fd, 12 * 512 + 127), -1);
	EXPECT(m, page_order(m, fd, 12 * 512 + 128), 0);  /* the kept part of the split edge */
	EXPECT(m, page_order(m, fd, 13 * 512), 9);
	/* allocate over the hole again: whole huge pages where the range is empty */
	EXPECT(m, ss_fallocate(m, fd, 0, 0, nhuge * hp), 0);
	ss_file_info(m, fd, &fi);
	EXPECT(m, fi.nr_pages, nhuge * 512);
	EXPECT(m, page_order(m, fd, 6 * 512), 9);
	EXPECT(m, page_order(m, fd, 512), 0);   /* the split page's kept half stays 4 KiB */
	EXPECT(m, page_order(m, fd, 1023), 0);  /* and its refilled half */
	/* the whole file: every page goes, contents freed (ASan's leak check) */
	EXPECT(m, ss_fallocate(m, fd, PUNCH, 0, nhuge * hp), 0);
	ss_file_info(m, fd, &fi);
	EXPECT(m, fi.nr_pages, 0);
	struct ss_phys_info pi;
	ss_phys_info(m, &pi);
	EXPECT(m, pi.free, 16384);
	EXPECT(m, ss_close(m, fd), 0);
	ss_machine_free(m);
}

/* running out of frames half-way through a bulk allocation gives back every
 * page it made, huge or not */
static void test_thp_bulk_enomem(void)
{
	cur_test = "thp_bulk_enomem";
	struct ss_config c = { .profile = SS_PROFILE_RFC_V2, .thp = SS_THP_ALWAYS,
			       .phys_pages = 4096 };
	struct ss_machine *m = ss_machine_new(&c);
	if (!m) {
		FAILF("machine_new");
		return;
	}
	int fd = ss_memfd_create(m, "bulk", 0);
	EXPECT(m, ss_fallocate(m, fd, 0, 100 * 4096, 4096), 0);  /* one page: a huge one */
	EXPECT(m, ss_fallocate(m, fd, 0, 0, 16LL * 512 * 4096), -ENOMEM);
	struct ss_file_info fi;
	ss_file_info(m, fd, &fi);
	EXPECT(m, fi.nr_pages, 512);
	struct ss_phys_info pi;
	ss_phys_info(m, &pi);
	EXPECT(m, pi.free, 4096 - 512);
	EXPECT(m, ss_close(m, fd), 0);
	ss_machine_free(m);
}

int bulk_tests(int *nchecks);
int bulk_tests(int *nchecks)
{
	test_tree_runs();
	test_thp_bulk();
	test_thp_bulk_enomem();
	*nchecks = checks;
	return failures;
}
