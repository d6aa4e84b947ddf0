/*
 * Unit tests of lib/mlog.c: ids, retention, cursor reads and gaps,
 * validation, the schema as a public SQL interface, change detection,
 * streams, schema versions.  Each test gets its own temporary directory.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "conf.h"
#include "mlog.h"
#include "valid.h"

#define T_MSGS_MAX  (MLOG_READ_MAX + 10) /* messages one collector keeps */
#define T_DATA_MAX  64                   /* bytes of data it keeps */
#define T_CREATORS  4                    /* processes creating one log */
#define T_NOBODY    65534                /* a user who is not root */
#define T_ERR_MAX   1024                 /* bytes of a reason kept */

static char dir[64];
static char dbpath[128];
static struct conf cf;

/* What a read callback saw. */
struct seen {
	int n;
	int stop_after;            /* 0 = never stop */
	int64_t id[T_MSGS_MAX];
	char channel[T_MSGS_MAX][VALID_CHANNEL_MAX + 1];
	char type[4][VALID_TYPE_MAX + 1];   /* of the first four */
	char event[4][VALID_EVENT_MAX + 1]; /* "" if none */
	char data[4][T_DATA_MAX];
	size_t len[4];
	int64_t time_ms[4];
};

static void
setup(void)
{
	snprintf(dir, sizeof(dir), "%s", "/tmp/check_mlog-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(dbpath, sizeof(dbpath), "%s/log.db", dir);
	conf_defaults(&cf);
	snprintf(cf.db, sizeof(cf.db), "%s", dbpath);
	cf.retain_count = 0;
	cf.retain_age = 0;
}

static void
teardown(void)
{
	char p[160];
	const char *sfx[] = { "", "-wal", "-shm", "-journal" };
	size_t i;

	for (i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		snprintf(p, sizeof(p), "%s%s", dbpath, sfx[i]);
		unlink(p);
		snprintf(p, sizeof(p), "%s/new.db%s", dir, sfx[i]);
		unlink(p);
	}
	rmdir(dir);
}

/* A log on the current settings, created if needed. */
static struct mlog *
open_log(void)
{
	struct mlog *l;
	char err[256];
	int rc;

	rc = mlog_open(&l, &cf, MLOG_CREATE, err, sizeof(err));
	ck_assert_msg(rc == MLOG_OK, "mlog_open: %s", err);
	return l;
}

/* A second, plain SQLite connection, as the sqlite3 shell would be. */
static sqlite3 *
open_sql(void)
{
	sqlite3 *db;

	ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, MLOG_BUSY_MS);
	return db;
}

/* One integer from a query on a plain connection. */
static int64_t
sql_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	int64_t v;

	ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL),
	    SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static int64_t
count_rows(struct mlog *l)
{
	return sql_int(mlog_db(l), "SELECT count(*) FROM messages");
}

static int64_t
append(struct mlog *l, const char *channel, const char *data)
{
	int64_t id = -1;

	ck_assert_int_eq(mlog_append(l, channel, NULL, NULL, data,
	    strlen(data), &id), MLOG_OK);
	return id;
}

static int
collect(void *arg, const struct store_msg *m)
{
	struct seen *s = arg;
	int i = s->n;

	ck_assert_int_lt(i, T_MSGS_MAX);
	s->id[i] = m->id;
	snprintf(s->channel[i], sizeof(s->channel[i]), "%s", m->channel);
	if (i < 4) {
		snprintf(s->type[i], sizeof(s->type[i]), "%s", m->type);
		snprintf(s->event[i], sizeof(s->event[i]), "%s",
		    m->event != NULL ? m->event : "");
		ck_assert_uint_lt(m->len, T_DATA_MAX);
		memcpy(s->data[i], m->data, m->len);
		s->data[i][m->len] = '\0';
		s->len[i] = m->len;
		s->time_ms[i] = m->time_ms;
	}
	s->n++;
	return s->stop_after > 0 && s->n >= s->stop_after ? 7 : 0;
}

/* No statement of this connection is mid-step: no read transaction is
 * left open between calls. */
static void
assert_idle(struct mlog *l)
{
	sqlite3_stmt *st = NULL;

	ck_assert(sqlite3_get_autocommit(mlog_db(l)));
	while ((st = sqlite3_next_stmt(mlog_db(l), st)) != NULL)
		ck_assert_msg(!sqlite3_stmt_busy(st), "statement left open: "
		    "%s", sqlite3_sql(st));
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

START_TEST(ids_never_reused)
{
	struct mlog *l = open_log();
	int64_t id, prev = 0, last, del;
	int i;

	ck_assert_int_eq(mlog_last_id(l, &last), MLOG_OK);
	ck_assert_int_eq(last, 0);
	for (i = 0; i < 20; i++) {
		id = append(l, i % 2 ? "a" : "b", "x");
		ck_assert_int_gt(id, prev);
		prev = id;
	}
	ck_assert_int_eq(mlog_last_id(l, &last), MLOG_OK);
	ck_assert_int_eq(last, prev);

	/* Deleting the newest rows must not hand their ids out again. */
	ck_assert_int_eq(sqlite3_exec(mlog_db(l), "DELETE FROM messages WHERE "
	    "id > 15", NULL, NULL, NULL), SQLITE_OK);
	id = append(l, "a", "after delete");
	ck_assert_int_gt(id, prev);
	prev = id;

	ck_assert_int_eq(mlog_remove(l, "a", &del), MLOG_OK);
	ck_assert_int_gt(del, 0);
	ck_assert_int_eq(mlog_remove(l, "a", &del), MLOG_ENOENT);
	ck_assert_int_eq(mlog_remove(l, "b", &del), MLOG_OK);
	ck_assert_int_eq(count_rows(l), 0);
	ck_assert_int_eq(mlog_last_id(l, &last), MLOG_OK);
	ck_assert_int_eq(last, prev);
	id = append(l, "a", "after remove");
	ck_assert_int_gt(id, prev);
	assert_idle(l);
	mlog_close(l);

	/* And across a reopen. */
	l = open_log();
	ck_assert_int_gt(append(l, "a", "reopened"), id);
	mlog_close(l);
}
END_TEST

START_TEST(retention_by_count)
{
	struct mlog *l;
	struct store_stat st;
	int64_t id = 0, del;
	int i;

	cf.retain_count = 3;
	l = open_log();
	for (i = 0; i < 10; i++) {
		id = append(l, "keep", "x");
		append(l, "other", "y");
	}
	ck_assert_int_eq(mlog_stat(l, "keep", &st), MLOG_OK);
	ck_assert_int_eq(st.count, 3);
	ck_assert_int_eq(st.last_id, id);
	/* The three newest of "keep" are ids id-4, id-2, id. */
	ck_assert_int_eq(st.first_id, id - 4);
	ck_assert_int_eq(st.pruned_to, id - 6);
	ck_assert_int_eq(mlog_stat(l, "other", &st), MLOG_OK);
	ck_assert_int_eq(st.count, 3);

	/* Explicit prune: one channel, then all. */
	ck_assert_int_eq(mlog_prune(l, "keep", 1, 0, &del), MLOG_OK);
	ck_assert_int_eq(del, 2);
	ck_assert_int_eq(mlog_stat(l, "keep", &st), MLOG_OK);
	ck_assert_int_eq(st.count, 1);
	ck_assert_int_eq(st.first_id, id);
	ck_assert_int_eq(mlog_prune(l, NULL, 2, 0, &del), MLOG_OK);
	ck_assert_int_eq(del, 1);
	ck_assert_int_eq(count_rows(l), 3);
	ck_assert_int_eq(mlog_prune(l, NULL, 0, 0, &del), MLOG_OK);
	ck_assert_int_eq(del, 0);
	ck_assert_int_eq(mlog_prune(l, NULL, -1, 0, &del), MLOG_EINVAL);
	assert_idle(l);
	mlog_close(l);
}
END_TEST

START_TEST(retention_by_age)
{
	struct mlog *l;
	struct store_stat st;
	sqlite3_stmt *ins;
	int64_t old, del;
	int i;

	cf.retain_age = 60;
	l = open_log();
	/* Three messages from two minutes ago, as plain SQL may write them,
	 * and one on another channel. */
	ck_assert_int_eq(sqlite3_prepare_v2(mlog_db(l), "INSERT INTO "
	    "messages(channel, time, data) VALUES(?1, ?2, 'old')", -1, &ins,
	    NULL), SQLITE_OK);
	old = now_ms() - 120 * 1000;
	for (i = 0; i < 4; i++) {
		sqlite3_bind_text(ins, 1, i < 3 ? "aged" : "else", -1,
		    SQLITE_STATIC);
		sqlite3_bind_int64(ins, 2, old + i);
		ck_assert_int_eq(sqlite3_step(ins), SQLITE_DONE);
		sqlite3_reset(ins);
	}
	sqlite3_finalize(ins);

	append(l, "aged", "new");
	ck_assert_int_eq(mlog_stat(l, "aged", &st), MLOG_OK);
	ck_assert_int_eq(st.count, 1);
	ck_assert_int_eq(st.pruned_to, 3);
	/* Only the channel appended to is trimmed on append. */
	ck_assert_int_eq(mlog_stat(l, "else", &st), MLOG_OK);
	ck_assert_int_eq(st.count, 1);
	/* An explicit prune by age covers every channel. */
	ck_assert_int_eq(mlog_prune(l, NULL, 0, 60, &del), MLOG_OK);
	ck_assert_int_eq(del, 1);
	ck_assert_int_eq(mlog_stat(l, "else", &st), MLOG_OK);
	ck_assert_int_eq(st.count, 0);
	ck_assert_int_eq(st.first_id, 0);
	ck_assert_int_eq(st.pruned_to, 4);
	/* An emptied channel still knows its last message. */
	ck_assert_int_eq(st.last_id, 4);
	ck_assert_int_eq(st.last_time_ms, old + 3);
	ck_assert_int_eq(mlog_stat(l, "aged", &st), MLOG_OK);
	ck_assert_int_eq(st.last_id, 5);
	ck_assert_int_ge(st.last_time_ms, now_ms() - 60 * 1000);
	/* A huge age deletes nothing and does not overflow. */
	ck_assert_int_eq(mlog_prune(l, NULL, 0, 0x7fffffffL, &del), MLOG_OK);
	ck_assert_int_eq(del, 0);
	ck_assert_int_eq(count_rows(l), 1);
	assert_idle(l);
	mlog_close(l);
}
END_TEST

START_TEST(read_cursor_channels)
{
	const char *ac[] = { "a", "c" };
	const char *all[VALID_CHANNELS_MAX + 1];
	struct mlog *l = open_log();
	struct seen s;
	int64_t gap, last;
	int i;

	/* ids 1..12 on a, b, c in turn: a = 1,4,7,10; c = 3,6,9,12. */
	for (i = 0; i < 12; i++)
		append(l, i % 3 == 0 ? "a" : i % 3 == 1 ? "b" : "c", "m");

	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(mlog_read(l, ac, 2, 0, 3, collect, &s, &gap, &last),
	    MLOG_OK);
	ck_assert_int_eq(s.n, 3);
	ck_assert_int_eq(s.id[0], 1);
	ck_assert_int_eq(s.id[1], 3);
	ck_assert_int_eq(s.id[2], 4);
	ck_assert_str_eq(s.channel[1], "c");
	ck_assert_int_eq(gap, 0);
	ck_assert_int_eq(last, 4);

	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(mlog_read(l, ac, 2, last, 100, collect, &s, &gap,
	    &last), MLOG_OK);
	ck_assert_int_eq(s.n, 5);
	for (i = 1; i < s.n; i++)
		ck_assert_int_gt(s.id[i], s.id[i - 1]);
	ck_assert_int_eq(last, 12);

	/* Nothing new: last stays at the cursor. */
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(mlog_read(l, ac, 2, 12, 100, collect, &s, &gap,
	    &last), MLOG_OK);
	ck_assert_int_eq(s.n, 0);
	ck_assert_int_eq(last, 12);

	/* Every channel (n == 0), and a callback that stops early. */
	memset(&s, 0, sizeof(s));
	s.stop_after = 2;
	ck_assert_int_eq(mlog_read(l, NULL, 0, 5, 100, collect, &s, &gap,
	    &last), 7);
	ck_assert_int_eq(s.n, 2);
	ck_assert_int_eq(s.id[0], 6);
	ck_assert_int_eq(last, 7);
	assert_idle(l);

	/* The latest two of a and c, oldest first. */
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(mlog_latest(l, ac, 2, 2, collect, &s), MLOG_OK);
	ck_assert_int_eq(s.n, 2);
	ck_assert_int_eq(s.id[0], 10);
	ck_assert_int_eq(s.id[1], 12);

	/* Bad arguments. */
	ck_assert_int_eq(mlog_read(l, ac, 2, 0, 0, collect, &s, NULL, NULL),
	    MLOG_EINVAL);
	for (i = 0; i <= VALID_CHANNELS_MAX; i++)
		all[i] = "a";
	ck_assert_int_eq(mlog_read(l, all, VALID_CHANNELS_MAX + 1, 0, 10,
	    collect, &s, NULL, NULL), MLOG_EINVAL);
	all[0] = ".bad";
	ck_assert_int_eq(mlog_read(l, all, 2, 0, 10, collect, &s, NULL, NULL),
	    MLOG_EINVAL);
	/* VALID_CHANNELS_MAX names fit in one statement. */
	memset(&s, 0, sizeof(s));
	all[0] = "z";
	all[VALID_CHANNELS_MAX - 1] = "c";
	ck_assert_int_eq(mlog_read(l, all, VALID_CHANNELS_MAX, 0, 100,
	    collect, &s, NULL, NULL), MLOG_OK);
	ck_assert_int_eq(s.n, 8);
	assert_idle(l);
	mlog_close(l);
}
END_TEST

START_TEST(read_limit_capped)
{
	const char *ch[] = { "many" };
	struct mlog *l = open_log();
	struct seen *s;
	int64_t last;
	int i;

	for (i = 0; i < MLOG_READ_MAX + 5; i++)
		append(l, "many", "x");
	s = calloc(1, sizeof(*s));
	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(mlog_read(l, ch, 1, 0, MLOG_READ_MAX * 10, collect,
	    s, NULL, &last), MLOG_OK);
	ck_assert_int_eq(s->n, MLOG_READ_MAX);
	ck_assert_int_eq(last, MLOG_READ_MAX);
	memset(s, 0, sizeof(*s));
	ck_assert_int_eq(mlog_latest(l, ch, 1, MLOG_READ_MAX * 10, collect,
	    s), MLOG_OK);
	ck_assert_int_eq(s->n, MLOG_READ_MAX);
	ck_assert_int_eq(s->id[MLOG_READ_MAX - 1], MLOG_READ_MAX + 5);
	free(s);
	mlog_close(l);
}
END_TEST

START_TEST(gap_detection)
{
	const char *g[] = { "g" };
	const char *h[] = { "h" };
	const char *gh[] = { "g", "h" };
	struct mlog *l;
	struct store_stat st;
	struct seen s;
	int64_t gap, last;
	int i;

	cf.retain_count = 3;
	l = open_log();
	for (i = 0; i < 6; i++)
		append(l, "g", "m");    /* ids 1..6; 1..3 pruned */
	append(l, "h", "m");            /* id 7, nothing pruned */
	ck_assert_int_eq(mlog_stat(l, "g", &st), MLOG_OK);
	ck_assert_int_eq(st.pruned_to, 3);

	/* A cursor older than what is retained is told so. */
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(mlog_read(l, g, 1, 1, 100, collect, &s, &gap, &last),
	    MLOG_OK);
	ck_assert_int_eq(gap, 3);
	ck_assert_int_eq(s.n, 3);
	ck_assert_int_eq(s.id[0], 4);
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(mlog_read(l, gh, 2, 0, 100, collect, &s, &gap, &last),
	    MLOG_OK);
	ck_assert_int_eq(gap, 3);
	ck_assert_int_eq(mlog_read(l, NULL, 0, 2, 100, collect, &s, &gap,
	    &last), MLOG_OK);
	ck_assert_int_eq(gap, 3);

	/* At or after pruned_to: nothing was lost. */
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(mlog_read(l, g, 1, 3, 100, collect, &s, &gap, &last),
	    MLOG_OK);
	ck_assert_int_eq(gap, 0);
	ck_assert_int_eq(s.n, 3);
	ck_assert_int_eq(mlog_read(l, g, 1, 5, 100, collect, &s, &gap, &last),
	    MLOG_OK);
	ck_assert_int_eq(gap, 0);
	/* Another channel's pruning is not this reader's gap. */
	ck_assert_int_eq(mlog_read(l, h, 1, 0, 100, collect, &s, &gap, &last),
	    MLOG_OK);
	ck_assert_int_eq(gap, 0);
	/* Unknown channels: no gap, no rows. */
	ck_assert_int_eq(mlog_read(l, (const char *[]){ "none" }, 1, 0, 100,
	    collect, &s, &gap, &last), MLOG_OK);
	ck_assert_int_eq(gap, 0);
	assert_idle(l);
	mlog_close(l);
}
END_TEST

/* Expect a refusal with code rc, a one-line reason containing `word`, and
 * no row added. */
static void
refused(struct mlog *l, int got, int rc, const char *word)
{
	const char *msg = mlog_errmsg(l);

	ck_assert_int_eq(got, rc);
	ck_assert_msg(strstr(msg, word) != NULL, "reason \"%s\" lacks \"%s\"",
	    msg, word);
	ck_assert_ptr_null(strchr(msg, '\n'));
	ck_assert_ptr_null(strchr(msg, '\r'));
}

START_TEST(validation)
{
	char longname[VALID_CHANNEL_MAX + 2], longtype[VALID_TYPE_MAX + 2];
	char longevent[VALID_EVENT_MAX + 2];
	const char *badch[] = { "", ".hidden", "a b", "a/b", "é", "a\nb",
	    longname };
	const char *badtype[] = { "", "text", "text/plain\r\nX-Evil: 1",
	    "text/plain; charset=\"utf-8", "text /plain", longtype };
	const char *badev[] = { "", "a b", "a\nb", "a=b", longevent };
	struct mlog *l;
	struct store_stat st;
	char *big;
	int64_t before, id = -1;
	size_t i;

	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	memcpy(longtype, "text/", 5);
	memset(longtype + 5, 'x', sizeof(longtype) - 6);
	longtype[sizeof(longtype) - 1] = '\0';
	memset(longevent, 'e', sizeof(longevent) - 1);
	longevent[sizeof(longevent) - 1] = '\0';

	cf.max_data = 1000;
	l = open_log();
	append(l, "ok", "first");
	before = count_rows(l);

	for (i = 0; i < sizeof(badch) / sizeof(badch[0]); i++)
		refused(l, mlog_append(l, badch[i], NULL, NULL, "x", 1, &id),
		    MLOG_EINVAL, "invalid channel name");
	refused(l, mlog_append(l, NULL, NULL, NULL, "x", 1, &id), MLOG_EINVAL,
	    "invalid channel name");
	for (i = 0; i < sizeof(badtype) / sizeof(badtype[0]); i++)
		refused(l, mlog_append(l, "ok", badtype[i], NULL, "x", 1, &id),
		    MLOG_EINVAL, "invalid media type");
	for (i = 0; i < sizeof(badev) / sizeof(badev[0]); i++)
		refused(l, mlog_append(l, "ok", NULL, badev[i], "x", 1, &id),
		    MLOG_EINVAL, "invalid event name");
	big = calloc(1, 2000);
	ck_assert_ptr_nonnull(big);
	refused(l, mlog_append(l, "ok", NULL, NULL, big, 1001, &id),
	    MLOG_E2BIG, "message of 1001 bytes is over the 1000-byte limit");
	refused(l, mlog_append(l, "ok", NULL, NULL, NULL, 5, &id),
	    MLOG_EINVAL, "no data");
	ck_assert_int_eq(id, -1);
	ck_assert_int_eq(count_rows(l), before);
	ck_assert_int_eq(mlog_stat(l, "nn", &st), MLOG_ENOENT);
	ck_assert_int_eq(mlog_stat(l, ".x", &st), MLOG_EINVAL);

	/* The limits themselves are accepted. */
	longname[VALID_CHANNEL_MAX] = '\0';
	longtype[VALID_TYPE_MAX] = '\0';
	longevent[VALID_EVENT_MAX] = '\0';
	ck_assert_int_eq(mlog_append(l, longname, longtype, longevent, big,
	    1000, &id), MLOG_OK);
	ck_assert_int_eq(mlog_append(l, "a-Z_0.9", "image/png",
	    "ns:up-date.1", NULL, 0, &id), MLOG_OK);
	ck_assert_int_eq(mlog_append(l, "ok", "text/plain; charset=\"utf-8\"",
	    NULL, "", 0, &id), MLOG_OK);
	ck_assert_int_eq(count_rows(l), before + 3);
	free(big);
	mlog_close(l);
}
END_TEST

START_TEST(plain_sql_insert)
{
	const char *news[] = { "news" };
	const char *bad[] = {
	    "INSERT INTO messages(channel, data) VALUES('.x', 'd')",
	    "INSERT INTO messages(channel, data) VALUES('a b', 'd')",
	    "INSERT INTO messages(channel, data) VALUES('', 'd')",
	    "INSERT INTO messages(channel, data) VALUES(NULL, 'd')",
	    "INSERT INTO messages(channel, type, data) VALUES('n', "
	    "'text/plain' || char(13, 10) || 'X: y', 'd')",
	    "INSERT INTO messages(channel, event, data) VALUES('n', 'a b', "
	    "'d')",
	    "INSERT INTO messages(channel, event, data) VALUES('n', '', 'd')",
	    "INSERT INTO messages(channel, time, data) VALUES('n', 'noon', "
	    "'d')",
	    "UPDATE messages SET channel = 'moved'",
	};
	struct mlog *l = open_log();
	struct store_stat st;
	struct seen s;
	sqlite3 *db;
	int64_t t0, t1, gap, last;
	size_t i;

	append(l, "news", "from C");
	db = open_sql();
	t0 = now_ms();
	ck_assert_int_eq(sqlite3_exec(db, "INSERT INTO messages(channel, data) "
	    "VALUES('news', 'hi')", NULL, NULL, NULL), SQLITE_OK);
	t1 = now_ms();
	ck_assert_int_eq(sqlite3_exec(db, "INSERT INTO messages(channel, type, "
	    "event, data) VALUES('news', 'image/png', 'frame', x'00ff')",
	    NULL, NULL, NULL), SQLITE_OK);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(sqlite3_exec(db, bad[i], NULL, NULL, NULL) !=
		    SQLITE_OK, "accepted: %s", bad[i]);
	ck_assert_int_eq(sql_int(db, "SELECT count(*) FROM messages"), 3);

	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(mlog_read(l, news, 1, 1, 10, collect, &s, &gap,
	    &last), MLOG_OK);
	ck_assert_int_eq(s.n, 2);
	ck_assert_int_eq(s.id[0], 2);
	ck_assert_str_eq(s.type[0], MLOG_DEFAULT_TYPE);
	ck_assert_str_eq(s.event[0], "");
	ck_assert_str_eq(s.data[0], "hi");
	ck_assert_int_ge(s.time_ms[0], t0 - 1);
	ck_assert_int_le(s.time_ms[0], t1 + 1);
	ck_assert_str_eq(s.type[1], "image/png");
	ck_assert_str_eq(s.event[1], "frame");
	ck_assert_uint_eq(s.len[1], 2);
	ck_assert_int_eq((unsigned char)s.data[1][1], 0xff);

	ck_assert_int_eq(mlog_stat(l, "news", &st), MLOG_OK);
	ck_assert_int_eq(st.count, 3);
	ck_assert_int_eq(st.first_id, 1);
	ck_assert_int_eq(st.last_id, 3);
	ck_assert_int_ge(st.last_time_ms, t1 - 1);
	ck_assert_int_eq(mlog_last_id(l, &last), MLOG_OK);
	ck_assert_int_eq(last, 3);

	/* A plain SQL delete is seen by gap detection. */
	ck_assert_int_eq(sqlite3_exec(db, "DELETE FROM messages WHERE id = 2",
	    NULL, NULL, NULL), SQLITE_OK);
	ck_assert_int_eq(mlog_read(l, news, 1, 1, 10, collect, &s, &gap,
	    &last), MLOG_OK);
	ck_assert_int_eq(gap, 2);
	sqlite3_close(db);
	mlog_close(l);
}
END_TEST

START_TEST(changed_by_others)
{
	struct mlog *l = open_log();
	sqlite3 *db;

	db = open_sql();
	ck_assert_int_eq(mlog_changed(l), 0);
	/* Our own commits are not "another connection". */
	append(l, "c", "mine");
	ck_assert_int_eq(mlog_changed(l), 0);
	ck_assert_int_eq(sqlite3_exec(db, "INSERT INTO messages(channel, data) "
	    "VALUES('c', 'theirs')", NULL, NULL, NULL), SQLITE_OK);
	ck_assert_int_eq(mlog_changed(l), 1);
	ck_assert_int_eq(mlog_changed(l), 0);
	assert_idle(l);
	sqlite3_close(db);
	mlog_close(l);
}
END_TEST

START_TEST(streams_and_subscribers)
{
	const char *ab[] = { "a", "b", "a" };
	const char *b[] = { "b" };
	struct mlog *l = open_log();
	struct store_stat st;
	int64_t s1, s2, s3, subs;
	char secret[32];
	pid_t pid, dead;
	int status;

	append(l, "a", "m");
	append(l, "b", "m");
	ck_assert_int_eq(mlog_stream_open(l, ab, 3, getpid(), "s3cr3t", &s1),
	    MLOG_OK);
	ck_assert_int_eq(mlog_stream_open(l, b, 1, getpid(), NULL, &s2),
	    MLOG_OK);
	ck_assert_int_gt(s2, s1);
	ck_assert_int_eq(mlog_stat(l, "a", &st), MLOG_OK);
	ck_assert_int_eq(st.subscribers, 1);
	ck_assert_int_eq(mlog_stat(l, "b", &st), MLOG_OK);
	ck_assert_int_eq(st.subscribers, 2);
	ck_assert_int_eq(mlog_stream_info(l, s1, &pid, secret, sizeof(secret)),
	    MLOG_OK);
	ck_assert_int_eq(pid, getpid());
	ck_assert_str_eq(secret, "s3cr3t");
	ck_assert_int_eq(mlog_stream_info(l, s2, &pid, secret, sizeof(secret)),
	    MLOG_OK);
	ck_assert_str_eq(secret, "");
	ck_assert_int_eq(mlog_stream_info(l, s1, NULL, secret, 3),
	    MLOG_EINVAL);

	/* A stream whose process is gone (a crashed responder). */
	dead = fork();
	ck_assert_int_ge(dead, 0);
	if (dead == 0)
		_exit(0);
	ck_assert_int_eq(waitpid(dead, &status, 0), dead);
	ck_assert_int_eq(mlog_stream_open(l, b, 1, dead, NULL, &s3), MLOG_OK);
	ck_assert_int_eq(sql_int(mlog_db(l), "SELECT count(*) FROM streams"),
	    3);
	/* The publisher's count skips it too, and knows no channel "z". */
	ck_assert_int_eq(mlog_subscribers(l, "b", &subs), MLOG_OK);
	ck_assert_int_eq(subs, 2);
	ck_assert_int_eq(mlog_subscribers(l, "z", &subs), MLOG_OK);
	ck_assert_int_eq(subs, 0);
	ck_assert_int_eq(mlog_subscribers(l, ".z", &subs), MLOG_EINVAL);
	/* Counting skips it (and reaps it). */
	ck_assert_int_eq(mlog_stat(l, "b", &st), MLOG_OK);
	ck_assert_int_eq(st.subscribers, 2);
	ck_assert_int_eq(mlog_reap(l), MLOG_OK);
	ck_assert_int_eq(mlog_stream_info(l, s3, NULL, NULL, 0), MLOG_ENOENT);
	ck_assert_int_eq(sql_int(mlog_db(l), "SELECT count(*) FROM "
	    "subscriptions"), 3);

	ck_assert_int_eq(mlog_stream_close(l, s1), MLOG_OK);
	ck_assert_int_eq(mlog_stream_close(l, s1), MLOG_ENOENT);
	ck_assert_int_eq(mlog_stat(l, "a", &st), MLOG_OK);
	ck_assert_int_eq(st.subscribers, 0);
	ck_assert_int_eq(mlog_stat(l, "b", &st), MLOG_OK);
	ck_assert_int_eq(st.subscribers, 1);
	/* Subscriptions went with their stream. */
	ck_assert_int_eq(sql_int(mlog_db(l), "SELECT count(*) FROM "
	    "subscriptions"), 1);

	/* Bad arguments. */
	ck_assert_int_eq(mlog_stream_open(l, b, 0, getpid(), NULL, &s3),
	    MLOG_EINVAL);
	ck_assert_int_eq(mlog_stream_open(l, b, 1, 0, NULL, &s3),
	    MLOG_EINVAL);
	ck_assert_int_eq(mlog_stream_open(l, b, 1, getpid(), "a b", &s3),
	    MLOG_EINVAL);
	ck_assert_int_eq(mlog_stream_open(l, (const char *[]){ "." }, 1,
	    getpid(), NULL, &s3), MLOG_EINVAL);
	ck_assert_int_eq(mlog_stream_close(l, s2), MLOG_OK);
	assert_idle(l);
	mlog_close(l);
}
END_TEST

static int
stats_cb(void *arg, const struct store_stat *st)
{
	int64_t *sum = arg;

	sum[0]++;
	sum[1] += st->count;
	sum[2] += st->subscribers;
	return 0;
}

START_TEST(stats_all)
{
	const char *x[] = { "x" };
	struct mlog *l = open_log();
	int64_t sum[3] = { 0, 0, 0 }, s;

	append(l, "x", "1");
	append(l, "y", "2");
	append(l, "y", "3");
	ck_assert_int_eq(mlog_stream_open(l, x, 1, getpid(), NULL, &s),
	    MLOG_OK);
	ck_assert_int_eq(mlog_stats(l, stats_cb, sum), MLOG_OK);
	ck_assert_int_eq(sum[0], 2);
	ck_assert_int_eq(sum[1], 3);
	ck_assert_int_eq(sum[2], 1);
	assert_idle(l);
	mlog_close(l);
}
END_TEST

/* Control requests: the schema allows exactly '.control' among names
 * with a leading '.', and the C API never publishes to it. */
START_TEST(control_schema)
{
	const char *bad[] = { ".controls", ".Control", ".contro", "..control",
	    ".control.", ".control-x" };
	const char *ctl[] = { MLOG_CONTROL };
	char sql[160];
	struct mlog *l = open_log();
	struct store_stat st;
	struct seen s;
	sqlite3 *db;
	size_t i;

	db = open_sql();
	ck_assert_int_eq(sqlite3_exec(db, "INSERT INTO messages(channel, data) "
	    "VALUES('.control', 'end-stream 7')", NULL, NULL, NULL),
	    SQLITE_OK);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(sql, sizeof(sql), "INSERT INTO messages(channel, "
		    "data) VALUES('%s', 'end-stream 7')", bad[i]);
		ck_assert_msg(sqlite3_exec(db, sql, NULL, NULL, NULL) !=
		    SQLITE_OK, "accepted: %s", bad[i]);
	}
	ck_assert_int_eq(sql_int(db, "SELECT count(*) FROM messages"), 1);
	sqlite3_close(db);

	ck_assert_int_eq(mlog_append(l, MLOG_CONTROL, NULL, NULL, "x", 1,
	    NULL), MLOG_EINVAL);
	ck_assert_int_eq(mlog_stat(l, MLOG_CONTROL, &st), MLOG_EINVAL);
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(mlog_read(l, ctl, 1, 0, 10, collect, &s, NULL, NULL),
	    MLOG_EINVAL);
	ck_assert_int_eq(mlog_latest(l, ctl, 1, 10, collect, &s),
	    MLOG_EINVAL);
	ck_assert_int_eq(mlog_remove(l, MLOG_CONTROL, NULL), MLOG_EINVAL);
	ck_assert_int_eq(s.n, 0);
	/* Bad requests. */
	ck_assert_int_eq(mlog_control_end_stream(l, 0), MLOG_EINVAL);
	ck_assert_int_eq(mlog_control_end_stream(l, -3), MLOG_EINVAL);
	ck_assert_int_eq(mlog_control_end_channel(l, ".x"), MLOG_EINVAL);
	ck_assert_int_eq(mlog_control_end_channel(l, MLOG_CONTROL),
	    MLOG_EINVAL);
	ck_assert_int_eq(mlog_control_end_channel(l, "a b"), MLOG_EINVAL);
	ck_assert_int_eq(mlog_control_end_channel(l, NULL), MLOG_EINVAL);
	ck_assert_int_eq(count_rows(l), 1);
	assert_idle(l);
	mlog_close(l);
}
END_TEST

/* Parse one control message's data as written by hand. */
static int
control_kind(const char *channel, const char *data, int64_t *stream,
    char *chan)
{
	struct store_msg m;

	memset(&m, 0, sizeof(m));
	m.channel = channel;
	m.type = "text/plain";
	m.data = data;
	m.len = strlen(data);
	*stream = 0;
	chan[0] = '\0';
	return store_control_parse(&m, stream, chan, VALID_CHANNEL_MAX + 1);
}

/* Control requests are never seen by readers of "every channel" nor by
 * stats; the hub reads them with mlog_control_read. */
START_TEST(control_invisible)
{
	const char *nonsense[] = { "end-stream 0", "end-stream 05",
	    "end-stream 5\n", "end-stream -1", "end-stream +5",
	    "end-stream 99999999999999999999", "end-stream 9223372036854775808",
	    "end-stream", "end-stream ", "end-channel ", "end-channel .x",
	    "end-channel a b", "end-channel a\n", "end-channel .control",
	    "END-STREAM 5", "end-stream 5 6", "end-streams 5", "" };
	char chan[VALID_CHANNEL_MAX + 1];
	struct mlog *l = open_log();
	int64_t a1, b1, c1, c2, c3, gap, last, stream, sum[3] = { 0, 0, 0 };
	struct seen s;
	sqlite3 *db;
	size_t i;

	/* (No control request is appended after the ones read below: each
	 * append prunes by age, and the wall clock may jump.) */
	a1 = append(l, "a", "one");
	ck_assert_int_eq(mlog_control_end_stream(l, 43), MLOG_OK);
	ck_assert_int_eq(mlog_control_end_channel(l, "b"), MLOG_OK);
	ck_assert_int_eq(mlog_control_end_stream_id(l, 42, &c1), MLOG_OK);
	ck_assert_int_gt(c1, a1 + 2);
	ck_assert_int_eq(mlog_control_end_channel_id(l, "a", &c2), MLOG_OK);
	ck_assert_int_eq(c2, c1 + 1);
	db = open_sql();
	ck_assert_int_eq(sqlite3_exec(db, "INSERT INTO messages(channel, data) "
	    "VALUES('.control', 'end-stream 9223372036854775807')", NULL,
	    NULL, NULL), SQLITE_OK);
	c3 = sql_int(db, "SELECT max(id) FROM messages");
	ck_assert_int_eq(c3, c2 + 1);
	sqlite3_close(db);
	b1 = append(l, "b", "two");

	/* Every channel: a and b only, no gap. */
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(mlog_read(l, NULL, 0, 0, 100, collect, &s, &gap,
	    &last), MLOG_OK);
	ck_assert_int_eq(s.n, 2);
	ck_assert_int_eq(s.id[0], a1);
	ck_assert_int_eq(s.id[1], b1);
	ck_assert_int_eq(gap, 0);
	ck_assert_int_eq(last, b1);
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(mlog_read(l, NULL, 0, a1, 100, collect, &s, &gap,
	    &last), MLOG_OK);
	ck_assert_int_eq(s.n, 1);
	ck_assert_int_eq(s.id[0], b1);
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(mlog_latest(l, NULL, 0, 3, collect, &s), MLOG_OK);
	ck_assert_int_eq(s.n, 2);
	ck_assert_str_eq(s.channel[0], "a");
	ck_assert_str_eq(s.channel[1], "b");
	ck_assert_int_eq(mlog_stats(l, stats_cb, sum), MLOG_OK);
	ck_assert_int_eq(sum[0], 2);
	ck_assert_int_eq(sum[1], 2);
	ck_assert_int_eq(mlog_last_id(l, &last), MLOG_OK);
	ck_assert_int_eq(last, b1);

	/* The control channel itself, bounded above. */
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(mlog_control_read(l, c1 - 1, c3, 100, collect, &s,
	    &last), MLOG_OK);
	ck_assert_int_eq(s.n, 3);
	ck_assert_int_eq(s.id[0], c1);
	ck_assert_int_eq(last, c3);
	ck_assert_str_eq(s.channel[0], MLOG_CONTROL);
	ck_assert_str_eq(s.data[0], "end-stream 42");
	ck_assert_str_eq(s.type[0], "text/plain");
	ck_assert_str_eq(s.data[1], "end-channel a");
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(mlog_control_read(l, c1, INT64_MAX, 2, collect, &s,
	    &last), MLOG_OK);
	ck_assert_int_eq(s.n, 2);
	ck_assert_int_eq(s.id[0], c2);
	ck_assert_int_eq(last, c3);
	memset(&s, 0, sizeof(s));
	s.stop_after = 1;
	ck_assert_int_eq(mlog_control_read(l, c1 - 1, INT64_MAX, 10, collect,
	    &s, &last), 7);
	ck_assert_int_eq(last, c1);
	ck_assert_int_eq(mlog_control_read(l, 0, 1, 0, collect, &s, &last),
	    MLOG_EINVAL);

	/* What each request asks. */
	ck_assert_int_eq(control_kind(MLOG_CONTROL, "end-stream 42", &stream,
	    chan), STORE_CONTROL_END_STREAM);
	ck_assert_int_eq(stream, 42);
	ck_assert_int_eq(control_kind(MLOG_CONTROL,
	    "end-stream 9223372036854775807", &stream, chan),
	    STORE_CONTROL_END_STREAM);
	ck_assert_int_eq(stream, INT64_MAX);
	ck_assert_int_eq(control_kind(MLOG_CONTROL, "end-channel a.b-c_9",
	    &stream, chan), STORE_CONTROL_END_CHANNEL);
	ck_assert_str_eq(chan, "a.b-c_9");
	ck_assert_int_eq(control_kind("a", "end-stream 42", &stream, chan),
	    STORE_CONTROL_NONE);
	for (i = 0; i < sizeof(nonsense) / sizeof(nonsense[0]); i++)
		ck_assert_msg(control_kind(MLOG_CONTROL, nonsense[i], &stream,
		    chan) == STORE_CONTROL_NONE, "accepted: \"%s\"",
		    nonsense[i]);
	assert_idle(l);
	mlog_close(l);
}
END_TEST

/* A prune of every channel, by count or by age, leaves the control
 * channel to its own retention: a request not yet read stays. */
START_TEST(prune_all_spares_control)
{
	struct mlog *l = open_log();
	int64_t first, del;
	sqlite3 *db;
	char sql[200];
	int i;

	for (i = 0; i < 3; i++)
		append(l, "a", "m");
	db = open_sql();
	ck_assert_int_eq(mlog_control_end_channel_id(l, "a", &first),
	    MLOG_OK);
	/* Two minutes old: inside MLOG_CONTROL_AGE, outside --age 60. */
	snprintf(sql, sizeof(sql), "INSERT INTO messages(channel, time, data)"
	    " VALUES('.control', %lld, 'end-stream 1')",
	    (long long)(now_ms() - 120 * 1000));
	ck_assert_int_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	ck_assert_int_eq(mlog_prune(l, NULL, 1, 60, &del), MLOG_OK);
	ck_assert_int_eq(del, 2);
	ck_assert_int_eq(sql_int(db, "SELECT count(*) FROM messages WHERE "
	    "channel = 'a'"), 1);
	ck_assert_int_eq(sql_int(db, "SELECT count(*) FROM messages WHERE "
	    "channel = '.control'"), 2);
	sqlite3_close(db);
	assert_idle(l);
	mlog_close(l);
}
END_TEST

/* The control channel keeps at most MLOG_CONTROL_KEEP requests and none
 * older than MLOG_CONTROL_AGE, pruned as requests are appended, without
 * touching other channels or reporting a gap to their readers.  (Rows
 * are written with times far from now, as the wall clock may jump.) */
START_TEST(control_pruned)
{
	struct mlog *l = open_log();
	int64_t a1, first, id = 0, gap, last;
	struct seen s;
	sqlite3 *db;
	char sql[200];
	int i;

	a1 = append(l, "a", "kept");
	db = open_sql();
	/* Expired: 1970. */
	ck_assert_int_eq(sqlite3_exec(db, "INSERT INTO messages(channel, time, "
	    "data) VALUES('.control', 1, 'end-stream 1')", NULL, NULL, NULL),
	    SQLITE_OK);
	ck_assert_int_eq(mlog_control_end_channel_id(l, "a", &first),
	    MLOG_OK);
	ck_assert_int_eq(sql_int(db, "SELECT count(*) FROM messages WHERE "
	    "channel = '.control'"), 1);
	ck_assert_int_eq(sql_int(db, "SELECT id FROM messages WHERE "
	    "channel = '.control'"), first);

	/* Over the count: a year ahead, so that only the count applies. */
	ck_assert_int_eq(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL),
	    SQLITE_OK);
	for (i = 0; i < MLOG_CONTROL_KEEP + 4; i++) {
		snprintf(sql, sizeof(sql), "INSERT INTO messages(channel, "
		    "time, data) VALUES('.control', %lld, 'end-stream %d')",
		    (long long)(now_ms() + 366 * 86400 * 1000LL), i + 1);
		ck_assert_int_eq(sqlite3_exec(db, sql, NULL, NULL, NULL),
		    SQLITE_OK);
	}
	ck_assert_int_eq(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL),
	    SQLITE_OK);
	/* Plain SQL does not prune; the next request does. */
	ck_assert_int_eq(sql_int(db, "SELECT count(*) FROM messages WHERE "
	    "channel = '.control'"), MLOG_CONTROL_KEEP + 5);
	ck_assert_int_eq(mlog_control_end_stream_id(l, 7, &id), MLOG_OK);
	ck_assert_int_eq(sql_int(db, "SELECT count(*) FROM messages WHERE "
	    "channel = '.control'"), MLOG_CONTROL_KEEP);
	ck_assert_int_eq(sql_int(db, "SELECT min(id) FROM messages WHERE "
	    "channel = '.control'"), id - MLOG_CONTROL_KEEP + 1);
	ck_assert_int_eq(sql_int(db, "SELECT count(*) FROM messages WHERE "
	    "channel = 'a'"), 1);
	sqlite3_close(db);

	/* Readers of every channel see no gap from it. */
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(mlog_read(l, NULL, 0, 0, 10, collect, &s, &gap,
	    &last), MLOG_OK);
	ck_assert_int_eq(s.n, 1);
	ck_assert_int_eq(s.id[0], a1);
	ck_assert_int_eq(gap, 0);
	assert_idle(l);
	mlog_close(l);
}
END_TEST

START_TEST(schema_versions)
{
	struct mlog *l;
	sqlite3 *db;
	char err[256];

	/* No file, no create: ENOENT. */
	ck_assert_int_eq(mlog_open(&l, &cf, 0, err, sizeof(err)), MLOG_ENOENT);
	ck_assert_ptr_null(l);
	ck_assert_int_eq(access(dbpath, F_OK), -1);

	l = open_log();
	db = mlog_db(l);
	ck_assert_int_eq(sql_int(db, "PRAGMA user_version"),
	    MLOG_SCHEMA_VERSION);
	ck_assert_int_eq(sql_int(db, "PRAGMA foreign_keys"), 1);
	ck_assert_int_eq(sql_int(db, "PRAGMA synchronous"), 1);   /* NORMAL */
	ck_assert_int_eq(sql_int(db, "SELECT count(*) FROM sqlite_master "
	    "WHERE name = 'messages_channel_id'"), 1);
	mlog_close(l);

	db = open_sql();
	ck_assert_int_eq(sqlite3_exec(db, "PRAGMA journal_mode", NULL, NULL,
	    NULL), SQLITE_OK);
	snprintf(err, sizeof(err), "PRAGMA user_version = %d",
	    MLOG_SCHEMA_VERSION + 1);
	ck_assert_int_eq(sqlite3_exec(db, err, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	ck_assert_int_eq(mlog_open(&l, &cf, MLOG_CREATE, err, sizeof(err)),
	    MLOG_ESCHEMA);
	ck_assert_ptr_nonnull(strstr(err, "newer"));
	ck_assert_int_eq(mlog_open(&l, &cf, MLOG_READONLY, err, sizeof(err)),
	    MLOG_ESCHEMA);

	/* Someone else's database is not taken over. */
	teardown();
	setup();
	db = open_sql();
	ck_assert_int_eq(sqlite3_exec(db, "CREATE TABLE t(x)", NULL, NULL,
	    NULL), SQLITE_OK);
	sqlite3_close(db);
	ck_assert_int_eq(mlog_open(&l, &cf, MLOG_CREATE, err, sizeof(err)),
	    MLOG_ESCHEMA);
	ck_assert_ptr_nonnull(strstr(err, "not a pushcgi"));

	/* Nor a file that is not SQLite at all. */
	teardown();
	setup();
	{
		FILE *f = fopen(dbpath, "w");

		ck_assert_ptr_nonnull(f);
		fputs("this is not a database, just some text that is long "
		    "enough to fill a header of one hundred bytes, which "
		    "is what sqlite reads first", f);
		fclose(f);
	}
	ck_assert_int_eq(mlog_open(&l, &cf, MLOG_CREATE, err, sizeof(err)),
	    MLOG_ESCHEMA);
}
END_TEST

/* Version 1's triggers, as a log created by an older pushcgi has them. */
static const char v1_triggers[] =
"DROP TRIGGER messages_insert; DROP TRIGGER messages_delete;"
"CREATE TRIGGER messages_insert AFTER INSERT ON messages BEGIN"
"  INSERT INTO channels(name, last_id, last_time)"
"    VALUES(NEW.channel, NEW.id, NEW.time)"
"    ON CONFLICT(name) DO UPDATE SET last_id = excluded.last_id,"
"      last_time = excluded.last_time"
"    WHERE excluded.last_id > channels.last_id;"
"END;"
"CREATE TRIGGER messages_delete AFTER DELETE ON messages BEGIN"
"  UPDATE channels SET pruned_to = OLD.id"
"    WHERE name = OLD.channel AND pruned_to < OLD.id;"
"END;"
"PRAGMA user_version = 1;";

START_TEST(schema_upgrade)
{
	struct mlog *l;
	struct store_stat st;
	sqlite3 *db;
	char err[256];

	mlog_close(open_log());
	db = open_sql();
	ck_assert_int_eq(sqlite3_exec(db, v1_triggers, NULL, NULL, NULL),
	    SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, "INSERT INTO messages(channel, "
	    "time, data) VALUES('a', 1000, 'x'), ('a', 2000, 'y'), "
	    "('b', 3000, 'z'); DELETE FROM messages WHERE id = 3", NULL, NULL,
	    NULL), SQLITE_OK);
	ck_assert_int_eq(sql_int(db, "SELECT last_id FROM channels "
	    "WHERE name = 'a'"), 2);

	/* Reading does not upgrade, and reads the old rows right. */
	ck_assert_int_eq(mlog_open(&l, &cf, MLOG_READONLY, err, sizeof(err)),
	    MLOG_OK);
	ck_assert_int_eq(mlog_stat(l, "a", &st), MLOG_OK);
	ck_assert_int_eq(st.last_id, 2);
	ck_assert_int_eq(st.last_time_ms, 2000);
	mlog_close(l);
	ck_assert_int_eq(sql_int(db, "PRAGMA user_version"), 1);

	/* A writer does, once. */
	l = open_log();
	ck_assert_int_eq(sql_int(db, "PRAGMA user_version"),
	    MLOG_SCHEMA_VERSION);
	ck_assert_int_eq(sql_int(db, "SELECT count(*) FROM sqlite_master "
	    "WHERE type = 'trigger' AND sql LIKE '%OR IGNORE%'"), 1);
	ck_assert_int_eq(mlog_stat(l, "b", &st), MLOG_OK);
	ck_assert_int_eq(st.last_id, 3);
	ck_assert_int_eq(st.last_time_ms, 3000);
	ck_assert_int_eq(append(l, "a", "w"), 4);
	ck_assert_int_eq(mlog_stat(l, "a", &st), MLOG_OK);
	ck_assert_int_eq(st.count, 3);
	ck_assert_int_eq(st.last_id, 4);
	ck_assert_int_ge(st.last_time_ms, now_ms() - 60 * 1000);
	/* An insert leaves the channel's row alone now. */
	ck_assert_int_eq(sql_int(db, "SELECT last_id FROM channels "
	    "WHERE name = 'a'"), 2);
	mlog_close(l);
	sqlite3_close(db);
}
END_TEST

START_TEST(create_mode_and_wal)
{
	struct mlog *l;
	struct stat sb;
	sqlite3 *db;
	char wal[160];
	mode_t old;

	old = umask(002);
	l = open_log();
	append(l, "m", "x");
	umask(old);
	ck_assert_int_eq(stat(dbpath, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0664);
	snprintf(wal, sizeof(wal), "%s-wal", dbpath);
	ck_assert_int_eq(stat(wal, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0664);
	db = open_sql();
	ck_assert_int_eq(sql_int(db, "SELECT journal_mode = 'wal' FROM "
	    "pragma_journal_mode"), 1);
	sqlite3_close(db);
	mlog_close(l);

	/* A stricter umask is respected, not overridden. */
	teardown();
	setup();
	old = umask(077);
	l = open_log();
	umask(old);
	ck_assert_int_eq(stat(dbpath, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0600);
	mlog_close(l);

	/* synchronous from the config. */
	cf.synchronous_full = 1;
	l = open_log();
	ck_assert_int_eq(sql_int(mlog_db(l), "PRAGMA synchronous"), 2);
	mlog_close(l);
}
END_TEST

START_TEST(concurrent_create)
{
	struct mlog *l;
	pid_t kids[T_CREATORS];
	int i, status, ok = 0;

	for (i = 0; i < T_CREATORS; i++) {
		kids[i] = fork();
		ck_assert_int_ge(kids[i], 0);
		if (kids[i] == 0) {
			struct mlog *k;
			char err[256];
			int64_t id;

			if (mlog_open(&k, &cf, MLOG_CREATE, err,
			    sizeof(err)) != MLOG_OK) {
				fprintf(stderr, "child: %s\n", err);
				_exit(1);
			}
			if (mlog_append(k, "race", NULL, NULL, "x", 1, &id) !=
			    MLOG_OK) {
				fprintf(stderr, "child: %s\n", mlog_errmsg(k));
				_exit(2);
			}
			mlog_close(k);
			_exit(0);
		}
	}
	for (i = 0; i < T_CREATORS; i++) {
		ck_assert_int_eq(waitpid(kids[i], &status, 0), kids[i]);
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
			ok++;
	}
	ck_assert_int_eq(ok, T_CREATORS);
	l = open_log();
	ck_assert_int_eq(count_rows(l), T_CREATORS);
	mlog_close(l);
}
END_TEST

START_TEST(readonly_open)
{
	const char *r[] = { "r" };
	struct mlog *l, *ro;
	struct seen s;
	char err[256];
	int64_t id;

	l = open_log();
	append(l, "r", "x");
	ck_assert_int_eq(mlog_open(&ro, &cf, MLOG_READONLY, err, sizeof(err)),
	    MLOG_OK);
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(mlog_read(ro, r, 1, 0, 10, collect, &s, NULL, NULL),
	    MLOG_OK);
	ck_assert_int_eq(s.n, 1);
	ck_assert_int_eq(mlog_append(ro, "r", NULL, NULL, "x", 1, &id),
	    MLOG_ERR);
	ck_assert_ptr_nonnull(strstr(mlog_errmsg(ro), "read-only"));
	mlog_close(ro);
	mlog_close(l);
}
END_TEST

/* Remove the log's files as an operator would (rm db db-wal db-shm). */
static void
remove_log(void)
{
	char p[160];
	const char *sfx[] = { "", "-wal", "-shm" };
	size_t i;

	for (i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		snprintf(p, sizeof(p), "%s%s", dbpath, sfx[i]);
		unlink(p);
	}
}

/* Remove the -wal and -shm only. */
static void
remove_wal(void)
{
	char p[160];

	snprintf(p, sizeof(p), "%s-wal", dbpath);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", dbpath);
	unlink(p);
}

/* A removed log: noticed, refused without MLOG_RELOG, reopened in place
 * (the new log's ids start at 1 again). */
START_TEST(relog_removed)
{
	struct mlog *l, *l2;
	struct seen sn;
	int64_t id = -1, gap;

	l = open_log();
	append(l, "news", "a");
	append(l, "news", "b");
	ck_assert_int_eq(mlog_moved(l), 0);
	ck_assert_int_eq(mlog_gen(l), 1);
	/* The -wal alone first: told apart from the log file. */
	remove_wal();
	ck_assert_int_eq(mlog_moved(l), MLOG_MOVED_WAL);
	remove_log();
	ck_assert_int_eq(mlog_moved(l), MLOG_MOVED_LOG);
	ck_assert_int_eq(mlog_append(l, "news", NULL, NULL, "c", 1, &id),
	    MLOG_EMOVED);
	ck_assert_int_eq(id, -1);
	ck_assert_ptr_nonnull(strstr(mlog_errmsg(l), "removed or replaced"));
	/* Another process makes the new log. */
	l2 = open_log();
	ck_assert_int_eq(append(l2, "news", "d"), 1);
	ck_assert_int_eq(mlog_moved(l), MLOG_MOVED_LOG);
	ck_assert_int_eq(mlog_reopen(l), MLOG_OK);
	ck_assert_int_eq(mlog_moved(l), 0);
	ck_assert_int_eq(mlog_gen(l), 2);
	ck_assert_int_eq(append(l, "news", "e"), 2);
	memset(&sn, 0, sizeof(sn));
	ck_assert_int_eq(mlog_read(l2, NULL, 0, 0, 10, collect, &sn, &gap,
	    NULL), MLOG_OK);
	ck_assert_int_eq(sn.n, 2);
	ck_assert_str_eq(sn.data[0], "d");
	ck_assert_str_eq(sn.data[1], "e");
	assert_idle(l);
	mlog_close(l2);
	mlog_close(l);
}
END_TEST

/* A fresh log moved over the path (mv new.db log.db): with MLOG_RELOG
 * the next append goes to it; without, a failed reopen keeps the old
 * connection. */
START_TEST(relog_moved_over)
{
	struct mlog *l, *fresh;
	struct conf other = cf;
	char err[256], newpath[160];
	sqlite3 *db;
	int64_t id = -1;

	ck_assert_int_eq(mlog_open(&l, &cf, MLOG_CREATE | MLOG_RELOG, err,
	    sizeof(err)), MLOG_OK);
	append(l, "news", "a");
	append(l, "news", "b");
	append(l, "news", "c");
	snprintf(newpath, sizeof(newpath), "%s/new.db", dir);
	snprintf(other.db, sizeof(other.db), "%s", newpath);
	ck_assert_int_eq(mlog_open(&fresh, &other, MLOG_CREATE, err,
	    sizeof(err)), MLOG_OK);
	mlog_close(fresh);   /* checkpointed: new.db alone is the log */
	/* Moved over the live log, its -wal and -shm left in place: the
	 * reopen removes them (they are the ones l uses), or SQLite would
	 * read the old log's WAL into the new file (id 4 here). */
	ck_assert_int_eq(rename(newpath, dbpath), 0);
	ck_assert_int_eq(mlog_moved(l), MLOG_MOVED_LOG);
	/* Reopened before the commit, once: the message is in the new file
	 * with the new file's first id. */
	ck_assert_int_eq(mlog_append(l, "news", NULL, NULL, "d", 1, &id),
	    MLOG_OK);
	ck_assert_int_eq(id, 1);
	ck_assert_int_eq(mlog_moved(l), 0);
	db = open_sql();
	ck_assert_int_eq(sql_int(db, "SELECT count(*) FROM messages"), 1);
	ck_assert_int_eq(sql_int(db, "SELECT id FROM messages WHERE data = "
	    "CAST('d' AS BLOB)"), 1);
	sqlite3_close(db);
	/* Nothing at the path: the reopen fails, the old connection stays. */
	mlog_close(l);
	ck_assert_int_eq(mlog_open(&l, &cf, 0, err, sizeof(err)), MLOG_OK);
	remove_log();
	ck_assert_int_eq(mlog_reopen(l), MLOG_ENOENT);
	ck_assert_int_eq(mlog_gen(l), 1);
	ck_assert_int_eq(count_rows(l), 1);
	mlog_close(l);
}
END_TEST

/* The commit hook runs inside COMMIT, after mlog_append's first check:
 * replacing the path there is the replacement during the commit. */
static int
replace_during_commit(void *arg)
{
	const char *newpath = arg;

	if (newpath[0] != '\0') {
		ck_assert_int_eq(rename(newpath, dbpath), 0);
		((char *)arg)[0] = '\0';
	}
	return 0;
}

START_TEST(relog_during_commit)
{
	struct mlog *l, *fresh;
	struct conf other = cf;
	char err[256], newpath[160];
	int64_t id = -1;

	/* MLOG_RELOG: still no retry, the message was committed. */
	ck_assert_int_eq(mlog_open(&l, &cf, MLOG_CREATE | MLOG_RELOG, err,
	    sizeof(err)), MLOG_OK);
	append(l, "news", "a");
	snprintf(newpath, sizeof(newpath), "%s/new.db", dir);
	snprintf(other.db, sizeof(other.db), "%s", newpath);
	ck_assert_int_eq(mlog_open(&fresh, &other, MLOG_CREATE, err,
	    sizeof(err)), MLOG_OK);
	mlog_close(fresh);
	sqlite3_commit_hook(mlog_db(l), replace_during_commit, newpath);
	ck_assert_int_eq(mlog_append(l, "news", NULL, NULL, "b", 1, &id),
	    MLOG_EMOVED);
	ck_assert_int_eq(id, 2);   /* committed, to the old file */
	ck_assert_ptr_nonnull(strstr(mlog_errmsg(l), "may not be in"));
	ck_assert_str_eq(newpath, "");   /* the hook ran */
	sqlite3_commit_hook(mlog_db(l), NULL, NULL);
	ck_assert_int_eq(mlog_moved(l), MLOG_MOVED_LOG);
	mlog_close(l);
}
END_TEST

/* The cursor rule: a cursor above every id the log has given reads the
 * log from its start with MLOG_GAP_RESET; retention does not lower the
 * bound, so a pruned cursor is a plain gap. */
START_TEST(cursor_rule)
{
	struct mlog *l;
	struct seen sn;
	int64_t gap = 99, last = 99, del;
	int i;

	l = open_log();
	for (i = 0; i < 5; i++)
		append(l, "news", "x");
	memset(&sn, 0, sizeof(sn));
	ck_assert_int_eq(mlog_read(l, NULL, 0, 100, 10, collect, &sn, &gap,
	    &last), MLOG_OK);
	ck_assert_int_eq(gap, MLOG_GAP_RESET);
	ck_assert_int_eq(sn.n, 5);
	ck_assert_int_eq(sn.id[0], 1);
	ck_assert_int_eq(last, 5);
	memset(&sn, 0, sizeof(sn));
	ck_assert_int_eq(mlog_read(l, NULL, 0, 5, 10, collect, &sn, &gap,
	    &last), MLOG_OK);
	ck_assert_int_eq(gap, 0);
	ck_assert_int_eq(sn.n, 0);
	ck_assert_int_eq(last, 5);
	/* Above the last retained message but not above the last id ever:
	 * all five pruned, the cursor 6 is still beyond; 5 is not. */
	ck_assert_int_eq(mlog_prune(l, NULL, 0, 0, &del), MLOG_OK);
	ck_assert_int_eq(mlog_remove(l, "news", &del), MLOG_OK);
	memset(&sn, 0, sizeof(sn));
	ck_assert_int_eq(mlog_read(l, NULL, 0, 5, 10, collect, &sn, &gap,
	    &last), MLOG_OK);
	ck_assert_int_eq(gap, 0);
	ck_assert_int_eq(append(l, "news", "y"), 6);
	memset(&sn, 0, sizeof(sn));
	ck_assert_int_eq(mlog_read(l, NULL, 0, 6, 10, collect, &sn, &gap,
	    &last), MLOG_OK);
	ck_assert_int_eq(gap, 0);
	ck_assert_int_eq(mlog_read(l, NULL, 0, 7, 10, collect, &sn, &gap,
	    &last), MLOG_OK);
	ck_assert_int_eq(gap, MLOG_GAP_RESET);
	ck_assert_int_eq(sn.n, 1);
	ck_assert_int_eq(sn.id[0], 6);
	assert_idle(l);
	mlog_close(l);
}
END_TEST

/*
 * Run the rest of a test as a user who is not root, so that file modes
 * count: root ignores them.  The test's files go to that user.  Needs
 * Check's fork mode (each test in its own process).  0 if done (or not
 * needed), -1 if it cannot be done here.
 */
static int
not_root(void)
{
	const char *sfx[] = { "", "-wal", "-shm" };
	const char *fork_mode = getenv("CK_FORK");
	char p[160];
	size_t i;

	if (geteuid() != 0)
		return 0;
	if (fork_mode != NULL && strcmp(fork_mode, "no") == 0)
		return -1;
	ck_assert_int_eq(chown(dir, T_NOBODY, T_NOBODY), 0);
	for (i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		snprintf(p, sizeof(p), "%s%s", dbpath, sfx[i]);
		if (chown(p, T_NOBODY, T_NOBODY) != 0)
			ck_assert_int_eq(errno, ENOENT);
	}
	ck_assert_int_eq(setgid(T_NOBODY), 0);
	ck_assert_int_eq(setuid(T_NOBODY), 0);
	return 0;
}

/* A log file this user cannot write: MLOG_EUNAVAIL, the file named. */
START_TEST(unavailable_readonly_file)
{
	struct mlog *l;
	struct store_stat st;
	char err[T_ERR_MAX], want[256];
	int64_t id;

	l = open_log();
	append(l, "u", "kept");
	mlog_close(l);
	if (not_root() != 0)
		return;
	ck_assert_int_eq(chmod(dbpath, 0444), 0);
	ck_assert_int_eq(mlog_open(&l, &cf, MLOG_CREATE, err, sizeof(err)),
	    MLOG_OK);
	ck_assert_int_eq(mlog_append(l, "u", NULL, NULL, "x", 1, &id),
	    MLOG_EUNAVAIL);
	snprintf(want, sizeof(want), "(%s: not writable by ", dbpath);
	ck_assert_msg(strstr(mlog_errmsg(l), want) != NULL &&
	    strstr(mlog_errmsg(l), "mode 0444)") != NULL, "reason: %s",
	    mlog_errmsg(l));
	ck_assert_ptr_null(strchr(mlog_errmsg(l), '\n'));
	ck_assert_int_eq(mlog_stat(l, "u", &st), MLOG_OK);
	ck_assert_int_eq(st.count, 1);
	mlog_close(l);
}
END_TEST

/* Its -shm file read-only, kept there by another process's connection
 * (one in this process would lend us its own, writable, descriptor). */
START_TEST(unavailable_readonly_shm)
{
	struct mlog *l;
	char err[T_ERR_MAX], want[256], shm[160], c;
	int64_t id;
	int ready[2], done[2], status;
	pid_t pid;

	l = open_log();
	append(l, "u", "kept");
	mlog_close(l);
	if (not_root() != 0)
		return;
	ck_assert_int_eq(pipe(ready), 0);
	ck_assert_int_eq(pipe(done), 0);
	if ((pid = fork()) == 0) {
		if (mlog_open(&l, &cf, 0, err, sizeof(err)) != MLOG_OK ||
		    mlog_append(l, "u", NULL, NULL, "k", 1, &id) != MLOG_OK)
			_exit(1);
		(void)write(ready[1], "r", 1);
		(void)read(done[0], &c, 1);
		mlog_close(l);
		_exit(0);
	}
	ck_assert_int_gt(pid, 0);
	ck_assert_int_eq(read(ready[0], &c, 1), 1);
	snprintf(shm, sizeof(shm), "%s-shm", dbpath);
	ck_assert_int_eq(chmod(shm, 0444), 0);
	ck_assert_int_eq(mlog_open(&l, &cf, MLOG_CREATE, err, sizeof(err)),
	    MLOG_OK);
	ck_assert_int_eq(mlog_append(l, "u", NULL, NULL, "x", 1, &id),
	    MLOG_EUNAVAIL);
	snprintf(want, sizeof(want), "(%s: not writable by ", shm);
	ck_assert_msg(strstr(mlog_errmsg(l), want) != NULL, "reason: %s",
	    mlog_errmsg(l));
	mlog_close(l);
	ck_assert_int_eq(chmod(shm, 0644), 0);
	ck_assert_int_eq(write(done[1], "d", 1), 1);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}
END_TEST

/* A folder where SQLite cannot make -wal and -shm: the open fails so. */
START_TEST(unavailable_folder)
{
	struct mlog *l;
	char err[T_ERR_MAX], want[256];

	l = open_log();
	append(l, "u", "kept");
	mlog_close(l);
	if (not_root() != 0)
		return;
	ck_assert_int_eq(chmod(dir, 0555), 0);
	ck_assert_int_eq(mlog_open(&l, &cf, MLOG_CREATE, err, sizeof(err)),
	    MLOG_EUNAVAIL);
	ck_assert_ptr_null(l);
	snprintf(want, sizeof(want), "(folder %s: not writable by ", dir);
	ck_assert_msg(strstr(err, want) != NULL, "reason: %s", err);
	/* A log that is not there yet cannot be made there either. */
	snprintf(cf.db, sizeof(cf.db), "%s/other.db", dir);
	ck_assert_int_eq(mlog_open(&l, &cf, MLOG_CREATE, err, sizeof(err)),
	    MLOG_EUNAVAIL);
	ck_assert_msg(strstr(err, want) != NULL &&
	    strstr(err, "must create the log in it") != NULL, "reason: %s",
	    err);
	ck_assert_int_eq(chmod(dir, 0755), 0);
}
END_TEST

/* Busy past the busy timeout: MLOG_EUNAVAIL by its code, not its text. */
START_TEST(unavailable_busy)
{
	struct mlog *l;
	sqlite3 *db;
	int64_t id;

	l = open_log();
	db = open_sql();
	ck_assert_int_eq(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL,
	    NULL), SQLITE_OK);
	ck_assert_int_eq(mlog_append(l, "u", NULL, NULL, "x", 1, &id),
	    MLOG_EUNAVAIL);
	ck_assert_msg(strstr(mlog_errmsg(l), "busy timeout") != NULL,
	    "reason: %s", mlog_errmsg(l));
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close(db);
	ck_assert_int_eq(mlog_append(l, "u", NULL, NULL, "x", 1, &id),
	    MLOG_OK);
	mlog_close(l);
}
END_TEST

/* A writer as another program would be: a plain connection (SQLite's own
 * busy handler) committing one row after another, back to back, until
 * killed, its parent (the test) is gone, or 60 s have passed.  Runs in a
 * child; never returns. */
static void
hog(pid_t parent)
{
	sqlite3 *db;
	time_t end = time(NULL) + 60;

	if (sqlite3_open(dbpath, &db) != SQLITE_OK)
		_exit(1);
	sqlite3_busy_timeout(db, 60000);
	while (time(NULL) < end && getppid() == parent)
		if (sqlite3_exec(db, "BEGIN IMMEDIATE; INSERT INTO "
		    "messages(channel, data) VALUES('h', 'x'); COMMIT",
		    NULL, NULL, NULL) != SQLITE_OK)
			_exit(1);
	_exit(0);
}

/* Two writers committing back to back leave the write lock free only
 * between one's COMMIT and the next BEGIN: a publish still gets its turn
 * within the busy timeout, every time. */
START_TEST(busy_back_to_back)
{
	struct mlog *l;
	pid_t kids[2];
	int64_t id;
	int i, st;

	mlog_close(open_log());
	for (i = 0; i < 2; i++) {
		kids[i] = fork();
		ck_assert_int_ge(kids[i], 0);
		if (kids[i] == 0)
			hog(getppid());
	}
	l = open_log();
	/* Both at work: rows of theirs keep coming. */
	while (sql_int(mlog_db(l), "SELECT count(*) FROM messages") < 200)
		usleep(1000);
	for (i = 0; i < 20; i++)
		ck_assert_msg(mlog_append(l, "p", NULL, NULL, "y", 1, &id) ==
		    MLOG_OK, "publish %d of 20: %s", i + 1, mlog_errmsg(l));
	for (i = 0; i < 2; i++) {
		kill(kids[i], SIGKILL);
		ck_assert_int_eq(waitpid(kids[i], &st, 0), kids[i]);
		ck_assert_msg(WIFSIGNALED(st), "writer %d stopped by itself "
		    "(status %d)", i, st);
	}
	ck_assert_int_eq(sql_int(mlog_db(l), "SELECT count(*) FROM messages "
	    "WHERE channel = 'p'"), 20);
	mlog_close(l);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("mlog");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, ids_never_reused);
	tcase_add_test(tc, retention_by_count);
	tcase_add_test(tc, retention_by_age);
	tcase_add_test(tc, read_cursor_channels);
	tcase_add_test(tc, read_limit_capped);
	tcase_add_test(tc, gap_detection);
	tcase_add_test(tc, validation);
	tcase_add_test(tc, plain_sql_insert);
	tcase_add_test(tc, changed_by_others);
	tcase_add_test(tc, streams_and_subscribers);
	tcase_add_test(tc, stats_all);
	tcase_add_test(tc, control_schema);
	tcase_add_test(tc, control_invisible);
	tcase_add_test(tc, control_pruned);
	tcase_add_test(tc, prune_all_spares_control);
	tcase_add_test(tc, schema_versions);
	tcase_add_test(tc, schema_upgrade);
	tcase_add_test(tc, create_mode_and_wal);
	tcase_add_test(tc, concurrent_create);
	tcase_add_test(tc, readonly_open);
	tcase_add_test(tc, relog_removed);
	tcase_add_test(tc, relog_moved_over);
	tcase_add_test(tc, relog_during_commit);
	tcase_add_test(tc, cursor_rule);
	tcase_add_test(tc, unavailable_readonly_file);
	tcase_add_test(tc, unavailable_readonly_shm);
	tcase_add_test(tc, unavailable_folder);
	tcase_add_test(tc, unavailable_busy);
	tcase_add_test(tc, busy_back_to_back);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
