/*
 * soak: the clients of the soak test (tests/e2e/soak.sh).  Loopback only
 * (the URL's host must be 127.x.y.z).
 *
 *	soak sub -u URL -n N [-q NOW] -o OUT -r READY -t TARGET [-T SECONDS]
 *	         [-b BREAKS]
 *	soak pub -u URL [-H HEADER] -g MS -s SECONDS -o OUT [-p PREFIX]
 *
 * sub: N SSE clients of URL (a push-stream URL with its channel= and
 *   format=sse; "&heartbeat=HB" is read from it for the watchdog) held by
 *   one process in one poll() loop.  The first NOW clients open their
 *   first stream without a cursor (they start with what is published
 *   from then on: the id: line of their "stream" event is their cursor),
 *   the others with since=0.  Each behaves as an EventSource does: an
 *   event counts once its blank line has come, an id: line sets the
 *   cursor, and whenever the stream breaks (the connection closes or
 *   fails, the answer is not a 200, or nothing at all arrives for
 *   2 * HB + 2 seconds, push.js's watchdog: a "stall") it connects again
 *   after a backoff (SK_BACKOFF_MIN_MS doubling up to SK_BACKOFF_MAX_MS,
 *   with jitter) with Last-Event-ID: the last id it has.  Once every
 *   client has had its first "stream" event, the file READY is
 *   written.  With -b, the file BREAKS holds the fewest breaks (below)
 *   any client has had so far, rewritten whenever that number grows, so
 *   that the soak test can go on breaking streams until each one has
 *   been broken often enough.  Once the file TARGET exists and holds an id M, the run ends
 *   when every client's cursor is at M or beyond (after SK_LINGER_MS more,
 *   so that a late duplicate shows), or SECONDS (-T, default SK_DRAIN_S)
 *   after M was read otherwise; in any case SK_RUN_MAX_S after the
 *   start.  OUT gets, per client:
 *
 *	c I start=S last=L conns=K breaks=B ends=E stalls=T gaps=G noid=X
 *	m I ID HASH      one line per message, in the order received
 *	g I ID           one line per gap event
 *	s I STATE@T/Q    its first stalls: the state (connecting, sending,
 *	                 headers, answered: headers but no body byte yet,
 *	                 body), T ms after the start of the run, Q ms after
 *	                 the last byte (or the start of the connection)
 *
 *   S: the cursor of its first stream (0 for since=0, -1 if it never had
 *   one); breaks: streams that broke after their 200, ends: of those,
 *   streams the server ended cleanly (the last chunk); HASH: FNV-1a 64
 *   (hex) of the message's data as published (";base64" events decoded).
 *   stdout gets one summary line: sub clients=N ready=R caught_up=C
 *   conns=... breaks=... stalls=... refused=... status=CODE:COUNT,...
 *   Exit 0 when every client caught up, 1 otherwise.  With SOAK_TRACE set
 *   in the environment, stderr gets a line per connection step and read:
 *   "T MS CLIENT LOCALPORT sent|hdr|body|eof|err|stall BYTES".
 *
 * pub: POST "PREFIX SEQ" (SEQ = 1, 2, ...) to URL every MS milliseconds
 *   for SECONDS, on one keep-alive connection (a new one when it fails),
 *   with HEADER (e.g. the Authorization line).  Odd SEQs add
 *   "&event=soak.http".  Each publish answered 201 with an X-Push-Id
 *   header appends "ID<TAB>SEQ" to OUT at once (one write, so that a
 *   SIGKILL loses at most the request in flight); any other outcome is
 *   counted and the next SEQ follows after SK_BACKOFF_MIN_MS.  stdout:
 *   pub ok=K failed=F.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SK_EX_USAGE        100
#define SK_EX_SYSTEM       111
#define SK_CLIENTS_MAX     2000
#define SK_URL_MAX         1024
#define SK_REQ_MAX         2048
#define SK_HDR_MAX         8192     /* response header block */
#define SK_LINE_MAX        (64 * 1024) /* one SSE line */
#define SK_DATA_MAX        (64 * 1024) /* one event's data */
#define SK_EVENT_MAX       64
#define SK_CHUNK_LINE_MAX  64
#define SK_BUF             16384
#define SK_BACKOFF_MIN_MS  100
#define SK_BACKOFF_MAX_MS  2000
#define SK_BATCH           20       /* first connects per loop round */
#define SK_HB_DEF_S        20       /* heartbeat when the URL names none */
#define SK_HB_MAX_S        3600
#define SK_HEADERS_MS      10000    /* for the answer's header block */
#define SK_LINGER_MS       1000
#define SK_DRAIN_S         20       /* to catch up once TARGET is read */
#define SK_RUN_MAX_S       1800     /* the whole run, whatever happens */
#define SK_TARGET_POLL_MS  200
#define SK_STATUS_MAX      600
#define SK_STALLS_KEPT     8        /* stalls described per client */
#define SK_TRACE_BYTES     80       /* bytes of a read shown by SOAK_TRACE */
#define SK_PUB_IO_S        10       /* a publish's send and answer */
#define SK_PREFIX_MAX      200
#define SK_NS              1000000000LL

enum { S_WAIT, S_CONNECTING, S_SENDING, S_HEADERS, S_BODY };
enum { CH_SIZE, CH_DATA, CH_DATA_END, CH_TRAILER, CH_DONE };

struct sk_msg {
	int64_t id;
	uint64_t hash;
};

struct sk_client {
	long id;               /* its number, 0 to N - 1 */
	int fd;
	int state;
	int64_t at;            /* S_WAIT: when to connect; else last byte */
	int64_t last_id;       /* the cursor, -1 none */
	int64_t start;         /* cursor of the first stream, -1 none yet */
	int nocursor;          /* first stream from now on */
	int ready;             /* had its first stream event */
	int backoff_ms;
	size_t sent, reqlen;
	char req[SK_REQ_MAX];
	char hdr[SK_HDR_MAX + 1];
	size_t hlen;
	size_t bodylen;        /* body bytes of this connection */
	int chunked;
	int cstate;            /* chunked decoder */
	long long crem;
	char cline[SK_CHUNK_LINE_MAX + 1];
	size_t cllen;
	char *line;            /* SSE line being read (cut at SK_LINE_MAX) */
	size_t llen;
	char *data;            /* the event's data */
	size_t dlen;
	int has_data, has_id;
	int64_t ev_id;
	char ev[SK_EVENT_MAX + 16];
	struct sk_msg *got;
	size_t ngot, capgot;
	int64_t *gaps;
	size_t ngaps, capgaps;
	char stallv[SK_STALLS_KEPT][48]; /* the first stalls: when, state */
	long conns, breaks, ends, stalls, noid, refused;
};

static struct sockaddr_in sk_addr;
static char sk_host[96], sk_path[SK_URL_MAX];
static long sk_status[SK_STATUS_MAX];
static int sk_stall_ms;
static int64_t sk_t0;
static int sk_tracing;                /* SOAK_TRACE is set */

static void sk_usage(void);
static void sk_die(const char *, const char *);
static int64_t sk_now(void);
static long sk_num(const char *, long, long);
static void sk_parse_url(const char *);
static uint64_t sk_fnv(const unsigned char *, size_t);
static size_t sk_unbase64(char *, size_t);
static void sk_dispatch(struct sk_client *);
static void sk_sse_line(struct sk_client *, char *, size_t);
static void sk_sse_feed(struct sk_client *, const char *, size_t);
static int sk_body(struct sk_client *, const char *, size_t);
static void sk_break(struct sk_client *, int64_t, int);
static void sk_stall(struct sk_client *, int64_t);
static void sk_trace(struct sk_client *, int64_t, const char *, const char *,
    size_t);
static void sk_connect(struct sk_client *, int64_t);
static int sk_headers(struct sk_client *, int64_t);
static void sk_event(struct sk_client *, short, int64_t);
static int64_t sk_target(const char *);
static int sk_pub_connect(void);
static int sk_pub_one(int *, const char *, size_t, long long *);
static int sk_sub_main(const char *, int, int, const char *, const char *,
    const char *, const char *, int);
static int sk_pub_main(const char *, const char *, int, int, const char *,
    const char *);

static void
sk_usage(void)
{
	fprintf(stderr, "usage: soak sub|pub [options] (see the top of "
	    "tests/e2e/soak.c)\n");
	exit(SK_EX_USAGE);
}

static void
sk_die(const char *what, const char *why)
{
	fprintf(stderr, "soak: %s: %s\n", what, why);
	exit(SK_EX_SYSTEM);
}

static int64_t
sk_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * SK_NS + ts.tv_nsec;
}

static long
sk_num(const char *s, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		sk_usage();
	return v;
}

/* Split http://127.x.y.z:PORT/path into sk_addr, sk_host and sk_path. */
static void
sk_parse_url(const char *url)
{
	const char *h, *c, *s;
	char host[64];
	long port = 80;

	if (strncmp(url, "http://", 7) != 0)
		sk_die(url, "not an http:// URL");
	h = url + 7;
	s = strchr(h, '/');
	c = strchr(h, ':');
	if (s == NULL)
		s = h + strlen(h);
	if (c != NULL && c < s)
		port = strtol(c + 1, NULL, 10);
	else
		c = s;
	if ((size_t)(c - h) >= sizeof(host) || port < 1 || port > 65535)
		sk_die(url, "bad host or port");
	memcpy(host, h, (size_t)(c - h));
	host[c - h] = '\0';
	memset(&sk_addr, 0, sizeof(sk_addr));
	sk_addr.sin_family = AF_INET;
	sk_addr.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &sk_addr.sin_addr) != 1 ||
	    (ntohl(sk_addr.sin_addr.s_addr) >> 24) != 127)
		sk_die(url, "the host must be a 127.x.y.z address");
	snprintf(sk_host, sizeof(sk_host), "%s:%ld", host, port);
	if (snprintf(sk_path, sizeof(sk_path), "%s", *s != '\0' ? s : "/") >=
	    (int)sizeof(sk_path))
		sk_die(url, "too long");
}

/* FNV-1a, 64 bits: tests/e2e/soak.sh computes the same from the log. */
static uint64_t
sk_fnv(const unsigned char *p, size_t n)
{
	uint64_t h = 14695981039346656037ULL;

	while (n-- > 0) {
		h ^= *p++;
		h *= 1099511628211ULL;
	}
	return h;
}

/* Decode base64 in place; returns the decoded length (bad characters are
 * skipped: a wrong decoding shows as a wrong hash). */
static size_t
sk_unbase64(char *s, size_t n)
{
	static const char a[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	uint32_t acc = 0;
	size_t i, o = 0;
	int bits = 0;
	const char *p;

	for (i = 0; i < n; i++) {
		if (s[i] == '=' || s[i] == '\0' ||
		    (p = strchr(a, s[i])) == NULL)
			continue;
		acc = (acc << 6) | (uint32_t)(p - a);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			s[o++] = (char)((acc >> bits) & 0xff);
		}
	}
	return o;
}

/* The blank line: the event is complete.  "stream" names the stream (its
 * id: line, if any, is the cursor); "gap" reports pruned messages; any
 * other event is a message. */
static void
sk_dispatch(struct sk_client *c)
{
	size_t n = c->dlen, el;

	if (c->has_data && n > 0 && c->data[n - 1] == '\n')
		n--;
	if (c->has_id)
		c->last_id = c->ev_id;
	if (strcmp(c->ev, "stream") == 0) {
		if (!c->ready) {
			c->ready = 1;
			c->start = c->nocursor ? c->last_id : 0;
		}
		c->backoff_ms = SK_BACKOFF_MIN_MS;
	} else if (strcmp(c->ev, "gap") == 0) {
		if (c->ngaps == c->capgaps) {
			c->capgaps = c->capgaps ? 2 * c->capgaps : 16;
			if ((c->gaps = realloc(c->gaps, c->capgaps *
			    sizeof(*c->gaps))) == NULL)
				sk_die("memory", strerror(ENOMEM));
		}
		c->gaps[c->ngaps++] = c->has_data ?
		    strtoll(c->data, NULL, 10) : -1;
	} else if (c->has_data) {
		if (!c->has_id) {
			c->noid++;
		} else {
			el = strlen(c->ev);
			if (el >= 7 && strcmp(c->ev + el - 7, ";base64") == 0)
				n = sk_unbase64(c->data, n);
			if (c->ngot == c->capgot) {
				c->capgot = c->capgot ? 2 * c->capgot : 256;
				if ((c->got = realloc(c->got, c->capgot *
				    sizeof(*c->got))) == NULL)
					sk_die("memory", strerror(ENOMEM));
			}
			c->got[c->ngot].id = c->ev_id;
			c->got[c->ngot].hash = sk_fnv((unsigned char *)c->data,
			    n);
			c->ngot++;
		}
	}
	c->dlen = 0;
	c->has_data = c->has_id = 0;
	c->ev[0] = '\0';
}

/* One SSE line (without its line break), as the EventSource parser
 * reads it. */
static void
sk_sse_line(struct sk_client *c, char *l, size_t n)
{
	char *v;
	size_t vl;
	char *end;
	long long id;

	if (n == 0) {
		sk_dispatch(c);
		return;
	}
	if (l[0] == ':')
		return;
	l[n] = '\0';
	if ((v = memchr(l, ':', n)) != NULL) {
		*v++ = '\0';
		if (*v == ' ')
			v++;
	} else
		v = l + n;
	vl = (size_t)(l + n - v);
	if (strcmp(l, "data") == 0) {
		/* Over SK_DATA_MAX the data is cut (dlen stays at most
		 * SK_DATA_MAX): its hash then tells it differs. */
		c->has_data = 1;
		if (c->dlen == SK_DATA_MAX)
			return;
		if (vl > SK_DATA_MAX - c->dlen - 1)
			vl = SK_DATA_MAX - c->dlen - 1;
		memcpy(c->data + c->dlen, v, vl);
		c->dlen += vl;
		c->data[c->dlen++] = '\n';
		c->data[c->dlen] = '\0';
	} else if (strcmp(l, "id") == 0) {
		errno = 0;
		id = strtoll(v, &end, 10);
		if (errno == 0 && end != v && *end == '\0' && id >= 0) {
			c->ev_id = id;
			c->has_id = 1;
		}
	} else if (strcmp(l, "event") == 0) {
		snprintf(c->ev, sizeof(c->ev), "%s", v);
	}
	/* retry: and anything else: nothing to do */
}

/* Body bytes (after any chunked framing) into lines. */
static void
sk_sse_feed(struct sk_client *c, const char *b, size_t n)
{
	const char *nl;
	size_t k;

	while (n > 0) {
		nl = memchr(b, '\n', n);
		k = nl != NULL ? (size_t)(nl - b) : n;
		if (c->llen + k > SK_LINE_MAX)
			k = SK_LINE_MAX - c->llen;
		memcpy(c->line + c->llen, b, k);
		c->llen += k;
		if (nl == NULL)
			return;
		if (c->llen > 0 && c->line[c->llen - 1] == '\r')
			c->llen--;
		sk_sse_line(c, c->line, c->llen);
		c->llen = 0;
		n -= (size_t)(nl - b) + 1;
		b = nl + 1;
	}
}

/* Body bytes as they come off the wire.  Returns 1 once a chunked body
 * has ended (its last chunk), -1 on a malformed chunk, else 0. */
static int
sk_body(struct sk_client *c, const char *b, size_t n)
{
	size_t k;
	char *end;

	c->bodylen += n;
	if (!c->chunked) {
		sk_sse_feed(c, b, n);
		return 0;
	}
	while (n > 0) {
		switch (c->cstate) {
		case CH_SIZE:
		case CH_TRAILER:
			if (*b != '\n') {
				if (c->cllen >= SK_CHUNK_LINE_MAX)
					return -1;
				c->cline[c->cllen++] = *b;
				b++, n--;
				continue;
			}
			b++, n--;
			c->cline[c->cllen] = '\0';
			if (c->cllen > 0 && c->cline[c->cllen - 1] == '\r')
				c->cline[--c->cllen] = '\0';
			if (c->cstate == CH_TRAILER) {
				if (c->cllen == 0) {
					c->cstate = CH_DONE;
					return 1;
				}
				c->cllen = 0;
				continue;
			}
			errno = 0;
			c->crem = strtoll(c->cline, &end, 16);
			if (errno != 0 || end == c->cline || c->crem < 0 ||
			    (*end != '\0' && *end != ';'))
				return -1;
			c->cllen = 0;
			c->cstate = c->crem == 0 ? CH_TRAILER : CH_DATA;
			break;
		case CH_DATA:
			k = n < (size_t)c->crem ? n : (size_t)c->crem;
			sk_sse_feed(c, b, k);
			b += k, n -= k;
			c->crem -= (long long)k;
			if (c->crem == 0)
				c->cstate = CH_DATA_END;
			break;
		case CH_DATA_END:
			/* the CR LF after a chunk's data */
			if (*b == '\n')
				c->cstate = CH_SIZE;
			else if (*b != '\r')
				return -1;
			b++, n--;
			break;
		case CH_DONE:
			return 1;
		}
	}
	return 0;
}

/* The stream is over (clean: the server ended it): close, connect again
 * after the backoff. */
static void
sk_break(struct sk_client *c, int64_t now, int clean)
{
	int j;

	if (c->state == S_BODY) {
		c->breaks++;
		if (clean)
			c->ends++;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	/* An incomplete event is dropped, as an EventSource drops it. */
	c->llen = 0;
	c->dlen = 0;
	c->has_data = c->has_id = 0;
	c->ev[0] = '\0';
	c->state = S_WAIT;
	j = c->backoff_ms / 2 + rand() % (c->backoff_ms + 1);
	c->at = now + (int64_t)j * 1000000;
	c->backoff_ms = c->backoff_ms * 2 > SK_BACKOFF_MAX_MS ?
	    SK_BACKOFF_MAX_MS : c->backoff_ms * 2;
}

/* SOAK_TRACE: one stderr line per connection step and read of c ("T MS
 * CLIENT PORT WHAT BYTES...", the first bytes made printable). */
static void
sk_trace(struct sk_client *c, int64_t now, const char *what, const char *b,
    size_t n)
{
	struct sockaddr_in a;
	socklen_t al = sizeof(a);
	size_t i;

	if (!sk_tracing)
		return;
	memset(&a, 0, sizeof(a));
	if (c->fd >= 0)
		getsockname(c->fd, (struct sockaddr *)&a, &al);
	fprintf(stderr, "T %lld %ld %d %s ", (long long)((now - sk_t0) /
	    1000000), c->id, ntohs(a.sin_port), what);
	for (i = 0; i < n && i < SK_TRACE_BYTES; i++)
		fputc(b[i] >= 32 && b[i] < 127 ? b[i] : '.', stderr);
	fputc('\n', stderr);
}

/* Nothing came for too long: note when and in which state (the time
 * since the last byte, or since the connection began), then break.
 * "answered": the headers came, not one byte of the body yet. */
static void
sk_stall(struct sk_client *c, int64_t now)
{
	static const char *const st[] = { "wait", "connecting", "sending",
	    "headers", "body" };
	const char *state = st[c->state];

	if (c->state == S_BODY && c->bodylen == 0)
		state = "answered";
	if (c->stalls < SK_STALLS_KEPT)
		snprintf(c->stallv[c->stalls], sizeof(c->stallv[0]),
		    "%s@%lldms/%lldms", state,
		    (long long)((now - sk_t0) / 1000000),
		    (long long)((now - c->at) / 1000000));
	c->stalls++;
	sk_trace(c, now, "stall", "", 0);
	sk_break(c, now, 0);
}

/* Start a connection with the request for c's cursor. */
static void
sk_connect(struct sk_client *c, int64_t now)
{
	char leid[64] = "";
	const char *since = "";
	int one = 1;

	if (!c->nocursor)
		since = strchr(sk_path, '?') != NULL ? "&since=0" : "?since=0";
	if (c->last_id >= 0)
		snprintf(leid, sizeof(leid), "Last-Event-ID: %lld\r\n",
		    (long long)c->last_id);
	c->reqlen = (size_t)snprintf(c->req, sizeof(c->req),
	    "GET %s%s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n"
	    "Cache-Control: no-cache\r\n%s\r\n", sk_path, since, sk_host,
	    leid);
	if (c->reqlen >= sizeof(c->req))
		sk_die(sk_path, "request too long");
	c->sent = 0;
	c->hlen = 0;
	c->bodylen = 0;
	c->chunked = 0;
	c->cstate = CH_SIZE;
	c->cllen = 0;
	c->at = now;
	c->conns++;
	if ((c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) < 0)
		sk_die("socket", strerror(errno));
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->state = S_CONNECTING;
	if (connect(c->fd, (struct sockaddr *)&sk_addr, sizeof(sk_addr)) != 0
	    && errno != EINPROGRESS) {
		c->refused++;
		sk_break(c, now, 0);
	}
}

/* The answer's header block, read so far into c->hdr: 1 while it is
 * incomplete; -1 for anything but a 200; 0 for a stream, whose body bytes
 * read with the headers are handed on; 2 if those ended it already (c
 * is then waiting to connect again). */
static int
sk_headers(struct sk_client *c, int64_t now)
{
	char *e, *p, *q;
	size_t hl, rest;
	int status = 0, rc;

	c->hdr[c->hlen] = '\0';
	if ((e = strstr(c->hdr, "\r\n\r\n")) == NULL)
		return 1;
	*e = '\0';
	hl = (size_t)(e - c->hdr) + 4;
	if (strncmp(c->hdr, "HTTP/1.", 7) == 0 && c->hlen > 12)
		status = atoi(c->hdr + 9);
	if (status > 0 && status < SK_STATUS_MAX)
		sk_status[status]++;
	else
		sk_status[0]++;
	if (status != 200)
		return -1;
	for (p = c->hdr; (p = strchr(p, '\n')) != NULL; ) {
		p++;
		if (strncasecmp(p, "transfer-encoding:", 18) == 0) {
			q = strchr(p, '\r');
			if (q != NULL)
				*q = '\0';
			c->chunked = strcasestr(p, "chunked") != NULL;
			if (q != NULL)
				*q = '\r';
		}
	}
	c->state = S_BODY;
	c->at = now;
	rest = c->hlen - hl;
	rc = sk_body(c, c->hdr + hl, rest);
	if (rc != 0) {
		sk_break(c, now, rc > 0);
		return 2;
	}
	return 0;
}

/* Readiness of c's descriptor. */
static void
sk_event(struct sk_client *c, short revents, int64_t now)
{
	char buf[SK_BUF];
	socklen_t sl = sizeof(int);
	ssize_t n;
	int err = 0, rc;

	if (c->state == S_CONNECTING) {
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &sl) != 0 ||
		    err != 0) {
			c->refused++;
			sk_break(c, now, 0);
			return;
		}
		c->state = S_SENDING;
	}
	if (c->state == S_SENDING) {
		while (c->sent < c->reqlen) {
			n = send(c->fd, c->req + c->sent, c->reqlen - c->sent,
			    MSG_NOSIGNAL);
			if (n < 0 && errno == EAGAIN)
				return;
			if (n < 0) {
				c->refused++;
				sk_break(c, now, 0);
				return;
			}
			c->sent += (size_t)n;
		}
		c->state = S_HEADERS;
		c->at = now;
		sk_trace(c, now, "sent", "", 0);
		return;
	}
	if (!(revents & (POLLIN | POLLHUP | POLLERR)))
		return;
	for (;;) {
		if (c->state == S_HEADERS)
			n = recv(c->fd, c->hdr + c->hlen, SK_HDR_MAX - c->hlen,
			    0);
		else
			n = recv(c->fd, buf, sizeof(buf), 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			sk_trace(c, now, n == 0 ? "eof" : "err", "", 0);
			sk_break(c, now, 0);
			return;
		}
		if (c->state == S_HEADERS)
			sk_trace(c, now, "hdr", c->hdr + c->hlen, (size_t)n);
		else
			sk_trace(c, now, "body", buf, (size_t)n);
		c->at = now;
		if (c->state == S_HEADERS) {
			c->hlen += (size_t)n;
			rc = sk_headers(c, now);
			if (rc == 1 && c->hlen >= SK_HDR_MAX)
				rc = -1;
			if (rc < 0)
				sk_break(c, now, 0);
			if (rc != 0)
				return;
			continue;
		}
		rc = sk_body(c, buf, (size_t)n);
		if (rc != 0) {
			sk_break(c, now, rc > 0);
			return;
		}
	}
}

/* The target id in file, or -1 while it is missing or empty. */
static int64_t
sk_target(const char *file)
{
	FILE *fp;
	long long v = -1;

	if ((fp = fopen(file, "r")) == NULL)
		return -1;
	if (fscanf(fp, "%lld", &v) != 1)
		v = -1;
	fclose(fp);
	return v;
}

/* Replace the file path with "N\n" (a rename: a reader never sees half). */
static void
sk_write_num(const char *path, long v)
{
	char tmp[SK_URL_MAX];
	FILE *fp;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.new", path) >= sizeof(tmp))
		sk_die(path, "name too long");
	if ((fp = fopen(tmp, "w")) == NULL)
		sk_die(tmp, strerror(errno));
	fprintf(fp, "%ld\n", v);
	if (fclose(fp) != 0 || rename(tmp, path) != 0)
		sk_die(path, strerror(errno));
}

static int
sk_sub_main(const char *url, int n, int nnow, const char *out,
    const char *readyf, const char *targetf, const char *breaksf,
    int drain_s)
{
	struct sk_client *cl;
	struct pollfd *pf;
	int *pi;
	int64_t now, deadline, target = -1, done_at = 0, next_target = 0,
	    wake;
	int i, k, np, opened = 0, ready_written = 0, nready, caught, tmo;
	const char *hb;
	long hbs, conns = 0, breaks = 0, ends = 0, stalls = 0, refused = 0;
	long minb, minb_written = -1;
	FILE *fp;

	sk_parse_url(url);
	hbs = SK_HB_DEF_S;
	if ((hb = strstr(sk_path, "heartbeat=")) != NULL)
		hbs = strtol(hb + 10, NULL, 10);
	if (hbs < 1 || hbs > SK_HB_MAX_S)
		sk_die(url, "heartbeat= out of range");
	sk_stall_ms = (int)(hbs * 2 + 2) * 1000;
	if ((cl = calloc((size_t)n, sizeof(*cl))) == NULL ||
	    (pf = calloc((size_t)n, sizeof(*pf))) == NULL ||
	    (pi = calloc((size_t)n, sizeof(*pi))) == NULL)
		sk_die("memory", strerror(ENOMEM));
	sk_tracing = getenv("SOAK_TRACE") != NULL;
	for (i = 0; i < n; i++) {
		cl[i].id = i;
		cl[i].fd = -1;
		cl[i].state = S_WAIT;
		cl[i].last_id = -1;
		cl[i].start = -1;
		cl[i].nocursor = i < nnow;
		cl[i].backoff_ms = SK_BACKOFF_MIN_MS;
		if ((cl[i].line = malloc(SK_LINE_MAX + 1)) == NULL ||
		    (cl[i].data = malloc(SK_DATA_MAX + 1)) == NULL)
			sk_die("memory", strerror(ENOMEM));
	}
	now = sk_t0 = sk_now();
	deadline = now + (int64_t)SK_RUN_MAX_S * SK_NS;
	for (;;) {
		now = sk_now();
		if (now >= deadline)
			break;
		/* First connections a batch at a time, then reconnects. */
		for (k = 0; opened < n && k < SK_BATCH; k++)
			sk_connect(&cl[opened++], now);
		np = 0;
		wake = now + 100 * 1000000LL;
		nready = caught = 0;
		minb = opened < n ? 0 : LONG_MAX;
		for (i = 0; i < opened; i++) {
			struct sk_client *c = &cl[i];

			if (c->breaks < minb)
				minb = c->breaks;

			if (c->state == S_WAIT && c->at <= now)
				sk_connect(c, now);
			else if ((c->state == S_BODY && now - c->at >
			    (int64_t)sk_stall_ms * 1000000) ||
			    (c->state != S_BODY && c->state != S_WAIT &&
			    now - c->at > (int64_t)SK_HEADERS_MS * 1000000))
				sk_stall(c, now);
			nready += c->ready;
			caught += target >= 0 && c->last_id >= target;
			if (c->state == S_WAIT) {
				if (c->at < wake)
					wake = c->at;
				continue;
			}
			pf[np].fd = c->fd;
			pf[np].events = c->state == S_CONNECTING ||
			    c->state == S_SENDING ? POLLOUT : POLLIN;
			pf[np].revents = 0;
			pi[np++] = i;
		}
		if (!ready_written && nready == n) {
			if ((fp = fopen(readyf, "w")) == NULL)
				sk_die(readyf, strerror(errno));
			fprintf(fp, "ready %d\n", n);
			fclose(fp);
			ready_written = 1;
		}
		if (breaksf != NULL && minb > minb_written) {
			sk_write_num(breaksf, minb);
			minb_written = minb;
		}
		if (target < 0 && now >= next_target) {
			target = sk_target(targetf);
			next_target = now + SK_TARGET_POLL_MS * 1000000LL;
			if (target >= 0)
				deadline = now + (int64_t)drain_s * SK_NS;
		}
		if (target >= 0 && caught == n) {
			if (done_at == 0)
				done_at = now + SK_LINGER_MS * 1000000LL;
			else if (now >= done_at)
				break;
		}
		tmo = (int)((wake - now) / 1000000) + 1;
		if (tmo > 100)
			tmo = 100;
		if (poll(pf, (nfds_t)np, tmo) < 0 && errno != EINTR)
			sk_die("poll", strerror(errno));
		now = sk_now();
		for (k = 0; k < np; k++)
			if (pf[k].revents != 0)
				sk_event(&cl[pi[k]], pf[k].revents, now);
	}
	if ((fp = fopen(out, "w")) == NULL)
		sk_die(out, strerror(errno));
	caught = nready = 0;
	for (i = 0; i < n; i++) {
		struct sk_client *c = &cl[i];
		size_t m;

		fprintf(fp, "c %d start=%lld last=%lld conns=%ld breaks=%ld "
		    "ends=%ld stalls=%ld gaps=%zu noid=%ld state=%d\n", i,
		    (long long)c->start, (long long)c->last_id, c->conns,
		    c->breaks, c->ends, c->stalls, c->ngaps, c->noid,
		    c->state);
		for (m = 0; m < c->ngot; m++)
			fprintf(fp, "m %d %lld %016llx\n", i,
			    (long long)c->got[m].id,
			    (unsigned long long)c->got[m].hash);
		for (m = 0; m < c->ngaps; m++)
			fprintf(fp, "g %d %lld\n", i, (long long)c->gaps[m]);
		for (k = 0; k < c->stalls && k < SK_STALLS_KEPT; k++)
			fprintf(fp, "s %d %s\n", i, c->stallv[k]);
		conns += c->conns;
		breaks += c->breaks;
		ends += c->ends;
		stalls += c->stalls;
		refused += c->refused;
		nready += c->ready;
		caught += target >= 0 && c->last_id >= target;
	}
	if (fclose(fp) != 0)
		sk_die(out, strerror(errno));
	printf("sub clients=%d ready=%d caught_up=%d target=%lld conns=%ld "
	    "breaks=%ld ends=%ld stalls=%ld refused=%ld status=", n, nready,
	    caught, (long long)target, conns, breaks, ends, stalls, refused);
	for (i = 0, k = 0; i < SK_STATUS_MAX; i++)
		if (sk_status[i] > 0)
			printf("%s%d:%ld", k++ ? "," : "", i, sk_status[i]);
	printf("\n");
	return caught == n ? 0 : 1;
}

/* A blocking connection to sk_addr with SK_PUB_IO_S timeouts, or -1. */
static int
sk_pub_connect(void)
{
	struct timeval tv = { SK_PUB_IO_S, 0 };
	int fd, one = 1;

	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		sk_die("socket", strerror(errno));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sk_addr, sizeof(sk_addr)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * One publish on *fd (connected first if it is -1): 1 and *id for a 201
 * with X-Push-Id, 0 for any other answer, -1 if the connection failed
 * (*fd is then closed and -1).  A "Connection: close" answer closes *fd
 * too.
 */
static int
sk_pub_one(int *fd, const char *req, size_t reqlen, long long *id)
{
	char h[SK_HDR_MAX + 1], *e, *p;
	size_t hl = 0, sent = 0, body;
	long long clen = -1, got;
	ssize_t n;
	int status = 0, close_after = 0;

	*id = -1;
	if (*fd < 0 && (*fd = sk_pub_connect()) < 0)
		return -1;
	while (sent < reqlen) {
		n = send(*fd, req + sent, reqlen - sent, MSG_NOSIGNAL);
		if (n <= 0)
			goto fail;
		sent += (size_t)n;
	}
	for (;;) {
		if (hl >= SK_HDR_MAX)
			goto fail;
		n = recv(*fd, h + hl, SK_HDR_MAX - hl, 0);
		if (n <= 0)
			goto fail;
		hl += (size_t)n;
		h[hl] = '\0';
		if ((e = strstr(h, "\r\n\r\n")) != NULL)
			break;
	}
	*e = '\0';
	body = hl - (size_t)(e + 4 - h);
	if (strncmp(h, "HTTP/1.", 7) == 0)
		status = atoi(h + 9);
	for (p = h; (p = strchr(p, '\n')) != NULL; ) {
		p++;
		if (strncasecmp(p, "content-length:", 15) == 0)
			clen = atoll(p + 15);
		else if (strncasecmp(p, "x-push-id:", 10) == 0)
			*id = atoll(p + 10);
		else if (strncasecmp(p, "connection:", 11) == 0 &&
		    strncasecmp(p + 11 + strspn(p + 11, " "), "close", 5) == 0)
			close_after = 1;
	}
	if (clen < 0) {
		/* Only a length tells where the answer ends: read no
		 * further, and start the next one afresh. */
		close_after = 1;
	} else {
		for (got = (long long)body; got < clen; got += n) {
			n = recv(*fd, h, sizeof(h) - 1, 0);
			if (n <= 0)
				goto fail;
		}
	}
	if (close_after) {
		close(*fd);
		*fd = -1;
	}
	return status == 201 && *id > 0;
fail:
	close(*fd);
	*fd = -1;
	return -1;
}

static int
sk_pub_main(const char *url, const char *hdr, int gap_ms, int secs,
    const char *out, const char *prefix)
{
	char req[SK_REQ_MAX], body[SK_PREFIX_MAX + 32], line[64];
	int64_t end, next;
	long seq = 0, ok = 0, failed = 0;
	long long id;
	int fd = -1, ofd, rc;
	size_t rl;
	struct timespec ts;

	sk_parse_url(url);
	if ((ofd = open(out, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
	    0644)) < 0)
		sk_die(out, strerror(errno));
	end = sk_now() + (int64_t)secs * SK_NS;
	next = sk_now();
	while (sk_now() < end) {
		seq++;
		snprintf(body, sizeof(body), "%s %ld", prefix, seq);
		rl = (size_t)snprintf(req, sizeof(req),
		    "POST %s%s HTTP/1.1\r\nHost: %s\r\n"
		    "Content-Type: text/plain; charset=utf-8\r\n%s%s"
		    "Content-Length: %zu\r\n\r\n%s", sk_path,
		    seq % 2 ? "&event=soak.http" : "", sk_host,
		    hdr != NULL ? hdr : "", hdr != NULL ? "\r\n" : "",
		    strlen(body), body);
		if (rl >= sizeof(req))
			sk_die(url, "request too long");
		rc = sk_pub_one(&fd, req, rl, &id);
		if (rc == 1) {
			ok++;
			rl = (size_t)snprintf(line, sizeof(line), "%lld\t%ld\n",
			    id, seq);
			if (write(ofd, line, rl) != (ssize_t)rl)
				sk_die(out, strerror(errno));
			next += (int64_t)gap_ms * 1000000;
		} else {
			failed++;
			next = sk_now() + SK_BACKOFF_MIN_MS * 1000000LL;
		}
		if (next > sk_now()) {
			int64_t d = next - sk_now();

			ts.tv_sec = (time_t)(d / SK_NS);
			ts.tv_nsec = (long)(d % SK_NS);
			nanosleep(&ts, NULL);
		}
	}
	if (fd >= 0)
		close(fd);
	close(ofd);
	printf("pub ok=%ld failed=%ld\n", ok, failed);
	return 0;
}

int
main(int argc, char **argv)
{
	const char *url = NULL, *out = NULL, *readyf = NULL, *targetf = NULL,
	    *breaksf = NULL, *hdr = NULL, *prefix = "http", *mode;
	int ch, n = 100, nnow = 0, drain_s = SK_DRAIN_S, gap = 100, secs = 10;

	if (argc < 2)
		sk_usage();
	mode = argv[1];
	optind = 2;
	while ((ch = getopt(argc, argv, "u:n:q:o:r:t:T:H:g:s:p:b:")) != -1) {
		switch (ch) {
		case 'u': url = optarg; break;
		case 'n': n = (int)sk_num(optarg, 1, SK_CLIENTS_MAX); break;
		case 'q': nnow = (int)sk_num(optarg, 0, SK_CLIENTS_MAX); break;
		case 'o': out = optarg; break;
		case 'r': readyf = optarg; break;
		case 'b': breaksf = optarg; break;
		case 't': targetf = optarg; break;
		case 'T': drain_s = (int)sk_num(optarg, 1, SK_RUN_MAX_S);
			break;
		case 'H': hdr = optarg; break;
		case 'g': gap = (int)sk_num(optarg, 1, 60000); break;
		case 's': secs = (int)sk_num(optarg, 1, SK_RUN_MAX_S); break;
		case 'p':
			if (strlen(optarg) > SK_PREFIX_MAX)
				sk_usage();
			prefix = optarg;
			break;
		default: sk_usage();
		}
	}
	if (optind != argc || url == NULL || out == NULL)
		sk_usage();
	signal(SIGPIPE, SIG_IGN);
	srand((unsigned)(getpid() ^ (unsigned)sk_now()));
	if (strcmp(mode, "sub") == 0 && readyf != NULL && targetf != NULL &&
	    nnow <= n)
		return sk_sub_main(url, n, nnow, out, readyf, targetf, breaksf,
		    drain_s);
	if (strcmp(mode, "pub") == 0)
		return sk_pub_main(url, hdr, gap, secs, out, prefix);
	sk_usage();
	return SK_EX_USAGE;
}
