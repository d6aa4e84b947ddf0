/*
 * pushcgi.h: publish to a pushcgi message log from a C program.
 *
 *	#include <pushcgi.h>      (cc prog.c $(pkg-config --cflags --libs pushcgi))
 *
 *	char err[256];
 *	struct pushcgi *p = pushcgi_open(NULL, err, sizeof err);
 *	if (p == NULL) errx(1, "%s", err);
 *	if (pushcgi_publish(p, "temps", NULL, NULL, "21.5", 4, NULL) != 0)
 *		warnx("%s", pushcgi_error(p));
 *	pushcgi_close(p);
 *
 * The database is found as pushctl finds it ($PUSHCGI_DB, the config file
 * named by $PUSHCGI_CONF, or the built-in default) unless db is given.  A
 * handle keeps one SQLite connection: publishing costs one commit (tens of
 * microseconds with synchronous=NORMAL).  One handle per thread.
 */
#ifndef PUSHCGI_H
#define PUSHCGI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct pushcgi;

/* Open the log (created if missing).  NULL on failure, with a one-line
 * reason in err. */
struct pushcgi *pushcgi_open(const char *db, char *err, size_t errlen);

/* Publish one message and wake subscribers.  type NULL means
 * "text/plain; charset=utf-8"; event NULL means none.  Returns 0, or -1
 * with the reason in pushcgi_error().  *id (if id) gets the message id.
 * 0 means the log at the database path holds the message: a log removed
 * or replaced under the handle is reopened (created anew) once, and a
 * replacement during the commit makes it -1. */
int pushcgi_publish(struct pushcgi *p, const char *channel, const char *type,
    const char *event, const void *data, size_t len, int64_t *id);

/* The last failure's reason. */
const char *pushcgi_error(const struct pushcgi *p);

void pushcgi_close(struct pushcgi *p);

#ifdef __cplusplus
}
#endif

#endif
