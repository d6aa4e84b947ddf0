/*
 * fuzz_replay: feed saved inputs to the fuzz targets' entry point
 * (lib/fuzz.c) without libFuzzer, built with the ordinary compiler.
 *
 *   fuzz_replay                   every target's corpus under
 *                                 $top_srcdir/tests/fuzz/corpus/TARGET/,
 *                                 one "ok - fuzz replay TARGET: N inputs"
 *                                 line each (make check)
 *   fuzz_replay TARGET PATH...    these files (or folders of files), e.g.
 *                                 a crash file a campaign saved
 *
 * A failed property aborts: the file being replayed is named on stderr
 * first.  Exit status 0 when every target replayed at least one input.
 */
#include "config.h"

#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"

#define REPLAY_FILE_MAX (1 << 20) /* bytes of one input read */
#define REPLAY_PATH_MAX 4096

static char replay_current[REPLAY_PATH_MAX];

/* On a crash, name the input (async-signal-safe writes only). */
static void
replay_signal(int sig)
{
	static const char msg[] = "fuzz_replay: crashed on ";

	if (write(2, msg, sizeof(msg) - 1) < 0 ||
	    write(2, replay_current, strlen(replay_current)) < 0 ||
	    write(2, "\n", 1) < 0) {
		/* nothing more to do */
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Replay one file.  0, or -1 if it cannot be read. */
static int
replay_file(const char *path)
{
	static unsigned char buf[REPLAY_FILE_MAX];
	size_t n;
	FILE *f;

	if ((f = fopen(path, "rb")) == NULL) {
		fprintf(stderr, "fuzz_replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	snprintf(replay_current, sizeof(replay_current), "%s", path);
	LLVMFuzzerTestOneInput(buf, n);
	return 0;
}

static int
replay_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replay a file, or every regular file in a folder (in name order).
 * The number of inputs replayed, or -1. */
static int
replay_path(const char *path)
{
	char file[REPLAY_PATH_MAX], **names = NULL;
	struct dirent *de;
	struct stat st;
	size_t n = 0, cap = 0, i;
	int count = 0;
	DIR *d;

	if (stat(path, &st) != 0) {
		fprintf(stderr, "fuzz_replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return replay_file(path) == 0 ? 1 : -1;
	if ((d = opendir(path)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			if ((names = realloc(names, cap * sizeof(*names))) ==
			    NULL)
				abort();
		}
		if ((names[n++] = strdup(de->d_name)) == NULL)
			abort();
	}
	closedir(d);
	qsort(names, n, sizeof(*names), replay_cmp);
	for (i = 0; i < n; i++) {
		snprintf(file, sizeof(file), "%s/%s", path, names[i]);
		if (stat(file, &st) == 0 && S_ISREG(st.st_mode)) {
			if (replay_file(file) != 0) {
				count = -1;
				break;
			}
			count++;
		}
	}
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return count;
}

int
main(int argc, char **argv)
{
	const char *top = getenv("top_srcdir");
	char dir[REPLAY_PATH_MAX];
	int i, n, total, bad = 0;

	signal(SIGABRT, replay_signal);
	signal(SIGSEGV, replay_signal);
	signal(SIGBUS, replay_signal);
	if (argc > 1) {
		if (fuzz_select(argv[1]) != 0) {
			fprintf(stderr, "usage: fuzz_replay [TARGET PATH...]; "
			    "targets:\n");
			for (i = 0; i < fuzz_ntargets(); i++)
				fprintf(stderr, "  %-8s %s\n", fuzz_name(i),
				    fuzz_what(i));
			return 2;
		}
		for (total = 0, i = 2; i < argc; i++) {
			if ((n = replay_path(argv[i])) < 0)
				return 1;
			total += n;
		}
		printf("ok - fuzz replay %s: %d inputs\n", argv[1], total);
		return 0;
	}
	if (top == NULL || *top == '\0')
		top = ".";
	for (i = 0; i < fuzz_ntargets(); i++) {
		snprintf(dir, sizeof(dir), "%s/tests/fuzz/corpus/%s", top,
		    fuzz_name(i));
		fuzz_select(fuzz_name(i));
		n = replay_path(dir);
		if (n > 0)
			printf("ok - fuzz replay %s: %d inputs\n", fuzz_name(i),
			    n);
		else {
			printf("not ok - fuzz replay %s: no inputs in %s\n",
			    fuzz_name(i), dir);
			bad = 1;
		}
		fflush(stdout);
	}
	return bad;
}
