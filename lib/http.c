/*
 * http: the request and the response, over CGI descriptors or a FastCGI
 * request.  See http.h for the contracts.
 *
 * Every write is flushed by the caller at message boundaries, never held:
 * a push response is useless if a buffer sits on the last event.  A write
 * error is remembered in the output and ends the response: the client is
 * gone and nothing more can reach it.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <fastcgi.h>

#include "auth.h"
#include "elog.h"
#include "http.h"
#include "mono.h"
#include "thread.h"

#define HTTP_FCGX_CHUNK (1 << 20) /* bytes per FCGX_PutStr call (an int) */
#define HTTP_RETRY_AFTER "5"      /* seconds a 503 asks the client to wait */
#define HTTP_CL_DIGITS   20       /* digits in a CONTENT_LENGTH */
#define HTTP_DRAIN_CHUNK 65536    /* bytes per read while throwing away */
#define HTTP_STACK_BUF   512      /* bytes on the stack: http_printf's text
                                     before it allocates, a discarded
                                     body's read buffer */
#define HTTP_LOG_QUERY   160      /* bytes of the query string an error-log
                                     line quotes, NUL included */
#define HTTP_LOG_METHOD  16       /* bytes of the method it quotes, NUL
                                     included */

/* How a body is delimited (http_body_framing). */
enum { HTTP_BODY_NONE, HTTP_BODY_LENGTH, HTTP_BODY_EOF };

extern char **environ;

static int http_hexval(int);
static int http_decode(const char *, size_t, char *, size_t, size_t *);
static void http_sanitize(char *, size_t, const char *);
static const char *http_reason(int);
static void http_log_line(struct http_req *, const char *, size_t);
static int http_write_fd(struct http_out *, const char *, size_t);
static int http_grow(struct http_out *, size_t);
static int http_collect(struct http_out *, const char *, size_t);
static void http_fcgi_header(const struct http_out *, unsigned char *, int,
    size_t);
static int http_is_tchar(int);
static void http_poll_init(struct http_req *);
static int http_body_framing(struct http_req *, unsigned long long *);
static int http_is_chunked(const char *);
static ssize_t http_body_read(struct http_req *, char *, size_t, long long);
static void http_drain_body(struct http_req *, unsigned long long, int);

void
http_init_cgi(struct http_req *r, const char *prog)
{
	memset(r, 0, sizeof(*r));
	r->fcgi = NULL;
	r->envp = environ;
	r->in_fd = 0;
	r->err_fd = 2;
	r->prog = prog;
	r->out.fd = 1;
	r->out.fs = NULL;
	r->out.nw_fd = -1;
	http_poll_init(r);
}

void
http_init_fcgi(struct http_req *r, FCGX_Request *fr, const char *prog)
{
	memset(r, 0, sizeof(*r));
	r->fcgi = fr;
	r->envp = fr->envp;
	r->in_fd = -1;
	r->err_fd = 2;
	r->prog = prog;
	r->out.fd = -1;
	r->out.fs = fr->out;
	r->out.nw_fd = fr->ipcFd;
	r->out.nw_id = fr->requestId;
	http_poll_init(r);
}

void
http_release(struct http_req *r)
{
	http_out_free(&r->out);
}

/*
 * Decide once what tells us the web server dropped the request.  FastCGI:
 * the connection; no server multiplexes, so anything readable after the
 * request (EOF, an abort) means the client left.  CGI: stdout, watched
 * for POLLERR/POLLHUP only, which poll(2) always reports: a pipe reports
 * POLLERR once the server closes its end, a Unix socket (mod_cgid) POLLHUP
 * once it is closed.  Its POLLRDHUP is no sign: mod_cgid shuts down its
 * sending side after the request body.
 */
static void
http_poll_init(struct http_req *r)
{
	r->poll_fd = -1;
	r->poll_events = 0;
	if (r->fcgi != NULL) {
		r->poll_fd = r->fcgi->ipcFd;
		r->poll_events = POLLIN | POLLRDHUP;
		return;
	}
	r->poll_fd = r->out.fd;
}

const char *
http_env(const struct http_req *r, const char *name)
{
	if (r->fcgi != NULL)
		return FCGX_GetParam(name, r->envp);
	return getenv(name);
}

int
http_header_in(const struct http_req *r, const char *var, const char **value)
{
	const char *v = http_env(r, var);

	*value = v;
	if (v != NULL && strnlen(v, HTTP_HEADER_MAX + 1) > HTTP_HEADER_MAX)
		return -1;
	return 0;
}

const char *
http_method(const struct http_req *r)
{
	const char *m = http_env(r, "REQUEST_METHOD");

	return m != NULL && *m != '\0' ? m : "GET";
}

static int
http_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Percent-decode s[0..n) into out (room for outmax bytes plus NUL).
 * Returns 0, -1 on a bad escape or a decoded NUL, -2 if too long.
 */
static int
http_decode(const char *s, size_t n, char *out, size_t outmax, size_t *outlen)
{
	size_t i, o = 0;
	int hi, lo, c;

	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (c == '+')
			c = ' ';
		else if (c == '%') {
			if (i + 2 >= n)
				return -1;
			hi = http_hexval((unsigned char)s[i + 1]);
			lo = http_hexval((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			c = hi * 16 + lo;
			i += 2;
		}
		if (c == 0)
			return -1;
		if (o == outmax)
			return -2;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	*outlen = o;
	return 0;
}

/* Copy s for a log line or a reason: printable ASCII only, quotes and
 * backslashes replaced, truncated to fit. */
static void
http_sanitize(char *dst, size_t dstlen, const char *s)
{
	size_t i;

	if (dstlen == 0)
		return;
	for (i = 0; s[i] != '\0' && i + 1 < dstlen; i++) {
		unsigned char c = (unsigned char)s[i];

		dst[i] = (c < 0x20 || c > 0x7e || c == '"' || c == '\\') ?
		    '?' : (char)c;
	}
	dst[i] = '\0';
}

int
http_parse_query(const char *qs, const char *const *allowed,
    struct http_params *p, char *why, size_t whylen)
{
	char name[HTTP_NAME_MAX + 1], shown[HTTP_NAME_MAX + 1];
	const char *seg, *end, *eq;
	size_t qlen, used = 0, nlen, vlen;
	int i, rc;

	p->n = 0;
	if (qs == NULL)
		return 0;
	qlen = strnlen(qs, HTTP_QUERY_MAX + 1);
	if (qlen > HTTP_QUERY_MAX) {
		snprintf(why, whylen, "query string longer than %d bytes",
		    HTTP_QUERY_MAX);
		return -1;
	}
	for (seg = qs; seg < qs + qlen; seg = end + 1) {
		end = memchr(seg, '&', (size_t)(qs + qlen - seg));
		if (end == NULL)
			end = qs + qlen;
		if (end == seg)
			continue;
		eq = memchr(seg, '=', (size_t)(end - seg));
		if (eq == NULL)
			eq = end;
		rc = http_decode(seg, (size_t)(eq - seg), name, HTTP_NAME_MAX,
		    &nlen);
		if (rc == -2) {
			snprintf(why, whylen, "parameter name longer than %d "
			    "bytes", HTTP_NAME_MAX);
			return -1;
		}
		if (rc != 0) {
			snprintf(why, whylen, "bad %%-escape in a parameter "
			    "name");
			return -1;
		}
		for (i = 0; allowed[i] != NULL; i++)
			if (strcmp(allowed[i], name) == 0)
				break;
		if (allowed[i] == NULL) {
			http_sanitize(shown, sizeof(shown), name);
			snprintf(why, whylen, "unknown parameter \"%s\"",
			    shown);
			return -1;
		}
		if (http_param(p, name) != NULL) {
			snprintf(why, whylen, "parameter \"%s\" given twice",
			    allowed[i]);
			return -1;
		}
		if (p->n == HTTP_PARAMS_MAX) {
			snprintf(why, whylen, "more than %d parameters",
			    HTTP_PARAMS_MAX);
			return -1;
		}
		/* Decoding never grows a value, so buf always has room. */
		rc = http_decode(eq == end ? eq : eq + 1,
		    (size_t)(end - (eq == end ? eq : eq + 1)), p->buf + used,
		    HTTP_VALUE_MAX, &vlen);
		if (rc == -2) {
			snprintf(why, whylen, "parameter \"%s\" longer than "
			    "%d bytes", allowed[i], HTTP_VALUE_MAX);
			return -1;
		}
		if (rc != 0) {
			snprintf(why, whylen, "bad %%-escape or NUL in "
			    "parameter \"%s\"", allowed[i]);
			return -1;
		}
		p->p[p->n].name = allowed[i];
		p->p[p->n].value = p->buf + used;
		p->n++;
		used += vlen + 1;
	}
	return 0;
}

const char *
http_param(const struct http_params *p, const char *name)
{
	int i;

	for (i = 0; i < p->n; i++)
		if (strcmp(p->p[i].name, name) == 0)
			return p->p[i].value;
	return NULL;
}

int
http_subscriber(const struct conf *c, const char *const *channels, int n,
    const struct http_params *p, char *why, size_t whylen)
{
	switch (auth_subscriber(c, channels, n, http_param(p, "token"),
	    time(NULL), why, whylen)) {
	case AUTH_OK:
		return 0;
	case AUTH_BAD:
		return 400;
	default:
		return 403;
	}
}

/*
 * How a CGI request's body is delimited (RFC 3875 4.1.2 and 4.2): by
 * CONTENT_LENGTH when the server gives one (*want gets it); when it does
 * not, a request header Transfer-Encoding naming chunked means the server
 * passes the decoded body and ends stdin after it (Apache mod_cgi and
 * mod_cgid do: they stream a chunked body without counting it first), so
 * the body runs to EOF; neither means no body.  CONTENT_LENGTH is parsed
 * by allow-list: 1 to HTTP_CL_DIGITS digits.  Returns HTTP_BODY_NONE,
 * _LENGTH or _EOF, or -1 after http_fail (400 bad Content-Length, 411 a
 * Transfer-Encoding that is not chunked: -2, the body may follow).
 */
static int
http_body_framing(struct http_req *r, unsigned long long *want)
{
	const char *cl, *te;
	unsigned long long v = 0;
	size_t i, n;

	*want = 0;
	cl = http_env(r, "CONTENT_LENGTH");
	if (cl != NULL && *cl != '\0') {
		n = strnlen(cl, HTTP_CL_DIGITS + 1);
		if (n > HTTP_CL_DIGITS || cl[n] != '\0')
			/* LOG: Content-Length longer than HTTP_CL_DIGITS */
			return http_fail(r, 400, 104, "bad Content-Length");
		for (i = 0; i < n; i++) {
			if (cl[i] < '0' || cl[i] > '9' ||
			    v > (ULLONG_MAX - (unsigned)(cl[i] - '0')) / 10)
				/* LOG: Content-Length not a number */
				return http_fail(r, 400, 109,
				    "bad Content-Length");
			v = v * 10 + (unsigned)(cl[i] - '0');
		}
		*want = v;
		return HTTP_BODY_LENGTH;
	}
	if (http_header_in(r, "HTTP_TRANSFER_ENCODING", &te) != 0)
		/* LOG: Transfer-Encoding over its cap */
		return http_fail(r, 400, 107, "Transfer-Encoding longer than "
		    "%d bytes", HTTP_HEADER_MAX);
	if (te == NULL || *te == '\0')
		return HTTP_BODY_NONE;
	if (!http_is_chunked(te)) {
		/* LOG: a body neither with Content-Length nor chunked */
		http_fail(r, 411, 108, "a body without Content-Length must be "
		    "sent chunked (Transfer-Encoding: chunked)");
		return -2;
	}
	return HTTP_BODY_EOF;
}

/* 1 if Transfer-Encoding value te ends with the coding "chunked" (any
 * case, optional white space around it), the only framing RFC 9112
 * allows for a body of unknown length. */
static int
http_is_chunked(const char *te)
{
	static const char word[] = "chunked";
	size_t n = strlen(te), k = sizeof(word) - 1;

	while (n > 0 && (te[n - 1] == ' ' || te[n - 1] == '\t'))
		n--;
	if (n < k || strncasecmp(te + n - k, word, k) != 0)
		return 0;
	n -= k;
	while (n > 0 && (te[n - 1] == ' ' || te[n - 1] == '\t'))
		n--;
	return n == 0 || te[n - 1] == ',';
}

/*
 * Read up to n body bytes into p: CGI from in_fd, FastCGI from the
 * FCGI_STDIN stream.  Returns the count read, 0 at the end of the body,
 * -1 on a read error, -2 once monotonic time deadline (ms, if >= 0) has
 * passed.  CGI waits for input no longer than the deadline.  FastCGI
 * looks at the clock only between calls: libfcgi buffers more of the
 * connection than it has delivered, so the socket cannot tell whether
 * anything is left to read; a read that blocks is bounded by the web
 * server's own timeout for a silent client.
 */
static ssize_t
http_body_read(struct http_req *r, char *p, size_t n, long long deadline)
{
	struct pollfd pfd;
	long long left;
	ssize_t got;
	int c;

	if (n > INT_MAX)
		n = INT_MAX;
	if (r->fcgi != NULL) {
		if (deadline >= 0 && mono_ms() >= deadline)
			return -2;
		c = FCGX_GetStr(p, (int)n, r->fcgi->in);
		if (c > 0)
			return c;
		if (FCGX_GetError(r->fcgi->in) != 0)
			return -1;
		r->body_eof = 1;
		return 0;
	}
	for (;;) {
		if (deadline >= 0) {
			if ((left = deadline - mono_ms()) <= 0)
				return -2;
			pfd.fd = r->in_fd;
			pfd.events = POLLIN;
			pfd.revents = 0;
			c = poll(&pfd, 1, (int)left);
			if (c < 0 && errno == EINTR)
				continue;
			if (c == 0)
				return -2;
			if (c < 0)
				return -1;
		}
		got = read(r->in_fd, p, n);
		if (got < 0 && errno == EINTR)
			continue;
		return got;
	}
}

/*
 * After a refusal: read what is left of the body (`left` bytes, or with
 * to_eof everything up to its end) and throw it away, at most
 * HTTP_DRAIN_MAX bytes and for at most HTTP_DRAIN_MS, so that the web
 * server hands the client our answer: Apache's mod_cgi/mod_cgid drop the
 * connection when the program ends before it has taken the whole body.
 * A body bigger than that cap is not read at all: nothing would be won.
 */
static void
http_drain_body(struct http_req *r, unsigned long long left, int to_eof)
{
	unsigned long long thrown = 0;
	long long deadline;
	char small[HTTP_STACK_BUF], *sink;
	size_t cap;
	ssize_t n;

	if (!to_eof && left > HTTP_DRAIN_MAX)
		return;
	if ((sink = malloc(HTTP_DRAIN_CHUNK)) != NULL)
		cap = HTTP_DRAIN_CHUNK;
	else {
		sink = small;
		cap = sizeof(small);
	}
	deadline = mono_ms() + HTTP_DRAIN_MS;
	while ((to_eof || thrown < left) && thrown < HTTP_DRAIN_MAX) {
		n = http_body_read(r, sink, !to_eof && left - thrown < cap ?
		    (size_t)(left - thrown) : cap, deadline);
		if (n <= 0)
			break;
		thrown += (unsigned long long)n;
	}
	if (sink != small)
		free(sink);
}

int
http_read_body(struct http_req *r, size_t max, char **data, size_t *len)
{
	unsigned long long want = 0;
	char *buf = NULL, sink[HTTP_STACK_BUF];
	size_t got = 0, cap, room;
	ssize_t n;
	int framing;

	if (data != NULL)
		*data = NULL;
	if (len != NULL)
		*len = 0;
	if (r->body_done)
		return 0;
	r->body_done = 1;
	cap = data != NULL ? max : HTTP_DISCARD_MAX;
	if (r->fcgi != NULL)
		framing = HTTP_BODY_EOF;   /* FCGI_STDIN has its own end */
	else if ((framing = http_body_framing(r, &want)) < 0) {
		if (framing == -2)
			http_drain_body(r, 0, 1);
		return -1;
	}
	if (framing == HTTP_BODY_NONE)
		want = 0;           /* an empty body, stdin left alone */
	if (framing == HTTP_BODY_LENGTH && want > cap) {
		/* LOG: Content-Length above the body's cap */
		http_fail(r, 413, 105, "request body larger than %zu bytes",
		    cap);
		http_drain_body(r, want, 0);
		return -1;
	}
	if (data != NULL && (buf = malloc(cap + 1)) == NULL) {
		/* LOG: out of memory for the body */
		http_fail(r, 503, 101, "out of memory for the body");
		http_drain_body(r, want, framing == HTTP_BODY_EOF);
		return -1;
	}
	/* Up to cap + 1 bytes: one more than allowed tells "too large". */
	for (;;) {
		if (framing != HTTP_BODY_EOF && got == want)
			break;
		room = framing != HTTP_BODY_EOF ? (size_t)want - got :
		    cap + 1 - got;
		if (buf == NULL && room > sizeof(sink))
			room = sizeof(sink);
		n = http_body_read(r, buf != NULL ? buf + got : sink, room, -1);
		if (n == 0 && framing == HTTP_BODY_EOF)
			break;
		if (n <= 0) {
			free(buf);
			if (n == 0)
				/* LOG: the body shorter than Content-Length */
				return http_fail(r, 400, 106, "request body "
				    "shorter than Content-Length");
			/* LOG: reading the body failed */
			return http_fail(r, 400, 103, "reading the request "
			    "body failed");
		}
		got += (size_t)n;
		if (got > cap) {
			free(buf);
			/* LOG: a chunked body above the body's cap */
			http_fail(r, 413, 102, "request body larger than %zu "
			    "bytes", cap);
			http_drain_body(r, 0, 1);
			return -1;
		}
	}
	if (buf != NULL) {
		buf[got] = '\0';
		*data = buf;
	}
	if (len != NULL)
		*len = got;
	return 0;
}

/* RFC 7230 tchar, for header names. */
static int
http_is_tchar(int c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return 1;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

int
http_header(struct http_req *r, const char *name, const char *value)
{
	size_t i, nl, vl;

	nl = strlen(name);
	vl = strlen(value);
	if (nl == 0)
		return -1;
	for (i = 0; i < nl; i++)
		if (!http_is_tchar((unsigned char)name[i]))
			return -1;
	for (i = 0; i < vl; i++)
		if ((unsigned char)value[i] < 0x20 ||
		    (unsigned char)value[i] > 0x7e)
			return -1;
	if (r->hdrlen + nl + vl + 4 >= sizeof(r->hdrs))
		return -1;
	r->hdrlen += (size_t)snprintf(r->hdrs + r->hdrlen,
	    sizeof(r->hdrs) - r->hdrlen, "%s: %s\r\n", name, value);
	if (strcasecmp(name, "Cache-Control") == 0)
		r->own_cache = 1;
	return 0;
}

int
http_cors(struct http_req *r, const struct conf *c, const char *expose)
{
	const char *origin = http_env(r, "HTTP_ORIGIN");
	int i;

	if (origin == NULL || *origin == '\0' ||
	    strlen(origin) > CONF_ORIGIN_MAX)
		return 0;
	for (i = 0; i < c->norigins; i++)
		if (strcmp(c->origins[i], "*") == 0 ||
		    strcmp(c->origins[i], origin) == 0)
			break;
	if (i == c->norigins)
		return 0;
	if (strcmp(c->origins[i], "*") == 0)
		http_header(r, "Access-Control-Allow-Origin", "*");
	else {
		http_header(r, "Access-Control-Allow-Origin", origin);
		http_header(r, "Vary", "Origin");
	}
	if (expose != NULL)
		http_header(r, "Access-Control-Expose-Headers", expose);
	return 1;
}

static const char *
http_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 413: return "Content Too Large";
	case 415: return "Unsupported Media Type";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return "Unknown";
	}
}

int
http_start_held(struct http_req *r, int status, const char *type)
{
	struct http_out *o = &r->out;

	if (r->started)
		return o->failed ? -1 : 0;
	r->started = 1;
	http_printf(o, "Status: %d %s\r\n", status, http_reason(status));
	if (type != NULL)
		http_printf(o, "Content-Type: %s\r\n", type);
	if (!r->own_cache)
		http_puts(o, "Cache-Control: no-cache\r\n");
	http_puts(o, "X-Accel-Buffering: no\r\n");
	http_put(o, r->hdrs, r->hdrlen);
	return http_puts(o, "\r\n");
}

int
http_start(struct http_req *r, int status, const char *type)
{
	if (http_start_held(r, status, type) != 0)
		return -1;
	return http_flush(&r->out);
}

/* write(2) all of p, retrying short writes and interrupted calls. */
static int
http_write_fd(struct http_out *o, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = write(o->fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			o->failed = 1;
			o->err = w < 0 ? errno : EPIPE;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Room for n more bytes in o->buf (memory output, collection). */
static int
http_grow(struct http_out *o, size_t n)
{
	size_t ncap;
	char *nb;

	if (o->used + n <= o->cap)
		return 0;
	ncap = o->cap ? o->cap : 256;
	while (ncap < o->used + n)
		ncap *= 2;
	if ((nb = realloc(o->buf, ncap)) == NULL) {
		o->failed = 1;
		o->err = ENOMEM;
		return -1;
	}
	o->buf = nb;
	o->cap = ncap;
	return 0;
}

int
http_put(struct http_out *o, const void *p, size_t n)
{
	const char *s = p;
	size_t chunk;

	if (o->failed)
		return -1;
	if (n == 0)
		return 0;
	if (o->collect)
		return http_collect(o, s, n);
	if (o->mem) {
		if (http_grow(o, n) != 0)
			return -1;
		memcpy(o->buf + o->used, s, n);
		o->used += n;
		return 0;
	}
	if (o->parked) {
		/* Only non-blocking writes once parked (http.h). */
		o->failed = 1;
		o->err = EINVAL;
		return -1;
	}
	if (o->fs != NULL) {
		if (http_drain(o) != 0)
			return -1;
		o->dirty = 1;
		while (n > 0) {
			chunk = n > HTTP_FCGX_CHUNK ? HTTP_FCGX_CHUNK : n;
			if (FCGX_PutStr(s, (int)chunk, o->fs) != (int)chunk) {
				o->failed = 1;
				o->err = FCGX_GetError(o->fs);
				return -1;
			}
			s += chunk;
			n -= chunk;
		}
		return 0;
	}
	if (o->buf == NULL) {
		if ((o->buf = malloc(HTTP_OUTBUF)) == NULL) {
			o->failed = 1;
			o->err = ENOMEM;
			return -1;
		}
		o->cap = HTTP_OUTBUF;
	}
	if (o->used + n > o->cap) {
		if (o->used > 0 && http_write_fd(o, o->buf, o->used) != 0)
			return -1;
		o->used = 0;
		if (n >= o->cap)
			return http_write_fd(o, s, n);
	}
	memcpy(o->buf + o->used, s, n);
	o->used += n;
	return 0;
}

int
http_puts(struct http_out *o, const char *s)
{
	return http_put(o, s, strlen(s));
}

int
http_printf(struct http_out *o, const char *fmt, ...)
{
	char small[HTTP_STACK_BUF], *big;
	va_list ap;
	int n, rc;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n < sizeof(small))
		return http_put(o, small, (size_t)n);
	if ((big = malloc((size_t)n + 1)) == NULL)
		return -1;
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	rc = http_put(o, big, (size_t)n);
	free(big);
	return rc;
}

int
http_flush(struct http_out *o)
{
	if (o->failed)
		return -1;
	if (o->mem || o->collect || o->parked)
		return 0;
	if (o->fs != NULL) {
		if (http_drain(o) != 0)
			return -1;
		if (FCGX_FFlush(o->fs) != 0 || FCGX_GetError(o->fs) != 0) {
			o->failed = 1;
			o->err = FCGX_GetError(o->fs);
			return -1;
		}
		o->dirty = 0;
		return 0;
	}
	if (o->used > 0 && http_write_fd(o, o->buf, o->used) != 0)
		return -1;
	o->used = 0;
	return 0;
}

/*
 * A thread's scratch for non-blocking writes (http_nowait_*): the copied
 * bytes, the pieces of the write in order (copied or referenced), the
 * iovec and the record headers.  Kept for the thread's life, so that a
 * thread writing to thousands of requests allocates nothing per write.
 */
struct http_piece {
	int ref;             /* index into o->refs, or -1: copied */
	size_t off;          /* copied: offset in the scratch's bytes */
	const char *p;       /* referenced: where */
	size_t n;
};

struct http_scratch {
	char *buf;
	size_t cap;
	struct http_piece *pc;
	int npc, pccap;
	struct iovec *iov;
	int *ivref;          /* per iovec entry: its ref, or -1 */
	int iovcap;
	unsigned char *hdr;
	size_t hdrcap;
	struct thread_end end;  /* freed at the thread's end */
};

static __thread struct http_scratch http_tls;

/* At a thread's end: its scratch's memory. */
static void
http_tls_free(void *arg)
{
	struct http_scratch *t = arg;

	free(t->buf);
	free(t->pc);
	free(t->iov);
	free(t->ivref);
	free(t->hdr);
	memset(t, 0, sizeof(*t));
}

/* The first non-blocking write of a thread registers its scratch, so
 * that the thread's end frees it. */
static void
http_tls_keep(void)
{
	(void)thread_at_end(&http_tls.end, http_tls_free, &http_tls);
}

/* What a non-blocking write left: iov[i..n), its copied parts in own,
 * the referenced ones held through held[]. */
struct http_pend {
	struct iovec *iov;
	int n, i;
	char *own;
	struct http_ref held[HTTP_REFS_MAX];
	int nheld;
};

static int http_tls_room(size_t, int, int);
static void http_pend_free(struct http_pend *);
static ssize_t http_sendv(int, struct iovec *, int);
static int http_nowait_send(struct http_out *, int);

int
http_nowait_begin(struct http_out *o)
{
	if ((o->fs == NULL && !o->parked) || o->nw_fd < 0 || o->failed ||
	    o->dirty || o->pend != NULL || o->collect)
		return -1;
	http_tls_keep();
	o->collect = 1;
	o->nrefs = 0;
	o->buf = http_tls.buf;
	o->cap = http_tls.cap;
	o->used = 0;
	http_tls.npc = 0;
	/* Room for a record header before the bytes: a write of copied
	 * bytes alone, in one record (nearly all), goes out in one send()
	 * from one buffer. */
	if (http_grow(o, FCGI_HEADER_LEN) != 0) {
		o->collect = 0;
		o->failed = 0;
		return -1;
	}
	o->used = FCGI_HEADER_LEN;
	return 0;
}

void
http_nowait_ref(struct http_out *o, const void *data, size_t len, void *obj,
    void (*hold)(void *), void (*drop)(void *))
{
	struct http_ref *r;

	if (!o->collect || o->nrefs == HTTP_REFS_MAX || data == NULL)
		return;
	r = &o->refs[o->nrefs++];
	r->p = data;
	r->n = len;
	r->obj = obj;
	r->hold = hold;
	r->drop = drop;
}

/* Room in the thread's scratch for npc pieces and niov iovec entries
 * (bytes: o->buf grows through http_grow).  0 or -1. */
static int
http_tls_room(size_t hdrs, int npc, int niov)
{
	void *p;

	if (npc > http_tls.pccap) {
		if ((p = realloc(http_tls.pc, (size_t)npc * 2 *
		    sizeof(*http_tls.pc))) == NULL)
			return -1;
		http_tls.pc = p;
		http_tls.pccap = npc * 2;
	}
	if (niov > http_tls.iovcap) {
		if ((p = realloc(http_tls.iov, (size_t)niov * 2 *
		    sizeof(*http_tls.iov))) == NULL)
			return -1;
		http_tls.iov = p;
		if ((p = realloc(http_tls.ivref, (size_t)niov * 2 *
		    sizeof(*http_tls.ivref))) == NULL)
			return -1;
		http_tls.ivref = p;
		http_tls.iovcap = niov * 2;
	}
	if (hdrs > http_tls.hdrcap) {
		if ((p = realloc(http_tls.hdr, hdrs * 2)) == NULL)
			return -1;
		http_tls.hdr = p;
		http_tls.hdrcap = hdrs * 2;
	}
	return 0;
}

/* A put while collecting: referenced when it lies in a ref's range and
 * is long enough, else copied.  0 or -1. */
static int
http_collect(struct http_out *o, const char *s, size_t n)
{
	struct http_piece *pc;
	int i, ref = -1;

	if (n >= HTTP_REF_MIN)
		for (i = 0; i < o->nrefs; i++)
			if (s >= o->refs[i].p &&
			    (size_t)(s - o->refs[i].p) <= o->refs[i].n &&
			    n <= o->refs[i].n - (size_t)(s - o->refs[i].p)) {
				ref = i;
				break;
			}
	if (ref < 0) {
		if (http_grow(o, n) != 0)
			return -1;
		memcpy(o->buf + o->used, s, n);
		pc = http_tls.npc > 0 ? &http_tls.pc[http_tls.npc - 1] : NULL;
		if (pc != NULL && pc->ref < 0 && pc->off + pc->n == o->used) {
			pc->n += n;
			o->used += n;
			return 0;
		}
		o->used += n;
	}
	if (http_tls_room(0, http_tls.npc + 1, 0) != 0) {
		o->failed = 1;
		o->err = ENOMEM;
		return -1;
	}
	pc = &http_tls.pc[http_tls.npc++];
	pc->ref = ref;
	pc->n = n;
	pc->p = ref >= 0 ? s : NULL;
	pc->off = ref >= 0 ? 0 : o->used - n;
	return 0;
}

/* A FastCGI record header at h: version 1, type, the request's id,
 * content length clen, no padding. */
static void
http_fcgi_header(const struct http_out *o, unsigned char *h, int type,
    size_t clen)
{
	h[0] = FCGI_VERSION_1;
	h[1] = (unsigned char)type;
	h[2] = (unsigned char)((o->nw_id >> 8) & 0xff);
	h[3] = (unsigned char)(o->nw_id & 0xff);
	h[4] = (unsigned char)((clen >> 8) & 0xff);
	h[5] = (unsigned char)(clen & 0xff);
	h[6] = 0;
	h[7] = 0;
}

/*
 * sendmsg() of iov[0..n) without blocking, IOV_MAX entries at a time:
 * the bytes sent (fewer than all when the socket is full), or -1 with
 * errno for a failure (EAGAIN with nothing sent is 0).
 */
static ssize_t
http_sendv(int fd, struct iovec *iov, int n)
{
	struct msghdr mh;
	size_t want;
	ssize_t w, sent = 0;
	int k, i;

	if (n == 1) {
		/* One buffer: send(), not sendmsg() and its iovec import. */
		do
			w = send(fd, iov[0].iov_base, iov[0].iov_len,
			    MSG_DONTWAIT | MSG_NOSIGNAL);
		while (w < 0 && errno == EINTR);
		if (w < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
		return w;
	}
	while (n > 0) {
		k = n > IOV_MAX ? IOV_MAX : n;
		memset(&mh, 0, sizeof(mh));
		mh.msg_iov = iov;
		mh.msg_iovlen = (size_t)k;
		for (want = 0, i = 0; i < k; i++)
			want += iov[i].iov_len;
		do
			w = sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
		while (w < 0 && errno == EINTR);
		if (w < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? sent :
			    -1;
		sent += w;
		if ((size_t)w < want)
			return sent;
		iov += k;
		n -= k;
	}
	return sent;
}

/*
 * Send the collected pieces as STDOUT records (and, with end, the end of
 * the request), keeping what the socket did not take.  The scratch is
 * left as it was for the next write.
 */
static int
http_nowait_send(struct http_out *o, int end)
{
	struct http_piece *pc = http_tls.pc;
	struct http_pend *pd = NULL;
	size_t total = 0, left, rec, take, segoff = 0, own = 0, skip;
	unsigned char *h;
	ssize_t sent;
	int i, k = 0, niov = 0, seg = 0, nrec, rc;

	for (i = 0; i < http_tls.npc; i++)
		total += pc[i].n;
	nrec = (int)((total + HTTP_REC_MAX - 1) / HTTP_REC_MAX) + 2;
	if (http_tls_room((size_t)nrec * FCGI_HEADER_LEN + FCGI_HEADER_LEN,
	    http_tls.npc, 2 * nrec + http_tls.npc + 2) != 0) {
		o->failed = 1;
		o->err = ENOMEM;
		return HTTP_NOWAIT_NONE;
	}
	if (http_tls.npc == 1 && pc[0].ref < 0 && total <= HTTP_REC_MAX) {
		/* Copied bytes in one record: the header in the room kept
		 * before them, one buffer. */
		http_fcgi_header(o, (unsigned char *)o->buf, FCGI_STDOUT,
		    total);
		http_tls.iov[niov].iov_base = o->buf;
		http_tls.iov[niov].iov_len = FCGI_HEADER_LEN + total;
		http_tls.ivref[niov++] = -1;
		left = 0;
	} else
		left = total;
	for (; left > 0; left -= rec) {
		rec = left > HTTP_REC_MAX ? HTTP_REC_MAX : left;
		h = http_tls.hdr + (size_t)k++ * FCGI_HEADER_LEN;
		http_fcgi_header(o, h, FCGI_STDOUT, rec);
		http_tls.iov[niov].iov_base = h;
		http_tls.iov[niov].iov_len = FCGI_HEADER_LEN;
		http_tls.ivref[niov++] = -1;
		for (take = rec; take > 0; ) {
			size_t n = pc[seg].n - segoff;

			if (n > take)
				n = take;
			http_tls.iov[niov].iov_base = pc[seg].ref >= 0 ?
			    (void *)(pc[seg].p + segoff) :
			    (void *)(o->buf + pc[seg].off + segoff);
			http_tls.iov[niov].iov_len = n;
			http_tls.ivref[niov++] = pc[seg].ref;
			take -= n;
			if ((segoff += n) == pc[seg].n) {
				seg++;
				segoff = 0;
			}
		}
	}
	if (end) {
		/* The end of STDOUT, then END_REQUEST: status 0, complete. */
		h = http_tls.hdr + (size_t)k * FCGI_HEADER_LEN;
		http_fcgi_header(o, h, FCGI_STDOUT, 0);
		http_fcgi_header(o, h + FCGI_HEADER_LEN, FCGI_END_REQUEST,
		    FCGI_HEADER_LEN);
		memset(h + 2 * FCGI_HEADER_LEN, 0, FCGI_HEADER_LEN);
		h[2 * FCGI_HEADER_LEN + 4] = FCGI_REQUEST_COMPLETE;
		http_tls.iov[niov].iov_base = h;
		http_tls.iov[niov].iov_len = 3 * FCGI_HEADER_LEN;
		http_tls.ivref[niov++] = -1;
	}
	if (niov == 0)
		return HTTP_NOWAIT_SENT;
	if ((sent = http_sendv(o->nw_fd, http_tls.iov, niov)) < 0) {
		o->failed = 1;
		o->err = errno;
		return HTTP_NOWAIT_NONE;
	}
	/* A full socket: a request with a thread of its own leaves the
	 * bytes to it; a parked one keeps them all as its remainder. */
	if (sent == 0 && !o->parked)
		return HTTP_NOWAIT_NONE;
	/* Skip what went; keep the rest: copied parts into one buffer,
	 * referenced ones held. */
	for (i = 0, skip = (size_t)sent; i < niov; i++) {
		if (skip < http_tls.iov[i].iov_len)
			break;
		skip -= http_tls.iov[i].iov_len;
	}
	if (i == niov)
		return HTTP_NOWAIT_SENT;
	http_tls.iov[i].iov_base = (char *)http_tls.iov[i].iov_base + skip;
	http_tls.iov[i].iov_len -= skip;
	for (k = i; k < niov; k++)
		if (http_tls.ivref[k] < 0)
			own += http_tls.iov[k].iov_len;
	rc = HTTP_NOWAIT_PART;
	if ((pd = calloc(1, sizeof(*pd))) == NULL ||
	    (pd->iov = malloc((size_t)(niov - i) * sizeof(*pd->iov))) ==
	    NULL || (own > 0 && (pd->own = malloc(own)) == NULL)) {
		/* Part of a record went: the connection is lost to us. */
		if (pd != NULL)
			free(pd->iov);
		free(pd);
		o->failed = 1;
		o->err = ENOMEM;
		return HTTP_NOWAIT_PART;
	}
	for (own = 0, k = i; k < niov; k++) {
		struct iovec *v = &pd->iov[pd->n++];
		int r = http_tls.ivref[k];

		*v = http_tls.iov[k];
		if (r < 0) {
			memcpy(pd->own + own, v->iov_base, v->iov_len);
			v->iov_base = pd->own + own;
			own += v->iov_len;
		} else if (!(pd->nheld & (1 << r))) {
			pd->nheld |= 1 << r;
			pd->held[r] = o->refs[r];
			if (o->refs[r].hold != NULL)
				o->refs[r].hold(o->refs[r].obj);
		}
	}
	o->pend = pd;
	return rc;
}

/* The end of a collected write (see http.h); end: the request's end
 * follows the bytes. */
static int
http_nowait_close(struct http_out *o, int end)
{
	int rc;

	o->collect = 0;
	/* The scratch may have grown: it stays the thread's. */
	http_tls.buf = o->buf;
	http_tls.cap = o->cap;
	if (o->failed)
		rc = HTTP_NOWAIT_NONE;
	else if (!o->parked && o->used - FCGI_HEADER_LEN > HTTP_NOWAIT_MAX)
		rc = HTTP_NOWAIT_NONE;
	else
		rc = http_nowait_send(o, end);
	if (end && rc != HTTP_NOWAIT_NONE)
		o->ended = 1;
	o->buf = NULL;
	o->used = o->cap = 0;
	o->nrefs = 0;
	http_tls.npc = 0;
	return rc;
}

int
http_nowait_end(struct http_out *o)
{
	return http_nowait_close(o, 0);
}

int
http_nowait_finish(struct http_out *o)
{
	return http_nowait_close(o, 1);
}

int
http_pending(const struct http_out *o)
{
	return o->pend != NULL;
}

static void
http_pend_free(struct http_pend *pd)
{
	int r;

	if (pd == NULL)
		return;
	for (r = 0; r < HTTP_REFS_MAX; r++)
		if ((pd->nheld & (1 << r)) && pd->held[r].drop != NULL)
			pd->held[r].drop(pd->held[r].obj);
	free(pd->iov);
	free(pd->own);
	free(pd);
}

int
http_drain_nowait(struct http_out *o)
{
	struct http_pend *pd = o->pend;
	ssize_t sent;
	size_t skip;

	if (o->failed) {
		http_pend_free(pd);
		o->pend = NULL;
		return -1;
	}
	if (pd == NULL)
		return 0;
	if ((sent = http_sendv(o->nw_fd, pd->iov + pd->i, pd->n - pd->i)) <
	    0) {
		o->failed = 1;
		o->err = errno;
		http_pend_free(pd);
		o->pend = NULL;
		return -1;
	}
	for (skip = (size_t)sent; pd->i < pd->n; pd->i++) {
		struct iovec *v = &pd->iov[pd->i];

		if (skip < v->iov_len) {
			v->iov_base = (char *)v->iov_base + skip;
			v->iov_len -= skip;
			return 1;
		}
		skip -= v->iov_len;
	}
	http_pend_free(pd);
	o->pend = NULL;
	return 0;
}

int
http_drain(struct http_out *o)
{
	struct pollfd pfd;
	int rc;

	while ((rc = http_drain_nowait(o)) == 1) {
		pfd.fd = o->nw_fd;
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, -1) < 0 && errno != EINTR) {
			o->failed = 1;
			o->err = errno;
		}
	}
	return rc;
}

void
http_out_park(struct http_out *o)
{
	free(o->buf);
	o->buf = NULL;
	o->used = o->cap = 0;
	o->fs = NULL;
	o->dirty = 0;
	o->parked = 1;
}

void
http_out_mem(struct http_out *o)
{
	memset(o, 0, sizeof(*o));
	o->fd = -1;
	o->mem = 1;
}

void
http_out_free(struct http_out *o)
{
	if (!o->collect)
		free(o->buf);
	o->buf = NULL;
	o->used = o->cap = 0;
	http_pend_free(o->pend);
	o->pend = NULL;
}

int
http_fail(struct http_req *r, int status, int site, const char *fmt, ...)
{
	va_list ap;
	char *p;

	if (r->fail_status != 0)
		return -1;
	r->fail_status = status;
	r->fail_site = site;
	va_start(ap, fmt);
	vsnprintf(r->fail_msg, sizeof(r->fail_msg), fmt, ap);
	va_end(ap);
	for (p = r->fail_msg; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	return -1;
}

void
http_answer_failure(struct http_req *r)
{
	char query[HTTP_LOG_QUERY], method[HTTP_LOG_METHOD];
	char line[ELOG_LINE_MAX];
	const char *q;

	if (r->fail_status == 0)
		return;
	/* Refused before its body was read: take the body first, or the
	 * web server may drop the connection instead of answering. */
	if (!r->body_done)
		http_read_body(r, 0, NULL, NULL);
	q = http_env(r, "QUERY_STRING");
	http_sanitize(query, sizeof(query), q != NULL ? q : "");
	http_sanitize(method, sizeof(method), http_method(r));
	/* The site recorded by http_fail, where its number is written. */
	http_log_line(r, line, elog_format(line, sizeof(line), r->prog,
	    r->fail_site, "%d %s (%s ?%s)", r->fail_status, r->fail_msg,
	    method, query));
	if (r->started)
		return;
	if (r->fail_status == 503)
		http_header(r, "Retry-After", HTTP_RETRY_AFTER);
	if (http_start(r, r->fail_status, "text/plain; charset=utf-8") == 0) {
		http_puts(&r->out, r->fail_msg);
		http_puts(&r->out, "\n");
		http_flush(&r->out);
	}
}

/* Write one formatted line (elog.h) to the error log: a live FastCGI
 * request's FCGI_STDERR stream (it lands in the server's error log),
 * otherwise the request's own stderr. */
static void
http_log_line(struct http_req *r, const char *line, size_t len)
{
	if (r->fcgi != NULL && !r->out.failed && r->fcgi->err != NULL) {
		if (FCGX_PutStr(line, (int)len, r->fcgi->err) == (int)len &&
		    FCGX_FFlush(r->fcgi->err) == 0)
			return;
	}
	while (write(r->err_fd, line, len) < 0 && errno == EINTR)
		;
}

void
http_log(struct http_req *r, int site, const char *fmt, ...)
{
	char line[ELOG_LINE_MAX];
	va_list ap;
	size_t k;

	va_start(ap, fmt);
	k = elog_vformat(line, sizeof(line), r->prog, site, fmt, ap);
	va_end(ap);
	http_log_line(r, line, k);
}

int
http_poll_setup(struct http_req *r, struct pollfd *pfd)
{
	if (r->poll_fd < 0)
		return 0;
	pfd->fd = r->poll_fd;
	pfd->events = r->poll_events;
	pfd->revents = 0;
	return 1;
}

int
http_poll_gone(struct http_req *r, const struct pollfd *pfd)
{
	char c;
	ssize_t n;

	if (pfd->revents & (POLLERR | POLLHUP | POLLNVAL | POLLRDHUP))
		return 1;
	if (pfd->revents & POLLIN) {
		/* FastCGI: the request's records were all read, and no
		 * server multiplexes, so anything now is an end: EOF when
		 * the server closed, or an abort record. */
		n = recv(pfd->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		(void)r;
		return 1;
	}
	return 0;
}
