/*
 * pgpub: publishes per second through pglog_append into a PostgreSQL log.
 *
 *   pgpub [-a] URI [CONNS [LISTENERS [COUNT [SIZE]]]]
 *
 * CONNS processes (default 1), each with its own connection, append
 * COUNT messages in all (default 20000, split between them; at most
 * PGPUB_COUNT_MAX) of SIZE bytes (default 64) to the channel "bench",
 * while LISTENERS processes (default 0) LISTEN and read every
 * notification.  Retention is the built-in default (conf.c).  Prints one
 * line: the figures, not a verdict.  The log is created in URI's
 * database (its current schema) if missing.
 *
 * -a: through the public C API instead (pushcgi_open(URI), then
 * pushcgi_publish), as a local program publishes: the same append plus
 * the ring of this host's wake-up, whose folder is wake_dir of the
 * config file (PUSHCGI_CONF).
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "mlog.h"
#include "pglog.h"
#include "pushcgi.h"

#define PGPUB_CONNS_MAX     64
#define PGPUB_LISTENERS_MAX 64
#define PGPUB_COUNT_MAX     1000000
#define PGPUB_SIZE_MAX      65536
#define PGPUB_ERR_MAX       512
#define PGPUB_POLL_MS       100

static volatile sig_atomic_t stop;
static int use_api;             /* -a */

static void
on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static long
arg(int argc, char **argv, int i, long def, long max)
{
	char *end;
	long v;

	if (i >= argc)
		return def;
	v = strtol(argv[i], &end, 10);
	if (*end != '\0' || v < 0 || v > max) {
		fprintf(stderr, "pgpub: argument %d must be 0..%ld\n", i, max);
		exit(100);
	}
	return v;
}

static struct pglog *
open_or_die(const char *uri)
{
	struct pglog *l;
	char err[PGPUB_ERR_MAX];

	if (pglog_open(&l, uri, NULL, PGLOG_CREATE, err, sizeof(err)) !=
	    MLOG_OK) {
		fprintf(stderr, "pgpub: %s\n", err);
		exit(111);
	}
	return l;
}

/* A listener: reads every notification until SIGTERM; says how many. */
static void
listener(const char *uri, int ready)
{
	struct pglog *l = open_or_die(uri);
	struct pollfd pfd;
	long wakeups = 0;
	int rc;

	if (pglog_listen(l) != MLOG_OK) {
		fprintf(stderr, "pgpub: %s\n", pglog_errmsg(l));
		exit(111);
	}
	if (write(ready, "r", 1) != 1)
		exit(111);
	while (!stop) {
		pfd.fd = pglog_socket(l);
		pfd.events = POLLIN;
		if (poll(&pfd, 1, PGPUB_POLL_MS) < 0 && errno != EINTR)
			break;
		if ((rc = pglog_notified(l, NULL)) < 0) {
			fprintf(stderr, "pgpub: %s\n", pglog_errmsg(l));
			exit(111);
		}
		wakeups += rc;
	}
	fprintf(stderr, "pgpub: a listener woke %ld times\n", wakeups);
	pglog_close(l);
	exit(0);
}

/* A publisher: waits for go (EOF), appends n messages. */
static void
publisher(const char *uri, int ready, int go, long n, size_t size)
{
	struct pglog *l = open_or_die(uri);
	char *data, c;
	long i;

	if ((data = malloc(size + 1)) == NULL)
		exit(111);
	memset(data, 'x', size);
	if (use_api) {
		char err[PGPUB_ERR_MAX];
		struct pushcgi *p;

		pglog_close(l);
		if ((p = pushcgi_open(uri, err, sizeof(err))) == NULL) {
			fprintf(stderr, "pgpub: %s\n", err);
			exit(111);
		}
		if (write(ready, "r", 1) != 1 || read(go, &c, 1) != 0)
			exit(111);
		for (i = 0; i < n; i++)
			if (pushcgi_publish(p, "bench", NULL, NULL, data, size,
			    NULL) != 0) {
				fprintf(stderr, "pgpub: %s\n",
				    pushcgi_error(p));
				exit(111);
			}
		pushcgi_close(p);
		free(data);
		exit(0);
	}
	if (write(ready, "r", 1) != 1 || read(go, &c, 1) != 0)
		exit(111);
	for (i = 0; i < n; i++)
		if (pglog_append(l, "bench", NULL, NULL, data, size, NULL) !=
		    MLOG_OK) {
			fprintf(stderr, "pgpub: %s\n", pglog_errmsg(l));
			exit(111);
		}
	pglog_close(l);
	free(data);
	exit(0);
}

int
main(int argc, char **argv)
{
	pid_t pubs[PGPUB_CONNS_MAX], lis[PGPUB_LISTENERS_MAX];
	int readyp[2], gop[2], status, failed = 0;
	long conns, listeners, count, size, i, done;
	double t0, t;
	char c;

	if (argc > 1 && strcmp(argv[1], "-a") == 0) {
		use_api = 1;
		argv++;
		argc--;
	}
	if (argc < 2) {
		fprintf(stderr, "usage: pgpub [-a] URI [CONNS [LISTENERS "
		    "[COUNT [SIZE]]]]\n");
		return 100;
	}
	conns = arg(argc, argv, 2, 1, PGPUB_CONNS_MAX);
	listeners = arg(argc, argv, 3, 0, PGPUB_LISTENERS_MAX);
	count = arg(argc, argv, 4, 20000, PGPUB_COUNT_MAX);
	size = arg(argc, argv, 5, 64, PGPUB_SIZE_MAX);
	if (conns < 1 || count < conns) {
		fprintf(stderr, "pgpub: at least one connection, and COUNT at "
		    "least CONNS\n");
		return 100;
	}
	pglog_close(open_or_die(argv[1]));  /* the schema, once */
	signal(SIGTERM, on_term);
	if (pipe(readyp) != 0 || pipe(gop) != 0)
		return 111;
	for (i = 0; i < listeners; i++)
		if ((lis[i] = fork()) == 0) {
			close(gop[1]);  /* or the publishers never see go */
			listener(argv[1], readyp[1]);
		}
	for (i = 0; i < conns; i++)
		if ((pubs[i] = fork()) == 0) {
			close(gop[1]);
			publisher(argv[1], readyp[1], gop[0],
			    count / conns + (i < count % conns), (size_t)size);
		}
	for (done = 0; done < conns + listeners; done++)
		if (read(readyp[0], &c, 1) != 1)
			return 111;
	t0 = now_s();
	close(gop[1]);
	for (i = 0; i < conns; i++)
		if (waitpid(pubs[i], &status, 0) != pubs[i] ||
		    !WIFEXITED(status) || WEXITSTATUS(status) != 0)
			failed = 1;
	t = now_s() - t0;
	for (i = 0; i < listeners; i++) {
		kill(lis[i], SIGTERM);
		waitpid(lis[i], &status, 0);
	}
	if (failed) {
		fprintf(stderr, "pgpub: a publisher failed\n");
		return 111;
	}
	printf("%sconnections %ld  listeners %ld  messages %ld x %ld B  "
	    "%.2f s  %.0f publishes/s\n", use_api ? "C API  " : "", conns,
	    listeners, count, size, t, count / t);
	return 0;
}
