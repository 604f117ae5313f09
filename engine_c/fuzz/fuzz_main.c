/*
 * fuzz_main.c - a driver for fuzz_ops.c where libFuzzer is missing (gcc):
 * random inputs from a seeded generator, run under ASan/UBSan, for a bounded
 * number of seconds (and of runs).  Deterministic for a seed: a failure
 * prints the seed and run that found it, and the input is written to
 * fuzz-crash.bin to be replayed: `fuzz_ops fuzz-crash.bin`.
 *
 *   fuzz_ops [-s SEED] [-t SECONDS] [-n RUNS] [FILE...]
 */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <sanitizer/common_interface_defs.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t state;

static uint64_t next(void)   /* xorshift64* */
{
	state ^= state >> 12;
	state ^= state << 25;
	state ^= state >> 27;
	return state * 2685821657736338717ULL;
}

static uint8_t input[8192];
static size_t input_len;

static uint64_t seed = 1;
static long long run;

/* on a sanitizer report or an abort(): keep the input, say how to get it again */
static void save_input(void)
{
	int fd = open("fuzz-crash.bin", O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd >= 0) {
		ssize_t n = write(fd, input, input_len);
		(void)n;
		close(fd);
	}
	fprintf(stderr, "fuzz_ops: failed at seed %llu run %lld; input in fuzz-crash.bin\n",
		(unsigned long long)seed, run);
}

static void on_abort(int sig)
{
	save_input();
	signal(sig, SIG_DFL);
	raise(sig);
}

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		perror(path);
		return 1;
	}
	input_len = fread(input, 1, sizeof(input), f);
	fclose(f);
	LLVMFuzzerTestOneInput(input, input_len);
	printf("fuzz_ops: %s ran clean (%zu bytes)\n", path, input_len);
	return 0;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	double seconds = 20;
	long long runs = -1, i;
	int files = 0;
	for (int a = 1; a < argc; a++) {
		if (!strcmp(argv[a], "-s") && a + 1 < argc)
			seed = strtoull(argv[++a], NULL, 0);
		else if (!strcmp(argv[a], "-t") && a + 1 < argc)
			seconds = strtod(argv[++a], NULL);
		else if (!strcmp(argv[a], "-n") && a + 1 < argc)
			runs = strtoll(argv[++a], NULL, 0);
		else if (run_file(argv[a]))
			return 1;
		else
			files++;
	}
	if (files)
		return 0;
	state = seed * 0x9E3779B97F4A7C15ULL + 1;
	__sanitizer_set_death_callback(save_input);
	signal(SIGABRT, on_abort);
	double end = now() + seconds;
	for (i = 0; runs < 0 || i < runs; i++) {
		if ((i & 63) == 0 && now() >= end)
			break;
		/* lengths from a few ops to the target's 400-op cap; an op takes ~2-8 bytes */
		input_len = 1 + next() % (next() % 8 == 0 ? sizeof(input) : 512);
		for (size_t k = 0; k < input_len; k++)
			input[k] = (uint8_t)(next() >> 56);
		/* bias towards the ops that build state: create, size, allocate, lock */
		for (size_t k = 1; k < input_len; k += 1 + next() % 9)
			if (next() % 3 == 0)
				input[k] = (uint8_t)((const uint8_t[]){ 0, 2, 5, 5, 14, 7, 12, 18, 19, 11 }[next() % 10]);
		run = i;
		LLVMFuzzerTestOneInput(input, input_len);
	}
	printf("fuzz_ops: seed %llu, %lld runs in %.0f s, no invariant broken, no sanitizer report\n",
	       (unsigned long long)seed, i, seconds);
	return 0;
}
