/*
 * harness.h - what every C test file of the engine shares: the counters, the
 * invariant checker after every step (check / EXPECT), and the failure report.
 * Each test file includes it once; the counters are that file's own.
 */
#ifndef SS_TEST_HARNESS_H
#define SS_TEST_HARNESS_H

#include "../sealscope.h"
#include <stdio.h>

static int failures, checks;
static const char *cur_test;

#define FAILF(...) do { failures++; fprintf(stderr, "FAIL %s:%d (%s): ", __FILE__, __LINE__, cur_test); \
	fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } while (0)

static void check(struct ss_machine *m, int line)
{
	char msg[512];
	checks++;
	if (ss_check(m, msg, sizeof(msg))) {
		failures++;
		fprintf(stderr, "FAIL line %d (%s): invariant: %s\n", line, cur_test, msg);
	}
}

#define EXPECT(m, expr, want) do { long long _r = (long long)(expr); check(m, __LINE__); \
	if (_r != (long long)(want)) FAILF("%s = %lld, want %lld", #expr, _r, (long long)(want)); } while (0)
#define RULE(m, want) do { if (ss_kvm_rule(m) != (want)) FAILF("rule %d, want %s", ss_kvm_rule(m), #want); } while (0)
#define TRUE(cond) do { checks++; if (!(cond)) FAILF("%s", #cond); } while (0)

#endif /* SS_TEST_HARNESS_H */
