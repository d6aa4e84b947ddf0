/*
 * bench-wake: how fast and how cheaply a publish reaches follower
 * processes.  Prints numbers, asserts nothing.
 *
 *	bench-wake [-f FOLLOWER] [-c PUSHCTL] [-F COUNTS] [-N IDLE]
 *	           [-I SECONDS] [-P PUBLISHES] [-d DIR]
 *
 * 1. Wake latency with COUNTS follower processes (default 1,100,1000):
 *    each runs `follower follow` (one process, one bell_wait loop, as
 *    pushctl tail -f) on a fresh log; once all are waiting and a settling
 *    second has passed, messages are published one at a time through the
 *    C API, spaced so that publishes do not overlap, then one untimed
 *    message after which the followers exit.  Latency = a follower's
 *    CLOCK_MONOTONIC receive time minus the time the publish call began
 *    (so it includes the commit).  Reported: p50 and p99 over every
 *    (follower, message) pair, and over the slowest follower of each
 *    publish, leaving out the first publish, whose slowest follower is
 *    shown apart ("first": each process's first read of the log).
 * 2. CPU used by IDLE (default 1000) followers over SECONDS (default 30,
 *    or $BENCH_IDLE_S), summed over all their threads from
 *    /proc/PID/task/TID/schedstat: % of one core.  Twice: followers whose
 *    bell_wait is bounded by the 20 s heartbeat (looping, as pushctl
 *    tail -f), then followers that wait through a hub (follower -H: the
 *    hub thread on the bell without a bound, the heartbeat a poll()
 *    timeout, as the responders wait), then as many followers as threads
 *    of one process on one hub (as push-stream's requests under FastCGI,
 *    where a process holds many clients).  Then, as the floor, as many
 *    processes of the same program that do nothing but wake at the same
 *    interval (follower sleep): what the heartbeats alone cost here.
 * 3. Publish rate of `pushctl send`, one process per message, and of
 *    pushcgi_publish() on one open handle (PUBLISHES, default 20000).
 *
 * FOLLOWER defaults to "follower" beside this program, PUSHCTL to
 * "../pushctl" from there; the pushctl line is skipped with a note if it
 * is not built.  Environment: BENCH_SCALE (percent, default 100) scales the
 * number of publishes of part 1 for quick runs.
 */
#include "config.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bell.h"
#include "pushcgi.h"

#define BW_EX_USAGE      100
#define BW_EX_SYSTEM     111
#define BW_RES_HEADER    8        /* must match follower.c */
#define BW_COUNTS_MAX    8        /* entries in -F */
#define BW_FOLLOWERS_MAX 5000
#define BW_READY_S       120      /* bound on followers getting ready */
#define BW_IDLE_S        30
#define BW_IDLE_WAIT_MS  20000    /* the followers' heartbeat bound */
#define BW_SETTLE_MS     1000     /* after "ready", before measuring */
#define BW_DRAIN_MS      20000    /* for the last publish to arrive */
#define BW_CLI_SENDS     200      /* pushctl processes to time */
#define BW_API_SENDS     20000
#define BW_PUBLISHES_MAX 10000000
#define BW_ERR_MAX       256
#define BW_SLEEP_START_MS 3000    /* start-up allowance of idle sleepers */

#define BW_DB_MAX (PATH_MAX / 2 + 80) /* bw_dir + "/" + a file name */

static char bw_dir[PATH_MAX / 2];
static char bw_follower[PATH_MAX];
static char bw_pushctl[PATH_MAX];
enum bw_mode {
	BW_BELL,        /* follower follow: bell_wait bounded by heartbeats */
	BW_HUB,         /* follower follow -H: through a hub */
	BW_THREADS,     /* one follower follow -H -T N: threads on one hub */
	BW_SLEEP        /* follower sleep: wakes for heartbeats only */
};
static enum bw_mode bw_mode;    /* how bw_spawn starts followers */
static int bw_threads;          /* -T of a BW_THREADS follower */
static int bw_own_dir;

static void
bw_die(const char *what, const char *why)
{
	fprintf(stderr, "bench-wake: %s: %s\n", what, why);
	exit(BW_EX_SYSTEM);
}

static void
bw_usage(void)
{
	fprintf(stderr, "usage: bench-wake [-f FOLLOWER] [-c PUSHCTL] "
	    "[-F COUNTS] [-N IDLE] [-I SECONDS] [-P PUBLISHES] [-d DIR]\n");
	exit(BW_EX_USAGE);
}

static int64_t
bw_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void
bw_sleep_ms(int64_t ms)
{
	struct timespec ts;

	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static long
bw_num(const char *s, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		bw_usage();
	return v;
}

/* CPU time (ns) used so far by pid, 0 if it is gone. */
static int64_t
bw_cpu_ns(pid_t pid)
{
	char path[64];
	unsigned long long run;
	struct dirent *de;
	int64_t t = 0;
	FILE *fp;
	DIR *d;

	/* Every thread of the process: a follower with -H has two. */
	snprintf(path, sizeof(path), "/proc/%ld/task", (long)pid);
	if ((d = opendir(path)) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/task/%.20s/schedstat",
		    (long)pid, de->d_name);
		if ((fp = fopen(path, "r")) == NULL)
			continue;
		if (fscanf(fp, "%llu", &run) == 1)
			t += (int64_t)run;
		fclose(fp);
	}
	closedir(d);
	return t;
}

static int64_t
bw_cpu_all(const pid_t *pids, int n)
{
	int64_t t = 0;
	int i;

	for (i = 0; i < n; i++)
		t += bw_cpu_ns(pids[i]);
	return t;
}

/* Start one follower of channel "bench" on db.  results may be NULL. */
static pid_t
bw_spawn(const char *db, int64_t cursor, const char *results, int index,
    int msgs, int timeout_s)
{
	char c[32], n[32], t[32], w[32], i[32], m[32], nt[32], *av[24];
	pid_t pid;
	int fd, ac = 0;

	snprintf(c, sizeof(c), "%lld", (long long)cursor);
	snprintf(n, sizeof(n), "%d", msgs + 1);  /* + the closing one */
	snprintf(t, sizeof(t), "%d", timeout_s);
	snprintf(w, sizeof(w), "%d", BW_IDLE_WAIT_MS);
	snprintf(i, sizeof(i), "%d", index);
	snprintf(m, sizeof(m), "%d", msgs > 0 ? msgs : 1);
	snprintf(nt, sizeof(nt), "%d", bw_threads);
	if ((pid = fork()) < 0)
		bw_die("fork", strerror(errno));
	if (pid > 0)
		return pid;
	if ((fd = open("/dev/null", O_WRONLY)) >= 0) {
		dup2(fd, STDOUT_FILENO);
		close(fd);
	}
	av[ac++] = "follower";
	if (bw_mode == BW_SLEEP) {
		av[ac++] = "sleep";
		av[ac++] = "-t";
		av[ac++] = t;
		av[ac++] = "-w";
		av[ac++] = w;
		av[ac] = NULL;
		execv(bw_follower, av);
		fprintf(stderr, "bench-wake: %s: %s\n", bw_follower,
		    strerror(errno));
		_exit(BW_EX_SYSTEM);
	}
	av[ac++] = "follow";
	if (bw_mode == BW_HUB || bw_mode == BW_THREADS)
		av[ac++] = "-H";
	if (bw_mode == BW_THREADS) {
		av[ac++] = "-T";
		av[ac++] = nt;
	}
	av[ac++] = "-c";
	av[ac++] = c;
	av[ac++] = "-t";
	av[ac++] = t;
	av[ac++] = "-w";
	av[ac++] = w;
	if (results != NULL) {
		av[ac++] = "-n";
		av[ac++] = n;
		av[ac++] = "-R";
		av[ac++] = (char *)results;
		av[ac++] = "-i";
		av[ac++] = i;
		av[ac++] = "-m";
		av[ac++] = m;
	}
	av[ac++] = (char *)db;
	av[ac++] = "bench";
	av[ac] = NULL;
	execv(bw_follower, av);
	fprintf(stderr, "bench-wake: %s: %s\n", bw_follower, strerror(errno));
	_exit(BW_EX_SYSTEM);
}

/* Reap followers, giving them ms milliseconds to finish on their own
 * before they are terminated. */
static void
bw_reap(pid_t *pids, int n, int64_t ms)
{
	int64_t end = bw_now() + ms * 1000000;
	int i, left = n;

	while (left > 0 && bw_now() < end) {
		for (i = 0; i < n; i++)
			if (pids[i] > 0 && waitpid(pids[i], NULL, WNOHANG) ==
			    pids[i]) {
				pids[i] = 0;
				left--;
			}
		if (left > 0)
			bw_sleep_ms(10);
	}
	for (i = 0; i < n; i++)
		if (pids[i] > 0)
			kill(pids[i], SIGTERM);
	for (i = 0; i < n; i++)
		if (pids[i] > 0)
			waitpid(pids[i], NULL, 0);
}

/* Wait until *ready reaches n (followers read the log and are about to
 * wait), then let them settle into their lock waits. */
static int
bw_wait_ready(volatile int64_t *ready, int n)
{
	int64_t end = bw_now() + BW_READY_S * 1000000000LL;

	while (__atomic_load_n(ready, __ATOMIC_SEQ_CST) < n) {
		if (bw_now() > end)
			return -1;
		bw_sleep_ms(10);
	}
	bw_sleep_ms(BW_SETTLE_MS + n);
	return 0;
}

static int
bw_cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* The p-th percentile (0-100) of v[0..n-1] (sorted in place), in ms. */
static double
bw_pct(int64_t *v, size_t n, int p)
{
	size_t k;

	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), bw_cmp64);
	k = (n * (size_t)p + 99) / 100;
	if (k > 0)
		k--;
	return (double)v[k] / 1e6;
}

/* A fresh log path in the work directory: buf (BW_DB_MAX bytes) gets
 * DIR/name, and any files of an earlier run under it are removed. */
static void
bw_path(char *buf, const char *name)
{
	char p[PATH_MAX];
	static const char *const ext[] = { "-bell", "-wal", "-shm" };
	size_t i;

	snprintf(buf, BW_DB_MAX, "%s/%.64s", bw_dir, name);
	unlink(buf);
	for (i = 0; i < sizeof(ext) / sizeof(ext[0]); i++) {
		snprintf(p, sizeof(p), "%s%s", buf, ext[i]);
		unlink(p);
	}
}

/*
 * Part 1 for nf followers and msgs publishes spaced gap_ms apart.  One
 * more publish goes first: a process's first wake-up also pays for its
 * first look at the log (page faults on the read path), so it is shown
 * apart, as "first" (its slowest follower), not in the percentiles.
 */
static void
bw_latency(int nf, int msgs, int gap_ms)
{
	char db[BW_DB_MAX], res[PATH_MAX], err[BW_ERR_MAX], name[64];
	struct pushcgi *p;
	pid_t *pids;
	int64_t *map, *pub, *all, *slow, t0, rt, d, first = -1, base = 0;
	size_t len, nall = 0, nslow = 0, missed = 0;
	int i, k, fd, rows = msgs + 1;  /* row 0: the first publish */

	snprintf(name, sizeof(name), "lat%d.db", nf);
	bw_path(db, name);
	snprintf(res, sizeof(res), "%s.times", db);
	if ((p = pushcgi_open(db, err, sizeof(err))) == NULL)
		bw_die(db, err);
	len = (size_t)(BW_RES_HEADER + (int64_t)nf * rows) * sizeof(int64_t);
	if ((fd = open(res, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) <
	    0 || ftruncate(fd, (off_t)len) != 0)
		bw_die(res, strerror(errno));
	map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (map == MAP_FAILED)
		bw_die(res, strerror(errno));
	pids = calloc((size_t)nf, sizeof(*pids));
	pub = calloc((size_t)rows, sizeof(*pub));
	all = calloc((size_t)nf * msgs, sizeof(*all));
	slow = calloc((size_t)msgs, sizeof(*slow));
	if (pids == NULL || pub == NULL || all == NULL || slow == NULL)
		bw_die("memory", strerror(ENOMEM));
	for (i = 0; i < nf; i++)
		pids[i] = bw_spawn(db, base, res, i, rows,
		    BW_READY_S + msgs * (gap_ms + 100) / 1000 + 60);
	if (bw_wait_ready(&map[0], nf) != 0) {
		bw_reap(pids, nf, 0);
		bw_die("followers", "not ready in time");
	}
	/* "Ready" is counted before a follower's first wait: let the last
	 * ones reach it, or the first publish times their start-up. */
	bw_sleep_ms(BW_SETTLE_MS);
	for (k = 0; k < rows; k++) {
		t0 = bw_now();
		if (pushcgi_publish(p, "bench", NULL, NULL, "x", 1, NULL) != 0)
			bw_die("publish", pushcgi_error(p));
		pub[k] = t0;
		bw_sleep_ms(gap_ms);
	}
	/* Followers exit after one more, untimed message: a thousand
	 * exiting processes would otherwise compete with the last timed
	 * publish's slowest followers. */
	if (pushcgi_publish(p, "bench", NULL, NULL, "end", 3, NULL) != 0)
		bw_die("publish", pushcgi_error(p));
	bw_reap(pids, nf, BW_DRAIN_MS);
	for (k = 0; k < rows; k++) {
		d = -1;
		for (i = 0; i < nf; i++) {
			rt = map[BW_RES_HEADER + (int64_t)i * rows + k];
			if (rt == 0) {
				missed++;
				continue;
			}
			if (rt - pub[k] > d)
				d = rt - pub[k];
			if (k > 0)
				all[nall++] = rt - pub[k];
		}
		if (k == 0)
			first = d;
		else if (d >= 0)
			slow[nslow++] = d;
	}
	printf("%9d %9d %10.2f %10.2f %10.2f %10.2f %7zu %10.2f\n", nf, msgs,
	    bw_pct(all, nall, 50), bw_pct(all, nall, 99),
	    bw_pct(slow, nslow, 50), bw_pct(slow, nslow, 99), missed,
	    first / 1e6);
	fflush(stdout);
	munmap(map, len);
	unlink(res);
	free(pids);
	free(pub);
	free(all);
	free(slow);
	pushcgi_close(p);
}

/* Part 2. */
static void
bw_idle(int nf, int seconds)
{
	char db[BW_DB_MAX], res[PATH_MAX], err[BW_ERR_MAX];
	struct pushcgi *p;
	int64_t *map, c0, c1, t0, t1;
	pid_t *pids;
	size_t len;
	int i, fd, np;

	bw_path(db, "idle.db");
	snprintf(res, sizeof(res), "%s.times", db);
	if ((p = pushcgi_open(db, err, sizeof(err))) == NULL)
		bw_die(db, err);
	len = (size_t)(BW_RES_HEADER + (int64_t)nf) * sizeof(int64_t);
	if ((fd = open(res, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) <
	    0 || ftruncate(fd, (off_t)len) != 0)
		bw_die(res, strerror(errno));
	map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (map == MAP_FAILED || (pids = calloc((size_t)nf,
	    sizeof(*pids))) == NULL)
		bw_die(res, strerror(errno));
	/* -n 1 with nothing published: they wait until killed. */
	bw_threads = nf;
	np = bw_mode == BW_THREADS ? 1 : nf;
	for (i = 0; i < np; i++)
		pids[i] = bw_spawn(db, 0, res, i, 1, BW_READY_S + seconds +
		    60);
	/* A sleeper has nothing to get ready: give them all time to start. */
	if (bw_mode == BW_SLEEP)
		bw_sleep_ms(BW_SLEEP_START_MS);
	else if (bw_wait_ready(&map[0], nf) != 0) {
		bw_reap(pids, np, 0);
		bw_die("followers", "not ready in time");
	}
	t0 = bw_now();
	c0 = bw_cpu_all(pids, np);
	bw_sleep_ms((int64_t)seconds * 1000);
	c1 = bw_cpu_all(pids, np);
	t1 = bw_now();
	printf("%d idle %s, heartbeat %d s, %s, over %d s: CPU %.3f%% "
	    "of one core in total (%.1f ms)\n", nf, bw_mode == BW_SLEEP ?
	    "processes" : "followers", BW_IDLE_WAIT_MS / 1000,
	    bw_mode == BW_HUB ?
	    "through a hub (as push-stream and push-poll wait)" :
	    bw_mode == BW_THREADS ? "threads of one process on one hub "
	    "(as push-stream's requests under FastCGI)" :
	    bw_mode == BW_SLEEP ? "doing nothing else (the floor: what "
	    "waking a process costs on this machine)" :
	    "bell_wait bounded by it (as pushctl tail -f waits)",
	    seconds, 100.0 * (double)(c1 - c0) / (double)(t1 - t0),
	    (double)(c1 - c0) / 1e6);
	fflush(stdout);
	bw_reap(pids, np, 0);
	munmap(map, len);
	unlink(res);
	free(pids);
	pushcgi_close(p);
}

/* Part 3a: one pushctl process per message. */
static void
bw_cli_rate(void)
{
	char db[BW_DB_MAX];
	int64_t t0, t1;
	pid_t pid;
	int i, st, fd, fails = 0;

	if (access(bw_pushctl, X_OK) != 0) {
		printf("pushctl send: skipped (%s not built)\n", bw_pushctl);
		return;
	}
	bw_path(db, "cli.db");
	t0 = bw_now();
	for (i = 0; i < BW_CLI_SENDS; i++) {
		if ((pid = fork()) == 0) {
			if ((fd = open("/dev/null", O_WRONLY)) >= 0) {
				dup2(fd, STDOUT_FILENO);
				close(fd);
			}
			execl(bw_pushctl, "pushctl", "--db", db, "send",
			    "bench", "x", (char *)NULL);
			_exit(BW_EX_SYSTEM);
		}
		if (pid < 0 || waitpid(pid, &st, 0) != pid ||
		    !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			fails++;
	}
	t1 = bw_now();
	printf("pushctl send, one process per message: %.0f msg/s "
	    "(%d messages, %d failed)\n",
	    BW_CLI_SENDS / ((double)(t1 - t0) / 1e9), BW_CLI_SENDS, fails);
	fflush(stdout);
}

/* Part 3b: the C API on one handle. */
static void
bw_api_rate(int n)
{
	char db[BW_DB_MAX], err[BW_ERR_MAX], data[32];
	struct pushcgi *p;
	int64_t t0, t1;
	int i, len;

	bw_path(db, "api.db");
	if ((p = pushcgi_open(db, err, sizeof(err))) == NULL)
		bw_die(db, err);
	t0 = bw_now();
	for (i = 0; i < n; i++) {
		len = snprintf(data, sizeof(data), "%d", i);
		if (pushcgi_publish(p, "bench", NULL, NULL, data, (size_t)len,
		    NULL) != 0)
			bw_die("publish", pushcgi_error(p));
	}
	t1 = bw_now();
	pushcgi_close(p);
	printf("pushcgi_publish, one handle: %.0f msg/s (%d messages)\n",
	    n / ((double)(t1 - t0) / 1e9), n);
	fflush(stdout);
}

/* Publishes and spacing for nf followers: spaced well beyond the wake-up
 * time of all of them, so that each publish is measured alone. */
static void
bw_plan(int nf, int scale, int *msgs, int *gap_ms)
{
	if (nf <= 10) {
		*msgs = 300;
		*gap_ms = 10;
	} else if (nf <= 200) {
		*msgs = 100;
		*gap_ms = 60;
	} else {
		*msgs = 40;
		*gap_ms = 600;
	}
	*msgs = *msgs * scale / 100;
	if (*msgs < 5)
		*msgs = 5;
}

int
main(int argc, char **argv)
{
	int counts[BW_COUNTS_MAX] = { 1, 100, 1000 };
	int ncounts = 3, idle = 1000, idle_s = BW_IDLE_S;
	int api = BW_API_SENDS, scale = 100, ch, i, msgs, gap;
	char self[PATH_MAX], *dir, *tok, *save, *e;

	if ((e = getenv("BENCH_IDLE_S")) != NULL && *e != '\0')
		idle_s = (int)bw_num(e, 1, 3600);
	if ((e = getenv("BENCH_SCALE")) != NULL && *e != '\0')
		scale = (int)bw_num(e, 1, 1000);
	snprintf(self, sizeof(self), "%s", argv[0]);
	dir = dirname(self);
	snprintf(bw_follower, sizeof(bw_follower), "%s/follower", dir);
	snprintf(bw_pushctl, sizeof(bw_pushctl), "%s/../pushctl", dir);
	while ((ch = getopt(argc, argv, "f:c:F:N:I:P:d:")) != -1) {
		switch (ch) {
		case 'f':
			snprintf(bw_follower, sizeof(bw_follower), "%s",
			    optarg);
			break;
		case 'c':
			snprintf(bw_pushctl, sizeof(bw_pushctl), "%s", optarg);
			break;
		case 'F':
			ncounts = 0;
			for (tok = strtok_r(optarg, ",", &save); tok != NULL;
			    tok = strtok_r(NULL, ",", &save)) {
				if (ncounts == BW_COUNTS_MAX)
					bw_usage();
				counts[ncounts++] = (int)bw_num(tok, 0,
				    BW_FOLLOWERS_MAX);
			}
			break;
		case 'N':
			idle = (int)bw_num(optarg, 0, BW_FOLLOWERS_MAX);
			break;
		case 'I':
			idle_s = (int)bw_num(optarg, 1, 3600);
			break;
		case 'P':
			api = (int)bw_num(optarg, 0, BW_PUBLISHES_MAX);
			break;
		case 'd':
			snprintf(bw_dir, sizeof(bw_dir), "%s", optarg);
			break;
		default:
			bw_usage();
		}
	}
	if (optind != argc)
		bw_usage();
	if (bw_dir[0] == '\0') {
		e = getenv("TMPDIR");
		snprintf(bw_dir, sizeof(bw_dir), "%s/bench-wake.XXXXXX",
		    e != NULL && *e != '\0' ? e : "/tmp");
		if (mkdtemp(bw_dir) == NULL)
			bw_die(bw_dir, strerror(errno));
		bw_own_dir = 1;
	}
	/* The default configuration, whatever the environment says. */
	setenv("PUSHCGI_CONF", "/dev/null", 1);
	unsetenv("PUSHCGI_DB");
	if (bell_init_signals() != 0)
		bw_die("signals", strerror(errno));

	printf("wake-up latency, commit to follower (ms)\n");
	printf("%9s %9s %10s %10s %10s %10s %7s %10s\n", "followers",
	    "publishes", "p50", "p99", "slow p50", "slow p99", "missed",
	    "first");
	fflush(stdout);
	for (i = 0; i < ncounts; i++) {
		if (counts[i] <= 0)
			continue;
		bw_plan(counts[i], scale, &msgs, &gap);
		bw_latency(counts[i], msgs, gap);
	}
	if (idle > 0) {
		bw_idle(idle, idle_s);
		bw_mode = BW_HUB;
		bw_idle(idle, idle_s);
		bw_mode = BW_THREADS;
		bw_idle(idle, idle_s);
		bw_mode = BW_SLEEP;
		bw_idle(idle, idle_s);
		bw_mode = BW_BELL;
	}
	bw_cli_rate();
	if (api > 0)
		bw_api_rate(api);
	if (bw_own_dir) {
		const char *names[] = { "lat1.db", "idle.db", "cli.db",
		    "api.db" };
		char p[BW_DB_MAX];
		size_t k;

		for (k = 0; k < sizeof(names) / sizeof(names[0]); k++)
			bw_path(p, names[k]);
		for (i = 0; i < ncounts; i++) {
			snprintf(self, sizeof(self), "lat%d.db", counts[i]);
			bw_path(p, self);
		}
		rmdir(bw_dir);
	}
	return 0;
}
