/*
 * mlog: the SQLite message log.
 *
 * Schema (user_version 2), which is also the public SQL interface:
 *
 *   messages(id INTEGER PRIMARY KEY AUTOINCREMENT,   -- never reused
 *            channel TEXT NOT NULL (checked: 1-128 of [A-Za-z0-9._-], no
 *                                   leading '.' except the reserved
 *                                   channel '.control', see below),
 *            time INTEGER NOT NULL DEFAULT now in ms since the epoch,
 *            type TEXT NOT NULL DEFAULT 'text/plain; charset=utf-8',
 *            event TEXT,                              -- SSE event name
 *            data BLOB NOT NULL DEFAULT x'')
 *   channels(name TEXT PRIMARY KEY, last_id, last_time, pruned_to)
 *            -- kept by triggers: a row per channel ever published to;
 *            -- pruned_to (= last_id) is the highest id ever deleted from
 *            -- the channel, which is what gap detection compares with,
 *            -- last_time that message's time; the newest message is in
 *            -- messages (version 1 stored it here on every insert)
 *   streams(id INTEGER PRIMARY KEY AUTOINCREMENT, pid, started, secret)
 *   subscriptions(stream REFERENCES streams ON DELETE CASCADE, channel)
 *
 * A plain  INSERT INTO messages(channel, data) VALUES('news', 'hi')  is a
 * valid publish: triggers keep channels up to date, and the wake-up module's
 * gatekeeper notices the new id within conf.check_ms.
 *
 * The reserved channel '.control' carries control requests to every
 * responder process: data "end-stream ID" ends the stream ID, data
 * "end-channel NAME" ends every stream and poll subscribed to NAME (type
 * text/plain, exactly these bytes, no newline).  The schema allows it so
 * that a plain SQL INSERT is a valid control request too; the C API never
 * lets it be published to (valid_channel() refuses a leading '.'), reads,
 * stats and prunes of "every channel" leave it out, and its retention is short
 * (MLOG_CONTROL_KEEP rows, MLOG_CONTROL_AGE seconds, applied by each
 * mlog_control_* call).
 *
 * One mlog is one SQLite connection with its prepared statements: use it
 * from one thread at a time.  Every function returns MLOG_OK (0) or a
 * negative MLOG_E* code; mlog_errmsg() then holds a one-line reason.
 */
#ifndef PUSHCGI_MLOG_H
#define PUSHCGI_MLOG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "conf.h"
#include "store.h"
#include "valid.h"

#define MLOG_DEFAULT_TYPE STORE_DEFAULT_TYPE
#define MLOG_SCHEMA_VERSION 2
#define MLOG_BUSY_MS 5000          /* how long a wait for a lock may last */
#define MLOG_READ_MAX STORE_READ_MAX /* rows one mlog_read() call may return */
#define MLOG_CONTROL STORE_CONTROL /* the reserved control channel */
#define MLOG_CONTROL_KEEP STORE_CONTROL_KEEP /* control messages kept at most */
#define MLOG_CONTROL_AGE STORE_CONTROL_AGE /* seconds a control message is kept */
#define MLOG_CONTROL_MAX STORE_CONTROL_MAX /* bytes in one request */

/* The store seam's codes (store.h), under this module's names. */
enum {
	MLOG_OK = STORE_OK,
	MLOG_ERR = STORE_ERR,         /* SQLite or system failure */
	MLOG_EINVAL = STORE_EINVAL,   /* bad channel, type, event or argument */
	MLOG_E2BIG = STORE_E2BIG,     /* data larger than conf.max_data */
	MLOG_ENOENT = STORE_ENOENT,   /* no such channel / stream / no log file */
	MLOG_ESCHEMA = STORE_ESCHEMA, /* not a pushcgi log, or a newer schema */
	MLOG_EUNAVAIL = STORE_EUNAVAIL, /* the log cannot be used now: busy
				    past MLOG_BUSY_MS, or its file, -wal or
				    -shm file or folder not writable by this
				    user, a full disk, an I/O error;
				    mlog_errmsg ends with "(FILE: CAUSE)".
				    Worth a retry (HTTP 503) */
	MLOG_EMOVED = STORE_EMOVED    /* the path no longer names the open file */
};

#define MLOG_CREATE   STORE_CREATE   /* create the file and schema if missing */
#define MLOG_READONLY STORE_READONLY
#define MLOG_RELOG    STORE_RELOG    /* mlog_append reopens a moved log itself */

struct mlog;

/* Messages, read callbacks and channel figures are the seam's: struct
 * store_msg, store_cb and struct store_stat (store.h). */

/*
 * Call once at the start of a single-threaded program that reads the log
 * while others write it (followers, CGI responders): keep up to
 * MLOG_HEAP_KEEP bytes of freed heap mapped instead of giving them back
 * to the kernel.  SQLite empties a connection's page cache whenever
 * another connection has committed, freeing its ~85 KiB block of cache
 * pages, and allocates it again at once; glibc would trim that block off
 * the heap each time and page it back in, which was most of a woken
 * follower's CPU (measured: 100 followers, slowest p99 156 ms -> 34 ms).
 * Does nothing where the C library has no such setting.
 */
#define MLOG_HEAP_KEEP (4 * 1024 * 1024)
void mlog_process_init(void);

/*
 * A replaced log.  An operator may remove the log (the file with its
 * -wal and -shm, often its -bell too) or move another file into place
 * while processes have it open.  Those would go on writing into a file
 * that no path names any more, while new processes create and use a new
 * one.  So a connection remembers the device and inode of the file it
 * opened, and:
 *
 * - mlog_moved() says whether the path still names it: 0, or
 *   MLOG_MOVED_LOG when the path names another file or none, or
 *   MLOG_MOVED_WAL when only the -wal is another (removed alone: SQLite
 *   would go on writing into the one no path names); two stat() calls;
 * - mlog_append() checks it under the write lock before its commit and
 *   again after it, and returns MLOG_EMOVED when the path names another
 *   file or none: before the commit nothing was written (with
 *   MLOG_RELOG the connection reopens the path, creating the log with
 *   MLOG_CREATE, and tries once more); after the commit the message is
 *   in the old file only, and the caller must not report success.  No
 *   caller reports success for a message the log at the path lacks.
 * - mlog_reopen() opens the path again in place (on failure the old
 *   connection stays, except after a change of the -wal alone, see
 *   below); mlog_gen() counts the opens.  When the path names another
 *   file and the -wal and -shm beside it are still the ones this
 *   connection uses (the old log's: a file moved over a live log),
 *   mlog_reopen unlinks them first, or SQLite would read the old log's
 *   WAL into the new file.  When only the -wal changed, the file is the
 *   same, and SQLite shares its -shm mapping among a process's
 *   connections to it: every connection of the process to the file must
 *   be closed before any is opened again, so mlog_release() closes one
 *   (every call but mlog_reopen, mlog_moved and mlog_close then fails)
 *   and mlog_reopen() of a released or -wal-moved connection opens it
 *   anew without keeping the old one.
 *
 * The cursor rule.  A fresh log gives ids from 1 again, so a cursor
 * (since=, Last-Event-ID, If-None-Match, a stream's position) may be
 * beyond anything the log at the path holds.  A cursor above the highest
 * id the log has ever given (its sqlite_sequence, which retention never
 * lowers) cannot have come from this log: mlog_read() then reads from
 * the log's beginning (after = 0) and reports *gap = MLOG_GAP_RESET.
 * Every transport shows that as its gap marker with id 0, meaning "the
 * log was replaced: what you had not seen of the old one may be lost,
 * and ids start again; your cursor is now 0".  A process that notices
 * the replacement itself (the hub) resets its streams the same way, so
 * each stream delivers every message of each log exactly once.  A cursor
 * of an old log that is not above the new log's highest id cannot be
 * told apart from one of the new log: a client that reconnects only
 * after the new log has passed its old cursor misses the new log's
 * messages up to there (streams that were open when the log was
 * replaced do not: they reset at once).
 */
#define MLOG_GAP_RESET STORE_GAP_RESET
#define MLOG_MOVED_LOG 1
#define MLOG_MOVED_WAL 2
int mlog_moved(struct mlog *l);
int mlog_reopen(struct mlog *l);
void mlog_release(struct mlog *l);
/* The unlinking part of mlog_reopen alone, for a caller that opens the
 * new file with mlog_open and keeps l on the old one a while (the hub
 * reads what is left in the old file). */
void mlog_clean(struct mlog *l);
int64_t mlog_gen(const struct mlog *l);

/* Open (and with MLOG_CREATE create) the log at c->db.  The settings in c
 * (retention, max_data, synchronous) are copied.  On failure *out is NULL
 * and, if err is given, the reason is written there. */
int mlog_open(struct mlog **out, const struct conf *c, int flags,
    char *err, size_t errlen);
void mlog_close(struct mlog *l);
const char *mlog_errmsg(const struct mlog *l);

/* Validate and append one message; retention by count and age is applied to
 * that channel in the same transaction.  type NULL = default, event NULL =
 * none.  *id (if id) gets the new id.  MLOG_EMOVED: see "A replaced log"
 * above. */
int mlog_append(struct mlog *l, const char *channel, const char *type,
    const char *event, const void *data, size_t len, int64_t *id);

/* Highest id ever allocated (sqlite_sequence), 0 for an empty log. */
int mlog_last_id(struct mlog *l, int64_t *id);

/* 1 if another connection committed since the last call, else 0 (PRAGMA
 * data_version: costs microseconds; no read transaction stays open).  A
 * failure also returns 1, so that the caller looks rather than misses. */
int mlog_changed(struct mlog *l);

/*
 * Messages on any of channels[0..n-1] with id > after, in id order, at most
 * limit (capped at MLOG_READ_MAX), passed to cb.  n == 0 (channels NULL)
 * means every channel.  *gap (if gap) is set to
 * the highest id deleted from one of these channels that is > after, or 0:
 * non-zero means messages in (after, *gap] may have been lost to retention
 * and the client must be told; MLOG_GAP_RESET means `after` was above
 * every id of this log and the read started at its beginning (the cursor
 * rule above).  *last (if last) gets the id of the last message passed
 * to cb, or `after` (0 after a reset) if none.  Returns MLOG_OK, an
 * MLOG_E* code, or cb's non-zero value.
 */
int mlog_read(struct mlog *l, const char *const *channels, int n,
    int64_t after, int limit, store_cb cb, void *arg, int64_t *gap,
    int64_t *last);

/* The newest `count` messages on any of the channels (n == 0: every
 * channel), oldest first; count is capped at MLOG_READ_MAX. */
int mlog_latest(struct mlog *l, const char *const *channels, int n,
    int count, store_cb cb, void *arg);

/* Stats for one channel (ENOENT if it never existed), or, with channel
 * NULL, for every channel by name via cb (cb returns non-zero to stop). */
int mlog_stat(struct mlog *l, const char *channel, struct store_stat *st);
/* Only the live subscribers of channel now (0 for a channel that never
 * existed): what a publish reports, without counting messages. */
int mlog_subscribers(struct mlog *l, const char *channel, int64_t *n);
int mlog_stats(struct mlog *l,
    int (*cb)(void *arg, const struct store_stat *st), void *arg);

/* Apply retention now: keep_count per channel (0 = no cap), max_age seconds
 * (0 = no limit), channel NULL = all but '.control', whose own retention
 * applies.  *deleted gets the number removed. */
int mlog_prune(struct mlog *l, const char *channel, long keep_count,
    long max_age, int64_t *deleted);

/* Remove a channel: its messages and its row.  ENOENT if unknown. */
int mlog_remove(struct mlog *l, const char *channel, int64_t *deleted);

/*
 * Streams: every live subscriber (stream or poll) is a row, so that any
 * process can count subscribers and name a stream to end.  stream_open
 * registers one for pid on channels and returns its id; stream_close
 * removes it.  mlog_reap() removes rows of processes that no longer exist
 * (a crashed responder), and is called by the counting functions.
 */
int mlog_stream_open(struct mlog *l, const char *const *channels, int n,
    pid_t pid, const char *secret, int64_t *stream);
int mlog_stream_close(struct mlog *l, int64_t stream);
int mlog_stream_info(struct mlog *l, int64_t stream, pid_t *pid,
    char *secret, size_t secretlen);
int mlog_reap(struct mlog *l);

/*
 * Control requests (see the top of this file).  Each appends one message
 * to the '.control' channel, applies its short retention in the same
 * transaction and returns MLOG_OK or an MLOG_E* code (EINVAL: stream < 1,
 * or an invalid channel name).  The request only says what to end: the
 * caller checks the right to ask (a stream's secret, via
 * mlog_stream_info) first, and afterwards rings the bell with the new id
 * (*id, if id), exactly as after mlog_append: bell_ring(b, *id) (see
 * bell.h; hub_publish and pushcgi_publish do the same), or the request
 * waits for the gatekeeper's next look (conf.check_ms), as a plain SQL
 * insert does.  Every responder process's hub reads control messages
 * and ends the matching subscriptions cleanly.
 */
int mlog_control_end_stream(struct mlog *l, int64_t stream);
int mlog_control_end_channel(struct mlog *l, const char *channel);
/* The same, with the new message's id in *id (if id) for bell_ring. */
int mlog_control_end_stream_id(struct mlog *l, int64_t stream, int64_t *id);
int mlog_control_end_channel_id(struct mlog *l, const char *channel,
    int64_t *id);

/*
 * Control messages with after < id <= upto, in id order, at most limit
 * (capped at MLOG_READ_MAX), passed to cb; *last (if last) gets the id of
 * the last one passed, or `after`.  For the hub; returns like mlog_read.
 */
int mlog_control_read(struct mlog *l, int64_t after, int64_t upto,
    int limit, store_cb cb, void *arg, int64_t *last);

/* What a control message asks: store_control_parse (store.h). */

/* The underlying connection, for the few callers that need it (tests). */
struct sqlite3 *mlog_db(struct mlog *l);

#endif
