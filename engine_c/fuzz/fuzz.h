/*
 * fuzz.h - what fuzz_ops.c (the file side and the driver loop) shares with
 * fuzz_kvm.c (the KVM side): the input reader and the argument pickers.
 */
#ifndef SEALSCOPE_FUZZ_H
#define SEALSCOPE_FUZZ_H

#include "../sealscope.h"
#include <stddef.h>
#include <stdint.h>

struct fuzz_input {
	const uint8_t *p;
	size_t left;
};

/* the next nbytes of the input, big endian; zeros past its end */
uint64_t fuzz_take(struct fuzz_input *in, int nbytes);
/* an fd: mostly 3..8 (the ones a run hands out), sometimes -3..2 */
int fuzz_fd(struct fuzz_input *in);

/* ss_check, or abort with what was done */
void fuzz_check(struct ss_machine *m, const char *what);

/* the KVM ops: opcodes 0 .. FUZZ_KVM_OPS - 1 */
#define FUZZ_KVM_OPS 18
void fuzz_kvm_step(struct ss_machine *m, struct fuzz_input *in, int op);
/* read every KVM view of every VM: the getters stay in bounds on any state */
void fuzz_kvm_views(const struct ss_machine *m);

#endif
