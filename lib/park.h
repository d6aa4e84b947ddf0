/*
 * park: FastCGI requests that wait without a thread of their own.
 *
 * A stream (or a held poll) spends its life waiting: for a message, for
 * its next heartbeat, for its client to leave.  A thread per waiting
 * request costs a stack and a wake-up per heartbeat each; here one loop
 * thread per process waits for all of them instead: an epoll set holding
 * every parked request's connection (a hang-up, room to write again) and
 * its wake descriptor (the hub's eventfd), and a timer heap of their
 * next due times (heartbeats, a poll's end).  A parked request's state
 * is its owner's (push-stream's struct stream, push-poll's held poll): a
 * few hundred bytes, with no libfcgi buffers (serve.c frees them when it
 * parks the request).
 *
 * Who writes a parked request, and when: the loop calls the owner's ops
 * in its own thread, one at a time; the owner writes without blocking
 * (http.h: http_nowait_begin / http_nowait_end), and what a full socket
 * did not take stays in the output (http_pending) and goes out when the
 * connection is writable again, after which the loop calls wake() so
 * that the owner can go on.  The hub thread may write too, through
 * direct delivery (hub.h: hub_sub_park), under the same rule as before:
 * an op that writes first takes the subscription back (hub_sub_unpark)
 * and gives it to the hub again before it returns.
 *
 * Ops that may block (SQLite or PostgreSQL: removing a streams row,
 * registering one) do not run in the loop: release() and park_job()
 * run on the park's worker thread, in order.
 *
 * The end of a parked request: an op returns PARK_END (the owner wrote
 * the end of its response; the loop sends what is left of it, then the
 * FastCGI end of the request unless the owner sent it already with
 * http_nowait_finish, then closes the connection) or PARK_CLOSE
 * (the client is gone or cannot be written: the connection is closed as
 * it is), or the connection shows a hang-up.  detach() is then called in
 * the loop (the owner stops direct delivery: the descriptor is about to
 * close), then release() on the worker.  At a stop (SIGTERM), every
 * parked request gets stop(), which writes the end and returns PARK_END;
 * park_wait then waits for the ends to be sent, bounded.
 */
#ifndef PUSHCGI_PARK_H
#define PUSHCGI_PARK_H

#include "http.h"

#define PARK_END_MS   2000  /* an ending request's output may take this
                               long to drain before it is closed anyway */
#define PARK_EVENTS   256   /* epoll events taken per wait */

/* What an op answers. */
enum { PARK_KEEP = 0, PARK_END = 1, PARK_CLOSE = 2 };

struct park;
struct park_req;

/* A parked request's owner: pr is the request (for park_due), arg the
 * owner's state given to park_add. */
struct park_ops {
	/* Something may be waiting: the wake descriptor was readable, the
	 * output just drained, or the request was just parked. */
	int (*wake)(struct park_req *pr, void *arg);
	/* The due time set with park_due (or park_add) came. */
	int (*timer)(struct park_req *pr, void *arg);
	/* The process stops: write the end of the response (PARK_END). */
	int (*stop)(struct park_req *pr, void *arg);
	/* The request is over; the connection is about to close (loop). */
	void (*detach)(void *arg);
	/* Free everything (the worker thread; may block). */
	void (*release)(void *arg);
	/* 1 when release will not block now (nothing to remove from the
	 * log): the loop then runs it itself, sparing the worker a
	 * wake-up.  NULL: never. */
	int (*quick)(void *arg);
};

/* Start the loop and its worker.  stopfd: becomes readable at the
 * process's stop (serve's stop descriptor; never read here).  0, or -1
 * with errno. */
int park_open(struct park **out, int stopfd, const char *prog);
/*
 * Park a request: conn is its FastCGI connection, o its output
 * (http_out_park'ed: every later write is non-blocking), wakefd the
 * descriptor whose readability calls wake() (may be -1), due the first
 * time timer() is called (mono_ms; -1 none).  From now on only the loop
 * (and direct delivery, see above) touches the request; wake() is called
 * once soon.  0, or -1 with errno (nothing was taken over).
 */
int park_add(struct park *p, int conn, struct http_out *o, int wakefd,
    long long due, const struct park_ops *ops, void *arg,
    struct park_req **out);
/* Make wake() run soon, from any thread, without blocking: for
 * hub_sub_notify (the request then needs no wake descriptor). */
void park_wake(void *r);
/* The next time timer() is called (mono_ms; -1 none).  Loop thread. */
void park_due(struct park_req *r, long long due);
/* Run fn(arg) on the worker thread (after what was queued before), for
 * the owner of r.  0, or -1 (out of memory: not run). */
int park_job(struct park_req *r, void (*fn)(void *), void *arg);
/* Requests parked now (any thread). */
int park_count(struct park *p);
/*
 * After the stop: wait until every parked request has ended and been
 * released, at most until the monotonic ms `until`.  1 when all are
 * done (the threads are then joined and p freed), 0 if some remain.
 */
int park_wait(struct park *p, long long until);

#endif
