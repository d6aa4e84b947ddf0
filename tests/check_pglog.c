/*
 * Unit tests of lib/pglog.c against a PostgreSQL server: PUSHCGI_TEST_PG
 * names the database (tests/check-pglog.sh starts a throwaway cluster and
 * sets it).  Each test gets its own database schema, created and dropped
 * around it, so the log is created afresh each time.
 */
#include "config.h"

#include <check.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "conf.h"
#include "mlog.h"
#include "pglog.h"
#include "valid.h"

#define T_MSGS_MAX   64    /* messages one collector keeps */
#define T_DATA_MAX   256   /* bytes of data it keeps */
#define T_URI_MAX    (PGLOG_CONNINFO_MAX - 64)
#define T_SQL_MAX    512
#define T_ERR_MAX    1024
#define T_WAIT_TRIES 2000  /* 5 ms looks for a state another backend reaches */
#define T_POLL_MS    10000 /* longest wait for a notification */

static char base_uri[T_URI_MAX];
static char uri[PGLOG_CONNINFO_MAX];   /* base_uri in this test's schema */
static char schema[32];
static struct conf cf;

struct seen {
	int n;
	int64_t id[T_MSGS_MAX];
	char channel[T_MSGS_MAX][VALID_CHANNEL_MAX + 1];
	char type[T_MSGS_MAX][VALID_TYPE_MAX + 1];
	char event[T_MSGS_MAX][VALID_EVENT_MAX + 1];
	unsigned char data[T_MSGS_MAX][T_DATA_MAX];
	size_t len[T_MSGS_MAX];
	int64_t time_ms[T_MSGS_MAX];
	int ctl[T_MSGS_MAX];             /* store_control_parse's answer */
	int64_t ctl_stream[T_MSGS_MAX];
	char ctl_channel[T_MSGS_MAX][VALID_CHANNEL_MAX + 1];
};

static int
collect(void *arg, const struct store_msg *m)
{
	struct seen *s = arg;
	int i = s->n;

	if (i >= T_MSGS_MAX)
		return 1;
	s->id[i] = m->id;
	snprintf(s->channel[i], sizeof(s->channel[i]), "%s", m->channel);
	snprintf(s->type[i], sizeof(s->type[i]), "%s", m->type);
	snprintf(s->event[i], sizeof(s->event[i]), "%s",
	    m->event != NULL ? m->event : "");
	s->len[i] = m->len;
	memcpy(s->data[i], m->data, m->len < T_DATA_MAX ? m->len : T_DATA_MAX);
	s->time_ms[i] = m->time_ms;
	s->ctl[i] = store_control_parse(m, &s->ctl_stream[i], s->ctl_channel[i],
	    sizeof(s->ctl_channel[i]));
	s->n++;
	return 0;
}

/* A connection of our own to this test's schema. */
static PGconn *
conn(void)
{
	PGconn *c = PQconnectdb(uri);

	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "connect: %s",
	    PQerrorMessage(c));
	return c;
}

/* Run sql on c; returns the SQLSTATE of a failure, "" on success. */
static const char *
sql_state(PGconn *c, const char *sql)
{
	static char state[8];
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);
	const char *s;

	state[0] = '\0';
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		snprintf(state, sizeof(state), "%s", s != NULL ? s : "?");
	}
	PQclear(r);
	return state;
}

static void
sql_ok(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);

	ck_assert_msg(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK,
	    "%s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
}

/* The first column of the first row of sql, as an integer. */
static int64_t
sql_int(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	int64_t v;

	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0,
	    "%s: %s", sql, PQresultErrorMessage(r));
	v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return v;
}

static void
setup(void)
{
	const char *env = getenv("PUSHCGI_TEST_PG");
	char sql[T_SQL_MAX];
	PGconn *c;

	ck_assert_msg(env != NULL && strlen(env) < sizeof(base_uri),
	    "PUSHCGI_TEST_PG must name the test database (tests/check-pglog.sh)");
	snprintf(base_uri, sizeof(base_uri), "%s", env);
	snprintf(schema, sizeof(schema), "t_%ld", (long)getpid());
	snprintf(uri, sizeof(uri), "%s%soptions=-csearch_path%%3D%s", base_uri,
	    strchr(base_uri, '?') != NULL ? "&" : "?", schema);
	c = PQconnectdb(base_uri);
	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "connect: %s",
	    PQerrorMessage(c));
	snprintf(sql, sizeof(sql), "SET client_min_messages = warning;"
	    " DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s", schema,
	    schema);
	sql_ok(c, sql);
	PQfinish(c);
	conf_defaults(&cf);
	cf.retain_count = 0;
	cf.retain_age = 0;
}

static void
teardown(void)
{
	char sql[T_SQL_MAX];
	PGconn *c = PQconnectdb(base_uri);

	if (PQstatus(c) == CONNECTION_OK) {
		snprintf(sql, sizeof(sql), "SET client_min_messages = warning;"
		    " DROP SCHEMA IF EXISTS %s CASCADE", schema);
		PQclear(PQexec(c, sql));
	}
	PQfinish(c);
}

static struct pglog *
open_log(void)
{
	struct pglog *l;
	char err[T_ERR_MAX];
	int rc = pglog_open(&l, uri, &cf, PGLOG_CREATE, err, sizeof(err));

	ck_assert_msg(rc == MLOG_OK, "pglog_open: %d %s", rc, err);
	return l;
}

static int64_t
append(struct pglog *l, const char *channel, const char *data)
{
	int64_t id = 0;
	int rc = pglog_append(l, channel, NULL, NULL, data, strlen(data), &id);

	ck_assert_msg(rc == MLOG_OK, "append: %d %s", rc, pglog_errmsg(l));
	ck_assert_int_gt(id, 0);
	return id;
}

START_TEST(roundtrip_all_bytes)
{
	struct pglog *l = open_log();
	unsigned char data[256];
	struct seen s = { 0 };
	int64_t id, gap, last;
	const char *ch[] = { "bytes" };
	int i;

	for (i = 0; i < 256; i++)
		data[i] = (unsigned char)i;
	ck_assert_int_eq(pglog_append(l, "bytes", "application/octet-stream",
	    "blob:x", data, sizeof(data), &id), MLOG_OK);
	ck_assert_int_eq(id, 1);
	/* Empty data too. */
	ck_assert_int_eq(pglog_append(l, "bytes", NULL, NULL, NULL, 0, NULL),
	    MLOG_OK);
	ck_assert_int_eq(pglog_read(l, ch, 1, 0, 10, collect, &s, &gap,
	    &last), MLOG_OK);
	ck_assert_int_eq(s.n, 2);
	ck_assert_int_eq(gap, 0);
	ck_assert_int_eq(last, 2);
	ck_assert_uint_eq(s.len[0], 256);
	ck_assert_mem_eq(s.data[0], data, 256);
	ck_assert_str_eq(s.type[0], "application/octet-stream");
	ck_assert_str_eq(s.event[0], "blob:x");
	ck_assert_str_eq(s.channel[0], "bytes");
	ck_assert_int_gt(s.time_ms[0], 1600000000000LL);
	ck_assert_uint_eq(s.len[1], 0);
	ck_assert_str_eq(s.type[1], MLOG_DEFAULT_TYPE);
	ck_assert_str_eq(s.event[1], "");
	ck_assert_int_eq(pglog_last_id(l, &id), MLOG_OK);
	ck_assert_int_eq(id, 2);
	pglog_close(l);
}
END_TEST

START_TEST(read_channels_in_id_order)
{
	struct pglog *l = open_log();
	const char *ab[] = { "a", "b" }, *dup[] = { "b", "b" };
	struct seen s = { 0 }, t = { 0 }, u = { 0 };
	int64_t ids[6], gap, last;
	int i;

	ids[0] = append(l, "a", "1");
	ids[1] = append(l, "c", "2");
	ids[2] = append(l, "b", "3");
	ids[3] = append(l, "a", "4");
	ids[4] = append(l, "c", "5");
	ids[5] = append(l, "b", "6");
	for (i = 1; i < 6; i++)
		ck_assert_int_eq(ids[i], ids[i - 1] + 1);
	ck_assert_int_eq(pglog_read(l, ab, 2, 0, 100, collect, &s, &gap,
	    &last), MLOG_OK);
	ck_assert_int_eq(s.n, 4);
	ck_assert_int_eq(s.id[0], ids[0]);
	ck_assert_int_eq(s.id[1], ids[2]);
	ck_assert_int_eq(s.id[2], ids[3]);
	ck_assert_int_eq(s.id[3], ids[5]);
	ck_assert_int_eq(last, ids[5]);
	/* A cursor and a limit. */
	ck_assert_int_eq(pglog_read(l, ab, 2, ids[2], 1, collect, &t, &gap,
	    &last), MLOG_OK);
	ck_assert_int_eq(t.n, 1);
	ck_assert_int_eq(t.id[0], ids[3]);
	ck_assert_int_eq(last, ids[3]);
	/* Every channel (n = 0) and a list naming one twice. */
	ck_assert_int_eq(pglog_read(l, NULL, 0, 0, 100, collect, &u, NULL,
	    NULL), MLOG_OK);
	ck_assert_int_eq(u.n, 6);
	memset(&t, 0, sizeof(t));
	ck_assert_int_eq(pglog_read(l, dup, 2, 0, 100, collect, &t, NULL,
	    &last), MLOG_OK);
	ck_assert_int_eq(t.n, 2);
	/* Nothing new: last stays at the cursor. */
	ck_assert_int_eq(pglog_read(l, ab, 2, ids[5], 100, collect, &t, &gap,
	    &last), MLOG_OK);
	ck_assert_int_eq(last, ids[5]);
	ck_assert_int_eq(gap, 0);
	pglog_close(l);
}
END_TEST

START_TEST(gap_after_prune)
{
	struct pglog *l = open_log();
	const char *g[] = { "g" }, *two[] = { "g", "h" };
	struct seen s = { 0 }, t = { 0 };
	int64_t ids[5], gap, last, n;
	int i;

	for (i = 0; i < 5; i++)
		ids[i] = append(l, "g", "x");
	append(l, "h", "y");
	ck_assert_int_eq(pglog_prune(l, "g", 2, 0, &n), MLOG_OK);
	ck_assert_int_eq(n, 3);
	ck_assert_int_eq(pglog_read(l, g, 1, 0, 10, collect, &s, &gap, &last),
	    MLOG_OK);
	ck_assert_int_eq(s.n, 2);
	ck_assert_int_eq(s.id[0], ids[3]);
	ck_assert_int_eq(gap, ids[2]);
	/* Over two channels: the highest id deleted from either. */
	ck_assert_int_eq(pglog_read(l, two, 2, ids[0], 10, collect, &t, &gap,
	    NULL), MLOG_OK);
	ck_assert_int_eq(gap, ids[2]);
	/* A cursor past what was deleted: no gap. */
	ck_assert_int_eq(pglog_read(l, g, 1, ids[2], 10, collect, &t, &gap,
	    NULL), MLOG_OK);
	ck_assert_int_eq(gap, 0);
	/* Retention on append, from the settings. */
	pglog_close(l);
	cf.retain_count = 3;
	l = open_log();
	for (i = 0; i < 4; i++)
		append(l, "r", "z");
	ck_assert_int_eq(pglog_prune(l, NULL, 0, 0, &n), MLOG_OK);
	ck_assert_int_eq(n, 0);
	{
		struct store_stat st;

		ck_assert_int_eq(pglog_stat(l, "r", &st), MLOG_OK);
		ck_assert_int_eq(st.count, 3);
		ck_assert_int_gt(st.pruned_to, 0);
		/* Prune of every channel by count. */
		ck_assert_int_eq(pglog_prune(l, NULL, 1, 0, &n), MLOG_OK);
		ck_assert_int_eq(n, 2 + 1);  /* r: 2, g: 1, h: 0 */
		ck_assert_int_eq(pglog_stat(l, "r", &st), MLOG_OK);
		ck_assert_int_eq(st.count, 1);
		ck_assert_int_eq(st.first_id, st.last_id);
	}
	pglog_close(l);
}
END_TEST

START_TEST(cursor_beyond_last_id_resets)
{
	struct pglog *l = open_log();
	const char *ch[] = { "news" };
	struct seen s = { 0 };
	int64_t a, b, gap, last;

	a = append(l, "news", "one");
	b = append(l, "news", "two");
	ck_assert_int_eq(pglog_read(l, ch, 1, b + 100, 10, collect, &s, &gap,
	    &last), MLOG_OK);
	ck_assert_int_eq(gap, MLOG_GAP_RESET);
	ck_assert_int_eq(s.n, 2);
	ck_assert_int_eq(s.id[0], a);
	ck_assert_int_eq(last, b);
	/* Every channel too; and a cursor equal to the last id is no reset. */
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(pglog_read(l, NULL, 0, b + 1, 10, collect, &s, &gap,
	    &last), MLOG_OK);
	ck_assert_int_eq(gap, MLOG_GAP_RESET);
	ck_assert_int_eq(s.n, 2);
	ck_assert_int_eq(pglog_read(l, ch, 1, b, 10, collect, &s, &gap,
	    &last), MLOG_OK);
	ck_assert_int_eq(gap, 0);
	ck_assert_int_eq(last, b);
	pglog_close(l);
}
END_TEST

START_TEST(latest)
{
	struct pglog *l = open_log();
	const char *x[] = { "x" }, *xy[] = { "x", "y" };
	struct seen s = { 0 }, t = { 0 };
	int64_t ids[5];
	int i;

	for (i = 0; i < 5; i++)
		ids[i] = append(l, i % 2 ? "y" : "x", "m");
	ck_assert_int_eq(pglog_latest(l, x, 1, 2, collect, &s), MLOG_OK);
	ck_assert_int_eq(s.n, 2);
	ck_assert_int_eq(s.id[0], ids[2]);   /* oldest first */
	ck_assert_int_eq(s.id[1], ids[4]);
	ck_assert_int_eq(pglog_latest(l, xy, 2, 3, collect, &t), MLOG_OK);
	ck_assert_int_eq(t.n, 3);
	ck_assert_int_eq(t.id[0], ids[2]);
	ck_assert_int_eq(t.id[2], ids[4]);
	memset(&t, 0, sizeof(t));
	ck_assert_int_eq(pglog_latest(l, NULL, 0, 100, collect, &t), MLOG_OK);
	ck_assert_int_eq(t.n, 5);
	pglog_close(l);
}
END_TEST

static int
count_stats(void *arg, const struct store_stat *st)
{
	int *n = arg;

	ck_assert_str_ne(st->channel, MLOG_CONTROL);
	(*n)++;
	return 0;
}

START_TEST(stats_and_subscribers)
{
	struct pglog *l;
	struct store_stat st;
	const char *ab[] = { "sa", "sb" }, *a[] = { "sa" };
	char secret[64], host[PGLOG_HOST_MAX + 1], sql[T_SQL_MAX];
	int64_t s1, s2, s3, n, id;
	pid_t pid, child;
	PGconn *c;
	int nst = 0, status;

	cf.heartbeat = 5;   /* lease: PGLOG_LEASE_BEATS * 5 s */
	l = open_log();
	c = conn();
	id = append(l, "sa", "1");
	ck_assert_int_eq(pglog_stat(l, "sa", &st), MLOG_OK);
	ck_assert_str_eq(st.channel, "sa");
	ck_assert_int_eq(st.count, 1);
	ck_assert_int_eq(st.first_id, id);
	ck_assert_int_eq(st.last_id, id);
	ck_assert_int_gt(st.last_time_ms, 0);
	ck_assert_int_eq(st.subscribers, 0);
	ck_assert_int_eq(pglog_stat(l, "nosuch", &st), MLOG_ENOENT);

	ck_assert_int_eq(pglog_stream_open(l, ab, 2, getpid(), "s3cr3t", &s1),
	    MLOG_OK);
	ck_assert_int_eq(pglog_stream_open(l, a, 1, getpid(), NULL, &s2),
	    MLOG_OK);
	ck_assert_int_eq(pglog_subscribers(l, "sa", &n), MLOG_OK);
	ck_assert_int_eq(n, 2);
	ck_assert_int_eq(pglog_subscribers(l, "sb", &n), MLOG_OK);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(pglog_subscribers(l, "never", &n), MLOG_OK);
	ck_assert_int_eq(n, 0);
	ck_assert_int_eq(pglog_stream_info(l, s1, &pid, secret,
	    sizeof(secret)), MLOG_OK);
	ck_assert_int_eq(pid, getpid());
	ck_assert_str_eq(secret, "s3cr3t");
	ck_assert_int_eq(pglog_stream_host(l, s1, host, sizeof(host)), MLOG_OK);
	ck_assert_str_eq(host, pglog_host(l));
	ck_assert_ptr_nonnull(strchr(host, '/'));

	/* A row of another host, seen long ago (past the lease, within the
	 * reaping time): no longer a subscriber, still a row. */
	snprintf(sql, sizeof(sql), "INSERT INTO streams(host, pid, started,"
	    " seen) VALUES('elsewhere/1', 1, 0, pushcgi_now_ms() - %d);"
	    " INSERT INTO subscriptions SELECT max(id), 'sa' FROM streams",
	    PGLOG_LEASE_BEATS * 5 * 1000 + 1000);
	sql_ok(c, sql);
	s3 = sql_int(c, "SELECT max(id) FROM streams");
	ck_assert_int_eq(pglog_stat(l, "sa", &st), MLOG_OK);
	ck_assert_int_eq(st.subscribers, 2);
	ck_assert_int_eq(sql_int(c, "SELECT count(*) FROM streams"), 3);
	/* Seen now again: it counts. */
	sql_ok(c, "UPDATE streams SET seen = pushcgi_now_ms() WHERE host ="
	    " 'elsewhere/1'");
	ck_assert_int_eq(pglog_subscribers(l, "sa", &n), MLOG_OK);
	ck_assert_int_eq(n, 3);
	/* Our own rows past the lease stop counting; a touch renews them. */
	sql_ok(c, "UPDATE streams SET seen = 0");
	ck_assert_int_eq(pglog_subscribers(l, "sa", &n), MLOG_OK);
	ck_assert_int_eq(n, 0);
	ck_assert_int_eq(pglog_stream_touch(l, getpid(), &n), MLOG_OK);
	ck_assert_int_eq(n, 2);
	ck_assert_int_eq(pglog_subscribers(l, "sa", &n), MLOG_OK);
	ck_assert_int_eq(n, 2);
	/* The other host's row, unseen past the reaping time, is reaped. */
	ck_assert_int_eq(pglog_reap(l), MLOG_OK);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM streams WHERE id ="
	    " %lld", (long long)s3);
	ck_assert_int_eq(sql_int(c, sql), 0);

	/* A stream of a process of this host that has exited is reaped at
	 * once. */
	child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0)
		_exit(0);
	ck_assert_int_eq(waitpid(child, &status, 0), child);
	ck_assert_int_eq(pglog_stream_open(l, a, 1, child, NULL, &s3),
	    MLOG_OK);
	ck_assert_int_eq(pglog_subscribers(l, "sa", &n), MLOG_OK);
	ck_assert_int_eq(n, 3);
	ck_assert_int_eq(pglog_stat(l, "sa", &st), MLOG_OK);
	ck_assert_int_eq(st.subscribers, 2);
	ck_assert_int_eq(pglog_stream_info(l, s3, NULL, NULL, 0), MLOG_ENOENT);

	/* Channels are those published to: "sb" has subscribers only. */
	ck_assert_int_eq(pglog_stats(l, count_stats, &nst), MLOG_OK);
	ck_assert_int_eq(nst, 1);
	ck_assert_int_eq(pglog_stream_close(l, s1), MLOG_OK);
	ck_assert_int_eq(pglog_stream_close(l, s1), MLOG_ENOENT);
	ck_assert_int_eq(pglog_subscribers(l, "sb", &n), MLOG_OK);
	ck_assert_int_eq(n, 0);
	ck_assert_int_eq(sql_int(c, "SELECT count(*) FROM subscriptions"), 1);
	ck_assert_int_eq(pglog_stream_close(l, s2), MLOG_OK);
	/* Remove: messages and row. */
	ck_assert_int_eq(pglog_remove(l, "sa", &n), MLOG_OK);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(pglog_stat(l, "sa", &st), MLOG_ENOENT);
	ck_assert_int_eq(pglog_remove(l, "sa", &n), MLOG_ENOENT);
	PQfinish(c);
	pglog_close(l);
}
END_TEST

START_TEST(control_messages)
{
	struct pglog *l = open_log();
	struct seen s = { 0 }, t = { 0 };
	int64_t a, b, m, last;
	int nst = 0;

	m = append(l, "news", "before");
	ck_assert_int_eq(pglog_control_end_stream_id(l, 42, &a), MLOG_OK);
	ck_assert_int_eq(pglog_control_end_channel_id(l, "news", &b), MLOG_OK);
	ck_assert_int_eq(a, m + 1);
	ck_assert_int_eq(b, m + 2);
	ck_assert_int_eq(pglog_control_end_stream_id(l, 0, NULL), MLOG_EINVAL);
	ck_assert_int_eq(pglog_control_end_channel_id(l, ".control", NULL),
	    MLOG_EINVAL);
	ck_assert_int_eq(pglog_control_read(l, 0, b, 10, collect, &s, &last),
	    MLOG_OK);
	ck_assert_int_eq(s.n, 2);
	ck_assert_int_eq(last, b);
	ck_assert_str_eq(s.channel[0], MLOG_CONTROL);
	ck_assert_str_eq(s.type[0], "text/plain");
	ck_assert_int_eq(s.ctl[0], STORE_CONTROL_END_STREAM);
	ck_assert_int_eq(s.ctl_stream[0], 42);
	ck_assert_int_eq(s.ctl[1], STORE_CONTROL_END_CHANNEL);
	ck_assert_str_eq(s.ctl_channel[1], "news");
	/* upto bounds the read. */
	ck_assert_int_eq(pglog_control_read(l, 0, a, 10, collect, &t, &last),
	    MLOG_OK);
	ck_assert_int_eq(t.n, 1);
	/* Every channel leaves the control channel out: reads, stats. */
	memset(&t, 0, sizeof(t));
	ck_assert_int_eq(pglog_read(l, NULL, 0, 0, 10, collect, &t, NULL,
	    &last), MLOG_OK);
	ck_assert_int_eq(t.n, 1);
	ck_assert_int_eq(t.id[0], m);
	ck_assert_int_eq(pglog_stats(l, count_stats, &nst), MLOG_OK);
	ck_assert_int_eq(nst, 1);
	/* A plain SQL control request is one too, and an ordinary publish
	 * cannot make one. */
	{
		PGconn *c = conn();
		int64_t id;

		sql_ok(c, "INSERT INTO messages(channel, type, data)"
		    " VALUES('.control', 'text/plain', 'end-stream 7')");
		id = sql_int(c, "SELECT n FROM counter");
		memset(&t, 0, sizeof(t));
		ck_assert_int_eq(pglog_control_read(l, b, id, 10, collect, &t,
		    NULL), MLOG_OK);
		ck_assert_int_eq(t.n, 1);
		ck_assert_int_eq(t.ctl[0], STORE_CONTROL_END_STREAM);
		ck_assert_int_eq(t.ctl_stream[0], 7);
		PQfinish(c);
	}
	ck_assert_int_eq(pglog_append(l, ".control", NULL, NULL, "end-stream 1",
	    12, NULL), MLOG_EINVAL);
	pglog_close(l);
}
END_TEST

START_TEST(checks_refuse_bad_rows)
{
	struct pglog *l = open_log();
	PGconn *c = conn();
	struct store_stat st;
	char sql[T_SQL_MAX], name[VALID_CHANNEL_MAX + 2];
	static const char *const bad[] = {
		"INSERT INTO messages(channel) VALUES('')",
		"INSERT INTO messages(channel) VALUES('.hidden')",
		"INSERT INTO messages(channel) VALUES('a b')",
		"INSERT INTO messages(channel) VALUES('a/b')",
		"INSERT INTO messages(channel) VALUES('caf\xc3\xa9')",
		"INSERT INTO messages(channel) VALUES('a' || chr(10))",
		"INSERT INTO messages(channel, type) VALUES('ok', '')",
		"INSERT INTO messages(channel, type) VALUES('ok', 'a' || chr(9))",
		"INSERT INTO messages(channel, type) VALUES('ok', 't/\xc3\xa9')",
		"INSERT INTO messages(channel, event) VALUES('ok', '')",
		"INSERT INTO messages(channel, event) VALUES('ok', 'a b')",
		"INSERT INTO messages(channel, event) VALUES('ok', 'a;b')",
	};
	size_t i;
	int64_t id;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(strcmp(sql_state(c, bad[i]), "23514") == 0,
		    "not refused by a CHECK: %s (%s)", bad[i],
		    sql_state(c, bad[i]));
	/* The caps: 128 bytes of channel pass, 129 do not; 64 / 65 of event;
	 * 255 / 256 of type. */
	memset(name, 'n', sizeof(name));
	name[VALID_CHANNEL_MAX] = '\0';
	snprintf(sql, sizeof(sql), "INSERT INTO messages(channel) VALUES('%s')",
	    name);
	ck_assert_str_eq(sql_state(c, sql), "");
	name[VALID_CHANNEL_MAX] = 'n';
	name[VALID_CHANNEL_MAX + 1] = '\0';
	snprintf(sql, sizeof(sql), "INSERT INTO messages(channel) VALUES('%s')",
	    name);
	ck_assert_str_eq(sql_state(c, sql), "23514");
	ck_assert_str_eq(sql_state(c, "INSERT INTO messages(channel, event)"
	    " VALUES('ok', repeat('e', 64))"), "");
	ck_assert_str_eq(sql_state(c, "INSERT INTO messages(channel, event)"
	    " VALUES('ok', repeat('e', 65))"), "23514");
	ck_assert_str_eq(sql_state(c, "INSERT INTO messages(channel, type)"
	    " VALUES('ok', 'a/' || repeat('b', 253))"), "");
	ck_assert_str_eq(sql_state(c, "INSERT INTO messages(channel, type)"
	    " VALUES('ok', 'a/' || repeat('b', 254))"), "23514");
	/* What valid.c allows passes: the schema is not stricter. */
	ck_assert_str_eq(sql_state(c, "INSERT INTO messages(channel, type,"
	    " event) VALUES('A-z_0.9', 'text/plain; charset=\"x y\"',"
	    " 'a.b_c:d-e')"), "");
	/* The plain publish of the README, with an id from the counter (an
	 * id given is replaced) and its channel row. */
	id = sql_int(c, "SELECT n FROM counter");
	sql_ok(c, "INSERT INTO messages(id, channel, data) VALUES(999, 'news',"
	    " 'hi')");
	ck_assert_int_eq(sql_int(c, "SELECT max(id) FROM messages"), id + 1);
	ck_assert_int_eq(pglog_stat(l, "news", &st), MLOG_OK);
	ck_assert_int_eq(st.last_id, id + 1);
	/* An id or channel never changes. */
	ck_assert_str_eq(sql_state(c, "UPDATE messages SET channel = 'other'"),
	    "23514");
	ck_assert_str_eq(sql_state(c, "UPDATE messages SET id = id + 100"),
	    "23514");
	/* Refused rows took no id: the counter moved only for the rows that
	 * went in, and left no hole. */
	ck_assert_int_eq(sql_int(c, "SELECT n FROM counter"), id + 1);
	ck_assert_int_eq(sql_int(c, "SELECT count(*) FROM messages"), id + 1);
	PQfinish(c);
	pglog_close(l);
}
END_TEST

START_TEST(api_validation)
{
	struct pglog *l;
	char big[64];

	cf.max_data = 10;
	l = open_log();
	memset(big, 'x', sizeof(big));
	ck_assert_int_eq(pglog_append(l, "a b", NULL, NULL, "x", 1, NULL),
	    MLOG_EINVAL);
	ck_assert_int_eq(pglog_append(l, "ok", "nope", NULL, "x", 1, NULL),
	    MLOG_EINVAL);
	ck_assert_int_eq(pglog_append(l, "ok", NULL, "a b", "x", 1, NULL),
	    MLOG_EINVAL);
	ck_assert_int_eq(pglog_append(l, "ok", NULL, NULL, big, 11, NULL),
	    MLOG_E2BIG);
	ck_assert_int_eq(pglog_append(l, "ok", NULL, NULL, big, 10, NULL),
	    MLOG_OK);
	ck_assert(strlen(pglog_errmsg(l)) > 0);
	pglog_close(l);
}
END_TEST

START_TEST(schema_versions)
{
	struct pglog *l;
	PGconn *c;
	char err[T_ERR_MAX];

	/* No schema, no PGLOG_CREATE: ENOENT. */
	ck_assert_int_eq(pglog_open(&l, uri, &cf, 0, err, sizeof(err)),
	    MLOG_ENOENT);
	ck_assert_ptr_null(l);
	l = open_log();
	pglog_close(l);
	/* Created once: a second create opens it. */
	l = open_log();
	pglog_close(l);
	ck_assert_int_eq(pglog_open(&l, uri, &cf, PGLOG_READONLY, err,
	    sizeof(err)), MLOG_OK);
	ck_assert_int_eq(pglog_append(l, "ro", NULL, NULL, "x", 1, NULL),
	    MLOG_ERR);
	pglog_close(l);
	c = conn();
	sql_ok(c, "UPDATE schema_version SET version = 99");
	ck_assert_int_eq(pglog_open(&l, uri, &cf, PGLOG_CREATE, err,
	    sizeof(err)), MLOG_ESCHEMA);
	ck_assert_ptr_nonnull(strstr(err, "99"));
	/* Somebody else's messages table. */
	sql_ok(c, "DROP TABLE schema_version");
	ck_assert_int_eq(pglog_open(&l, uri, &cf, PGLOG_CREATE, err,
	    sizeof(err)), MLOG_ESCHEMA);
	PQfinish(c);
	/* A server nobody listens on: unavailable. */
	ck_assert_int_eq(pglog_open(&l, "postgresql://127.0.0.1:1/x"
	    "?connect_timeout=5", &cf, 0, err, sizeof(err)), MLOG_EUNAVAIL);
	ck_assert_ptr_nonnull(strstr(err, "unavailable"));
}
END_TEST

/* T2's pending "BEGIN; INSERT ... RETURNING id": its id, once it came. */
static int64_t
t2_id(PGconn *t2)
{
	PGresult *r;
	int64_t id = 0;

	while ((r = PQgetResult(t2)) != NULL) {
		ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK ||
		    PQresultStatus(r) == PGRES_TUPLES_OK, "T2: %s",
		    PQresultErrorMessage(r));
		if (PQresultStatus(r) == PGRES_TUPLES_OK)
			id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		PQclear(r);
	}
	return id;
}

/* A reader: what it delivers goes to s, its cursor is *cur. */
static void
reader(struct pglog *l, const char *const *ch, int n, struct seen *s,
    int64_t *cur)
{
	ck_assert_int_eq(pglog_read(l, ch, n, *cur, 10, collect, s, NULL, cur),
	    MLOG_OK);
}

/*
 * The late commit.  T1 inserts and keeps its transaction open; T2 inserts
 * on another channel.  With ids from the counter T2 waits for T1 (seen as
 * a lock wait in pg_stat_activity) and gets the next id once T1 has
 * committed; a reader that delivered T1's row (cursor = T1's id) before
 * T2 commits gets T2's row next.  With ids from a sequence T2 would not
 * wait: it would commit first with the higher id, and a reader that
 * delivered it would never get T1's row (this test then fails so).
 */
START_TEST(late_commit_keeps_order)
{
	struct pglog *l = open_log();
	PGconn *t1 = conn(), *t2 = conn(), *obs = conn();
	const char *ch[] = { "late", "later" };
	struct seen s = { 0 };
	char sql[T_SQL_MAX];
	int64_t id1, id2 = 0, cur = 0, waiting = 0;
	int i;

	sql_ok(t1, "BEGIN");
	id1 = sql_int(t1, "INSERT INTO messages(channel, data)"
	    " VALUES('late', 't1') RETURNING id");
	/* Another channel: only the counter can make T2 wait. */
	ck_assert_int_eq(PQsendQuery(t2, "BEGIN; INSERT INTO messages(channel,"
	    " data) VALUES('later', 't2') RETURNING id"), 1);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_stat_activity"
	    " WHERE pid = %d AND wait_event_type = 'Lock'", PQbackendPID(t2));
	/* Until T2 waits for a lock or has inserted. */
	for (i = 0; i < T_WAIT_TRIES; i++) {
		if ((waiting = sql_int(obs, sql)) != 0)
			break;
		ck_assert_int_eq(PQconsumeInput(t2), 1);
		if (!PQisBusy(t2))
			break;
		usleep(5000);
	}
	if (!waiting) {
		/* T2 did not wait: it commits first. */
		id2 = t2_id(t2);
		sql_ok(t2, "COMMIT");
	}
	reader(l, ch, 2, &s, &cur);
	sql_ok(t1, "COMMIT");
	if (waiting) {
		id2 = t2_id(t2);
		reader(l, ch, 2, &s, &cur);
		/* Between the commits the reader has T1's row only. */
		ck_assert_int_eq(s.n, 1);
		ck_assert_int_eq(cur, id1);
		sql_ok(t2, "COMMIT");
	}
	reader(l, ch, 2, &s, &cur);
	/* The reader got both rows, once each, in id order. */
	ck_assert_msg(s.n == 2, "the reader delivered %d of the 2 rows "
	    "(ids %lld, %lld)", s.n, (long long)id1, (long long)id2);
	ck_assert_int_lt(s.id[0], s.id[1]);
	ck_assert_int_eq(s.id[0], id1);
	ck_assert_int_eq(s.id[1], id2);
	ck_assert_msg(waiting, "T2 did not wait for T1's commit");
	PQfinish(t1);
	PQfinish(t2);
	PQfinish(obs);
	pglog_close(l);
}
END_TEST

/* A publisher that keeps a transaction open after its insert holds the
 * counter row: the others give up after PGLOG_LOCK_MS, unavailable. */
START_TEST(held_counter_is_unavailable)
{
	struct pglog *l = open_log();
	PGconn *t1 = conn();
	int rc;

	sql_ok(t1, "BEGIN");
	sql_ok(t1, "INSERT INTO messages(channel, data) VALUES('held', 'x')");
	rc = pglog_append(l, "other", NULL, NULL, "y", 1, NULL);
	ck_assert_msg(rc == MLOG_EUNAVAIL, "append behind a held counter: %d "
	    "%s", rc, pglog_errmsg(l));
	ck_assert_ptr_nonnull(strstr(pglog_errmsg(l), "55P03"));
	sql_ok(t1, "ROLLBACK");
	/* The connection is usable again at once, and the rolled-back
	 * insert left no hole. */
	ck_assert_int_eq(append(l, "other", "z"), 1);
	PQfinish(t1);
	pglog_close(l);
}
END_TEST

/*
 * Publishers at once, through pglog_append and plain SQL, while a reader
 * follows with its cursor: it gets every message exactly once, in id
 * order, and ids have no holes.
 */
#define T_PUBS     4
#define T_PER_PUB  150
#define T_READS    20000  /* reads the follower makes at most */
START_TEST(concurrent_publishers_follower)
{
	struct pglog *l = open_log();
	const char *ch[] = { "c0", "c1", "c2", "c3" };
	int64_t cur = 0, prev = 0, got = 0, gap;
	pid_t kids[T_PUBS];
	int i, j, status, reads = 0;

	for (i = 0; i < T_PUBS; i++) {
		kids[i] = fork();
		ck_assert_int_ge(kids[i], 0);
		if (kids[i] == 0) {
			struct pglog *p;
			PGconn *c;
			char sql[T_SQL_MAX];

			if (i % 2 == 0) {
				if (pglog_open(&p, uri, &cf, 0, NULL, 0) !=
				    MLOG_OK)
					_exit(1);
				for (j = 0; j < T_PER_PUB; j++)
					if (pglog_append(p, ch[i], NULL, NULL,
					    "m", 1, NULL) != MLOG_OK)
						_exit(2);
				pglog_close(p);
			} else {
				c = PQconnectdb(uri);
				snprintf(sql, sizeof(sql), "INSERT INTO"
				    " messages(channel, data) VALUES('%s',"
				    " 'm')", ch[i]);
				for (j = 0; j < T_PER_PUB; j++) {
					PGresult *r = PQexec(c, sql);

					if (PQresultStatus(r) !=
					    PGRES_COMMAND_OK)
						_exit(3);
					PQclear(r);
				}
				PQfinish(c);
			}
			_exit(0);
		}
	}
	while (got < T_PUBS * T_PER_PUB && reads++ < T_READS) {
		struct seen s = { 0 };

		ck_assert_int_eq(pglog_read(l, ch, T_PUBS, cur, T_MSGS_MAX,
		    collect, &s, &gap, &cur), MLOG_OK);
		ck_assert_int_eq(gap, 0);
		for (j = 0; j < s.n; j++) {
			ck_assert_int_eq(s.id[j], prev + 1);
			prev = s.id[j];
		}
		got += s.n;
		if (s.n == 0)
			usleep(1000);
	}
	for (i = 0; i < T_PUBS; i++) {
		ck_assert_int_eq(waitpid(kids[i], &status, 0), kids[i]);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		    "publisher %d failed (%d)", i, status);
	}
	ck_assert_int_eq(got, T_PUBS * T_PER_PUB);
	pglog_close(l);
}
END_TEST

/* Wait for a notification on listener l: 1 if one came. */
static int
wait_notified(struct pglog *l, int64_t *last)
{
	struct pollfd pfd;
	int rc, i;

	for (i = 0; i < T_POLL_MS / 100; i++) {
		if ((rc = pglog_notified(l, last)) != 0)
			return rc;
		pfd.fd = pglog_socket(l);
		pfd.events = POLLIN;
		pfd.revents = 0;
		poll(&pfd, 1, 100);
	}
	return 0;
}

START_TEST(notify_on_plain_insert)
{
	struct pglog *l = open_log(), *w = open_log();
	PGconn *c = conn();
	int64_t id, last = 0;

	ck_assert_int_eq(pglog_listen(w), MLOG_OK);
	ck_assert_int_ge(pglog_socket(w), 0);
	ck_assert_int_eq(pglog_notified(w, &last), 0);
	sql_ok(c, "INSERT INTO messages(channel, data) VALUES('news', 'hi')");
	id = sql_int(c, "SELECT n FROM counter");
	ck_assert_int_eq(wait_notified(w, &last), 1);
	ck_assert_int_eq(last, id);
	/* An uncommitted insert notifies no one; its commit does. */
	sql_ok(c, "BEGIN");
	sql_ok(c, "INSERT INTO messages(channel, data) VALUES('news', 'a')");
	sql_ok(c, "INSERT INTO messages(channel, data) VALUES('news', 'b')");
	ck_assert_int_eq(pglog_notified(w, &last), 0);
	sql_ok(c, "COMMIT");
	ck_assert_int_eq(wait_notified(w, &last), 1);
	ck_assert_int_eq(last, id + 2);
	/* pglog_append and control requests notify too. */
	id = append(l, "news", "c");
	ck_assert_int_eq(wait_notified(w, &last), 1);
	ck_assert_int_eq(last, id);
	ck_assert_int_eq(pglog_control_end_stream_id(l, 5, &id), MLOG_OK);
	ck_assert_int_eq(wait_notified(w, &last), 1);
	ck_assert_int_eq(last, id);
	PQfinish(c);
	pglog_close(w);
	pglog_close(l);
}
END_TEST

/* Run $PUSHCGI_TEST_PG_CTL with what (stop or start). */
static int
pg_ctl(const char *what)
{
	char cmd[PATH_MAX + 64];
	const char *ctl = getenv("PUSHCGI_TEST_PG_CTL");

	snprintf(cmd, sizeof(cmd), "%s %s", ctl, what);
	return system(cmd);
}

START_TEST(server_down_then_reconnect)
{
	struct pglog *l, *w;
	int64_t id, id2, last = 0;
	int rc;

	if (getenv("PUSHCGI_TEST_PG_CTL") == NULL) {
		printf("SKIP - server_down_then_reconnect: PUSHCGI_TEST_PG_CTL"
		    " unset\n");
		return;
	}
	l = open_log();
	w = open_log();
	ck_assert_int_eq(pglog_listen(w), MLOG_OK);
	id = append(l, "down", "before");
	ck_assert_int_eq(wait_notified(w, &last), 1);
	ck_assert_int_eq(pg_ctl("stop"), 0);
	rc = pglog_append(l, "down", NULL, NULL, "x", 1, NULL);
	ck_assert_msg(rc == MLOG_EUNAVAIL, "append with the server down: %d %s",
	    rc, pglog_errmsg(l));
	ck_assert_ptr_nonnull(strstr(pglog_errmsg(l), "unavailable"));
	ck_assert_ptr_null(strchr(pglog_errmsg(l), '\n'));
	ck_assert_int_eq(pglog_last_id(l, &id2), MLOG_EUNAVAIL);
	ck_assert_int_eq(pglog_reconnect(l), MLOG_EUNAVAIL);
	ck_assert_int_eq(wait_notified(w, &last), MLOG_EUNAVAIL);
	ck_assert_int_eq(pg_ctl("start"), 0);
	rc = pglog_reconnect(l);
	ck_assert_msg(rc == MLOG_OK, "reconnect: %d %s", rc, pglog_errmsg(l));
	ck_assert_int_eq(pglog_reconnect(w), MLOG_OK);
	/* The statements are prepared again; the listener listens again. */
	id2 = append(l, "down", "after");
	ck_assert_int_eq(id2, id + 1);
	ck_assert_int_eq(wait_notified(w, &last), 1);
	ck_assert_int_eq(last, id2);
	pglog_close(w);
	pglog_close(l);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("pglog");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, roundtrip_all_bytes);
	tcase_add_test(tc, read_channels_in_id_order);
	tcase_add_test(tc, gap_after_prune);
	tcase_add_test(tc, cursor_beyond_last_id_resets);
	tcase_add_test(tc, latest);
	tcase_add_test(tc, stats_and_subscribers);
	tcase_add_test(tc, control_messages);
	tcase_add_test(tc, checks_refuse_bad_rows);
	tcase_add_test(tc, api_validation);
	tcase_add_test(tc, schema_versions);
	tcase_add_test(tc, late_commit_keeps_order);
	tcase_add_test(tc, held_counter_is_unavailable);
	tcase_add_test(tc, concurrent_publishers_follower);
	tcase_add_test(tc, notify_on_plain_insert);
	tcase_add_test(tc, server_down_then_reconnect);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
