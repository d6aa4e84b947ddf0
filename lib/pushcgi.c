/*
 * pushcgi: the public C API, a thin shell over mlog (append) and bell
 * (wake the waiting).  See pushcgi.h for the contract.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bell.h"
#include "conf.h"
#include "mlog.h"
#include "pushcgi.h"

#define PUSHCGI_ERR_MAX 768 /* bytes of a reason (one may name a file) */

struct pushcgi {
	struct mlog *log;
	struct bell *bell;
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
	/* MLOG_RELOG: a log removed or replaced under the handle is
	 * reopened (created anew) by the next publish (mlog.h). */
	if (mlog_open(&p->log, &c, MLOG_CREATE | MLOG_RELOG, why,
	    sizeof(why)) != MLOG_OK) {
		snprintf(err, errlen, "%s", why);
		free(p);
		return NULL;
	}
	if (bell_open(&p->bell, c.db, c.check_ms) != 0) {
		snprintf(err, errlen, "%s-bell: %s", c.db, strerror(errno));
		mlog_close(p->log);
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

	/* Never 0 for a message the log at the path lacks: mlog_append
	 * checks the path before and after its commit, and reopens once
	 * (MLOG_RELOG); the bell rings the file at the path too. */
	if (mlog_append(p->log, channel, type, event, data, len, &nid) !=
	    MLOG_OK) {
		snprintf(p->err, sizeof(p->err), "%s", mlog_errmsg(p->log));
		return -1;
	}
	/* A failed reopen costs nothing: bell_ring rings the file at the
	 * path as well as its own. */
	if (bell_moved(p->bell))
		(void)bell_reopen(p->bell);
	bell_ring(p->bell, nid);
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
	bell_close(p->bell);
	mlog_close(p->log);
	free(p);
}
