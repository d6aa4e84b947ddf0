/*
 * mlog: the SQLite message log.
 *
 * The schema below is the public SQL interface (see mlog.h): its CHECK
 * constraints repeat the allow-lists of valid.c so that a plain SQL INSERT
 * cannot store what the C API would refuse, and its triggers keep the
 * channels table right whoever writes.
 *
 * Every statement is prepared once per connection, on first use, and reset
 * as soon as its rows are consumed: a read transaction left open would pin
 * the WAL and stop checkpoints.  Writes take the write lock up front (BEGIN
 * IMMEDIATE), so that two writers wait (mlog_busy) instead of failing
 * with a deadlock when a read lock would have to be upgraded.
 */
#include "config.h"

#include <errno.h>
#ifdef HAVE_MALLOC_H
#include <malloc.h>
#endif
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "mlog.h"
#include "mono.h"
#include "walbuf.h"

#define MLOG_ERRMSG_MAX  768  /* bytes in the last failure's reason */
#define MLOG_SQL_MAX     1024 /* bytes in one statement's text */
#define MLOG_SECRET_MAX  CONF_TOKEN_MAX /* bytes in a stream's secret */
#define MLOG_MS_PER_S    1000
#define MLOG_OPEN_TRIES  3    /* opens of a path replaced meanwhile */
#define MLOG_WAL_PAUSE_MS 10  /* between tries to set WAL mode */
#define MLOG_BUSY_PAUSE_US 500 /* least pause between tries of a busy lock */
#define MLOG_PWBUF       1024 /* bytes for getpwuid_r's strings */
#define MLOG_NAME_MAX    64   /* bytes of a user name shown in a reason */
/*
 * Retention on append is batched (store_trim_due, store.h): the skipped
 * appends are one autocommit INSERT instead of a transaction of five
 * statements, and a trim deletes its rows in one go, which writes far
 * fewer WAL pages than deleting one row per append.
 */

#define MLOG_STR(x)  #x
#define MLOG_XSTR(x) MLOG_STR(x)

/*
 * The schema, created in one transaction with user_version.  The default
 * time is built from strftime() because unixepoch('subsec') needs a newer
 * SQLite than we require.
 */
static const char mlog_schema[] =
"CREATE TABLE messages("
"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
"  channel TEXT NOT NULL CHECK (typeof(channel) = 'text'"
"    AND length(channel) BETWEEN 1 AND 128"
"    AND channel NOT GLOB '*[^A-Za-z0-9._-]*'"
"    AND (channel NOT GLOB '.*' OR channel = '" MLOG_CONTROL "')),"
"  time INTEGER NOT NULL DEFAULT ("
"    CAST(strftime('%s', 'now') AS INTEGER) * 1000"
"    + CAST(substr(strftime('%f', 'now'), 4) AS INTEGER))"
"    CHECK (typeof(time) = 'integer'),"
"  type TEXT NOT NULL DEFAULT '" MLOG_DEFAULT_TYPE "'"
"    CHECK (typeof(type) = 'text' AND length(type) BETWEEN 1 AND 255"
"    AND type NOT GLOB '*[^ -~]*'),"
"  event TEXT CHECK (event IS NULL OR (typeof(event) = 'text'"
"    AND length(event) BETWEEN 1 AND 64"
"    AND event NOT GLOB '*[^A-Za-z0-9._:-]*')),"
"  data BLOB NOT NULL DEFAULT x'');"
"CREATE INDEX messages_channel_id ON messages(channel, id);"
"CREATE TABLE channels("
"  name TEXT PRIMARY KEY NOT NULL,"
"  last_id INTEGER NOT NULL DEFAULT 0,"
"  last_time INTEGER NOT NULL DEFAULT 0,"
"  pruned_to INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
"CREATE TRIGGER messages_update BEFORE UPDATE OF id, channel ON messages"
" BEGIN"
"  SELECT RAISE(ABORT, 'a message''s id and channel cannot change');"
"END;"
"CREATE TABLE streams("
"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
"  pid INTEGER NOT NULL,"
"  started INTEGER NOT NULL,"
"  secret TEXT);"
"CREATE TABLE subscriptions("
"  stream INTEGER NOT NULL REFERENCES streams(id) ON DELETE CASCADE,"
"  channel TEXT NOT NULL,"
"  PRIMARY KEY(stream, channel)) WITHOUT ROWID;"
"CREATE INDEX subscriptions_channel ON subscriptions(channel);";

/*
 * The triggers that keep channels, created with the schema and replaced by
 * an upgrade from version 1.  An insert only makes sure the channel has a
 * row: leaving an existing row alone spares every publish a page write
 * (version 1 stored the last id and time there on each insert).  What is
 * newest is in messages; channels keeps what a delete takes away: the
 * highest id deleted (pruned_to, for gap detection; last_id, the same)
 * and its time, so that a channel emptied by retention still tells its
 * last id and publish time.
 */
static const char mlog_triggers[] =
"CREATE TRIGGER messages_insert AFTER INSERT ON messages BEGIN"
"  INSERT OR IGNORE INTO channels(name) VALUES(NEW.channel);"
"END;"
"CREATE TRIGGER messages_delete AFTER DELETE ON messages BEGIN"
"  UPDATE channels SET pruned_to = OLD.id, last_id = OLD.id,"
"    last_time = OLD.time"
"    WHERE name = OLD.channel AND pruned_to < OLD.id;"
"END;";

/* From version 1: its triggers wrote the last id and time on insert;
 * the rows it left are right under the new rules too. */
static const char mlog_upgrade_1[] =
"DROP TRIGGER IF EXISTS messages_insert;"
"DROP TRIGGER IF EXISTS messages_delete;";

/* Statements, prepared on first use. */
enum mlog_sid {
	S_BEGIN,
	S_BEGIN_WRITE,
	S_COMMIT,
	S_ROLLBACK,
	S_INSERT,
	S_KEEP,
	S_AGE_HEAD,
	S_AGE_CHANNEL,
	S_AGE_ALL,
	S_CHANNEL_NEXT,
	S_LAST_ID,
	S_DATA_VERSION,
	S_READ,
	S_READ_ALL,
	S_GAP,
	S_GAP_ALL,
	S_LATEST,
	S_LATEST_ALL,
	S_STAT,
	S_SUBSCRIBERS,
	S_STATS,
	S_REMOVE_MESSAGES,
	S_REMOVE_CHANNEL,
	S_STREAM_ADD,
	S_SUBSCRIBE,
	S_STREAM_DEL,
	S_STREAM_GET,
	S_DEAD_ANY,
	S_REAP,
	S_CONTROL_INSERT,
	S_CONTROL_TRIM,
	S_CONTROL_READ,
	S_COUNT
};

/*
 * Statement texts.  Where tail is set, the list ?1..?32 of channel
 * parameters goes between head and tail: one statement serves any number
 * of channels, the unused ones bound to NULL (which matches nothing).
 */
#define MLOG_COLS "id, channel, time, type, event, data"
#define MLOG_LIVE_SUBS \
	"(SELECT count(*) FROM subscriptions s JOIN streams t" \
	" ON t.id = s.stream WHERE s.channel = c.name" \
	" AND mlog_pid_alive(t.pid))"
#define MLOG_STAT_COLS \
	"c.name, max(c.last_id, coalesce((SELECT max(id) FROM messages" \
	" WHERE channel = c.name), 0))," \
	" coalesce((SELECT time FROM messages WHERE channel = c.name" \
	" ORDER BY id DESC LIMIT 1), c.last_time), c.pruned_to," \
	" (SELECT count(*) FROM messages WHERE channel = c.name)," \
	" (SELECT min(id) FROM messages WHERE channel = c.name), " \
	MLOG_LIVE_SUBS
#define MLOG_P_AFTER "?33"  /* parameter after the channel list */
#define MLOG_P_LIMIT "?34"
#define MLOG_I_AFTER 33
#define MLOG_I_LIMIT 34
#define MLOG_Q_CONTROL "'" MLOG_CONTROL "'"  /* as an SQL literal */
#define MLOG_CONTROL_TYPE "text/plain"
#define MLOG_CONTROL_STREAM STORE_CONTROL_STREAM  /* request prefixes */
#define MLOG_CONTROL_CHANNEL STORE_CONTROL_CHANNEL
#define MLOG_PID_MEMO    16   /* pids whose liveness one call remembers */
_Static_assert(VALID_CHANNELS_MAX == MLOG_I_AFTER - 1,
    "the channel list must end just before the other parameters");

static const struct {
	const char *head;
	const char *tail;
} mlog_sql[S_COUNT] = {
	[S_BEGIN] = { "BEGIN", NULL },
	[S_BEGIN_WRITE] = { "BEGIN IMMEDIATE", NULL },
	[S_COMMIT] = { "COMMIT", NULL },
	[S_ROLLBACK] = { "ROLLBACK", NULL },
	[S_INSERT] = { "INSERT INTO messages(channel, time, type, event, data)"
	    " VALUES(?1, ?2, ?3, ?4, ?5)", NULL },
	/* Walks `keep` index entries back from the newest, then deletes the
	 * (usually one) older rows: no scan of the whole channel. */
	[S_KEEP] = { "DELETE FROM messages WHERE channel = ?1 AND id <="
	    " (SELECT id FROM messages WHERE channel = ?1"
	    " ORDER BY id DESC LIMIT 1 OFFSET ?2)", NULL },
	/* Age on append: times grow with ids, so the expired rows are a
	 * prefix of the channel; find its end from the oldest side. */
	[S_AGE_HEAD] = { "DELETE FROM messages WHERE channel = ?1 AND id <"
	    " (SELECT id FROM messages WHERE channel = ?1 AND time >= ?2"
	    " ORDER BY id LIMIT 1)", NULL },
	/* Age on explicit prune: every row, in case times are out of order
	 * (plain SQL may set any time). */
	[S_AGE_CHANNEL] = { "DELETE FROM messages WHERE channel = ?1"
	    " AND time < ?2", NULL },
	[S_AGE_ALL] = { "DELETE FROM messages WHERE time < ?1"
	    " AND channel <> '" MLOG_CONTROL "'", NULL },
	[S_CHANNEL_NEXT] = { "SELECT name FROM channels WHERE name > ?1"
	    " AND name <> '" MLOG_CONTROL "' ORDER BY name LIMIT 1", NULL },
	[S_LAST_ID] = { "SELECT seq FROM sqlite_sequence"
	    " WHERE name = 'messages'", NULL },
	[S_DATA_VERSION] = { "PRAGMA data_version", NULL },
	[S_READ] = { "SELECT " MLOG_COLS " FROM messages WHERE id > "
	    MLOG_P_AFTER " AND channel IN (", ") ORDER BY id LIMIT "
	    MLOG_P_LIMIT },
	/* "Every channel" never includes the control channel. */
	[S_READ_ALL] = { "SELECT " MLOG_COLS " FROM messages WHERE id > "
	    MLOG_P_AFTER " AND channel <> " MLOG_Q_CONTROL
	    " ORDER BY id LIMIT " MLOG_P_LIMIT, NULL },
	[S_GAP] = { "SELECT max(pruned_to) FROM channels WHERE name IN (",
	    ")" },
	[S_GAP_ALL] = { "SELECT max(pruned_to) FROM channels"
	    " WHERE name <> " MLOG_Q_CONTROL, NULL },
	[S_LATEST] = { "SELECT * FROM (SELECT " MLOG_COLS " FROM messages"
	    " WHERE channel IN (", ") ORDER BY id DESC LIMIT " MLOG_P_LIMIT
	    ") ORDER BY id" },
	[S_LATEST_ALL] = { "SELECT * FROM (SELECT " MLOG_COLS " FROM messages"
	    " WHERE channel <> " MLOG_Q_CONTROL
	    " ORDER BY id DESC LIMIT " MLOG_P_LIMIT ") ORDER BY id", NULL },
	[S_STAT] = { "SELECT " MLOG_STAT_COLS " FROM channels c"
	    " WHERE c.name = ?1", NULL },
	[S_SUBSCRIBERS] = { "SELECT " MLOG_LIVE_SUBS " FROM (SELECT ?1 AS"
	    " name) c", NULL },
	[S_STATS] = { "SELECT " MLOG_STAT_COLS " FROM channels c"
	    " WHERE c.name <> " MLOG_Q_CONTROL " ORDER BY c.name", NULL },
	[S_REMOVE_MESSAGES] = { "DELETE FROM messages WHERE channel = ?1",
	    NULL },
	[S_REMOVE_CHANNEL] = { "DELETE FROM channels WHERE name = ?1", NULL },
	[S_STREAM_ADD] = { "INSERT INTO streams(pid, started, secret)"
	    " VALUES(?1, ?2, ?3)", NULL },
	[S_SUBSCRIBE] = { "INSERT OR IGNORE INTO subscriptions(stream, channel)"
	    " VALUES(?1, ?2)", NULL },
	[S_STREAM_DEL] = { "DELETE FROM streams WHERE id = ?1", NULL },
	[S_STREAM_GET] = { "SELECT pid, secret FROM streams WHERE id = ?1",
	    NULL },
	[S_DEAD_ANY] = { "SELECT 1 FROM streams WHERE NOT mlog_pid_alive(pid)"
	    " LIMIT 1", NULL },
	[S_REAP] = { "DELETE FROM streams WHERE NOT mlog_pid_alive(pid)",
	    NULL },
	[S_CONTROL_INSERT] = { "INSERT INTO messages(channel, time, type, data)"
	    " VALUES(" MLOG_Q_CONTROL ", ?1, '" MLOG_CONTROL_TYPE "', ?2)",
	    NULL },
	/* Short retention of the control channel: by age and by count. */
	[S_CONTROL_TRIM] = { "DELETE FROM messages WHERE channel = "
	    MLOG_Q_CONTROL " AND (time < ?1 OR id <= (SELECT id FROM messages"
	    " WHERE channel = " MLOG_Q_CONTROL " ORDER BY id DESC LIMIT 1"
	    " OFFSET ?2))", NULL },
	[S_CONTROL_READ] = { "SELECT " MLOG_COLS " FROM messages WHERE channel"
	    " = " MLOG_Q_CONTROL " AND id > ?1 AND id <= ?2 ORDER BY id"
	    " LIMIT ?3", NULL },
};

struct mlog {
	sqlite3 *db;
	sqlite3_stmt *st[S_COUNT];
	int readonly;
	int synchronous_full;
	long retain_count;
	long retain_age;
	long max_data;
	int64_t data_version;     /* as of the last mlog_changed() */
	/* The file this connection has open, for mlog_moved(): its path,
	 * device and inode as stat() said while it was opened. */
	char path[PATH_MAX];
	char wal[PATH_MAX];       /* path-wal, "" if too long */
	char shm[PATH_MAX];       /* path-shm, "" if too long */
	int flags;                /* mlog_open's, for mlog_reopen */
	dev_t dev, wal_dev, shm_dev;
	ino_t ino, wal_ino, shm_ino; /* 0: no -wal (-shm) to compare */
	int64_t gen;              /* opens so far: 1 after mlog_open */
	/* Retention batching (see mlog_trim_due): the channel this
	 * connection appended to last and its appends since it trimmed it. */
	struct store_trim trim;
	/* mlog_pid_alive's answers within one stat or reap call (see
	 * mlog_memo_clear): streams of one FastCGI process share its pid,
	 * so a thousand rows cost one kill(), not a thousand. */
	struct { int64_t pid; int alive; } memo[MLOG_PID_MEMO];
	int nmemo;
	/* The busy handler's (mlog_busy): when this wait for a lock began
	 * (mono_ns) and the state of its pauses' jitter. */
	int64_t busy_since;
	uint32_t busy_jitter;
	char err[MLOG_ERRMSG_MAX];
	int ecode;                /* the code of the failure in err */
};

static int mlog_fail(struct mlog *, int, const char *, ...)
    __attribute__((format(printf, 3, 4)));
static int mlog_code(struct mlog *);
static int mlog_errno_code(int);
static int mlog_failed(const struct mlog *);
static void mlog_describe(const struct mlog *, int, int, char *, size_t);
static void mlog_user(uid_t, char *, size_t);
static int mlog_sqlfail(struct mlog *, const char *);
static sqlite3_stmt *mlog_stmt(struct mlog *, enum mlog_sid);
static sqlite3_stmt *mlog_stmt_tx(struct mlog *, enum mlog_sid);
static int mlog_step_done(struct mlog *, sqlite3_stmt *, const char *);
static void mlog_done(sqlite3_stmt *);
static int mlog_run(struct mlog *, enum mlog_sid, const char *);
static int mlog_begin(struct mlog *, int);
static int mlog_commit(struct mlog *, const char *);
static void mlog_rollback(struct mlog *);
static int64_t mlog_now_ms(void);
static void mlog_sql_pid_alive(sqlite3_context *, int, sqlite3_value **);
static int mlog_busy(void *, int);
static void mlog_memo_clear(struct mlog *);
static int mlog_reap_dead(struct mlog *);
static int mlog_query_ints(struct mlog *, const char *, int64_t *, int);
static int mlog_setup(struct mlog *, const char *, int);
static int mlog_schema_state(struct mlog *, int64_t *, int64_t *);
static int mlog_schema_verdict(struct mlog *, const char *, int64_t, int64_t,
    int *);
static int mlog_create_schema(struct mlog *, const char *, int);
static int mlog_set_wal(struct mlog *, const char *);
static int mlog_check_channels(struct mlog *, const char *const *, int,
    int);
static void mlog_bind_channels(sqlite3_stmt *, const char *const *, int);
static int mlog_row_msg(struct mlog *, sqlite3_stmt *, struct store_msg *);
static int mlog_row_stat(sqlite3_stmt *, struct store_stat *);
static int mlog_trim(struct mlog *, const char *, long, int64_t, int,
    int64_t *);
static int mlog_writable(struct mlog *);
static int64_t mlog_cutoff(int64_t, long);
static int mlog_prune_all(struct mlog *, long, int64_t, int64_t *);
static int mlog_valid_secret(const char *);
static int mlog_trim_due(struct mlog *, const char *);
static int mlog_control_append(struct mlog *, const char *, int64_t *);
static int mlog_connect(struct mlog *);
static void mlog_disconnect(struct mlog *);
static int mlog_append_once(struct mlog *, const char *, const char *,
    const char *, const void *, size_t, int64_t *, int *);

/* Record a one-line reason and return rc.  MLOG_EUNAVAIL also gets why
 * the log cannot be used, found out by looking at its files. */
static int
mlog_fail(struct mlog *l, int rc, const char *fmt, ...)
{
	va_list ap;
	size_t n;
	int ext, sys = errno;

	va_start(ap, fmt);
	vsnprintf(l->err, sizeof(l->err), fmt, ap);
	va_end(ap);
	l->ecode = rc;
	if (rc == MLOG_EUNAVAIL) {
		ext = l->db != NULL ? sqlite3_extended_errcode(l->db) :
		    SQLITE_CANTOPEN;
		if (l->db != NULL)
			sys = sqlite3_system_errno(l->db);
		n = strlen(l->err);
		mlog_describe(l, ext, sys, l->err + n, sizeof(l->err) - n);
	}
	return rc;
}

/*
 * The code for SQLite's last failure on l (call right after it):
 * MLOG_EUNAVAIL when the log cannot be used now, whatever the request
 * (busy or locked past busy_timeout; a file or folder it cannot write:
 * SQLITE_READONLY*, _CANTOPEN, _PERM; a full disk; an I/O error), else
 * MLOG_ERR.  By result code: SQLite's texts are for people.
 */
static int
mlog_code(struct mlog *l)
{
	if (l->db == NULL)
		return MLOG_ERR;
	switch (sqlite3_extended_errcode(l->db) & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
	case SQLITE_READONLY:
	case SQLITE_CANTOPEN:
	case SQLITE_PERM:
	case SQLITE_FULL:
	case SQLITE_IOERR:
		return MLOG_EUNAVAIL;
	}
	return MLOG_ERR;
}

/* The same for a failed system call's errno (creating the file). */
static int
mlog_errno_code(int e)
{
	return e == EACCES || e == EPERM || e == EROFS || e == ENOSPC ||
	    e == EDQUOT || e == EIO ? MLOG_EUNAVAIL : MLOG_ERR;
}

/* The code of the failure recorded last (what a function returns when a
 * helper it called failed): never MLOG_OK. */
static int
mlog_failed(const struct mlog *l)
{
	return l->ecode < 0 ? l->ecode : MLOG_ERR;
}

/* A user's name, or "uid N". */
static void
mlog_user(uid_t uid, char *out, size_t len)
{
	struct passwd pw, *found = NULL;
	char buf[MLOG_PWBUF];

	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &found) == 0 &&
	    found != NULL)
		snprintf(out, len, "%s", pw.pw_name);
	else
		snprintf(out, len, "uid %ld", (long)uid);
}

/*
 * Why the log cannot be used, as " (FILE: CAUSE)" in out: SQLite says
 * "attempt to write a readonly database" whichever of the log, its -wal
 * or -shm file or its folder is at fault, so look at each (stat and
 * access(2) as this process's user).  ext is SQLite's extended result
 * code, sys the errno behind it (0 if none).  Says nothing more when no
 * cause is found.
 */
static void
mlog_describe(const struct mlog *l, int ext, int sys, char *out, size_t len)
{
	static const char *const suffix[] = { "", "-wal", "-shm" };
	char file[PATH_MAX + 8], dir[PATH_MAX], me[MLOG_NAME_MAX],
	    owner[MLOG_NAME_MAX], *slash;
	struct stat sb;
	int i, gone, missing = 0;

	if (len == 0)
		return;
	*out = '\0';
	switch (ext & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		snprintf(out, len, " (%s: another connection held it past the "
		    "busy timeout, %d ms)", l->path, MLOG_BUSY_MS);
		return;
	}
	snprintf(dir, sizeof(dir), "%s", l->path);
	if ((slash = strrchr(dir, '/')) == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	if ((ext & 0xff) == SQLITE_FULL || sys == ENOSPC || sys == EDQUOT) {
		snprintf(out, len, " (%s: no space left on its file system%s)",
		    l->path, sys == EDQUOT ? ": quota" : "");
		return;
	}
	mlog_user(geteuid(), me, sizeof(me));
	for (i = 0; i < 3; i++) {
		snprintf(file, sizeof(file), "%s%s", l->path, suffix[i]);
		if (stat(file, &sb) != 0) {
			missing = 1;
			continue;
		}
		if (access(file, W_OK) == 0)
			continue;
		if (errno == EROFS) {
			snprintf(out, len, " (%s: read-only file system)",
			    file);
			return;
		}
		mlog_user(sb.st_uid, owner, sizeof(owner));
		snprintf(out, len, " (%s: not writable by %s; owner %s, mode "
		    "%04o)", file, me, owner, (unsigned)(sb.st_mode & 07777));
		return;
	}
	gone = stat(l->path, &sb) != 0 && errno == ENOENT;
	if (missing && access(dir, W_OK | X_OK) != 0 && stat(dir, &sb) == 0) {
		mlog_user(sb.st_uid, owner, sizeof(owner));
		snprintf(out, len, " (folder %s: not writable by %s, who must "
		    "create %s in it; owner %s, mode %04o)", dir, me, gone ?
		    "the log" : "the log's -wal and -shm files", owner,
		    (unsigned)(sb.st_mode & 07777));
		return;
	}
	if (gone) {
		snprintf(out, len, " (%s: no such file)", l->path);
		return;
	}
	if (sys != 0)
		snprintf(out, len, " (%s: %s)", l->path, strerror(sys));
}

/* Record SQLite's reason for the last failure, prefixed by what we were
 * doing, roll back any open transaction (which also resets every
 * statement), and return MLOG_ERR.  Call it before resetting the failed
 * statement, while the reason is still SQLite's. */
static int
mlog_sqlfail(struct mlog *l, const char *what)
{
	mlog_fail(l, mlog_code(l), "%s: %s", what,
	    sqlite3_errmsg(l->db));
	mlog_rollback(l);
	return mlog_failed(l);
}

/* The prepared statement id, prepared now if this is its first use; NULL
 * (with the reason in l->err) if it cannot be prepared. */
static sqlite3_stmt *
mlog_stmt(struct mlog *l, enum mlog_sid id)
{
	char sql[MLOG_SQL_MAX];
	size_t off;
	int i, rc;

	if (l->st[id] != NULL)
		return l->st[id];
	if (l->db == NULL) {
		mlog_fail(l, MLOG_ERR, "%s: not open (a reopen failed)",
		    l->path);
		return NULL;
	}
	off = (size_t)snprintf(sql, sizeof(sql), "%s", mlog_sql[id].head);
	if (mlog_sql[id].tail != NULL) {
		for (i = 1; i <= VALID_CHANNELS_MAX && off < sizeof(sql); i++)
			off += (size_t)snprintf(sql + off, sizeof(sql) - off,
			    "%s?%d", i > 1 ? ", " : "", i);
		if (off < sizeof(sql))
			off += (size_t)snprintf(sql + off, sizeof(sql) - off,
			    "%s", mlog_sql[id].tail);
	}
	if (off >= sizeof(sql)) {
		mlog_fail(l, MLOG_ERR, "statement %d is too long", (int)id);
		return NULL;
	}
	rc = sqlite3_prepare_v3(l->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
	    &l->st[id], NULL);
	if (rc != SQLITE_OK) {
		mlog_fail(l, mlog_code(l), "preparing statement %d: %s",
		    (int)id, sqlite3_errmsg(l->db));
		l->st[id] = NULL;
	}
	return l->st[id];
}

/* mlog_stmt inside a write transaction: one that cannot be prepared
 * rolls the transaction back (l->err says why) and gives NULL. */
static sqlite3_stmt *
mlog_stmt_tx(struct mlog *l, enum mlog_sid id)
{
	sqlite3_stmt *st;

	if ((st = mlog_stmt(l, id)) == NULL)
		mlog_rollback(l);
	return st;
}

/* Run st (bound, returning no rows) to its end, then mlog_done.  On
 * failure: mlog_sqlfail(what), which rolls back.  MLOG_OK or the code. */
static int
mlog_step_done(struct mlog *l, sqlite3_stmt *st, const char *what)
{
	if (sqlite3_step(st) != SQLITE_DONE)
		return mlog_sqlfail(l, what);
	mlog_done(st);
	return MLOG_OK;
}

/* Reset a statement after use and drop its bindings: this is what ends an
 * autocommit read transaction, and no bound pointer outlives the call. */
static void
mlog_done(sqlite3_stmt *st)
{
	if (st != NULL) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
	}
}

/* Run a statement without parameters or rows (BEGIN, COMMIT...). */
static int
mlog_run(struct mlog *l, enum mlog_sid id, const char *what)
{
	sqlite3_stmt *st;
	int rc;

	if ((st = mlog_stmt(l, id)) == NULL)
		return mlog_failed(l);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		mlog_fail(l, mlog_code(l), "%s: %s", what,
		    sqlite3_errmsg(l->db));
		sqlite3_reset(st);
		return mlog_failed(l);
	}
	sqlite3_reset(st);
	return MLOG_OK;
}

/* Start a transaction: a write one takes the write lock now. */
static int
mlog_begin(struct mlog *l, int write)
{
	return mlog_run(l, write ? S_BEGIN_WRITE : S_BEGIN,
	    write ? "starting a write transaction" :
	    "starting a read transaction");
}

/* Commit; on failure roll back and say what was being committed. */
static int
mlog_commit(struct mlog *l, const char *what)
{
	if (mlog_run(l, S_COMMIT, what) != MLOG_OK) {
		mlog_rollback(l);
		return mlog_failed(l);
	}
	return MLOG_OK;
}

/* Roll back if a transaction is open; keeps l->err as it is. */
static void
mlog_rollback(struct mlog *l)
{
	sqlite3_stmt *st;
	int i;

	/* Ours may be mid-step after a failure or a callback's stop: reset
	 * them all, so that nothing holds the snapshot or a bound pointer. */
	for (i = 0; i < S_COUNT; i++)
		mlog_done(l->st[i]);
	if (l->db == NULL || sqlite3_get_autocommit(l->db))
		return;
	if ((st = mlog_stmt(l, S_ROLLBACK)) != NULL) {
		sqlite3_step(st);
		sqlite3_reset(st);
	}
}

/* Wall-clock time in milliseconds since the epoch. */
static int64_t
mlog_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * MLOG_MS_PER_S +
	    ts.tv_nsec / (1000000 / MLOG_MS_PER_S);
}

/*
 * SQLite's busy handler on every connection: try again after a short,
 * jittered pause until MLOG_BUSY_MS have passed since the first refusal.
 * SQLite's own (sqlite3_busy_timeout) pauses up to 100 ms between tries,
 * and the write lock is free only in the moments between one writer's
 * commit and the next one's BEGIN: against two writers publishing back to
 * back it lost every try for the whole timeout, and the publish failed
 * with the log in use all along.  Pauses of 0.5 to 1.5 ms give a waiter
 * some thousands of chances instead of some tens; the jitter keeps two
 * waiters from trying in step.  count is 0 at the first call of a wait.
 */
static int
mlog_busy(void *arg, int count)
{
	struct mlog *l = arg;
	struct timespec pause;
	int64_t now = mono_ns();
	uint32_t x;

	if (count == 0)
		l->busy_since = now;
	if (now - l->busy_since >= MLOG_BUSY_MS * MONO_NS_PER_MS)
		return 0;
	/* xorshift32: any sequence will do, only not the same in two
	 * processes (seeded with the pid and the connection's address). */
	x = l->busy_jitter;
	if (x == 0)
		x = (uint32_t)getpid() ^ (uint32_t)(uintptr_t)l ^ 0x9e3779b9u;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	l->busy_jitter = x;
	pause.tv_sec = 0;
	pause.tv_nsec = (MLOG_BUSY_PAUSE_US + (long)(x % (2 *
	    MLOG_BUSY_PAUSE_US))) * 1000L;
	nanosleep(&pause, NULL);
	return 1;
}

/*
 * SQL function mlog_pid_alive(pid): 0 if no process has that pid (so its
 * stream is stale), else 1.  EPERM means someone else's live process.
 * Registered per connection (user data: its struct mlog); not part of the
 * public schema.  Answers are remembered (MLOG_PID_MEMO of them) until
 * mlog_memo_clear(), which every statement-running caller does first: a
 * pid is then probed once per call however many rows carry it.
 */
static void
mlog_sql_pid_alive(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	struct mlog *l = sqlite3_user_data(ctx);
	sqlite3_int64 pid;
	int i, alive = 1;

	(void)argc;
	pid = sqlite3_value_int64(argv[0]);
	/* 0 and negative pids name process groups: never probe them. */
	if (pid <= 0 || pid > INT_MAX) {
		sqlite3_result_int(ctx, 0);
		return;
	}
	for (i = 0; i < l->nmemo; i++)
		if (l->memo[i].pid == pid) {
			sqlite3_result_int(ctx, l->memo[i].alive);
			return;
		}
	if (kill((pid_t)pid, 0) == -1 && errno == ESRCH)
		alive = 0;
	if (l->nmemo < MLOG_PID_MEMO) {
		l->memo[l->nmemo].pid = pid;
		l->memo[l->nmemo].alive = alive;
		l->nmemo++;
	}
	sqlite3_result_int(ctx, alive);
}

/* Forget mlog_pid_alive's answers: liveness is as of the next call. */
static void
mlog_memo_clear(struct mlog *l)
{
	l->nmemo = 0;
}

/* Run sql (a constant statement without parameters, used once, so not
 * kept) and read the n integer columns of its one row into v[0..n).
 * Returns SQLITE_OK, or SQLite's code (SQLITE_DONE: no row; v is then
 * untouched). */
static int
mlog_query_ints(struct mlog *l, const char *sql, int64_t *v, int n)
{
	sqlite3_stmt *st;
	int i, rc;

	if ((rc = sqlite3_prepare_v2(l->db, sql, -1, &st, NULL)) != SQLITE_OK)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		for (i = 0; i < n; i++)
			v[i] = sqlite3_column_int64(st, i);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	return rc;
}

/* The schema version and the number of schema objects, in one snapshot:
 * a creator's commit brings both at once. */
static int
mlog_schema_state(struct mlog *l, int64_t *version, int64_t *objects)
{
	int64_t v[2] = { 0, 0 };
	int rc;

	rc = mlog_query_ints(l, "SELECT (SELECT user_version FROM "
	    "pragma_user_version), (SELECT count(*) FROM sqlite_master)", v,
	    2);
	if (rc == SQLITE_OK) {
		*version = v[0];
		*objects = v[1];
	}
	return rc;
}

/*
 * What to do with a file of this version and number of schema objects:
 * MLOG_OK with *create set if it is a blank file, MLOG_OK if it holds our
 * schema, else MLOG_ESCHEMA (newer, or someone else's database).
 */
static int
mlog_schema_verdict(struct mlog *l, const char *path, int64_t version,
    int64_t objects, int *create)
{
	*create = 0;
	if (version > MLOG_SCHEMA_VERSION)
		return mlog_fail(l, MLOG_ESCHEMA, "%s: schema version %lld is "
		    "newer than this program's %d", path, (long long)version,
		    MLOG_SCHEMA_VERSION);
	if (version == 0 && objects != 0)
		return mlog_fail(l, MLOG_ESCHEMA, "%s: a SQLite database but "
		    "not a pushcgi message log", path);
	*create = version == 0;
	return MLOG_OK;
}

/* Put a blank file in WAL mode.  That must be done outside a transaction;
 * it persists in the file.  The caller saw a blank file, so this changes
 * no one else's. */
static int
mlog_set_wal(struct mlog *l, const char *path)
{
	struct timespec pause = { 0, MLOG_WAL_PAUSE_MS * 1000000L };
	sqlite3_stmt *st;
	const char *mode = NULL;
	int rc = MLOG_OK, step, tries;

	if (sqlite3_prepare_v2(l->db, "PRAGMA journal_mode = WAL", -1, &st,
	    NULL) != SQLITE_OK)
		return mlog_sqlfail(l, "setting WAL mode");
	/* Two creators at once: the change takes an exclusive lock, and the
	 * loser can be told "locked" at once, without the busy handler
	 * (SQLite's way out of a deadlock), or get the old mode back.
	 * Asking again after a pause finds the file in WAL mode, or wins
	 * the lock. */
	for (tries = 0; tries < MLOG_BUSY_MS / MLOG_WAL_PAUSE_MS; tries++) {
		mode = NULL;
		step = sqlite3_step(st);
		if (step == SQLITE_ROW)
			mode = (const char *)sqlite3_column_text(st, 0);
		if (mode != NULL && strcmp(mode, "wal") == 0)
			break;
		/* Not changed: the old mode as a row, or "locked". */
		if (step != SQLITE_ROW && (step & 0xff) != SQLITE_BUSY &&
		    (step & 0xff) != SQLITE_LOCKED)
			break;
		sqlite3_reset(st);
		nanosleep(&pause, NULL);
	}
	if (mode == NULL || strcmp(mode, "wal") != 0)
		rc = mlog_fail(l, mlog_code(l), "%s: cannot use WAL mode: %s",
		    path, mode != NULL ? mode : sqlite3_errmsg(l->db));
	sqlite3_finalize(st);
	return rc;
}

/* Create the schema in a blank file (create set), or bring an older
 * version up to date, unless another process does so first (then its
 * schema is checked like any other). */
static int
mlog_create_schema(struct mlog *l, const char *path, int create)
{
	int64_t version = 0, objects = 0;
	const char *what;
	char *msg = NULL;
	int rc;

	if (create && mlog_set_wal(l, path) != MLOG_OK)
		return mlog_failed(l);
	if (mlog_begin(l, 1) != MLOG_OK)
		return mlog_failed(l);
	/* Again under the write lock: two processes may race to here. */
	if (mlog_schema_state(l, &version, &objects) != SQLITE_OK)
		return mlog_sqlfail(l, "reading the schema");
	if ((rc = mlog_schema_verdict(l, path, version, objects, &create)) !=
	    MLOG_OK || version == MLOG_SCHEMA_VERSION) {
		mlog_rollback(l);
		return rc;
	}
	what = create ? "creating the schema" : "upgrading the schema";
	rc = sqlite3_exec(l->db, create ? mlog_schema : mlog_upgrade_1, NULL,
	    NULL, &msg);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(l->db, mlog_triggers, NULL, NULL, &msg);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(l->db, "PRAGMA user_version = "
		    MLOG_XSTR(MLOG_SCHEMA_VERSION), NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		mlog_fail(l, mlog_code(l), "%s: %s: %s", path, what,
		    msg != NULL ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		mlog_rollback(l);
		return mlog_failed(l);
	}
	return mlog_commit(l, what);
}

/* Settings, schema check (and creation), pragmas of a fresh connection. */
static int
mlog_setup(struct mlog *l, const char *path, int flags)
{
	int64_t version = 0, objects = 0;
	char *msg = NULL;
	int create, rc;

	sqlite3_busy_handler(l->db, mlog_busy, l);
	if (sqlite3_create_function(l->db, "mlog_pid_alive", 1, SQLITE_UTF8,
	    l, mlog_sql_pid_alive, NULL, NULL) != SQLITE_OK)
		return mlog_sqlfail(l, "registering mlog_pid_alive");
	rc = mlog_schema_state(l, &version, &objects);
	if (rc == SQLITE_NOTADB)
		return mlog_fail(l, MLOG_ESCHEMA, "%s: not a SQLite database",
		    path);
	if (rc != SQLITE_OK)
		return mlog_fail(l, mlog_code(l), "%s: reading the schema: %s",
		    path, sqlite3_errmsg(l->db));
	if ((rc = mlog_schema_verdict(l, path, version, objects, &create)) !=
	    MLOG_OK)
		return rc;
	if (create) {
		if (!(flags & MLOG_CREATE) || l->readonly)
			return mlog_fail(l, MLOG_ESCHEMA, "%s: not a pushcgi "
			    "message log (no schema)", path);
		if ((rc = mlog_create_schema(l, path, 1)) != MLOG_OK)
			return rc;
	} else if (version < MLOG_SCHEMA_VERSION && !l->readonly &&
	    (rc = mlog_create_schema(l, path, 0)) != MLOG_OK)
		return rc;
	/* Per-connection settings (foreign_keys would be ignored inside a
	 * transaction; none is open here). */
	rc = sqlite3_exec(l->db, "PRAGMA foreign_keys = ON", NULL, NULL,
	    &msg);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(l->db, l->synchronous_full ?
		    "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL",
		    NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		mlog_fail(l, mlog_code(l), "%s: setting up the connection: %s",
		    path, msg != NULL ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return mlog_failed(l);
	}
	if (mlog_query_ints(l, "PRAGMA data_version", &l->data_version, 1) !=
	    SQLITE_OK)
		return mlog_fail(l, mlog_code(l), "%s: reading data_version: "
		    "%s", path, sqlite3_errmsg(l->db));
	return MLOG_OK;
}

void
mlog_process_init(void)
{
#if defined(HAVE_MALLOC_H) && defined(HAVE_MALLOPT) && \
    defined(M_TRIM_THRESHOLD) && defined(M_MMAP_THRESHOLD)
	/* Setting one threshold stops glibc from raising the other by
	 * itself: blocks over 128 KiB would then be mapped and unmapped
	 * on every use (a request's buffers), so set both. */
	mallopt(M_TRIM_THRESHOLD, MLOG_HEAP_KEEP);
	mallopt(M_MMAP_THRESHOLD, MLOG_HEAP_KEEP);
#endif
}

/*
 * Open l->path into l->db (which is NULL) and record the file's identity.
 * The identity is stat()'s before the open and after the schema check:
 * when both agree the file SQLite opened is the one the path named (a
 * file moved into place in between shows as a difference, and the open
 * is tried again, MLOG_OPEN_TRIES times in all).
 */
static int
mlog_connect(struct mlog *l)
{
	struct stat before, after, wst;
	int fd, oflags, rc, i;

	for (i = 0; i < MLOG_OPEN_TRIES; i++) {
		rc = MLOG_OK;
		if ((l->flags & MLOG_CREATE) && !l->readonly) {
			/* We make the file, not SQLite: SQLite would use
			 * 0644, and the web server and the operator usually
			 * share the log through a group.  0666 minus the
			 * umask is what the admin asked for; the -wal and
			 * -shm files copy this file's mode. */
			fd = open(l->path, O_RDWR | O_CREAT | O_EXCL |
			    O_CLOEXEC, 0666);
			if (fd >= 0)
				close(fd);
			else if (errno != EEXIST)
				return mlog_fail(l, mlog_errno_code(errno),
				    "cannot create %s: %s", l->path,
				    strerror(errno));
		}
		if (stat(l->path, &before) != 0)
			return mlog_fail(l, errno == ENOENT ? MLOG_ENOENT :
			    MLOG_ERR, "%s: %s", l->path, errno == ENOENT ?
			    "no message log there" : strerror(errno));
		oflags = (l->readonly ? SQLITE_OPEN_READONLY :
		    SQLITE_OPEN_READWRITE) | SQLITE_OPEN_NOMUTEX;
		if (sqlite3_open_v2(l->path, &l->db, oflags,
		    walbuf_register()) != SQLITE_OK)
			rc = mlog_fail(l, mlog_code(l), "cannot open %s: %s",
			    l->path, l->db != NULL ? sqlite3_errmsg(l->db) :
			    "out of memory");
		else
			rc = mlog_setup(l, l->path, l->flags);
		/* The -wal too: SQLite opened it during the schema check,
		 * and keeps it while this connection lives (its SHARED lock
		 * on the log keeps others from deleting it). */
		l->wal_ino = l->shm_ino = 0;
		if (rc == MLOG_OK && l->wal[0] != '\0' &&
		    stat(l->wal, &wst) == 0) {
			l->wal_dev = wst.st_dev;
			l->wal_ino = wst.st_ino;
		}
		if (rc == MLOG_OK && l->shm[0] != '\0' &&
		    stat(l->shm, &wst) == 0) {
			l->shm_dev = wst.st_dev;
			l->shm_ino = wst.st_ino;
		}
		if (rc == MLOG_OK && stat(l->path, &after) == 0 &&
		    after.st_dev == before.st_dev &&
		    after.st_ino == before.st_ino) {
			l->dev = before.st_dev;
			l->ino = before.st_ino;
			l->gen++;
			return MLOG_OK;
		}
		mlog_disconnect(l);
		if (rc != MLOG_OK)
			return rc;
		rc = mlog_fail(l, MLOG_EMOVED, "%s was replaced while it was "
		    "being opened", l->path);
	}
	return rc;
}

/* Close l->db and its statements; l stays usable for mlog_connect. */
static void
mlog_disconnect(struct mlog *l)
{
	int i;

	for (i = 0; i < S_COUNT; i++) {
		sqlite3_finalize(l->st[i]);
		l->st[i] = NULL;
	}
	sqlite3_close(l->db);
	l->db = NULL;
	memset(&l->trim, 0, sizeof(l->trim));
}

int
mlog_open(struct mlog **out, const struct conf *c, int flags, char *err,
    size_t errlen)
{
	struct mlog *l;
	int rc;

	*out = NULL;
	if ((l = calloc(1, sizeof(*l))) == NULL) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "out of memory");
		return MLOG_ERR;
	}
	snprintf(l->path, sizeof(l->path), "%s", c->db);
	l->readonly = (flags & MLOG_READONLY) != 0;
	l->flags = flags;
	l->synchronous_full = c->synchronous_full;
	l->retain_count = c->retain_count;
	l->retain_age = c->retain_age;
	l->max_data = c->max_data;
	if (strlen(c->db) >= sizeof(l->path))
		rc = mlog_fail(l, MLOG_EINVAL, "database path too long");
	else {
		memcpy(l->path, c->db, strlen(c->db) + 1);
		if ((size_t)snprintf(l->wal, sizeof(l->wal), "%s-wal", c->db) >=
		    sizeof(l->wal))
			l->wal[0] = '\0';
		if ((size_t)snprintf(l->shm, sizeof(l->shm), "%s-shm", c->db) >=
		    sizeof(l->shm))
			l->shm[0] = '\0';
		rc = mlog_connect(l);
	}
	if (rc != MLOG_OK) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "%s", l->err);
		mlog_close(l);
		return rc;
	}
	*out = l;
	return MLOG_OK;
}

int
mlog_moved(struct mlog *l)
{
	struct stat sb;

	if (l->db == NULL)
		return MLOG_MOVED_WAL;  /* released: to be opened again */
	if (stat(l->path, &sb) != 0 || sb.st_dev != l->dev ||
	    sb.st_ino != l->ino)
		return MLOG_MOVED_LOG;
	if (l->wal_ino != 0 && (stat(l->wal, &sb) != 0 ||
	    sb.st_dev != l->wal_dev || sb.st_ino != l->wal_ino))
		return MLOG_MOVED_WAL;
	return 0;
}

/* Unlink path when it still names the file (dev, ino): an old log's
 * -wal or -shm left beside a new log file. */
static void
mlog_unlink_same(const char *path, dev_t dev, ino_t ino)
{
	struct stat sb;

	if (ino != 0 && path[0] != '\0' && stat(path, &sb) == 0 &&
	    sb.st_dev == dev && sb.st_ino == ino)
		unlink(path);
}

void
mlog_clean(struct mlog *l)
{
	/* Another file at the path, and beside it still the -wal and -shm
	 * this connection uses: the old log's.  SQLite would read the old
	 * log's WAL into the new file (a file moved over a live log), so
	 * they go. */
	if (l->db != NULL && mlog_moved(l) == MLOG_MOVED_LOG) {
		mlog_unlink_same(l->wal, l->wal_dev, l->wal_ino);
		mlog_unlink_same(l->shm, l->shm_dev, l->shm_ino);
	}
}

void
mlog_release(struct mlog *l)
{
	mlog_disconnect(l);
}

int
mlog_reopen(struct mlog *l)
{
	struct mlog keep;
	int rc, moved;

	if (l->db == NULL) {
		/* Released (mlog_release): open anew. */
		return mlog_connect(l);
	}
	moved = mlog_moved(l);
	if (moved == MLOG_MOVED_LOG)
		mlog_clean(l);
	else if (moved == MLOG_MOVED_WAL) {
		/* The same file with a new -wal: SQLite shares a file's
		 * -shm mapping among the connections of a process, so the
		 * old connection must go first (and the process's others to
		 * the file too: see mlog_release). */
		mlog_disconnect(l);
		return mlog_connect(l);
	}
	/* The old connection stays until the new one works: a failure
	 * leaves l as it was (with the reason in l->err). */
	keep = *l;
	memset(l->st, 0, sizeof(l->st));
	l->db = NULL;
	if ((rc = mlog_connect(l)) != MLOG_OK) {
		memcpy(keep.err, l->err, sizeof(keep.err));
		if (l->db != NULL)
			mlog_disconnect(l);
		*l = keep;
		return rc;
	}
	/* The old connection's mlog_pid_alive points at l too, which
	 * lives on: closing it is safe. */
	for (rc = 0; rc < S_COUNT; rc++)
		sqlite3_finalize(keep.st[rc]);
	sqlite3_close(keep.db);
	return MLOG_OK;
}

int64_t
mlog_gen(const struct mlog *l)
{
	return l->gen;
}

void
mlog_close(struct mlog *l)
{
	if (l == NULL)
		return;
	mlog_disconnect(l);
	free(l);
}

const char *
mlog_errmsg(const struct mlog *l)
{
	if (l == NULL)
		return "no message log open";
	return l->err[0] != '\0' ? l->err : "no error";
}

struct sqlite3 *
mlog_db(struct mlog *l)
{
	return l->db;
}

/* MLOG_OK if this connection may write, else the failure. */
static int
mlog_writable(struct mlog *l)
{
	if (l->readonly)
		return mlog_fail(l, MLOG_ERR, "the message log was opened "
		    "read-only");
	return MLOG_OK;
}

/*
 * Check a caller's channel list: n names (at least min), each valid.
 * n == 0 with min == 0 stands for every channel.
 */
static int
mlog_check_channels(struct mlog *l, const char *const *channels, int n,
    int min)
{
	int i;

	if (n < min || n > VALID_CHANNELS_MAX || (n > 0 && channels == NULL))
		return mlog_fail(l, MLOG_EINVAL, "%d channels named: %d to %d "
		    "allowed", n, min, VALID_CHANNELS_MAX);
	for (i = 0; i < n; i++)
		if (!valid_channel(channels[i]))
			return mlog_fail(l, MLOG_EINVAL, "invalid channel name "
			    "(1-%d of A-Z a-z 0-9 . _ -, not starting with "
			    "'.')", VALID_CHANNEL_MAX);
	return MLOG_OK;
}

/* Bind channels to ?1..?n and NULL to the rest of the list; n == 0 is
 * for the every-channel statements, which have no list. */
static void
mlog_bind_channels(sqlite3_stmt *st, const char *const *channels, int n)
{
	int i;

	if (n == 0)
		return;
	for (i = 0; i < VALID_CHANNELS_MAX; i++) {
		if (i < n)
			sqlite3_bind_text(st, i + 1, channels[i], -1,
			    SQLITE_STATIC);
		else
			sqlite3_bind_null(st, i + 1);
	}
}

/* Fill m from the current row of a MLOG_COLS query. */
static int
mlog_row_msg(struct mlog *l, sqlite3_stmt *st, struct store_msg *m)
{
	m->id = sqlite3_column_int64(st, 0);
	m->channel = (const char *)sqlite3_column_text(st, 1);
	m->time_ms = sqlite3_column_int64(st, 2);
	m->type = (const char *)sqlite3_column_text(st, 3);
	m->event = (const char *)sqlite3_column_text(st, 4);
	m->data = sqlite3_column_blob(st, 5);
	m->len = (size_t)sqlite3_column_bytes(st, 5);
	if (m->data == NULL)
		m->data = "";
	/* NOT NULL columns come back NULL only when SQLite ran out of
	 * memory converting them. */
	if (m->channel == NULL || m->type == NULL ||
	    (m->len > 0 && m->data == NULL))
		return mlog_fail(l, MLOG_ERR, "reading message %lld: out of "
		    "memory", (long long)m->id);
	return MLOG_OK;
}

/* Fill st from the current row of a MLOG_STAT_COLS query. */
static int
mlog_row_stat(sqlite3_stmt *st, struct store_stat *s)
{
	const char *name;

	memset(s, 0, sizeof(*s));
	name = (const char *)sqlite3_column_text(st, 0);
	if (name == NULL || strlen(name) > VALID_CHANNEL_MAX)
		return -1;
	memcpy(s->channel, name, strlen(name) + 1);
	s->last_id = sqlite3_column_int64(st, 1);
	s->last_time_ms = sqlite3_column_int64(st, 2);
	s->pruned_to = sqlite3_column_int64(st, 3);
	s->count = sqlite3_column_int64(st, 4);
	s->first_id = sqlite3_column_int64(st, 5);
	s->subscribers = sqlite3_column_int64(st, 6);
	return 0;
}

/*
 * Retention for one channel inside the caller's write transaction: keep
 * the newest `keep` (0 = all), drop what is older than cutoff_ms (0 = no
 * limit); `thorough` checks every row's time instead of the expired prefix.
 * Adds the number deleted to *deleted.  A failure rolls the transaction
 * back.
 */
static int
mlog_trim(struct mlog *l, const char *channel, long keep, int64_t cutoff_ms,
    int thorough, int64_t *deleted)
{
	sqlite3_stmt *st;

	if (keep > 0) {
		if ((st = mlog_stmt_tx(l, S_KEEP)) == NULL)
			return mlog_failed(l);
		sqlite3_bind_text(st, 1, channel, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, keep);
		if (mlog_step_done(l, st, "applying retention by count") !=
		    MLOG_OK)
			return mlog_failed(l);
		*deleted += sqlite3_changes(l->db);
	}
	if (cutoff_ms > 0) {
		if ((st = mlog_stmt_tx(l, thorough ? S_AGE_CHANNEL :
		    S_AGE_HEAD)) == NULL)
			return mlog_failed(l);
		sqlite3_bind_text(st, 1, channel, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, cutoff_ms);
		if (mlog_step_done(l, st, "applying retention by age") !=
		    MLOG_OK)
			return mlog_failed(l);
		*deleted += sqlite3_changes(l->db);
	}
	return MLOG_OK;
}

/* The time before which messages of max_age seconds have expired, or 0
 * when nothing can have (no limit, or a limit reaching before 1970). */
static int64_t
mlog_cutoff(int64_t now_ms, long max_age)
{
	if (max_age <= 0 || max_age >= now_ms / MLOG_MS_PER_S)
		return 0;
	return now_ms - (int64_t)max_age * MLOG_MS_PER_S;
}

/* Whether this append to channel (valid) must apply retention (see
 * store_trim_due).  Counts the append. */
static int
mlog_trim_due(struct mlog *l, const char *channel)
{
	return store_trim_due(&l->trim, l->retain_count, l->retain_age,
	    channel);
}

/*
 * One append (arguments checked by mlog_append) in a write transaction,
 * with the path checked under the write lock before the commit (nothing
 * is committed then: MLOG_EMOVED, *id untouched) and again after it
 * (MLOG_EMOVED with *id set: the message went into a file the path no
 * longer names).  The check is one stat(); BEGIN and COMMIT around a
 * lone INSERT add no I/O to its autocommit form, only two steps.
 */
static int
mlog_append_once(struct mlog *l, const char *channel, const char *type,
    const char *event, const void *data, size_t len, int64_t *id,
    int *committed)
{
	sqlite3_stmt *st;
	int64_t now, nid, dropped = 0;
	int trim;

	now = mlog_now_ms();
	trim = mlog_trim_due(l, channel);
	if (mlog_begin(l, 1) != MLOG_OK)
		return mlog_failed(l);
	if ((st = mlog_stmt_tx(l, S_INSERT)) == NULL)
		return mlog_failed(l);
	sqlite3_bind_text(st, 1, channel, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now);
	sqlite3_bind_text(st, 3, type != NULL ? type : MLOG_DEFAULT_TYPE, -1,
	    SQLITE_STATIC);
	if (event != NULL)
		sqlite3_bind_text(st, 4, event, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 4);
	sqlite3_bind_blob(st, 5, len > 0 ? data : "", (int)len,
	    SQLITE_STATIC);
	if (mlog_step_done(l, st, "appending a message") != MLOG_OK)
		return mlog_failed(l);
	nid = sqlite3_last_insert_rowid(l->db);
	if (trim && mlog_trim(l, channel, l->retain_count,
	    mlog_cutoff(now, l->retain_age), 0, &dropped) != MLOG_OK) {
		l->trim.channel[0] = '\0';  /* trim again next time */
		return mlog_failed(l);
	}
	/* Under the write lock: whoever replaced the file did it before
	 * this point or will be seen by the check after the commit. */
	if (mlog_moved(l)) {
		mlog_rollback(l);
		l->trim.channel[0] = '\0';
		return mlog_fail(l, MLOG_EMOVED, "%s is no longer the file "
		    "this process has open (the log was removed or replaced)",
		    l->path);
	}
	if (mlog_commit(l, "committing a message") != MLOG_OK) {
		l->trim.channel[0] = '\0';
		return mlog_failed(l);
	}
	*committed = 1;
	if (id != NULL)
		*id = nid;
	if (mlog_moved(l))
		return mlog_fail(l, MLOG_EMOVED, "%s was removed or replaced "
		    "while message %lld was committed: it may not be in the "
		    "log there", l->path, (long long)nid);
	return MLOG_OK;
}

int
mlog_append(struct mlog *l, const char *channel, const char *type,
    const char *event, const void *data, size_t len, int64_t *id)
{
	size_t cap;
	int rc, committed = 0;

	if (mlog_writable(l) != MLOG_OK)
		return mlog_failed(l);
	if (mlog_check_channels(l, &channel, 1, 1) != MLOG_OK)
		return MLOG_EINVAL;
	if (type != NULL && !valid_type(type))
		return mlog_fail(l, MLOG_EINVAL, "invalid media type (type/"
		    "subtype and parameters, printable ASCII, at most %d "
		    "bytes)", VALID_TYPE_MAX);
	if (event != NULL && !valid_event(event))
		return mlog_fail(l, MLOG_EINVAL, "invalid event name (1-%d of "
		    "A-Z a-z 0-9 . _ : -)", VALID_EVENT_MAX);
	if (data == NULL && len > 0)
		return mlog_fail(l, MLOG_EINVAL, "no data for %zu bytes", len);
	/* SQLite takes a blob's length as an int. */
	cap = l->max_data > 0 && (unsigned long)l->max_data < INT_MAX ?
	    (size_t)l->max_data : INT_MAX;
	if (len > cap)
		return mlog_fail(l, MLOG_E2BIG, "message of %zu bytes is over "
		    "the %zu-byte limit", len, cap);
	rc = mlog_append_once(l, channel, type, event, data, len, id,
	    &committed);
	/* Nothing was committed: with MLOG_RELOG, once more in the file
	 * the path names now. */
	if (rc == MLOG_EMOVED && !committed && (l->flags & MLOG_RELOG) &&
	    mlog_reopen(l) == MLOG_OK)
		rc = mlog_append_once(l, channel, type, event, data, len, id,
		    &committed);
	return rc;
}

int
mlog_last_id(struct mlog *l, int64_t *id)
{
	sqlite3_stmt *st;
	int rc;

	if ((st = mlog_stmt(l, S_LAST_ID)) == NULL)
		return mlog_failed(l);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*id = sqlite3_column_int64(st, 0);
	else if (rc == SQLITE_DONE)
		*id = 0;
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		mlog_fail(l, mlog_code(l), "reading the last id: %s",
		    sqlite3_errmsg(l->db));
		mlog_done(st);
		return mlog_failed(l);
	}
	mlog_done(st);
	return MLOG_OK;
}

/* On failure this says "changed": the caller then looks, which costs a
 * query, while "unchanged" could cost a lost message. */
int
mlog_changed(struct mlog *l)
{
	sqlite3_stmt *st;
	int64_t v;
	int changed = 1;

	if ((st = mlog_stmt(l, S_DATA_VERSION)) == NULL)
		return 1;
	if (sqlite3_step(st) == SQLITE_ROW) {
		v = sqlite3_column_int64(st, 0);
		changed = v != l->data_version;
		l->data_version = v;
	} else
		mlog_fail(l, mlog_code(l), "reading data_version: %s",
		    sqlite3_errmsg(l->db));
	mlog_done(st);
	return changed;
}

int
mlog_read(struct mlog *l, const char *const *channels, int n,
    int64_t after, int limit, store_cb cb, void *arg, int64_t *gap,
    int64_t *last)
{
	struct store_msg m;
	sqlite3_stmt *st;
	int64_t pos = after, pruned = 0, seq = 0;
	int rc, step, ret = MLOG_OK, reset = 0;

	if (mlog_check_channels(l, channels, n, 0) != MLOG_OK)
		return MLOG_EINVAL;
	if (limit <= 0 || cb == NULL)
		return mlog_fail(l, MLOG_EINVAL, "reading needs a callback and "
		    "a positive limit");
	if (limit > MLOG_READ_MAX)
		limit = MLOG_READ_MAX;

	/* One snapshot for the rows and the gap, so that a prune between
	 * the two can neither hide a gap nor invent one. */
	if (mlog_begin(l, 0) != MLOG_OK)
		return mlog_failed(l);
	/* The cursor rule (mlog.h): a cursor above every id this log has
	 * given belongs to another log, and reads start at its beginning. */
	if (after > 0) {
		if ((st = mlog_stmt(l, S_LAST_ID)) == NULL) {
			mlog_rollback(l);
			return mlog_failed(l);
		}
		step = sqlite3_step(st);
		if (step == SQLITE_ROW)
			seq = sqlite3_column_int64(st, 0);
		else if (step != SQLITE_DONE)
			return mlog_sqlfail(l, "reading the last id");
		mlog_done(st);
		if (after > seq) {
			after = 0;
			pos = 0;
			reset = 1;
		}
	}
	if ((st = mlog_stmt(l, n > 0 ? S_READ : S_READ_ALL)) == NULL) {
		mlog_rollback(l);
		return mlog_failed(l);
	}
	mlog_bind_channels(st, channels, n);
	sqlite3_bind_int64(st, MLOG_I_AFTER, after);
	sqlite3_bind_int64(st, MLOG_I_LIMIT, limit);
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if ((rc = mlog_row_msg(l, st, &m)) != MLOG_OK) {
			ret = rc;
			break;
		}
		if ((rc = cb(arg, &m)) != 0) {
			pos = m.id;
			ret = rc;
			break;
		}
		pos = m.id;
	}
	if (ret == MLOG_OK && step != SQLITE_DONE)
		ret = mlog_fail(l, mlog_code(l), "reading messages: %s",
		    sqlite3_errmsg(l->db));
	mlog_done(st);

	if (ret == MLOG_OK && gap != NULL) {
		if ((st = mlog_stmt(l, n > 0 ? S_GAP : S_GAP_ALL)) == NULL)
			ret = MLOG_ERR;
		else {
			mlog_bind_channels(st, channels, n);
			step = sqlite3_step(st);
			if (step == SQLITE_ROW)
				pruned = sqlite3_column_int64(st, 0);
			else
				ret = mlog_fail(l, mlog_code(l), "reading the "
				    "pruned ids: %s", sqlite3_errmsg(l->db));
			mlog_done(st);
		}
	}
	/* Nothing was written: COMMIT only ends the snapshot. */
	if (mlog_commit(l, "ending a read") != MLOG_OK && ret == MLOG_OK)
		ret = MLOG_ERR;
	if (gap != NULL)
		*gap = reset ? MLOG_GAP_RESET : pruned > after ? pruned : 0;
	if (last != NULL)
		*last = pos;
	return ret;
}

int
mlog_latest(struct mlog *l, const char *const *channels, int n, int count,
    store_cb cb, void *arg)
{
	struct store_msg m;
	sqlite3_stmt *st;
	int rc, step, ret = MLOG_OK;

	if (mlog_check_channels(l, channels, n, 0) != MLOG_OK)
		return MLOG_EINVAL;
	if (cb == NULL)
		return mlog_fail(l, MLOG_EINVAL, "reading needs a callback");
	if (count <= 0)
		return MLOG_OK;
	if (count > MLOG_READ_MAX)
		count = MLOG_READ_MAX;
	if ((st = mlog_stmt(l, n > 0 ? S_LATEST : S_LATEST_ALL)) == NULL)
		return mlog_failed(l);
	mlog_bind_channels(st, channels, n);
	sqlite3_bind_int(st, MLOG_I_LIMIT, count);
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if ((rc = mlog_row_msg(l, st, &m)) != MLOG_OK ||
		    (rc = cb(arg, &m)) != 0) {
			ret = rc;
			break;
		}
	}
	if (ret == MLOG_OK && step != SQLITE_DONE)
		ret = mlog_fail(l, mlog_code(l), "reading the latest messages: "
		    "%s", sqlite3_errmsg(l->db));
	mlog_done(st);
	return ret;
}

int
mlog_stat(struct mlog *l, const char *channel, struct store_stat *s)
{
	sqlite3_stmt *st;
	int step, ret = MLOG_OK;

	if (mlog_check_channels(l, &channel, 1, 1) != MLOG_OK)
		return MLOG_EINVAL;
	/* Counting skips dead streams anyway; reaping only tidies up. */
	mlog_memo_clear(l);
	if (!l->readonly)
		mlog_reap_dead(l);
	if ((st = mlog_stmt(l, S_STAT)) == NULL)
		return mlog_failed(l);
	sqlite3_bind_text(st, 1, channel, -1, SQLITE_STATIC);
	step = sqlite3_step(st);
	if (step == SQLITE_ROW) {
		if (mlog_row_stat(st, s) != 0)
			ret = mlog_fail(l, MLOG_ERR, "reading channel %s: out "
			    "of memory", channel);
	} else if (step == SQLITE_DONE)
		ret = mlog_fail(l, MLOG_ENOENT, "no channel \"%s\"", channel);
	else
		ret = mlog_fail(l, mlog_code(l), "reading channel %s: %s",
		    channel, sqlite3_errmsg(l->db));
	mlog_done(st);
	return ret;
}

int
mlog_subscribers(struct mlog *l, const char *channel, int64_t *n)
{
	sqlite3_stmt *st;
	int ret = MLOG_OK;

	if (mlog_check_channels(l, &channel, 1, 1) != MLOG_OK)
		return MLOG_EINVAL;
	mlog_memo_clear(l);
	if ((st = mlog_stmt(l, S_SUBSCRIBERS)) == NULL)
		return mlog_failed(l);
	sqlite3_bind_text(st, 1, channel, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		*n = sqlite3_column_int64(st, 0);
	else
		ret = mlog_fail(l, mlog_code(l), "counting subscribers of %s: "
		    "%s", channel, sqlite3_errmsg(l->db));
	mlog_done(st);
	return ret;
}

int
mlog_stats(struct mlog *l, int (*cb)(void *, const struct store_stat *),
    void *arg)
{
	struct store_stat s;
	sqlite3_stmt *st;
	int step, rc, ret = MLOG_OK;

	if (cb == NULL)
		return mlog_fail(l, MLOG_EINVAL, "stats need a callback");
	mlog_memo_clear(l);
	if (!l->readonly)
		mlog_reap_dead(l);
	if ((st = mlog_stmt(l, S_STATS)) == NULL)
		return mlog_failed(l);
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		/* A name too long for the struct can only come from a hand
		 * edit of the channels table: skip it. */
		if (mlog_row_stat(st, &s) != 0)
			continue;
		if ((rc = cb(arg, &s)) != 0) {
			ret = rc;
			break;
		}
	}
	if (ret == MLOG_OK && step != SQLITE_DONE)
		ret = mlog_fail(l, mlog_code(l), "reading channels: %s",
		    sqlite3_errmsg(l->db));
	mlog_done(st);
	return ret;
}

/* mlog_prune() of every channel but '.control' (which keeps its own
 * retention), inside the caller's write transaction, which is rolled back
 * on failure. */
static int
mlog_prune_all(struct mlog *l, long keep, int64_t cutoff, int64_t *n)
{
	sqlite3_stmt *st;
	const char *col;
	char *name = NULL, *next;
	int step, rc = MLOG_OK;

	/* By count, one channel at a time, looking the next name up afresh
	 * each time: no cursor stays open on channels while the delete
	 * trigger updates it. */
	while (keep > 0 && rc == MLOG_OK) {
		if ((st = mlog_stmt(l, S_CHANNEL_NEXT)) == NULL) {
			rc = mlog_failed(l);
			break;
		}
		sqlite3_bind_text(st, 1, name != NULL ? name : "", -1,
		    SQLITE_STATIC);
		step = sqlite3_step(st);
		next = NULL;
		if (step == SQLITE_ROW) {
			col = (const char *)sqlite3_column_text(st, 0);
			if (col == NULL || (next = strdup(col)) == NULL)
				rc = mlog_fail(l, MLOG_ERR, "listing channels: "
				    "out of memory");
		} else if (step != SQLITE_DONE)
			rc = mlog_fail(l, mlog_code(l), "listing channels: %s",
			    sqlite3_errmsg(l->db));
		mlog_done(st);
		free(name);
		if ((name = next) == NULL)
			break;
		rc = mlog_trim(l, name, keep, 0, 1, n);
	}
	free(name);
	if (rc == MLOG_OK && cutoff > 0) {
		if ((st = mlog_stmt(l, S_AGE_ALL)) == NULL)
			rc = mlog_failed(l);
		else {
			sqlite3_bind_int64(st, 1, cutoff);
			if (sqlite3_step(st) != SQLITE_DONE)
				rc = mlog_sqlfail(l, "pruning by age");
			else
				*n += sqlite3_changes(l->db);
			mlog_done(st);
		}
	}
	if (rc != MLOG_OK)
		mlog_rollback(l);
	return rc;
}

int
mlog_prune(struct mlog *l, const char *channel, long keep_count,
    long max_age, int64_t *deleted)
{
	int64_t cutoff, n = 0;

	if (mlog_writable(l) != MLOG_OK)
		return mlog_failed(l);
	if (channel != NULL && mlog_check_channels(l, &channel, 1, 1) !=
	    MLOG_OK)
		return MLOG_EINVAL;
	if (keep_count < 0 || max_age < 0)
		return mlog_fail(l, MLOG_EINVAL, "retention limits must not "
		    "be negative");
	cutoff = mlog_cutoff(mlog_now_ms(), max_age);
	if (mlog_begin(l, 1) != MLOG_OK)
		return mlog_failed(l);
	if (channel != NULL) {
		if (mlog_trim(l, channel, keep_count, cutoff, 1, &n) !=
		    MLOG_OK)
			return mlog_failed(l);
	} else if (mlog_prune_all(l, keep_count, cutoff, &n) != MLOG_OK)
		return mlog_failed(l);
	if (mlog_commit(l, "committing a prune") != MLOG_OK)
		return mlog_failed(l);
	if (deleted != NULL)
		*deleted = n;
	return MLOG_OK;
}

int
mlog_remove(struct mlog *l, const char *channel, int64_t *deleted)
{
	sqlite3_stmt *st;
	int64_t n;
	int rows;

	if (mlog_writable(l) != MLOG_OK)
		return mlog_failed(l);
	if (mlog_check_channels(l, &channel, 1, 1) != MLOG_OK)
		return MLOG_EINVAL;
	if (mlog_begin(l, 1) != MLOG_OK)
		return mlog_failed(l);
	if ((st = mlog_stmt_tx(l, S_REMOVE_MESSAGES)) == NULL)
		return mlog_failed(l);
	sqlite3_bind_text(st, 1, channel, -1, SQLITE_STATIC);
	if (mlog_step_done(l, st, "removing messages") != MLOG_OK)
		return mlog_failed(l);
	n = sqlite3_changes(l->db);
	if ((st = mlog_stmt_tx(l, S_REMOVE_CHANNEL)) == NULL)
		return mlog_failed(l);
	sqlite3_bind_text(st, 1, channel, -1, SQLITE_STATIC);
	if (mlog_step_done(l, st, "removing a channel") != MLOG_OK)
		return mlog_failed(l);
	rows = sqlite3_changes(l->db);
	if (n == 0 && rows == 0) {
		mlog_rollback(l);
		return mlog_fail(l, MLOG_ENOENT, "no channel \"%s\"", channel);
	}
	if (mlog_commit(l, "committing a removal") != MLOG_OK)
		return mlog_failed(l);
	if (deleted != NULL)
		*deleted = n;
	return MLOG_OK;
}

/* A stream's secret: printable ASCII without spaces, capped. */
static int
mlog_valid_secret(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (i >= MLOG_SECRET_MAX || s[i] <= ' ' || s[i] > '~')
			return 0;
	return 1;
}

int
mlog_stream_open(struct mlog *l, const char *const *channels, int n,
    pid_t pid, const char *secret, int64_t *stream)
{
	sqlite3_stmt *st;
	int64_t sid;
	int i;

	if (mlog_writable(l) != MLOG_OK)
		return mlog_failed(l);
	if (mlog_check_channels(l, channels, n, 1) != MLOG_OK)
		return MLOG_EINVAL;
	if (pid <= 0)
		return mlog_fail(l, MLOG_EINVAL, "stream pid %ld is not a "
		    "process", (long)pid);
	if (secret != NULL && !mlog_valid_secret(secret))
		return mlog_fail(l, MLOG_EINVAL, "invalid stream secret "
		    "(printable ASCII without spaces, at most %d bytes)",
		    MLOG_SECRET_MAX);
	if (mlog_begin(l, 1) != MLOG_OK)
		return mlog_failed(l);
	if ((st = mlog_stmt_tx(l, S_STREAM_ADD)) == NULL)
		return mlog_failed(l);
	sqlite3_bind_int64(st, 1, pid);
	sqlite3_bind_int64(st, 2, mlog_now_ms());
	if (secret != NULL)
		sqlite3_bind_text(st, 3, secret, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 3);
	if (mlog_step_done(l, st, "registering a stream") != MLOG_OK)
		return mlog_failed(l);
	sid = sqlite3_last_insert_rowid(l->db);
	for (i = 0; i < n; i++) {
		if ((st = mlog_stmt_tx(l, S_SUBSCRIBE)) == NULL)
			return mlog_failed(l);
		sqlite3_bind_int64(st, 1, sid);
		sqlite3_bind_text(st, 2, channels[i], -1, SQLITE_STATIC);
		if (mlog_step_done(l, st, "registering a subscription") !=
		    MLOG_OK)
			return mlog_failed(l);
	}
	if (mlog_commit(l, "committing a stream") != MLOG_OK)
		return mlog_failed(l);
	if (stream != NULL)
		*stream = sid;
	return MLOG_OK;
}

int
mlog_stream_close(struct mlog *l, int64_t stream)
{
	sqlite3_stmt *st;
	int rc = MLOG_OK;

	if (mlog_writable(l) != MLOG_OK)
		return mlog_failed(l);
	if ((st = mlog_stmt(l, S_STREAM_DEL)) == NULL)
		return mlog_failed(l);
	/* One statement: its subscriptions go with it by ON DELETE
	 * CASCADE, atomically, without an explicit transaction. */
	sqlite3_bind_int64(st, 1, stream);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = mlog_fail(l, mlog_code(l), "closing stream %lld: %s",
		    (long long)stream, sqlite3_errmsg(l->db));
	else if (sqlite3_changes(l->db) == 0)
		rc = mlog_fail(l, MLOG_ENOENT, "no stream %lld",
		    (long long)stream);
	mlog_done(st);
	return rc;
}

int
mlog_stream_info(struct mlog *l, int64_t stream, pid_t *pid, char *secret,
    size_t secretlen)
{
	sqlite3_stmt *st;
	const char *s;
	int step, rc = MLOG_OK;

	if ((st = mlog_stmt(l, S_STREAM_GET)) == NULL)
		return mlog_failed(l);
	sqlite3_bind_int64(st, 1, stream);
	step = sqlite3_step(st);
	if (step == SQLITE_ROW) {
		if (pid != NULL)
			*pid = (pid_t)sqlite3_column_int64(st, 0);
		s = (const char *)sqlite3_column_text(st, 1);
		if (s == NULL)
			s = "";
		if (secret != NULL && secretlen > 0 &&
		    (size_t)snprintf(secret, secretlen, "%s", s) >= secretlen)
			rc = mlog_fail(l, MLOG_EINVAL, "stream %lld: secret "
			    "longer than the buffer", (long long)stream);
	} else if (step == SQLITE_DONE)
		rc = mlog_fail(l, MLOG_ENOENT, "no stream %lld",
		    (long long)stream);
	else
		rc = mlog_fail(l, mlog_code(l), "reading stream %lld: %s",
		    (long long)stream, sqlite3_errmsg(l->db));
	mlog_done(st);
	return rc;
}

/* Look first (a read, microseconds) and write only if some stream's
 * process is gone: counting calls this often, and dead streams are rare. */
int
mlog_reap(struct mlog *l)
{
	mlog_memo_clear(l);
	return mlog_reap_dead(l);
}

/* mlog_reap() with the pids remembered so far (see mlog_memo_clear). */
static int
mlog_reap_dead(struct mlog *l)
{
	sqlite3_stmt *st;
	int step, rc = MLOG_OK;

	if (mlog_writable(l) != MLOG_OK)
		return mlog_failed(l);
	if ((st = mlog_stmt(l, S_DEAD_ANY)) == NULL)
		return mlog_failed(l);
	step = sqlite3_step(st);
	if (step != SQLITE_ROW && step != SQLITE_DONE)
		rc = mlog_fail(l, mlog_code(l), "looking for dead streams: %s",
		    sqlite3_errmsg(l->db));
	mlog_done(st);
	if (step != SQLITE_ROW)
		return rc;
	if ((st = mlog_stmt(l, S_REAP)) == NULL)
		return mlog_failed(l);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = mlog_fail(l, mlog_code(l), "removing dead streams: %s",
		    sqlite3_errmsg(l->db));
	mlog_done(st);
	return rc;
}

/*
 * Append one control request (data: a NUL-terminated request text) and
 * apply the control channel's retention, in one write transaction.
 */
static int
mlog_control_append(struct mlog *l, const char *data, int64_t *id)
{
	sqlite3_stmt *st;
	int64_t now, nid;

	if (mlog_writable(l) != MLOG_OK)
		return mlog_failed(l);
	now = mlog_now_ms();
	if (mlog_begin(l, 1) != MLOG_OK)
		return mlog_failed(l);
	if ((st = mlog_stmt_tx(l, S_CONTROL_INSERT)) == NULL)
		return mlog_failed(l);
	sqlite3_bind_int64(st, 1, now);
	sqlite3_bind_blob(st, 2, data, (int)strlen(data), SQLITE_STATIC);
	if (mlog_step_done(l, st, "appending a control request") != MLOG_OK)
		return mlog_failed(l);
	nid = sqlite3_last_insert_rowid(l->db);
	if ((st = mlog_stmt_tx(l, S_CONTROL_TRIM)) == NULL)
		return mlog_failed(l);
	sqlite3_bind_int64(st, 1, mlog_cutoff(now, MLOG_CONTROL_AGE));
	sqlite3_bind_int64(st, 2, MLOG_CONTROL_KEEP);
	if (mlog_step_done(l, st, "pruning control requests") != MLOG_OK)
		return mlog_failed(l);
	if (mlog_commit(l, "committing a control request") != MLOG_OK)
		return mlog_failed(l);
	if (id != NULL)
		*id = nid;
	return MLOG_OK;
}

int
mlog_control_end_stream_id(struct mlog *l, int64_t stream, int64_t *id)
{
	char data[MLOG_CONTROL_MAX];

	if (stream < 1)
		return mlog_fail(l, MLOG_EINVAL, "stream %lld is not a stream "
		    "id", (long long)stream);
	snprintf(data, sizeof(data), MLOG_CONTROL_STREAM "%lld",
	    (long long)stream);
	return mlog_control_append(l, data, id);
}

int
mlog_control_end_stream(struct mlog *l, int64_t stream)
{
	return mlog_control_end_stream_id(l, stream, NULL);
}

int
mlog_control_end_channel_id(struct mlog *l, const char *channel,
    int64_t *id)
{
	char data[MLOG_CONTROL_MAX];

	if (mlog_check_channels(l, &channel, 1, 1) != MLOG_OK)
		return MLOG_EINVAL;
	snprintf(data, sizeof(data), MLOG_CONTROL_CHANNEL "%s", channel);
	return mlog_control_append(l, data, id);
}

int
mlog_control_end_channel(struct mlog *l, const char *channel)
{
	return mlog_control_end_channel_id(l, channel, NULL);
}

int
mlog_control_read(struct mlog *l, int64_t after, int64_t upto, int limit,
    store_cb cb, void *arg, int64_t *last)
{
	struct store_msg m;
	sqlite3_stmt *st;
	int64_t pos = after;
	int rc, step, ret = MLOG_OK;

	if (limit <= 0 || cb == NULL)
		return mlog_fail(l, MLOG_EINVAL, "reading needs a callback and "
		    "a positive limit");
	if (limit > MLOG_READ_MAX)
		limit = MLOG_READ_MAX;
	if ((st = mlog_stmt(l, S_CONTROL_READ)) == NULL)
		return mlog_failed(l);
	sqlite3_bind_int64(st, 1, after);
	sqlite3_bind_int64(st, 2, upto);
	sqlite3_bind_int(st, 3, limit);
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if ((rc = mlog_row_msg(l, st, &m)) != MLOG_OK) {
			ret = rc;
			break;
		}
		pos = m.id;
		if ((rc = cb(arg, &m)) != 0) {
			ret = rc;
			break;
		}
	}
	if (ret == MLOG_OK && step != SQLITE_DONE)
		ret = mlog_fail(l, mlog_code(l), "reading control requests: %s",
		    sqlite3_errmsg(l->db));
	mlog_done(st);
	if (last != NULL)
		*last = pos;
	return ret;
}

