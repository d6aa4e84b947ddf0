/*
 * pushcgi: the public C API, a thin shell over the store seam (store.h):
 * one handle with the process's wake-up.  See pushcgi.h for the contract.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "pushcgi.h"
#include "store.h"

#define PUSHCGI_ERR_MAX 768 /* bytes of a reason (one may name a file) */

struct pushcgi {
	struct store *log;
	char err[PUSHCGI_ERR_MAX];
};

struct pushcgi *
pushcgi_open(const char *db, char *err, size_t errlen)
{
	struct pushcgi *p;
	struct conf c;
	char why[PUSHCGI_ERR_MAX];

	if (conf_load(&c, why, sizeof(why)) != 0) {
		snprintf(err, errlen, "%s", why);
		return NULL;
	}
	if (db != NULL) {
		if (strlen(db) >= sizeof(c.db)) {
			snprintf(err, errlen, "database path too long");
			return NULL;
		}
		snprintf(c.db, sizeof(c.db), "%s", db);
	}
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	/* STORE_RELOG: a log removed or replaced under the handle is
	 * reopened (created anew) by the next publish (store.h). */
	if (store_open(&p->log, &c, STORE_CREATE | STORE_RELOG | STORE_WAKE,
	    why, sizeof(why)) != STORE_OK) {
		snprintf(err, errlen, "%s", why);
		free(p);
		return NULL;
	}
	return p;
}

int
pushcgi_publish(struct pushcgi *p, const char *channel, const char *type,
    const char *event, const void *data, size_t len, int64_t *id)
{
	int64_t nid;

	/* Never 0 for a message the log at the path lacks: the store
	 * checks the path before and after its commit, and reopens once
	 * (STORE_RELOG); the wake-up reaches the file at the path too. */
	if (store_publish(p->log, channel, type, event, data, len, &nid) !=
	    STORE_OK) {
		snprintf(p->err, sizeof(p->err), "%s", store_errmsg(p->log));
		return -1;
	}
	if (id != NULL)
		*id = nid;
	return 0;
}

const char *
pushcgi_error(const struct pushcgi *p)
{
	return p->err;
}

void
pushcgi_close(struct pushcgi *p)
{
	if (p == NULL)
		return;
	store_close(p->log);
	free(p);
}
