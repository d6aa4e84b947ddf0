/*
 * probe: a stand-in responder that proves the end-to-end harness
 * (tests/e2e/lib.sh, tests/e2e/servers.sh) on its own, before any real
 * responder is involved.
 *
 * Runs as plain CGI or as a threaded FastCGI server, whichever way the web
 * server started it (FCGX_IsCGI), like the real responders.  Request:
 *
 *   ANY /cgi-bin/NAME[?lines=N][&ms=M][&mark=TAG]
 *
 *   lines=  body lines to stream, 0-PROBE_LINES_MAX (default 10); 0 means
 *           "until the file TAG.stop appears" (at most PROBE_HOLD_MAX lines)
 *   ms=     pause before each line, 0-PROBE_MS_MAX (default 200)
 *   mark=   1-PROBE_MARK_MAX of [A-Za-z0-9_-]: names the files the probe
 *           leaves in the folder of $PUSHCGI_DB, so that the harness can
 *           tell what happened on the server side without timing anything:
 *             TAG.body   the request body, byte for byte
 *             TAG.done   created once the last line has been flushed
 *
 * Answer: 200, text/plain, then one "NAME=value" line per variable of
 * probe_vars (value "(unset)" when absent; PUSHCGI_* are read from the
 * process environment, the way the responders read them, the rest from
 * the request), "mode=cgi|fastcgi", "body=LENGTH" (bytes actually read),
 * "line I" for I = 1..N, each flushed on its own, and "end".
 *
 * Unknown or malformed parameters are ignored: this is a test tool that
 * only the harness talks to, but every value still has a hard cap.
 * SIGTERM ends the process at once (the default action), which is what a
 * web server's stop expects of a program that does not trap it.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <fcgiapp.h>

#define PROBE_LISTEN_FD  0        /* FastCGI: the socket we are given */
#define PROBE_ACCEPTORS  4        /* threads taking connections in turn */
#define PROBE_LINES_DEF  10
#define PROBE_LINES_MAX  1000
#define PROBE_HOLD_MAX   3000     /* lines=0 ends after this many anyway */
#define PROBE_MS_DEF     200
#define PROBE_MS_MAX     300000   /* a silence longer than idle timeouts */
#define PROBE_MARK_MAX   32
#define PROBE_BODY_MAX   (8 * 1024 * 1024) /* bytes read, the rest dropped */
#define PROBE_PATH_MAX   4096
#define PROBE_LINE_MAX   2048     /* one echoed variable, truncated */
#define PROBE_QS_MAX     1024     /* query string bytes looked at */
#define PROBE_STACK      (256 * 1024)

/* The request variables echoed back, in this order. */
static const char *const probe_vars[] = {
	"PUSHCGI_DB", "PUSHCGI_CONF", "REQUEST_METHOD", "QUERY_STRING",
	"SCRIPT_NAME", "CONTENT_LENGTH", "CONTENT_TYPE", "HTTP_LAST_EVENT_ID",
	"HTTP_IF_NONE_MATCH", "HTTP_AUTHORIZATION", "REMOTE_USER", NULL
};

/* One request: a FastCGI request, or the CGI process's stdio (fr NULL). */
struct probe_req {
	FCGX_Request *fr;
	int lines, ms;
	char mark[PROBE_MARK_MAX + 1];
	char dir[PROBE_PATH_MAX];     /* folder of $PUSHCGI_DB, "" if none */
};

static pthread_mutex_t probe_accept_mu = PTHREAD_MUTEX_INITIALIZER;

static const char *probe_param(struct probe_req *, const char *);
static int probe_write(struct probe_req *, const void *, size_t);
static int probe_printf(struct probe_req *, const char *, ...)
    __attribute__((format(printf, 2, 3)));
static int probe_flush(struct probe_req *);
static long probe_read(struct probe_req *, void *, size_t);
static void probe_args(struct probe_req *);
static int probe_touch(struct probe_req *, const char *, const void *,
    size_t);
static int probe_exists(struct probe_req *, const char *);
static int probe_path(struct probe_req *, const char *, char *, size_t);
static void probe_sleep(int);
static void probe_handle(struct probe_req *);
static void *probe_request_thread(void *);
static void *probe_acceptor(void *);
static int probe_fastcgi(void);

/* A request variable: FastCGI params or, in CGI, the environment. */
static const char *
probe_param(struct probe_req *q, const char *name)
{
	if (q->fr != NULL && strncmp(name, "PUSHCGI_", 8) != 0)
		return FCGX_GetParam(name, q->fr->envp);
	return getenv(name);
}

/* Write all of buf to the client; 0, or -1 once the client is gone. */
static int
probe_write(struct probe_req *q, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t n;

	if (q->fr != NULL)
		return FCGX_PutStr(buf, (int)len, q->fr->out) == (int)len ?
		    0 : -1;
	while (len > 0) {
		n = write(STDOUT_FILENO, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Formatted probe_write, truncated at PROBE_LINE_MAX bytes. */
static int
probe_printf(struct probe_req *q, const char *fmt, ...)
{
	char buf[PROBE_LINE_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	return probe_write(q, buf, (size_t)n);
}

/* Push what was written to the web server now (CGI writes are unbuffered
 * already); 0 or -1 once the client is gone. */
static int
probe_flush(struct probe_req *q)
{
	if (q->fr == NULL)
		return 0;
	if (FCGX_FFlush(q->fr->out) != 0 || FCGX_GetError(q->fr->out) != 0)
		return -1;
	return 0;
}

/* Read up to len body bytes; the count, 0 at the end, -1 on error. */
static long
probe_read(struct probe_req *q, void *buf, size_t len)
{
	ssize_t n;

	if (q->fr != NULL)
		return FCGX_GetStr(buf, (int)len, q->fr->in);
	do
		n = read(STDIN_FILENO, buf, len);
	while (n < 0 && errno == EINTR);
	return n;
}

/* Parse lines=, ms= and mark= from the query string (allow-list, caps). */
static void
probe_args(struct probe_req *q)
{
	const char *qs = probe_param(q, "QUERY_STRING"), *db, *slash, *v;
	char *end;
	size_t n, i;
	long x;

	q->lines = PROBE_LINES_DEF;
	q->ms = PROBE_MS_DEF;
	q->mark[0] = '\0';
	q->dir[0] = '\0';
	if ((db = getenv("PUSHCGI_DB")) != NULL &&
	    (slash = strrchr(db, '/')) != NULL &&
	    (size_t)(slash - db) < sizeof(q->dir))
		snprintf(q->dir, sizeof(q->dir), "%.*s", (int)(slash - db), db);
	if (qs == NULL || strnlen(qs, PROBE_QS_MAX) >= PROBE_QS_MAX)
		return;
	while (*qs != '\0') {
		n = strcspn(qs, "&");
		if ((v = memchr(qs, '=', n)) != NULL) {
			v++;
			if (strncmp(qs, "lines=", 6) == 0 ||
			    strncmp(qs, "ms=", 3) == 0) {
				errno = 0;
				x = strtol(v, &end, 10);
				if (errno == 0 && end != v &&
				    (*end == '&' || *end == '\0') && x >= 0) {
					if (*qs == 'l')
						q->lines = x > PROBE_LINES_MAX ?
						    PROBE_LINES_MAX : (int)x;
					else
						q->ms = x > PROBE_MS_MAX ?
						    PROBE_MS_MAX : (int)x;
				}
			} else if (strncmp(qs, "mark=", 5) == 0) {
				for (i = 0; v + i < qs + n && i < PROBE_MARK_MAX;
				    i++) {
					if (strchr("abcdefghijklmnopqrstuvwxyz"
					    "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
					    "0123456789_-", v[i]) == NULL)
						break;
					q->mark[i] = v[i];
				}
				q->mark[i] = '\0';
				if (v + i != qs + n)
					q->mark[0] = '\0';
			}
		}
		qs += n;
		if (*qs == '&')
			qs++;
	}
}

/* The path DIR/MARK.suffix into out; 0, or -1 without mark= or when it
 * does not fit. */
static int
probe_path(struct probe_req *q, const char *suffix, char *out, size_t len)
{
	int n;

	if (q->mark[0] == '\0' || q->dir[0] == '\0')
		return -1;
	n = snprintf(out, len, "%s/%s.%s", q->dir, q->mark, suffix);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* Create (or replace) the file DIR/MARK.suffix holding buf; 0 or -1.
 * Written under a temporary name and renamed, so that whoever sees the
 * file sees all of it. */
static int
probe_touch(struct probe_req *q, const char *suffix, const void *buf,
    size_t len)
{
	char tmp[PROBE_PATH_MAX], path[PROBE_PATH_MAX];
	const char *p = buf;
	ssize_t n;
	int fd, k;

	if (probe_path(q, suffix, path, sizeof(path)) != 0)
		return -1;
	k = snprintf(tmp, sizeof(tmp), "%s.tmp%ld", path, (long)getpid());
	if (k < 0 || (size_t)k >= sizeof(tmp))
		return -1;
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644))
	    < 0)
		return -1;
	while (len > 0) {
		n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(fd);
			unlink(tmp);
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	if (close(fd) != 0 || rename(tmp, path) != 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* 1 if DIR/MARK.suffix exists. */
static int
probe_exists(struct probe_req *q, const char *suffix)
{
	char path[PROBE_PATH_MAX];

	if (probe_path(q, suffix, path, sizeof(path)) != 0)
		return 0;
	return access(path, F_OK) == 0;
}

/* Sleep ms milliseconds (signals do not shorten it much). */
static void
probe_sleep(int ms)
{
	struct timespec ts;

	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/*
 * Answer one request: the header block, the echoed variables, the body
 * length, then the lines, each flushed.  Stops early when the client is
 * gone.  Leaves TAG.body and TAG.done when mark= was given.
 */
static void
probe_handle(struct probe_req *q)
{
	const char *const *v;
	const char *val;
	char *body;
	size_t got = 0, want;
	long n;
	int i, last;

	probe_args(q);
	/* Read the whole body first, as a responder would: a CGI program
	 * reads CONTENT_LENGTH bytes (the server need not close stdin), a
	 * FastCGI request up to the end of its stdin stream. */
	want = PROBE_BODY_MAX;
	if (q->fr == NULL) {
		val = probe_param(q, "CONTENT_LENGTH");
		n = val != NULL ? strtol(val, NULL, 10) : 0;
		want = n > 0 && n < PROBE_BODY_MAX ? (size_t)n :
		    n > 0 ? PROBE_BODY_MAX : 0;
	}
	if ((body = malloc(PROBE_BODY_MAX)) == NULL)
		return;
	while (got < want &&
	    (n = probe_read(q, body + got, want - got)) > 0)
		got += (size_t)n;
	if (q->mark[0] != '\0')
		probe_touch(q, "body", body, got);
	free(body);

	if (probe_printf(q, "Status: 200 OK\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Cache-Control: no-cache\r\n\r\n") != 0)
		return;
	for (v = probe_vars; *v != NULL; v++) {
		val = probe_param(q, *v);
		if (probe_printf(q, "%s=%s\n", *v,
		    val != NULL ? val : "(unset)") != 0)
			return;
	}
	if (probe_printf(q, "mode=%s\nbody=%zu\n",
	    q->fr != NULL ? "fastcgi" : "cgi", got) != 0 ||
	    probe_flush(q) != 0)
		return;
	last = q->lines > 0 ? q->lines : PROBE_HOLD_MAX;
	for (i = 1; i <= last; i++) {
		if (q->lines == 0 && probe_exists(q, "stop"))
			break;
		probe_sleep(q->ms);
		if (probe_printf(q, "line %d\n", i) != 0 ||
		    probe_flush(q) != 0)
			return;
	}
	if (probe_printf(q, "end\n") != 0 || probe_flush(q) != 0)
		return;
	probe_touch(q, "done", "", 0);
}

/* A FastCGI request's own thread: answer, finish, free. */
static void *
probe_request_thread(void *arg)
{
	struct probe_req *q = arg;

	probe_handle(q);
	FCGX_Finish_r(q->fr);
	free(q->fr);
	free(q);
	return NULL;
}

/*
 * One of PROBE_ACCEPTORS threads: take the next connection (accept is
 * serialized, as libfcgi wants) and hand it to a detached thread of its
 * own, so that long streams never hold up new requests.
 */
static void *
probe_acceptor(void *arg)
{
	pthread_attr_t attr;
	pthread_t t;
	struct probe_req *q;
	int rc;

	(void)arg;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, PROBE_STACK);
	for (;;) {
		if ((q = calloc(1, sizeof(*q))) == NULL ||
		    (q->fr = calloc(1, sizeof(*q->fr))) == NULL) {
			free(q);
			probe_sleep(100);
			continue;
		}
		FCGX_InitRequest(q->fr, PROBE_LISTEN_FD, 0);
		pthread_mutex_lock(&probe_accept_mu);
		rc = FCGX_Accept_r(q->fr);
		pthread_mutex_unlock(&probe_accept_mu);
		if (rc == 0 &&
		    pthread_create(&t, &attr, probe_request_thread, q) == 0)
			continue;
		if (rc == 0)
			FCGX_Finish_r(q->fr);
		free(q->fr);
		free(q);
		if (rc != 0)
			probe_sleep(100);  /* e.g. EMFILE: do not spin */
	}
	return NULL;
}

/* The FastCGI server: PROBE_ACCEPTORS acceptor threads; never returns
 * unless they cannot start (111). */
static int
probe_fastcgi(void)
{
	pthread_t t[PROBE_ACCEPTORS];
	int i;

	if (FCGX_Init() != 0) {
		fprintf(stderr, "probe: FCGX_Init failed\n");
		return 111;
	}
	/* libfcgi turned SIGTERM into a flag nobody reads here. */
	signal(SIGTERM, SIG_DFL);
	for (i = 0; i < PROBE_ACCEPTORS; i++)
		if (pthread_create(&t[i], NULL, probe_acceptor, NULL) != 0) {
			fprintf(stderr, "probe: cannot start threads\n");
			return 111;
		}
	for (i = 0; i < PROBE_ACCEPTORS; i++)
		pthread_join(t[i], NULL);
	return 111;
}

int
main(void)
{
	struct probe_req q;

	if (!FCGX_IsCGI())
		return probe_fastcgi();
	signal(SIGTERM, SIG_DFL);
	memset(&q, 0, sizeof(q));
	probe_handle(&q);
	return 0;
}
