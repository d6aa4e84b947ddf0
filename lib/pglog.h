/*
 * pglog: the message log in PostgreSQL, for more than one web host.
 *
 * The same operations and semantics as the SQLite log (mlog.h): the same
 * struct store_msg and struct store_stat, the same MLOG_OK / MLOG_E* codes,
 * gap reports with MLOG_GAP_RESET, the cursor rule, the '.control'
 * channel with its short retention.  What differs is said below.
 *
 * Schema (schema_version.version 1), which is also the public SQL
 * interface, in the connection's current schema (search_path):
 *
 *   messages(id BIGINT PRIMARY KEY,       -- from counter, never reused
 *            channel TEXT COLLATE "C" NOT NULL (checked as in mlog.h),
 *            time BIGINT NOT NULL DEFAULT the server's clock in ms,
 *            type TEXT NOT NULL DEFAULT 'text/plain; charset=utf-8',
 *            event TEXT,                  -- SSE event name
 *            data BYTEA NOT NULL DEFAULT '')
 *   channels(name, last_id, last_time, pruned_to)  -- kept by triggers,
 *            exactly as in mlog.h
 *   counter(n BIGINT)   -- one row: the highest id ever given
 *   streams(id BIGINT identity, host TEXT, pid INTEGER, started BIGINT,
 *           secret TEXT, seen BIGINT)
 *   subscriptions(stream REFERENCES streams ON DELETE CASCADE, channel)
 *   schema_version(version INTEGER)  -- one row
 *
 * The CHECK constraints of messages repeat valid.c's allow-lists, so a
 * plain SQL insert cannot store what pglog_append would refuse.
 *
 * Ids follow commit order.  A sequence would not do: T1 takes id 10, T2
 * takes 11 and commits first, and a reader that has delivered 11 never
 * sees 10.  So a BEFORE INSERT trigger takes every id from the one row
 * of counter (UPDATE counter SET n = n + 1 RETURNING n): its row lock is
 * held until the inserting transaction ends, so a second publisher waits
 * for the first one's commit, and id order is commit order.  The price
 * is one publishing transaction at a time (NOTIFY serializes commits
 * anyway), and a publisher that keeps a transaction open after an insert
 * stops every other publisher: they wait PGLOG_LOCK_MS, then fail with
 * MLOG_EUNAVAIL.  An id given in an INSERT is replaced by the trigger;
 * an aborted insert also rolls the counter back, so ids have no holes
 * but the ones retention makes.  A publisher in REPEATABLE READ or
 * SERIALIZABLE that meets another gets a serialization failure and must
 * retry (pglog's own statements run in READ COMMITTED).  The other known
 * fix, storing each row's xid8 and delivering only rows below the oldest
 * running transaction (pg_snapshot_xmin), was not taken: any long
 * transaction in the database, even one that never publishes, would hold
 * back every delivery, and cursors would become (xid, id) pairs.
 *
 * So  INSERT INTO messages(channel, data) VALUES('news', 'hi')  from psql
 * is a valid publish, ordered like any other: the triggers give it its
 * id and keep channels, and an AFTER INSERT statement trigger sends
 * NOTIFY pushcgi (PGLOG_NOTIFY) with the last id as payload, which
 * reaches every listening connection at commit (see pglog_listen).
 *
 * Times are the database server's clock (one clock for every web host):
 * pglog_append leaves time to its default, and retention by age
 * compares with the server's clock too.
 *
 * Upgrades: pglog_open reads schema_version; a newer version than
 * PGLOG_SCHEMA_VERSION is MLOG_ESCHEMA; an older one is upgraded in
 * place, step by step in one transaction, by an open with PGLOG_CREATE
 * (there are no older versions yet), and is MLOG_ESCHEMA without it.
 * Creation and upgrades hold a transaction-level advisory lock
 * (PGLOG_LOCK_KEY), so concurrent openers create the schema once.
 *
 * Subscribers across hosts.  A stream row names its host (PGLOG_HOST:
 * the host name and the kernel's boot id, so a reboot makes a new host)
 * and its process, and carries `seen`, the server time its process last
 * called pglog_stream_touch().  A row counts as a live subscriber while
 * seen is within the lease: PGLOG_LEASE_BEATS heartbeats (conf.heartbeat
 * of this connection's settings) before now.  Every responder process
 * calls pglog_stream_touch(l, getpid()) once per heartbeat, so the rows
 * of a crashed process, or of a host that is gone, stop counting by
 * themselves within the lease.  pglog_reap() also removes, at once, the
 * rows of processes of this host that no longer exist (kill(pid, 0), as
 * mlog_reap does), and the rows of any host not seen for
 * PGLOG_REAP_BEATS heartbeats; pglog_stat and pglog_stats reap first,
 * pglog_subscribers only counts (a crashed local process then counts
 * until the next reap or the end of its lease).
 *
 * Failures.  A lost connection, a server that is down, starting or
 * shutting down, too many connections, a read-only server (a hot
 * standby), a full disk, a lock held past PGLOG_LOCK_MS, a
 * serialization failure: MLOG_EUNAVAIL with a one-line reason, worth a
 * retry (HTTP 503 + Retry-After).  Reconnecting is the caller's
 * business: pglog_reconnect().  A CHECK violation is MLOG_EINVAL,
 * anything else MLOG_ERR.
 *
 * One pglog is one PGconn with its prepared statements (each prepared
 * once per connection, on first use, and again after pglog_reconnect):
 * use it from one thread at a time.  Every function returns MLOG_OK (0)
 * or a negative MLOG_E* code; pglog_errmsg() then holds a one-line
 * reason.  No SQL text is ever built from input: every value goes as a
 * parameter.
 */
#ifndef PUSHCGI_PGLOG_H
#define PUSHCGI_PGLOG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "conf.h"
#include "mlog.h"

#define PGLOG_SCHEMA_VERSION 1
#define PGLOG_NOTIFY "pushcgi"   /* the NOTIFY channel, fixed */
#define PGLOG_LOCK_MS 5000       /* lock_timeout, as MLOG_BUSY_MS */
#define PGLOG_LOCK_KEY 1886745448 /* advisory lock for the schema ("push") */
#define PGLOG_LEASE_BEATS 2      /* heartbeats a touched row stays live */
#define PGLOG_REAP_BEATS 10      /* heartbeats before an unseen row goes */
#define PGLOG_HOST_MAX 128       /* bytes in a host identifier */
#define PGLOG_CONNINFO_MAX 1024  /* bytes in a connection string or URI */

#define PGLOG_CREATE   1  /* create (or upgrade) the schema if needed */
#define PGLOG_READONLY 2  /* refuse every write on this connection */

struct pglog;

/*
 * Connect to conninfo (a libpq connection string or postgresql:// URI;
 * the password, if any, better comes from ~/.pgpass or PGPASSWORD) and
 * check (with PGLOG_CREATE create or upgrade) the schema.  c gives
 * retain_count, retain_age, max_data and heartbeat (NULL: the built-in
 * defaults).  On failure *out is NULL and, if err is given, the reason
 * is written there; MLOG_EUNAVAIL when the server cannot be reached.
 */
int pglog_open(struct pglog **out, const char *conninfo,
    const struct conf *c, int flags, char *err, size_t errlen);
void pglog_close(struct pglog *l);
const char *pglog_errmsg(const struct pglog *l);

/*
 * Connect again (after MLOG_EUNAVAIL): a new PGconn with the same
 * conninfo, the statements prepared again on first use, LISTEN issued
 * again if pglog_listen had been called.  MLOG_OK, or MLOG_EUNAVAIL
 * while the server is still away (l stays usable for another try).
 */
int pglog_reconnect(struct pglog *l);

/* This process's host identifier as stored in streams.host. */
const char *pglog_host(const struct pglog *l);

/* As mlog_append (validation, max_data, retention batched the same way);
 * the time is the server's.  Never MLOG_EMOVED. */
int pglog_append(struct pglog *l, const char *channel, const char *type,
    const char *event, const void *data, size_t len, int64_t *id);

/* Highest id ever given (counter.n), 0 for an empty log. */
int pglog_last_id(struct pglog *l, int64_t *id);

/* As mlog_read, mlog_latest: the rows, the gap and the last id come from
 * one statement, so from one snapshot. */
int pglog_read(struct pglog *l, const char *const *channels, int n,
    int64_t after, int limit, store_cb cb, void *arg, int64_t *gap,
    int64_t *last);
int pglog_latest(struct pglog *l, const char *const *channels, int n,
    int count, store_cb cb, void *arg);

/* As mlog_stat, mlog_subscribers, mlog_stats; subscribers are the rows
 * within the lease (see the top of this file). */
int pglog_stat(struct pglog *l, const char *channel, struct store_stat *st);
int pglog_subscribers(struct pglog *l, const char *channel, int64_t *n);
int pglog_stats(struct pglog *l,
    int (*cb)(void *arg, const struct store_stat *st), void *arg);

/* As mlog_prune, mlog_remove. */
int pglog_prune(struct pglog *l, const char *channel, long keep_count,
    long max_age, int64_t *deleted);
int pglog_remove(struct pglog *l, const char *channel, int64_t *deleted);

/*
 * As mlog_stream_open/close/info/reap; the row gets this host's
 * identifier and seen = now.  pglog_stream_info says nothing of the
 * host: pglog_stream_host gives it, so that a caller can tell its own
 * pids from another host's.
 */
int pglog_stream_open(struct pglog *l, const char *const *channels, int n,
    pid_t pid, const char *secret, int64_t *stream);
int pglog_stream_close(struct pglog *l, int64_t stream);
int pglog_stream_info(struct pglog *l, int64_t stream, pid_t *pid,
    char *secret, size_t secretlen);
int pglog_stream_host(struct pglog *l, int64_t stream, char *host,
    size_t len);
int pglog_reap(struct pglog *l);
/* Refresh seen on every stream row of pid on this host: once per
 * heartbeat from each responder process.  *n (if n) gets the rows. */
int pglog_stream_touch(struct pglog *l, pid_t pid, int64_t *n);

/* As mlog_control_end_stream_id / _end_channel_id and mlog_control_read;
 * parse the messages with store_control_parse.  The insert itself wakes
 * listeners (NOTIFY): there is no bell to ring. */
int pglog_control_end_stream_id(struct pglog *l, int64_t stream,
    int64_t *id);
int pglog_control_end_channel_id(struct pglog *l, const char *channel,
    int64_t *id);
int pglog_control_read(struct pglog *l, int64_t after, int64_t upto,
    int limit, store_cb cb, void *arg, int64_t *last);

/*
 * Wake-ups.  pglog_listen issues LISTEN pushcgi on l, which must then be
 * used for nothing else: a notification arrives only between a
 * connection's transactions, and a listener that sat inside one would
 * hold back the server's notification queue for every database user.
 * (Each process keeps one listening connection and one or more working
 * ones; listeners are per process, never per client: every NOTIFY-ing
 * commit signals every listening backend.)  pglog_socket gives the
 * descriptor to poll for reading; pglog_notified then reads what came
 * (PQconsumeInput, then every PQnotifies) and returns 1 if at least one
 * notification came, with *last (if last) set to the highest id their
 * payloads named (0 if none named one), 0 if none came, or
 * MLOG_EUNAVAIL when the connection was lost (pglog_reconnect listens
 * again).  A notification says "look": the reader reads the log from
 * its cursor, it does not trust the payload for what it missed.
 */
int pglog_listen(struct pglog *l);
int pglog_socket(const struct pglog *l);
int pglog_notified(struct pglog *l, int64_t *last);

/* The underlying connection, for tests. */
struct pg_conn *pglog_conn(struct pglog *l);

#endif
