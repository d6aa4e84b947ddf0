/*
 * conf: built-in defaults, the optional config file, and $PUSHCGI_DB.
 *
 * The file is read by a table of known keys: an unknown key, a value out of
 * range or an over-long line is an error naming the file and line, because a
 * mistyped "publish_token" must not leave an operator believing publishing
 * is protected when it is not (it is closed by default either way).
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <unistd.h>

#include "conf.h"
#include "valid.h"

#ifndef PUSHCGI_DEFAULT_DB
#define PUSHCGI_DEFAULT_DB "/var/lib/pushcgi/pushcgi.db"
#endif
#ifndef PUSHCGI_DEFAULT_CONF
#define PUSHCGI_DEFAULT_CONF "/etc/pushcgi.conf"
#endif

#define CONF_DEF_RETAIN_COUNT 1000
#define CONF_DEF_RETAIN_AGE   86400
#define CONF_DEF_MAX_DATA     (1L << 20)
#define CONF_DEF_HEARTBEAT    20
#define CONF_DEF_POLL         25
#define CONF_DEF_POLL_MAX     120
#define CONF_DEF_CHECK_MS     100
#define CONF_DEF_MAX_SUBS     10000
#define CONF_DEF_THREADS      4
#define CONF_MAX_DATA_CAP     (64L << 20) /* largest max_data accepted */
#define CONF_RETAIN_COUNT_CAP 100000000   /* largest retain_count */
#define CONF_RETAIN_AGE_CAP   (100L * 365 * 86400) /* largest retain_age, s */
#define CONF_SECONDS_CAP      3600 /* largest heartbeat and poll timeouts */
#define CONF_CHECK_MS_MIN     10   /* smallest check_interval_ms */
#define CONF_CHECK_MS_CAP     1000 /* largest check_interval_ms */
#define CONF_SUBS_CAP         1000000 /* largest max_(channel_)subscribers */
#define CONF_THREADS_CAP      64   /* largest threads */
#define CONF_WHY_MAX          256  /* bytes of a bad value's reason, before
                                      the file and line are put in front */

enum conf_kind { CONF_LONG, CONF_INT, CONF_BOOL, CONF_PATH, CONF_TOKEN,
	CONF_ORIGIN, CONF_SECRET, CONF_PRIVATE, CONF_SYNC, CONF_DIR };

struct conf_key {
	const char *name;
	enum conf_kind kind;
	size_t off;     /* offset of the field in struct conf */
	long min, max;  /* for numbers */
};

#define F(field) offsetof(struct conf, field)
static const struct conf_key conf_keys[] = {
	{ "db", CONF_PATH, F(db), 0, 0 },
	{ "wake_dir", CONF_DIR, F(wake_dir), 0, 0 },
	{ "retain_count", CONF_LONG, F(retain_count), 0,
	    CONF_RETAIN_COUNT_CAP },
	{ "retain_age", CONF_LONG, F(retain_age), 0, CONF_RETAIN_AGE_CAP },
	{ "max_data", CONF_LONG, F(max_data), 1, CONF_MAX_DATA_CAP },
	{ "heartbeat", CONF_INT, F(heartbeat), 1, CONF_SECONDS_CAP },
	{ "poll_timeout", CONF_INT, F(poll_timeout), 0, CONF_SECONDS_CAP },
	{ "poll_timeout_max", CONF_INT, F(poll_timeout_max), 0,
	    CONF_SECONDS_CAP },
	{ "check_interval_ms", CONF_INT, F(check_ms), CONF_CHECK_MS_MIN,
	    CONF_CHECK_MS_CAP },
	{ "synchronous", CONF_SYNC, F(synchronous_full), 0, 0 },
	{ "max_subscribers", CONF_INT, F(max_subscribers), 1, CONF_SUBS_CAP },
	{ "max_channel_subscribers", CONF_INT, F(max_channel_subscribers),
	    0, CONF_SUBS_CAP },
	{ "threads", CONF_INT, F(threads), 1, CONF_THREADS_CAP },
	{ "trust_remote_user", CONF_BOOL, F(trust_remote_user), 0, 1 },
	{ "publish_token", CONF_TOKEN, 0, 0, 0 },
	{ "cors_origin", CONF_ORIGIN, 0, 0, 0 },
	{ "subscriber_secret", CONF_SECRET, F(subscriber_secret), 0, 0 },
	{ "private_channel", CONF_PRIVATE, 0, 0, 0 },
};
#undef F

static int conf_set(struct conf *, const struct conf_key *, const char *,
    char *, size_t);
static char *conf_trim(char *);
static int conf_is_word(const char *, size_t);
static int conf_line(struct conf *, const char *, size_t, const char *, int,
    char *, size_t);

const char *
conf_default_db(void)
{
	return PUSHCGI_DEFAULT_DB;
}

const char *
conf_default_path(void)
{
	return PUSHCGI_DEFAULT_CONF;
}

void
conf_defaults(struct conf *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->db, sizeof(c->db), "%s", PUSHCGI_DEFAULT_DB);
	/* The default log's folder: a folder of this host. */
	snprintf(c->wake_dir, sizeof(c->wake_dir), "%s", PUSHCGI_DEFAULT_DB);
	if (strrchr(c->wake_dir, '/') != NULL)
		*strrchr(c->wake_dir, '/') = '\0';
	else
		snprintf(c->wake_dir, sizeof(c->wake_dir), ".");
	if (c->wake_dir[0] == '\0')
		snprintf(c->wake_dir, sizeof(c->wake_dir), "/");
	c->retain_count = CONF_DEF_RETAIN_COUNT;
	c->retain_age = CONF_DEF_RETAIN_AGE;
	c->max_data = CONF_DEF_MAX_DATA;
	c->heartbeat = CONF_DEF_HEARTBEAT;
	c->poll_timeout = CONF_DEF_POLL;
	c->poll_timeout_max = CONF_DEF_POLL_MAX;
	c->check_ms = CONF_DEF_CHECK_MS;
	c->max_subscribers = CONF_DEF_MAX_SUBS;
	c->threads = CONF_DEF_THREADS;
}

/* Strip leading and trailing white space in place. */
static char *
conf_trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/* A printable-ASCII word with no white space: what tokens and secrets may
 * hold, so that they survive headers and query strings unchanged. */
static int
conf_is_word(const char *v, size_t max)
{
	size_t i;

	for (i = 0; v[i] != '\0'; i++)
		if (i >= max || v[i] <= ' ' || v[i] > '~')
			return 0;
	return i > 0;
}

/* Set one key from its value text.  0, or -1 with a reason in err. */
static int
conf_set(struct conf *c, const struct conf_key *k, const char *v, char *err,
    size_t errlen)
{
	char *end;
	long n;

	switch (k->kind) {
	case CONF_LONG:
	case CONF_INT:
	case CONF_BOOL:
		if (k->kind == CONF_BOOL && (strcmp(v, "yes") == 0 ||
		    strcmp(v, "true") == 0 || strcmp(v, "on") == 0))
			v = "1";
		else if (k->kind == CONF_BOOL && (strcmp(v, "no") == 0 ||
		    strcmp(v, "false") == 0 || strcmp(v, "off") == 0))
			v = "0";
		errno = 0;
		n = strtol(v, &end, 10);
		if (errno != 0 || end == v || *end != '\0' || n < k->min ||
		    n > k->max) {
			snprintf(err, errlen, "%s must be a whole number from "
			    "%ld to %ld", k->name, k->min, k->max);
			return -1;
		}
		if (k->kind == CONF_LONG)
			*(long *)(void *)((char *)c + k->off) = n;
		else
			*(int *)(void *)((char *)c + k->off) = (int)n;
		return 0;
	case CONF_SYNC:
		if (strcmp(v, "normal") == 0)
			c->synchronous_full = 0;
		else if (strcmp(v, "full") == 0)
			c->synchronous_full = 1;
		else {
			snprintf(err, errlen, "synchronous must be normal or "
			    "full");
			return -1;
		}
		return 0;
	case CONF_PATH:
		if (*v == '\0' || strlen(v) >= sizeof(c->db)) {
			snprintf(err, errlen, "db must be a path of at most "
			    "%zu bytes", sizeof(c->db) - 1);
			return -1;
		}
		snprintf(c->db, sizeof(c->db), "%s", v);
		return 0;
	case CONF_DIR:
		if (*v != '/' || strlen(v) >= sizeof(c->wake_dir)) {
			snprintf(err, errlen, "wake_dir must be an absolute "
			    "path of at most %zu bytes",
			    sizeof(c->wake_dir) - 1);
			return -1;
		}
		snprintf(c->wake_dir, sizeof(c->wake_dir), "%s", v);
		return 0;
	case CONF_TOKEN:
		if (c->ntokens >= CONF_TOKENS_MAX) {
			snprintf(err, errlen, "at most %d publish_token lines",
			    CONF_TOKENS_MAX);
			return -1;
		}
		if (!conf_is_word(v, CONF_TOKEN_MAX)) {
			snprintf(err, errlen, "publish_token must be 1-%d "
			    "printable characters without spaces",
			    CONF_TOKEN_MAX);
			return -1;
		}
		snprintf(c->tokens[c->ntokens++], CONF_TOKEN_MAX + 1, "%s", v);
		return 0;
	case CONF_SECRET:
		if (!conf_is_word(v, CONF_TOKEN_MAX)) {
			snprintf(err, errlen, "subscriber_secret must be 1-%d "
			    "printable characters without spaces",
			    CONF_TOKEN_MAX);
			return -1;
		}
		snprintf(c->subscriber_secret, sizeof(c->subscriber_secret),
		    "%s", v);
		return 0;
	case CONF_ORIGIN:
		if (c->norigins >= CONF_ORIGINS_MAX ||
		    !conf_is_word(v, CONF_ORIGIN_MAX)) {
			snprintf(err, errlen, "cors_origin must be \"*\" or an "
			    "origin such as https://example.org (at most %d "
			    "lines)", CONF_ORIGINS_MAX);
			return -1;
		}
		snprintf(c->origins[c->norigins++], CONF_ORIGIN_MAX + 1, "%s",
		    v);
		return 0;
	case CONF_PRIVATE:
		if (c->nprivate >= CONF_PRIVATE_MAX || !valid_channel(v)) {
			snprintf(err, errlen, "private_channel must be a "
			    "channel name prefix (at most %d lines)",
			    CONF_PRIVATE_MAX);
			return -1;
		}
		snprintf(c->private_prefix[c->nprivate++],
		    sizeof(c->private_prefix[0]), "%s", v);
		return 0;
	}
	return -1;
}

/*
 * One line, text[0..len) without its newline, into c.  0 or -1 with the
 * reason (naming name and lineno) in err.
 */
static int
conf_line(struct conf *c, const char *text, size_t len, const char *name,
    int lineno, char *err, size_t errlen)
{
	char line[CONF_LINE_MAX + 1], why[CONF_WHY_MAX];
	char *key, *val, *eq, *hash;
	size_t i;

	if (len > CONF_LINE_MAX) {
		snprintf(err, errlen, "%s:%d: line longer than %d bytes",
		    name, lineno, CONF_LINE_MAX);
		return -1;
	}
	if (memchr(text, '\0', len) != NULL) {
		snprintf(err, errlen, "%s:%d: NUL byte", name, lineno);
		return -1;
	}
	memcpy(line, text, len);
	line[len] = '\0';
	if ((hash = strchr(line, '#')) != NULL)
		*hash = '\0';
	key = conf_trim(line);
	if (*key == '\0')
		return 0;
	if ((eq = strchr(key, '=')) == NULL) {
		snprintf(err, errlen, "%s:%d: expected \"key = value\"",
		    name, lineno);
		return -1;
	}
	*eq = '\0';
	key = conf_trim(key);
	val = conf_trim(eq + 1);
	for (i = 0; i < sizeof(conf_keys) / sizeof(conf_keys[0]); i++)
		if (strcmp(conf_keys[i].name, key) == 0)
			break;
	if (i == sizeof(conf_keys) / sizeof(conf_keys[0])) {
		snprintf(err, errlen, "%s:%d: unknown key \"%.64s\"", name,
		    lineno, key);
		return -1;
	}
	if (conf_set(c, &conf_keys[i], val, why, sizeof(why)) != 0) {
		snprintf(err, errlen, "%s:%d: %s", name, lineno, why);
		return -1;
	}
	return 0;
}

int
conf_parse(struct conf *c, const char *text, size_t len, const char *name,
    char *err, size_t errlen)
{
	const char *p = text, *end = text + len, *nl;
	int lineno = 0;

	if (name == NULL)
		name = "(config)";
	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		lineno++;
		if (conf_line(c, p, (size_t)((nl != NULL ? nl : end) - p), name,
		    lineno, err, errlen) != 0)
			return -1;
		p = nl != NULL ? nl + 1 : end;
	}
	return 0;
}

int
conf_read_file(struct conf *c, const char *path, char *err, size_t errlen)
{
	char *text;
	size_t len = 0, got;
	FILE *f;
	int rc;

	if ((f = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	/* The whole file, one byte past the cap to tell that it is over. */
	if ((text = malloc(CONF_FILE_MAX + 1)) == NULL) {
		fclose(f);
		snprintf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	while (len <= CONF_FILE_MAX &&
	    (got = fread(text + len, 1, CONF_FILE_MAX + 1 - len, f)) > 0)
		len += got;
	if (ferror(f)) {
		snprintf(err, errlen, "%s: read error", path);
		rc = -1;
	} else if (len > CONF_FILE_MAX) {
		snprintf(err, errlen, "%s: longer than %d bytes", path,
		    CONF_FILE_MAX);
		rc = -1;
	} else
		rc = conf_parse(c, text, len, path, err, errlen);
	free(text);
	fclose(f);
	if (rc == 0)
		snprintf(c->path, sizeof(c->path), "%s", path);
	return rc;
}

int
conf_load(struct conf *c, char *err, size_t errlen)
{
	const char *path = getenv("PUSHCGI_CONF"), *db = getenv("PUSHCGI_DB");

	conf_defaults(c);
	if (path != NULL && *path != '\0') {
		if (conf_read_file(c, path, err, errlen) != 0)
			return -1;
	} else if (access(PUSHCGI_DEFAULT_CONF, F_OK) == 0) {
		if (conf_read_file(c, PUSHCGI_DEFAULT_CONF, err, errlen) != 0)
			return -1;
	}
	if (db != NULL && *db != '\0') {
		if (strlen(db) >= sizeof(c->db)) {
			snprintf(err, errlen, "PUSHCGI_DB is too long");
			return -1;
		}
		snprintf(c->db, sizeof(c->db), "%s", db);
	}
	return 0;
}
