/*
 * follower: a test and benchmark helper built on the library.
 *
 *	follower follow [-H [-T THREADS]] [-n COUNT] [-t SECONDS] [-w WAIT_MS]
 *	                [-c CURSOR] [-o FILE] [-R RESULTS -i INDEX -m MAX]
 *	                DB CHANNELS
 *	follower publish [-s] [-n COUNT] [-g MAX_GAP_US] DB CHANNEL
 *	follower keeper DB
 *	follower sum DB CHANNELS
 *	follower sleep [-t SECONDS] [-w WAIT_MS]
 *
 * follow: follows CHANNELS (comma-separated) after CURSOR (default 0), the
 * way a CGI responder does: loop { known = bell_last(); read everything
 * after the cursor; bell_wait(known) }.  The log is read only when the bell
 * moved (or at the start): a waiter whose heartbeat timeout expires with
 * nothing new does not open a read transaction.  Stops after COUNT
 * messages or at the deadline (-t, default 60 s).  It checks that ids
 * strictly increase and writes one line to FILE (or stdout):
 *	count=N sum=S order=ok|bad gap=0|1 last=ID
 * Exit status 0 when COUNT messages arrived in order, 1 on an order or gap
 * violation, 2 at the deadline, 111 on a system error.  WAIT_MS is the
 * heartbeat-style bound of each bell_wait (default 20000).
 * With -H it follows the way push-stream and push-poll really do, through
 * the hub (hub.h): the hub thread waits on the bell with no time bound and
 * this thread polls the subscription's eventfd with WAIT_MS as its
 * heartbeat timeout, so a heartbeat never touches the bell's locks.
 * -T runs THREADS such followers as threads of this process on one hub,
 * as push-stream's request threads under FastCGI.
 * For the benchmark, -R names a results file made by bench-wake: this
 * follower (number INDEX) increments its ready counter once it is
 * following and stores the CLOCK_MONOTONIC receive time of message k
 * (id CURSOR + 1 + k, k < MAX) in its row.  Layout (native int64):
 *	[0] followers ready   [1..7] unused   then row INDEX at
 *	8 + INDEX * MAX: receive ns of message k, 0 if not received
 *
 * publish: COUNT messages (default 500) through the public C API, data
 * "N" for the N-th, with a random pause of up to MAX_GAP_US (default 2000)
 * between them so that followers really sleep in between.  Prints the
 * last id.  With -s it publishes as a foreign program would: a plain SQL
 * INSERT on its own connection and no bell_ring, so only the gatekeeper's
 * check can notice.
 *
 * keeper: prints the pids of the current gate's keeper and spare (the
 * write locks on its two bytes, see bell.h), 0 for none: "KEEPER SPARE".
 *
 * sum: prints count= and sum= over every message in the log on CHANNELS,
 * for comparing with what followers received.
 *
 * sleep: does nothing but wake every WAIT_MS (poll() with no descriptor)
 * until the deadline (-t): the benchmark's floor, what a wake-up of an
 * otherwise idle process costs on this machine.
 *
 * The database may also be given as PUSHCGI_DB with DB "-".
 */
#include "config.h"

#include <sys/mman.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "bell.h"
#include "conf.h"
#include "hub.h"
#include "mlog.h"
#include "pushcgi.h"
#include "valid.h"

#define FOL_EX_USAGE     100
#define FOL_EX_SYSTEM    111
#define FOL_DEADLINE_S   60      /* default -t */
#define FOL_WAIT_MS      20000   /* default -w: heartbeat interval */
#define FOL_PUBLISH_N    500     /* default -n for publish */
#define FOL_GAP_US       2000    /* default -g */
#define FOL_RES_HEADER   8       /* int64 slots before the rows */
#define FOL_RES_MAX      100000  /* -m cap: messages timed per follower */
#define FOL_INDEX_MAX    100000  /* -i cap */
#define FOL_THREADS_MAX  10000   /* -T cap */
#define FOL_STACK        (256 * 1024) /* bytes of stack per -T thread */
#define FOL_ERR_MAX      256

struct fol {
	struct mlog *log;
	struct bell *bell;
	int64_t cursor;
	int64_t count;
	int64_t sum;
	int order_bad;
	int gap;
	int64_t *times;         /* this follower's row, or NULL */
	int64_t first;          /* id of message 0 of the row */
	int64_t max;            /* row length */
};

static void
fol_usage(void)
{
	fprintf(stderr,
	    "usage: follower follow [-H [-T THREADS]] [-n COUNT] [-t SECONDS] "
	    "[-w WAIT_MS] "
	    "[-c CURSOR] [-o FILE]\n"
	    "                       [-R RESULTS -i INDEX -m MAX] DB CHANNELS\n"
	    "       follower publish [-s] [-n COUNT] [-g MAX_GAP_US] DB "
	    "CHANNEL\n"
	    "       follower keeper DB\n"
	    "       follower sum DB CHANNELS\n"
	    "       follower sleep [-t SECONDS] [-w WAIT_MS]\n");
	exit(FOL_EX_USAGE);
}

static void
fol_die(const char *what, const char *why)
{
	fprintf(stderr, "follower: %s: %s\n", what, why);
	exit(FOL_EX_SYSTEM);
}

static int64_t
fol_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* A whole decimal number in [min, max], or usage error. */
static long long
fol_num(const char *s, long long min, long long max)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		fol_usage();
	return v;
}

/* DB argument, "-" meaning $PUSHCGI_DB. */
static const char *
fol_db(const char *arg)
{
	const char *e;

	if (strcmp(arg, "-") != 0)
		return arg;
	if ((e = getenv("PUSHCGI_DB")) == NULL || *e == '\0')
		fol_die("database", "PUSHCGI_DB is not set");
	return e;
}

/* Open the log at db with the usual configuration. */
static struct mlog *
fol_open_log(const char *db, struct conf *c)
{
	char err[FOL_ERR_MAX];
	struct mlog *l;

	if (conf_load(c, err, sizeof(err)) != 0)
		fol_die("config", err);
	if (strlen(db) >= sizeof(c->db))
		fol_die(db, "path too long");
	snprintf(c->db, sizeof(c->db), "%s", db);
	if (mlog_open(&l, c, MLOG_CREATE, err, sizeof(err)) != MLOG_OK)
		fol_die(db, err);
	return l;
}

/* Split CHANNELS into names and pointers. */
static int
fol_channels(const char *csv, char names[][VALID_CHANNEL_MAX + 1],
    const char **ptrs)
{
	int i, n;

	if ((n = valid_channel_list(csv, names, VALID_CHANNELS_MAX)) < 0)
		fol_die(csv, "not a list of channel names");
	for (i = 0; i < n; i++)
		ptrs[i] = names[i];
	return n;
}

/* One received message: order check, tallies, receive time. */
static int
fol_on_msg(void *arg, const struct store_msg *m)
{
	struct fol *f = arg;
	int64_t k;

	if (m->id <= f->cursor)
		f->order_bad = 1;
	f->cursor = m->id;
	f->count++;
	f->sum += m->id;
	if (f->times != NULL) {
		k = m->id - f->first;
		if (k >= 0 && k < f->max)
			f->times[k] = fol_now_ns();
	}
	return 0;
}

/* The gatekeeper's look for plain SQL inserts: a PRAGMA when nothing
 * changed, the sequence when something did. */
static int64_t
fol_check(void *arg)
{
	struct fol *f = arg;
	int64_t last;

	if (!mlog_changed(f->log))
		return bell_last(f->bell);
	return mlog_last_id(f->log, &last) == MLOG_OK ? last : -1;
}

/* Read everything after the cursor.  Returns 0 or -1. */
static int
fol_read(struct fol *f, const char *const *chans, int n)
{
	int64_t gap, last;
	int64_t before;
	int rc;

	do {
		before = f->count;
		rc = mlog_read(f->log, chans, n, f->cursor, MLOG_READ_MAX,
		    fol_on_msg, f, &gap, &last);
		if (rc != MLOG_OK) {
			fprintf(stderr, "follower: read: %s\n",
			    mlog_errmsg(f->log));
			return -1;
		}
		if (gap != 0)
			f->gap = 1;
	} while (f->count - before == MLOG_READ_MAX);
	return 0;
}

/* hub_cb: a message or a gap, as the hub hands them to a responder. */
static int
fol_on_hub(void *arg, struct hub_msg *m, int64_t gap)
{
	struct fol *f = arg;

	if (m == NULL) {
		if (gap > 0)
			f->gap = 1;
		return 0;
	}
	return fol_on_msg(f, &m->m);
}

/* One -T thread's follower (fol_hub_follow's arguments). */
struct fol_thread {
	struct fol f;
	struct hub *h;
	const char *const *chans;
	int n;
	long long want;
	int64_t deadline;
	long long wait_ms;
	int64_t *map;
	pthread_t tid;
};

/*
 * follow -H: subscribe to h and wait as a responder's request thread
 * does, in poll() on the subscription's eventfd with the heartbeat as
 * timeout.  Stops like the plain loop; exits on a system error.
 */
static void
fol_hub_follow(struct fol *f, struct hub *h, const char *const *chans, int n,
    long long want, int64_t deadline, long long wait_ms, int64_t *map)
{
	char err[FOL_ERR_MAX];
	struct hub_sub *s;
	struct pollfd pfd;
	int64_t now, left;
	int counted = 0, ready;

	if (hub_subscribe(h, &s, chans, n, f->cursor, 0, NULL, err,
	    sizeof(err)) != HUB_OK)
		fol_die("subscribe", err);
	for (ready = 1;;) {
		/* Only a wake-up (or the start) can have brought anything. */
		if (ready && hub_sub_next(s, fol_on_hub, f) != HUB_OK)
			fol_die("read", hub_sub_error(s));
		if (map != NULL && !counted) {
			__atomic_add_fetch(&map[0], 1, __ATOMIC_SEQ_CST);
			counted = 1;
		}
		if (f->order_bad || (want >= 0 && f->count >= want))
			break;
		now = fol_now_ns();
		if (now >= deadline)
			break;
		left = (deadline - now) / 1000000 + 1;
		pfd.fd = hub_sub_fd(s);
		pfd.events = POLLIN;
		/* A timeout is where a responder writes its heartbeat. */
		if ((ready = poll(&pfd, 1, left < wait_ms ? (int)left :
		    (int)wait_ms)) < 0 && errno != EINTR)
			fol_die("poll", strerror(errno));
	}
	hub_unsubscribe(s);
}

static void *
fol_hub_thread(void *arg)
{
	struct fol_thread *t = arg;

	fol_hub_follow(&t->f, t->h, t->chans, t->n, t->want, t->deadline,
	    t->wait_ms, t->map);
	return NULL;
}

/*
 * follow -H [-T THREADS]: one hub for the process (its thread waits on the
 * bell with no time bound), and THREADS followers on it, each a thread
 * with its own subscription and heartbeat, as push-stream's request
 * threads under FastCGI.  Thread k fills results row INDEX + k.  With
 * several threads f is left describing the slowest one (fewest messages),
 * with the order and gap flags of all.
 */
static void
fol_hub_loop(struct fol *f, const struct conf *c, const char *const *chans,
    int n, long long want, int64_t deadline, long long wait_ms,
    int64_t *map, int threads)
{
	char err[FOL_ERR_MAX];
	struct fol_thread *t;
	pthread_attr_t attr;
	struct hub *h;
	int k, e;

	if (hub_open(&h, c, err, sizeof(err)) != HUB_OK)
		fol_die("hub", err);
	if (threads <= 1)
		fol_hub_follow(f, h, chans, n, want, deadline, wait_ms, map);
	else {
		if ((t = calloc((size_t)threads, sizeof(*t))) == NULL)
			fol_die("threads", strerror(errno));
		pthread_attr_init(&attr);
		pthread_attr_setstacksize(&attr, FOL_STACK);
		for (k = 0; k < threads; k++) {
			t[k].f = *f;
			if (f->times != NULL)
				t[k].f.times = f->times + k * f->max;
			t[k].h = h;
			t[k].chans = chans;
			t[k].n = n;
			t[k].want = want;
			t[k].deadline = deadline;
			t[k].wait_ms = wait_ms;
			t[k].map = map;
			if ((e = pthread_create(&t[k].tid, &attr,
			    fol_hub_thread, &t[k])) != 0)
				fol_die("pthread_create", strerror(e));
		}
		pthread_attr_destroy(&attr);
		for (k = 0; k < threads; k++) {
			pthread_join(t[k].tid, NULL);
			if (k == 0 || t[k].f.count < f->count) {
				f->count = t[k].f.count;
				f->sum = t[k].f.sum;
				f->cursor = t[k].f.cursor;
			}
			f->order_bad |= t[k].f.order_bad;
			f->gap |= t[k].f.gap;
		}
		free(t);
	}
	hub_stop(h);
	hub_close(h);
}

static int
fol_follow(int argc, char **argv)
{
	char names[VALID_CHANNELS_MAX][VALID_CHANNEL_MAX + 1];
	const char *chans[VALID_CHANNELS_MAX];
	const char *out = NULL, *results = NULL;
	struct fol f;
	struct conf c;
	long long want = -1, deadline_s = FOL_DEADLINE_S;
	long long wait_ms = FOL_WAIT_MS, index = -1, max = 0;
	int64_t deadline, known, now, left;
	int ch, n, w, fd, need_read = 1, counted = 0, hub = 0, threads = 1;
	int64_t *map = NULL;
	size_t maplen = 0;
	FILE *fp;

	memset(&f, 0, sizeof(f));
	while ((ch = getopt(argc, argv, "HT:n:t:w:c:o:R:i:m:")) != -1) {
		switch (ch) {
		case 'H': hub = 1; break;
		case 'T': threads = (int)fol_num(optarg, 1, FOL_THREADS_MAX);
			break;
		case 'n': want = fol_num(optarg, 0, INT64_MAX); break;
		case 't': deadline_s = fol_num(optarg, 1, 86400); break;
		case 'w': wait_ms = fol_num(optarg, 1, 3600000); break;
		case 'c': f.cursor = fol_num(optarg, 0, INT64_MAX); break;
		case 'o': out = optarg; break;
		case 'R': results = optarg; break;
		case 'i': index = fol_num(optarg, 0, FOL_INDEX_MAX); break;
		case 'm': max = fol_num(optarg, 1, FOL_RES_MAX); break;
		default: fol_usage();
		}
	}
	if (argc - optind != 2 || (results != NULL && (index < 0 || max < 1)) ||
	    (threads > 1 && !hub))
		fol_usage();
	n = fol_channels(argv[optind + 1], names, chans);
	f.log = fol_open_log(fol_db(argv[optind]), &c);
	if (bell_init_signals() != 0)
		fol_die("signals", strerror(errno));
	if (hub) {
		/* The hub opens its own: keep no idle connection besides. */
		mlog_close(f.log);
		f.log = NULL;
	} else if (bell_open(&f.bell, c.db, c.check_ms) != 0)
		fol_die("bell", strerror(errno));
	if (results != NULL) {
		maplen = (size_t)(FOL_RES_HEADER + (index + threads) * max) *
		    sizeof(int64_t);
		if ((fd = open(results, O_RDWR | O_CLOEXEC)) < 0)
			fol_die(results, strerror(errno));
		map = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_SHARED,
		    fd, 0);
		close(fd);
		if (map == MAP_FAILED)
			fol_die(results, strerror(errno));
		f.times = map + FOL_RES_HEADER + index * max;
		f.first = f.cursor + 1;
		f.max = max;
	}

	deadline = fol_now_ns() + deadline_s * 1000000000LL;
	if (hub)
		fol_hub_loop(&f, &c, chans, n, want, deadline, wait_ms, map,
		    threads);
	while (!hub) {
		/* The bell is read BEFORE the log: a publish that lands
		 * after the read raises it above `known`. */
		known = bell_last(f.bell);
		if (need_read && fol_read(&f, chans, n) != 0)
			exit(FOL_EX_SYSTEM);
		if (map != NULL && !counted) {
			__atomic_add_fetch(&map[0], 1, __ATOMIC_SEQ_CST);
			counted = 1;
		}
		if (f.order_bad || (want >= 0 && f.count >= want))
			break;
		now = fol_now_ns();
		if (now >= deadline)
			break;
		left = (deadline - now) / 1000000 + 1;
		w = bell_wait(f.bell, known, left < wait_ms ? (int)left :
		    (int)wait_ms, fol_check, &f);
		if (w == BELL_ERROR)
			fol_die("bell_wait", strerror(errno));
		/* A heartbeat timeout with the bell unmoved needs no read. */
		need_read = w == BELL_READY || bell_last(f.bell) != known;
	}

	fp = stdout;
	if (out != NULL && (fp = fopen(out, "w")) == NULL)
		fol_die(out, strerror(errno));
	fprintf(fp, "count=%lld sum=%lld order=%s gap=%d last=%lld\n",
	    (long long)f.count, (long long)f.sum, f.order_bad ? "bad" : "ok",
	    f.gap, (long long)f.cursor);
	if (fp != stdout)
		fclose(fp);
	if (map != NULL)
		munmap(map, maplen);
	bell_close(f.bell);
	if (f.log != NULL)
		mlog_close(f.log);
	if (f.order_bad || f.gap)
		return 1;
	return want >= 0 && f.count < want ? 2 : 0;
}

/* Sleep a random time up to gap_us microseconds. */
static void
fol_gap(long long gap_us)
{
	struct timespec ts;

	if (gap_us <= 0)
		return;
	ts.tv_sec = 0;
	ts.tv_nsec = (random() % (gap_us + 1)) * 1000;
	nanosleep(&ts, NULL);
}

/* publish -s: raw SQL on the log's connection, nobody told. */
static int
fol_publish_sql(const char *db, const char *channel, long long count,
    long long gap)
{
	struct conf c;
	struct mlog *l;
	sqlite3_stmt *st;
	char data[32];
	long long i;
	int len;

	l = fol_open_log(db, &c);
	if (sqlite3_prepare_v2(mlog_db(l), "INSERT INTO messages(channel, "
	    "data) VALUES(?1, ?2)", -1, &st, NULL) != SQLITE_OK)
		fol_die("prepare", sqlite3_errmsg(mlog_db(l)));
	for (i = 1; i <= count; i++) {
		len = snprintf(data, sizeof(data), "%lld", i);
		sqlite3_bind_text(st, 1, channel, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, data, len, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE)
			fol_die("insert", sqlite3_errmsg(mlog_db(l)));
		sqlite3_reset(st);
		fol_gap(gap);
	}
	sqlite3_finalize(st);
	printf("%lld\n", (long long)sqlite3_last_insert_rowid(mlog_db(l)));
	mlog_close(l);
	return 0;
}

static int
fol_publish(int argc, char **argv)
{
	char err[FOL_ERR_MAX], data[32];
	struct pushcgi *p;
	long long count = FOL_PUBLISH_N, gap = FOL_GAP_US, i;
	int64_t id = 0;
	int ch, len, sql = 0;

	while ((ch = getopt(argc, argv, "sn:g:")) != -1) {
		switch (ch) {
		case 's': sql = 1; break;
		case 'n': count = fol_num(optarg, 0, 100000000); break;
		case 'g': gap = fol_num(optarg, 0, 999999); break;
		default: fol_usage();
		}
	}
	if (argc - optind != 2 || !valid_channel(argv[optind + 1]))
		fol_usage();
	srandom((unsigned)getpid());
	if (sql)
		return fol_publish_sql(fol_db(argv[optind]),
		    argv[optind + 1], count, gap);
	if ((p = pushcgi_open(fol_db(argv[optind]), err, sizeof(err))) ==
	    NULL)
		fol_die("open", err);
	for (i = 1; i <= count; i++) {
		len = snprintf(data, sizeof(data), "%lld", i);
		if (pushcgi_publish(p, argv[optind + 1], NULL, NULL, data,
		    (size_t)len, &id) != 0)
			fol_die("publish", pushcgi_error(p));
		fol_gap(gap);
	}
	pushcgi_close(p);
	printf("%lld\n", (long long)id);
	return 0;
}

/* The pid holding a write lock on byte off of fd, or 0. */
static long
fol_holder(int fd, off_t off)
{
	struct flock fl;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_RDLCK;  /* conflicts with write locks only */
	fl.l_whence = SEEK_SET;
	fl.l_start = off;
	fl.l_len = 1;
	if (fcntl(fd, F_GETLK, &fl) != 0)
		fol_die("F_GETLK", strerror(errno));
	return fl.l_type == F_UNLCK ? 0 : (long)fl.l_pid;
}

static int
fol_keeper(int argc, char **argv)
{
	char path[PATH_MAX];
	struct bell *b;
	const char *db;
	int64_t L;
	int fd;

	if (argc != 2)
		fol_usage();
	db = fol_db(argv[1]);
	if ((size_t)snprintf(path, sizeof(path), "%s-bell", db) >=
	    sizeof(path))
		fol_die(db, "path too long");
	if (bell_open(&b, db, 0) != 0)
		fol_die(path, strerror(errno));
	L = bell_last(b);
	bell_close(b);
	/* A descriptor of our own: this process holds no locks to lose. */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		fol_die(path, strerror(errno));
	printf("%ld %ld\n", fol_holder(fd, BELL_GATE_BASE + 2 * L),
	    fol_holder(fd, BELL_GATE_BASE + 2 * L + 1));
	close(fd);
	return 0;
}

static int
fol_sum(int argc, char **argv)
{
	char names[VALID_CHANNELS_MAX][VALID_CHANNEL_MAX + 1];
	const char *chans[VALID_CHANNELS_MAX];
	struct fol f;
	struct conf c;
	int n;

	if (argc != 3)
		fol_usage();
	memset(&f, 0, sizeof(f));
	n = fol_channels(argv[2], names, chans);
	f.log = fol_open_log(fol_db(argv[1]), &c);
	if (fol_read(&f, chans, n) != 0)
		exit(FOL_EX_SYSTEM);
	printf("count=%lld sum=%lld\n", (long long)f.count, (long long)f.sum);
	mlog_close(f.log);
	return 0;
}

static int
fol_sleep(int argc, char **argv)
{
	long long deadline_s = FOL_DEADLINE_S, wait_ms = FOL_WAIT_MS;
	int64_t deadline, left;
	int ch;

	while ((ch = getopt(argc, argv, "t:w:")) != -1) {
		switch (ch) {
		case 't': deadline_s = fol_num(optarg, 1, 86400); break;
		case 'w': wait_ms = fol_num(optarg, 1, INT_MAX); break;
		default: fol_usage();
		}
	}
	if (optind != argc)
		fol_usage();
	deadline = fol_now_ns() + deadline_s * 1000000000LL;
	while ((left = (deadline - fol_now_ns()) / 1000000 + 1) > 0)
		(void)poll(NULL, 0, left < wait_ms ? (int)left : (int)wait_ms);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc < 2)
		fol_usage();
	mlog_process_init();    /* as pushctl and CGI responders do */
	argc--;
	argv++;
	if (strcmp(argv[0], "follow") == 0)
		return fol_follow(argc, argv);
	if (strcmp(argv[0], "publish") == 0)
		return fol_publish(argc, argv);
	if (strcmp(argv[0], "keeper") == 0)
		return fol_keeper(argc, argv);
	if (strcmp(argv[0], "sum") == 0)
		return fol_sum(argc, argv);
	if (strcmp(argv[0], "sleep") == 0)
		return fol_sleep(argc, argv);
	fol_usage();
	return FOL_EX_USAGE;
}
