/*
 * density.c - how much of a window is present, per column: the maps' honest
 * view of a window far wider than the screen (a 1 TiB file is 2^28 pages).
 *
 * A window [start, end) is cut into `cols` columns of (nearly) equal width:
 * index x is in column (x - start) * cols / (end - start).  Each column gets
 * the number of present pages (or used frames) in it, so a single page among
 * a million holes still counts 1, and what it is made of: flags of the pages
 * (huge, locked, dirty, mapped, waited on), or the one file its frames belong
 * to.  The walk reads the same runs as ss_file_runs / ss_phys_runs: its cost
 * follows the runs and the resident pages of the window, never its width.
 */
#include "internal.h"
#include <string.h>

#define RUN_BATCH 256

typedef unsigned __int128 u128;

/* first index of column c of [start, start + w) cut in cols */
static uint64_t col_lo(uint64_t start, uint64_t w, int cols, int c)
{
	return start + (uint64_t)(((u128)w * (unsigned int)c + (unsigned int)cols - 1) /
				  (unsigned int)cols);
}

static int col_of(uint64_t start, uint64_t w, int cols, uint64_t x)
{
	return (int)(((u128)(x - start) * (unsigned int)cols) / w);
}

/* add the run [a, b) to the columns it overlaps; `fn` marks each column */
static void spread(uint64_t start, uint64_t w, int cols, uint64_t a, uint64_t b,
		   uint64_t *count, void (*fn)(int c, const void *arg), const void *arg)
{
	int c = col_of(start, w, cols, a), last = col_of(start, w, cols, b - 1);
	for (; c <= last; c++) {
		uint64_t lo = col_lo(start, w, cols, c);
		uint64_t hi = c + 1 < cols ? col_lo(start, w, cols, c + 1) : start + w;
		count[c] += (b < hi ? b : hi) - (a > lo ? a : lo);
		fn(c, arg);
	}
}

static int check_window(uint64_t start, uint64_t end, int cols)
{
	if (start >= end || cols < 1 || cols > SS_MAX_COLS)
		return -EINVAL;
	return 0;
}

/* ---- pages of a file ---- */
struct page_mark {
	uint8_t *flags;
	uint8_t bits;
};

static void mark_page(int c, const void *arg)
{
	const struct page_mark *pm = arg;
	pm->flags[c] |= pm->bits;
}

static uint8_t page_bits(const struct ss_page_run *r)
{
	return (uint8_t)((r->order > 0 ? SS_DENS_HUGE : 0) | (r->locked ? SS_DENS_LOCKED : 0) |
			 (r->dirty ? SS_DENS_DIRTY : 0) | (r->mapped_by ? SS_DENS_MAPPED : 0) |
			 (r->waiters ? SS_DENS_WAIT : 0));
}

int ss_file_density(const struct ss_machine *m, int fd, uint64_t start, uint64_t end, int cols,
		    uint64_t *present, uint8_t *flags)
{
	struct ss_page_run runs[RUN_BATCH];
	int err = check_window(start, end, cols);
	if (err)
		return err;
	if (!fd_inode((struct ss_machine *)m, fd))
		return -EBADF;
	memset(present, 0, sizeof(*present) * (size_t)cols);
	memset(flags, 0, (size_t)cols);
	uint64_t w = end - start, cur = start;
	while (cur < end) {
		uint64_t next = end;
		int n = ss_file_runs(m, fd, cur, end, runs, RUN_BATCH, &next);
		if (n < 0)
			return n;
		for (int i = 0; i < n; i++) {
			if (runs[i].state != SS_PG_PRESENT)
				continue;
			struct page_mark pm = { flags, page_bits(&runs[i]) };
			spread(start, w, cols, runs[i].start, runs[i].end, present, mark_page, &pm);
		}
		if (n == 0 || next <= cur)
			break;
		cur = next;
	}
	return 0;
}

/* ---- frames ---- */
struct frame_mark {
	int *fd;
	int code;  /* the run's file: its fd, or SS_DENS_NOFILE */
};

static void mark_frame(int c, const void *arg)
{
	const struct frame_mark *fm = arg;
	if (fm->fd[c] == SS_DENS_NONE)
		fm->fd[c] = fm->code;
	else if (fm->fd[c] != fm->code)
		fm->fd[c] = SS_DENS_MANY;
}

int ss_phys_density(const struct ss_machine *m, uint64_t start, uint64_t end, int cols,
		    uint64_t *used, int *fd)
{
	struct ss_frame_run runs[RUN_BATCH];
	if (end > m->cfg.phys_pages)
		end = m->cfg.phys_pages;
	int err = check_window(start, end, cols);
	if (err)
		return err;
	memset(used, 0, sizeof(*used) * (size_t)cols);
	for (int c = 0; c < cols; c++)
		fd[c] = SS_DENS_NONE;
	uint64_t w = end - start, cur = start;
	while (cur < end) {
		uint64_t next = end;
		int n = ss_phys_runs(m, cur, end, runs, RUN_BATCH, &next);
		for (int i = 0; i < n; i++) {
			if (runs[i].state == SS_FRAME_FREE)
				continue;
			bool open = runs[i].state == SS_FRAME_CACHE && runs[i].fd >= 0;
			struct frame_mark fm = { fd, open ? runs[i].fd : SS_DENS_NOFILE };
			spread(start, w, cols, runs[i].start, runs[i].end, used, mark_frame, &fm);
		}
		if (n == 0 || next <= cur)
			break;
		cur = next;
	}
	return 0;
}
