/*
 * pglog: the message log in PostgreSQL (see pglog.h for the schema and the
 * contract; the semantics are mlog.h's).
 *
 * Every statement is prepared once per connection, on first use, with a
 * fixed text; every value is a parameter (text format, the message data
 * binary), every result comes back in binary format.  pglog's own
 * statements run in READ COMMITTED with lock_timeout PGLOG_LOCK_MS, set
 * once per connection.
 */
#include "config.h"

#include <endian.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "pglog.h"
#include "pqdl.h"
#include "valid.h"

#define PGLOG_ERRMSG_MAX 768   /* bytes in the last failure's reason */
#define PGLOG_SECRET_MAX CONF_TOKEN_MAX /* bytes in a stream's secret */
#define PGLOG_INT_MAX    24    /* bytes of an int64 in decimal, with NUL */
#define PGLOG_ID_DIGITS  19    /* digits in an int64 id */
#define PGLOG_PARAMS_MAX 4     /* parameters of one statement */
#define PGLOG_REAP_MAX   1024  /* local pids one pglog_reap() looks at */
#define PGLOG_BOOT_ID    "/proc/sys/kernel/random/boot_id"
#define PGLOG_BOOT_MAX   64    /* bytes of the boot id read */
#define PGLOG_MS_PER_S   1000
/* A channel list as an array literal: '{', then per name '"' NAME '",'. */
#define PGLOG_LIST_MAX   (2 + VALID_CHANNELS_MAX * (VALID_CHANNEL_MAX + 3))

#define PGLOG_STR(x)  #x
#define PGLOG_XSTR(x) PGLOG_STR(x)
#define PGLOG_Q_CONTROL "'" MLOG_CONTROL "'"  /* as an SQL literal */
#define PGLOG_CONTROL_TYPE "text/plain"
#define PGLOG_CONTROL_STREAM "end-stream "    /* as mlog.c's */
#define PGLOG_CONTROL_CHANNEL "end-channel "

/*
 * The schema, version 1, created in one transaction under the advisory
 * lock.  The CHECKs are valid.c's allow-lists, written as mlog.c's
 * schema writes them; channel is COLLATE "C" so that names compare and
 * sort by bytes, as in SQLite, whatever the database's collation, and
 * the regular expressions are matched under "C" too.
 *
 * messages_before_insert takes the id from counter (the ordering rule of
 * pglog.h) and makes sure the channel has its row; it runs before the
 * CHECKs, whose failure rolls both back with the insert.  The functions
 * pin their search_path to the schema's at creation, so a publisher with
 * another search_path still updates these tables.
 */
static const char pglog_schema_sql[] =
"CREATE FUNCTION pushcgi_now_ms() RETURNS bigint LANGUAGE sql VOLATILE"
"  AS $$SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint$$;"
"CREATE TABLE schema_version("
"  one boolean PRIMARY KEY DEFAULT true CHECK (one),"
"  version integer NOT NULL);"
"CREATE TABLE counter("
"  one boolean PRIMARY KEY DEFAULT true CHECK (one),"
"  n bigint NOT NULL CHECK (n >= 0));"
"INSERT INTO counter(n) VALUES(0);"
"CREATE TABLE messages("
"  id bigint PRIMARY KEY,"
"  channel text COLLATE \"C\" NOT NULL CHECK (length(channel) BETWEEN 1"
"    AND " PGLOG_XSTR(VALID_CHANNEL_MAX)
"    AND channel ~ '^[A-Za-z0-9._-]+$'"
"    AND (channel !~ '^[.]' OR channel = " PGLOG_Q_CONTROL ")),"
"  time bigint NOT NULL DEFAULT pushcgi_now_ms(),"
"  type text COLLATE \"C\" NOT NULL DEFAULT '" MLOG_DEFAULT_TYPE "'"
"    CHECK (length(type) BETWEEN 1 AND " PGLOG_XSTR(VALID_TYPE_MAX)
"    AND type ~ '^[ -~]+$'),"
"  event text COLLATE \"C\" CHECK (event IS NULL OR (length(event) BETWEEN 1"
"    AND " PGLOG_XSTR(VALID_EVENT_MAX)
"    AND event ~ '^[A-Za-z0-9._:-]+$')),"
"  data bytea NOT NULL DEFAULT '');"
"CREATE INDEX messages_channel_id ON messages(channel, id);"
"CREATE TABLE channels("
"  name text COLLATE \"C\" PRIMARY KEY,"
"  last_id bigint NOT NULL DEFAULT 0,"
"  last_time bigint NOT NULL DEFAULT 0,"
"  pruned_to bigint NOT NULL DEFAULT 0);"
"CREATE TABLE streams("
"  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
"  host text NOT NULL,"
"  pid integer NOT NULL,"
"  started bigint NOT NULL,"
"  secret text,"
"  seen bigint NOT NULL);"
"CREATE INDEX streams_host_pid ON streams(host, pid);"
"CREATE TABLE subscriptions("
"  stream bigint NOT NULL REFERENCES streams(id) ON DELETE CASCADE,"
"  channel text COLLATE \"C\" NOT NULL,"
"  PRIMARY KEY(stream, channel));"
"CREATE INDEX subscriptions_channel ON subscriptions(channel);"
"CREATE FUNCTION messages_before_insert() RETURNS trigger LANGUAGE plpgsql"
"  SET search_path FROM CURRENT AS $$"
"BEGIN"
"  UPDATE counter SET n = n + 1 RETURNING n INTO NEW.id;"
"  INSERT INTO channels(name) VALUES(NEW.channel) ON CONFLICT DO NOTHING;"
"  RETURN NEW;"
"END $$;"
"CREATE TRIGGER messages_insert BEFORE INSERT ON messages"
"  FOR EACH ROW EXECUTE FUNCTION messages_before_insert();"
/* One NOTIFY per inserting statement, its payload the last id then; the
 * server delivers them at commit (and folds equal ones). */
"CREATE FUNCTION messages_after_insert() RETURNS trigger LANGUAGE plpgsql"
"  SET search_path FROM CURRENT AS $$"
"BEGIN"
"  PERFORM pg_notify('" PGLOG_NOTIFY "', (SELECT n FROM counter)::text);"
"  RETURN NULL;"
"END $$;"
"CREATE TRIGGER messages_notify AFTER INSERT ON messages"
"  FOR EACH STATEMENT EXECUTE FUNCTION messages_after_insert();"
"CREATE FUNCTION messages_after_delete() RETURNS trigger LANGUAGE plpgsql"
"  SET search_path FROM CURRENT AS $$"
"BEGIN"
"  UPDATE channels SET pruned_to = OLD.id, last_id = OLD.id,"
"    last_time = OLD.time WHERE name = OLD.channel AND pruned_to < OLD.id;"
"  RETURN NULL;"
"END $$;"
"CREATE TRIGGER messages_delete AFTER DELETE ON messages"
"  FOR EACH ROW EXECUTE FUNCTION messages_after_delete();"
"CREATE FUNCTION messages_before_update() RETURNS trigger LANGUAGE plpgsql"
"  AS $$"
"BEGIN"
"  RAISE EXCEPTION 'a message''s id and channel cannot change'"
"    USING ERRCODE = 'check_violation';"
"END $$;"
"CREATE TRIGGER messages_update BEFORE UPDATE OF id, channel ON messages"
"  FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id"
"    OR OLD.channel IS DISTINCT FROM NEW.channel)"
"  EXECUTE FUNCTION messages_before_update();"
"INSERT INTO schema_version(version) VALUES("
    PGLOG_XSTR(PGLOG_SCHEMA_VERSION) ");";

/* Once per connection (pglog_setup). */
static const char pglog_session[] =
"SET lock_timeout = " PGLOG_XSTR(PGLOG_LOCK_MS) ";"
"SET default_transaction_isolation = 'read committed';"
"SET client_min_messages = warning";

enum pglog_sid {
	S_INSERT,
	S_KEEP,
	S_AGE_HEAD,
	S_AGE_CHANNEL,
	S_AGE_ALL,
	S_KEEP_ALL,
	S_LAST_ID,
	S_READ,
	S_READ_ALL,
	S_LATEST,
	S_LATEST_ALL,
	S_STAT,
	S_STATS,
	S_SUBSCRIBERS,
	S_REMOVE_MESSAGES,
	S_REMOVE_CHANNEL,
	S_STREAM_ADD,
	S_STREAM_DEL,
	S_STREAM_GET,
	S_REAP_LOOK,
	S_REAP,
	S_TOUCH,
	S_CONTROL_INSERT,
	S_CONTROL_TRIM,
	S_CONTROL_READ,
	S_COUNT
};

#define PGLOG_COLS "id, channel, time, type, event, data"
#define PGLOG_LIVE_SUBS(name, lease) \
	"(SELECT count(*) FROM subscriptions s JOIN streams t" \
	" ON t.id = s.stream WHERE s.channel = " name \
	" AND t.seen >= pushcgi_now_ms() - " lease "::bigint)"
#define PGLOG_STAT_COLS(lease) \
	"c.name, greatest(c.last_id, coalesce((SELECT max(id) FROM messages" \
	" WHERE channel = c.name), 0))," \
	" coalesce((SELECT time FROM messages WHERE channel = c.name" \
	" ORDER BY id DESC LIMIT 1), c.last_time), c.pruned_to," \
	" (SELECT count(*) FROM messages WHERE channel = c.name)," \
	" coalesce((SELECT min(id) FROM messages WHERE channel = c.name), 0)," \
	" " PGLOG_LIVE_SUBS("c.name", lease)
/* The cursor rule (mlog.h) inside the read: above counter.n, from 0. */
#define PGLOG_FROM(after) \
	"CASE WHEN " after "::bigint > c.n THEN 0 ELSE " after "::bigint END"

static const char *const pglog_sql[S_COUNT] = {
	[S_INSERT] = "INSERT INTO messages(channel, type, event, data)"
	    " VALUES($1, $2, $3, $4) RETURNING id",
	[S_KEEP] = "DELETE FROM messages WHERE channel = $1 AND id <="
	    " (SELECT id FROM messages WHERE channel = $1"
	    " ORDER BY id DESC LIMIT 1 OFFSET $2)",
	/* Times grow with ids (the server's clock): the expired rows are a
	 * prefix of the channel, as in mlog.c. */
	[S_AGE_HEAD] = "DELETE FROM messages WHERE channel = $1 AND id <"
	    " (SELECT id FROM messages WHERE channel = $1 AND time >="
	    " pushcgi_now_ms() - $2::bigint * 1000 ORDER BY id LIMIT 1)",
	[S_AGE_CHANNEL] = "DELETE FROM messages WHERE channel = $1"
	    " AND time < pushcgi_now_ms() - $2::bigint * 1000",
	[S_AGE_ALL] = "DELETE FROM messages WHERE time < pushcgi_now_ms()"
	    " - $1::bigint * 1000 AND channel <> " PGLOG_Q_CONTROL,
	[S_KEEP_ALL] = "DELETE FROM messages WHERE id IN (SELECT id FROM"
	    " (SELECT id, row_number() OVER (PARTITION BY channel"
	    " ORDER BY id DESC) AS r FROM messages WHERE channel <> "
	    PGLOG_Q_CONTROL ") k WHERE r > $1)",
	[S_LAST_ID] = "SELECT n FROM counter",
	/* Rows, gap and last id in one statement: one snapshot. */
	[S_READ] = "SELECT c.n, (SELECT coalesce(max(pruned_to), 0) FROM"
	    " channels WHERE name = ANY($1::text[])), m.* FROM counter c"
	    " LEFT JOIN LATERAL (SELECT " PGLOG_COLS " FROM messages"
	    " WHERE id > " PGLOG_FROM("$2") " AND channel = ANY($1::text[])"
	    " ORDER BY id LIMIT $3) m ON true ORDER BY m.id",
	/* "Every channel" never includes the control channel. */
	[S_READ_ALL] = "SELECT c.n, (SELECT coalesce(max(pruned_to), 0) FROM"
	    " channels WHERE name <> " PGLOG_Q_CONTROL "), m.* FROM counter c"
	    " LEFT JOIN LATERAL (SELECT " PGLOG_COLS " FROM messages"
	    " WHERE id > " PGLOG_FROM("$1") " AND channel <> "
	    PGLOG_Q_CONTROL " ORDER BY id LIMIT $2) m ON true ORDER BY m.id",
	[S_LATEST] = "SELECT * FROM (SELECT " PGLOG_COLS " FROM messages"
	    " WHERE channel = ANY($1::text[]) ORDER BY id DESC LIMIT $2) t"
	    " ORDER BY id",
	[S_LATEST_ALL] = "SELECT * FROM (SELECT " PGLOG_COLS " FROM messages"
	    " WHERE channel <> " PGLOG_Q_CONTROL " ORDER BY id DESC"
	    " LIMIT $1) t ORDER BY id",
	[S_STAT] = "SELECT " PGLOG_STAT_COLS("$2") " FROM channels c"
	    " WHERE c.name = $1",
	[S_STATS] = "SELECT " PGLOG_STAT_COLS("$1") " FROM channels c"
	    " WHERE c.name <> " PGLOG_Q_CONTROL " ORDER BY c.name",
	[S_SUBSCRIBERS] = "SELECT " PGLOG_LIVE_SUBS("$1", "$2"),
	[S_REMOVE_MESSAGES] = "DELETE FROM messages WHERE channel = $1",
	[S_REMOVE_CHANNEL] = "DELETE FROM channels WHERE name = $1",
	/* The row and its subscriptions in one statement, so atomically. */
	[S_STREAM_ADD] = "WITH s AS (INSERT INTO streams(host, pid, started,"
	    " secret, seen) VALUES($1, $2, pushcgi_now_ms(), $3,"
	    " pushcgi_now_ms()) RETURNING id), u AS (INSERT INTO"
	    " subscriptions(stream, channel) SELECT s.id, d.c FROM s,"
	    " (SELECT DISTINCT unnest($4::text[]) AS c) d) SELECT id FROM s",
	[S_STREAM_DEL] = "DELETE FROM streams WHERE id = $1",
	[S_STREAM_GET] = "SELECT pid::bigint, secret, host FROM streams"
	    " WHERE id = $1",
	/* This host's pids (expired 0), and whether any row of any host is
	 * past the reaping time (expired 1). */
	[S_REAP_LOOK] = "SELECT DISTINCT pid::bigint, (seen < pushcgi_now_ms()"
	    " - $2::bigint)::int::bigint FROM streams WHERE host = $1"
	    " OR seen < pushcgi_now_ms() - $2::bigint",
	[S_REAP] = "DELETE FROM streams WHERE (host = $1 AND pid ="
	    " ANY($3::integer[])) OR seen < pushcgi_now_ms() - $2::bigint",
	[S_TOUCH] = "UPDATE streams SET seen = pushcgi_now_ms()"
	    " WHERE host = $1 AND pid = $2",
	[S_CONTROL_INSERT] = "INSERT INTO messages(channel, type, data)"
	    " VALUES(" PGLOG_Q_CONTROL ", '" PGLOG_CONTROL_TYPE "', $1)"
	    " RETURNING id",
	[S_CONTROL_TRIM] = "DELETE FROM messages WHERE channel = "
	    PGLOG_Q_CONTROL " AND (time < pushcgi_now_ms() - $1::bigint *"
	    " 1000 OR id <= (SELECT id FROM messages WHERE channel = "
	    PGLOG_Q_CONTROL " ORDER BY id DESC LIMIT 1 OFFSET $2))",
	[S_CONTROL_READ] = "SELECT " PGLOG_COLS " FROM messages WHERE"
	    " channel = " PGLOG_Q_CONTROL " AND id > $1 AND id <= $2"
	    " ORDER BY id LIMIT $3",
};

struct pglog {
	PGconn *conn;
	char conninfo[PGLOG_CONNINFO_MAX + 1];
	char host[PGLOG_HOST_MAX + 1];
	unsigned char prepared[S_COUNT];
	int readonly;
	int listening;              /* pglog_listen was called */
	long retain_count;
	long retain_age;
	long max_data;
	int64_t lease_ms;           /* PGLOG_LEASE_BEATS heartbeats */
	int64_t reap_ms;            /* PGLOG_REAP_BEATS heartbeats */
	/* Retention batching, as mlog's: the channel appended to last and
	 * the appends since it was trimmed. */
	struct store_trim trim;   /* retention's batching (store.h) */
	char err[PGLOG_ERRMSG_MAX];
	int ecode;                  /* the code of the failure in err */
};

/* One statement's parameters, as text (fmt 0) or binary (fmt 1). */
struct pglog_params {
	int n;
	const char *val[PGLOG_PARAMS_MAX];
	int len[PGLOG_PARAMS_MAX];
	int fmt[PGLOG_PARAMS_MAX];
	char num[PGLOG_PARAMS_MAX][PGLOG_INT_MAX];
};

static int pglog_fail(struct pglog *, int, const char *, ...)
    __attribute__((format(printf, 3, 4)));
static int pglog_failed(const struct pglog *);
static int pglog_state_code(const char *);
static void pglog_line(char *, size_t, const char *);
static int pglog_pgfail(struct pglog *, PGresult *, const char *);
static void pglog_rollback(struct pglog *);
static int pglog_simple(struct pglog *, const char *, const char *);
static void pglog_quiet(void *, const char *);
static int pglog_setup(struct pglog *);
static int pglog_schema(struct pglog *, int);
static void pglog_host_id(char *, size_t);
static void pglog_p_text(struct pglog_params *, const char *);
static void pglog_p_int(struct pglog_params *, int64_t);
static void pglog_p_bin(struct pglog_params *, const void *, size_t);
static void pglog_p_list(struct pglog_params *, char *, size_t,
    const char *const *, int);
static PGresult *pglog_exec(struct pglog *, enum pglog_sid,
    struct pglog_params *, const char *);
static int64_t pglog_int(const PGresult *, int, int);
static int64_t pglog_changes(const PGresult *);
static int pglog_read_limit(struct pglog *, store_cb, int *);
static int pglog_write(struct pglog *, enum pglog_sid, struct pglog_params *,
    const char *, int64_t *);
static int pglog_row_msg(const PGresult *, int, int, struct store_msg *);
static void pglog_row_stat(const PGresult *, int, struct store_stat *);
static int pglog_check_channels(struct pglog *, const char *const *, int,
    int);
static int pglog_writable(struct pglog *);
static int pglog_trim_due(struct pglog *, const char *);
static int pglog_trim(struct pglog *, const char *, long, long, int,
    int64_t *);
static int pglog_rows(struct pglog *, PGresult *, int, store_cb, void *,
    int64_t *);
static int pglog_valid_secret(const char *);
static int pglog_stream_get(struct pglog *, int64_t, PGresult **);
static int64_t pglog_payload_id(const char *);
static int pglog_control_append(struct pglog *, const char *, int64_t *);

/* Record a one-line reason and return rc. */
static int
pglog_fail(struct pglog *l, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(l->err, sizeof(l->err), fmt, ap);
	va_end(ap);
	l->ecode = rc;
	return rc;
}

/* The code of the failure recorded last: never MLOG_OK. */
static int
pglog_failed(const struct pglog *l)
{
	return l->ecode < 0 ? l->ecode : MLOG_ERR;
}

/*
 * The code for a failure by its SQLSTATE (the server's texts are for
 * people): MLOG_EUNAVAIL when the log cannot be used now, whatever the
 * request (class 08 connection, 53 resources: too many connections or a
 * full disk, 57P0x shutting down or starting, 58 system I/O, 25006 a
 * read-only server, 55P03 lock_timeout, 40001/40P01 serialization, 57014
 * a cancelled statement), MLOG_EINVAL for a CHECK that refused a value,
 * else MLOG_ERR.
 */
static int
pglog_state_code(const char *s)
{
	if (s == NULL || strlen(s) != 5)
		return MLOG_ERR;
	if (strncmp(s, "08", 2) == 0 || strncmp(s, "53", 2) == 0 ||
	    strncmp(s, "57P0", 4) == 0 || strncmp(s, "58", 2) == 0 ||
	    strcmp(s, "25006") == 0 || strcmp(s, "55P03") == 0 ||
	    strcmp(s, "40001") == 0 || strcmp(s, "40P01") == 0 ||
	    strcmp(s, "57014") == 0)
		return MLOG_EUNAVAIL;
	if (strcmp(s, "23514") == 0)
		return MLOG_EINVAL;
	return MLOG_ERR;
}

/* The first line of msg into out (libpq's messages end with "\n" and may
 * have a DETAIL line after). */
static void
pglog_line(char *out, size_t len, const char *msg)
{
	size_t n;

	if (msg == NULL)
		msg = "";
	n = strcspn(msg, "\n");
	snprintf(out, len, "%.*s", (int)n, msg);
}

/*
 * Record why res (NULL: the connection itself) failed, prefixed by what
 * we were doing, free res, roll back an open transaction, and return the
 * code.  A connection that is gone is MLOG_EUNAVAIL whatever the state.
 */
static int
pglog_pgfail(struct pglog *l, PGresult *res, const char *what)
{
	char line[PGLOG_ERRMSG_MAX];
	const char *state = NULL;
	int rc;

	if (res != NULL) {
		state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		pglog_line(line, sizeof(line),
		    PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) != NULL ?
		    PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) :
		    PQerrorMessage(l->conn));
	} else
		pglog_line(line, sizeof(line), PQerrorMessage(l->conn));
	rc = pglog_state_code(state);
	if (PQstatus(l->conn) != CONNECTION_OK)
		rc = MLOG_EUNAVAIL;
	if (rc == MLOG_EUNAVAIL)
		pglog_fail(l, rc, "%s: the PostgreSQL log is unavailable (%s%s%s)",
		    what, line, state != NULL ? ", SQLSTATE " : "",
		    state != NULL ? state : "");
	else
		pglog_fail(l, rc, "%s: %s", what, line);
	PQclear(res);
	pglog_rollback(l);
	return rc;
}

/* End a transaction left open by a failure; keeps l->err. */
static void
pglog_rollback(struct pglog *l)
{
	PGTransactionStatusType t;

	if (PQstatus(l->conn) != CONNECTION_OK)
		return;
	t = PQtransactionStatus(l->conn);
	if (t == PQTRANS_INTRANS || t == PQTRANS_INERROR)
		PQclear(PQexec(l->conn, "ROLLBACK"));
}

/* A fixed statement text (no parameters, never from input). */
static int
pglog_simple(struct pglog *l, const char *sql, const char *what)
{
	PGresult *res = PQexec(l->conn, sql);

	if (PQresultStatus(res) != PGRES_COMMAND_OK &&
	    PQresultStatus(res) != PGRES_TUPLES_OK)
		return pglog_pgfail(l, res, what);
	PQclear(res);
	return MLOG_OK;
}

/* NOTICE and WARNING messages of the server are not the caller's
 * output: a library must not write to stderr by itself. */
static void
pglog_quiet(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

/* A fresh connection's settings; no statement is prepared yet. */
static int
pglog_setup(struct pglog *l)
{
	int rc;

	memset(l->prepared, 0, sizeof(l->prepared));
	PQsetNoticeProcessor(l->conn, pglog_quiet, NULL);
	if ((rc = pglog_simple(l, pglog_session, "setting up the "
	    "connection")) != MLOG_OK)
		return rc;
	if (l->listening)
		return pglog_simple(l, "LISTEN " PGLOG_NOTIFY, "listening");
	return MLOG_OK;
}

/*
 * Check the schema, creating it with PGLOG_CREATE (see pglog.h for
 * versions).  Creation happens under a transaction-level advisory lock,
 * and looks again once it holds it: the openers that waited find the
 * schema made.
 */
static int
pglog_schema(struct pglog *l, int create)
{
	PGresult *res;
	int have, other, rc, locked = 0;
	int64_t version;

	for (;;) {
		res = PQexec(l->conn, "SELECT to_regclass('schema_version')"
		    " IS NOT NULL, to_regclass('messages') IS NOT NULL");
		if (PQresultStatus(res) != PGRES_TUPLES_OK)
			return pglog_pgfail(l, res, "looking for the schema");
		have = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
		other = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
		PQclear(res);
		if (have || !create || l->readonly || locked)
			break;
		if ((rc = pglog_simple(l, "BEGIN", "creating the schema")) !=
		    MLOG_OK)
			return rc;
		res = PQexec(l->conn, "SELECT pg_advisory_xact_lock("
		    PGLOG_XSTR(PGLOG_LOCK_KEY) ")");
		if (PQresultStatus(res) != PGRES_TUPLES_OK)
			return pglog_pgfail(l, res, "locking for the schema");
		PQclear(res);
		locked = 1;
	}
	if (!have) {
		pglog_rollback(l);
		if (other)
			return pglog_fail(l, MLOG_ESCHEMA, "this database "
			    "schema has a messages table but no pushcgi "
			    "schema_version: not a pushcgi log");
		if (!create || l->readonly)
			return pglog_fail(l, MLOG_ENOENT, "no pushcgi log in "
			    "this database schema (an open with PGLOG_CREATE "
			    "makes one)");
		if ((rc = pglog_simple(l, pglog_schema_sql,
		    "creating the schema")) != MLOG_OK)
			return rc;
		return pglog_simple(l, "COMMIT", "creating the schema");
	}
	if (locked)
		pglog_rollback(l);  /* someone else made it meanwhile */
	res = PQexec(l->conn, "SELECT version::bigint FROM schema_version");
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return pglog_pgfail(l, res, "reading the schema version");
	if (PQntuples(res) != 1) {
		PQclear(res);
		return pglog_fail(l, MLOG_ESCHEMA, "schema_version holds no "
		    "version");
	}
	version = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	/* Upgrades from older versions go here, one step each, in one
	 * transaction under the advisory lock; there are none yet. */
	if (version != PGLOG_SCHEMA_VERSION)
		return pglog_fail(l, MLOG_ESCHEMA, "pushcgi schema version "
		    "%lld: this build knows version %d", (long long)version,
		    PGLOG_SCHEMA_VERSION);
	return MLOG_OK;
}

/* "HOSTNAME/BOOT-ID": a reboot, which reuses pids, makes a new host. */
static void
pglog_host_id(char *out, size_t len)
{
	char name[PGLOG_HOST_MAX + 1], boot[PGLOG_BOOT_MAX];
	FILE *f;
	size_t i, n = 0;

	if (gethostname(name, sizeof(name)) != 0)
		snprintf(name, sizeof(name), "%s", "localhost");
	name[sizeof(name) - 1] = '\0';
	if ((f = fopen(PGLOG_BOOT_ID, "r")) != NULL) {
		n = fread(boot, 1, sizeof(boot) - 1, f);
		fclose(f);
	}
	boot[n] = '\0';
	/* Keep the boot id's allow-list (hex digits and '-'). */
	for (i = 0; i < n; i++)
		if (!((boot[i] >= '0' && boot[i] <= '9') ||
		    (boot[i] >= 'a' && boot[i] <= 'f') || boot[i] == '-'))
			break;
	boot[i] = '\0';
	snprintf(out, len, "%.*s/%s", (int)(len > 40 ? len - 40 : 1), name,
	    boot);
}

static void
pglog_p_text(struct pglog_params *p, const char *s)
{
	p->val[p->n] = s;   /* NULL is SQL NULL */
	p->len[p->n] = 0;
	p->fmt[p->n] = 0;
	p->n++;
}

static void
pglog_p_int(struct pglog_params *p, int64_t v)
{
	snprintf(p->num[p->n], sizeof(p->num[p->n]), "%lld", (long long)v);
	pglog_p_text(p, p->num[p->n]);
}

static void
pglog_p_bin(struct pglog_params *p, const void *data, size_t len)
{
	p->val[p->n] = len > 0 ? data : "";
	p->len[p->n] = (int)len;
	p->fmt[p->n] = 1;
	p->n++;
}

/* channels[0..n) (valid names: no quote, comma or backslash to escape)
 * as a text[] literal in buf. */
static void
pglog_p_list(struct pglog_params *p, char *buf, size_t len,
    const char *const *channels, int n)
{
	size_t off = 0;
	int i;

	buf[off++] = '{';
	for (i = 0; i < n; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s\"%s\"",
		    i > 0 ? "," : "", channels[i]);
	snprintf(buf + off, len - off, "}");
	pglog_p_text(p, buf);
}

/*
 * Run statement id with p (prepared on first use on this connection);
 * results in binary format.  Returns the result, or NULL with the
 * failure recorded (pglog_pgfail: any transaction rolled back).
 */
static PGresult *
pglog_exec(struct pglog *l, enum pglog_sid id, struct pglog_params *p,
    const char *what)
{
	char name[PGLOG_INT_MAX];
	PGresult *res;
	ExecStatusType st;

	snprintf(name, sizeof(name), "pglog%d", (int)id);
	if (!l->prepared[id]) {
		res = PQprepare(l->conn, name, pglog_sql[id], 0, NULL);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			pglog_pgfail(l, res, what);
			return NULL;
		}
		PQclear(res);
		l->prepared[id] = 1;
	}
	res = PQexecPrepared(l->conn, name, p->n, p->val, p->len, p->fmt, 1);
	st = PQresultStatus(res);
	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
		pglog_pgfail(l, res, what);
		return NULL;
	}
	return res;
}

/* A binary integer column (int8 or int4), 0 if NULL. */
static int64_t
pglog_int(const PGresult *res, int row, int col)
{
	const unsigned char *v;
	uint64_t u = 0;
	int i, n;

	if (PQgetisnull(res, row, col))
		return 0;
	v = (const unsigned char *)PQgetvalue(res, row, col);
	n = PQgetlength(res, row, col);
	if (n != 8 && n != 4)
		return 0;
	for (i = 0; i < n; i++)
		u = (u << 8) | v[i];
	if (n == 4)
		return (int32_t)(uint32_t)u;
	return (int64_t)u;
}

static int64_t
pglog_changes(const PGresult *res)
{
	return strtoll(PQcmdTuples((PGresult *)res), NULL, 10);
}

/* Run a statement whose result is only how many rows it changed: added
 * to *changes (if changes).  MLOG_OK, or the failure (pglog_failed). */
static int
pglog_write(struct pglog *l, enum pglog_sid id, struct pglog_params *p,
    const char *what, int64_t *changes)
{
	PGresult *res;

	if ((res = pglog_exec(l, id, p, what)) == NULL)
		return pglog_failed(l);
	if (changes != NULL)
		*changes += pglog_changes(res);
	PQclear(res);
	return MLOG_OK;
}

/* m from row of res, whose PGLOG_COLS start at column c. */
static int
pglog_row_msg(const PGresult *res, int row, int c, struct store_msg *m)
{
	if (PQgetisnull(res, row, c))
		return -1;
	m->id = pglog_int(res, row, c);
	m->channel = PQgetvalue(res, row, c + 1);
	m->time_ms = pglog_int(res, row, c + 2);
	m->type = PQgetvalue(res, row, c + 3);
	m->event = PQgetisnull(res, row, c + 4) ? NULL :
	    PQgetvalue(res, row, c + 4);
	m->data = PQgetvalue(res, row, c + 5);
	m->len = (size_t)PQgetlength(res, row, c + 5);
	return 0;
}

static void
pglog_row_stat(const PGresult *res, int row, struct store_stat *s)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->channel, sizeof(s->channel), "%s",
	    PQgetvalue(res, row, 0));
	s->last_id = pglog_int(res, row, 1);
	s->last_time_ms = pglog_int(res, row, 2);
	s->pruned_to = pglog_int(res, row, 3);
	s->count = pglog_int(res, row, 4);
	s->first_id = pglog_int(res, row, 5);
	s->subscribers = pglog_int(res, row, 6);
}

/* As mlog.c's: n names (at least min), each valid. */
static int
pglog_check_channels(struct pglog *l, const char *const *channels, int n,
    int min)
{
	int i;

	if (n < min || n > VALID_CHANNELS_MAX || (n > 0 && channels == NULL))
		return pglog_fail(l, MLOG_EINVAL, "%d channels named: %d to %d "
		    "allowed", n, min, VALID_CHANNELS_MAX);
	for (i = 0; i < n; i++)
		if (!valid_channel(channels[i]))
			return pglog_fail(l, MLOG_EINVAL, "invalid channel name "
			    "(1-%d of A-Z a-z 0-9 . _ -, not starting with "
			    "'.')", VALID_CHANNEL_MAX);
	return MLOG_OK;
}

static int
pglog_writable(struct pglog *l)
{
	if (l->readonly)
		return pglog_fail(l, MLOG_ERR, "the message log was opened "
		    "read-only");
	return MLOG_OK;
}

int
pglog_open(struct pglog **out, const char *conninfo, const struct conf *c,
    int flags, char *err, size_t errlen)
{
	struct pglog *l;
	struct conf def;
	int rc;

	*out = NULL;
	if (c == NULL) {
		conf_defaults(&def);
		c = &def;
	}
	if (conninfo == NULL || strlen(conninfo) > PGLOG_CONNINFO_MAX) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "no PostgreSQL connection string, "
			    "or one over %d bytes", PGLOG_CONNINFO_MAX);
		return MLOG_EINVAL;
	}
	/* libpq itself is loaded now (pqdl.h). */
	if (pqdl_load(err, errlen) != 0)
		return MLOG_ERR;
	if ((l = calloc(1, sizeof(*l))) == NULL) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "out of memory");
		return MLOG_ERR;
	}
	snprintf(l->conninfo, sizeof(l->conninfo), "%s", conninfo);
	pglog_host_id(l->host, sizeof(l->host));
	l->readonly = (flags & PGLOG_READONLY) != 0;
	l->retain_count = c->retain_count;
	l->retain_age = c->retain_age;
	l->max_data = c->max_data;
	l->lease_ms = (int64_t)PGLOG_LEASE_BEATS * c->heartbeat *
	    PGLOG_MS_PER_S;
	l->reap_ms = (int64_t)PGLOG_REAP_BEATS * c->heartbeat *
	    PGLOG_MS_PER_S;
	l->conn = PQconnectdb(l->conninfo);
	if (l->conn == NULL)
		rc = pglog_fail(l, MLOG_ERR, "connecting: out of memory");
	else if (PQstatus(l->conn) != CONNECTION_OK)
		rc = pglog_pgfail(l, NULL, "connecting");
	else if ((rc = pglog_setup(l)) == MLOG_OK)
		rc = pglog_schema(l, (flags & PGLOG_CREATE) != 0);
	if (rc != MLOG_OK) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "%s", l->err);
		pglog_close(l);
		return rc;
	}
	*out = l;
	return MLOG_OK;
}

int
pglog_reconnect(struct pglog *l)
{
	PQreset(l->conn);
	if (PQstatus(l->conn) != CONNECTION_OK)
		return pglog_pgfail(l, NULL, "reconnecting");
	return pglog_setup(l);
}

void
pglog_close(struct pglog *l)
{
	if (l == NULL)
		return;
	if (l->conn != NULL)
		PQfinish(l->conn);
	free(l);
}

const char *
pglog_errmsg(const struct pglog *l)
{
	return l->err;
}

const char *
pglog_host(const struct pglog *l)
{
	return l->host;
}

struct pg_conn *
pglog_conn(struct pglog *l)
{
	return l->conn;
}

/* Whether this append must apply retention (store_trim_due, the rule of
 * every backend).  Counts the append. */
static int
pglog_trim_due(struct pglog *l, const char *channel)
{
	return store_trim_due(&l->trim, l->retain_count, l->retain_age,
	    channel);
}

/* A read's callback and limit: a callback and a positive limit, capped at
 * MLOG_READ_MAX.  MLOG_OK, or MLOG_EINVAL with the reason. */
static int
pglog_read_limit(struct pglog *l, store_cb cb, int *limit)
{
	if (*limit <= 0 || cb == NULL)
		return pglog_fail(l, MLOG_EINVAL, "reading needs a callback and "
		    "a positive limit");
	if (*limit > MLOG_READ_MAX)
		*limit = MLOG_READ_MAX;
	return MLOG_OK;
}

/*
 * Retention for one channel inside the caller's transaction: keep the
 * newest `keep` (0 = all), drop what is older than max_age seconds by the
 * server's clock (0 = no limit); `thorough` checks every row's time
 * instead of the expired prefix.  Adds the rows deleted to *deleted.
 */
static int
pglog_trim(struct pglog *l, const char *channel, long keep, long max_age,
    int thorough, int64_t *deleted)
{
	struct pglog_params p;

	if (keep > 0) {
		memset(&p, 0, sizeof(p));
		pglog_p_text(&p, channel);
		pglog_p_int(&p, keep);
		if (pglog_write(l, S_KEEP, &p, "applying retention by "
		    "count", deleted) != MLOG_OK)
			return pglog_failed(l);
	}
	if (max_age > 0) {
		memset(&p, 0, sizeof(p));
		pglog_p_text(&p, channel);
		pglog_p_int(&p, max_age);
		if (pglog_write(l, thorough ? S_AGE_CHANNEL : S_AGE_HEAD,
		    &p, "applying retention by age", deleted) != MLOG_OK)
			return pglog_failed(l);
	}
	return MLOG_OK;
}

int
pglog_append(struct pglog *l, const char *channel, const char *type,
    const char *event, const void *data, size_t len, int64_t *id)
{
	struct pglog_params p;
	PGresult *res;
	size_t cap;
	int64_t nid, dropped = 0;
	int rc, trim;

	if (pglog_writable(l) != MLOG_OK)
		return pglog_failed(l);
	if (pglog_check_channels(l, &channel, 1, 1) != MLOG_OK)
		return MLOG_EINVAL;
	if (type != NULL && !valid_type(type))
		return pglog_fail(l, MLOG_EINVAL, "invalid media type (type/"
		    "subtype and parameters, printable ASCII, at most %d "
		    "bytes)", VALID_TYPE_MAX);
	if (event != NULL && !valid_event(event))
		return pglog_fail(l, MLOG_EINVAL, "invalid event name (1-%d of "
		    "A-Z a-z 0-9 . _ : -)", VALID_EVENT_MAX);
	if (data == NULL && len > 0)
		return pglog_fail(l, MLOG_EINVAL, "no data for %zu bytes", len);
	/* libpq takes a parameter's length as an int. */
	cap = l->max_data > 0 && (unsigned long)l->max_data < INT_MAX ?
	    (size_t)l->max_data : INT_MAX;
	if (len > cap)
		return pglog_fail(l, MLOG_E2BIG, "message of %zu bytes is over "
		    "the %zu-byte limit", len, cap);
	/* Without retention due, one autocommit INSERT: one round trip. */
	trim = pglog_trim_due(l, channel);
	if (trim && (rc = pglog_simple(l, "BEGIN", "appending a message")) !=
	    MLOG_OK) {
		l->trim.channel[0] = '\0';
		return rc;
	}
	memset(&p, 0, sizeof(p));
	pglog_p_text(&p, channel);
	pglog_p_text(&p, type != NULL ? type : MLOG_DEFAULT_TYPE);
	pglog_p_text(&p, event);
	pglog_p_bin(&p, data, len);
	if ((res = pglog_exec(l, S_INSERT, &p, "appending a message")) ==
	    NULL) {
		l->trim.channel[0] = '\0';
		return pglog_failed(l);
	}
	nid = pglog_int(res, 0, 0);
	PQclear(res);
	if (trim) {
		if (pglog_trim(l, channel, l->retain_count, l->retain_age, 0,
		    &dropped) != MLOG_OK ||
		    pglog_simple(l, "COMMIT", "committing a message") !=
		    MLOG_OK) {
			l->trim.channel[0] = '\0';  /* trim again next time */
			return pglog_failed(l);
		}
	}
	if (id != NULL)
		*id = nid;
	return MLOG_OK;
}

int
pglog_last_id(struct pglog *l, int64_t *id)
{
	struct pglog_params p;
	PGresult *res;

	memset(&p, 0, sizeof(p));
	if ((res = pglog_exec(l, S_LAST_ID, &p, "reading the last id")) ==
	    NULL)
		return pglog_failed(l);
	*id = PQntuples(res) > 0 ? pglog_int(res, 0, 0) : 0;
	PQclear(res);
	return MLOG_OK;
}

/* Pass the messages of res (PGLOG_COLS from column c; a row whose id is
 * NULL is no message) to cb; *pos gets the last id passed.  Returns
 * MLOG_OK or cb's non-zero value. */
static int
pglog_rows(struct pglog *l, PGresult *res, int c, store_cb cb, void *arg,
    int64_t *pos)
{
	struct store_msg m;
	int i, rc;

	(void)l;
	for (i = 0; i < PQntuples(res); i++) {
		if (pglog_row_msg(res, i, c, &m) != 0)
			continue;
		*pos = m.id;
		if ((rc = cb(arg, &m)) != 0)
			return rc;
	}
	return MLOG_OK;
}

int
pglog_read(struct pglog *l, const char *const *channels, int n,
    int64_t after, int limit, store_cb cb, void *arg, int64_t *gap,
    int64_t *last)
{
	struct pglog_params p;
	PGresult *res;
	char list[PGLOG_LIST_MAX];
	int64_t pos, seq, pruned;
	int ret, reset;

	if (pglog_check_channels(l, channels, n, 0) != MLOG_OK)
		return MLOG_EINVAL;
	if (pglog_read_limit(l, cb, &limit) != MLOG_OK)
		return MLOG_EINVAL;
	memset(&p, 0, sizeof(p));
	if (n > 0)
		pglog_p_list(&p, list, sizeof(list), channels, n);
	pglog_p_int(&p, after);
	pglog_p_int(&p, limit);
	if ((res = pglog_exec(l, n > 0 ? S_READ : S_READ_ALL, &p,
	    "reading messages")) == NULL)
		return pglog_failed(l);
	if (PQntuples(res) < 1) {
		PQclear(res);
		return pglog_fail(l, MLOG_ESCHEMA, "reading messages: the "
		    "counter table has no row");
	}
	seq = pglog_int(res, 0, 0);
	pruned = pglog_int(res, 0, 1);
	/* The cursor rule (mlog.h); the statement read from 0 already. */
	reset = after > seq;
	if (reset)
		after = 0;
	pos = after;
	ret = pglog_rows(l, res, 2, cb, arg, &pos);
	PQclear(res);
	if (gap != NULL)
		*gap = reset ? MLOG_GAP_RESET : pruned > after ? pruned : 0;
	if (last != NULL)
		*last = pos;
	return ret;
}

int
pglog_latest(struct pglog *l, const char *const *channels, int n, int count,
    store_cb cb, void *arg)
{
	struct pglog_params p;
	PGresult *res;
	char list[PGLOG_LIST_MAX];
	int64_t pos = 0;
	int ret;

	if (pglog_check_channels(l, channels, n, 0) != MLOG_OK)
		return MLOG_EINVAL;
	if (cb == NULL)
		return pglog_fail(l, MLOG_EINVAL, "reading needs a callback");
	if (count <= 0)
		return MLOG_OK;
	if (count > MLOG_READ_MAX)
		count = MLOG_READ_MAX;
	memset(&p, 0, sizeof(p));
	if (n > 0)
		pglog_p_list(&p, list, sizeof(list), channels, n);
	pglog_p_int(&p, count);
	if ((res = pglog_exec(l, n > 0 ? S_LATEST : S_LATEST_ALL, &p,
	    "reading the latest messages")) == NULL)
		return pglog_failed(l);
	ret = pglog_rows(l, res, 0, cb, arg, &pos);
	PQclear(res);
	return ret;
}

int
pglog_stat(struct pglog *l, const char *channel, struct store_stat *s)
{
	struct pglog_params p;
	PGresult *res;
	int ret = MLOG_OK;

	if (pglog_check_channels(l, &channel, 1, 1) != MLOG_OK)
		return MLOG_EINVAL;
	/* Counting skips expired rows anyway; reaping only tidies up. */
	if (!l->readonly)
		pglog_reap(l);
	memset(&p, 0, sizeof(p));
	pglog_p_text(&p, channel);
	pglog_p_int(&p, l->lease_ms);
	if ((res = pglog_exec(l, S_STAT, &p, "reading a channel")) == NULL)
		return pglog_failed(l);
	if (PQntuples(res) == 1)
		pglog_row_stat(res, 0, s);
	else
		ret = pglog_fail(l, MLOG_ENOENT, "no channel \"%s\"", channel);
	PQclear(res);
	return ret;
}

int
pglog_subscribers(struct pglog *l, const char *channel, int64_t *n)
{
	struct pglog_params p;
	PGresult *res;

	if (pglog_check_channels(l, &channel, 1, 1) != MLOG_OK)
		return MLOG_EINVAL;
	memset(&p, 0, sizeof(p));
	pglog_p_text(&p, channel);
	pglog_p_int(&p, l->lease_ms);
	if ((res = pglog_exec(l, S_SUBSCRIBERS, &p, "counting subscribers"))
	    == NULL)
		return pglog_failed(l);
	*n = pglog_int(res, 0, 0);
	PQclear(res);
	return MLOG_OK;
}

int
pglog_stats(struct pglog *l, int (*cb)(void *, const struct store_stat *),
    void *arg)
{
	struct pglog_params p;
	struct store_stat s;
	PGresult *res;
	int i, rc, ret = MLOG_OK;

	if (cb == NULL)
		return pglog_fail(l, MLOG_EINVAL, "stats need a callback");
	if (!l->readonly)
		pglog_reap(l);
	memset(&p, 0, sizeof(p));
	pglog_p_int(&p, l->lease_ms);
	if ((res = pglog_exec(l, S_STATS, &p, "reading channels")) == NULL)
		return pglog_failed(l);
	for (i = 0; i < PQntuples(res); i++) {
		/* A name too long for the struct can only come from a hand
		 * edit of the channels table: skip it. */
		if (PQgetlength(res, i, 0) > VALID_CHANNEL_MAX)
			continue;
		pglog_row_stat(res, i, &s);
		if ((rc = cb(arg, &s)) != 0) {
			ret = rc;
			break;
		}
	}
	PQclear(res);
	return ret;
}

int
pglog_prune(struct pglog *l, const char *channel, long keep_count,
    long max_age, int64_t *deleted)
{
	struct pglog_params p;
	int64_t n = 0;
	int rc;

	if (pglog_writable(l) != MLOG_OK)
		return pglog_failed(l);
	if (channel != NULL && pglog_check_channels(l, &channel, 1, 1) !=
	    MLOG_OK)
		return MLOG_EINVAL;
	if (keep_count < 0 || max_age < 0)
		return pglog_fail(l, MLOG_EINVAL, "retention limits must not "
		    "be negative");
	if ((rc = pglog_simple(l, "BEGIN", "pruning")) != MLOG_OK)
		return rc;
	if (channel != NULL) {
		if (pglog_trim(l, channel, keep_count, max_age, 1, &n) !=
		    MLOG_OK)
			return pglog_failed(l);
	} else {
		if (keep_count > 0) {
			memset(&p, 0, sizeof(p));
			pglog_p_int(&p, keep_count);
			if (pglog_write(l, S_KEEP_ALL, &p, "pruning by "
			    "count", &n) != MLOG_OK)
				return pglog_failed(l);
		}
		if (max_age > 0) {
			memset(&p, 0, sizeof(p));
			pglog_p_int(&p, max_age);
			if (pglog_write(l, S_AGE_ALL, &p, "pruning by "
			    "age", &n) != MLOG_OK)
				return pglog_failed(l);
		}
	}
	if ((rc = pglog_simple(l, "COMMIT", "committing a prune")) != MLOG_OK)
		return rc;
	if (deleted != NULL)
		*deleted = n;
	return MLOG_OK;
}

int
pglog_remove(struct pglog *l, const char *channel, int64_t *deleted)
{
	struct pglog_params p;
	PGresult *res;
	int64_t n, rows;
	int rc;

	if (pglog_writable(l) != MLOG_OK)
		return pglog_failed(l);
	if (pglog_check_channels(l, &channel, 1, 1) != MLOG_OK)
		return MLOG_EINVAL;
	if ((rc = pglog_simple(l, "BEGIN", "removing a channel")) != MLOG_OK)
		return rc;
	memset(&p, 0, sizeof(p));
	pglog_p_text(&p, channel);
	if ((res = pglog_exec(l, S_REMOVE_MESSAGES, &p, "removing messages"))
	    == NULL)
		return pglog_failed(l);
	n = pglog_changes(res);
	PQclear(res);
	if ((res = pglog_exec(l, S_REMOVE_CHANNEL, &p, "removing a channel"))
	    == NULL)
		return pglog_failed(l);
	rows = pglog_changes(res);
	PQclear(res);
	if (n == 0 && rows == 0) {
		pglog_rollback(l);
		return pglog_fail(l, MLOG_ENOENT, "no channel \"%s\"", channel);
	}
	if ((rc = pglog_simple(l, "COMMIT", "committing a removal")) !=
	    MLOG_OK)
		return rc;
	if (deleted != NULL)
		*deleted = n;
	return MLOG_OK;
}

/* A stream's secret: printable ASCII without spaces, capped. */
static int
pglog_valid_secret(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (i >= PGLOG_SECRET_MAX || s[i] <= ' ' || s[i] > '~')
			return 0;
	return 1;
}

int
pglog_stream_open(struct pglog *l, const char *const *channels, int n,
    pid_t pid, const char *secret, int64_t *stream)
{
	struct pglog_params p;
	PGresult *res;
	char list[PGLOG_LIST_MAX];

	if (pglog_writable(l) != MLOG_OK)
		return pglog_failed(l);
	if (pglog_check_channels(l, channels, n, 1) != MLOG_OK)
		return MLOG_EINVAL;
	if (pid <= 0)
		return pglog_fail(l, MLOG_EINVAL, "stream pid %ld is not a "
		    "process", (long)pid);
	if (secret != NULL && !pglog_valid_secret(secret))
		return pglog_fail(l, MLOG_EINVAL, "invalid stream secret "
		    "(printable ASCII without spaces, at most %d bytes)",
		    PGLOG_SECRET_MAX);
	memset(&p, 0, sizeof(p));
	pglog_p_text(&p, l->host);
	pglog_p_int(&p, pid);
	pglog_p_text(&p, secret);
	pglog_p_list(&p, list, sizeof(list), channels, n);
	if ((res = pglog_exec(l, S_STREAM_ADD, &p, "registering a stream")) ==
	    NULL)
		return pglog_failed(l);
	if (stream != NULL)
		*stream = pglog_int(res, 0, 0);
	PQclear(res);
	return MLOG_OK;
}

int
pglog_stream_close(struct pglog *l, int64_t stream)
{
	struct pglog_params p;
	PGresult *res;
	int64_t rows;

	if (pglog_writable(l) != MLOG_OK)
		return pglog_failed(l);
	memset(&p, 0, sizeof(p));
	pglog_p_int(&p, stream);
	/* One statement: the subscriptions go with it (ON DELETE CASCADE). */
	if ((res = pglog_exec(l, S_STREAM_DEL, &p, "closing a stream")) ==
	    NULL)
		return pglog_failed(l);
	rows = pglog_changes(res);
	PQclear(res);
	if (rows == 0)
		return pglog_fail(l, MLOG_ENOENT, "no stream %lld",
		    (long long)stream);
	return MLOG_OK;
}

/* The row of stream in *res (the caller clears it). */
static int
pglog_stream_get(struct pglog *l, int64_t stream, PGresult **res)
{
	struct pglog_params p;

	memset(&p, 0, sizeof(p));
	pglog_p_int(&p, stream);
	if ((*res = pglog_exec(l, S_STREAM_GET, &p, "reading a stream")) ==
	    NULL)
		return pglog_failed(l);
	if (PQntuples(*res) != 1) {
		PQclear(*res);
		*res = NULL;
		return pglog_fail(l, MLOG_ENOENT, "no stream %lld",
		    (long long)stream);
	}
	return MLOG_OK;
}

int
pglog_stream_info(struct pglog *l, int64_t stream, pid_t *pid, char *secret,
    size_t secretlen)
{
	PGresult *res;
	const char *s;
	int rc;

	if ((rc = pglog_stream_get(l, stream, &res)) != MLOG_OK)
		return rc;
	if (pid != NULL)
		*pid = (pid_t)pglog_int(res, 0, 0);
	s = PQgetisnull(res, 0, 1) ? "" : PQgetvalue(res, 0, 1);
	if (secret != NULL && secretlen > 0 &&
	    (size_t)snprintf(secret, secretlen, "%s", s) >= secretlen)
		rc = pglog_fail(l, MLOG_EINVAL, "stream %lld: secret longer "
		    "than the buffer", (long long)stream);
	PQclear(res);
	return rc;
}

int
pglog_stream_host(struct pglog *l, int64_t stream, char *host, size_t len)
{
	PGresult *res;
	int rc;

	if ((rc = pglog_stream_get(l, stream, &res)) != MLOG_OK)
		return rc;
	if (len == 0 || (size_t)snprintf(host, len, "%s",
	    PQgetvalue(res, 0, 2)) >= len)
		rc = pglog_fail(l, MLOG_EINVAL, "stream %lld: host longer "
		    "than the buffer", (long long)stream);
	PQclear(res);
	return rc;
}

/*
 * Look first (one read) and write only when something is to go: this
 * host's pids that kill(pid, 0) says are gone (at most PGLOG_REAP_MAX per
 * call), or rows of any host unseen for PGLOG_REAP_BEATS heartbeats.
 */
int
pglog_reap(struct pglog *l)
{
	struct pglog_params p;
	PGresult *res;
	char *dead;
	size_t cap, off = 0;
	int i, ndead = 0, expired = 0, rc = MLOG_OK;

	if (pglog_writable(l) != MLOG_OK)
		return pglog_failed(l);
	memset(&p, 0, sizeof(p));
	pglog_p_text(&p, l->host);
	pglog_p_int(&p, l->reap_ms);
	if ((res = pglog_exec(l, S_REAP_LOOK, &p, "looking for dead "
	    "streams")) == NULL)
		return pglog_failed(l);
	cap = 3 + (size_t)PGLOG_REAP_MAX * PGLOG_INT_MAX;
	if ((dead = malloc(cap)) == NULL) {
		PQclear(res);
		return pglog_fail(l, MLOG_ERR, "reaping: out of memory");
	}
	dead[off++] = '{';
	for (i = 0; i < PQntuples(res) && ndead < PGLOG_REAP_MAX; i++) {
		int64_t pid = pglog_int(res, i, 0);

		if (pglog_int(res, i, 1) != 0) {
			expired = 1;
			continue;
		}
		if (pid <= 0 || pid > INT_MAX ||
		    kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		off += (size_t)snprintf(dead + off, cap - off, "%s%lld",
		    ndead > 0 ? "," : "", (long long)pid);
		ndead++;
	}
	snprintf(dead + off, cap - off, "}");
	PQclear(res);
	if (ndead > 0 || expired) {
		pglog_p_text(&p, dead);
		if ((res = pglog_exec(l, S_REAP, &p, "removing dead streams")) ==
		    NULL)
			rc = pglog_failed(l);
		else
			PQclear(res);
	}
	free(dead);
	return rc;
}

int
pglog_stream_touch(struct pglog *l, pid_t pid, int64_t *n)
{
	struct pglog_params p;
	PGresult *res;

	if (pglog_writable(l) != MLOG_OK)
		return pglog_failed(l);
	memset(&p, 0, sizeof(p));
	pglog_p_text(&p, l->host);
	pglog_p_int(&p, pid);
	if ((res = pglog_exec(l, S_TOUCH, &p, "refreshing streams")) == NULL)
		return pglog_failed(l);
	if (n != NULL)
		*n = pglog_changes(res);
	PQclear(res);
	return MLOG_OK;
}

/* One control request (data: a NUL-terminated request text) and the
 * control channel's retention, in one transaction. */
static int
pglog_control_append(struct pglog *l, const char *data, int64_t *id)
{
	struct pglog_params p;
	PGresult *res;
	int64_t nid;
	int rc;

	if (pglog_writable(l) != MLOG_OK)
		return pglog_failed(l);
	if ((rc = pglog_simple(l, "BEGIN", "appending a control request")) !=
	    MLOG_OK)
		return rc;
	memset(&p, 0, sizeof(p));
	pglog_p_bin(&p, data, strlen(data));
	if ((res = pglog_exec(l, S_CONTROL_INSERT, &p, "appending a control "
	    "request")) == NULL)
		return pglog_failed(l);
	nid = pglog_int(res, 0, 0);
	PQclear(res);
	memset(&p, 0, sizeof(p));
	pglog_p_int(&p, MLOG_CONTROL_AGE);
	pglog_p_int(&p, MLOG_CONTROL_KEEP);
	if (pglog_write(l, S_CONTROL_TRIM, &p, "pruning control "
	    "requests", NULL) != MLOG_OK)
		return pglog_failed(l);
	if ((rc = pglog_simple(l, "COMMIT", "committing a control request"))
	    != MLOG_OK)
		return rc;
	if (id != NULL)
		*id = nid;
	return MLOG_OK;
}

int
pglog_control_end_stream_id(struct pglog *l, int64_t stream, int64_t *id)
{
	char data[MLOG_CONTROL_MAX];

	if (stream < 1)
		return pglog_fail(l, MLOG_EINVAL, "stream %lld is not a stream "
		    "id", (long long)stream);
	snprintf(data, sizeof(data), PGLOG_CONTROL_STREAM "%lld",
	    (long long)stream);
	return pglog_control_append(l, data, id);
}

int
pglog_control_end_channel_id(struct pglog *l, const char *channel,
    int64_t *id)
{
	char data[MLOG_CONTROL_MAX];

	if (pglog_check_channels(l, &channel, 1, 1) != MLOG_OK)
		return MLOG_EINVAL;
	snprintf(data, sizeof(data), PGLOG_CONTROL_CHANNEL "%s", channel);
	return pglog_control_append(l, data, id);
}

int
pglog_control_read(struct pglog *l, int64_t after, int64_t upto, int limit,
    store_cb cb, void *arg, int64_t *last)
{
	struct pglog_params p;
	PGresult *res;
	int64_t pos = after;
	int ret;

	if (pglog_read_limit(l, cb, &limit) != MLOG_OK)
		return MLOG_EINVAL;
	memset(&p, 0, sizeof(p));
	pglog_p_int(&p, after);
	pglog_p_int(&p, upto);
	pglog_p_int(&p, limit);
	if ((res = pglog_exec(l, S_CONTROL_READ, &p, "reading control "
	    "requests")) == NULL)
		return pglog_failed(l);
	ret = pglog_rows(l, res, 0, cb, arg, &pos);
	PQclear(res);
	if (last != NULL)
		*last = pos;
	return ret;
}

int
pglog_listen(struct pglog *l)
{
	int rc;

	if ((rc = pglog_simple(l, "LISTEN " PGLOG_NOTIFY, "listening")) !=
	    MLOG_OK)
		return rc;
	l->listening = 1;
	return MLOG_OK;
}

int
pglog_socket(const struct pglog *l)
{
	return PQsocket(l->conn);
}

/* The payload's id: 1-19 digits, no sign, nothing else; 0 otherwise. */
static int64_t
pglog_payload_id(const char *s)
{
	int64_t v = 0;
	size_t i;

	for (i = 0; s[i] != '\0'; i++) {
		if (i >= PGLOG_ID_DIGITS || s[i] < '0' || s[i] > '9' ||
		    v > (INT64_MAX - (s[i] - '0')) / 10)
			return 0;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

int
pglog_notified(struct pglog *l, int64_t *last)
{
	PGnotify *n;
	int64_t v, top = 0;
	int any = 0;

	if (!PQconsumeInput(l->conn) || PQstatus(l->conn) != CONNECTION_OK)
		return pglog_pgfail(l, NULL, "waiting for notifications");
	while ((n = PQnotifies(l->conn)) != NULL) {
		if (strcmp(n->relname, PGLOG_NOTIFY) == 0) {
			any = 1;
			if ((v = pglog_payload_id(n->extra)) > top)
				top = v;
		}
		PQfreemem(n);
	}
	if (any && last != NULL)
		*last = top;
	return any;
}
