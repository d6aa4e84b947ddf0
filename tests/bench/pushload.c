/*
 * pushload: the load client of the web benchmark (tests/bench/web).  One
 * process, one epoll loop, non-blocking sockets to 127.0.0.1 only.  Prints
 * one result line of key=value pairs; asserts nothing.
 *
 *	pushload lat  -u URL [-u URL...] -k sse|mixed|poll -n SUBS -p PUB
 *	              [-P N] [-g MS] [-H HEADER] [-A HEADER]
 *	pushload rate -p URL -c CONNS -N REQUESTS [-H HEADER]
 *	pushload hold -u URL [-u URL...] -k sse|mixed -n SUBS -s SECONDS
 *	              [-f FILE]
 *
 * Several -u (at most PL_URLS_MAX): the subscribers are dealt out among
 * them in turn (subscriber i to URL i mod count), e.g. the same channel
 * on two web hosts over one PostgreSQL log; lat's figures are then over
 * every pair of all of them, and "per_url" gives each URL's p50/p99.
 *
 * lat: SUBS subscribers on URL (GET; -A adds a request header, e.g. the
 *   Accept that selects nchan's transport), then N publishes (default
 *   150) spaced MS apart (default 50), on one connection, each sent
 *   once the answer to the one before has come.  Each message is the
 *   text "PL:<run>:<seq>:<ns>." where ns is the CLOCK_MONOTONIC time the
 *   publish was due (start + (seq - 1) * MS): a side that answers a
 *   publish late holds the next one back, and that wait counts in the
 *   next message's latency, as it would for a publisher on a schedule
 *   (timing from the moment of sending instead would leave out exactly
 *   the queueing of a side that is behind); a subscriber that finds it in its bytes (whatever the
 *   framing: SSE lines, multipart parts, a long-poll JSON or raw body)
 *   records now - ns.  poll: every answer is followed at once by the next
 *   request on the same keep-alive connection (or a new one if the server
 *   closed), carrying the answer's ETag as If-None-Match and its
 *   Last-Modified as If-Modified-Since.  PUB is "capi:DB:CHANNEL"
 *   (pushcgi_publish on the log DB) or an http URL that takes a POST of
 *   the message (-H adds a header, e.g. a token).  Prints p50/p99 in ms
 *   over every (subscriber, publish) pair, and how many pairs never
 *   arrived.  The wait for the last messages (at most PL_DRAIN_MS) ends
 *   as soon as every pair has arrived.
 * rate: CONNS keep-alive connections POST small messages to URL, one at a
 *   time each, until REQUESTS answers came; prints answers per second
 *   and the count that were not 2xx.
 * hold: open SUBS streams as fast as the server answers them (at most
 *   PL_PENDING_MAX waiting for their answer at a time), count those
 *   answered 200 (and why others failed), write "ready N" to FILE, keep
 *   them open SECONDS, then count those still open.
 *
 * Bounds: every phase has a deadline (PL_*_S); at most PL_CONNS_MAX
 * connections; loopback addresses only (the URL's host must be 127.x).
 */
#include "config.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pushcgi.h"

#define PL_EX_USAGE      100
#define PL_EX_SYSTEM     111
#define PL_CONNS_MAX     19000   /* descriptors: the machine allows 20000 */
#define PL_PUBS_MAX      10000
#define PL_URL_MAX       1024
#define PL_HDR_MAX       8192    /* response header block */
#define PL_REQ_MAX       2048
#define PL_BUF           16384   /* one read */
#define PL_CARRY         64      /* bytes kept to find a split token */
#define PL_TAG_MAX       64      /* ETag / Last-Modified kept */
#define PL_READY_S       60      /* bound on subscribers connecting */
#define PL_SETTLE_MS     1000    /* after all are ready, before publishing */
#define PL_DRAIN_MS      5000    /* after the last publish */
#define PL_RATE_S        120     /* bound on a rate run */
#define PL_HOLD_MAX_S    600
#define PL_BATCH         100     /* connects started per loop round */
#define PL_PENDING_MAX   500     /* connects awaiting their answer */
#define PL_EVENTS        512
#define PL_NS            1000000000LL
#define PL_URLS_MAX      8       /* -u given at most this often */

enum { K_SSE, K_MIXED, K_POLL };
enum { C_FREE, C_CONNECTING, C_SENDING, C_HEADERS, C_BODY, C_DONE };

struct pl_conn {
	int fd;
	int state;
	int status;            /* HTTP status of the current answer */
	int ready;             /* got the header block of its first answer */
	int close_after;       /* server said Connection: close */
	int chunked;
	long long clen;        /* Content-Length, -1 none */
	long long got;         /* body bytes of the current answer */
	size_t hlen;
	char *hdr;             /* PL_HDR_MAX bytes while reading headers */
	size_t sent, reqlen;
	char req[PL_REQ_MAX];
	char carry[PL_CARRY + 1];
	char tail[8];          /* last body bytes: chunked end */
	char etag[PL_TAG_MAX], lastmod[PL_TAG_MAX];
	int idx;               /* subscriber index, -1 for a publisher */
	const struct pl_target *t;  /* where it connects */
};

/* A URL split into what a connection needs. */
struct pl_target {
	struct sockaddr_in addr;
	char host[96];
	char path[PL_URL_MAX];
};

static struct pl_target pl_urls[PL_URLS_MAX];
static int pl_nurls;
static int pl_ep = -1;
static long pl_run;
static int pl_kind = K_SSE;
static const char *pl_xhdr, *pl_accept;
static int pl_npub = 150;
static int64_t *pl_lat;       /* [sub * npub + seq-1]: ns, 0 = none */
static size_t pl_got, pl_want; /* pairs recorded, pairs there are */
static int pl_all_in;         /* pl_got reached pl_want: drain no more */
static int pl_verbose;
static int pl_fail_connect, pl_fail_status, pl_fail_closed;
static int pl_last_errno;

static void
pl_die(const char *what, const char *why)
{
	fprintf(stderr, "pushload: %s: %s\n", what, why);
	exit(PL_EX_SYSTEM);
}

static void
pl_usage(void)
{
	fprintf(stderr, "usage: pushload lat|rate|hold [options] (see the "
	    "top of pushload.c)\n");
	exit(PL_EX_USAGE);
}

static int64_t
pl_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * PL_NS + ts.tv_nsec;
}

static long
pl_num(const char *s, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		pl_usage();
	return v;
}

/* Split http://127.x.y.z:PORT/path into t. */
static void
pl_parse_url(const char *url, struct pl_target *t)
{
	const char *h, *c, *s;
	char host[64];
	long port = 80;

	if (strncmp(url, "http://", 7) != 0)
		pl_die(url, "not an http:// URL");
	h = url + 7;
	s = strchr(h, '/');
	c = strchr(h, ':');
	if (s == NULL)
		s = h + strlen(h);
	if (c != NULL && c < s) {
		port = strtol(c + 1, NULL, 10);
	} else
		c = s;
	if ((size_t)(c - h) >= sizeof(host))
		pl_die(url, "host too long");
	memcpy(host, h, (size_t)(c - h));
	host[c - h] = '\0';
	memset(&t->addr, 0, sizeof(t->addr));
	t->addr.sin_family = AF_INET;
	t->addr.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &t->addr.sin_addr) != 1 ||
	    (ntohl(t->addr.sin_addr.s_addr) >> 24) != 127)
		pl_die(url, "the host must be a 127.x.y.z address");
	snprintf(t->host, sizeof(t->host), "%s:%ld", host, port);
	if (snprintf(t->path, sizeof(t->path), "%s", *s != '\0' ? s : "/")
	    >= (int)sizeof(t->path))
		pl_die(url, "too long");
}

/* Start a non-blocking connect; the request is in c->req. */
static int
pl_connect(struct pl_conn *c)
{
	struct epoll_event ev;
	int one = 1;

	if ((c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) < 0) {
		pl_last_errno = errno;
		pl_fail_connect++;
		c->state = C_DONE;
		return -1;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (const struct sockaddr *)&c->t->addr,
	    sizeof(c->t->addr)) != 0 &&
	    errno != EINPROGRESS) {
		pl_last_errno = errno;
		pl_fail_connect++;
		close(c->fd);
		c->fd = -1;
		c->state = C_DONE;
		return -1;
	}
	c->state = C_SENDING;
	c->sent = 0;
	c->hlen = 0;
	c->status = 0;
	ev.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP;
	ev.data.ptr = c;
	if (epoll_ctl(pl_ep, EPOLL_CTL_ADD, c->fd, &ev) != 0)
		pl_die("epoll_ctl", strerror(errno));
	return 0;
}

static void
pl_close(struct pl_conn *c)
{
	if (c->fd >= 0) {
		epoll_ctl(pl_ep, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
	}
	c->fd = -1;
	c->state = C_DONE;
	free(c->hdr);
	c->hdr = NULL;
}

/* The GET of a subscriber (poll: with the cursor headers). */
static void
pl_sub_request(struct pl_conn *c)
{
	char extra[3 * PL_TAG_MAX + 64] = "";
	size_t n = 0;

	if (pl_kind == K_POLL && c->etag[0] != '\0')
		n += (size_t)snprintf(extra + n, sizeof(extra) - n,
		    "If-None-Match: %s\r\n", c->etag);
	if (pl_kind == K_POLL && c->lastmod[0] != '\0')
		n += (size_t)snprintf(extra + n, sizeof(extra) - n,
		    "If-Modified-Since: %s\r\n", c->lastmod);
	c->reqlen = (size_t)snprintf(c->req, sizeof(c->req),
	    "GET %s HTTP/1.1\r\nHost: %s\r\n%s%s%s%s\r\n", c->t->path,
	    c->t->host,
	    pl_accept != NULL ? pl_accept : "", pl_accept != NULL ? "\r\n" : "",
	    extra, pl_kind == K_POLL ? "" : "Cache-Control: no-cache\r\n");
	c->sent = 0;
}

/* A POST of body to the connection's URL. */
static void
pl_post_request(struct pl_conn *c, const char *body)
{
	const char *path = c->t->path;

	c->reqlen = (size_t)snprintf(c->req, sizeof(c->req),
	    "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: text/plain\r\n"
	    "%s%sContent-Length: %zu\r\n\r\n%s", path, c->t->host,
	    pl_xhdr != NULL ? pl_xhdr : "", pl_xhdr != NULL ? "\r\n" : "",
	    strlen(body), body);
	if (c->reqlen >= sizeof(c->req))
		pl_die(path, "request too long");
	c->sent = 0;
}

/* Copy a header's value (name with the colon, lower case) from the
 * header block into out. */
static void
pl_header(const char *h, const char *name, char *out, size_t outlen)
{
	const char *p = h, *e;
	size_t nl = strlen(name), n;

	out[0] = '\0';
	while ((p = strchr(p, '\n')) != NULL) {
		p++;
		if (strncasecmp(p, name, nl) != 0)
			continue;
		p += nl;
		while (*p == ' ')
			p++;
		e = strpbrk(p, "\r\n");
		n = e != NULL ? (size_t)(e - p) : strlen(p);
		if (n >= outlen)
			n = outlen - 1;
		memcpy(out, p, n);
		out[n] = '\0';
		return;
	}
}

/* Record every complete "PL:run:seq:ns." token in the bytes; keep an
 * incomplete one's start in the carry. */
static void
pl_scan(struct pl_conn *c, const char *b, size_t n, int64_t now)
{
	char tmp[PL_CARRY + PL_BUF];
	const char *p, *end;
	size_t len = 0;
	long run, seq;
	long long ns;
	char *q;

	if (c->idx < 0)
		return;
	len = strlen(c->carry);
	memcpy(tmp, c->carry, len);
	if (n > sizeof(tmp) - len - 1)
		n = sizeof(tmp) - len - 1;
	memcpy(tmp + len, b, n);
	len += n;
	tmp[len] = '\0';
	c->carry[0] = '\0';
	p = tmp;
	end = tmp + len;
	while ((p = memmem(p, (size_t)(end - p), "PL:", 3)) != NULL) {
		if (memchr(p, '.', (size_t)(end - p)) == NULL) {
			if ((size_t)(end - p) <= PL_CARRY) {
				memcpy(c->carry, p, (size_t)(end - p));
				c->carry[end - p] = '\0';
			}
			break;
		}
		run = strtol(p + 3, &q, 10);
		if (*q == ':' && run == pl_run) {
			seq = strtol(q + 1, &q, 10);
			if (*q == ':') {
				ns = strtoll(q + 1, &q, 10);
				if (*q == '.' && seq >= 1 && seq <= pl_npub &&
				    pl_lat[(size_t)c->idx * pl_npub + seq - 1]
				    == 0) {
					pl_lat[(size_t)c->idx * pl_npub + seq -
					    1] = now - ns > 0 ? now - ns : 1;
					if (++pl_got == pl_want)
						pl_all_in = 1;
				}
			}
		}
		p += 3;
	}
	/* A token may also be split inside "PL:" itself. */
	if (c->carry[0] == '\0' && len >= 2) {
		if (tmp[len - 1] == 'P')
			strcpy(c->carry, "P");
		else if (tmp[len - 2] == 'P' && tmp[len - 1] == 'L')
			strcpy(c->carry, "PL");
	}
}

/* 1 if the answer's body is complete (poll and publish answers): its
 * Content-Length reached, or a chunked body's last chunk "0\r\n\r\n"
 * seen at its end (the last bytes are kept across reads). */
static int
pl_body_done(struct pl_conn *c, const char *b, size_t n)
{
	char t[sizeof(c->tail) + PL_BUF];
	size_t k = strlen(c->tail);

	c->got += (long long)n;
	if (c->clen >= 0)
		return c->got >= c->clen;
	if (!c->chunked)
		return 0;  /* ends at close */
	memcpy(t, c->tail, k);
	memcpy(t + k, b, n);
	k += n;
	if (k >= 5 && memcmp(t + k - 5, "0\r\n\r\n", 5) == 0) {
		c->tail[0] = '\0';
		return 1;
	}
	n = k < sizeof(c->tail) - 1 ? k : sizeof(c->tail) - 1;
	memcpy(c->tail, t + k - n, n);
	c->tail[n] = '\0';
	return 0;
}

/* Parse the header block; returns bytes of body that followed it in
 * c->hdr (moved to the front), or -1 if incomplete. */
static long
pl_headers(struct pl_conn *c)
{
	char v[PL_TAG_MAX];
	char *e;
	size_t hl;

	c->hdr[c->hlen] = '\0';
	if ((e = strstr(c->hdr, "\r\n\r\n")) == NULL)
		return -1;
	*e = '\0';
	hl = (size_t)(e - c->hdr) + 4;
	c->status = 0;
	if (strncmp(c->hdr, "HTTP/1.", 7) == 0)
		c->status = atoi(c->hdr + 9);
	pl_header(c->hdr, "content-length:", v, sizeof(v));
	c->clen = v[0] != '\0' ? atoll(v) : -1;
	pl_header(c->hdr, "transfer-encoding:", v, sizeof(v));
	c->chunked = strcasestr(v, "chunked") != NULL;
	pl_header(c->hdr, "connection:", v, sizeof(v));
	c->close_after = strcasestr(v, "close") != NULL;
	if (c->idx >= 0 && pl_kind == K_POLL) {
		pl_header(c->hdr, "etag:", v, sizeof(v));
		if (v[0] != '\0')
			snprintf(c->etag, sizeof(c->etag), "%s", v);
		pl_header(c->hdr, "last-modified:", v, sizeof(v));
		if (v[0] != '\0')
			snprintf(c->lastmod, sizeof(c->lastmod), "%s", v);
	}
	c->got = 0;
	memmove(c->hdr, c->hdr + hl, c->hlen - hl);
	return (long)(c->hlen - hl);
}

/*
 * One readiness event.  done_cb is called when an answer with a length
 * (poll, publish) is complete; it may queue the next request.  Returns 1
 * when the connection closed.
 */
typedef void (*pl_done_fn)(struct pl_conn *);

static int
pl_event(struct pl_conn *c, uint32_t evs, pl_done_fn done_cb)
{
	char buf[PL_BUF];
	struct epoll_event ev;
	ssize_t n;
	long body;
	int64_t now;

	if (c->state == C_SENDING && (evs & (EPOLLOUT | EPOLLERR))) {
		while (c->sent < c->reqlen) {
			n = send(c->fd, c->req + c->sent, c->reqlen - c->sent,
			    MSG_NOSIGNAL);
			if (n < 0) {
				if (errno == EAGAIN)
					return 0;
				pl_last_errno = errno;
				if (!c->ready)
					pl_fail_connect++;
				else
					pl_fail_closed++;
				pl_close(c);
				return 1;
			}
			c->sent += (size_t)n;
		}
		c->state = C_HEADERS;
		c->hlen = 0;
		if (c->hdr == NULL && (c->hdr = malloc(PL_HDR_MAX + 1)) ==
		    NULL)
			pl_die("memory", strerror(ENOMEM));
		ev.events = EPOLLIN | EPOLLRDHUP;
		ev.data.ptr = c;
		epoll_ctl(pl_ep, EPOLL_CTL_MOD, c->fd, &ev);
	}
	if (!(evs & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
		return 0;
	for (;;) {
		if (c->state == C_HEADERS) {
			n = recv(c->fd, c->hdr + c->hlen, PL_HDR_MAX - c->hlen,
			    0);
		} else
			n = recv(c->fd, buf, sizeof(buf), 0);
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n <= 0) {
			if (n < 0)
				pl_last_errno = errno;
			if (c->state == C_BODY && c->clen < 0 && !c->chunked &&
			    done_cb != NULL) {
				c->state = C_DONE;
				close(c->fd);
				epoll_ctl(pl_ep, EPOLL_CTL_DEL, c->fd, NULL);
				c->fd = -1;
				done_cb(c);
				return 1;
			}
			if (!c->ready)
				pl_fail_connect++;
			else if (done_cb == NULL)
				pl_fail_closed++;
			pl_close(c);
			if (done_cb != NULL && c->ready)
				done_cb(c);
			return 1;
		}
		now = pl_now();
		if (c->state == C_HEADERS) {
			c->hlen += (size_t)n;
			if ((body = pl_headers(c)) < 0) {
				if (c->hlen >= PL_HDR_MAX) {
					pl_fail_status++;
					pl_close(c);
					return 1;
				}
				continue;
			}
			if (!c->ready && (c->status < 200 || c->status > 299)
			    && !(pl_kind == K_POLL && c->status == 304)) {
				if (pl_verbose)
					fprintf(stderr, "pushload: status %d\n",
					    c->status);
				pl_fail_status++;
				pl_close(c);
				return 1;
			}
			c->ready = 1;
			c->state = C_BODY;
			c->carry[0] = '\0';
			c->tail[0] = '\0';
			memcpy(buf, c->hdr, (size_t)body);
			n = body;
			if (n == 0 && !(c->clen == 0 && done_cb != NULL))
				continue;
		}
		pl_scan(c, buf, (size_t)n, now);
		if (done_cb != NULL && pl_body_done(c, buf, (size_t)n)) {
			c->state = C_DONE;
			if (c->close_after) {
				pl_close(c);
				c->ready = 1;
			}
			done_cb(c);
			if (c->fd < 0)
				return 1;
			if (c->state != C_SENDING)
				return 0;
		}
	}
}

/* After a complete poll answer: ask again at once. */
static void
pl_poll_again(struct pl_conn *c)
{
	struct epoll_event ev;

	pl_sub_request(c);
	if (c->fd < 0) {
		pl_connect(c);
		return;
	}
	c->state = C_SENDING;
	ev.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP;
	ev.data.ptr = c;
	epoll_ctl(pl_ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* The publisher connection's answer is in: it may send the next one. */
static int pl_pub_busy;
static int pl_pub_bad;

static void
pl_pub_done(struct pl_conn *c)
{
	if (c->status < 200 || c->status > 299)
		pl_pub_bad++;
	pl_pub_busy = 0;
	c->ready = 1;
}

static int
pl_cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static double
pl_pct(int64_t *v, size_t n, int p)
{
	size_t k;

	if (n == 0)
		return -1;
	k = (n * (size_t)p + 99) / 100;
	if (k > 0)
		k--;
	return (double)v[k] / 1e6;
}

/* Run the loop for at most ms (or until *stop), handling events. */
static void
pl_loop(int64_t ms, pl_done_fn done_cb, int *stop)
{
	struct epoll_event evs[PL_EVENTS];
	int64_t end = pl_now() + ms * 1000000, left;
	int i, n;

	while ((left = end - pl_now()) > 0 && (stop == NULL || !*stop)) {
		n = epoll_wait(pl_ep, evs, PL_EVENTS, (int)(left / 1000000) +
		    1);
		for (i = 0; i < n; i++) {
			struct pl_conn *c = evs[i].data.ptr;

			if (c->idx < 0)
				pl_event(c, evs[i].events, pl_pub_done);
			else
				pl_event(c, evs[i].events, done_cb);
		}
	}
}

/*
 * Open n subscribers; returns how many answered.  New connections are
 * started PL_BATCH at a time while fewer than PL_PENDING_MAX wait for
 * their answer: clients arriving as fast as the server answers them, not
 * a flood that only measures the depth of its accept queues.
 */
static int
pl_open_subs(struct pl_conn *subs, int n)
{
	int64_t end = pl_now() + PL_READY_S * PL_NS;
	int i = 0, ready, pending = 0, started;

	for (;;) {
		for (started = 0; i < n && started < PL_BATCH &&
		    pending + started < PL_PENDING_MAX; i++, started++) {
			subs[i].fd = -1;
			subs[i].idx = i;
			subs[i].t = &pl_urls[i % pl_nurls];
			pl_sub_request(&subs[i]);
			pl_connect(&subs[i]);
		}
		pl_loop(5, pl_kind == K_POLL ? pl_poll_again : NULL, NULL);
		ready = pending = 0;
		for (int k = 0; k < i; k++) {
			if (subs[k].ready)
				ready++;
			else if (subs[k].state != C_DONE &&
			    !(pl_kind == K_POLL && subs[k].state == C_HEADERS))
				pending++;
		}
		if (i == n && pending == 0)
			return pl_kind == K_POLL ? n - pl_fail_connect -
			    pl_fail_status : ready;
		if (pl_now() > end)
			return ready;
	}
}

static int
pl_lat_main(const char *pub, int n, int gap_ms)
{
	struct pl_conn *subs, pubc;
	struct pl_target pt;
	struct pushcgi *capi = NULL;
	char body[128], err[256], db[PL_URL_MAX], chan[256];
	const char *colon;
	int64_t t, next, *all;
	size_t nall = 0, missed = 0;
	int k, i, ready;

	memset(&pubc, 0, sizeof(pubc));
	pubc.fd = -1;
	pubc.idx = -1;
	pubc.t = &pt;
	if (strncmp(pub, "capi:", 5) == 0) {
		colon = strrchr(pub + 5, ':');
		if (colon == NULL || (size_t)(colon - pub - 5) >= sizeof(db))
			pl_usage();
		memcpy(db, pub + 5, (size_t)(colon - pub - 5));
		db[colon - pub - 5] = '\0';
		snprintf(chan, sizeof(chan), "%s", colon + 1);
		if ((capi = pushcgi_open(db, err, sizeof(err))) == NULL)
			pl_die(db, err);
	}
	if ((subs = calloc((size_t)n, sizeof(*subs))) == NULL ||
	    (pl_lat = calloc((size_t)n * pl_npub, sizeof(int64_t))) == NULL ||
	    (all = calloc((size_t)n * pl_npub, sizeof(int64_t))) == NULL)
		pl_die("memory", strerror(ENOMEM));
	pl_want = (size_t)n * pl_npub;
	ready = pl_open_subs(subs, n);
	pl_loop(PL_SETTLE_MS + n, pl_kind == K_POLL ? pl_poll_again : NULL,
	    NULL);
	if (capi == NULL)
		pl_parse_url(pub, &pt);
	next = pl_now();
	for (k = 1; k <= pl_npub; k++) {
		while (pl_pub_busy)
			pl_loop(1, pl_kind == K_POLL ? pl_poll_again : NULL,
			    NULL);
		/* When it was due, not now (see the top). */
		t = next;
		snprintf(body, sizeof(body), "PL:%ld:%d:%lld.", pl_run, k,
		    (long long)t);
		if (capi != NULL) {
			if (pushcgi_publish(capi, chan, "text/plain", NULL,
			    body, strlen(body), NULL) != 0)
				pl_die("publish", pushcgi_error(capi));
		} else {
			pl_post_request(&pubc, body);
			pl_pub_busy = 1;
			if (pubc.fd < 0) {
				pubc.ready = 0;
				pl_connect(&pubc);
			} else {
				struct epoll_event ev;

				pubc.state = C_SENDING;
				ev.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP;
				ev.data.ptr = &pubc;
				epoll_ctl(pl_ep, EPOLL_CTL_MOD, pubc.fd, &ev);
			}
		}
		next += (int64_t)gap_ms * 1000000;
		if (next > pl_now())
			pl_loop((next - pl_now()) / 1000000,
			    pl_kind == K_POLL ? pl_poll_again : NULL, NULL);
	}
	/* The drain ends early once every pair has arrived. */
	pl_loop(PL_DRAIN_MS, pl_kind == K_POLL ? pl_poll_again : NULL,
	    &pl_all_in);
	for (i = 0; i < n; i++)
		for (k = 0; k < pl_npub; k++) {
			t = pl_lat[(size_t)i * pl_npub + k];
			if (t > 0)
				all[nall++] = t;
			else
				missed++;
		}
	qsort(all, nall, sizeof(*all), pl_cmp64);
	printf("lat subs=%d ready=%d publishes=%d pairs=%zu missed=%zu "
	    "p50_ms=%.2f p99_ms=%.2f max_ms=%.2f bad_publish=%d "
	    "closed=%d failed=%d\n", n, ready, pl_npub, nall, missed,
	    pl_pct(all, nall, 50), pl_pct(all, nall, 99),
	    nall > 0 ? (double)all[nall - 1] / 1e6 : -1.0, pl_pub_bad,
	    pl_fail_closed, pl_fail_connect + pl_fail_status);
	if (pl_nurls > 1) {
		/* The same figures for each URL's own subscribers. */
		printf("per_url");
		for (int u = 0; u < pl_nurls; u++) {
			size_t m = 0;

			for (i = u; i < n; i += pl_nurls)
				for (k = 0; k < pl_npub; k++)
					if ((t = pl_lat[(size_t)i * pl_npub +
					    k]) > 0)
						all[m++] = t;
			qsort(all, m, sizeof(*all), pl_cmp64);
			printf(" %s=%.2f/%.2f", pl_urls[u].host,
			    pl_pct(all, m, 50), pl_pct(all, m, 99));
		}
		printf("\n");
	}
	for (i = 0; i < n; i++)
		pl_close(&subs[i]);
	pl_close(&pubc);
	pushcgi_close(capi);
	free(subs);
	free(all);
	free(pl_lat);
	return 0;
}

/* rate: the connections, each with one request in flight. */
static struct pl_conn *pl_rconns;
static long pl_rsent, pl_rdone, pl_rtotal, pl_rbad;
static struct pl_target pl_rt;

static void
pl_rate_next(struct pl_conn *c)
{
	char body[64];
	struct epoll_event ev;

	if (c->state == C_DONE && c->status != 0) {
		pl_rdone++;
		if (c->status < 200 || c->status > 299)
			pl_rbad++;
		c->status = 0;
	}
	if (pl_rsent >= pl_rtotal)
		return;
	pl_rsent++;
	snprintf(body, sizeof(body), "rate %ld", pl_rsent);
	pl_post_request(c, body);
	if (c->fd < 0) {
		pl_connect(c);
		return;
	}
	c->state = C_SENDING;
	ev.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP;
	ev.data.ptr = c;
	epoll_ctl(pl_ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static int
pl_rate_main(const char *url, int conns, long total)
{
	struct epoll_event evs[PL_EVENTS];
	int64_t t0, end;
	int i, n;

	pl_parse_url(url, &pl_rt);
	pl_rtotal = total;
	if ((pl_rconns = calloc((size_t)conns, sizeof(*pl_rconns))) == NULL)
		pl_die("memory", strerror(ENOMEM));
	t0 = pl_now();
	end = t0 + PL_RATE_S * PL_NS;
	for (i = 0; i < conns; i++) {
		pl_rconns[i].fd = -1;
		pl_rconns[i].idx = -2;
		pl_rconns[i].t = &pl_rt;
		pl_rate_next(&pl_rconns[i]);
	}
	while (pl_rdone < pl_rtotal && pl_now() < end) {
		n = epoll_wait(pl_ep, evs, PL_EVENTS, 100);
		for (i = 0; i < n; i++) {
			struct pl_conn *c = evs[i].data.ptr;

			if (pl_event(c, evs[i].events, pl_rate_next) &&
			    c->fd < 0 && c->state == C_DONE && c->status == 0)
				pl_rate_next(c);
		}
	}
	printf("rate conns=%d requests=%ld rps=%.0f bad=%ld\n", conns,
	    pl_rdone, (double)pl_rdone / ((double)(pl_now() - t0) / 1e9),
	    pl_rbad);
	return 0;
}

static int
pl_hold_main(int n, int seconds, const char *file)
{
	struct pl_conn *subs;
	FILE *fp;
	int ready, open_now = 0, i;

	if ((subs = calloc((size_t)n, sizeof(*subs))) == NULL)
		pl_die("memory", strerror(ENOMEM));
	ready = pl_open_subs(subs, n);
	pl_loop(PL_SETTLE_MS, NULL, NULL);
	for (i = 0; i < n; i++)
		open_now += subs[i].fd >= 0 && subs[i].ready;
	printf("hold subs=%d ready=%d open=%d connect_failed=%d "
	    "status_failed=%d closed=%d last_error=\"%s\"\n", n, ready,
	    open_now, pl_fail_connect, pl_fail_status, pl_fail_closed,
	    pl_last_errno != 0 ? strerror(pl_last_errno) : "none");
	fflush(stdout);
	if (file != NULL && (fp = fopen(file, "w")) != NULL) {
		fprintf(fp, "ready %d\n", open_now);
		fclose(fp);
	}
	pl_loop((int64_t)seconds * 1000, NULL, NULL);
	open_now = 0;
	for (i = 0; i < n; i++)
		open_now += subs[i].fd >= 0 && subs[i].ready;
	printf("hold after=%ds open=%d closed=%d\n", seconds, open_now,
	    pl_fail_closed);
	for (i = 0; i < n; i++)
		pl_close(&subs[i]);
	free(subs);
	return 0;
}

int
main(int argc, char **argv)
{
	const char *pub = NULL, *file = NULL, *mode;
	int ch, n = 100, gap = 50, conns = 1, seconds = 10;
	long total = 1000;

	if (argc < 2)
		pl_usage();
	mode = argv[1];
	optind = 2;
	while ((ch = getopt(argc, argv, "u:k:n:p:P:g:H:A:c:N:s:f:v")) != -1) {
		switch (ch) {
		case 'u':
			if (pl_nurls == PL_URLS_MAX)
				pl_usage();
			pl_parse_url(optarg, &pl_urls[pl_nurls++]);
			break;
		case 'k':
			if (strcmp(optarg, "sse") == 0)
				pl_kind = K_SSE;
			else if (strcmp(optarg, "mixed") == 0)
				pl_kind = K_MIXED;
			else if (strcmp(optarg, "poll") == 0)
				pl_kind = K_POLL;
			else
				pl_usage();
			break;
		case 'n': n = (int)pl_num(optarg, 1, PL_CONNS_MAX); break;
		case 'p': pub = optarg; break;
		case 'P': pl_npub = (int)pl_num(optarg, 1, PL_PUBS_MAX); break;
		case 'g': gap = (int)pl_num(optarg, 1, 10000); break;
		case 'H': pl_xhdr = optarg; break;
		case 'A': pl_accept = optarg; break;
		case 'c': conns = (int)pl_num(optarg, 1, 1000); break;
		case 'N': total = pl_num(optarg, 1, 10000000); break;
		case 's': seconds = (int)pl_num(optarg, 0, PL_HOLD_MAX_S);
			break;
		case 'f': file = optarg; break;
		case 'v': pl_verbose = 1; break;
		default: pl_usage();
		}
	}
	signal(SIGPIPE, SIG_IGN);
	pl_run = (long)(getpid() ^ (pl_now() & 0xffff));
	if ((pl_ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
		pl_die("epoll", strerror(errno));
	if (strcmp(mode, "lat") == 0 && pl_nurls > 0 && pub != NULL)
		return pl_lat_main(pub, n, gap);
	if (strcmp(mode, "rate") == 0 && pub != NULL)
		return pl_rate_main(pub, conns, total);
	if (strcmp(mode, "hold") == 0 && pl_nurls > 0)
		return pl_hold_main(n, seconds, file);
	pl_usage();
	return PL_EX_USAGE;
}
