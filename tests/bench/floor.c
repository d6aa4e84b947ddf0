/*
 * floor: a benchmark reference, not shipped and not installed.  The least
 * possible FastCGI push responder, the floor that tests/bench/web measures
 * push-stream and push-poll against behind the same front server
 * (lighttpd mod_fastcgi, nginx fastcgi_pass).  It has no log, no storage,
 * no channels, no wake-up, no heartbeat and no framing beyond what the
 * load client (tests/bench/pushload) needs: one thread, one epoll loop,
 * FastCGI records parsed by hand.
 *
 *	floor             the listening socket is descriptor 0
 *	                  (FCGI_LISTENSOCK_FILENO), as lighttpd's bin-path and
 *	                  spawn-fcgi hand it over
 *
 * Requests (the query string picks the kind; anything else is ignored):
 *
 *   GET  ...?format=sse     kept as a text/event-stream (headers and a
 *                           ":" comment line at once)
 *   GET  ...?format=mixed   kept as multipart/x-mixed-replace (headers and
 *                           the first boundary at once)
 *   GET  ...?format=poll    held until the next POST
 *   POST ...                the body (at most FL_BODY_MAX bytes) is the
 *                           message: it goes at once to every kept stream,
 *                           one write (one FCGI_STDOUT record) each, and
 *                           completes every held poll (a JSON answer with
 *                           a Content-Length, the end of FCGI_STDOUT and
 *                           FCGI_END_REQUEST in one write; unless the
 *                           server set FCGI_KEEP_CONN, our side of the
 *                           connection is then shut down and it is freed
 *                           when the server closes it); then the POST is
 *                           answered 201 (a small JSON body, as
 *                           push-publish)
 *
 * Framing is pushcgi's for the same transport (lib/transport.h): SSE
 * "id: N" and one "data: " line per line of the message, then a blank
 * line; mixed: the part header with a Content-Length for the first
 * message, then the message, the boundary and the next part's header
 * block announced ahead.  N counts the POSTs since the start.  The
 * boundary is fixed (a random one protects real streams from forged
 * parts; a benchmark publishes its own data).  Other GETs are 404.
 *
 * Bounds: at most FL_CONNS_MAX connections (more are closed at accept);
 * per connection at most FL_PARAMS_MAX bytes of parameters, FL_BODY_MAX
 * of body and FL_OUT_MAX of output waiting for the server to read it (a
 * stream over it is dropped).  One request per connection at a time
 * (another BEGIN_REQUEST is refused with FCGI_CANT_MPX_CONN).  A
 * connection that the server closes (EPOLLRDHUP, EPOLLHUP) or aborts
 * (FCGI_ABORT_REQUEST) is freed at once.  SIGTERM and SIGINT end it.
 */
#include "config.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FL_CONNS_MAX    19000    /* descriptors: the machine allows 20000 */
#define FL_PARAMS_MAX   32768    /* FCGI_PARAMS bytes of one request */
#define FL_QUERY_MAX    1024     /* QUERY_STRING kept */
#define FL_BODY_MAX     65536    /* a POST's body */
#define FL_OUT_MAX      (1024 * 1024)  /* output queued on one connection */
#define FL_READ         65536    /* one read */
#define FL_EVENTS       512
#define FL_RECORD_MAX   65535    /* content bytes in one record */
#define FL_BOUNDARY     "pushcgifloor"

/* FastCGI (the specification's numbers). */
#define FCGI_VERSION_1          1
#define FCGI_BEGIN_REQUEST      1
#define FCGI_ABORT_REQUEST      2
#define FCGI_END_REQUEST        3
#define FCGI_PARAMS             4
#define FCGI_STDIN              5
#define FCGI_STDOUT             6
#define FCGI_GET_VALUES         9
#define FCGI_GET_VALUES_RESULT  10
#define FCGI_UNKNOWN_TYPE       11
#define FCGI_RESPONDER          1
#define FCGI_KEEP_CONN          1
#define FCGI_REQUEST_COMPLETE   0
#define FCGI_CANT_MPX_CONN      1
#define FCGI_UNKNOWN_ROLE       3

enum { K_NONE, K_SSE, K_MIXED, K_POLL, K_POST, K_OTHER };
/* Where a connection is: reading a request, or parked as a stream/poll. */
enum { S_READ, S_STREAM, S_POLL, S_CLOSING };

struct fl_conn {
	int fd;
	int state;
	int dead;                /* freed after this batch of events */
	int kind;
	int id;                  /* request id, 0 between requests */
	int keep;                /* FCGI_KEEP_CONN */
	int params_done;
	int mixed_started;       /* a first part went out */
	unsigned char hdr[8];    /* the record header being read */
	size_t hgot;
	size_t cleft, pleft;     /* content, padding bytes left */
	int rtype, rid;          /* of the record being read */
	unsigned char begin[8];  /* BEGIN_REQUEST body */
	size_t bgot;
	char *params;            /* FL_PARAMS_MAX while reading them */
	size_t plen;
	char query[FL_QUERY_MAX];
	int post;
	char *body;              /* FL_BODY_MAX while reading a POST's */
	size_t blen;
	char *out;               /* output the server has not read yet */
	size_t olen, ocap, ooff;
	struct fl_conn *prev, *next;  /* in fl_streams or fl_polls */
};

static int fl_ep = -1, fl_lfd = 0, fl_nconns;
static struct fl_conn *fl_streams, *fl_polls, *fl_dead;
static long long fl_seq;
static volatile sig_atomic_t fl_stop;
static char fl_rbuf[FL_READ];

static void
fl_on_signal(int sig)
{
	(void)sig;
	fl_stop = 1;
}

static void
fl_unlink(struct fl_conn *c)
{
	struct fl_conn **head = c->state == S_STREAM ? &fl_streams :
	    c->state == S_POLL ? &fl_polls : NULL;

	if (head == NULL)
		return;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		*head = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
}

static void
fl_link(struct fl_conn *c, int state)
{
	struct fl_conn **head = state == S_STREAM ? &fl_streams : &fl_polls;

	c->state = state;
	c->prev = NULL;
	c->next = *head;
	if (*head != NULL)
		(*head)->prev = c;
	*head = c;
}

/* Close c now; its memory goes after the current batch of events, which
 * may still name it (a publish drops other connections). */
static void
fl_free(struct fl_conn *c)
{
	if (c->dead)
		return;
	fl_unlink(c);
	epoll_ctl(fl_ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->dead = 1;
	c->state = S_CLOSING;
	c->next = fl_dead;
	fl_dead = c;
	fl_nconns--;
}

static void
fl_reap(void)
{
	struct fl_conn *c;

	while ((c = fl_dead) != NULL) {
		fl_dead = c->next;
		free(c->params);
		free(c->body);
		free(c->out);
		free(c);
	}
}

/* Watch for output room too while output waits. */
static void
fl_want_out(struct fl_conn *c, int on)
{
	struct epoll_event ev;

	ev.events = EPOLLIN | EPOLLRDHUP | (on ? EPOLLOUT : 0);
	ev.data.ptr = c;
	epoll_ctl(fl_ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/*
 * Send bytes: one send() when nothing waits, the rest (or all) queued up
 * to FL_OUT_MAX.  Returns -1 when the connection is to be dropped.
 */
static int
fl_send(struct fl_conn *c, const void *p, size_t n)
{
	ssize_t w = 0;
	char *np;

	if (c->olen == c->ooff) {
		c->olen = c->ooff = 0;
		w = send(c->fd, p, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno != EAGAIN && errno != EINTR)
				return -1;
			w = 0;
		}
		if ((size_t)w == n)
			return 0;
	}
	n -= (size_t)w;
	p = (const char *)p + w;
	if (c->olen - c->ooff + n > FL_OUT_MAX)
		return -1;
	if (c->ooff > 0) {
		memmove(c->out, c->out + c->ooff, c->olen - c->ooff);
		c->olen -= c->ooff;
		c->ooff = 0;
	}
	if (c->olen + n > c->ocap) {
		size_t cap = c->ocap ? c->ocap : 4096;

		while (cap < c->olen + n)
			cap *= 2;
		if ((np = realloc(c->out, cap)) == NULL)
			return -1;
		c->out = np;
		c->ocap = cap;
	}
	memcpy(c->out + c->olen, p, n);
	c->olen += n;
	fl_want_out(c, 1);
	return 0;
}

/* Write what is queued; 1 when all of it went. */
static int
fl_flush(struct fl_conn *c)
{
	ssize_t w;

	while (c->ooff < c->olen) {
		w = send(c->fd, c->out + c->ooff, c->olen - c->ooff,
		    MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return 0;
			return -1;
		}
		c->ooff += (size_t)w;
	}
	c->olen = c->ooff = 0;
	fl_want_out(c, 0);
	return 1;
}

/* A growable byte buffer for building records. */
struct fl_buf {
	char *p;
	size_t len, cap;
};

static int
fl_put(struct fl_buf *b, const void *p, size_t n)
{
	char *np;

	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;

		while (cap < b->len + n)
			cap *= 2;
		if ((np = realloc(b->p, cap)) == NULL)
			return -1;
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

static int
fl_record_head(struct fl_buf *b, int type, int id, size_t len)
{
	unsigned char h[8];

	h[0] = FCGI_VERSION_1;
	h[1] = (unsigned char)type;
	h[2] = (unsigned char)(id >> 8);
	h[3] = (unsigned char)id;
	h[4] = (unsigned char)(len >> 8);
	h[5] = (unsigned char)len;
	h[6] = 0;   /* no padding */
	h[7] = 0;
	return fl_put(b, h, 8);
}

/* Records of type carrying p (split at FL_RECORD_MAX; n 0: one empty
 * record, the end of a stream). */
static int
fl_records(struct fl_buf *b, int type, int id, const char *p, size_t n)
{
	size_t k;

	do {
		k = n > FL_RECORD_MAX ? FL_RECORD_MAX : n;
		if (fl_record_head(b, type, id, k) != 0 || fl_put(b, p, k) != 0)
			return -1;
		p += k;
		n -= k;
	} while (n > 0);
	return 0;
}

static int
fl_end_request(struct fl_buf *b, int id, int proto)
{
	unsigned char e[8] = { 0, 0, 0, 0, (unsigned char)proto, 0, 0, 0 };

	if (fl_record_head(b, FCGI_END_REQUEST, id, 8) != 0)
		return -1;
	return fl_put(b, e, 8);
}

/* A complete answer: headers and body in STDOUT, its end, END_REQUEST. */
static int
fl_answer(struct fl_buf *b, int id, const char *text, size_t n)
{
	if (fl_records(b, FCGI_STDOUT, id, text, n) != 0 ||
	    fl_records(b, FCGI_STDOUT, id, NULL, 0) != 0)
		return -1;
	return fl_end_request(b, id, FCGI_REQUEST_COMPLETE);
}

/* The connection after a complete answer: the next request, or the
 * close (at once, or when the queued output has gone). */
static void
fl_request_done(struct fl_conn *c)
{
	fl_unlink(c);
	free(c->params);
	free(c->body);
	c->params = c->body = NULL;
	c->plen = c->blen = 0;
	c->id = 0;
	c->kind = K_NONE;
	c->params_done = c->post = c->mixed_started = 0;
	c->query[0] = '\0';
	if (c->keep) {
		c->state = S_READ;
		return;
	}
	c->state = S_CLOSING;
	if (c->olen == c->ooff)
		shutdown(c->fd, SHUT_WR);
}

/* Send b whole to c as one write; the connection's answer is complete. */
static int
fl_send_final(struct fl_conn *c, struct fl_buf *b)
{
	if (fl_send(c, b->p, b->len) != 0)
		return -1;
	fl_request_done(c);
	return 0;
}

/* The value of a name=value in a query string, "" if absent. */
static void
fl_query_arg(const char *q, const char *name, char *out, size_t outlen)
{
	size_t nl = strlen(name), k;
	const char *p = q, *e;

	out[0] = '\0';
	while (*p != '\0') {
		e = strchr(p, '&');
		if (e == NULL)
			e = p + strlen(p);
		if ((size_t)(e - p) > nl && strncmp(p, name, nl) == 0 &&
		    p[nl] == '=') {
			k = (size_t)(e - p) - nl - 1;
			if (k >= outlen)
				k = outlen - 1;
			memcpy(out, p + nl + 1, k);
			out[k] = '\0';
			return;
		}
		p = *e != '\0' ? e + 1 : e;
	}
}

/* FastCGI name-value pairs: 1 byte lengths below 128, else 4. */
static int
fl_pair_len(const unsigned char **p, const unsigned char *end, size_t *len)
{
	if (*p >= end)
		return -1;
	if (**p < 128) {
		*len = *(*p)++;
		return 0;
	}
	if (end - *p < 4)
		return -1;
	*len = ((size_t)((*p)[0] & 0x7f) << 24) | ((size_t)(*p)[1] << 16) |
	    ((size_t)(*p)[2] << 8) | (*p)[3];
	*p += 4;
	return 0;
}

/* Pick REQUEST_METHOD and QUERY_STRING; -1 if the block is malformed. */
static int
fl_parse_params(struct fl_conn *c)
{
	const unsigned char *p = (const unsigned char *)c->params;
	const unsigned char *end = p + c->plen;
	size_t nl, vl;
	char fmt[16];

	c->query[0] = '\0';
	c->post = 0;
	while (p < end) {
		if (fl_pair_len(&p, end, &nl) != 0 ||
		    fl_pair_len(&p, end, &vl) != 0 ||
		    (size_t)(end - p) < nl || (size_t)(end - p) - nl < vl)
			return -1;
		if (nl == 14 && memcmp(p, "REQUEST_METHOD", 14) == 0)
			c->post = vl == 4 && memcmp(p + nl, "POST", 4) == 0;
		else if (nl == 12 && memcmp(p, "QUERY_STRING", 12) == 0 &&
		    vl < sizeof(c->query)) {
			memcpy(c->query, p + nl, vl);
			c->query[vl] = '\0';
		}
		p += nl + vl;
	}
	if (c->post) {
		c->kind = K_POST;
		return 0;
	}
	fl_query_arg(c->query, "format", fmt, sizeof(fmt));
	c->kind = strcmp(fmt, "sse") == 0 ? K_SSE :
	    strcmp(fmt, "mixed") == 0 ? K_MIXED :
	    strcmp(fmt, "poll") == 0 ? K_POLL : K_OTHER;
	return 0;
}

static const char fl_sse_head[] =
    "Status: 200 OK\r\nContent-Type: text/event-stream\r\n"
    "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n\r\n:\n";
static const char fl_mixed_head[] =
    "Status: 200 OK\r\n"
    "Content-Type: multipart/x-mixed-replace;boundary=" FL_BOUNDARY "\r\n"
    "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n\r\n"
    "--" FL_BOUNDARY "\r\n";
static const char fl_404[] =
    "Status: 404 Not Found\r\nContent-Type: text/plain\r\n"
    "Content-Length: 10\r\n\r\nnot found\n";

/* A GET whose parameters are in: start the stream, hold the poll, or
 * answer 404.  -1: drop the connection. */
static int
fl_start_get(struct fl_conn *c)
{
	struct fl_buf b = { NULL, 0, 0 };
	int rc;

	free(c->params);
	c->params = NULL;
	switch (c->kind) {
	case K_SSE:
	case K_MIXED:
		if (c->kind == K_SSE)
			rc = fl_records(&b, FCGI_STDOUT, c->id, fl_sse_head,
			    sizeof(fl_sse_head) - 1);
		else
			rc = fl_records(&b, FCGI_STDOUT, c->id, fl_mixed_head,
			    sizeof(fl_mixed_head) - 1);
		if (rc == 0)
			rc = fl_send(c, b.p, b.len);
		if (rc == 0)
			fl_link(c, S_STREAM);
		break;
	case K_POLL:
		fl_link(c, S_POLL);
		rc = 0;
		break;
	default:
		rc = fl_answer(&b, c->id, fl_404, sizeof(fl_404) - 1);
		if (rc == 0)
			rc = fl_send_final(c, &b);
		break;
	}
	free(b.p);
	return rc;
}

/* SSE: "id: N", a "data: " line per line (CR, LF or CRLF end a line, as
 * SSE reads them), a blank line. */
static void
fl_frame_sse(struct fl_buf *f, const char *m, size_t n)
{
	char num[48];
	size_t i = 0, s;

	fl_put(f, num, (size_t)snprintf(num, sizeof(num), "id: %lld\n",
	    fl_seq));
	for (;;) {
		s = i;
		while (i < n && m[i] != '\n' && m[i] != '\r')
			i++;
		fl_put(f, "data: ", 6);
		fl_put(f, m + s, i - s);
		fl_put(f, "\n", 1);
		if (i >= n)
			break;
		if (m[i] == '\r' && i + 1 < n && m[i + 1] == '\n')
			i++;
		i++;
	}
	fl_put(f, "\n", 1);
}

/* JSON string body of m (quotes, backslashes, control bytes escaped). */
static void
fl_json(struct fl_buf *f, const char *m, size_t n)
{
	char e[8];
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)m[i];

		if (ch == '"' || ch == '\\') {
			e[0] = '\\';
			e[1] = (char)ch;
			fl_put(f, e, 2);
		} else if (ch < 0x20) {
			fl_put(f, e, (size_t)snprintf(e, sizeof(e), "\\u%04x",
			    ch));
		} else
			fl_put(f, m + i, 1);
	}
}

/*
 * A POST's body is in: frame it once per transport, write it to every
 * stream and held poll, answer the POST.  -1: drop the POST's connection.
 */
static int
fl_publish(struct fl_conn *pc)
{
	struct fl_buf sse = { NULL, 0, 0 }, first = { NULL, 0, 0 };
	struct fl_buf rest = { NULL, 0, 0 }, poll = { NULL, 0, 0 };
	struct fl_buf f = { NULL, 0, 0 }, j = { NULL, 0, 0 };
	struct fl_conn *c, *nx;
	const char *m = pc->body != NULL ? pc->body : "";
	size_t n = pc->blen;
	char head[256], ans[128];
	int hl, rc;

	fl_seq++;
	/* SSE. */
	fl_frame_sse(&f, m, n);
	fl_records(&sse, FCGI_STDOUT, 0, f.p, f.len);
	/* mixed: the first part has its header; every part announces the
	 * next one's. */
	f.len = 0;
	fl_put(&f, head, (size_t)snprintf(head, sizeof(head),
	    "Content-Type: text/plain\r\nContent-Length: %zu\r\n\r\n", n));
	hl = (int)f.len;
	fl_put(&f, m, n);
	fl_put(&f, "\r\n--" FL_BOUNDARY "\r\nContent-Type: text/plain\r\n\r\n",
	    sizeof("\r\n--" FL_BOUNDARY "\r\nContent-Type: text/plain\r\n\r\n")
	    - 1);
	fl_records(&first, FCGI_STDOUT, 0, f.p, f.len);
	fl_records(&rest, FCGI_STDOUT, 0, f.p + hl, f.len - (size_t)hl);
	/* poll: pushcgi's JSON answer, one message. */
	fl_put(&j, ans, (size_t)snprintf(ans, sizeof(ans),
	    "{\"messages\":[{\"id\":%lld,\"type\":\"text/plain\",\"data\":\"",
	    fl_seq));
	fl_json(&j, m, n);
	fl_put(&j, ans, (size_t)snprintf(ans, sizeof(ans), "\"}],\"next\":%lld}"
	    "\n", fl_seq));
	f.len = 0;
	fl_put(&f, head, (size_t)snprintf(head, sizeof(head),
	    "Status: 200 OK\r\nContent-Type: application/json\r\n"
	    "ETag: \"%lld\"\r\nContent-Length: %zu\r\n"
	    "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n\r\n",
	    fl_seq, j.len));
	fl_put(&f, j.p, j.len);
	if (sse.p == NULL || first.p == NULL || rest.p == NULL || f.p == NULL ||
	    j.p == NULL) {
		fprintf(stderr, "floor: out of memory\n");
		exit(1);
	}

	/* The records carry request id 0 in the templates: each stream's id
	 * is patched in (bytes 2-3 of every record header). */
	for (c = fl_streams; c != NULL; c = nx) {
		struct fl_buf *t = c->kind == K_SSE ? &sse :
		    c->mixed_started ? &rest : &first;
		size_t off;

		nx = c->next;
		for (off = 0; off < t->len; off += 8 +
		    (((size_t)(unsigned char)t->p[off + 4] << 8) |
		    (unsigned char)t->p[off + 5])) {
			t->p[off + 2] = (char)(c->id >> 8);
			t->p[off + 3] = (char)c->id;
		}
		if (fl_send(c, t->p, t->len) != 0) {
			fl_free(c);
			continue;
		}
		if (c->kind == K_MIXED)
			c->mixed_started = 1;
	}
	for (c = fl_polls; c != NULL; c = nx) {
		nx = c->next;
		poll.len = 0;
		if (fl_answer(&poll, c->id, f.p, f.len) != 0 ||
		    fl_send_final(c, &poll) != 0)
			fl_free(c);
	}
	poll.len = 0;
	hl = snprintf(ans, sizeof(ans), "{\"id\":%lld}\n", fl_seq);
	n = (size_t)snprintf(head, sizeof(head), "Status: 201 Created\r\n"
	    "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
	    hl, ans);
	rc = fl_answer(&poll, pc->id, head, n);
	if (rc == 0)
		rc = fl_send_final(pc, &poll);
	free(sse.p);
	free(first.p);
	free(rest.p);
	free(poll.p);
	free(f.p);
	free(j.p);
	return rc;
}

/* One complete record's content arrived in pieces: handle a piece.
 * last: this piece ends the record.  -1: drop the connection. */
static int
fl_content(struct fl_conn *c, const char *p, size_t n, int last)
{
	struct fl_buf b = { NULL, 0, 0 };
	int rc = 0;

	switch (c->rtype) {
	case FCGI_BEGIN_REQUEST:
		if (n > sizeof(c->begin) - c->bgot)
			n = sizeof(c->begin) - c->bgot;
		memcpy(c->begin + c->bgot, p, n);
		c->bgot += n;
		if (!last)
			return 0;
		if (c->bgot < 3)
			return -1;
		if (c->id != 0) {
			/* One request at a time per connection. */
			fl_end_request(&b, c->rid, FCGI_CANT_MPX_CONN);
		} else if (((c->begin[0] << 8) | c->begin[1]) !=
		    FCGI_RESPONDER) {
			fl_end_request(&b, c->rid, FCGI_UNKNOWN_ROLE);
		} else {
			c->id = c->rid;
			c->keep = (c->begin[2] & FCGI_KEEP_CONN) != 0;
			c->state = S_READ;
		}
		c->bgot = 0;
		break;
	case FCGI_PARAMS:
		if (c->rid != c->id || c->id == 0 || c->params_done)
			return 0;
		if (n == 0 && last) {
			c->params_done = 1;
			if (fl_parse_params(c) != 0)
				return -1;
			if (c->kind != K_POST)
				return fl_start_get(c);
			free(c->params);
			c->params = NULL;
			return 0;
		}
		if (c->params == NULL &&
		    (c->params = malloc(FL_PARAMS_MAX)) == NULL)
			return -1;
		if (n > FL_PARAMS_MAX - c->plen)
			return -1;
		memcpy(c->params + c->plen, p, n);
		c->plen += n;
		return 0;
	case FCGI_STDIN:
		if (c->rid != c->id || c->id == 0 || c->kind != K_POST ||
		    c->state != S_READ)
			return 0;
		if (n == 0 && last)
			return fl_publish(c);
		if (c->body == NULL && (c->body = malloc(FL_BODY_MAX)) == NULL)
			return -1;
		if (n > FL_BODY_MAX - c->blen)
			return -1;
		memcpy(c->body + c->blen, p, n);
		c->blen += n;
		return 0;
	case FCGI_ABORT_REQUEST:
		if (!last || c->rid != c->id)
			return 0;
		return -1;
	case FCGI_GET_VALUES:
		if (!last)
			return 0;
		/* None of the values asked for is known: an empty answer. */
		fl_records(&b, FCGI_GET_VALUES_RESULT, 0, NULL, 0);
		break;
	default:
		if (!last || c->rtype <= FCGI_UNKNOWN_TYPE)
			return 0;
		{
			unsigned char u[8] = { (unsigned char)c->rtype };

			fl_record_head(&b, FCGI_UNKNOWN_TYPE, 0, 8);
			fl_put(&b, u, 8);
		}
		break;
	}
	if (b.len > 0)
		rc = fl_send(c, b.p, b.len);
	free(b.p);
	return rc;
}

/* Feed bytes read to the record parser.  -1: drop the connection. */
static int
fl_feed(struct fl_conn *c, const char *p, size_t n)
{
	size_t k;

	while (n > 0) {
		if (c->state == S_CLOSING)
			return 0;   /* nothing more is read after the answer */
		if (c->hgot < 8) {
			k = 8 - c->hgot < n ? 8 - c->hgot : n;
			memcpy(c->hdr + c->hgot, p, k);
			c->hgot += k;
			p += k;
			n -= k;
			if (c->hgot < 8)
				return 0;
			if (c->hdr[0] != FCGI_VERSION_1)
				return -1;
			c->rtype = c->hdr[1];
			c->rid = (c->hdr[2] << 8) | c->hdr[3];
			c->cleft = ((size_t)c->hdr[4] << 8) | c->hdr[5];
			c->pleft = c->hdr[6];
			if (c->cleft == 0 && fl_content(c, p, 0, 1) != 0)
				return -1;
		} else if (c->cleft > 0) {
			k = c->cleft < n ? c->cleft : n;
			c->cleft -= k;
			if (fl_content(c, p, k, c->cleft == 0) != 0)
				return -1;
			p += k;
			n -= k;
		} else if (c->pleft > 0) {
			k = c->pleft < n ? c->pleft : n;
			c->pleft -= k;
			p += k;
			n -= k;
		}
		if (c->hgot == 8 && c->cleft == 0 && c->pleft == 0)
			c->hgot = 0;
	}
	return 0;
}

static void
fl_accept(void)
{
	struct epoll_event ev;
	struct fl_conn *c;
	int fd;

	for (;;) {
		fd = accept4(fl_lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;   /* EAGAIN, or an error to retry on the next
			           * readiness */
		if (fl_nconns >= FL_CONNS_MAX ||
		    (c = calloc(1, sizeof(*c))) == NULL) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->state = S_READ;
		ev.events = EPOLLIN | EPOLLRDHUP;
		ev.data.ptr = c;
		if (epoll_ctl(fl_ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
			close(fd);
			free(c);
			continue;
		}
		fl_nconns++;
	}
}

static void
fl_event(struct fl_conn *c, uint32_t evs)
{
	ssize_t r;

	if (c->dead)
		return;
	if (evs & EPOLLOUT) {
		int f = fl_flush(c);

		if (f < 0) {
			fl_free(c);
			return;
		}
		if (f == 1 && c->state == S_CLOSING)
			shutdown(c->fd, SHUT_WR);
	}
	if (evs & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
		for (;;) {
			r = recv(c->fd, fl_rbuf, sizeof(fl_rbuf), 0);
			if (r < 0 && (errno == EAGAIN || errno == EINTR))
				break;
			if (r <= 0 || fl_feed(c, fl_rbuf, (size_t)r) != 0) {
				/* The server hung up (or broke the
				 * protocol): free the stream now. */
				fl_free(c);
				return;
			}
		}
		if (evs & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
			fl_free(c);
	}
}

int
main(int argc, char **argv)
{
	struct epoll_event evs[FL_EVENTS], ev;
	struct sigaction sa;
	socklen_t len = sizeof(int);
	int v = 0, i, n;

	(void)argv;
	if (argc > 1) {
		fprintf(stderr, "usage: floor (the FastCGI listening socket "
		    "as descriptor 0)\n");
		return 100;
	}
	if (getsockopt(fl_lfd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) != 0 ||
	    v == 0) {
		fprintf(stderr, "floor: descriptor 0 is not a listening "
		    "socket\n");
		return 100;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fl_on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	if (fcntl(fl_lfd, F_SETFL, fcntl(fl_lfd, F_GETFL) | O_NONBLOCK) != 0 ||
	    (fl_ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
		perror("floor");
		return 111;
	}
	ev.events = EPOLLIN;
	ev.data.ptr = NULL;
	if (epoll_ctl(fl_ep, EPOLL_CTL_ADD, fl_lfd, &ev) != 0) {
		perror("floor: epoll_ctl");
		return 111;
	}
	while (!fl_stop) {
		n = epoll_wait(fl_ep, evs, FL_EVENTS, -1);
		for (i = 0; i < n; i++) {
			if (evs[i].data.ptr == NULL)
				fl_accept();
			else
				fl_event(evs[i].data.ptr, evs[i].events);
		}
		fl_reap();
	}
	return 0;
}
