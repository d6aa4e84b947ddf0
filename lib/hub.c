/*
 * hub: one bell thread per process, a ring of recent messages, one eventfd
 * per subscription.  The model and its invariant (the ring is complete
 * above base) are described in hub.h.
 *
 * Locks: h->mu guards the ring, base, cursor and the subscription list;
 * h->dbmu guards the shared connection.  Never hold mu while calling
 * SQLite or a delivery callback, and never take mu while holding dbmu
 * (dbmu may be held across slow SQLite calls).  A subscription's pos is
 * written only by its own thread, as an atomic (no lock), and read by the
 * hub thread under mu: a stale read there is never higher than the
 * truth, so it can cause an extra wake-up but never a lost one.
 *
 * Wake-ups of many subscriptions (hub_fill) are written after mu is
 * released, so that the woken threads do not queue on it: the hub thread
 * lists the subscriptions under mu, marking each one listed, and clears
 * the mark (atomically, without mu) once it is done with that one;
 * hub_unsubscribe waits while its subscription is listed before it
 * frees it.  A thread that was woken is normally no longer listed, so
 * it leaves at once instead of waiting for the whole pass.
 *
 * Direct delivery (hub_sub_park): a subscription's dmu is the delivery
 * lock of hub.h's contract (who writes a parked stream, and when).
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "elog.h"
#include "hub.h"
#include "mono.h"

#define HUB_PROG "pushcgi hub"  /* the name on its error-log lines */
#define HUB_RETRY_MS 1000 /* pause after a failed read in the hub thread */
#define HUB_CTL_BATCH 64  /* control requests read per query */
#define HUB_CTL_ROUNDS (STORE_CONTROL_KEEP / HUB_CTL_BATCH + 2) /* per look */
#define HUB_RELOG_WAIT_MS 2000 /* a publisher waits this long for a reopen */

/* hub_take_cb's refusals: batch full, out of memory. */
enum { HUB_TAKE_FULL = 1, HUB_TAKE_NOMEM = 2 };

struct hub_sub {
	struct hub *hub;
	struct hub_sub *prev, *next;
	int efd;                  /* atomic: its eventfd, -1 until asked
	                             for (hub_sub_fd) */
	int woken;                /* atomic: woken with no eventfd nor
	                             notify function to tell yet */
	void (*nfn)(void *);      /* atomic: hub_sub_notify's function */
	void *narg;
	int n;
	const char **chans;       /* n names, in the same allocation */
	int64_t pos;              /* atomic: see the locks above */
	int64_t gap_told;         /* highest gap reported */
	int64_t stream;           /* streams row, 0 = none */
	int64_t ctl_from;         /* control requests after this id count */
	int64_t gen;              /* the hub's gen its cursor belongs to
	                             (atomic; its own thread writes it) */
	int ended;                /* a control request ended it (atomic) */
	int listed;               /* in the hub's wake list (atomic; set
	                             under mu) */
	pthread_mutex_t dmu;      /* direct delivery: see the locks above */
	int parked;               /* under dmu */
	hub_cb dcb;               /* under dmu: the direct callback */
	void *darg;
	char handle[HUB_HANDLE_MAX]; /* "ID.SECRET", "" without a row */
	char err[HUB_ERR_MAX];
};

struct hub {
	struct conf conf;
	struct store *log;        /* the hub thread's connection, on which
	                             it waits */
	struct store *shared;     /* hub_db(), under dbmu; owns the
	                             process's wake-up, shared by log */
	struct store *old;         /* under dbmu: the shared connection to
	                             the file followed before the last
	                             reopen, while subscriptions of gen
	                             old_gen may still read it, else NULL */
	int64_t old_gen;
	pthread_mutex_t mu;
	pthread_mutex_t dbmu;
	pthread_cond_t cond;
	pthread_t thread;
	int started;
	int stopping;             /* set under mu, read atomically */
	volatile sig_atomic_t sigstop;
	int active;               /* the ring follows the log */
	struct hub_msg *ring[HUB_RING_MSGS];
	int head, count;          /* oldest at ring[head] */
	long bytes;
	int64_t base, cursor;
	int64_t ctl_cursor;       /* control requests read up to (hub thread) */
	struct hub_sub *subs;
	int nsubs;
	struct hub_msg **fresh;   /* the hub thread's read batch */
	int nfresh;
	struct hub_sub **wakes;   /* hub_fill's wake list (hub thread) */
	int wakecap;
	pthread_cond_t woke;      /* a wake pass ended */
	/* A replaced log (store.h, mlog.h): gen counts the log files the hub has
	 * followed (atomic; raised under dbmu, with the shared connection
	 * on the new file); relog asks the hub thread to look and reopen
	 * (atomic); relogged is broadcast under mu after each look. */
	int64_t gen;
	int64_t looks;            /* hub_relog calls (under mu) */
	int relog;
	pthread_cond_t relogged;
	int64_t touched;          /* mono_ms of the last store_touch (atomic) */
	int64_t watched;          /* mono_ms of hub_watch_soon's last look
	                             (atomic) */
};

/* hub_control's reading state. */
struct hub_ctl {
	struct hub *hub;
	int n;                    /* requests seen in this batch */
};

/* A batch of copies read from the log. */
struct hub_take {
	struct hub_msg **msgs;
	int n, max;
	long bytes;
	int capped;               /* apply HUB_DB_BYTES */
};

static void *hub_main(void *);
static int hub_fill(struct hub *);
static void hub_control(struct hub *, int64_t);
static int hub_control_cb(void *, const struct store_msg *);
static int hub_secret(char *, size_t);
static int hub_take_cb(void *, const struct store_msg *);
static void hub_append(struct hub *, struct hub_msg *);
static int hub_wants(const struct hub_sub *, const struct hub_msg *);
static void hub_wake(struct hub_sub *);
static void hub_wake_fd(int);
static int hub_direct(struct hub_sub *, struct hub_msg **, int, int64_t,
    int64_t);
static void hub_pass(struct hub_sub *, int64_t, int64_t);
static int hub_count(struct hub *, struct store *, struct hub_sub *, char *,
    size_t);
static void hub_wake_list(struct hub *, int, struct hub_msg **, int,
    int64_t, int64_t);
static int64_t hub_sub_pos(const struct hub_sub *);
static int hub_sub_catchup(struct hub_sub *, hub_cb, void *, int *, int);
static void hub_old_done(struct hub *);
static void hub_sub_setpos(struct hub_sub *, int64_t);
static int hub_take_init(struct hub_sub *, struct hub_take *, int, int);
static void hub_take_free(struct hub_take *);
static int hub_take_fail(struct hub_sub *, struct hub_take *, int);
static void hub_relog(struct hub *);
static void hub_relog_ask(struct hub *);
static int hub_moved(struct hub *);
static int hub_reset(struct hub_sub *, hub_cb, void *);
static int hub_stale(const struct hub_sub *);

struct hub_msg *
hub_msg_copy(const struct store_msg *m)
{
	size_t cl = strlen(m->channel) + 1, tl = strlen(m->type) + 1;
	size_t el = m->event != NULL ? strlen(m->event) + 1 : 0;
	struct hub_msg *hm;
	char *p;

	if ((hm = malloc(sizeof(*hm) + m->len + 1 + cl + tl + el)) == NULL)
		return NULL;
	p = (char *)(hm + 1);
	memcpy(p, m->data, m->len);
	p[m->len] = '\0';
	hm->m.data = p;
	hm->m.len = m->len;
	p += m->len + 1;
	memcpy(p, m->channel, cl);
	hm->m.channel = p;
	p += cl;
	memcpy(p, m->type, tl);
	hm->m.type = p;
	p += tl;
	if (el > 0) {
		memcpy(p, m->event, el);
		hm->m.event = p;
	} else
		hm->m.event = NULL;
	hm->m.id = m->id;
	hm->m.time_ms = m->time_ms;
	hm->refs = 1;
	return hm;
}

void
hub_msg_hold(struct hub_msg *m)
{
	__atomic_add_fetch(&m->refs, 1, __ATOMIC_RELAXED);
}

void
hub_msg_drop(struct hub_msg *m)
{
	if (m != NULL && __atomic_sub_fetch(&m->refs, 1, __ATOMIC_ACQ_REL) == 0)
		free(m);
}

int
hub_open(struct hub **out, const struct conf *c, char *err, size_t errlen)
{
	struct hub *h;
	int rc, code = HUB_ERR;

	*out = NULL;
	if ((h = calloc(1, sizeof(*h))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return HUB_ERR;
	}
	h->conf = *c;
	pthread_mutex_init(&h->mu, NULL);
	pthread_mutex_init(&h->dbmu, NULL);
	pthread_cond_init(&h->cond, NULL);
	pthread_cond_init(&h->woke, NULL);
	pthread_cond_init(&h->relogged, NULL);
	if ((h->fresh = calloc(STORE_READ_MAX, sizeof(*h->fresh))) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if ((rc = store_open(&h->shared, c, STORE_CREATE | STORE_WAKE, err,
	    errlen)) != STORE_OK || (rc = store_open_peer(&h->log, h->shared,
	    0, err, errlen)) != STORE_OK) {
		code = rc == STORE_EUNAVAIL ? HUB_EUNAVAIL : HUB_ERR;
		goto fail;
	}
	if ((rc = pthread_create(&h->thread, NULL, hub_main, h)) == 0)
		pthread_setname_np(h->thread, "hub");
	if (rc != 0) {
		snprintf(err, errlen, "hub thread: %s", strerror(rc));
		goto fail;
	}
	h->started = 1;
	*out = h;
	return HUB_OK;
fail:
	hub_close(h);
	return code;
}

void
hub_stop(struct hub *h)
{
	struct hub_sub *s;

	pthread_mutex_lock(&h->mu);
	__atomic_store_n(&h->stopping, 1, __ATOMIC_RELEASE);
	for (s = h->subs; s != NULL; s = s->next)
		hub_wake(s);
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->mu);
	if (h->shared != NULL)
		store_interrupt(h->shared);
}

void
hub_interrupt(struct hub *h)
{
	h->sigstop = 1;
	if (h->shared != NULL)
		store_interrupt(h->shared);
}

int
hub_stopping(struct hub *h)
{
	if (h->sigstop)
		return 1;
	return __atomic_load_n(&h->stopping, __ATOMIC_ACQUIRE);
}

void
hub_close(struct hub *h)
{
	if (h == NULL)
		return;
	if (h->started) {
		hub_stop(h);
		pthread_join(h->thread, NULL);
	}
	while (h->count > 0) {
		hub_msg_drop(h->ring[h->head]);
		h->head = (h->head + 1) % HUB_RING_MSGS;
		h->count--;
	}
	free(h->fresh);
	free(h->wakes);
	pthread_cond_destroy(&h->woke);
	pthread_cond_destroy(&h->relogged);
	store_close(h->log);
	store_close(h->old);
	store_close(h->shared);
	pthread_cond_destroy(&h->cond);
	pthread_mutex_destroy(&h->dbmu);
	pthread_mutex_destroy(&h->mu);
	free(h);
}

struct store *
hub_db(struct hub *h)
{
	pthread_mutex_lock(&h->dbmu);
	return h->shared;
}

void
hub_db_done(struct hub *h)
{
	pthread_mutex_unlock(&h->dbmu);
}

int
hub_publish(struct hub *h, const char *channel, const char *type,
    const char *event, const void *data, size_t len, int64_t *id,
    char *err, size_t errlen)
{
	struct timespec until;
	int64_t nid = 0, looks;
	int rc, tries;

	for (tries = 0; ; tries++) {
		pthread_mutex_lock(&h->mu);
		looks = h->looks;
		pthread_mutex_unlock(&h->mu);
		pthread_mutex_lock(&h->dbmu);
		rc = store_publish(h->shared, channel, type, event, data, len,
		    &nid);
		if (rc != STORE_OK)
			snprintf(err, errlen, "%s", store_errmsg(h->shared));
		pthread_mutex_unlock(&h->dbmu);
		if (rc != STORE_EMOVED)
			break;
		/* Only the hub thread reopens (its subscriptions must move
		 * with the shared connection, see hub_relog): ask it, wait
		 * a bounded time, and try once more if nothing had been
		 * committed.  A message committed to the old file is a
		 * failure: the log at the path does not hold it. */
		hub_relog_ask(h);
		if (nid > 0 || tries > 0)
			break;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += HUB_RELOG_WAIT_MS / 1000;
		pthread_mutex_lock(&h->mu);
		while (h->looks == looks && !h->stopping && !h->sigstop &&
		    pthread_cond_timedwait(&h->relogged, &h->mu, &until) == 0)
			;
		rc = h->looks == looks;
		pthread_mutex_unlock(&h->mu);
		if (rc) {
			rc = STORE_EMOVED;
			break;
		}
	}
	if (rc == STORE_OK && id != NULL)
		*id = nid;
	return rc;
}

/* Is the log or the bell at the path another file than ours?  Hub
 * thread: the connections are its own. */
static int
hub_moved(struct hub *h)
{
	return store_moved(h->log) != 0;
}

/* Ask the hub thread to look for a replaced log and reopen (any
 * thread). */
static void
hub_relog_ask(struct hub *h)
{
	__atomic_store_n(&h->relog, 1, __ATOMIC_RELEASE);
	pthread_mutex_lock(&h->mu);
	pthread_cond_signal(&h->cond);
	pthread_mutex_unlock(&h->mu);
	store_interrupt(h->shared);
}

int
hub_watch(struct hub *h)
{
	int64_t now = mono_ms(), last;

	/* The streams rows of this process keep counting (store_touch), at
	 * most twice a heartbeat for the whole process.  Never waited for:
	 * the caller is a stream's heartbeat, and the shared connection may
	 * be busy for seconds (a write waiting for the log's lock); when it
	 * is, the next heartbeat of any of the process's streams tries
	 * again (the lease is two heartbeats). */
	last = __atomic_load_n(&h->touched, __ATOMIC_RELAXED);
	if (now - last >= (int64_t)h->conf.heartbeat * 1000 / 2 &&
	    __atomic_compare_exchange_n(&h->touched, &last, now, 0,
	    __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
		if (pthread_mutex_trylock(&h->dbmu) == 0) {
			if (store_touch(h->shared, getpid()) != STORE_OK)
				/* LOG: this process's rows cannot be kept */
				elog(HUB_PROG, 311, "refreshing this process's "
				    "subscribers: %s", store_errmsg(h->shared));
			pthread_mutex_unlock(&h->dbmu);
		} else
			__atomic_store_n(&h->touched, last, __ATOMIC_RELAXED);
	}
	if (store_watch(h->shared)) {
		hub_relog_ask(h);
		return 1;
	}
	return 0;
}

int
hub_watch_soon(struct hub *h)
{
	int64_t now = mono_ms(), last;

	last = __atomic_load_n(&h->watched, __ATOMIC_RELAXED);
	if (now - last < HUB_WATCH_MS ||
	    !__atomic_compare_exchange_n(&h->watched, &last, now, 0,
	    __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
		return 0;
	return hub_watch(h);
}

int64_t
hub_gen(struct hub *h)
{
	return __atomic_load_n(&h->gen, __ATOMIC_ACQUIRE);
}

/* Empty the ring (h->mu held): the messages in it are of a log the hub
 * no longer follows from there. */
static void
hub_ring_clear(struct hub *h)
{
	while (h->count > 0) {
		hub_msg_drop(h->ring[h->head]);
		h->head = (h->head + 1) % HUB_RING_MSGS;
		h->count--;
	}
	h->bytes = 0;
}

/*
 * The log or its bell at the path is not what the hub has open: reopen
 * in the hub thread, which owns h->log and the bell wait.  A new log
 * file means a new generation: the ring is emptied and the hub stops
 * following (so every subscription reads the log until the hub thread
 * follows the new one from its end), both connections are reopened and
 * gen raised under dbmu (so a catch-up read sees the new file and the
 * new gen together), and every subscription is woken: each resets
 * (hub_reset) and reads the new log from its beginning.  A new bell
 * alone changes no cursor.  On failure the old state stays, and the
 * next wake-up or publish asks again.  Publishers waiting in
 * hub_publish are told either way.
 */
static void
hub_relog(struct hub *h)
{
	struct hub_sub *s;
	struct store *fresh = NULL;
	char err[HUB_ERR_MAX];
	int log, file, ml, ms, rc = STORE_OK;

	ml = store_moved(h->log);
	ms = store_moved(h->shared);
	file = ((ml | ms) & STORE_MOVED_LOG) != 0;
	log = ((ml | ms) & (STORE_MOVED_LOG | STORE_MOVED_CONN)) != 0;
	if (log) {
		pthread_mutex_lock(&h->mu);
		hub_ring_clear(h);
		h->active = 0;
		pthread_mutex_unlock(&h->mu);
		pthread_mutex_lock(&h->dbmu);
		/* The same file with a new -wal: both connections close
		 * before either opens (store.h, mlog.h). */
		if (!file) {
			store_release(h->log);
			store_release(h->shared);
		}
		if (file) {
			/* A new file: the shared connection to the old one
			 * stays as h->old, so that subscriptions get what
			 * was committed to it before it went (hub_reset);
			 * the new one may create the file (the log was
			 * removed and nobody made a new one yet). */
			store_clean(h->shared);
			rc = store_open_peer(&fresh, h->log, STORE_CREATE, err,
			    sizeof(err));
			if (rc == STORE_OK && (rc = store_reopen(h->log)) !=
			    STORE_OK) {
				snprintf(err, sizeof(err), "%s",
				    store_errmsg(h->log));
				store_close(fresh);
			}
			if (rc == STORE_OK) {
				store_close(h->old);
				h->old = h->shared;
				h->old_gen = __atomic_load_n(&h->gen,
				    __ATOMIC_ACQUIRE);
				h->shared = fresh;
				__atomic_add_fetch(&h->gen, 1,
				    __ATOMIC_ACQ_REL);
			}
		} else {
			/* Only the -wal replaced: the same log file, whose
			 * cursors stay (ids it lost are found by the cursor
			 * rule). */
			rc = store_reopen(h->shared);
			if (rc != STORE_OK)
				snprintf(err, sizeof(err), "%s",
				    store_errmsg(h->shared));
			else if ((rc = store_reopen(h->log)) != STORE_OK)
				snprintf(err, sizeof(err), "%s",
				    store_errmsg(h->log));
		}
		if (rc != STORE_OK)
			/* LOG: the moved log cannot be opened again */
			elog(HUB_PROG, 308, "reopening %s: %s", h->conf.db,
			    err);
		pthread_mutex_unlock(&h->dbmu);
	}
	if (rc == STORE_OK && (store_moved(h->log) & STORE_MOVED_WAKE) &&
	    store_rewake(h->log) != 0)
		/* LOG: the wake-up file cannot be opened again after a move */
		elog(HUB_PROG, 309, "reopening the wake-up of %s: %s",
		    h->conf.db, strerror(errno));
	pthread_mutex_lock(&h->mu);
	if (file && rc == STORE_OK)
		for (s = h->subs; s != NULL; s = s->next)
			/* Every control request of the new log came after
			 * these subscriptions began. */
			s->ctl_from = 0;
	for (s = h->subs; s != NULL && log && rc == STORE_OK; s = s->next)
		hub_wake(s);
	h->looks++;
	pthread_cond_broadcast(&h->relogged);
	pthread_mutex_unlock(&h->mu);
	if (log && rc == STORE_OK)
		elog(HUB_PROG, 0, "%s was replaced: following the new log",
		    h->conf.db);
	if (rc != STORE_OK)
		poll(NULL, 0, HUB_RETRY_MS);
}

static void *
hub_main(void *arg)
{
	struct hub *h = arg;
	struct hub_sub *s;
	int64_t seen, last;
	int w, advanced, stale = 0;

	pthread_mutex_lock(&h->mu);
	while (!h->stopping && !h->sigstop) {
		if (__atomic_exchange_n(&h->relog, 0, __ATOMIC_ACQ_REL)) {
			pthread_mutex_unlock(&h->mu);
			hub_relog(h);
			pthread_mutex_lock(&h->mu);
			continue;
		}
		if (h->nsubs == 0) {
			/* Nobody to serve: leave the bell to others. */
			h->active = 0;
			pthread_cond_wait(&h->cond, &h->mu);
			continue;
		}
		if (!h->active) {
			/* Start following from the log's end: older
			 * messages are read by whoever needs them. */
			pthread_mutex_unlock(&h->mu);
			/* (A wake-up kept from a replaced log is ahead of
			 * this one: store_sync lowers it.) */
			if (store_sync(h->log, &last) != STORE_OK) {
				/* LOG: hub thread: no newest id after a ring */
				elog(HUB_PROG, 301, "reading the last id: %s",
				    store_errmsg(h->log));
				poll(NULL, 0, HUB_RETRY_MS);
				pthread_mutex_lock(&h->mu);
				continue;
			}
			pthread_mutex_lock(&h->mu);
			hub_ring_clear(h);
			h->base = h->cursor = last;
			/* Control requests count from the oldest subscription's
			 * start: one may name a stream that began before the
			 * hub thread followed the log. */
			h->ctl_cursor = last;
			for (s = h->subs; s != NULL; s = s->next)
				if (s->ctl_from < h->ctl_cursor)
					h->ctl_cursor = s->ctl_from;
			h->active = 1;
			/* Whoever is behind the new base reads the log. */
			for (s = h->subs; s != NULL; s = s->next)
				if (hub_sub_pos(s) < h->base)
					hub_wake(s);
		}
		pthread_mutex_unlock(&h->mu);
		advanced = hub_fill(h);
		pthread_mutex_lock(&h->mu);
		seen = h->cursor;
		if (h->stopping || h->sigstop || h->nsubs == 0)
			continue;
		pthread_mutex_unlock(&h->mu);
		if (store_seen(h->log) > seen && !advanced && stale++ > 0) {
			/* The bell stays ahead of the log (a log replaced
			 * under an old bell file): do not spin. */
			poll(NULL, 0, h->conf.check_ms);
		} else if (advanced)
			stale = 0;
		w = store_wait(h->log, seen, -1);
		if (w == STORE_WAIT_ERROR) {
			/* LOG: hub thread: waiting for messages failed */
			elog(HUB_PROG, 302, "waiting for messages: %s",
			    strerror(errno));
			poll(NULL, 0, HUB_RETRY_MS);
		}
		/* Every wake-up looks whether the log is still the one at
		 * the path (two stat() calls). */
		if (w == STORE_REPLACED || hub_moved(h))
			__atomic_store_n(&h->relog, 1, __ATOMIC_RELEASE);
		pthread_mutex_lock(&h->mu);
	}
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

/* Copy one message into a batch; with a byte cap, refuse (stop the read)
 * once the batch is full, but always take the first. */
static int
hub_take_cb(void *arg, const struct store_msg *m)
{
	struct hub_take *t = arg;
	struct hub_msg *hm;

	if (t->n == t->max)
		return HUB_TAKE_FULL;
	if (t->capped && t->n > 0 && t->bytes + (long)m->len > HUB_DB_BYTES)
		return HUB_TAKE_FULL;
	if ((hm = hub_msg_copy(m)) == NULL)
		return HUB_TAKE_NOMEM;
	t->msgs[t->n++] = hm;
	t->bytes += (long)m->len;
	return 0;
}

/* Add one message to the ring (taking over its reference), evicting the
 * oldest over the caps.  Under mu. */
static void
hub_append(struct hub *h, struct hub_msg *m)
{
	struct hub_msg *old;

	while (h->count > 0 && (h->count == HUB_RING_MSGS ||
	    h->bytes + (long)m->m.len > HUB_RING_BYTES)) {
		old = h->ring[h->head];
		if (old->m.id > h->base)
			h->base = old->m.id;
		h->bytes -= (long)old->m.len;
		hub_msg_drop(old);
		h->head = (h->head + 1) % HUB_RING_MSGS;
		h->count--;
	}
	h->ring[(h->head + h->count) % HUB_RING_MSGS] = m;
	h->count++;
	h->bytes += (long)m->m.len;
}

/* Does s want m: one of its channels, after its cursor?  Under mu. */
static int
hub_wants(const struct hub_sub *s, const struct hub_msg *m)
{
	int i;

	if (m->m.id <= hub_sub_pos(s))
		return 0;
	for (i = 0; i < s->n; i++)
		if (strcmp(s->chans[i], m->m.channel) == 0)
			return 1;
	return 0;
}

/* A subscription's cursor (any thread). */
static int64_t
hub_sub_pos(const struct hub_sub *s)
{
	return __atomic_load_n(&s->pos, __ATOMIC_ACQUIRE);
}

static void
hub_wake_fd(int fd)
{
	uint64_t one = 1;

	/* A full counter (never in practice) is as good as a wake-up. */
	if (write(fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		/* LOG: a subscriber's wake-up descriptor cannot be written */
		elog(HUB_PROG, 303, "eventfd: %s", strerror(errno));
}

/* Wake s now.  Under mu, or while s is listed (either keeps s and its
 * descriptor alive).  Its notify function, else its eventfd; with
 * neither yet, the wake-up is kept in woken for whichever comes first:
 * setting woken before looking again, while hub_sub_fd and
 * hub_sub_notify publish theirs before they look at woken, means one
 * of the two always sees the other. */
static void
hub_wake(struct hub_sub *s)
{
	void (*fn)(void *);
	int fd, pass;

	for (pass = 0; pass < 2; pass++) {
		if ((fn = __atomic_load_n(&s->nfn, __ATOMIC_SEQ_CST)) !=
		    NULL) {
			fn(s->narg);
			return;
		}
		if ((fd = __atomic_load_n(&s->efd, __ATOMIC_SEQ_CST)) >= 0) {
			hub_wake_fd(fd);
			return;
		}
		if (pass == 0)
			__atomic_store_n(&s->woken, 1, __ATOMIC_SEQ_CST);
	}
}

/*
 * Hand the batch msgs[0..n) straight to s when it is parked and has seen
 * everything up to `from` (the batch starts after it; a gap, which raises
 * base, is for its own thread to report).  `upto` is where the hub stands
 * after the batch.  Returns 1 when s has everything and needs no wake-up.
 * Hub thread only, without mu.
 */
static int
hub_direct(struct hub_sub *s, struct hub_msg **msgs, int n, int64_t from,
    int64_t upto)
{
	int i, rc = HUB_DIRECT_DONE, end, taken = 0;

	if (pthread_mutex_trylock(&s->dmu) != 0)
		return 0;
	if (!s->parked || s->dcb == NULL || hub_sub_ended(s) ||
	    hub_sub_pos(s) < from || hub_stale(s)) {
		pthread_mutex_unlock(&s->dmu);
		return 0;
	}
	for (i = 0; i < n && rc == HUB_DIRECT_DONE; i++) {
		if (!hub_wants(s, msgs[i]))
			continue;
		rc = s->dcb(s->darg, msgs[i], 0);
		if (rc != HUB_DIRECT_NO) {
			hub_sub_setpos(s, msgs[i]->m.id);
			taken = 1;
		}
	}
	/* The end of what this batch had for s (hub.h). */
	if (taken) {
		end = s->dcb(s->darg, NULL, 0);
		if (rc == HUB_DIRECT_DONE)
			rc = end;
	}
	if (rc == HUB_DIRECT_DONE)
		hub_sub_setpos(s, upto);
	pthread_mutex_unlock(&s->dmu);
	return rc == HUB_DIRECT_DONE;
}

/*
 * A batch with nothing for s: when s is parked and had seen everything up
 * to `from`, it has now seen everything up to `upto`, and the next batch
 * can go to it directly (else it would count as behind from now on, and
 * be woken for every later message until its thread caught up).  Under
 * mu: the lock order is mu, then dmu (never waited for: trylock).
 */
static void
hub_pass(struct hub_sub *s, int64_t from, int64_t upto)
{
	if (hub_sub_pos(s) >= upto || hub_sub_pos(s) < from || hub_stale(s) ||
	    pthread_mutex_trylock(&s->dmu) != 0)
		return;
	if (s->parked)
		hub_sub_setpos(s, upto);
	pthread_mutex_unlock(&s->dmu);
}

/*
 * Serve the n subscriptions listed in h->wakes by hub_fill (which marked
 * them under mu), outside mu: deliver the batch msgs[0..nmsgs) directly
 * to those parked, wake the others, unmarking each; then wake whoever
 * waits in hub_unsubscribe.  from,
 * upto: see hub_direct.  Hub thread only; called without mu.
 */
static void
hub_wake_list(struct hub *h, int n, struct hub_msg **msgs, int nmsgs,
    int64_t from, int64_t upto)
{
	int i;

	for (i = 0; i < n; i++) {
		if (!hub_direct(h->wakes[i], msgs, nmsgs, from, upto))
			hub_wake(h->wakes[i]);
		__atomic_store_n(&h->wakes[i]->listed, 0, __ATOMIC_RELEASE);
	}
	pthread_mutex_lock(&h->mu);
	pthread_cond_broadcast(&h->woke);
	pthread_mutex_unlock(&h->mu);
}

/*
 * Read everything after the cursor into the ring, once for the process,
 * and wake the subscriptions that care.  Hub thread only.  Returns 1 if
 * the cursor moved.
 */
static int
hub_fill(struct hub *h)
{
	struct hub_take t;
	struct hub_sub *s, **subs;
	int64_t after, last, gap, end, from, upto;
	int i, rc, nwake, done;

	if (store_last_id(h->log, &end) != STORE_OK) {
		/* LOG: hub thread: no newest id before a fetch */
		elog(HUB_PROG, 304, "reading the last id: %s",
		    store_errmsg(h->log));
		poll(NULL, 0, HUB_RETRY_MS);
		return 0;
	}
	pthread_mutex_lock(&h->mu);
	after = h->cursor;
	pthread_mutex_unlock(&h->mu);
	if (end <= after) {
		/* Right after activation control requests may lag. */
		hub_control(h, end);
		return 0;
	}
	for (;;) {
		memset(&t, 0, sizeof(t));
		t.msgs = h->fresh;
		t.max = STORE_READ_MAX;
		t.capped = 1;
		gap = 0;
		last = after;
		rc = store_read(h->log, NULL, 0, after, STORE_READ_MAX,
		    hub_take_cb, &t, &gap, &last);
		if (rc < 0 || rc == HUB_TAKE_NOMEM) {
			/* LOG: hub thread: new messages cannot be read */
			elog(HUB_PROG, 305, "reading new messages: %s",
			    store_errmsg(h->log));
			for (i = 0; i < t.n; i++)
				hub_msg_drop(t.msgs[i]);
			poll(NULL, 0, HUB_RETRY_MS);
			return 0;
		}
		pthread_mutex_lock(&h->mu);
		if (gap > h->base)
			h->base = gap;
		/* Direct delivery needs a subscriber to have seen all
		 * before this batch, and no gap left to report. */
		from = after > h->base ? after : h->base;
		/* The ring takes one reference; ours keeps the batch alive
		 * for the wake-ups below even if the ring drops some. */
		for (i = 0; i < t.n; i++) {
			hub_msg_hold(t.msgs[i]);
			hub_append(h, t.msgs[i]);
		}
		if (t.n > 0 && t.msgs[t.n - 1]->m.id > h->cursor)
			h->cursor = t.msgs[t.n - 1]->m.id;
		if (h->nsubs > h->wakecap) {
			subs = realloc(h->wakes, (size_t)h->nsubs *
			    sizeof(*subs));
			if (subs != NULL) {
				h->wakes = subs;
				h->wakecap = h->nsubs;
			}
		}
		/* Everything up to end is in? */
		done = rc != HUB_TAKE_FULL && t.n < STORE_READ_MAX;
		if (done && end > h->cursor)
			h->cursor = end;
		upto = h->cursor;
		nwake = 0;
		for (s = h->subs; s != NULL; s = s->next) {
			int want = hub_sub_pos(s) < h->base || hub_stale(s);

			for (i = 0; !want && i < t.n; i++)
				want = hub_wants(s, t.msgs[i]);
			if (!want) {
				hub_pass(s, from, upto);
				continue;
			}
			if (nwake < h->wakecap) {
				__atomic_store_n(&s->listed, 1,
				    __ATOMIC_RELAXED);
				h->wakes[nwake++] = s;
			} else
				hub_wake(s);    /* no memory for the list */
		}
		after = h->cursor;
		pthread_mutex_unlock(&h->mu);
		if (nwake > 0)
			hub_wake_list(h, nwake, t.msgs, t.n, from, upto);
		for (i = 0; i < t.n; i++)
			hub_msg_drop(t.msgs[i]);
		if (done) {
			/* Control requests up to end are acted on only now,
			 * after the messages before them are in the ring: a
			 * stream ended by one still gets every message
			 * published before it. */
			hub_control(h, end);
			return 1;
		}
	}
}

/* One control request: end the subscriptions it names, if they began
 * before it, and wake them.  Called by store_control_read in the hub
 * thread; takes mu (never held while calling SQLite: the read's own
 * connection is the hub thread's). */
static int
hub_control_cb(void *arg, const struct store_msg *m)
{
	struct hub_ctl *c = arg;
	struct hub *h = c->hub;
	struct hub_sub *s;
	char chan[VALID_CHANNEL_MAX + 1];
	int64_t stream = 0;
	int kind, i, hit;

	c->n++;
	kind = store_control_parse(m, &stream, chan, sizeof(chan));
	if (kind == STORE_CONTROL_NONE)
		return 0;
	pthread_mutex_lock(&h->mu);
	for (s = h->subs; s != NULL; s = s->next) {
		if (s->ctl_from >= m->id || s->ended)
			continue;
		hit = 0;
		if (kind == STORE_CONTROL_END_STREAM)
			hit = stream != 0 && __atomic_load_n(&s->stream,
			    __ATOMIC_ACQUIRE) == stream;
		else
			for (i = 0; i < s->n && !hit; i++)
				hit = strcmp(s->chans[i], chan) == 0;
		if (hit) {
			__atomic_store_n(&s->ended, 1, __ATOMIC_RELEASE);
			hub_wake(s);
		}
	}
	pthread_mutex_unlock(&h->mu);
	return 0;
}

/*
 * Act on the control requests committed up to id end (see store.h): read
 * from the reserved channel over the hub thread's connection, once per
 * process, never put in the ring.  Hub thread only.  A failed read is
 * logged and retried at the next wake-up, as is what is left after
 * HUB_CTL_ROUNDS batches.
 */
static void
hub_control(struct hub *h, int64_t end)
{
	struct hub_ctl c;
	int64_t last;
	int rc, k;

	c.hub = h;
	for (k = 0; k < HUB_CTL_ROUNDS && h->ctl_cursor < end; k++) {
		c.n = 0;
		last = h->ctl_cursor;
		rc = store_control_read(h->log, h->ctl_cursor, end,
		    HUB_CTL_BATCH, hub_control_cb, &c, &last);
		if (rc != STORE_OK) {
			/* LOG: hub thread: control requests cannot be read */
			elog(HUB_PROG, 307, "reading control requests: %s",
			    store_errmsg(h->log));
			h->ctl_cursor = last;
			return;
		}
		h->ctl_cursor = c.n < HUB_CTL_BATCH ? end : last;
	}
}

/* A stream's secret: HUB_SECRET_BYTES random bytes as lowercase hex into
 * buf (at least 2 * HUB_SECRET_BYTES + 1 bytes).  0, or -1 (errno). */
static int
hub_secret(char *buf, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char rnd[HUB_SECRET_BYTES];
	size_t i;
	ssize_t got;

	if (len < 2 * sizeof(rnd) + 1)
		return -1;
	do
		got = getrandom(rnd, sizeof(rnd), 0);
	while (got < 0 && errno == EINTR);
	if (got != (ssize_t)sizeof(rnd))
		return -1;
	for (i = 0; i < sizeof(rnd); i++) {
		buf[2 * i] = hex[rnd[i] >> 4];
		buf[2 * i + 1] = hex[rnd[i] & 0xf];
	}
	buf[2 * sizeof(rnd)] = '\0';
	return 0;
}

/* Refuse s (HUB_EFULL) when one of its channels has its configured
 * number of subscribers already.  Counted from the subscriptions
 * themselves: a channel that was never published to has no channels
 * row, but may have subscribers.  Under the shared connection's lock. */
static int
hub_count(struct hub *h, struct store *db, struct hub_sub *s, char *err,
    size_t errlen)
{
	int64_t subs;
	int i;

	for (i = 0; i < s->n; i++) {
		if (store_subscribers(db, s->chans[i], &subs) != STORE_OK) {
			snprintf(err, errlen, "%s", store_errmsg(db));
			return HUB_ERR;
		}
		if (subs >= h->conf.max_channel_subscribers) {
			snprintf(err, errlen, "channel %s has %d subscribers "
			    "already", s->chans[i],
			    h->conf.max_channel_subscribers);
			return HUB_EFULL;
		}
	}
	return HUB_OK;
}

int
hub_subscribe(struct hub *h, struct hub_sub **out,
    const char *const *channels, int n, int64_t after, int flags,
    int64_t *stream, char *err, size_t errlen)
{
	struct hub_sub *s;
	struct store *db;
	char secret[2 * HUB_SECRET_BYTES + 1];
	int64_t end = 0;
	size_t len;
	char *p;
	int i, rc = HUB_OK, mrc, active;

	*out = NULL;
	if (stream != NULL)
		*stream = 0;
	if (n < 1 || n > VALID_CHANNELS_MAX) {
		snprintf(err, errlen, "bad channel count");
		return HUB_ERR;
	}
	len = sizeof(*s) + (size_t)n * sizeof(char *);
	for (i = 0; i < n; i++)
		len += strlen(channels[i]) + 1;
	if ((s = calloc(1, len)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return HUB_ERR;
	}
	s->hub = h;
	s->n = n;
	s->chans = (const char **)(s + 1);
	p = (char *)(s->chans + n);
	for (i = 0; i < n; i++) {
		size_t l = strlen(channels[i]) + 1;

		memcpy(p, channels[i], l);
		s->chans[i] = p;
		p += l;
	}
	if ((flags & HUB_REGISTER) && hub_secret(secret, sizeof(secret)) != 0) {
		snprintf(err, errlen, "no random bytes for a stream secret: %s",
		    strerror(errno));
		free(s);
		return HUB_ERR;
	}
	s->efd = -1;
	pthread_mutex_init(&s->dmu, NULL);

	/*
	 * Control requests after `end` concern this subscription, and
	 * "from now on" starts there.  A subscription that needs no row
	 * and no count (a long-poll's first look) takes the hub's own view
	 * of the log's end when the hub follows it, and does not touch
	 * SQLite: a thousand polls coming back at once after a message
	 * would otherwise queue for the shared connection.  The hub's view
	 * may trail the log by what it has not read yet; those messages
	 * are then delivered too, and a control request among them (made
	 * before this subscription, a moment before) applies to it.
	 */
	pthread_mutex_lock(&h->mu);
	active = h->active;
	end = h->cursor;
	s->gen = __atomic_load_n(&h->gen, __ATOMIC_ACQUIRE);
	pthread_mutex_unlock(&h->mu);
	if ((flags & HUB_REGISTER) || h->conf.max_channel_subscribers > 0 ||
	    !active) {
		db = hub_db(h);
		s->gen = __atomic_load_n(&h->gen, __ATOMIC_ACQUIRE);
		if (h->conf.max_channel_subscribers > 0)
			rc = hub_count(h, db, s, err, errlen);
		if (rc == HUB_OK && (mrc = store_last_id(db, &end)) != STORE_OK) {
			snprintf(err, errlen, "%s", store_errmsg(db));
			rc = mrc == STORE_EUNAVAIL ? HUB_EUNAVAIL : HUB_ERR;
		}
		if (rc == HUB_OK && (flags & HUB_REGISTER) &&
		    (mrc = store_stream_open(db, s->chans, n, getpid(), secret,
		    &s->stream)) != STORE_OK) {
			snprintf(err, errlen, "%s", store_errmsg(db));
			rc = mrc == STORE_EUNAVAIL ? HUB_EUNAVAIL : HUB_ERR;
		}
		hub_db_done(h);
	}
	s->ctl_from = end;
	if (after < 0)
		after = end;
	if (s->stream != 0)
		snprintf(s->handle, sizeof(s->handle), "%lld.%s",
		    (long long)s->stream, secret);
	if (rc == HUB_OK) {
		pthread_mutex_lock(&h->mu);
		if (h->stopping || h->sigstop) {
			snprintf(err, errlen, "shutting down");
			rc = HUB_ESTOP;
		} else {
			__atomic_store_n(&s->pos, after, __ATOMIC_RELEASE);
			s->next = h->subs;
			if (h->subs != NULL)
				h->subs->prev = s;
			h->subs = s;
			h->nsubs++;
			pthread_cond_signal(&h->cond);
		}
		pthread_mutex_unlock(&h->mu);
	}
	if (rc != HUB_OK) {
		if (s->stream != 0) {
			db = hub_db(h);
			store_stream_close(db, s->stream);
			hub_db_done(h);
		}
		pthread_mutex_destroy(&s->dmu);
		free(s);
		return rc;
	}
	if (stream != NULL)
		*stream = s->stream;
	*out = s;
	return HUB_OK;
}

void
hub_unsubscribe(struct hub_sub *s)
{
	struct hub *h;
	struct store *db;

	if (s == NULL)
		return;
	h = s->hub;
	pthread_mutex_lock(&h->mu);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		h->subs = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	/* The last one out takes the hub thread off the bell (hub.h). */
	if (--h->nsubs == 0)
		store_interrupt(h->shared);
	/* The hub thread may be writing to a copy of our descriptor. */
	while (__atomic_load_n(&s->listed, __ATOMIC_ACQUIRE))
		pthread_cond_wait(&h->woke, &h->mu);
	pthread_mutex_unlock(&h->mu);
	if (s->stream != 0) {
		db = hub_db(h);
		if (store_stream_close(db, s->stream) != STORE_OK)
			/* LOG: a stream's row cannot be removed when it ends */
			elog(HUB_PROG, 306, "removing stream %lld: %s",
			    (long long)s->stream, store_errmsg(db));
		hub_db_done(h);
	}
	if (s->efd >= 0)
		close(s->efd);
	pthread_mutex_destroy(&s->dmu);
	free(s);
	hub_old_done(h);
}

int
hub_sub_register(struct hub_sub *s, char *err, size_t errlen)
{
	struct hub *h = s->hub;
	struct store *db;
	char secret[2 * HUB_SECRET_BYTES + 1];
	int64_t stream = 0;
	int rc = HUB_OK, mrc;

	if (__atomic_load_n(&s->stream, __ATOMIC_ACQUIRE) != 0)
		return HUB_OK;
	if (hub_secret(secret, sizeof(secret)) != 0) {
		snprintf(err, errlen, "no random bytes for a stream secret: %s",
		    strerror(errno));
		return HUB_ERR;
	}
	db = hub_db(h);
	if (h->conf.max_channel_subscribers > 0)
		rc = hub_count(h, db, s, err, errlen);
	if (rc == HUB_OK && (mrc = store_stream_open(db, s->chans, s->n,
	    getpid(), secret, &stream)) != STORE_OK) {
		snprintf(err, errlen, "%s", store_errmsg(db));
		rc = mrc == STORE_EUNAVAIL ? HUB_EUNAVAIL : HUB_ERR;
	}
	hub_db_done(h);
	if (rc != HUB_OK)
		return rc;
	snprintf(s->handle, sizeof(s->handle), "%lld.%s", (long long)stream,
	    secret);
	__atomic_store_n(&s->stream, stream, __ATOMIC_RELEASE);
	return HUB_OK;
}

void
hub_sub_park(struct hub_sub *s, hub_cb cb, void *arg)
{
	pthread_mutex_lock(&s->dmu);
	s->dcb = cb;
	s->darg = arg;
	s->parked = 1;
	pthread_mutex_unlock(&s->dmu);
}

void
hub_sub_unpark(struct hub_sub *s)
{
	pthread_mutex_lock(&s->dmu);
	s->parked = 0;
	pthread_mutex_unlock(&s->dmu);
}

int
hub_sub_fd(struct hub_sub *s)
{
	int fd;

	if ((fd = __atomic_load_n(&s->efd, __ATOMIC_SEQ_CST)) >= 0)
		return fd;
	if ((fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		/* LOG: a subscriber's wake-up descriptor cannot be made */
		elog(HUB_PROG, 312, "eventfd: %s", strerror(errno));
		return -1;
	}
	__atomic_store_n(&s->efd, fd, __ATOMIC_SEQ_CST);
	if (__atomic_exchange_n(&s->woken, 0, __ATOMIC_SEQ_CST))
		hub_wake_fd(fd);
	return fd;
}

void
hub_sub_notify(struct hub_sub *s, void (*fn)(void *), void *arg)
{
	s->narg = arg;
	__atomic_store_n(&s->nfn, fn, __ATOMIC_SEQ_CST);
	if (__atomic_exchange_n(&s->woken, 0, __ATOMIC_SEQ_CST))
		fn(arg);
}

int64_t
hub_sub_cursor(struct hub_sub *s)
{
	return hub_sub_pos(s);
}

const char *
hub_sub_error(const struct hub_sub *s)
{
	return s->err;
}

int
hub_sub_ended(const struct hub_sub *s)
{
	return __atomic_load_n(&s->ended, __ATOMIC_ACQUIRE);
}

const char *
hub_sub_handle(const struct hub_sub *s)
{
	return s->handle;
}

/* Move the cursor forward (never back).  The subscription's own thread
 * is its only writer, or the hub thread while it is parked (see the
 * locks above), so no lock is needed. */
static void
hub_sub_setpos(struct hub_sub *s, int64_t pos)
{
	if (pos > __atomic_load_n(&s->pos, __ATOMIC_RELAXED))
		__atomic_store_n(&s->pos, pos, __ATOMIC_RELEASE);
}

/* Hand a batch to cb; on refusal, the cursor stands before the refused
 * message and the rest is dropped.  Returns 0 or cb's value. */
static int
hub_deliver(struct hub_sub *s, struct hub_msg **msgs, int n, hub_cb cb,
    void *arg)
{
	int i, rc = 0;

	for (i = 0; i < n; i++) {
		if (rc == 0) {
			rc = cb(arg, msgs[i], 0);
			if (rc == 0)
				hub_sub_setpos(s, msgs[i]->m.id);
		}
		hub_msg_drop(msgs[i]);
	}
	return rc;
}

/* A subscriber's batch of at most max copies (capped: HUB_DB_BYTES). */
static int
hub_take_init(struct hub_sub *s, struct hub_take *t, int max, int capped)
{
	memset(t, 0, sizeof(*t));
	if ((t->msgs = calloc((size_t)max, sizeof(*t->msgs))) == NULL) {
		snprintf(s->err, sizeof(s->err), "out of memory");
		return HUB_ERR;
	}
	t->max = max;
	t->capped = capped;
	return HUB_OK;
}

/* Drop every message of a subscriber's batch and free its array. */
static void
hub_take_free(struct hub_take *t)
{
	int i;

	for (i = 0; i < t->n; i++)
		hub_msg_drop(t->msgs[i]);
	free(t->msgs);
}

/* A subscriber's read failed (rc: a STORE_E* code, whose reason is in
 * s->err already, or HUB_TAKE_NOMEM): free the batch, say why. */
static int
hub_take_fail(struct hub_sub *s, struct hub_take *t, int rc)
{
	if (rc == HUB_TAKE_NOMEM)
		snprintf(s->err, sizeof(s->err), "out of memory");
	hub_take_free(t);
	return HUB_ERR;
}

/*
 * One catch-up read from the log, over the shared connection: copies of at
 * most HUB_DB_BATCH messages or HUB_DB_BYTES, then delivered without the
 * lock: gap report first, then messages.  *more says the read was cut
 * short and there may be more.  (A connection per subscriber would cost
 * memory and descriptors; SQLite even keeps a closed connection's
 * descriptor open while the process holds locks on the file.)
 */
static int
hub_sub_catchup(struct hub_sub *s, hub_cb cb, void *arg, int *more, int old)
{
	struct hub_msg **msgs;
	struct hub_take t;
	struct store *db;
	int64_t end, gap = 0, last, pos;
	int rc, cut;

	if (hub_take_init(s, &t, HUB_DB_BATCH, 1) != HUB_OK)
		return HUB_ERR;
	msgs = t.msgs;
	pos = hub_sub_cursor(s);
	db = hub_db(s->hub);
	if (old) {
		/* What is left for a stale subscription in the file the hub
		 * followed before (hub_reset): none if that is gone. */
		db = s->hub->old;
		if (db == NULL || __atomic_load_n(&s->gen, __ATOMIC_ACQUIRE) !=
		    s->hub->old_gen) {
			hub_db_done(s->hub);
			free(msgs);
			*more = 0;
			return HUB_OK;
		}
	} else if (hub_stale(s)) {
		/* The shared connection is on a newer log than our cursor:
		 * hub_sub_next resets first. */
		hub_db_done(s->hub);
		free(msgs);
		*more = 1;
		return HUB_OK;
	}
	rc = store_last_id(db, &end);
	if (rc == STORE_OK)
		rc = store_read(db, s->chans, s->n, pos, HUB_DB_BATCH,
		    hub_take_cb, &t, &gap, &last);
	if (rc < 0)
		snprintf(s->err, sizeof(s->err), "%s", store_errmsg(db));
	hub_db_done(s->hub);
	if (rc < 0 || rc == HUB_TAKE_NOMEM)
		return hub_take_fail(s, &t, rc);
	cut = rc > 0 || t.n == HUB_DB_BATCH;
	*more = cut;
	if (gap == STORE_GAP_RESET && old)
		gap = 0;   /* not ours to report: the reset follows */
	if (gap == STORE_GAP_RESET) {
		/* The cursor rule (store.h, mlog.h): our cursor is from another log,
		 * and these messages are from this one's beginning. */
		if ((rc = cb(arg, NULL, HUB_RESET)) != 0) {
			hub_take_free(&t);
			return rc;
		}
		s->gap_told = 0;
		__atomic_store_n(&s->pos, 0, __ATOMIC_RELEASE);
	} else if (gap > s->gap_told) {
		if ((rc = cb(arg, NULL, gap)) != 0) {
			hub_take_free(&t);
			return rc;
		}
		s->gap_told = gap;
	}
	rc = hub_deliver(s, msgs, t.n, cb, arg);
	free(msgs);
	if (rc != 0)
		return rc;
	if (!cut)
		hub_sub_setpos(s, end);
	return HUB_OK;
}

/* Is s's cursor from an older log than the hub's?  Any thread. */
static int
hub_stale(const struct hub_sub *s)
{
	return __atomic_load_n(&s->gen, __ATOMIC_ACQUIRE) !=
	    __atomic_load_n(&s->hub->gen, __ATOMIC_ACQUIRE);
}

/*
 * The hub follows a new log file (hub_relog): report the reset to cb,
 * then move s to the new log's beginning (cursor 0; gaps count afresh),
 * and register its streams row in the new log (the handle keeps its old
 * id).  If cb refuses, nothing changes and the next call reports again.
 * The subscription's own thread.
 */
static int
hub_reset(struct hub_sub *s, hub_cb cb, void *arg)
{
	struct hub *h = s->hub;
	struct store *db;
	const char *secret;
	int64_t stream = 0, old;
	int rc, more;

	/* First what the old file still has after our cursor: committed
	 * (and maybe answered with a success) before it was replaced. */
	do
		if ((rc = hub_sub_catchup(s, cb, arg, &more, 1)) != HUB_OK)
			return rc;
	while (more);
	if ((rc = cb(arg, NULL, HUB_RESET)) != 0)
		return rc;
	old = __atomic_load_n(&s->stream, __ATOMIC_ACQUIRE);
	if (old != 0) {
		secret = strchr(s->handle, '.');
		db = hub_db(h);
		if (store_stream_open(db, s->chans, s->n, getpid(),
		    secret != NULL ? secret + 1 : NULL, &stream) != STORE_OK)
			/* LOG: a stream not registered in the new log */
			elog(HUB_PROG, 310, "registering stream %lld again: %s",
			    (long long)old, store_errmsg(db));
		/* Read under dbmu: the gen of the log the row went to. */
		__atomic_store_n(&s->gen, __atomic_load_n(&h->gen,
		    __ATOMIC_ACQUIRE), __ATOMIC_RELEASE);
		hub_db_done(h);
		__atomic_store_n(&s->stream, stream, __ATOMIC_RELEASE);
	} else
		__atomic_store_n(&s->gen, __atomic_load_n(&h->gen,
		    __ATOMIC_ACQUIRE), __ATOMIC_RELEASE);
	s->gap_told = 0;
	__atomic_store_n(&s->pos, 0, __ATOMIC_RELEASE);
	hub_old_done(h);
	return HUB_OK;
}

/* Close the connection to the old file once no subscription reads it
 * any more: it keeps the removed file's space in use.  Any thread, with
 * neither lock held. */
static void
hub_old_done(struct hub *h)
{
	struct hub_sub *s;
	int64_t g;
	int left = 0;

	pthread_mutex_lock(&h->dbmu);
	g = h->old != NULL ? h->old_gen : -1;
	pthread_mutex_unlock(&h->dbmu);
	if (g < 0)
		return;
	pthread_mutex_lock(&h->mu);
	for (s = h->subs; s != NULL && !left; s = s->next)
		left = __atomic_load_n(&s->gen, __ATOMIC_ACQUIRE) == g;
	pthread_mutex_unlock(&h->mu);
	if (left)
		return;
	pthread_mutex_lock(&h->dbmu);
	if (h->old != NULL && h->old_gen == g) {
		store_close(h->old);
		h->old = NULL;
	}
	pthread_mutex_unlock(&h->dbmu);
}

int
hub_sub_next(struct hub_sub *s, hub_cb cb, void *arg)
{
	struct hub *h = s->hub;
	struct hub_msg *batch[HUB_BATCH];
	uint64_t junk;
	int64_t newpos;
	int k, nb, complete, rc, more;

	/* Clear first: a wake-up after this point is kept. */
	__atomic_store_n(&s->woken, 0, __ATOMIC_SEQ_CST);
	if (s->efd >= 0 && read(s->efd, &junk, sizeof(junk)) < 0 &&
	    errno != EAGAIN)
		return HUB_ERR;
	for (;;) {
		if (hub_stale(s) && (rc = hub_reset(s, cb, arg)) != HUB_OK)
			return rc;
		pthread_mutex_lock(&h->mu);
		if (h->stopping || h->sigstop) {
			pthread_mutex_unlock(&h->mu);
			return HUB_OK;
		}
		/* Beyond the hub's cursor: the hub has not read that far
		 * yet, or the cursor is from another log (a client's since=
		 * after the log was replaced): the log tells which. */
		if (!h->active || hub_sub_pos(s) < h->base ||
		    hub_sub_pos(s) > h->cursor || hub_stale(s)) {
			pthread_mutex_unlock(&h->mu);
			if ((rc = hub_sub_catchup(s, cb, arg, &more, 0)) !=
			    HUB_OK)
				return rc;
			if (more)
				continue;
			/* At the log's end.  If the hub thread is not
			 * following yet, it wakes us when it starts (if we
			 * are then behind it) or when something new comes;
			 * if it trails us, when it has something after us. */
			pthread_mutex_lock(&h->mu);
			rc = !h->active || hub_sub_pos(s) > h->cursor;
			pthread_mutex_unlock(&h->mu);
			if (rc)
				return HUB_OK;
			continue;
		}
		/* Newest first back to our cursor, then forward. */
		for (k = h->count; k > 0; k--)
			if (h->ring[(h->head + k - 1) % HUB_RING_MSGS]->m.id <=
			    hub_sub_pos(s))
				break;
		nb = 0;
		complete = 1;
		for (; k < h->count; k++) {
			struct hub_msg *m = h->ring[(h->head + k) %
			    HUB_RING_MSGS];

			if (!hub_wants(s, m))
				continue;
			if (nb == HUB_BATCH) {
				complete = 0;
				break;
			}
			hub_msg_hold(m);
			batch[nb++] = m;
		}
		newpos = complete ? h->cursor : batch[nb - 1]->m.id;
		pthread_mutex_unlock(&h->mu);
		if ((rc = hub_deliver(s, batch, nb, cb, arg)) != 0)
			return rc;
		hub_sub_setpos(s, newpos);
		if (complete)
			return HUB_OK;
	}
}

int
hub_sub_latest(struct hub_sub *s, int count, hub_cb cb, void *arg)
{
	struct hub_msg **msgs;
	struct hub_take t;
	struct store *db;
	int64_t end;
	int rc, first;

	if (count <= 0)
		return HUB_OK;
	if (count > HUB_DB_BATCH)
		count = HUB_DB_BATCH;
	if (hub_take_init(s, &t, count, 0) != HUB_OK)
		return HUB_ERR;
	msgs = t.msgs;
	db = hub_db(s->hub);
	rc = store_last_id(db, &end);
	if (rc == STORE_OK)
		rc = store_latest(db, s->chans, s->n, count, hub_take_cb, &t);
	if (rc < 0)
		snprintf(s->err, sizeof(s->err), "%s", store_errmsg(db));
	hub_db_done(s->hub);
	if (rc < 0 || rc == HUB_TAKE_NOMEM)
		return hub_take_fail(s, &t, rc);
	/* Over the byte cap, the oldest give way. */
	for (first = 0; first < t.n - 1 && t.bytes > HUB_DB_BYTES; first++) {
		t.bytes -= (long)msgs[first]->m.len;
		hub_msg_drop(msgs[first]);
	}
	rc = hub_deliver(s, msgs + first, t.n - first, cb, arg);
	free(msgs);
	if (rc != 0)
		return rc;
	hub_sub_setpos(s, end);
	return HUB_OK;
}
