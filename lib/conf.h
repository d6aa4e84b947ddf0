/*
 * conf: the one small configuration file, and the built-in defaults that make
 * it optional.
 *
 * Lookup order for the file: $PUSHCGI_CONF, else the compiled-in default path
 * (a missing default file is not an error; a missing $PUSHCGI_CONF file is).
 * $PUSHCGI_DB, when set, overrides the database path from any file.
 *
 * Format: one "key = value" a line; '#' starts a comment; unknown keys and
 * bad values are errors (a typo must not silently open publishing).
 */
#ifndef PUSHCGI_CONF_H
#define PUSHCGI_CONF_H

#include <limits.h>
#include <stddef.h>

#include "valid.h"

#define CONF_LINE_MAX      1024 /* bytes in one line of the file */
#define CONF_FILE_MAX      (256 * 1024) /* bytes in the whole file */
#define CONF_TOKENS_MAX    16   /* publish_token lines */
#define CONF_TOKEN_MAX     128  /* bytes in one token or secret */
#define CONF_ORIGINS_MAX   16   /* cors_origin lines */
#define CONF_ORIGIN_MAX    255  /* bytes in one cors_origin */
#define CONF_PRIVATE_MAX   16   /* private_channel lines */
#define CONF_PREFIX_MAX    VALID_CHANNEL_MAX /* bytes in one private_channel
                                   prefix (a valid channel name) */

struct conf {
	char db[PATH_MAX];          /* message log path, or a PostgreSQL
	                               URI (postgresql://...) */
	char wake_dir[PATH_MAX];    /* this host's folder for the wake-up file
	                               of a PostgreSQL log (default: the
	                               default log's folder) */
	long retain_count;          /* messages kept per channel (0 = no cap) */
	long retain_age;            /* seconds a message is kept (0 = forever) */
	long max_data;              /* largest message body, bytes */
	int heartbeat;              /* seconds between heartbeats */
	int poll_timeout;           /* default long-poll hold, seconds */
	int poll_timeout_max;       /* cap on a client's timeout= */
	int check_ms;               /* how often the gatekeeper looks for plain
	                               SQL inserts when it cannot watch the
	                               log's folder, milliseconds */
	int synchronous_full;       /* 1: PRAGMA synchronous=FULL, 0: NORMAL */
	int max_subscribers;        /* streams and polls held by one process */
	int max_channel_subscribers;/* per channel, across processes (0 = none) */
	int threads;                /* FastCGI request threads per process */
	int trust_remote_user;      /* publishing allowed when REMOTE_USER set */
	int ntokens;
	char tokens[CONF_TOKENS_MAX][CONF_TOKEN_MAX + 1];
	int norigins;
	char origins[CONF_ORIGINS_MAX][CONF_ORIGIN_MAX + 1]; /* "*" allowed */
	char subscriber_secret[CONF_TOKEN_MAX + 1]; /* HMAC key, "" = none */
	int nprivate;               /* channel prefixes needing a token */
	char private_prefix[CONF_PRIVATE_MAX][CONF_PREFIX_MAX + 1];
	char path[PATH_MAX];        /* file the settings came from, "" = none */
};

/* Fill c with the built-in defaults. */
void conf_defaults(struct conf *c);

/* Defaults, then the file (see above), then $PUSHCGI_DB.  Returns 0, or -1
 * with a one-line reason (naming file and line) in err. */
int conf_load(struct conf *c, char *err, size_t errlen);

/* Apply one file (at most CONF_FILE_MAX bytes, read whole, then
 * conf_parse) on top of c, and record its path.  Returns 0, or -1 with a
 * reason in err. */
int conf_read_file(struct conf *c, const char *path, char *err, size_t errlen);

/*
 * Apply config text[0..len) on top of c: lines end with "\n" (a CR
 * before it is white space), each at most CONF_LINE_MAX bytes; a NUL
 * byte is an error.  name (a file name, or NULL) starts each error
 * message, followed by ":LINE: ".  Stops at the first bad line: c may
 * then hold the lines before it.  Returns 0, or -1 with a reason in err.
 */
int conf_parse(struct conf *c, const char *text, size_t len,
    const char *name, char *err, size_t errlen);

/* The compiled-in default paths. */
const char *conf_default_db(void);
const char *conf_default_path(void);

#endif
