/*
 * serve: run a responder as plain CGI or as a threaded FastCGI server,
 * whichever way the web server started it (FCGX_IsCGI decides; nothing is
 * configured).  A FastCGI server's listening socket is fd 0 (spawn-fcgi,
 * the web server's own process manager, systemd's StandardInput=socket),
 * or fd 3 handed over by systemd's socket activation (LISTEN_PID is this
 * process, LISTEN_FDS at least 1), which serve_main moves to fd 0 first.
 *
 *	static int handle(struct serve *s, struct http_req *r) { ... }
 *	int main(void)
 *	{ return serve_main("push-stream", handle, SERVE_HUB); }
 *
 * CGI: the config is loaded, the hub (with SERVE_HUB) started, and the one
 * request on stdin/stdout handled in the main thread.
 * FastCGI: request threads (SERVE_STACK-byte stacks,
 * conf.threads of them kept) accept connections on the non-blocking
 * listening socket and serve each (libfcgi reads the request from the
 * connection it is given), one after another while more wait; an idle
 * thread waits in an epoll set of its own where the socket is
 * EPOLLEXCLUSIVE, so that a connection wakes one thread, which serves
 * it itself.  The main thread takes the signals; while no request
 * thread is idle it watches the socket, and when connections waited
 * SERVE_SPAWN_MS (serve.c) with none taken (a slow body, a long
 * catch-up), it starts one more thread; a thread beyond conf.threads
 * leaves after a quiet second (joined by the next to leave, the last
 * by the main thread at the stop).  A burst of short requests (long-polls
 * coming back after a message) is served by the threads there are.
 * Above conf.max_subscribers live requests (the threads' and the
 * parked ones) the answer is a 503 with Retry-After.
 *
 * Requests that wait (streams, held polls) do not keep their thread:
 * the handler sets them up and hands them to the process's loop with
 * serve_park (park.h), which frees libfcgi's buffers; the thread goes
 * on to the next connection.
 *
 * The handler records a failure with http_fail() and returns -1; serve
 * answers it (http_answer_failure: the one place failures become a status
 * and an error-log line).  It must not call exit().
 *
 * Signals: SIGPIPE is ignored (a write error says the client left).
 * SIGTERM, SIGINT and SIGHUP set the stop flag, make the stop descriptor
 * readable and interrupt the hub's bell wait; every serve_wait() returns
 * SERVE_STOP at once, handlers end their responses cleanly, the loop
 * ends every parked request (park.h), and the process exits once the
 * last request is done (or after SERVE_STOP_MS, and as long again for
 * the parked ones).
 * Request and hub threads block these signals, so the signal handler
 * always runs in the main thread.
 */
#ifndef PUSHCGI_SERVE_H
#define PUSHCGI_SERVE_H

#include "conf.h"
#include "http.h"
#include "hub.h"
#include "park.h"

#if defined(__SANITIZE_ADDRESS__)
#define SERVE_STACK    (512 * 1024) /* sanitizers need much more stack */
#else
#define SERVE_STACK    (128 * 1024) /* request thread stack (virtual) */
#endif
#define SERVE_STOP_MS  1000  /* how long requests get to end at a stop */
#define SERVE_ERR_MAX  768

#define SERVE_HUB 1          /* start a hub: the handler subscribes */

enum {
	SERVE_WAKE = 1,      /* the wake descriptor is readable */
	SERVE_TIMEOUT = 2,   /* timeout_ms passed */
	SERVE_GONE = 3,      /* the client (or the web server) left */
	SERVE_STOP = 4       /* the process is stopping */
};

/* What a handler gets besides its request. */
struct serve {
	const char *prog;
	struct conf conf;
	struct hub *hub;     /* NULL without SERVE_HUB */
	int fcgi;            /* 1 when running as a FastCGI server */
};

typedef int (*serve_handler)(struct serve *s, struct http_req *r);

/* Run the responder; returns the process exit status for main (0, or
 * 111 when a FastCGI server cannot start). */
int serve_main(const char *prog, serve_handler handler, int flags);

/*
 * Sleep until wakefd (may be -1) is readable, the client leaves, the
 * process stops or timeout_ms passes (-1: no limit).  The request body is
 * consumed first if it was not (see http_read_body).  Returns SERVE_STOP,
 * SERVE_GONE, SERVE_WAKE or SERVE_TIMEOUT, in that order of precedence.
 */
int serve_wait(struct serve *s, struct http_req *r, int wakefd,
    int timeout_ms);

/* 1 once a stop was asked for. */
int serve_stopping(void);

/*
 * FastCGI only: instead of serving r to its end in this thread, hand it
 * to the process's loop (park.h), which then owns it: r's output (every
 * byte written so far must have been flushed, and the body read) moves
 * into *o, storage of the owner's that must live until its release op,
 * and from then on is written without blocking; wakefd, due, ops and arg
 * as for park_add.  The request no longer counts as a thread's; it
 * counts against max_subscribers until it ends.  Returns 0: the handler
 * then returns at once and touches r no more (serve frees it and
 * libfcgi's buffers, and keeps the connection open); or -1 (CGI, no
 * loop, no memory): nothing changed, the handler goes on as it would
 * have.
 */
int serve_park(struct serve *s, struct http_req *r, struct http_out *o,
    int wakefd, long long due, const struct park_ops *ops, void *arg);
/*
 * serve_park keeping the whole request, for an owner that answers later
 * (a held poll): *keep becomes a copy of r whose output is the parked
 * one (keep->out), with its response headers (http_header, http_cors)
 * and status, so that http_start_held and the rest work on it, without
 * blocking; the request's variables (http_env) are gone.
 */
int serve_park_req(struct serve *s, struct http_req *r,
    struct http_req *keep, int wakefd, long long due,
    const struct park_ops *ops, void *arg);


#endif
