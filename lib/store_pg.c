/*
 * store_pg: the PostgreSQL backend of the store seam (store.h), for more
 * than one web host: the log of pglog.h, woken on this host through the
 * file-lock bell of bell.h and across hosts through LISTEN/NOTIFY.
 *
 * Wake-ups.  Publishers of this host ring the host's bell as with SQLite
 * (SIGURG to its gatekeeper, at once).  Every insert, from any host or
 * from psql, also sends NOTIFY (pglog.h); the listening is done by the
 * bell's gatekeeper alone: the process that keeps the host's gate opens
 * one listening connection the first time it checks, hands its socket
 * to the bell (bell_keeper_fd), and then reads the log's last id
 * whenever a notification comes (and at least once a second), which
 * releases the gate for every waiter of the host.  So a FastCGI process
 * has at most one listener, kept for its life, and the CGI processes of
 * a host share one: a single-threaded process (STORE_PROC_SINGLE) closes
 * its listener when its wait ends.  The listener runs no transaction:
 * it only LISTENs and consumes.
 *
 * The bell file is <wake_dir>/pg-<HASH>-bell (HASH of the database URI),
 * in a folder of this host (conf.wake_dir): two hosts never share it.
 *
 * Faults.  An operation that finds the server gone returns
 * STORE_EUNAVAIL (503, exit 111); the next operations reconnect, at
 * most once per backoff (PQ_BACKOFF_MIN_MS doubling to
 * PQ_BACKOFF_MAX_MS), so that nothing spins.  The gatekeeper's look
 * keeps trying at its own pace meanwhile: when the server is back, the
 * waiters read from their cursors and get what was published in between.
 *
 * Nothing can replace a PostgreSQL log under a path: store_moved and
 * store_watch always say no.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "bell.h"
#include "mlog.h"
#include "mono.h"
#include "pglog.h"
#include "store.h"

#define PQ_BACKOFF_MIN_MS 100   /* first pause before reconnecting */
#define PQ_BACKOFF_MAX_MS 5000  /* longest pause between tries */
#define PQ_ERR_MAX 768          /* bytes of a reason of our own */
#define PQ_CONNECT_TIMEOUT "5"  /* seconds, unless PGCONNECT_TIMEOUT */

/* The process's wake-up, shared by a handle and its peers. */
struct pq_wake {
	int refs;                 /* handles sharing it (atomic) */
	struct bell *bell;
	struct pglog *lis;        /* the gatekeeper's listener, or NULL */
	int64_t lis_retry;        /* mono_ms before which no new listener */
	int single;               /* STORE_PROC_SINGLE: close it after waits */
};

struct pq {
	struct store base;
	struct pglog *log;
	struct pq_wake *w;        /* NULL: a handle that wakes nobody */
	struct conf conf;
	int broken;               /* the last operation lost the server */
	int64_t retry_at;         /* mono_ms of the next reconnect */
	int backoff;              /* ms to wait after the next failure */
	char err[PQ_ERR_MAX];     /* a reason of ours ("" = pglog's) */
};

static const struct store_ops pq_ops;
static int pq_single;           /* store_process_init's STORE_PROC_SINGLE */

int
store_pg_process_init(int flags)
{
	pq_single = (flags & STORE_PROC_SINGLE) != 0;
	/* libpq waits for ever on a server that does not answer: a bound,
	 * unless the user set one (the gatekeeper connects in its look). */
	setenv("PGCONNECT_TIMEOUT", PQ_CONNECT_TIMEOUT, 0);
	return 0;
}

/* The bell's path for the log named db: <wake_dir>/pg-<FNV-1a of db>. */
static void
pq_bell_base(const struct conf *c, char *out, size_t len)
{
	uint64_t h = 1469598103934665603ULL;
	const unsigned char *p;

	for (p = (const unsigned char *)c->db; *p != '\0'; p++) {
		h ^= *p;
		h *= 1099511628211ULL;
	}
	snprintf(out, len, "%s/pg-%016llx", c->wake_dir,
	    (unsigned long long)h);
}

/* Reconnect a handle whose server went away, when its backoff allows.
 * STORE_OK when it is usable, else STORE_EUNAVAIL. */
static int
pq_ready(struct pq *s)
{
	int64_t now;

	if (!s->broken)
		return STORE_OK;
	now = mono_ms();
	if (now < s->retry_at)
		return STORE_EUNAVAIL;
	if (pglog_reconnect(s->log) == MLOG_OK) {
		s->broken = 0;
		s->backoff = PQ_BACKOFF_MIN_MS;
		return STORE_OK;
	}
	s->retry_at = now + s->backoff;
	if (s->backoff < PQ_BACKOFF_MAX_MS)
		s->backoff *= 2;
	return STORE_EUNAVAIL;
}

/* After an operation: a lost server makes the handle reconnect later. */
static int
pq_done(struct pq *s, int rc)
{
	if (rc == STORE_EUNAVAIL && !s->broken) {
		s->broken = 1;
		s->retry_at = mono_ms() + s->backoff;
	}
	return rc;
}

static struct pq *
pq_new(const struct conf *c)
{
	struct pq *s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->base.ops = &pq_ops;
	s->conf = *c;
	s->backoff = PQ_BACKOFF_MIN_MS;
	return s;
}

static int
pq_connect(struct pq *s, int flags, char *err, size_t errlen)
{
	return pglog_open(&s->log, s->conf.db, &s->conf,
	    ((flags & STORE_CREATE) ? PGLOG_CREATE : 0) |
	    ((flags & STORE_READONLY) ? PGLOG_READONLY : 0), err, errlen);
}

int
store_pg_open(struct store **out, const struct conf *c, int flags,
    char *err, size_t errlen)
{
	char base[PATH_MAX + 32];
	struct pq_wake *w;
	struct pq *s;
	int rc;

	*out = NULL;
	if ((s = pq_new(c)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return STORE_ERR;
	}
	if ((rc = pq_connect(s, flags, err, errlen)) != MLOG_OK) {
		free(s);
		return rc;
	}
	if (flags & STORE_WAKE) {
		if ((w = calloc(1, sizeof(*w))) == NULL) {
			snprintf(err, errlen, "out of memory");
			pglog_close(s->log);
			free(s);
			return STORE_ERR;
		}
		w->refs = 1;
		w->single = pq_single;
		pq_bell_base(c, base, sizeof(base));
		if (bell_open(&w->bell, base, c->check_ms) != 0) {
			rc = errno == EACCES || errno == EROFS ||
			    errno == ENOSPC || errno == ENOENT ?
			    STORE_EUNAVAIL : STORE_ERR;
			snprintf(err, errlen, "%s-bell (wake_dir): %s", base,
			    strerror(errno));
			free(w);
			pglog_close(s->log);
			free(s);
			return rc;
		}
		s->w = w;
	}
	*out = &s->base;
	return STORE_OK;
}

static int
pq_open_peer(struct store **out, struct store *peer, int flags, char *err,
    size_t errlen)
{
	struct pq *p = (struct pq *)peer, *s;
	int rc;

	if ((s = pq_new(&p->conf)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return STORE_ERR;
	}
	if ((rc = pq_connect(s, flags & STORE_CREATE, err, errlen)) !=
	    MLOG_OK) {
		free(s);
		return rc;
	}
	if ((s->w = p->w) != NULL)
		__atomic_add_fetch(&s->w->refs, 1, __ATOMIC_ACQ_REL);
	*out = &s->base;
	return STORE_OK;
}

/* Close the gatekeeper's listener (its socket leaves the bell first). */
static void
pq_unlisten(struct pq_wake *w)
{
	if (w->lis == NULL)
		return;
	bell_keeper_fd(w->bell, -1);
	pglog_close(w->lis);
	w->lis = NULL;
}

static void
pq_close(struct store *st)
{
	struct pq *s = (struct pq *)st;

	pglog_close(s->log);
	if (s->w != NULL &&
	    __atomic_sub_fetch(&s->w->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		pq_unlisten(s->w);
		bell_close(s->w->bell);
		free(s->w);
	}
	free(s);
}

static const char *
pq_errmsg(const struct store *st)
{
	const struct pq *s = (const struct pq *)st;

	return s->err[0] != '\0' ? s->err : pglog_errmsg(s->log);
}

/* The start of every operation: the reason is pglog's again, and a
 * handle that lost its server reconnects if its backoff allows. */
static int
pq_begin(struct pq *s)
{
	s->err[0] = '\0';
	if (pq_ready(s) != STORE_OK) {
		snprintf(s->err, sizeof(s->err), "the PostgreSQL log cannot "
		    "be used now (reconnecting): %s", pglog_errmsg(s->log));
		return STORE_EUNAVAIL;
	}
	return STORE_OK;
}

/* A local publisher's ring: the waiters of this host at once (the other
 * hosts hear the insert's NOTIFY). */
static void
pq_wake(struct pq *s, int64_t id)
{
	if (s->w != NULL)
		bell_ring(s->w->bell, id);
}

static int
pq_publish(struct store *st, const char *channel, const char *type,
    const char *event, const void *data, size_t len, int64_t *id)
{
	struct pq *s = (struct pq *)st;
	int64_t nid = 0;
	int rc;

	if ((rc = pq_begin(s)) == STORE_OK)
		rc = pq_done(s, pglog_append(s->log, channel, type, event,
		    data, len, &nid));
	if (rc == STORE_OK)
		pq_wake(s, nid);
	if (id != NULL)
		*id = nid;
	return rc;
}

static int
pq_end_stream(struct store *st, int64_t stream, int64_t *id)
{
	struct pq *s = (struct pq *)st;
	int64_t nid = 0;
	int rc;

	if ((rc = pq_begin(s)) == STORE_OK)
		rc = pq_done(s, pglog_control_end_stream_id(s->log, stream,
		    &nid));
	if (rc == STORE_OK)
		pq_wake(s, nid);
	if (id != NULL)
		*id = nid;
	return rc;
}

static int
pq_end_channel(struct store *st, const char *channel, int64_t *id)
{
	struct pq *s = (struct pq *)st;
	int64_t nid = 0;
	int rc;

	if ((rc = pq_begin(s)) == STORE_OK)
		rc = pq_done(s, pglog_control_end_channel_id(s->log, channel,
		    &nid));
	if (rc == STORE_OK)
		pq_wake(s, nid);
	if (id != NULL)
		*id = nid;
	return rc;
}

/* Every other operation: begin, call, note a lost server. */
#define PQ_CALL(st, call) do {                                         \
	struct pq *s_ = (struct pq *)(st);                              \
	int rc_ = pq_begin(s_);                                         \
	if (rc_ != STORE_OK)                                            \
		return rc_;                                             \
	return pq_done(s_, (call));                                     \
} while (0)
#define PQ_LOG(st) (((struct pq *)(st))->log)

static int
pq_last_id(struct store *st, int64_t *id)
{
	PQ_CALL(st, pglog_last_id(PQ_LOG(st), id));
}

static int
pq_read(struct store *st, const char *const *channels, int n,
    int64_t after, int limit, store_cb cb, void *arg, int64_t *gap,
    int64_t *last)
{
	PQ_CALL(st, pglog_read(PQ_LOG(st), channels, n, after, limit, cb, arg,
	    gap, last));
}

static int
pq_latest(struct store *st, const char *const *channels, int n, int count,
    store_cb cb, void *arg)
{
	PQ_CALL(st, pglog_latest(PQ_LOG(st), channels, n, count, cb, arg));
}

static int
pq_control_read(struct store *st, int64_t after, int64_t upto, int limit,
    store_cb cb, void *arg, int64_t *last)
{
	PQ_CALL(st, pglog_control_read(PQ_LOG(st), after, upto, limit, cb,
	    arg, last));
}

static int
pq_stat(struct store *st, const char *channel, struct store_stat *out)
{
	PQ_CALL(st, pglog_stat(PQ_LOG(st), channel, out));
}

static int
pq_stats(struct store *st, store_stat_cb cb, void *arg)
{
	PQ_CALL(st, pglog_stats(PQ_LOG(st), cb, arg));
}

static int
pq_subscribers(struct store *st, const char *channel, int64_t *n)
{
	PQ_CALL(st, pglog_subscribers(PQ_LOG(st), channel, n));
}

static int
pq_prune(struct store *st, const char *channel, long keep, long age,
    int64_t *deleted)
{
	PQ_CALL(st, pglog_prune(PQ_LOG(st), channel, keep, age, deleted));
}

static int
pq_remove(struct store *st, const char *channel, int64_t *deleted)
{
	PQ_CALL(st, pglog_remove(PQ_LOG(st), channel, deleted));
}

static int
pq_stream_open(struct store *st, const char *const *channels, int n,
    pid_t pid, const char *secret, int64_t *stream)
{
	PQ_CALL(st, pglog_stream_open(PQ_LOG(st), channels, n, pid, secret,
	    stream));
}

static int
pq_stream_close(struct store *st, int64_t stream)
{
	PQ_CALL(st, pglog_stream_close(PQ_LOG(st), stream));
}

static int
pq_stream_info(struct store *st, int64_t stream, pid_t *pid, char *secret,
    size_t len)
{
	PQ_CALL(st, pglog_stream_info(PQ_LOG(st), stream, pid, secret, len));
}

static int
pq_touch(struct store *st, pid_t pid)
{
	PQ_CALL(st, pglog_stream_touch(PQ_LOG(st), pid, NULL));
}

static int64_t
pq_seen(struct store *st)
{
	struct pq *s = (struct pq *)st;

	return s->w != NULL ? bell_last(s->w->bell) : 0;
}

/*
 * The gatekeeper's look, over the waiting handle's own connection: the
 * listener is opened the first time (and again after it was lost, at
 * most once per PQ_BACKOFF_MAX_MS), its notifications consumed, then
 * the log's last id read: that one query, at most once a second while
 * nothing comes, is all an idle host costs the server.  -1 while the
 * server cannot be reached (the keeper looks again later).
 */
static int64_t
pq_check(void *arg)
{
	struct pq *s = arg;
	struct pq_wake *w = s->w;
	char err[PQ_ERR_MAX];
	int64_t last, now = mono_ms();

	if (w->lis == NULL && now >= w->lis_retry) {
		if (pglog_open(&w->lis, s->conf.db, &s->conf, 0, err,
		    sizeof(err)) == MLOG_OK && pglog_listen(w->lis) == MLOG_OK)
			bell_keeper_fd(w->bell, pglog_socket(w->lis));
		else {
			pglog_close(w->lis);
			w->lis = NULL;
			w->lis_retry = now + PQ_BACKOFF_MAX_MS;
		}
	}
	if (w->lis != NULL && pglog_notified(w->lis, NULL) == MLOG_EUNAVAIL) {
		pq_unlisten(w);
		w->lis_retry = now + PQ_BACKOFF_MIN_MS;
	}
	if (pq_begin(s) != STORE_OK)
		return -1;
	if (pq_done(s, pglog_last_id(s->log, &last)) != STORE_OK)
		return -1;
	return last;
}

static int
pq_wait(struct store *st, int64_t seen, int timeout_ms)
{
	struct pq *s = (struct pq *)st;
	int w;

	if (s->w == NULL) {
		errno = EINVAL;
		return STORE_WAIT_ERROR;
	}
	w = bell_wait(s->w->bell, seen, timeout_ms, pq_check, s);
	/* A CGI process does not keep a listener it may never use again:
	 * the host's next gatekeeper opens its own. */
	if (s->w->single)
		pq_unlisten(s->w);
	/* A listener kept while another process of the host keeps the gate
	 * is read by nobody: drain it at each wake-up (no syscall blocks),
	 * so that its server process never stalls on a full socket, which
	 * would hold back the database's notification queue. */
	else if (s->w->lis != NULL &&
	    pglog_notified(s->w->lis, NULL) == MLOG_EUNAVAIL)
		pq_unlisten(s->w);
	return store_bell_answer(w, 0);
}

static void
pq_interrupt(struct store *st)
{
	struct pq *s = (struct pq *)st;

	if (s->w != NULL)
		bell_interrupt(s->w->bell);
}

static void
pq_ring(struct store *st, int64_t id)
{
	pq_wake((struct pq *)st, id);
}

static int
pq_sync(struct store *st, int64_t *last)
{
	struct pq *s = (struct pq *)st;
	int64_t rung;
	int rc;

	rung = pq_seen(st);
	if ((rc = pq_last_id(st, last)) != STORE_OK)
		return rc;
	if (s->w != NULL)
		bell_lower(s->w->bell, rung, *last);
	return STORE_OK;
}

static int
pq_moved(struct store *st)
{
	(void)st;
	return 0;
}

static int
pq_reopen(struct store *st)
{
	(void)st;
	return STORE_OK;
}

static void
pq_release(struct store *st)
{
	(void)st;
}

static int
pq_rewake(struct store *st)
{
	(void)st;
	return 0;
}

static const struct store_ops pq_ops = {
	.name = "postgresql",
	.open_peer = pq_open_peer,
	.close = pq_close,
	.errmsg = pq_errmsg,
	.publish = pq_publish,
	.end_stream = pq_end_stream,
	.end_channel = pq_end_channel,
	.last_id = pq_last_id,
	.read = pq_read,
	.latest = pq_latest,
	.control_read = pq_control_read,
	.stat = pq_stat,
	.stats = pq_stats,
	.subscribers = pq_subscribers,
	.prune = pq_prune,
	.remove = pq_remove,
	.stream_open = pq_stream_open,
	.stream_close = pq_stream_close,
	.stream_info = pq_stream_info,
	.touch = pq_touch,
	.seen = pq_seen,
	.wait = pq_wait,
	.interrupt = pq_interrupt,
	.ring = pq_ring,
	.sync = pq_sync,
	.moved = pq_moved,
	.watch = pq_moved,
	.reopen = pq_reopen,
	.release = pq_release,
	.clean = pq_release,
	.rewake = pq_rewake,
};
