/*
 * store_sqlite: the SQLite backend of the store seam (store.h): the log
 * of mlog.h, woken through the file-lock bell of bell.h.
 *
 * A handle is one mlog connection.  The process's bell (one per process:
 * POSIX locks belong to the process, bell.h) lives in a wake group,
 * opened by the first handle with STORE_WAKE and shared by its peers;
 * the group also keeps the identity of the log and bell files its
 * handles last opened, for store_watch from any thread.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "bell.h"
#include "mlog.h"
#include "store.h"

#define SQ_BELL_SUFFIX "-bell"

struct sq_wake {
	int refs;                 /* handles sharing it (atomic) */
	struct bell *bell;
	int waits;                /* a thread waits on it: only that one
				     reopens the bell (atomic) */
	dev_t db_dev, bell_dev;   /* the files last opened (atomic) */
	ino_t db_ino, bell_ino;
	char db[PATH_MAX];
	char bell_path[PATH_MAX];
};

struct sq {
	struct store base;
	struct mlog *log;
	struct sq_wake *w;        /* NULL: a handle that wakes nobody */
	struct conf conf;
	int replaced;             /* the last wait's check saw a new log */
};

static const struct store_ops sq_ops;

int
store_sqlite_process_init(int flags)
{
	if (flags & STORE_PROC_SINGLE)
		mlog_process_init();
	return bell_init_signals();
}

/* Record the identity of the log and bell files at the path (after an
 * open or reopen). */
static void
sq_ident(struct sq_wake *w)
{
	struct stat st;

	if (stat(w->db, &st) == 0) {
		__atomic_store_n(&w->db_dev, st.st_dev, __ATOMIC_RELAXED);
		__atomic_store_n(&w->db_ino, st.st_ino, __ATOMIC_RELEASE);
	}
	if (stat(w->bell_path, &st) == 0) {
		__atomic_store_n(&w->bell_dev, st.st_dev, __ATOMIC_RELAXED);
		__atomic_store_n(&w->bell_ino, st.st_ino, __ATOMIC_RELEASE);
	}
}

static struct sq *
sq_new(const struct conf *c)
{
	struct sq *s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->base.ops = &sq_ops;
	s->conf = *c;
	return s;
}

int
store_sqlite_open(struct store **out, const struct conf *c, int flags,
    char *err, size_t errlen)
{
	struct sq *s;
	struct sq_wake *w;
	int rc;

	*out = NULL;
	if ((s = sq_new(c)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return STORE_ERR;
	}
	/* The flags below STORE_WAKE are mlog's own. */
	if ((rc = mlog_open(&s->log, c, flags & (STORE_CREATE |
	    STORE_READONLY | STORE_RELOG), err, errlen)) != MLOG_OK) {
		free(s);
		return rc;
	}
	if (flags & STORE_WAKE) {
		if ((w = calloc(1, sizeof(*w))) == NULL) {
			snprintf(err, errlen, "out of memory");
			mlog_close(s->log);
			free(s);
			return STORE_ERR;
		}
		w->refs = 1;
		snprintf(w->db, sizeof(w->db), "%s", c->db);
		snprintf(w->bell_path, sizeof(w->bell_path), "%.*s"
		    SQ_BELL_SUFFIX, (int)(sizeof(w->bell_path) -
		    sizeof(SQ_BELL_SUFFIX)), c->db);
		if (bell_open(&w->bell, c->db, c->check_ms) != 0) {
			rc = errno == EACCES || errno == EROFS ||
			    errno == ENOSPC ? STORE_EUNAVAIL : STORE_ERR;
			snprintf(err, errlen, "%s" SQ_BELL_SUFFIX ": %s",
			    c->db, strerror(errno));
			free(w);
			mlog_close(s->log);
			free(s);
			return rc;
		}
		sq_ident(w);
		s->w = w;
	}
	*out = &s->base;
	return STORE_OK;
}

static int
sq_open_peer(struct store **out, struct store *peer, int flags, char *err,
    size_t errlen)
{
	struct sq *p = (struct sq *)peer, *s;
	int rc;

	if ((s = sq_new(&p->conf)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return STORE_ERR;
	}
	if ((rc = mlog_open(&s->log, &p->conf, flags & STORE_CREATE, err,
	    errlen)) != MLOG_OK) {
		free(s);
		return rc;
	}
	if ((s->w = p->w) != NULL) {
		__atomic_add_fetch(&s->w->refs, 1, __ATOMIC_ACQ_REL);
		sq_ident(s->w);
	}
	*out = &s->base;
	return STORE_OK;
}

static void
sq_close(struct store *st)
{
	struct sq *s = (struct sq *)st;

	mlog_close(s->log);
	if (s->w != NULL &&
	    __atomic_sub_fetch(&s->w->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		bell_close(s->w->bell);
		free(s->w);
	}
	free(s);
}

static const char *
sq_errmsg(const struct store *st)
{
	return mlog_errmsg(((const struct sq *)st)->log);
}

/* After a commit of id: wake the waiters.  A handle whose group nobody
 * waits on (pushctl, the C API) follows a replaced bell file itself;
 * bell_ring rings the file at the path as well as its own anyway. */
static void
sq_wake(struct sq *s, int64_t id)
{
	if (s->w == NULL)
		return;
	if (!__atomic_load_n(&s->w->waits, __ATOMIC_ACQUIRE) &&
	    bell_moved(s->w->bell) && bell_reopen(s->w->bell) == 0)
		sq_ident(s->w);
	bell_ring(s->w->bell, id);
}

static int
sq_publish(struct store *st, const char *channel, const char *type,
    const char *event, const void *data, size_t len, int64_t *id)
{
	struct sq *s = (struct sq *)st;
	int64_t nid = 0;
	int rc;

	rc = mlog_append(s->log, channel, type, event, data, len, &nid);
	if (rc == MLOG_OK)
		sq_wake(s, nid);
	if (id != NULL)
		*id = nid;
	return rc;
}

static int
sq_end_stream(struct store *st, int64_t stream, int64_t *id)
{
	struct sq *s = (struct sq *)st;
	int64_t nid = 0;
	int rc;

	rc = mlog_control_end_stream_id(s->log, stream, &nid);
	if (rc == MLOG_OK)
		sq_wake(s, nid);
	if (id != NULL)
		*id = nid;
	return rc;
}

static int
sq_end_channel(struct store *st, const char *channel, int64_t *id)
{
	struct sq *s = (struct sq *)st;
	int64_t nid = 0;
	int rc;

	rc = mlog_control_end_channel_id(s->log, channel, &nid);
	if (rc == MLOG_OK)
		sq_wake(s, nid);
	if (id != NULL)
		*id = nid;
	return rc;
}

static int
sq_last_id(struct store *st, int64_t *id)
{
	return mlog_last_id(((struct sq *)st)->log, id);
}

static int
sq_read(struct store *st, const char *const *channels, int n,
    int64_t after, int limit, store_cb cb, void *arg, int64_t *gap,
    int64_t *last)
{
	return mlog_read(((struct sq *)st)->log, channels, n, after, limit,
	    cb, arg, gap, last);
}

static int
sq_latest(struct store *st, const char *const *channels, int n, int count,
    store_cb cb, void *arg)
{
	return mlog_latest(((struct sq *)st)->log, channels, n, count, cb,
	    arg);
}

static int
sq_control_read(struct store *st, int64_t after, int64_t upto, int limit,
    store_cb cb, void *arg, int64_t *last)
{
	return mlog_control_read(((struct sq *)st)->log, after, upto, limit,
	    cb, arg, last);
}

static int
sq_stat(struct store *st, const char *channel, struct store_stat *out)
{
	return mlog_stat(((struct sq *)st)->log, channel, out);
}

static int
sq_stats(struct store *st, store_stat_cb cb, void *arg)
{
	return mlog_stats(((struct sq *)st)->log, cb, arg);
}

static int
sq_subscribers(struct store *st, const char *channel, int64_t *n)
{
	return mlog_subscribers(((struct sq *)st)->log, channel, n);
}

static int
sq_prune(struct store *st, const char *channel, long keep, long age,
    int64_t *deleted)
{
	return mlog_prune(((struct sq *)st)->log, channel, keep, age, deleted);
}

static int
sq_remove(struct store *st, const char *channel, int64_t *deleted)
{
	return mlog_remove(((struct sq *)st)->log, channel, deleted);
}

static int
sq_stream_open(struct store *st, const char *const *channels, int n,
    pid_t pid, const char *secret, int64_t *stream)
{
	return mlog_stream_open(((struct sq *)st)->log, channels, n, pid,
	    secret, stream);
}

static int
sq_stream_close(struct store *st, int64_t stream)
{
	return mlog_stream_close(((struct sq *)st)->log, stream);
}

static int
sq_stream_info(struct store *st, int64_t stream, pid_t *pid, char *secret,
    size_t len)
{
	return mlog_stream_info(((struct sq *)st)->log, stream, pid, secret,
	    len);
}

/* Rows of a process that died stop counting when its pid is gone
 * (mlog_reap): nothing to refresh. */
static int
sq_touch(struct store *st, pid_t pid)
{
	(void)st;
	(void)pid;
	return STORE_OK;
}

static int64_t
sq_seen(struct store *st)
{
	struct sq *s = (struct sq *)st;

	return s->w != NULL ? bell_last(s->w->bell) : 0;
}

/* The gatekeeper's look for plain SQL inserts, over the waiting handle's
 * own connection: cheap when nothing moved.  A replaced log or bell makes
 * the wait end (two stat() calls). */
static int64_t
sq_check(void *arg)
{
	struct sq *s = arg;
	int64_t last;

	if (mlog_moved(s->log) || bell_moved(s->w->bell)) {
		s->replaced = 1;
		return BELL_CHECK_LEAVE;
	}
	if (!mlog_changed(s->log))
		return bell_last(s->w->bell);
	return mlog_last_id(s->log, &last) == MLOG_OK ? last : -1;
}

static int
sq_wait(struct store *st, int64_t seen, int timeout_ms)
{
	struct sq *s = (struct sq *)st;
	int w;

	if (s->w == NULL) {
		errno = EINVAL;
		return STORE_WAIT_ERROR;
	}
	__atomic_store_n(&s->w->waits, 1, __ATOMIC_RELEASE);
	s->replaced = 0;
	w = bell_wait(s->w->bell, seen, timeout_ms, sq_check, s);
	return store_bell_answer(w, s->replaced);
}

static void
sq_interrupt(struct store *st)
{
	struct sq *s = (struct sq *)st;

	if (s->w != NULL)
		bell_interrupt(s->w->bell);
}

static void
sq_ring(struct store *st, int64_t id)
{
	sq_wake((struct sq *)st, id);
}

static int
sq_sync(struct store *st, int64_t *last)
{
	struct sq *s = (struct sq *)st;
	int64_t rung;
	int rc;

	/* The bell first, then the log: a publisher rings only after its
	 * commit, so a bell above the log is another log's (bell.h). */
	rung = sq_seen(st);
	if ((rc = mlog_last_id(s->log, last)) != MLOG_OK)
		return rc;
	if (s->w != NULL)
		bell_lower(s->w->bell, rung, *last);
	return STORE_OK;
}

static int
sq_moved(struct store *st)
{
	struct sq *s = (struct sq *)st;
	int m, r = 0;

	m = mlog_moved(s->log);
	if (m == MLOG_MOVED_LOG)
		r = STORE_MOVED_LOG;
	else if (m == MLOG_MOVED_WAL)
		r = STORE_MOVED_CONN;
	if (s->w != NULL && bell_moved(s->w->bell))
		r |= STORE_MOVED_WAKE;
	return r;
}

static int
sq_watch(struct store *st)
{
	struct sq_wake *w = ((struct sq *)st)->w;
	struct stat sb;

	if (w == NULL)
		return 0;
	return stat(w->db, &sb) != 0 ||
	    sb.st_ino != __atomic_load_n(&w->db_ino, __ATOMIC_ACQUIRE) ||
	    sb.st_dev != __atomic_load_n(&w->db_dev, __ATOMIC_RELAXED) ||
	    stat(w->bell_path, &sb) != 0 ||
	    sb.st_ino != __atomic_load_n(&w->bell_ino, __ATOMIC_ACQUIRE) ||
	    sb.st_dev != __atomic_load_n(&w->bell_dev, __ATOMIC_RELAXED);
}

static int
sq_reopen(struct store *st)
{
	struct sq *s = (struct sq *)st;
	int rc;

	if ((rc = mlog_reopen(s->log)) == MLOG_OK && s->w != NULL)
		sq_ident(s->w);
	return rc;
}

static void
sq_release(struct store *st)
{
	mlog_release(((struct sq *)st)->log);
}

static void
sq_clean(struct store *st)
{
	mlog_clean(((struct sq *)st)->log);
}

static int
sq_rewake(struct store *st)
{
	struct sq *s = (struct sq *)st;

	if (s->w == NULL)
		return 0;
	if (bell_reopen(s->w->bell) != 0)
		return -1;
	sq_ident(s->w);
	return 0;
}

static const struct store_ops sq_ops = {
	.name = "sqlite",
	.open_peer = sq_open_peer,
	.close = sq_close,
	.errmsg = sq_errmsg,
	.publish = sq_publish,
	.end_stream = sq_end_stream,
	.end_channel = sq_end_channel,
	.last_id = sq_last_id,
	.read = sq_read,
	.latest = sq_latest,
	.control_read = sq_control_read,
	.stat = sq_stat,
	.stats = sq_stats,
	.subscribers = sq_subscribers,
	.prune = sq_prune,
	.remove = sq_remove,
	.stream_open = sq_stream_open,
	.stream_close = sq_stream_close,
	.stream_info = sq_stream_info,
	.touch = sq_touch,
	.seen = sq_seen,
	.wait = sq_wait,
	.interrupt = sq_interrupt,
	.ring = sq_ring,
	.sync = sq_sync,
	.moved = sq_moved,
	.watch = sq_watch,
	.reopen = sq_reopen,
	.release = sq_release,
	.clean = sq_clean,
	.rewake = sq_rewake,
};
