/*
 * fuzz: one libFuzzer entry point for every parser of untrusted input and
 * every framing, chosen by target name (as Fossil's src/fuzz.c does).
 *
 * The same file builds two ways: with clang -fsanitize=fuzzer (make fuzz:
 * libFuzzer's main() runs a campaign) and with the ordinary compiler into
 * tests/fuzz_replay, whose main() feeds saved inputs to the same
 * LLVMFuzzerTestOneInput (make check replays the committed corpus).
 *
 * A target checks properties of what the code under test returns or
 * writes, and abort()s with a message on stderr when one fails; a crash
 * or a sanitizer report is a finding too.
 */
#ifndef PUSHCGI_FUZZ_H
#define PUSHCGI_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#define FUZZ_ENV "PUSHCGI_FUZZ" /* names the target under libFuzzer */

/* The number of targets, and the name and one-line description of
 * target i (0 <= i < fuzz_ntargets()). */
int fuzz_ntargets(void);
const char *fuzz_name(int i);
const char *fuzz_what(int i);

/* Make the target called name the one LLVMFuzzerTestOneInput runs.
 * 0, or -1 if there is no such target. */
int fuzz_select(const char *name);

/* libFuzzer's hooks.  Initialize selects the target from $PUSHCGI_FUZZ,
 * else from the program's name (fuzz-TARGET), and exits if neither names
 * one. */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
