/*
 * store: the seam's dispatch (store.h).  Each call goes to the handle's
 * backend; what is the same for every backend (the control requests'
 * wording) is here.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "bell.h"
#include "store.h"

int
store_process_init(int flags)
{
#ifdef HAVE_PGLOG
	if (store_pg_process_init(flags) != 0)
		return -1;
#endif
	return store_sqlite_process_init(flags);
}

int
store_pg_is(const char *db)
{
	return strncmp(db, "postgresql://", 13) == 0 ||
	    strncmp(db, "postgres://", 11) == 0;
}

int
store_open(struct store **out, const struct conf *c, int flags, char *err,
    size_t errlen)
{
	*out = NULL;
	/* A postgresql:// URI is the PostgreSQL backend; anything else
	 * names a SQLite file. */
	if (store_pg_is(c->db)) {
#ifdef HAVE_PGLOG
		return store_pg_open(out, c, flags, err, errlen);
#else
		snprintf(err, errlen, "%s: this build has no PostgreSQL "
		    "backend (configured --without-postgresql)", c->db);
		return STORE_ERR;
#endif
	}
	return store_sqlite_open(out, c, flags, err, errlen);
}

int
store_open_peer(struct store **out, struct store *peer, int flags,
    char *err, size_t errlen)
{
	*out = NULL;
	return peer->ops->open_peer(out, peer, flags, err, errlen);
}

void
store_close(struct store *s)
{
	if (s != NULL)
		s->ops->close(s);
}

const char *
store_errmsg(const struct store *s)
{
	return s->ops->errmsg(s);
}

int
store_publish(struct store *s, const char *channel, const char *type,
    const char *event, const void *data, size_t len, int64_t *id)
{
	return s->ops->publish(s, channel, type, event, data, len, id);
}

int
store_end_stream(struct store *s, int64_t stream, int64_t *id)
{
	return s->ops->end_stream(s, stream, id);
}

int
store_end_channel(struct store *s, const char *channel, int64_t *id)
{
	return s->ops->end_channel(s, channel, id);
}

/* Allow-list parse: a prefix, then exactly a decimal id or a valid
 * channel name, nothing else (no sign, no space, no newline). */
int
store_control_parse(const struct store_msg *m, int64_t *stream,
    char *channel, size_t len)
{
	const char *d = m->data;
	size_t n = m->len, pl, i;
	int64_t v = 0;

	if (m->channel == NULL || strcmp(m->channel, STORE_CONTROL) != 0 ||
	    n >= STORE_CONTROL_MAX)
		return STORE_CONTROL_NONE;
	pl = sizeof(STORE_CONTROL_STREAM) - 1;
	if (n > pl && memcmp(d, STORE_CONTROL_STREAM, pl) == 0) {
		if (n - pl > STORE_ID_DIGITS || d[pl] == '0')
			return STORE_CONTROL_NONE;
		for (i = pl; i < n; i++) {
			if (d[i] < '0' || d[i] > '9' ||
			    v > (INT64_MAX - (d[i] - '0')) / 10)
				return STORE_CONTROL_NONE;
			v = v * 10 + (d[i] - '0');
		}
		*stream = v;
		return STORE_CONTROL_END_STREAM;
	}
	pl = sizeof(STORE_CONTROL_CHANNEL) - 1;
	if (n > pl && memcmp(d, STORE_CONTROL_CHANNEL, pl) == 0 &&
	    n - pl < len && n - pl <= VALID_CHANNEL_MAX) {
		memcpy(channel, d + pl, n - pl);
		channel[n - pl] = '\0';
		if (strlen(channel) == n - pl && valid_channel(channel))
			return STORE_CONTROL_END_CHANNEL;
	}
	return STORE_CONTROL_NONE;
}

int
store_trim_due(struct store_trim *t, long retain_count, long retain_age,
    const char *channel)
{
	long slack;

	if (retain_count <= 0 && retain_age <= 0)
		return 0;
	slack = retain_count / STORE_TRIM_SLACK_DIV;
	if (slack > STORE_TRIM_SLACK_MAX)
		slack = STORE_TRIM_SLACK_MAX;
	if (strcmp(t->channel, channel) != 0) {
		memcpy(t->channel, channel, strlen(channel) + 1);
		t->pending = 0;
		return 1;
	}
	if (t->pending >= slack) {
		t->pending = 0;
		return 1;
	}
	t->pending++;
	return 0;
}

int
store_bell_answer(int bell_rc, int replaced)
{
	switch (bell_rc) {
	case BELL_READY:
		return STORE_READY;
	case BELL_TIMEOUT:
		return STORE_TIMEOUT;
	case BELL_INTERRUPTED:
		return replaced ? STORE_REPLACED : STORE_INTERRUPTED;
	default:
		return STORE_WAIT_ERROR;
	}
}

int
store_last_id(struct store *s, int64_t *id)
{
	return s->ops->last_id(s, id);
}

int
store_read(struct store *s, const char *const *channels, int n,
    int64_t after, int limit, store_cb cb, void *arg, int64_t *gap,
    int64_t *last)
{
	return s->ops->read(s, channels, n, after, limit, cb, arg, gap, last);
}

int
store_latest(struct store *s, const char *const *channels, int n,
    int count, store_cb cb, void *arg)
{
	return s->ops->latest(s, channels, n, count, cb, arg);
}

int
store_control_read(struct store *s, int64_t after, int64_t upto,
    int limit, store_cb cb, void *arg, int64_t *last)
{
	return s->ops->control_read(s, after, upto, limit, cb, arg, last);
}

int
store_stat(struct store *s, const char *channel, struct store_stat *st)
{
	return s->ops->stat(s, channel, st);
}

int
store_stats(struct store *s, store_stat_cb cb, void *arg)
{
	return s->ops->stats(s, cb, arg);
}

int
store_subscribers(struct store *s, const char *channel, int64_t *n)
{
	return s->ops->subscribers(s, channel, n);
}

int
store_prune(struct store *s, const char *channel, long keep_count,
    long max_age, int64_t *deleted)
{
	return s->ops->prune(s, channel, keep_count, max_age, deleted);
}

int
store_remove(struct store *s, const char *channel, int64_t *deleted)
{
	return s->ops->remove(s, channel, deleted);
}

int
store_stream_open(struct store *s, const char *const *channels, int n,
    pid_t pid, const char *secret, int64_t *stream)
{
	return s->ops->stream_open(s, channels, n, pid, secret, stream);
}

int
store_stream_close(struct store *s, int64_t stream)
{
	return s->ops->stream_close(s, stream);
}

int
store_stream_info(struct store *s, int64_t stream, pid_t *pid,
    char *secret, size_t secretlen)
{
	return s->ops->stream_info(s, stream, pid, secret, secretlen);
}

int
store_touch(struct store *s, pid_t pid)
{
	return s->ops->touch(s, pid);
}

int64_t
store_seen(struct store *s)
{
	return s->ops->seen(s);
}

int
store_wait(struct store *s, int64_t seen, int timeout_ms)
{
	return s->ops->wait(s, seen, timeout_ms);
}

void
store_interrupt(struct store *s)
{
	s->ops->interrupt(s);
}

void
store_ring(struct store *s, int64_t id)
{
	s->ops->ring(s, id);
}

int
store_sync(struct store *s, int64_t *last)
{
	return s->ops->sync(s, last);
}

int
store_moved(struct store *s)
{
	return s->ops->moved(s);
}

int
store_watch(struct store *s)
{
	return s->ops->watch(s);
}

int
store_reopen(struct store *s)
{
	return s->ops->reopen(s);
}

void
store_release(struct store *s)
{
	s->ops->release(s);
}

void
store_clean(struct store *s)
{
	s->ops->clean(s);
}

int
store_rewake(struct store *s)
{
	return s->ops->rewake(s);
}
