/*
 * maptest.h - helpers of the C tests that touch VMM mappings (test_cow_map.c,
 * test_pin_write.c): a host access through a mapping, a one-byte pread, the
 * frames in use, and the touches of the last event.  Include after harness.h.
 */
#ifndef SS_TEST_MAPTEST_H
#define SS_TEST_MAPTEST_H

#include "harness.h"

/* the byte a host access reads or wrote; 1000 + the signal; or -errno */
static inline int touch(struct ss_machine *m, int map, uint64_t off, int write, uint8_t v)
{
	int sig = -1;
	uint8_t out = 0;
	int r = ss_mapping_access(m, map, off, write, v, &sig, &out);
	check(m, __LINE__);
	return r < 0 ? r : sig ? 1000 + sig : out;
}

static inline uint8_t pread1(struct ss_machine *m, int fd, int64_t off)
{
	uint8_t b = 0xee;
	EXPECT(m, ss_pread(m, fd, &b, 1, off), 1);
	return b;
}

static inline uint64_t used(struct ss_machine *m)
{
	struct ss_phys_info pi;
	ss_phys_info(m, &pi);
	return pi.used;
}

/* the touches of the last event of kind what: how many */
static inline int last_touches(struct ss_machine *m, int what)
{
	struct ss_touch t[32];
	int n = ss_event_touches(m, ss_event_count(m), 0, t, 32), k = 0;
	for (int i = 0; i < n; i++)
		k += t[i].what == what;
	return k;
}

#endif /* SS_TEST_MAPTEST_H */
