/*
 * park: one loop thread per process for the FastCGI requests that wait
 * (streams, held polls), and one worker thread for what may block.  See
 * park.h for the contract.
 *
 * The loop: an epoll set (level-triggered) with, per parked request, its
 * connection (EPOLLIN | EPOLLRDHUP: a hang-up or an abort; EPOLLOUT
 * while a remainder waits to be sent) and its wake descriptor (EPOLLIN;
 * left out while a remainder waits, since the owner could not write
 * anyway and a readable eventfd would make every wait return at once);
 * the park's own eventfd (new requests, handed over by park_add); the
 * process's stop descriptor.  Timers: a binary min-heap of the requests'
 * due times, so that 9000 streams with a heartbeat each cost one wait
 * with the nearest due time, not 9000 timers.
 *
 * A request's life in the loop: NEW (in the incoming list) -> LIVE ->
 * ENDING (its end records wait for room; its timer is then the bound,
 * PARK_END_MS, after which it is closed anyway) -> closed (released on
 * the worker; the struct freed at the end of the loop's round, since
 * events of that round may still name it).  The loop alone touches the heap, the epoll
 * set and the list of live requests; p->mu guards the incoming list,
 * the worker's queue and the counts.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "elog.h"
#include "mono.h"
#include "park.h"

#define PARK_HEAP_MIN 64          /* first heap allocation (entries) */

enum { PR_NEW, PR_LIVE, PR_ENDING, PR_DONE };
enum { PT_CONN, PT_WAKE };        /* what an epoll event is about */

struct park_tag {
	struct park_req *r;       /* NULL: the park's own descriptors */
	int kind;
};

struct park_req {
	struct park *p;
	const struct park_ops *ops;
	void *arg;
	struct http_out *o;
	int fd, wfd;
	int state;                /* written under mu once the request is
	                             live (park_wake reads it) */
	int queued;               /* in the ready list (mu) */
	int outwait;              /* EPOLLOUT asked, wake left out */
	long long due;            /* mono_ms of timer(), -1 none */
	int hidx;                 /* index in the heap, -1 none */
	struct park_tag tag[2];
	struct park_req *prev, *next;  /* live list (loop), or incoming */
	struct park_req *rnext;   /* ready list (mu) */
};

struct park_job {
	void (*fn)(void *);
	void *arg;
	struct park_req *req;     /* a request's release: handed back to the
	                             loop to be freed, or NULL */
	struct park_job *next;
};

struct park {
	const char *prog;
	int ep, kick, stopfd;
	struct park_tag kick_tag, stop_tag;
	pthread_t loop, worker;
	pthread_mutex_t mu;
	pthread_cond_t cv;        /* the worker's queue */
	pthread_cond_t done;      /* loop_done, worker_done */
	int sleeping;             /* the worker waits on cv (mu) */
	struct park_req *incoming;  /* under mu */
	struct park_req *ready;   /* park_wake'd, under mu */
	struct park_req *freed;   /* released: the loop frees them (mu) */
	struct park_job *jobs, **jobs_tail;  /* under mu */
	int nlive;                /* parked and not yet closed (atomic) */
	int loop_done, worker_done;  /* under mu */
	int stopping;             /* loop thread */
	struct park_req *live;    /* loop thread */
	struct park_req **heap;   /* loop thread */
	int nheap, heapcap;
};

static void *park_loop(void *);
static void *park_work(void *);
static void park_take_incoming(struct park *);
static void park_event(struct park_req *, int, unsigned);
static void park_result(struct park_req *, int);
static void park_outwait(struct park_req *, int);
static void park_finish(struct park_req *);
static void park_close(struct park_req *);
static void park_free_released(struct park *);
static int park_gone(int);
static void park_heap_up(struct park *, int);
static void park_heap_down(struct park *, int);
static void park_heap_del(struct park *, struct park_req *);
static void park_ctl(struct park_req *, int, int, unsigned);
static int park_queue(struct park *, void (*)(void *), void *,
    struct park_req *);

int
park_open(struct park **out, int stopfd, const char *prog)
{
	struct epoll_event ev;
	struct park *p;
	sigset_t all, old;
	int e;

	*out = NULL;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return -1;
	p->prog = prog;
	p->stopfd = stopfd;
	p->jobs_tail = &p->jobs;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	pthread_cond_init(&p->done, NULL);
	p->ep = epoll_create1(EPOLL_CLOEXEC);
	p->kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (p->ep < 0 || p->kick < 0)
		goto fail;
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.ptr = &p->kick_tag;
	if (epoll_ctl(p->ep, EPOLL_CTL_ADD, p->kick, &ev) != 0)
		goto fail;
	if (stopfd >= 0) {
		ev.data.ptr = &p->stop_tag;
		if (epoll_ctl(p->ep, EPOLL_CTL_ADD, stopfd, &ev) != 0)
			goto fail;
	}
	/* The threads take no signal: the process's are the main
	 * thread's (serve.h). */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	/* Named, for top -H, ps -L and perf: the loop and its worker. */
	if ((e = pthread_create(&p->worker, NULL, park_work, p)) == 0)
		pthread_setname_np(p->worker, "park-worker");
	if (e != 0) {
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		errno = e;
		goto fail;
	}
	if ((e = pthread_create(&p->loop, NULL, park_loop, p)) == 0)
		pthread_setname_np(p->loop, "park-loop");
	if (e != 0) {
		pthread_mutex_lock(&p->mu);
		p->loop_done = 1;
		pthread_cond_broadcast(&p->cv);
		pthread_mutex_unlock(&p->mu);
		pthread_join(p->worker, NULL);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		errno = e;
		goto fail;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	*out = p;
	return 0;
fail:
	e = errno;
	if (p->ep >= 0)
		close(p->ep);
	if (p->kick >= 0)
		close(p->kick);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	pthread_cond_destroy(&p->done);
	free(p);
	errno = e;
	return -1;
}

int
park_add(struct park *p, int conn, struct http_out *o, int wakefd,
    long long due, const struct park_ops *ops, void *arg,
    struct park_req **out)
{
	struct park_req *r;
	uint64_t one = 1;
	int kick;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return -1;
	r->p = p;
	r->ops = ops;
	r->arg = arg;
	r->o = o;
	r->fd = conn;
	r->wfd = wakefd;
	r->state = PR_NEW;
	r->due = due;
	r->hidx = -1;
	r->tag[PT_CONN].r = r;
	r->tag[PT_CONN].kind = PT_CONN;
	r->tag[PT_WAKE].r = r;
	r->tag[PT_WAKE].kind = PT_WAKE;
	if (out != NULL)
		*out = r;
	pthread_mutex_lock(&p->mu);
	/* One kick while the loop has not taken the list yet. */
	kick = p->incoming == NULL && p->ready == NULL;
	r->next = p->incoming;
	p->incoming = r;
	__atomic_add_fetch(&p->nlive, 1, __ATOMIC_ACQ_REL);
	pthread_mutex_unlock(&p->mu);
	if (kick && write(p->kick, &one, sizeof(one)) < 0 && errno != EAGAIN)
		/* LOG: the park's own eventfd cannot be written */
		elog(p->prog, 800, "park: eventfd: %s", strerror(errno));
	return 0;
}

void
park_wake(void *arg)
{
	struct park_req *r = arg;
	struct park *p = r->p;
	uint64_t one = 1;
	int kick = 0;

	pthread_mutex_lock(&p->mu);
	if (r->state != PR_DONE && !r->queued) {
		r->queued = 1;
		kick = p->ready == NULL && p->incoming == NULL;
		r->rnext = p->ready;
		p->ready = r;
	}
	pthread_mutex_unlock(&p->mu);
	if (kick && write(p->kick, &one, sizeof(one)) < 0 && errno != EAGAIN)
		/* LOG: the park's own eventfd cannot be written (a wake-up) */
		elog(p->prog, 803, "park: eventfd: %s", strerror(errno));
}

/* Free the requests the worker released (loop thread, or at the end). */
static void
park_free_released(struct park *p)
{
	struct park_req *r, *next;

	pthread_mutex_lock(&p->mu);
	r = p->freed;
	p->freed = NULL;
	pthread_mutex_unlock(&p->mu);
	for (; r != NULL; r = next) {
		next = r->next;
		free(r);
	}
}

int
park_count(struct park *p)
{
	return p == NULL ? 0 : __atomic_load_n(&p->nlive, __ATOMIC_ACQUIRE);
}

int
park_job(struct park_req *r, void (*fn)(void *), void *arg)
{
	return park_queue(r->p, fn, arg, NULL);
}

static int
park_queue(struct park *p, void (*fn)(void *), void *arg,
    struct park_req *req)
{
	struct park_job *j;

	if ((j = calloc(1, sizeof(*j))) == NULL)
		return -1;
	j->fn = fn;
	j->arg = arg;
	j->req = req;
	pthread_mutex_lock(&p->mu);
	*p->jobs_tail = j;
	p->jobs_tail = &j->next;
	if (p->sleeping)
		pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return 0;
}

/* The worker: jobs in order, until the loop is done and none is left. */
static void *
park_work(void *arg)
{
	struct park *p = arg;
	struct park_job *j;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		if ((j = p->jobs) == NULL) {
			if (p->loop_done)
				break;
			p->sleeping = 1;
			pthread_cond_wait(&p->cv, &p->mu);
			p->sleeping = 0;
			continue;
		}
		if ((p->jobs = j->next) == NULL)
			p->jobs_tail = &p->jobs;
		pthread_mutex_unlock(&p->mu);
		j->fn(j->arg);
		pthread_mutex_lock(&p->mu);
		if (j->req != NULL) {
			/* Released: nothing can name it now but the loop's
			 * lists, which it left at its close. */
			j->req->next = p->freed;
			p->freed = j->req;
		}
		free(j);
	}
	p->worker_done = 1;
	pthread_cond_broadcast(&p->done);
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

int
park_wait(struct park *p, long long until)
{
	struct timespec ts;
	long long left;
	int done;

	if (p == NULL)
		return 1;
	pthread_mutex_lock(&p->mu);
	while (!(p->loop_done && p->worker_done) &&
	    (left = until - mono_ms()) > 0) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += left / 1000;
		ts.tv_nsec += (left % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&p->done, &p->mu, &ts);
	}
	done = p->loop_done && p->worker_done;
	pthread_mutex_unlock(&p->mu);
	if (!done)
		return 0;
	pthread_join(p->loop, NULL);
	pthread_join(p->worker, NULL);
	park_free_released(p);
	close(p->ep);
	close(p->kick);
	free(p->heap);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	pthread_cond_destroy(&p->done);
	free(p);
	return 1;
}

/* Change what epoll watches of r's descriptor `kind` (0: nothing). */
static void
park_ctl(struct park_req *r, int kind, int op, unsigned events)
{
	struct epoll_event ev;
	int fd = kind == PT_CONN ? r->fd : r->wfd;

	if (fd < 0)
		return;
	memset(&ev, 0, sizeof(ev));
	ev.events = events;
	ev.data.ptr = &r->tag[kind];
	if (epoll_ctl(r->p->ep, op, fd, &ev) != 0 && op != EPOLL_CTL_DEL)
		/* LOG: a parked request's descriptor cannot be watched */
		elog(r->p->prog, 801, "park: epoll_ctl: %s", strerror(errno));
}

/* 1 if the connection shows that the web server ended the request: no
 * server multiplexes, so anything readable (EOF, an abort) means so. */
static int
park_gone(int fd)
{
	char c;
	ssize_t n;

	n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	return !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
	    errno == EINTR));
}

/* Heap of due times: the smallest at heap[0]. */
static void
park_heap_swap(struct park *p, int a, int b)
{
	struct park_req *t = p->heap[a];

	p->heap[a] = p->heap[b];
	p->heap[b] = t;
	p->heap[a]->hidx = a;
	p->heap[b]->hidx = b;
}

static void
park_heap_up(struct park *p, int i)
{
	while (i > 0 && p->heap[(i - 1) / 2]->due > p->heap[i]->due) {
		park_heap_swap(p, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void
park_heap_down(struct park *p, int i)
{
	int c;

	for (;;) {
		c = 2 * i + 1;
		if (c >= p->nheap)
			break;
		if (c + 1 < p->nheap && p->heap[c + 1]->due < p->heap[c]->due)
			c++;
		if (p->heap[i]->due <= p->heap[c]->due)
			break;
		park_heap_swap(p, i, c);
		i = c;
	}
}

static void
park_heap_del(struct park *p, struct park_req *r)
{
	int i = r->hidx;

	if (i < 0)
		return;
	r->hidx = -1;
	if (i != --p->nheap) {
		p->heap[i] = p->heap[p->nheap];
		p->heap[i]->hidx = i;
		park_heap_up(p, i);
		park_heap_down(p, p->heap[i]->hidx);
	}
}

void
park_due(struct park_req *r, long long due)
{
	struct park *p = r->p;
	struct park_req **nh;
	int cap;

	r->due = due;
	if (due < 0 || (r->state != PR_LIVE && r->state != PR_ENDING)) {
		park_heap_del(p, r);
		return;
	}
	if (r->hidx >= 0) {
		park_heap_up(p, r->hidx);
		park_heap_down(p, r->hidx);
		return;
	}
	if (p->nheap == p->heapcap) {
		cap = p->heapcap ? 2 * p->heapcap : PARK_HEAP_MIN;
		if ((nh = realloc(p->heap, (size_t)cap * sizeof(*nh))) ==
		    NULL) {
			/* Without a heap slot it keeps its last due time
			 * out: the next wake-up or hang-up still comes. */
			r->due = -1;
			return;
		}
		p->heap = nh;
		p->heapcap = cap;
	}
	r->hidx = p->nheap;
	p->heap[p->nheap++] = r;
	park_heap_up(p, r->hidx);
}

/* New requests: watch them, time them, and let their owners look once. */
static void
park_take_incoming(struct park *p)
{
	struct park_req *r, *next, *ready;
	uint64_t junk;

	/* The kick is read before the lists are taken, both at once: what
	 * comes after finds them empty and kicks again (park_add,
	 * park_wake). */
	if (read(p->kick, &junk, sizeof(junk)) < 0 && errno != EAGAIN)
		return;
	pthread_mutex_lock(&p->mu);
	r = p->incoming;
	p->incoming = NULL;
	for (next = r; next != NULL; next = next->next)
		next->state = PR_LIVE;
	ready = p->ready;
	p->ready = NULL;
	for (next = ready; next != NULL; next = next->rnext)
		next->queued = 0;
	pthread_mutex_unlock(&p->mu);
	for (; r != NULL; r = next) {
		next = r->next;
		r->prev = NULL;
		r->next = p->live;
		if (p->live != NULL)
			p->live->prev = r;
		p->live = r;
		park_ctl(r, PT_CONN, EPOLL_CTL_ADD, EPOLLIN | EPOLLRDHUP);
		park_ctl(r, PT_WAKE, EPOLL_CTL_ADD, EPOLLIN);
		park_due(r, r->due);
		if (p->stopping)
			park_result(r, r->ops->stop(r, r->arg));
		else
			park_result(r, r->ops->wake(r, r->arg));
	}
	/* Then those park_wake'd. */
	for (r = ready; r != NULL; r = next) {
		next = r->rnext;
		park_event(r, PT_WAKE, EPOLLIN);
	}
}

/* Wait for room to write (on: 1; the wake descriptor is left out
 * meanwhile: nothing can be written anyway), or no longer (0). */
static void
park_outwait(struct park_req *r, int on)
{
	if (r->outwait == on)
		return;
	r->outwait = on;
	park_ctl(r, PT_CONN, EPOLL_CTL_MOD, EPOLLIN | EPOLLRDHUP |
	    (on ? EPOLLOUT : 0));
	park_ctl(r, PT_WAKE, EPOLL_CTL_MOD, on ? 0 : EPOLLIN);
}

/* What an op answered (see park.h). */
static void
park_result(struct park_req *r, int rc)
{
	if (r->state != PR_LIVE)
		return;
	if (rc == PARK_CLOSE || r->o->failed) {
		park_close(r);
		return;
	}
	if (rc == PARK_END) {
		/* Its timer becomes the bound of the ending. */
		r->state = PR_ENDING;
		park_due(r, mono_ms() + PARK_END_MS);
		r->ops->detach(r->arg);
		park_finish(r);
		return;
	}
	if (http_pending(r->o))
		park_outwait(r, 1);
}

/* ENDING: once nothing is left to send, the end of the request; then
 * close.  Waits for room as needed (EPOLLOUT). */
static void
park_finish(struct park_req *r)
{
	int rc;

	if (r->o->ended && !http_pending(r->o)) {
		park_close(r);          /* the owner sent the end itself */
		return;
	}
	if (!http_pending(r->o) && !r->o->ended) {
		if (http_nowait_begin(r->o) != 0) {
			park_close(r);
			return;
		}
		rc = http_nowait_finish(r->o);
		if (rc == HTTP_NOWAIT_SENT || r->o->failed) {
			park_close(r);
			return;
		}
	}
	park_outwait(r, 1);
}

/* The request is over: off the loop, its connection closed, released
 * (on the worker, or here when that is quick), r freed by the loop once
 * released. */
static void
park_close(struct park_req *r)
{
	struct park *p = r->p;
	int quick;

	if (r->state == PR_LIVE)
		r->ops->detach(r->arg);
	park_heap_del(p, r);
	/* The connection leaves the epoll set with its close (its only
	 * descriptor); the wake descriptor stays open until the release. */
	park_ctl(r, PT_WAKE, EPOLL_CTL_DEL, 0);
	if (r->prev != NULL)
		r->prev->next = r->next;
	else
		p->live = r->next;
	if (r->next != NULL)
		r->next->prev = r->prev;
	r->prev = r->next = NULL;
	close(r->fd);
	r->fd = -1;
	quick = r->ops->quick != NULL && r->ops->quick(r->arg);
	pthread_mutex_lock(&p->mu);
	r->state = PR_DONE;       /* park_wake: no more */
	__atomic_sub_fetch(&p->nlive, 1, __ATOMIC_ACQ_REL);
	/* A wake-up queued before the close is dropped. */
	if (r->queued) {
		struct park_req **q;

		for (q = &p->ready; *q != NULL; q = &(*q)->rnext)
			if (*q == r) {
				*q = r->rnext;
				break;
			}
		r->queued = 0;
	}
	pthread_mutex_unlock(&p->mu);
	/* Released on the worker (or here, when that is quick), then freed
	 * by the loop (park_wake may be called until the owner's release
	 * is done; events of this round may still name it). */
	if (quick || park_queue(p, r->ops->release, r->arg, r) != 0) {
		/* (Out of memory for the job: here, blocking.) */
		r->ops->release(r->arg);
		pthread_mutex_lock(&p->mu);
		r->next = p->freed;
		p->freed = r;
		pthread_mutex_unlock(&p->mu);
	}
}

/* One event of a request's descriptor. */
static void
park_event(struct park_req *r, int kind, unsigned ev)
{
	int rc;

	if (r->state != PR_LIVE && r->state != PR_ENDING)
		return;
	if (kind == PT_WAKE) {
		if (r->state == PR_LIVE && !r->outwait)
			park_result(r, r->ops->wake(r, r->arg));
		return;
	}
	if ((ev & (EPOLLERR | EPOLLHUP | EPOLLRDHUP)) ||
	    ((ev & EPOLLIN) && park_gone(r->fd))) {
		park_close(r);
		return;
	}
	if (!(ev & EPOLLOUT) || !r->outwait)
		return;
	if ((rc = http_drain_nowait(r->o)) < 0) {
		park_close(r);
		return;
	}
	if (rc == 1)
		return;
	park_outwait(r, 0);
	if (r->state == PR_ENDING)
		park_finish(r);
	else
		park_result(r, r->ops->wake(r, r->arg));
}

/* The stop: every live request ends. */
static void
park_stop(struct park *p)
{
	struct park_req *r, *next;

	p->stopping = 1;
	epoll_ctl(p->ep, EPOLL_CTL_DEL, p->stopfd, NULL);
	for (r = p->live; r != NULL; r = next) {
		next = r->next;
		if (r->state == PR_LIVE)
			park_result(r, r->ops->stop(r, r->arg));
	}
}

static void *
park_loop(void *arg)
{
	struct park *p = arg;
	struct epoll_event evs[PARK_EVENTS];
	struct park_req *r;
	struct park_tag *t;
	long long now, wait;
	int i, n;

	for (;;) {
		/* The nearest due time: a timer, or an ending's bound. */
		now = mono_ms();
		wait = p->nheap == 0 ? -1 : p->heap[0]->due > now ?
		    p->heap[0]->due - now : 0;
		n = epoll_wait(p->ep, evs, PARK_EVENTS, (int)wait);
		if (n < 0 && errno != EINTR) {
			/* LOG: the park's epoll_wait failed */
			elog(p->prog, 802, "park: epoll_wait: %s",
			    strerror(errno));
			poll(NULL, 0, 100);
			continue;
		}
		for (i = 0; i < n; i++) {
			t = evs[i].data.ptr;
			if (t == &p->kick_tag)
				park_take_incoming(p);
			else if (t == &p->stop_tag)
				park_stop(p);
			else
				park_event(t->r, t->kind, evs[i].events);
		}
		now = mono_ms();
		while (p->nheap > 0 && p->heap[0]->due <= now) {
			r = p->heap[0];
			park_heap_del(p, r);
			r->due = -1;
			if (r->state == PR_ENDING)
				park_close(r);   /* it could not end in time */
			else
				park_result(r, r->ops->timer(r, r->arg));
		}
		park_free_released(p);
		if (p->stopping &&
		    __atomic_load_n(&p->nlive, __ATOMIC_ACQUIRE) == 0)
			break;
	}
	pthread_mutex_lock(&p->mu);
	p->loop_done = 1;
	pthread_cond_broadcast(&p->cv);     /* the worker: end when empty */
	pthread_cond_broadcast(&p->done);
	pthread_mutex_unlock(&p->mu);
	return NULL;
}
