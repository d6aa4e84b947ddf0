/*
 * store: the message log behind one seam.
 *
 * Everything that reads or writes the log goes through these functions:
 * the responders (through the hub), pushctl and the C API.  A backend is
 * a struct store_ops (at the end of this file); store_open() picks it
 * from the configured database (conf.db): today every value names a
 * SQLite file (lib/store_sqlite.c: the log of mlog.h woken through the
 * file-lock bell of bell.h).  A new backend adds its ops and one line
 * in store_open(); src/, the hub, transport and http do not change.
 *
 * What every backend must give:
 *
 * - The message model (PRODUCT.md): ids strictly increasing in commit
 *   order, so that a reader that has seen id N never later finds a
 *   message below N; a message is validated as valid.h says and the
 *   database itself refuses what the C API would refuse (so that plain
 *   SQL cannot store it either).
 * - Publishing is one call: store_publish() appends and wakes every
 *   waiter of the log, in every process and on every host, before it
 *   returns.  A plain SQL insert wakes them too, within conf.check_ms.
 * - Reads after a cursor over several channels, with gap reports: what
 *   retention removed after the cursor is reported, never skipped
 *   silently; a cursor above every id the log has ever given belongs to
 *   another log and reads from the beginning with STORE_GAP_RESET (the
 *   cursor rule, mlog.h).
 * - The streams registry: every live subscriber is a row that any
 *   process can count and end; the rows of a process that died stop
 *   counting by themselves.
 * - Control requests: messages on the reserved channel STORE_CONTROL,
 *   read once per process by the hub, never delivered to subscribers.
 * - Waiting: store_wait() sleeps without CPU until the last id passes a
 *   value, a timeout passes or store_interrupt() is called.
 * - Errors as STORE_* codes with a one-line reason (store_errmsg);
 *   STORE_EUNAVAIL means "cannot be used now, worth a retry" (HTTP 503).
 *
 * Threads: a struct store is one connection, used by one thread at a
 * time.  The process's wake-up (for SQLite: one bell per process,
 * bell.h) belongs to the first handle opened with STORE_WAKE and is
 * shared by the handles made from it with store_open_peer(); only one
 * thread waits.  store_interrupt() and store_watch() may be called from
 * any thread.
 */
#ifndef PUSHCGI_STORE_H
#define PUSHCGI_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "conf.h"
#include "valid.h"

enum {
	STORE_OK = 0,
	STORE_ERR = -1,     /* database or system failure */
	STORE_EINVAL = -2,  /* bad channel, type, event or argument */
	STORE_E2BIG = -3,   /* data larger than conf.max_data */
	STORE_ENOENT = -4,  /* no such channel / stream / no log */
	STORE_ESCHEMA = -5, /* not a pushcgi log, or a newer schema */
	STORE_EUNAVAIL = -6, /* cannot be used now (busy, not writable,
				full, unreachable): worth a retry */
	STORE_EMOVED = -10  /* the log at the configured place is not the
			       one this handle has open (see below) */
};

#define STORE_DEFAULT_TYPE "text/plain; charset=utf-8"
#define STORE_READ_MAX 1000        /* rows one read may return */
#define STORE_GAP_RESET (-1)       /* *gap: the cursor was another log's */
#define STORE_CONTROL ".control"   /* the reserved control channel */
#define STORE_CONTROL_STREAM "end-stream "   /* request prefixes */
#define STORE_CONTROL_CHANNEL "end-channel "
#define STORE_ID_DIGITS 19         /* digits of an int64 id */
#define STORE_CONTROL_MAX (VALID_CHANNEL_MAX + 16) /* bytes of a request */
#define STORE_CONTROL_KEEP 1000    /* control messages kept at most */
#define STORE_CONTROL_AGE 600      /* seconds a control message is kept */

/* store_open flags */
#define STORE_CREATE   1  /* create the log (schema) if missing */
#define STORE_READONLY 2
#define STORE_RELOG    4  /* store_publish reopens a replaced log itself */
#define STORE_WAKE     8  /* this handle wakes and waits: opens the
			     process's wake-up (publishing without it
			     wakes nobody before the next look, as a plain
			     SQL insert does) */

/* One message.  Pointers are valid only during the callback. */
struct store_msg {
	int64_t id;
	const char *channel;
	int64_t time_ms;
	const char *type;
	const char *event;   /* NULL if none */
	const void *data;
	size_t len;
};

/* Read callback: 0 to go on, non-zero to stop (the reading function then
 * returns that value). */
typedef int (*store_cb)(void *arg, const struct store_msg *m);

struct store_stat {
	char channel[VALID_CHANNEL_MAX + 1];
	int64_t count;        /* messages retained */
	int64_t first_id;     /* 0 if none retained */
	int64_t last_id;      /* last id ever published to it */
	int64_t last_time_ms; /* time of that publish */
	int64_t pruned_to;    /* highest id deleted from it, 0 if none */
	int64_t subscribers;  /* live streams and polls on it now */
};
typedef int (*store_stat_cb)(void *arg, const struct store_stat *st);

struct store;

/* Call once at the start of a program, before any thread: process-wide
 * settings of the backends (the wake-up's signals).  STORE_PROC_SINGLE:
 * a single-threaded program that reads the log while others write it (a
 * follower, a CGI responder), for which the SQLite backend keeps freed
 * heap mapped (mlog_process_init).  0, or -1 with errno. */
#define STORE_PROC_SINGLE 1
int store_process_init(int flags);

/*
 * Open the log named by c->db with flags STORE_*.  The settings in c
 * (retention, max_data, check_ms...) are copied.  Returns STORE_OK, or a
 * STORE_E* code with *out NULL and the reason in err.
 */
int store_open(struct store **out, const struct conf *c, int flags,
    char *err, size_t errlen);
/* Another connection to peer's log (for another thread), sharing peer's
 * wake-up: its publishes wake, it may not wait.  flags: STORE_CREATE. */
int store_open_peer(struct store **out, struct store *peer, int flags,
    char *err, size_t errlen);
/* Closing the handle that owns the wake-up is allowed while peers live:
 * the wake-up goes with the last of them. */
void store_close(struct store *s);
const char *store_errmsg(const struct store *s);

/* Validate, append and wake every waiter: one call.  type NULL = the
 * default, event NULL = none; *id (if id) gets the new id, or 0 when
 * nothing was committed.  Retention of that channel is applied.
 * STORE_EMOVED: the log was replaced during the commit (then *id is the
 * id the message got in the old log) or before it (without STORE_RELOG;
 * *id 0): the log at the configured place does not hold the message. */
int store_publish(struct store *s, const char *channel, const char *type,
    const char *event, const void *data, size_t len, int64_t *id);

/* Control requests, published and woken like a message: end stream ID,
 * or every stream and poll subscribed to channel.  The caller checks the
 * right to ask first (store_stream_info). */
int store_end_stream(struct store *s, int64_t stream, int64_t *id);
int store_end_channel(struct store *s, const char *channel, int64_t *id);

enum { STORE_CONTROL_NONE = 0, STORE_CONTROL_END_STREAM = 1,
       STORE_CONTROL_END_CHANNEL = 2 };
/* What a control message asks (the same for every backend): END_STREAM
 * with *stream set, END_CHANNEL with the name in channel[0..len) (len at
 * least VALID_CHANNEL_MAX + 1), or NONE for anything else. */
int store_control_parse(const struct store_msg *m, int64_t *stream,
    char *channel, size_t len);

/* Highest id ever given (retention never lowers it), 0 for an empty log. */
int store_last_id(struct store *s, int64_t *id);

/*
 * Messages on any of channels[0..n-1] (n 0: every channel but the control
 * channel) with id > after, in id order, at most limit (capped at
 * STORE_READ_MAX), passed to cb.  *gap (if gap): the highest id retention
 * removed from these channels above after, or 0, or STORE_GAP_RESET (the
 * cursor rule: then the read started at the log's beginning).  *last (if
 * last): the id of the last message passed, or after (0 after a reset).
 */
int store_read(struct store *s, const char *const *channels, int n,
    int64_t after, int limit, store_cb cb, void *arg, int64_t *gap,
    int64_t *last);
/* The newest count messages of the channels (n 0: every channel), oldest
 * first; count capped at STORE_READ_MAX. */
int store_latest(struct store *s, const char *const *channels, int n,
    int count, store_cb cb, void *arg);
/* Control messages with after < id <= upto, in id order, at most limit;
 * *last as for store_read.  For the hub. */
int store_control_read(struct store *s, int64_t after, int64_t upto,
    int limit, store_cb cb, void *arg, int64_t *last);

/* One channel's figures (STORE_ENOENT if it never existed), every
 * channel's through cb, or only the live subscribers of one (0 for a
 * channel never published to). */
int store_stat(struct store *s, const char *channel, struct store_stat *st);
int store_stats(struct store *s, store_stat_cb cb, void *arg);
int store_subscribers(struct store *s, const char *channel, int64_t *n);
/* Apply retention now (channel NULL: all but the control channel):
 * keep_count per channel (0 no cap), max_age seconds (0 no limit). */
int store_prune(struct store *s, const char *channel, long keep_count,
    long max_age, int64_t *deleted);
/* Remove a channel, its messages and its row (STORE_ENOENT if unknown). */
int store_remove(struct store *s, const char *channel, int64_t *deleted);

/* The streams registry: a row per live subscriber of this process (pid),
 * with the secret that ends it (NULL: none). */
int store_stream_open(struct store *s, const char *const *channels, int n,
    pid_t pid, const char *secret, int64_t *stream);
int store_stream_close(struct store *s, int64_t stream);
int store_stream_info(struct store *s, int64_t stream, pid_t *pid,
    char *secret, size_t secretlen);
/* Keep the rows of process pid counting: called at least once a
 * heartbeat while it has any (the hub does, see hub_watch).  A backend
 * whose rows stop counting by another rule (SQLite: the pid is gone, on
 * the one host) does nothing. */
int store_touch(struct store *s, pid_t pid);

/*
 * Waiting (a handle opened with STORE_WAKE, from one thread).
 * store_seen(): the last id announced to this host's waiters (cheap).
 * store_wait(): sleep until that passes seen (STORE_READY), timeout_ms
 * passes (STORE_TIMEOUT; -1 none), store_interrupt() is called
 * (STORE_INTERRUPTED), or the log at the configured place was replaced
 * (STORE_REPLACED: see below); STORE_WAIT_ERROR with errno.  While it
 * sleeps the backend also looks for writes that did not wake (plain
 * SQL) every conf.check_ms at most.  store_interrupt() is
 * async-signal-safe.  store_ring() announces id to the waiters after a
 * write that did not go through store_publish (a test's plain SQL).
 * store_sync() reads the last id into *last and makes the wake-up agree
 * with it (a wake-up kept from a replaced log is ahead): call it before
 * following the log from its end.
 */
enum { STORE_TIMEOUT = 0, STORE_READY = 1, STORE_INTERRUPTED = 2,
       STORE_REPLACED = 3, STORE_WAIT_ERROR = -1 };
int64_t store_seen(struct store *s);
int store_wait(struct store *s, int64_t seen, int timeout_ms);
void store_interrupt(struct store *s);
void store_ring(struct store *s, int64_t id);
int store_sync(struct store *s, int64_t *last);

/*
 * A replaced log.  A log with a place an operator can replace (a file
 * removed, or another moved over it) reports it here; a backend that
 * has no such place returns 0 from store_moved and store_watch.
 * - store_moved(): this handle's view: 0, or STORE_MOVED_LOG (another
 *   log is there now, or none: cursors of the old one reset), or
 *   STORE_MOVED_CONN (the same log, but the connection must be made
 *   again; cursors stay); with STORE_MOVED_WAKE or-ed in when the
 *   wake-up must be reopened (store_rewake).
 * - store_watch(): any thread, cheap: 1 when the place no longer names
 *   what the handle's wake-up group last opened.
 * - store_reopen(): open the place again in this handle (on failure it
 *   stays as it was, except after STORE_MOVED_CONN).
 * - store_release(): before STORE_MOVED_CONN is mended, every handle of
 *   the group on that log is released, then each reopened (SQLite shares
 *   its memory map among a process's connections to one file); a
 *   released handle only reopens or closes.
 * - store_clean(): the part of a reopen that removes the old log's
 *   leftovers beside the new one, for a caller that keeps this handle
 *   on the old log a while (to read what is left in it) and opens a new
 *   handle on the place.
 * - store_rewake(): reopen the wake-up at the place (0, or -1 errno).
 */
#define STORE_MOVED_LOG  1
#define STORE_MOVED_CONN 2
#define STORE_MOVED_WAKE 4
int store_moved(struct store *s);
int store_watch(struct store *s);
int store_reopen(struct store *s);
void store_release(struct store *s);
void store_clean(struct store *s);
int store_rewake(struct store *s);

/* ---- for backends ----------------------------------------------------- */

/*
 * Retention on publish is batched, the same way by every backend: a
 * connection trims a channel on its first publish to it (or after
 * publishing elsewhere), then once every slack + 1 publishes, where
 * slack = retain_count / STORE_TRIM_SLACK_DIV, at most
 * STORE_TRIM_SLACK_MAX (so 0, i.e. every publish, below 16).  A channel
 * that one connection publishes to thus holds at most retain_count +
 * slack messages, and exactly retain_count right after each trim; a
 * message past retain_age stays until the next trim.
 */
#define STORE_TRIM_SLACK_DIV 16
#define STORE_TRIM_SLACK_MAX 64
struct store_trim {
	char channel[VALID_CHANNEL_MAX + 1]; /* the last one published to */
	long pending;                        /* publishes since its trim */
};
/* Whether this publish to channel (valid) must apply retention; counts
 * the publish.  t starts zeroed. */
int store_trim_due(struct store_trim *t, long retain_count, long retain_age,
    const char *channel);

/* bell_wait's answer (bell.h) as store_wait's, for a backend that waits
 * on a bell; replaced: its check found the log replaced. */
int store_bell_answer(int bell_rc, int replaced);

/* A backend's handle starts with struct store; every op gets it back. */
struct store_ops {
	const char *name;
	int (*open_peer)(struct store **, struct store *, int, char *,
	    size_t);
	void (*close)(struct store *);
	const char *(*errmsg)(const struct store *);
	int (*publish)(struct store *, const char *, const char *,
	    const char *, const void *, size_t, int64_t *);
	int (*end_stream)(struct store *, int64_t, int64_t *);
	int (*end_channel)(struct store *, const char *, int64_t *);
	int (*last_id)(struct store *, int64_t *);
	int (*read)(struct store *, const char *const *, int, int64_t, int,
	    store_cb, void *, int64_t *, int64_t *);
	int (*latest)(struct store *, const char *const *, int, int,
	    store_cb, void *);
	int (*control_read)(struct store *, int64_t, int64_t, int, store_cb,
	    void *, int64_t *);
	int (*stat)(struct store *, const char *, struct store_stat *);
	int (*stats)(struct store *, store_stat_cb, void *);
	int (*subscribers)(struct store *, const char *, int64_t *);
	int (*prune)(struct store *, const char *, long, long, int64_t *);
	int (*remove)(struct store *, const char *, int64_t *);
	int (*stream_open)(struct store *, const char *const *, int, pid_t,
	    const char *, int64_t *);
	int (*stream_close)(struct store *, int64_t);
	int (*stream_info)(struct store *, int64_t, pid_t *, char *, size_t);
	int (*touch)(struct store *, pid_t);
	int64_t (*seen)(struct store *);
	int (*wait)(struct store *, int64_t, int);
	void (*interrupt)(struct store *);
	void (*ring)(struct store *, int64_t);
	int (*sync)(struct store *, int64_t *);
	int (*moved)(struct store *);
	int (*watch)(struct store *);
	int (*reopen)(struct store *);
	void (*release)(struct store *);
	void (*clean)(struct store *);
	int (*rewake)(struct store *);
};

struct store {
	const struct store_ops *ops;
};

/* The SQLite backend (store_sqlite.c). */
int store_sqlite_open(struct store **out, const struct conf *c, int flags,
    char *err, size_t errlen);
int store_sqlite_process_init(int flags);
/* The PostgreSQL backend (store_pg.c): a database value that is a
 * postgresql:// (or postgres://) URI. */
int store_pg_is(const char *db);
int store_pg_open(struct store **out, const struct conf *c, int flags,
    char *err, size_t errlen);
int store_pg_process_init(int flags);

#endif
