/*
 * Unit tests of lib/hub.c's direct delivery (hub_sub_park): while a
 * subscription is parked, the hub thread hands new messages on its
 * channels to its callback, in id order, moving its cursor, and wakes its
 * thread only when the callback asks for it (HUB_DIRECT_WAKE), refuses a
 * message (HUB_DIRECT_NO), or the subscription is behind; a pass that
 * took messages ends with a call with m NULL.  Whichever way a message
 * goes, the subscriber gets each one exactly once, in order.
 *
 * Messages are published with hub_publish, or over a connection of their
 * own (a plain SQL transaction, then a ring of the hub's bell, as another
 * publisher would).  Nothing here asserts how fast anything is: every
 * wait is bounded by T_WAIT_MS, which only a lost wake-up reaches.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "bell.h"
#include "conf.h"
#include "hub.h"
#include "mlog.h"

#define T_WAIT_MS   10000  /* bound of every wait: only a bug reaches it */
#define T_SLICE_MS  5      /* between looks while waiting for callbacks */
#define T_MSGS      128    /* messages one test publishes, or one record
                              keeps, at most */
#define T_NAME      16     /* bytes of a channel name kept */
#define T_DATA      24     /* bytes of data kept */
#define T_SUBS      8      /* subscriptions one test holds */
#define T_PATH      512
#define T_ROUNDS    200    /* polls of first_look_rounds */

/* Published messages, in id order. */
struct t_sent {
	int n;
	int64_t id[T_MSGS];
	char chan[T_MSGS][T_NAME];
	char data[T_MSGS][T_DATA];
};

/*
 * What one subscriber got, in the order it got it, by either callback.
 * The direct callback runs in the hub thread, so every record is read and
 * written under t_mu only; tests assert on copies (t_snap), never while
 * holding t_mu, so that a failed assertion cannot leave it locked.
 */
struct t_rec {
	int n;
	int64_t id[T_MSGS];
	char chan[T_MSGS][T_NAME];
	char data[T_MSGS][T_DATA];
	int direct[T_MSGS];     /* 1: handed over by the hub thread */
	int accept;             /* direct: messages to take, -1 = all */
	int answer;             /* direct: the answer for those taken */
	int ndirect;            /* messages the direct callback took */
	int nrefused;           /* offers it answered HUB_DIRECT_NO */
	int nend;               /* ends of a pass (m NULL, gap 0) */
	int since_end;          /* messages taken since the last end */
	int bad;                /* gap reports, overflow */
	int resets;             /* HUB_RESET reports (t_next_reset) */
	int reset_at;           /* r->n when the last one came */
};

static pthread_mutex_t t_mu = PTHREAD_MUTEX_INITIALIZER;
static struct t_rec t_rec[2];
static struct t_rec t_copy;
static struct t_sent t_sent;

static char t_base[T_PATH];     /* one folder per test case run */
static char t_dir[T_PATH + 16]; /* one below it per test */
static char t_db[T_PATH + 32];
static struct conf t_cf;
static struct hub *t_hub;
static struct hub_sub *t_sync; /* the helper subscription (t_settle) */
static struct hub_sub *t_subs[T_SUBS];
static int t_nsubs;

static int64_t
t_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* 1 if fd is readable within timeout_ms. */
static int
t_readable(int fd, int timeout_ms)
{
	struct pollfd p;
	int r;

	p.fd = fd;
	p.events = POLLIN;
	p.revents = 0;
	while ((r = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR)
		;
	ck_assert_msg(r >= 0, "poll: %s", strerror(errno));
	return r > 0 && (p.revents & POLLIN) != 0;
}

/* Wait until fd is readable; fail after T_WAIT_MS. */
static void
t_wait_fd(int fd, const char *what)
{
	int64_t end = t_ms() + T_WAIT_MS, left;

	for (;;) {
		left = end - t_ms();
		ck_assert_msg(left > 0, "%s: no wake-up within %d ms", what,
		    T_WAIT_MS);
		if (t_readable(fd, (int)left))
			return;
	}
}

/* A copy of record k, taken under the lock. */
static const struct t_rec *
t_snap(int k)
{
	pthread_mutex_lock(&t_mu);
	t_copy = t_rec[k];
	pthread_mutex_unlock(&t_mu);
	return &t_copy;
}

/*
 * Wait until record k's direct callback has taken `want` messages; fail
 * after T_WAIT_MS.  With quiet_fd >= 0, also fail as soon as that eventfd
 * is readable: nothing may wake a subscription whose callback takes
 * everything (a wake-up then is the bug, and it would otherwise show only
 * as a wait running out).
 */
static void
t_wait_direct(int k, int want, int quiet_fd)
{
	int64_t end = t_ms() + T_WAIT_MS;
	int got;

	for (;;) {
		pthread_mutex_lock(&t_mu);
		got = t_rec[k].ndirect;
		pthread_mutex_unlock(&t_mu);
		if (got >= want)
			return;
		if (quiet_fd >= 0)
			ck_assert_msg(!t_readable(quiet_fd, T_SLICE_MS),
			    "woken after %d of %d direct deliveries", got,
			    want);
		else
			poll(NULL, 0, T_SLICE_MS);
		ck_assert_msg(t_ms() < end, "%d of %d direct deliveries "
		    "within %d ms", got, want, T_WAIT_MS);
	}
}

/* Keep message m in record r (under t_mu). */
static void
t_keep(struct t_rec *r, const struct hub_msg *m, int direct)
{
	int i = r->n;

	if (i == T_MSGS) {
		r->bad++;
		return;
	}
	r->id[i] = m->m.id;
	snprintf(r->chan[i], sizeof(r->chan[i]), "%s", m->m.channel);
	snprintf(r->data[i], sizeof(r->data[i]), "%.*s",
	    (int)(m->m.len < T_DATA ? m->m.len : T_DATA - 1),
	    (const char *)m->m.data);
	r->direct[i] = direct;
	r->n++;
}

/*
 * The direct callback (hub thread): take r->accept messages with answer
 * r->answer, then refuse.  The end of a pass (m NULL, gap 0) is answered
 * HUB_DIRECT_DONE: it asks for no wake-up of its own.
 */
static int
t_direct(void *arg, struct hub_msg *m, int64_t gap)
{
	struct t_rec *r = arg;
	int rc;

	pthread_mutex_lock(&t_mu);
	if (gap != 0) {
		/* No retention here: a gap is a bug, and is not the
		 * direct callback's to report. */
		r->bad++;
		rc = HUB_DIRECT_NO;
	} else if (m == NULL) {
		r->nend++;
		r->since_end = 0;
		rc = HUB_DIRECT_DONE;
	} else if (r->accept >= 0 && r->ndirect >= r->accept) {
		r->nrefused++;
		rc = HUB_DIRECT_NO;
	} else {
		t_keep(r, m, 1);
		r->ndirect++;
		r->since_end++;
		rc = r->answer;
	}
	pthread_mutex_unlock(&t_mu);
	return rc;
}

/* The subscriber thread's own callback, for hub_sub_next. */
static int
t_next(void *arg, struct hub_msg *m, int64_t gap)
{
	struct t_rec *r = arg;

	pthread_mutex_lock(&t_mu);
	if (m == NULL || gap != 0)
		r->bad++;
	else
		t_keep(r, m, 0);
	pthread_mutex_unlock(&t_mu);
	return 0;
}

/* t_next that also takes reset reports (a replaced log). */
static int
t_next_reset(void *arg, struct hub_msg *m, int64_t gap)
{
	struct t_rec *r = arg;

	pthread_mutex_lock(&t_mu);
	if (m == NULL && gap == HUB_RESET) {
		r->resets++;
		r->reset_at = r->n;
	} else if (m == NULL || gap != 0)
		r->bad++;
	else
		t_keep(r, m, 0);
	pthread_mutex_unlock(&t_mu);
	return 0;
}

/* Set record k's direct answers (never while it is parked). */
static void
t_answer(int k, int accept, int answer)
{
	pthread_mutex_lock(&t_mu);
	t_rec[k].accept = accept;
	t_rec[k].answer = answer;
	pthread_mutex_unlock(&t_mu);
}

static void
t_sent_add(int64_t id, const char *chan, const char *data)
{
	int i = t_sent.n;

	ck_assert_int_lt(i, T_MSGS);
	ck_assert_msg(i == 0 || id > t_sent.id[i - 1],
	    "ids not increasing: %" PRId64 " after %" PRId64, id,
	    i > 0 ? t_sent.id[i - 1] : 0);
	t_sent.id[i] = id;
	snprintf(t_sent.chan[i], sizeof(t_sent.chan[i]), "%s", chan);
	snprintf(t_sent.data[i], sizeof(t_sent.data[i]), "%s", data);
	t_sent.n++;
}

/* Publish one message with hub_publish; data names its channel and its
 * place among everything the test sent. */
static int64_t
t_publish(const char *chan)
{
	char data[T_DATA], err[256];
	int64_t id = 0;
	int rc;

	snprintf(data, sizeof(data), "%s-%03d", chan, t_sent.n);
	rc = hub_publish(t_hub, chan, NULL, NULL, data, strlen(data), &id,
	    err, sizeof(err));
	ck_assert_msg(rc == MLOG_OK, "hub_publish: %s", err);
	t_sent_add(id, chan, data);
	return id;
}

static void
t_sql(sqlite3 *db, const char *sql)
{
	ck_assert_msg(sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK,
	    "%s: %s", sql, sqlite3_errmsg(db));
}

/*
 * Publish n messages on chans[0..n) in one transaction over a connection
 * of its own, then ring the hub's bell, as another publisher would (one
 * bell per process: the hub's is the one).  One commit is one snapshot:
 * the hub thread reads all n in one batch.
 */
static void
t_publish_tx(const char *const *chans, int n)
{
	char data[T_DATA], err[256];
	struct mlog *l;
	sqlite3 *db;
	sqlite3_stmt *st;
	int64_t id = 0;
	int i;

	ck_assert_msg(mlog_open(&l, &t_cf, 0, err, sizeof(err)) == MLOG_OK,
	    "mlog_open: %s", err);
	db = mlog_db(l);
	t_sql(db, "BEGIN IMMEDIATE");
	ck_assert_int_eq(sqlite3_prepare_v2(db, "INSERT INTO messages"
	    "(channel, data) VALUES(?1, ?2)", -1, &st, NULL), SQLITE_OK);
	for (i = 0; i < n; i++) {
		snprintf(data, sizeof(data), "%s-%03d", chans[i], t_sent.n);
		sqlite3_bind_text(st, 1, chans[i], -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 2, data, (int)strlen(data),
		    SQLITE_TRANSIENT);
		ck_assert_msg(sqlite3_step(st) == SQLITE_DONE, "insert: %s",
		    sqlite3_errmsg(db));
		sqlite3_reset(st);
		id = sqlite3_last_insert_rowid(db);
		t_sent_add(id, chans[i], data);
	}
	sqlite3_finalize(st);
	t_sql(db, "COMMIT");
	mlog_close(l);
	store_ring(hub_db(t_hub), id);
	hub_db_done(t_hub);
}

/* The last id announced to this process's waiters (the hub's wake-up). */
static int64_t
t_seen(void)
{
	int64_t v = store_seen(hub_db(t_hub));

	hub_db_done(t_hub);
	return v;
}

/* n messages on one channel in one transaction. */
static void
t_publish_tx1(const char *chan, int n)
{
	const char *chans[T_MSGS];
	int i;

	ck_assert_int_le(n, T_MSGS);
	for (i = 0; i < n; i++)
		chans[i] = chan;
	t_publish_tx(chans, n);
}

/* Subscribe to one channel, after `after` (-1: from now). */
static struct hub_sub *
t_sub(const char *chan, int64_t after)
{
	const char *chans[1];
	char err[HUB_ERR_MAX];
	struct hub_sub *s;
	int rc;

	chans[0] = chan;
	ck_assert_int_lt(t_nsubs, T_SUBS);
	rc = hub_subscribe(t_hub, &s, chans, 1, after, 0, NULL, err,
	    sizeof(err));
	ck_assert_msg(rc == HUB_OK, "hub_subscribe %s: %d %s", chan, rc, err);
	t_subs[t_nsubs++] = s;
	return s;
}

/* hub_sub_next's callback for the helper subscription. */
static int
t_ignore(void *arg, struct hub_msg *m, int64_t gap)
{
	(void)arg;
	(void)m;
	(void)gap;
	return 0;
}

/*
 * Wait until the hub thread has read everything published so far: it
 * reads in id order, so once the helper subscription has a message
 * published now, every earlier one is in the ring and its wake-ups are
 * decided.  The helper's channel is no test subscription's.
 */
static void
t_settle(void)
{
	char err[256];
	int64_t id = 0, end = t_ms() + T_WAIT_MS;
	int rc;

	rc = hub_publish(t_hub, "sync", NULL, NULL, "sync", 4, &id, err,
	    sizeof(err));
	ck_assert_msg(rc == MLOG_OK, "hub_publish: %s", err);
	while (hub_sub_cursor(t_sync) < id) {
		ck_assert_msg(t_ms() < end, "hub thread not at %" PRId64
		    " within %d ms", id, T_WAIT_MS);
		t_wait_fd(hub_sub_fd(t_sync), "helper subscription");
		rc = hub_sub_next(t_sync, t_ignore, NULL);
		ck_assert_msg(rc == HUB_OK, "hub_sub_next: %d", rc);
	}
}

/*
 * Make sure the hub thread follows the log before a test subscribes.
 * When it starts following it takes the log's end as its base, and a
 * subscription below it is behind (it reads the log itself, and gets no
 * direct delivery until it has): a test that published before the start
 * would wait for direct calls that never come.  The helper subscription
 * is woken only by a hub that follows (hub_main, hub_fill); it stays
 * (the hub stops following when the last subscription goes) until t_end.
 */
static void
t_follow(void)
{
	t_sync = t_sub("sync", -1);
	t_settle();
}

/* Unsubscribe everything, stop and close the hub (the order hub.h asks). */
static void
t_end(void)
{
	int i;

	for (i = 0; i < t_nsubs; i++) {
		hub_sub_unpark(t_subs[i]);
		hub_unsubscribe(t_subs[i]);
		t_subs[i] = NULL;
	}
	t_nsubs = 0;
	t_sync = NULL;
	if (t_hub != NULL) {
		hub_stop(t_hub);
		hub_close(t_hub);
		t_hub = NULL;
	}
}

/*
 * Record k must hold exactly the messages sent on chan, in order, each
 * once, with their data; and no gap or stray call.
 */
static void
t_expect(int k, const char *chan)
{
	const struct t_rec *r = t_snap(k);
	int i, j = 0;

	ck_assert_int_eq(r->bad, 0);
	/* Called after unpark, which waits for a pass in progress: each
	 * pass that took messages has had its end (hub.h). */
	ck_assert_msg(r->since_end == 0, "%d messages taken directly after "
	    "the last end of a pass", r->since_end);
	ck_assert_msg(r->ndirect == 0 || r->nend > 0, "%d messages taken "
	    "directly, no end of a pass", r->ndirect);
	for (i = 0; i < t_sent.n; i++) {
		if (strcmp(t_sent.chan[i], chan) != 0)
			continue;
		ck_assert_msg(j < r->n, "message %" PRId64 " (%s) missing: "
		    "got %d", t_sent.id[i], t_sent.data[i], r->n);
		ck_assert_msg(r->id[j] == t_sent.id[i], "got %" PRId64
		    " at %d, expected %" PRId64, r->id[j], j, t_sent.id[i]);
		ck_assert_str_eq(r->chan[j], chan);
		ck_assert_str_eq(r->data[j], t_sent.data[i]);
		j++;
	}
	ck_assert_msg(j == r->n, "%d messages, expected %d (one delivered "
	    "twice, or a stray one)", r->n, j);
}

/* The id of the n-th message sent on chan (0-based). */
static int64_t
t_sent_id(const char *chan, int n)
{
	int i;

	for (i = 0; i < t_sent.n; i++)
		if (strcmp(t_sent.chan[i], chan) == 0 && n-- == 0)
			return t_sent.id[i];
	ck_abort_msg("no message %d on %s", n, chan);
	return -1;
}

/* Call hub_sub_next once; it must succeed. */
static void
t_next_ok(struct hub_sub *s, int k)
{
	int rc = hub_sub_next(s, t_next, &t_rec[k]);

	ck_assert_msg(rc == HUB_OK, "hub_sub_next: %d %s", rc,
	    hub_sub_error(s));
}

static void
t_setup(void)
{
	char err[256];

	snprintf(t_dir, sizeof(t_dir), "%s/tXXXXXX", t_base);
	ck_assert_ptr_nonnull(mkdtemp(t_dir));
	snprintf(t_db, sizeof(t_db), "%s/log.db", t_dir);
	conf_defaults(&t_cf);
	snprintf(t_cf.db, sizeof(t_cf.db), "%s", t_db);
	/* No retention: a gap report would be a bug here. */
	t_cf.retain_count = 0;
	t_cf.retain_age = 0;
	memset(t_rec, 0, sizeof(t_rec));
	memset(&t_sent, 0, sizeof(t_sent));
	t_rec[0].accept = t_rec[1].accept = -1;
	t_nsubs = 0;
	ck_assert_int_eq(bell_init_signals(), 0);
	ck_assert_msg(hub_open(&t_hub, &t_cf, err, sizeof(err)) == HUB_OK,
	    "hub_open: %s", err);
}

/* After a test that ended early (without forking, see CK_FORK): leave
 * no hub thread behind for the next one. */
static void
t_teardown(void)
{
	t_end();
}

/*
 * The folder of all the tests of a case, made and removed in the runner
 * (unchecked fixture): a test that fails in its own process (CK_FORK)
 * never reaches t_teardown, and its files must go all the same.
 */
static void
t_case_setup(void)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(t_base, sizeof(t_base), "%s/check_hub-XXXXXX",
	    tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
	if (mkdtemp(t_base) == NULL) {
		perror(t_base);
		exit(EXIT_FAILURE);
	}
}

static int
t_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	if (remove(path) != 0)
		perror(path);
	return 0;
}

static void
t_case_teardown(void)
{
	nftw(t_base, t_rm, 8, FTW_DEPTH | FTW_PHYS);
}

/*
 * 1. A parked subscription whose callback takes everything gets every
 * message on its channel from the hub thread, in order, and is never
 * woken; messages on other channels (in the same batches) are not its.
 * Once unparked it is woken through its eventfd as before.
 */
START_TEST(direct_all)
{
	static const char *const mix[] = { "a", "a", "b", "a", "a", "b",
	    "a" };
	struct hub_sub *s;
	int i, fd;

	t_follow();
	s = t_sub("a", -1);
	fd = hub_sub_fd(s);
	hub_sub_park(s, t_direct, &t_rec[0]);
	/* 50 on "a" and 20 on "b", in ten commits of both.  The hub thread
	 * reads whole commits, so each of its batches has something for s
	 * (a batch with nothing for it: direct_after_other_channel). */
	for (i = 0; i < 10; i++)
		t_publish_tx(mix, 7);
	t_wait_direct(0, 50, fd);
	hub_sub_unpark(s);
	t_expect(0, "a");
	ck_assert_int_eq(t_snap(0)->ndirect, 50);
	ck_assert_int_eq(t_snap(0)->nrefused, 0);
	ck_assert_int_eq(hub_sub_cursor(s), t_sent_id("a", 49));
	ck_assert_msg(!t_readable(fd, 0), "woken after direct deliveries");
	/* Nothing is left for the subscriber's own thread. */
	t_next_ok(s, 0);
	ck_assert_int_eq(t_snap(0)->n, 50);

	/* Unparked: woken as before, and hub_sub_next delivers. */
	t_publish("a");
	t_wait_fd(fd, "unparked subscription");
	t_next_ok(s, 0);
	t_expect(0, "a");
	ck_assert_int_eq(t_snap(0)->n, 51);
	ck_assert_int_eq(t_snap(0)->ndirect, 50);
	ck_assert_int_eq(hub_sub_cursor(s), t_sent_id("a", 50));
	t_end();
}
END_TEST

/*
 * 2. HUB_DIRECT_NO: the refused message is not delivered, the cursor
 * stays before it, the subscription is woken, and hub_sub_next delivers
 * exactly the rest.
 */
START_TEST(direct_no_then_next)
{
	struct hub_sub *s;
	const struct t_rec *r;
	int i, fd;
	int64_t end;

	t_follow();
	s = t_sub("a", -1);
	fd = hub_sub_fd(s);
	t_answer(0, 5, HUB_DIRECT_DONE);
	hub_sub_park(s, t_direct, &t_rec[0]);
	/* One commit: the refusal falls in the middle of a batch. */
	t_publish_tx1("a", 20);
	t_wait_fd(fd, "refused direct delivery");
	hub_sub_unpark(s);
	r = t_snap(0);
	ck_assert_int_eq(r->ndirect, 5);
	ck_assert_int_ge(r->nrefused, 1);
	ck_assert_int_eq(r->n, 5);
	ck_assert_int_eq(hub_sub_cursor(s), t_sent_id("a", 4));
	t_next_ok(s, 0);
	t_expect(0, "a");
	r = t_snap(0);
	ck_assert_int_eq(r->n, 20);
	for (i = 0; i < 20; i++)
		ck_assert_int_eq(r->direct[i], i < 5);
	ck_assert_int_eq(hub_sub_cursor(s), t_sent_id("a", 19));
	t_next_ok(s, 0);
	ck_assert_int_eq(t_snap(0)->n, 20);

	/*
	 * Refusals across batches: three more taken, then refused.  One
	 * publish a commit, so the hub thread may read them in any number
	 * of batches; the subscriber does what push-stream does (deliver,
	 * park, sleep, unpark) until it has them all.
	 */
	t_answer(0, 5 + 3, HUB_DIRECT_DONE);
	hub_sub_park(s, t_direct, &t_rec[0]);
	for (i = 0; i < 10; i++)
		t_publish("a");
	end = t_ms() + T_WAIT_MS;
	for (;;) {
		t_wait_fd(fd, "refused direct delivery");
		hub_sub_unpark(s);
		t_next_ok(s, 0);
		if (t_snap(0)->n >= 30)
			break;
		ck_assert_msg(t_ms() < end, "%d of 30 messages within %d ms",
		    t_snap(0)->n, T_WAIT_MS);
		hub_sub_park(s, t_direct, &t_rec[0]);
	}
	t_expect(0, "a");
	r = t_snap(0);
	ck_assert_int_le(r->ndirect, 8);
	ck_assert_int_eq(hub_sub_cursor(s), t_sent_id("a", 29));
	t_end();
}
END_TEST

/*
 * 3. HUB_DIRECT_WAKE: the message counts as delivered (the cursor moves
 * past it, hub_sub_next does not offer it again), and the subscription's
 * thread is woken.
 */
START_TEST(wake_result)
{
	struct hub_sub *s;
	const struct t_rec *r;
	int64_t id;
	int i, fd;

	t_follow();
	s = t_sub("a", -1);
	fd = hub_sub_fd(s);
	t_answer(0, -1, HUB_DIRECT_WAKE);
	hub_sub_park(s, t_direct, &t_rec[0]);
	id = t_publish("a");
	t_wait_fd(fd, "HUB_DIRECT_WAKE");
	hub_sub_unpark(s);
	r = t_snap(0);
	ck_assert_int_eq(r->ndirect, 1);
	ck_assert_int_eq(r->n, 1);
	ck_assert_int_eq(r->id[0], id);
	ck_assert_int_eq(hub_sub_cursor(s), id);
	t_next_ok(s, 0);
	ck_assert_int_eq(t_snap(0)->n, 1);

	/* Three in one batch: at least the first goes directly, the cursor
	 * stands after the last taken, and hub_sub_next delivers the rest
	 * once each. */
	hub_sub_park(s, t_direct, &t_rec[0]);
	t_publish_tx1("a", 3);
	t_wait_fd(fd, "HUB_DIRECT_WAKE");
	hub_sub_unpark(s);
	r = t_snap(0);
	ck_assert_int_ge(r->ndirect, 2);
	ck_assert_int_eq(r->n, r->ndirect);
	ck_assert_int_eq(r->id[1], t_sent_id("a", 1));
	ck_assert_int_eq(hub_sub_cursor(s), r->id[r->n - 1]);
	t_next_ok(s, 0);
	t_expect(0, "a");
	r = t_snap(0);
	ck_assert_int_eq(r->n, 4);
	/* The direct ones come first, then hub_sub_next's. */
	for (i = 0; i < r->n; i++) {
		ck_assert_msg(r->direct[i] || i >= r->ndirect,
		    "message %d delivered directly after the thread's", i);
		ck_assert_msg(!r->direct[i] || i < r->ndirect,
		    "message %d delivered directly after the thread's", i);
	}
	ck_assert_int_eq(hub_sub_cursor(s), t_sent_id("a", 3));
	t_end();
}
END_TEST

/*
 * 4a. A subscription that never parks is woken through its eventfd, and
 * hub_sub_next delivers everything on its channel; no direct call.
 */
START_TEST(not_parked_woken)
{
	struct hub_sub *s;
	int64_t end;
	int i, fd;

	t_follow();
	s = t_sub("a", -1);
	fd = hub_sub_fd(s);
	for (i = 0; i < 15; i++)
		t_publish(i % 3 == 2 ? "b" : "a");
	end = t_ms() + T_WAIT_MS;
	while (t_snap(0)->n < 10) {
		ck_assert_msg(t_ms() < end, "%d of 10 messages within %d ms",
		    t_snap(0)->n, T_WAIT_MS);
		t_wait_fd(fd, "subscription not parked");
		t_next_ok(s, 0);
	}
	t_expect(0, "a");
	ck_assert_int_eq(t_snap(0)->ndirect, 0);
	ck_assert_int_ge(hub_sub_cursor(s), t_sent_id("a", 9));
	t_end();
}
END_TEST

/*
 * 4b. A parked subscription whose cursor is behind (it starts in the
 * past, and parks before reading) gets nothing directly: it is woken, and
 * what its thread reads plus what the hub thread hands it is the whole
 * sequence, in order, once each.  Once caught up, direct delivery starts.
 */
START_TEST(behind_not_direct)
{
	struct hub_sub *s;
	const struct t_rec *r;
	int i, fd;

	t_follow();
	for (i = 0; i < 10; i++)
		t_publish("a");
	/* Else the hub thread may still be reading these when s comes,
	 * and wake it for them before the batch below. */
	t_settle();
	s = t_sub("a", 0);
	fd = hub_sub_fd(s);
	hub_sub_park(s, t_direct, &t_rec[0]);
	t_publish_tx1("a", 10);
	t_wait_fd(fd, "subscription behind");
	hub_sub_unpark(s);
	r = t_snap(0);
	ck_assert_msg(r->ndirect == 0, "%d messages handed over to a "
	    "subscription behind", r->ndirect);
	ck_assert_int_eq(hub_sub_cursor(s), 0);
	/* The wake-up came with the new batch in the ring: one call reads
	 * the old messages (from the log or the ring) and the new. */
	t_next_ok(s, 0);
	ck_assert_int_eq(t_snap(0)->n, 20);
	ck_assert_int_eq(t_snap(0)->ndirect, 0);
	t_expect(0, "a");
	ck_assert_int_eq(hub_sub_cursor(s), t_sent_id("a", 19));

	/* Caught up: the next batch goes directly.  (A wake-up left over
	 * from the batches it read itself may still come, so the eventfd
	 * is not looked at here.) */
	hub_sub_park(s, t_direct, &t_rec[0]);
	t_publish_tx1("a", 5);
	t_wait_direct(0, 5, -1);
	hub_sub_unpark(s);
	t_expect(0, "a");
	r = t_snap(0);
	ck_assert_int_eq(r->n, 25);
	for (i = 20; i < 25; i++)
		ck_assert_int_eq(r->direct[i], 1);
	ck_assert_int_eq(hub_sub_cursor(s), t_sent_id("a", 24));
	t_end();
}
END_TEST

/*
 * 5. A parked subscription that has seen everything on its channels is
 * not behind because of messages on channels it does not follow: the
 * batch after one that held only those still goes directly, without a
 * wake-up.  (In a process serving several channels, most batches hold
 * messages some subscription does not care about; if each cost the
 * others their next direct delivery, parking would save little.)
 */
START_TEST(direct_after_other_channel)
{
	struct hub_sub *s, *other;
	int64_t id, end;
	int fd;

	t_follow();
	s = t_sub("a", -1);
	fd = hub_sub_fd(s);
	other = t_sub("b", -1);
	hub_sub_park(s, t_direct, &t_rec[0]);
	/* A batch with nothing for s, read by the hub thread before the
	 * next: other is woken for it only once it is in the ring. */
	t_publish("b");
	end = t_ms() + T_WAIT_MS;
	while (t_snap(1)->n < 1) {
		ck_assert_msg(t_ms() < end, "no message on b within %d ms",
		    T_WAIT_MS);
		t_wait_fd(hub_sub_fd(other), "subscription to b");
		t_next_ok(other, 1);
	}
	id = t_publish("a");
	t_wait_direct(0, 1, fd);
	hub_sub_unpark(s);
	t_expect(0, "a");
	ck_assert_int_eq(hub_sub_cursor(s), id);
	ck_assert_msg(!t_readable(fd, 0), "woken after a direct delivery");
	t_end();
}
END_TEST


/* Remove the log's files as an operator would: rm db db-wal db-shm, and
 * db-bell too with bell. */
static void
t_rm_log(int bell)
{
	const char *sfx[] = { "", "-wal", "-shm", "-bell" };
	char p[T_PATH + 64];
	int i;

	for (i = 0; i < (bell ? 4 : 3); i++) {
		snprintf(p, sizeof(p), "%s%s", t_db, sfx[i]);
		ck_assert_msg(unlink(p) == 0 || errno == ENOENT, "%s: %s", p,
		    strerror(errno));
	}
}

/* Call hub_sub_next on s (record k, t_next_reset) as its thread would:
 * once, then on each wake-up until record k holds n messages; fail
 * after T_WAIT_MS. */
static void
t_drain(struct hub_sub *s, int k, int n)
{
	int64_t end = t_ms() + T_WAIT_MS;
	int rc, first = 1;

	while (first || t_snap(k)->n < n) {
		ck_assert_msg(t_ms() < end, "%d of %d messages within %d ms",
		    t_snap(k)->n, n, T_WAIT_MS);
		if (!first && !t_readable(hub_sub_fd(s), T_SLICE_MS * 20))
			continue;
		first = 0;
		rc = hub_sub_next(s, t_next_reset, &t_rec[k]);
		ck_assert_msg(rc == HUB_OK, "hub_sub_next: %d %s", rc,
		    hub_sub_error(s));
	}
}

/* Insert one message by plain SQL into the log at the path (no bell
 * rung: only the gatekeeper's look can find it); its id. */
static int64_t
t_insert_sql(const char *chan, const char *data)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	int64_t id;

	ck_assert_int_eq(sqlite3_open(t_db, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, MLOG_BUSY_MS);
	ck_assert_int_eq(sqlite3_prepare_v2(db, "INSERT INTO messages"
	    "(channel, data) VALUES(?1, ?2)", -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_text(st, 1, chan, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, data, (int)strlen(data), SQLITE_STATIC);
	ck_assert_msg(sqlite3_step(st) == SQLITE_DONE, "insert: %s",
	    sqlite3_errmsg(db));
	sqlite3_finalize(st);
	id = sqlite3_last_insert_rowid(db);
	sqlite3_close(db);
	return id;
}

/*
 * 6. The log and its bell removed under a hub that follows: a publish
 * through the hub reopens (its first try finds the file gone before the
 * commit), and subscriptions, parked or not, report the reset once and
 * then get the new log's messages from id 1, each once.
 */
START_TEST(relog_publish)
{
	struct hub_sub *s, *p;
	const struct t_rec *r;
	int64_t id;

	t_follow();
	s = t_sub("a", -1);
	p = t_sub("a", -1);
	t_publish("a");
	t_publish("a");
	t_drain(s, 0, 2);
	t_drain(p, 1, 2);
	ck_assert_int_eq(hub_gen(t_hub), 0);
	hub_sub_park(p, t_direct, &t_rec[1]);
	t_rm_log(1);
	ck_assert_int_eq(hub_watch(t_hub), 1);
	/* Ids start again: the record of what was sent too. */
	memset(&t_sent, 0, sizeof(t_sent));
	id = t_publish("a");
	ck_assert_int_eq(id, 1);
	ck_assert_int_eq(hub_gen(t_hub), 1);
	t_publish("a");
	t_drain(s, 0, 4);
	/* The parked one is woken, not handed the new log's messages. */
	t_wait_fd(hub_sub_fd(p), "parked subscription after the reopen");
	hub_sub_unpark(p);
	ck_assert_int_eq(t_snap(1)->ndirect, 0);
	t_drain(p, 1, 4);
	r = t_snap(0);
	ck_assert_int_eq(r->bad, 0);
	ck_assert_int_eq(r->resets, 1);
	ck_assert_int_eq(r->reset_at, 2);
	ck_assert_int_eq(r->id[2], 1);
	ck_assert_int_eq(r->id[3], 2);
	ck_assert_str_eq(r->data[2], t_sent.data[0]);
	r = t_snap(1);
	ck_assert_int_eq(r->bad, 0);
	ck_assert_int_eq(r->resets, 1);
	ck_assert_int_eq(r->n, 4);
	ck_assert_int_eq(r->id[2], 1);
	ck_assert_int_eq(hub_watch(t_hub), 0);
	/* No more resets: the files at the path are the hub's now. */
	t_publish("a");
	t_drain(s, 0, 5);
	ck_assert_int_eq(t_snap(0)->resets, 1);
	ck_assert_int_eq(hub_sub_cursor(s), t_sent.id[t_sent.n - 1]);
	t_end();
}
END_TEST

/*
 * 7. Nobody publishes through the hub: the log is removed and a new one
 * made by another process, which inserts by plain SQL and rings nothing.
 * The gatekeeper's look (the folder watch, or its periodic check) finds
 * the replacement, and the subscription gets the reset and the message.
 */
START_TEST(relog_plain_sql)
{
	struct hub_sub *s;
	struct mlog *l;
	const struct t_rec *r;
	char err[256];
	int64_t end;

	t_follow();
	s = t_sub("a", -1);
	t_publish("a");
	t_drain(s, 0, 1);
	t_rm_log(0);   /* the bell stays, ahead of the new log */
	ck_assert_msg(mlog_open(&l, &t_cf, MLOG_CREATE, err, sizeof(err)) ==
	    MLOG_OK, "mlog_open: %s", err);
	ck_assert_int_eq(t_insert_sql("a", "new-1"), 1);
	t_drain(s, 0, 2);
	r = t_snap(0);
	ck_assert_int_eq(r->bad, 0);
	ck_assert_int_eq(r->resets, 1);
	ck_assert_int_eq(r->id[1], 1);
	ck_assert_str_eq(r->data[1], "new-1");
	ck_assert_int_eq(hub_gen(t_hub), 1);
	/* The bell kept from the old log is lowered to the new one's when
	 * the hub thread follows the new log (which the subscription's
	 * catch-up may have come before). */
	end = t_ms() + T_WAIT_MS;
	while (t_seen() > 1) {
		ck_assert_msg(t_ms() < end, "bell at %" PRId64 " after %d ms",
		    t_seen(), T_WAIT_MS);
		poll(NULL, 0, T_SLICE_MS);
	}
	ck_assert_int_eq(t_insert_sql("a", "new-2"), 2);
	t_drain(s, 0, 3);
	ck_assert_str_eq(t_snap(0)->data[2], "new-2");
	mlog_close(l);
	t_end();
}
END_TEST

/*
 * 8. The cursor rule through the hub: a new subscription whose cursor is
 * beyond every id of the log (a client reconnecting with the old log's
 * Last-Event-ID) reports the reset and starts at the log's beginning;
 * one within the log does not.
 */
START_TEST(relog_cursor_rule)
{
	struct hub_sub *s, *q;
	const struct t_rec *r;

	t_follow();
	t_publish("a");
	t_publish("a");
	t_settle();
	s = t_sub("a", 500);
	q = t_sub("a", t_sent.id[0]);
	t_next_ok(q, 1);
	t_drain(s, 0, 2);
	r = t_snap(0);
	ck_assert_int_eq(r->bad, 0);
	ck_assert_int_eq(r->resets, 1);
	ck_assert_int_eq(r->reset_at, 0);
	ck_assert_int_eq(r->id[0], t_sent.id[0]);
	ck_assert_int_eq(r->id[1], t_sent.id[1]);
	r = t_snap(1);
	ck_assert_int_eq(r->n, 1);
	ck_assert_int_eq(r->id[0], t_sent.id[1]);
	t_end();
}
END_TEST

/* The log's last id, over the hub's shared connection (what a client
 * reads before its first poll). */
static int64_t
t_last_id(void)
{
	struct store *db = hub_db(t_hub);
	int64_t id = -1;
	int rc;

	rc = store_last_id(db, &id);
	hub_db_done(t_hub);
	ck_assert_int_eq(rc, STORE_OK);
	return id;
}

/* hub_sub_notify's function: counts its calls (any thread). */
static int t_notified;

static void
t_notify(void *arg)
{
	(void)arg;
	__atomic_add_fetch(&t_notified, 1, __ATOMIC_ACQ_REL);
}

/* Wait until t_notify was called at least want times. */
static void
t_wait_notified(int want)
{
	int64_t end = t_ms() + T_WAIT_MS;

	while (__atomic_load_n(&t_notified, __ATOMIC_ACQUIRE) < want) {
		ck_assert_msg(t_ms() < end, "notified %d times, not %d",
		    __atomic_load_n(&t_notified, __ATOMIC_ACQUIRE), want);
		poll(NULL, 0, T_SLICE_MS);
	}
}

/*
 * A subscription woken by a function instead of an eventfd (a request
 * parked in the loop): a wake-up that came before the function was set
 * is passed on at once; later ones call it; hub_sub_next hands over
 * every message exactly once, in order.
 */
START_TEST(notify_instead_of_fd)
{
	struct hub_sub *s;
	const struct t_rec *r;
	int i;

	t_follow();
	s = t_sub("a", -1);
	__atomic_store_n(&t_notified, 0, __ATOMIC_RELEASE);
	t_publish("a");
	t_settle();
	/* Woken before there was anything to tell: kept for the function. */
	hub_sub_notify(s, t_notify, NULL);
	ck_assert_int_eq(__atomic_load_n(&t_notified, __ATOMIC_ACQUIRE), 1);
	ck_assert_int_eq(hub_sub_next(s, t_next, &t_rec[0]), HUB_OK);
	for (i = 0; i < 3; i++)
		t_publish("a");
	t_wait_notified(2);
	t_settle();
	ck_assert_int_eq(hub_sub_next(s, t_next, &t_rec[0]), HUB_OK);
	r = t_snap(0);
	ck_assert_int_eq(r->n, 4);
	for (i = 0; i < 4; i++)
		ck_assert_int_eq(r->id[i], t_sent.id[i]);
	ck_assert_int_eq(r->bad, 0);
}
END_TEST

/* hub_sub_register: a subscription made without a row gets one (and
 * counts as a subscriber) until it is removed. */
START_TEST(register_later)
{
	struct hub_sub *s;
	char err[HUB_ERR_MAX];
	int64_t n = -1;

	t_follow();
	s = t_sub("reg", -1);
	ck_assert_int_eq(store_subscribers(hub_db(t_hub), "reg", &n),
	    STORE_OK);
	hub_db_done(t_hub);
	ck_assert_int_eq(n, 0);
	ck_assert_str_eq(hub_sub_handle(s), "");
	ck_assert_int_eq(hub_sub_register(s, err, sizeof(err)), HUB_OK);
	ck_assert_int_eq(store_subscribers(hub_db(t_hub), "reg", &n),
	    STORE_OK);
	hub_db_done(t_hub);
	ck_assert_int_eq(n, 1);
	ck_assert_str_ne(hub_sub_handle(s), "");
	/* Once only: a second call adds nothing. */
	ck_assert_int_eq(hub_sub_register(s, err, sizeof(err)), HUB_OK);
	ck_assert_int_eq(store_subscribers(hub_db(t_hub), "reg", &n),
	    STORE_OK);
	hub_db_done(t_hub);
	ck_assert_int_eq(n, 1);
}
END_TEST

/*
 * 9. A long-poll as push-poll makes it, over and over on a fresh log:
 * its client read the log's end (since=), messages are published over
 * another connection just before the poll arrives or while it looks,
 * the first look subscribes unregistered from since= (which, while the
 * hub follows the log, takes the hub's view and touches no SQLite), then
 * it unsubscribes and goes on registered from its cursor.  Whatever the
 * hub thread is doing when the look comes (still following with the
 * cursor it had when the previous poll, the last subscription, left;
 * idle; starting to follow), the poll gets every message after since=,
 * each once, in order.  The pauses between the steps vary only which of
 * those states each round meets; nothing depends on their length.
 */
START_TEST(first_look_rounds)
{
	const char *chans[1] = { "a" };
	char err[HUB_ERR_MAX];
	struct hub_sub *s;
	int64_t since, stream, cursor;
	int round, rc;

	for (round = 0; round < T_ROUNDS; round++) {
		/* Each round is one poll: its own record. */
		pthread_mutex_lock(&t_mu);
		memset(&t_rec[0], 0, sizeof(t_rec[0]));
		pthread_mutex_unlock(&t_mu);
		memset(&t_sent, 0, sizeof(t_sent));
		since = t_last_id();
		if (round % 4 == 1)
			poll(NULL, 0, 1);
		/* Published before the poll arrives: after since=. */
		t_publish_tx1("a", round % 3);
		if (round % 4 == 2)
			poll(NULL, 0, 1);
		rc = hub_subscribe(t_hub, &s, chans, 1, since, 0, NULL, err,
		    sizeof(err));
		ck_assert_msg(rc == HUB_OK, "hub_subscribe: %d %s", rc, err);
		t_next_ok(s, 0);
		/* Published while the first look holds. */
		t_publish_tx1("a", 1);
		if (round % 4 == 3)
			poll(NULL, 0, 1);
		cursor = hub_sub_cursor(s);
		hub_unsubscribe(s);
		rc = hub_subscribe(t_hub, &s, chans, 1, cursor, HUB_REGISTER,
		    &stream, err, sizeof(err));
		ck_assert_msg(rc == HUB_OK, "hub_subscribe: %d %s", rc, err);
		t_subs[t_nsubs++] = s;
		t_drain(s, 0, t_sent.n);
		ck_assert_msg(t_snap(0)->n == t_sent.n, "round %d: %d "
		    "messages, expected %d", round, t_snap(0)->n, t_sent.n);
		t_expect(0, "a");
		t_nsubs--;
		hub_unsubscribe(s);
	}
	t_end();
}
END_TEST

static Suite *
hub_suite(void)
{
	Suite *s = suite_create("hub");
	TCase *tc = tcase_create("direct");
	TCase *tm = tcase_create("mixed");
	TCase *tr = tcase_create("relog");
	TCase *tp = tcase_create("poll");

	tcase_add_unchecked_fixture(tc, t_case_setup, t_case_teardown);
	tcase_add_checked_fixture(tc, t_setup, t_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, direct_all);
	tcase_add_test(tc, direct_no_then_next);
	tcase_add_test(tc, wake_result);
	tcase_add_test(tc, not_parked_woken);
	tcase_add_test(tc, behind_not_direct);
	tcase_add_test(tc, notify_instead_of_fd);
	tcase_add_test(tc, register_later);
	suite_add_tcase(s, tc);

	tcase_add_unchecked_fixture(tm, t_case_setup, t_case_teardown);
	tcase_add_checked_fixture(tm, t_setup, t_teardown);
	tcase_set_timeout(tm, 60);
	tcase_add_test(tm, direct_after_other_channel);
	suite_add_tcase(s, tm);

	tcase_add_unchecked_fixture(tr, t_case_setup, t_case_teardown);
	tcase_add_checked_fixture(tr, t_setup, t_teardown);
	tcase_set_timeout(tr, 60);
	tcase_add_test(tr, relog_publish);
	tcase_add_test(tr, relog_plain_sql);
	tcase_add_test(tr, relog_cursor_rule);
	suite_add_tcase(s, tr);

	tcase_add_unchecked_fixture(tp, t_case_setup, t_case_teardown);
	tcase_add_checked_fixture(tp, t_setup, t_teardown);
	tcase_set_timeout(tp, 120);
	tcase_add_test(tp, first_look_rounds);
	suite_add_tcase(s, tp);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(hub_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
