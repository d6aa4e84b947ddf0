/*
 * http: one request as a CGI or FastCGI responder sees it, and the response
 * written back over either a CGI stdout descriptor or a FastCGI stream.
 *
 * Request side: the environment (CGI variables, FastCGI params), the query
 * string parsed by allow-list with hard caps, the body with a cap.
 * Response side: a status and headers, then bytes; http_flush() pushes
 * everything written so far to the web server at once.  A failed write
 * (client gone, server closed the pipe or socket) is sticky: every later
 * call returns -1 at once.
 *
 * Failures are recorded with http_fail() and answered in one place,
 * http_answer_failure(): a status with a one-line reason for the client
 * and one line in the server's error log naming the failure site number.
 *
 * Memory output (http_out_mem) writes into a growing buffer instead: the
 * framing tests use it to compare exact bytes.
 */
#ifndef PUSHCGI_HTTP_H
#define PUSHCGI_HTTP_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <poll.h>

#include <fcgiapp.h>

#include "conf.h"

#define HTTP_QUERY_MAX     8192 /* bytes of QUERY_STRING looked at */
#define HTTP_PARAMS_MAX    16   /* parameters in one query string */
#define HTTP_NAME_MAX      32   /* bytes in a parameter name */
#define HTTP_VALUE_MAX     4400 /* bytes in a decoded value: fits a full
                                   channel list (32 names of 128 bytes) */
#define HTTP_HEADER_MAX    1024 /* bytes of a request header we read */
#define HTTP_REASON_MAX    512  /* bytes in a failure reason (one names
                                   a file: see mlog_errmsg) */
#define HTTP_RESP_HDRS_MAX 1024 /* bytes of extra response header lines */
#define HTTP_OUTBUF        8192 /* CGI output buffer */
#define HTTP_DISCARD_MAX   65536 /* body bytes a bodiless request may send */
#define HTTP_DRAIN_MAX     (64ULL * 1024 * 1024) /* body bytes read and
                                   thrown away after a refusal */
#define HTTP_DRAIN_MS      30000 /* ... for at most this long */
#define HTTP_NOWAIT_MAX    32768 /* bytes one non-blocking write from
                                    another thread may copy, while the
                                    request still has a thread of its own
                                    (a parked request has none: no cap) */
#define HTTP_REC_MAX       65535 /* content bytes in one FastCGI record */
#define HTTP_REFS_MAX      2     /* message bodies one collected write may
                                    send by reference (mixed: the previous
                                    message and the new one) */
#define HTTP_REF_MIN       256   /* a put of at least this many bytes of a
                                    referenced body is not copied */

struct http_pend;          /* what a non-blocking write left (http.c) */

/* Where response bytes go. */
struct http_out {
	int fd;              /* CGI: write(2) here */
	FCGX_Stream *fs;     /* FastCGI: this stream */
	char *buf;           /* CGI buffer, or the memory output */
	size_t used, cap;
	int mem;             /* 1: memory output, grows without limit */
	int failed;          /* a write failed: sticky */
	int err;             /* errno of that failure */
	int nw_fd;           /* FastCGI: the connection, for http_nowait */
	int nw_id;           /* FastCGI: the request id of its records */
	int collect;         /* between http_nowait_begin and _end */
	int dirty;           /* FastCGI: written since the last flush */
	int parked;          /* http_out_park: no thread, no libfcgi stream */
	int ended;           /* the end of the request was sent, or is in
	                        the remainder (http_nowait_finish) */
	int nrefs;           /* while collecting: bodies sent by reference */
	struct http_ref {
		const char *p;
		size_t n;
		void *obj;
		void (*hold)(void *);
		void (*drop)(void *);
	} refs[HTTP_REFS_MAX];
	struct http_pend *pend; /* what a non-blocking write left unsent */
};

struct http_param {
	const char *name;    /* one of the allow-list's strings */
	char *value;         /* decoded, NUL-terminated, in http_params.buf */
};

/* The parsed query string.  ~8.5 KiB: keep it off small thread stacks. */
struct http_params {
	int n;
	struct http_param p[HTTP_PARAMS_MAX];
	char buf[HTTP_QUERY_MAX + HTTP_PARAMS_MAX];
};

struct http_req {
	FCGX_Request *fcgi;  /* NULL in CGI mode */
	char **envp;         /* the request's environment */
	int in_fd;           /* CGI: the body (0); FastCGI: -1 */
	int err_fd;          /* CGI: the error log (2) */
	const char *prog;    /* program name for log lines */
	struct http_out out;
	int poll_fd;         /* descriptor watched for a hang-up, -1 none */
	short poll_events;   /* what to ask poll(2) for on it */
	int started;         /* status and headers have been written */
	int parked;          /* handed to the loop (serve_park) */
	int body_done;       /* the request body has been consumed */
	int body_eof;        /* FastCGI: its end was read, nothing follows */
	size_t hdrlen;
	char hdrs[HTTP_RESP_HDRS_MAX]; /* extra header lines, CRLF-ended */
	int own_cache;       /* hdrs has a Cache-Control line of its own */
	int fail_status;     /* 0 = no failure recorded */
	int fail_site;
	char fail_msg[HTTP_REASON_MAX];
};

/* Set up r for a CGI request on stdin/stdout/stderr and environ, or for
 * an accepted FastCGI request (fr not NULL).  Allocates nothing. */
void http_init_cgi(struct http_req *r, const char *prog);
void http_init_fcgi(struct http_req *r, FCGX_Request *fr, const char *prog);
/* Free what the request allocated (the CGI output buffer). */
void http_release(struct http_req *r);

/* A request variable (QUERY_STRING, HTTP_ACCEPT, ...), or NULL.  The
 * string belongs to the request. */
const char *http_env(const struct http_req *r, const char *name);
/* A request header's variable (HTTP_ACCEPT, HTTP_LAST_EVENT_ID, ...):
 * 0 with *value set (NULL if absent), or -1 if it is longer than
 * HTTP_HEADER_MAX bytes. */
int http_header_in(const struct http_req *r, const char *var,
    const char **value);
/* REQUEST_METHOD, "GET" when missing. */
const char *http_method(const struct http_req *r);

/*
 * Parse query string qs into p, accepting only names in allowed (a
 * NULL-terminated list).  '+' is a space, %XX is decoded, a value may not
 * decode to NUL.  Returns 0, or -1 with a one-line reason in why: unknown
 * or duplicate name, more than HTTP_PARAMS_MAX, name or value too long,
 * bad escape, query longer than HTTP_QUERY_MAX.
 */
int http_parse_query(const char *qs, const char *const *allowed,
    struct http_params *p, char *why, size_t whylen);
/* The value of name in p, or NULL if absent. */
const char *http_param(const struct http_params *p, const char *name);

/*
 * May a request with the parameters p subscribe to channels[0..n)?  Its
 * token= parameter is checked against the private ones among them
 * (auth_subscriber, as of now).  Returns 0 (it may), 400 (a malformed
 * token=) or 403 (no, a wrong or an expired token for a private channel),
 * with a one-line reason in why that names the channel.  The caller
 * answers with http_fail(r, STATUS, SITE, "%s", why), a site of its own
 * for each status.
 */
int http_subscriber(const struct conf *c, const char *const *channels,
    int n, const struct http_params *p, char *why, size_t whylen);

/*
 * Read the request body, at most max bytes, into a malloc'd buffer (*data,
 * NUL-terminated for convenience, caller frees) of *len bytes.  With data
 * NULL the body is read and thrown away (up to HTTP_DISCARD_MAX).  Returns
 * 0, or -1 after http_fail(): 413 too large, 400 short body or bad
 * Content-Length, 411 a body of unknown length that is not chunked, 503
 * no memory.
 *
 * The body's end: FastCGI, the end of the FCGI_STDIN stream (every server
 * sends one); CGI, CONTENT_LENGTH when the server sets it, else, when the
 * request came with Transfer-Encoding: chunked (HTTP_TRANSFER_ENCODING),
 * EOF on stdin: Apache's mod_cgi/mod_cgid pass a chunked body so,
 * decoded, without CONTENT_LENGTH; lighttpd, mod_fcgid and small bodies
 * under mod_proxy_fcgi arrive counted.  Neither: no body.
 *
 * A refused body (too large, and every other failure recorded before the
 * body was read: see http_answer_failure) is read to its end and thrown
 * away first, up to HTTP_DRAIN_MAX bytes and HTTP_DRAIN_MS, so that the
 * web server passes the answer on (Apache's CGI modules drop the
 * connection of a program that ends without taking the whole body).
 * Must be called before waiting on a FastCGI connection: unread request
 * records would look like a hang-up.
 */
int http_read_body(struct http_req *r, size_t max, char **data,
    size_t *len);

/* Add a response header line before http_start.  name and value must be
 * printable ASCII without CR/LF.  Returns 0 or -1 (refused, too long). */
int http_header(struct http_req *r, const char *name, const char *value);
/* Is the request's Origin one of c->origins ("*" allows any)?  If so,
 * adds Access-Control-Allow-Origin (and Vary: Origin for a named one),
 * and Access-Control-Expose-Headers: expose unless expose is NULL, and
 * returns 1; else adds nothing and returns 0.  The answer does not depend
 * on whether the headers fit: a preflight's answer goes by it. */
int http_cors(struct http_req *r, const struct conf *c, const char *expose);

/* Write the status line, Content-Type, Cache-Control: no-cache (unless
 * http_header gave one), X-Accel-Buffering: no, the extra headers and
 * the blank line, and flush.
 * type NULL sends no Content-Type.  Returns 0 or -1 (write failed). */
int http_start(struct http_req *r, int status, const char *type);
/* http_start without the flush: for a short answer written whole, which
 * then goes out with the end of the request (FastCGI: in one write with
 * the end-of-request record).  Returns 0 or -1. */
int http_start_held(struct http_req *r, int status, const char *type);

/* Response bytes.  Buffered until http_flush, which sends at once.
 * All return 0 or -1 once any write has failed. */
int http_put(struct http_out *o, const void *p, size_t n);
int http_puts(struct http_out *o, const char *s);
int http_printf(struct http_out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int http_flush(struct http_out *o);

/*
 * Writing without blocking (FastCGI only), for a thread that serves many
 * requests: hub.h's direct delivery, and park.h's loop, which owns every
 * parked request.  One message's bytes are collected with
 * http_nowait_begin, the usual http_put calls (http_flush does nothing
 * meanwhile), and http_nowait_end, which sends them at once as FastCGI
 * records (as many as the size needs) with non-blocking sends.  It
 * returns
 *   HTTP_NOWAIT_SENT   all sent;
 *   HTTP_NOWAIT_PART   part sent: the rest is kept (http_pending) and
 *                      goes out first: with http_drain_nowait, or,
 *                      blocking, with the next http_put, http_flush or
 *                      http_drain of the request's own thread;
 *   HTTP_NOWAIT_NONE   nothing sent (no room now, or over
 *                      HTTP_NOWAIT_MAX copied bytes, for a request that
 *                      has a thread of its own; a failure, which is
 *                      sticky as usual); the caller undoes its framing
 *                      state and leaves the bytes to the request's
 *                      thread.  A parked request (http_out_park) has no
 *                      such thread: when its socket is full, all the
 *                      bytes become its remainder (PART).
 * http_nowait_begin returns -1 when this output cannot take part
 * (CGI, memory output, failed, a remainder pending, bytes not flushed).
 * The caller must make sure nobody else writes meanwhile, and that
 * everything written before was flushed: records then follow each other
 * whole on the connection.
 *
 * Bodies by reference: http_nowait_ref, after begin, says that puts of
 * at least HTTP_REF_MIN bytes from data[0..len) are not to be copied:
 * they are sent from where they are, and if part of them is left unsent,
 * hold(obj) keeps that memory alive until the rest went out (then
 * drop(obj)).  A message's body is then never copied per subscriber,
 * whatever the socket takes.  At most HTTP_REFS_MAX per write.
 *
 * The end: http_nowait_finish, instead of http_nowait_end, also sends
 * the end of the request (an empty STDOUT record and END_REQUEST) after
 * the collected bytes, with the same answers.
 */
enum { HTTP_NOWAIT_SENT, HTTP_NOWAIT_PART, HTTP_NOWAIT_NONE };
int http_nowait_begin(struct http_out *o);
void http_nowait_ref(struct http_out *o, const void *data, size_t len,
    void *obj, void (*hold)(void *), void (*drop)(void *));
int http_nowait_end(struct http_out *o);
int http_nowait_finish(struct http_out *o);
/* 1 while a remainder of a non-blocking write waits, else 0. */
int http_pending(const struct http_out *o);
/* Send what the socket takes of the remainder, without blocking: 0 when
 * nothing is left, 1 while some is, -1 once the output has failed. */
int http_drain_nowait(struct http_out *o);
/* Write out (blocking) the remainder http_nowait_end kept, if any.
 * 0, or -1 once the output has failed. */
int http_drain(struct http_out *o);
/*
 * The request's thread hands the output over for good (park.h): what
 * it wrote through libfcgi must have been flushed; from now on every
 * write goes through http_nowait_begin / end (a put outside them fails
 * the output).  The connection and request id stay; libfcgi's stream
 * is no longer used.
 */
void http_out_park(struct http_out *o);

/* Memory output for tests: bytes accumulate in o->buf[0..o->used). */
void http_out_mem(struct http_out *o);
void http_out_free(struct http_out *o);

/*
 * Record a failure: status (4xx/5xx), a distinct site number and a
 * one-line reason (no CR/LF; truncated to HTTP_REASON_MAX).  The first
 * failure recorded wins.  Returns -1 so callers can `return http_fail()`.
 */
int http_fail(struct http_req *r, int status, int site, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/*
 * The one place a recorded failure becomes an answer: if nothing was sent
 * yet, the status with the reason as a text/plain body (503 also gets
 * Retry-After); always one error-log line "PROG[PID]: E<site> <status>
 * <reason> (<method> <query>)".  A body not read yet is read and thrown away
 * first (http_read_body), so that the answer reaches the client.  Does
 * nothing if no failure was recorded.
 */
void http_answer_failure(struct http_req *r);
/* One line "PROG[PID]: E<site> <message>" (elog.h; site 0: a notice
 * without a number) to the server's error log: the FastCGI stderr stream
 * of a live request, else the request's stderr.  Control characters are
 * replaced, the line is capped at ELOG_LINE_MAX. */
void http_log(struct http_req *r, int site, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Client-gone detection while idle.  http_poll_setup fills pfd with the
 * descriptor to watch (the FastCGI connection, or CGI stdout) and returns
 * 1, or 0 if there is nothing to watch.  After poll(2), http_poll_gone
 * says 1 if the revents mean the web server dropped the request.
 */
int http_poll_setup(struct http_req *r, struct pollfd *pfd);
int http_poll_gone(struct http_req *r, const struct pollfd *pfd);

#endif
