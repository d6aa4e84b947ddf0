/*
 * transport: framing of push responses and the stream request's
 * parameters.  The byte layouts are documented in transport.h; the unit
 * tests hold them to the byte.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "transport.h"

#define TRANSPORT_B64_CHUNK 3072  /* input bytes per base64 output chunk */
#define TRANSPORT_BOUNDARY_TAG "pushcgi" /* a random boundary's start... */
#define TRANSPORT_BOUNDARY_RND 12 /* ...then these random bytes, in hex:
                                     31 bytes, TRANSPORT_BOUNDARY_MAX fits */
#define TRANSPORT_NUM_MAX (TRANSPORT_ID_DIGITS + 2) /* a decimal int64, its
                                     sign and NUL */

enum { MIXED_NONE, MIXED_OPEN, MIXED_PENDING, MIXED_DONE };

#define S TRANSPORT_FOR_STREAM
#define P TRANSPORT_FOR_POLL
/* The one allow-list of stream and poll requests: every parameter either
 * may carry, and which may.  token= is the responder's (auth.h); "_" is
 * a cache buster, ignored. */
static const struct {
	const char *name;
	int who;
} transport_allow[TRANSPORT_PARAMS] = {
	{ "channel", S | P }, { "format", S | P }, { "since", S | P },
	{ "last", S | P }, { "callback", S | P }, { "token", S | P },
	{ "_", S | P }, { "last_event_id", S }, { "heartbeat", S },
	{ "timeout", P }, { "refresh", P }
};
#undef S
#undef P

static int transport_cursor(const char *, int64_t *);
static int transport_small(const char *, int, int, int *);
static int transport_digits(const char *, int, int *);
static int transport_q_zero(const char *, size_t);
static int transport_sse_text(const struct store_msg *);
static int transport_mixed_head(struct http_out *, const struct store_msg *);
static int transport_mixed_ahead(struct transport *, struct http_out *,
    const char *);
static int transport_script_open(const struct transport *,
    struct http_out *);

/* See transport.h. */
int
transport_id(const char *s, size_t n, int64_t *out)
{
	int64_t v = 0;
	size_t i;

	if (n == 0 || n > TRANSPORT_ID_DIGITS)
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (v > (INT64_MAX - (s[i] - '0')) / 10)
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

/* A NUL-terminated cursor.  0 or -1. */
static int
transport_cursor(const char *s, int64_t *out)
{
	return transport_id(s, strlen(s), out);
}

/* A small decimal in [min, max].  0 or -1. */
static int
transport_small(const char *s, int min, int max, int *out)
{
	int64_t v;

	if (strlen(s) > 9 || transport_cursor(s, &v) != 0 || v < min ||
	    v > max)
		return -1;
	*out = (int)v;
	return 0;
}

/* 1 if the parameters of a media range, params[0..n), set q to zero. */
static int
transport_q_zero(const char *params, size_t n)
{
	const char *p = params, *end = params + n, *v;

	while (p != NULL && p < end) {
		p++;
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if (end - p >= 2 && (*p == 'q' || *p == 'Q') && p[1] == '=') {
			v = p + 2;
			if (v == end || *v != '0')
				return 0;
			v++;
			if (v < end && *v == '.')
				while (++v < end && *v == '0')
					;
			while (v < end && (*v == ' ' || *v == '\t'))
				v++;
			return v == end || *v == ';';
		}
		p = memchr(p, ';', (size_t)(end - p));
	}
	return 0;
}

enum transport_kind
transport_negotiate(const char *accept)
{
	const char *p, *end, *semi;
	size_t n;

	if (accept == NULL)
		return TRANSPORT_MIXED;
	for (p = accept; *p != '\0'; p = *end != '\0' ? end + 1 : end) {
		end = strchr(p, ',');
		if (end == NULL)
			end = p + strlen(p);
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		semi = memchr(p, ';', (size_t)(end - p));
		n = (size_t)((semi != NULL ? semi : end) - p);
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n == strlen("text/event-stream") &&
		    strncasecmp(p, "text/event-stream", n) == 0 &&
		    (semi == NULL || !transport_q_zero(semi,
		    (size_t)(end - semi))))
			return TRANSPORT_SSE;
	}
	return TRANSPORT_MIXED;
}

int
transport_param_allowed(enum transport_for who, const char *name)
{
	size_t i;

	for (i = 0; i < TRANSPORT_PARAMS; i++)
		if ((transport_allow[i].who & who) &&
		    strcmp(transport_allow[i].name, name) == 0)
			return 1;
	return 0;
}

/* channel=: required, 1 to VALID_CHANNELS_MAX names. */
static int
transport_channels(struct transport_req *q, char *why, size_t whylen)
{
	const char *v;
	int i;

	if ((v = http_param(&q->params, "channel")) == NULL || *v == '\0') {
		snprintf(why, whylen, "channel= is required");
		return TRANSPORT_ENOCHANNEL;
	}
	q->nchan = valid_channel_list(v, q->chan, VALID_CHANNELS_MAX);
	if (q->nchan < 1) {
		snprintf(why, whylen, "channel= must be 1-%d comma-separated "
		    "names of 1-%d of A-Z a-z 0-9 . _ - (not starting with "
		    "'.')", VALID_CHANNELS_MAX, VALID_CHANNEL_MAX);
		return TRANSPORT_ECHANNEL;
	}
	for (i = 0; i < q->nchan; i++)
		q->chans[i] = q->chan[i];
	return 0;
}

/* since= (a stream's last_event_id= too) as a cursor. */
static int
transport_since(const char *v, struct transport_req *q, char *why,
    size_t whylen)
{
	if (transport_cursor(v, &q->since) != 0) {
		snprintf(why, whylen, "since= must be a message id (0-%"
		    PRId64 ")", INT64_MAX);
		return TRANSPORT_ESINCE;
	}
	return 0;
}

/* last=N, which excludes since=. */
static int
transport_last(const char *v, int since_given, struct transport_req *q,
    char *why, size_t whylen)
{
	if (since_given) {
		snprintf(why, whylen, "last= and since= exclude each other");
		return TRANSPORT_ELASTSINCE;
	}
	if (transport_digits(v, TRANSPORT_LAST_DIGITS, &q->last) != 0 ||
	    q->last > TRANSPORT_LAST_MAX) {
		snprintf(why, whylen, "last= must be 0-%d", TRANSPORT_LAST_MAX);
		return TRANSPORT_ELAST;
	}
	return 0;
}

/* callback=: a JavaScript name. */
static int
transport_callback(const char *v, struct transport_req *q, char *why,
    size_t whylen)
{
	if (!valid_callback(v)) {
		snprintf(why, whylen, "callback= must be a JavaScript name "
		    "(identifiers joined by '.', at most %d bytes)",
		    VALID_CALLBACK_MAX);
		return TRANSPORT_ECALLBACK;
	}
	snprintf(q->callback, sizeof(q->callback), "%s", v);
	return 0;
}

/* A stream's own parameters (transport_request), after channel=. */
static int
transport_stream_rest(struct transport_req *q, const char *accept,
    const char *leid, const struct conf *c, char *why, size_t whylen)
{
	const struct http_params *p = &q->params;
	const char *v, *since;
	int hbmax, rc;

	snprintf(q->callback, sizeof(q->callback), "%s", TRANSPORT_CALLBACK);
	if ((v = http_param(p, "format")) != NULL) {
		if (strcmp(v, "mixed") == 0)
			q->kind = TRANSPORT_MIXED;
		else if (strcmp(v, "sse") == 0)
			q->kind = TRANSPORT_SSE;
		else if (strcmp(v, "script") == 0)
			q->kind = TRANSPORT_SCRIPT;
		else if (strcmp(v, "raw") == 0)
			q->kind = TRANSPORT_RAW;
		else {
			snprintf(why, whylen, "format= must be mixed, sse, "
			    "script or raw");
			return TRANSPORT_EFORMAT;
		}
	} else
		q->kind = transport_negotiate(accept);
	if (q->kind == TRANSPORT_RAW && accept != NULL &&
	    strstr(accept, "application/octet-stream") != NULL)
		q->octet = 1;

	since = http_param(p, "since");
	if ((v = http_param(p, "last_event_id")) != NULL) {
		if (since != NULL) {
			snprintf(why, whylen, "since= and last_event_id= "
			    "exclude each other");
			return TRANSPORT_ESINCELEID;
		}
		since = v;
	}
	if (since != NULL && (rc = transport_since(since, q, why, whylen)))
		return rc;
	if ((v = http_param(p, "last")) != NULL &&
	    (rc = transport_last(v, since != NULL, q, why, whylen)))
		return rc;
	if (leid != NULL) {
		/* A browser resuming: its cursor beats the URL's. */
		if (transport_cursor(leid, &q->since) != 0) {
			snprintf(why, whylen, "Last-Event-ID must be a message "
			    "id");
			return TRANSPORT_ELEID;
		}
		q->last = -1;
	}
	if (q->kind == TRANSPORT_MIXED && q->since < 0 && q->last < 0)
		q->last = 1;

	q->heartbeat = c->heartbeat;
	if ((v = http_param(p, "heartbeat")) != NULL) {
		hbmax = c->heartbeat > TRANSPORT_HEARTBEAT_MIN ?
		    c->heartbeat : TRANSPORT_HEARTBEAT_MIN;
		if (transport_small(v, TRANSPORT_HEARTBEAT_MIN, hbmax,
		    &q->heartbeat) != 0) {
			snprintf(why, whylen, "heartbeat= must be %d-%d "
			    "seconds", TRANSPORT_HEARTBEAT_MIN, hbmax);
			return TRANSPORT_EHEARTBEAT;
		}
	}
	if ((v = http_param(p, "callback")) != NULL)
		return transport_callback(v, q, why, whylen);
	return 0;
}

/* A poll's own parameters (transport_request), after channel=. */
static int
transport_poll_rest(struct transport_req *q, const char *inm,
    const char *leid, const struct conf *c, char *why, size_t whylen)
{
	const struct http_params *p = &q->params;
	const char *v, *since;
	int rc;

	q->timeout = c->poll_timeout < c->poll_timeout_max ?
	    c->poll_timeout : c->poll_timeout_max;
	q->format = TRANSPORT_POLL_JSON;
	if ((v = http_param(p, "format")) != NULL) {
		if (strcmp(v, "json") == 0)
			q->format = TRANSPORT_POLL_JSON;
		else if (strcmp(v, "raw") == 0)
			q->format = TRANSPORT_POLL_RAW;
		else if (strcmp(v, "page") == 0)
			q->format = TRANSPORT_POLL_PAGE;
		else {
			snprintf(why, whylen, "format= must be json, raw or "
			    "page");
			return TRANSPORT_EFORMAT;
		}
	}
	q->refresh = c->heartbeat;
	if ((v = http_param(p, "refresh")) != NULL) {
		if (q->format != TRANSPORT_POLL_PAGE) {
			snprintf(why, whylen, "refresh= is for format=page "
			    "only");
			return TRANSPORT_EREFRESHFMT;
		}
		if (transport_digits(v, TRANSPORT_REFRESH_DIGITS,
		    &q->refresh) != 0 || q->refresh < TRANSPORT_REFRESH_MIN ||
		    q->refresh > TRANSPORT_REFRESH_MAX) {
			snprintf(why, whylen, "refresh= must be %d-%d seconds",
			    TRANSPORT_REFRESH_MIN, TRANSPORT_REFRESH_MAX);
			return TRANSPORT_EREFRESH;
		}
	}
	since = http_param(p, "since");
	if (q->format == TRANSPORT_POLL_PAGE && (since != NULL ||
	    http_param(p, "last") != NULL ||
	    http_param(p, "timeout") != NULL)) {
		snprintf(why, whylen, "format=page shows the newest message at "
		    "once: no since=, last= or timeout=");
		return TRANSPORT_EPAGECURSOR;
	}
	if ((v = http_param(p, "callback")) != NULL) {
		if (q->format != TRANSPORT_POLL_JSON) {
			snprintf(why, whylen, "callback= is for format=json "
			    "only");
			return TRANSPORT_ECALLBACKFMT;
		}
		if ((rc = transport_callback(v, q, why, whylen)) != 0)
			return rc;
	}
	if ((v = http_param(p, "timeout")) != NULL) {
		if (transport_digits(v, TRANSPORT_TIMEOUT_DIGITS,
		    &q->timeout) != 0) {
			snprintf(why, whylen, "timeout= must be 0-%d seconds",
			    c->poll_timeout_max);
			return TRANSPORT_ETIMEOUT;
		}
		if (q->timeout > c->poll_timeout_max)
			q->timeout = c->poll_timeout_max;
	}

	/* The cursor: since=, else If-None-Match, else Last-Event-ID;
	 * format=page takes none (it shows the newest message). */
	if (since != NULL) {
		if ((rc = transport_since(since, q, why, whylen)) != 0)
			return rc;
	} else if (q->format == TRANSPORT_POLL_PAGE) {
		/* The newest message, whatever the client saw. */
	} else if (inm != NULL && *inm != '\0') {
		if (transport_if_none_match(inm, &q->since) != 0) {
			snprintf(why, whylen, "If-None-Match must be one ETag "
			    "of this responder (\"ID\")");
			return TRANSPORT_EINM;
		}
	} else if (leid != NULL && *leid != '\0') {
		if (transport_id(leid, strlen(leid), &q->since) != 0) {
			snprintf(why, whylen, "Last-Event-ID must be a message "
			    "id");
			return TRANSPORT_ELEID;
		}
	}
	if ((v = http_param(p, "last")) != NULL) {
		if ((rc = transport_last(v, since != NULL, q, why, whylen)))
			return rc;
		if (q->since >= 0)
			q->last = -1;   /* a header cursor wins */
	}
	return 0;
}

int
transport_request(struct transport_req *q, enum transport_for who,
    const char *qs, const char *accept, const char *inm, const char *leid,
    const struct conf *c, char *why, size_t whylen)
{
	const char *names[TRANSPORT_PARAMS + 1];
	size_t i, n = 0;
	int rc;

	memset(q, 0, sizeof(*q));
	q->since = -1;
	q->last = -1;
	for (i = 0; i < TRANSPORT_PARAMS; i++)
		if (transport_allow[i].who & who)
			names[n++] = transport_allow[i].name;
	names[n] = NULL;
	if (http_parse_query(qs, names, &q->params, why, whylen) != 0)
		return TRANSPORT_EPARAMS;
	if ((rc = transport_channels(q, why, whylen)) != 0)
		return rc;
	if (who == TRANSPORT_FOR_POLL)
		return transport_poll_rest(q, inm, leid, c, why, whylen);
	return transport_stream_rest(q, accept, leid, c, why, whylen);
}

/* A small decimal of at most `digits` digits.  0 or -1. */
static int
transport_digits(const char *s, int digits, int *out)
{
	int64_t v;
	size_t n = strlen(s);

	if (n > (size_t)digits || transport_id(s, n, &v) != 0)
		return -1;
	*out = (int)v;
	return 0;
}

/* See transport.h. */
int
transport_if_none_match(const char *s, int64_t *out)
{
	const char *e;
	size_t n;

	while (*s == ' ' || *s == '\t')
		s++;
	n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	if (n >= 2 && s[0] == 'W' && s[1] == '/') {
		s += 2;
		n -= 2;
	}
	if (n >= 2 && s[0] == '"') {
		e = s + n - 1;
		if (*e != '"')
			return -1;
		return transport_id(s + 1, n - 2, out);
	}
	return transport_id(s, n, out);
}

int
transport_poll_json(struct http_out *o, const struct store_msg *const *m,
    int n, int64_t next, int64_t gap, int more, const char *callback)
{
	int i;

	if (callback != NULL && callback[0] != '\0') {
		http_puts(o, callback);
		http_puts(o, "(");
	}
	http_puts(o, "{\"messages\":[");
	for (i = 0; i < n; i++) {
		if (i > 0)
			http_puts(o, ",");
		transport_json_message(o, m[i]);
	}
	http_printf(o, "],\"next\":%" PRId64, next);
	if (gap > 0)
		http_printf(o, ",\"gap\":%" PRId64, gap);
	else if (gap == STORE_GAP_RESET)
		http_puts(o, ",\"gap\":0");
	if (more)
		http_puts(o, ",\"more\":true");
	return http_puts(o, callback != NULL && callback[0] != '\0' ?
	    "});\n" : "}\n");
}

void
transport_init(struct transport *t, const struct transport_req *q,
    const char *boundary)
{
	unsigned char rnd[TRANSPORT_BOUNDARY_RND];
	const size_t tag = sizeof(TRANSPORT_BOUNDARY_TAG) - 1;
	size_t i;

	memset(t, 0, sizeof(*t));
	t->kind = q->kind;
	t->octet = q->octet;
	snprintf(t->callback, sizeof(t->callback), "%s", q->callback);
	if (boundary != NULL) {
		snprintf(t->boundary, sizeof(t->boundary), "%s", boundary);
		return;
	}
	/* Random per stream, so that no published data can forge one. */
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		for (i = 0; i < sizeof(rnd); i++)
			rnd[i] = (unsigned char)((uint64_t)ts.tv_nsec >>
			    (i % 8 * 8)) ^ (unsigned char)(uintptr_t)t;
	}
	memcpy(t->boundary, TRANSPORT_BOUNDARY_TAG, tag);
	for (i = 0; i < sizeof(rnd); i++)
		snprintf(t->boundary + tag + 2 * i, 3, "%02x", rnd[i]);
}

const char *
transport_type(const struct transport *t, char *buf, size_t len)
{
	switch (t->kind) {
	case TRANSPORT_MIXED:
		snprintf(buf, len, "multipart/x-mixed-replace;boundary=%s",
		    t->boundary);
		break;
	case TRANSPORT_SSE:
		snprintf(buf, len, "text/event-stream");
		break;
	case TRANSPORT_SCRIPT:
		snprintf(buf, len, "text/html; charset=utf-8");
		break;
	case TRANSPORT_RAW:
		snprintf(buf, len, "%s", t->octet ? "application/octet-stream" :
		    "text/plain; charset=utf-8");
		break;
	}
	return buf;
}

/* Open a <script> calling the page's callback. */
static int
transport_script_open(const struct transport *t, struct http_out *o)
{
	http_puts(o, "<script>parent.");
	http_puts(o, t->callback);
	return http_puts(o, "(");
}

int
transport_begin(struct transport *t, struct http_out *o, const char *handle,
    int64_t cursor)
{
	char pad[TRANSPORT_PADDING];
	size_t hl;

	/* The handle is ours ("ID.SECRET"): one line, plain ASCII; anything
	 * else is a caller's bug that must not break the framing. */
	if (handle == NULL)
		handle = "";
	hl = strlen(handle);
	if (strspn(handle, TRANSPORT_HANDLE_CHARS) != hl)
		return -1;
	memset(pad, ' ', sizeof(pad));
	switch (t->kind) {
	case TRANSPORT_MIXED:
		/* Part 1's header block stays open until the first message:
		 * Chromium takes only one line break before the first
		 * boundary, so heartbeats go into this block instead. */
		t->state = MIXED_OPEN;
		http_puts(o, "--");
		http_puts(o, t->boundary);
		return http_puts(o, "\r\n");
	case TRANSPORT_SSE:
		http_printf(o, "retry: %d\n:", TRANSPORT_RETRY_MS);
		http_put(o, pad, sizeof(pad));
		if (hl == 0)
			return http_puts(o, "\n");
		http_puts(o, "\nevent: stream\n");
		if (cursor >= 0)
			http_printf(o, "id: %lld\n", (long long)cursor);
		return http_printf(o, "data: %s\n\n", handle);
	case TRANSPORT_SCRIPT:
		http_puts(o, "<!DOCTYPE html>\n<html><head>"
		    "<meta charset=\"utf-8\"><title>push</title></head>"
		    "<body>\n<!--");
		http_put(o, pad, sizeof(pad));
		http_puts(o, "-->\n");
		if (hl == 0)
			return o->failed ? -1 : 0;
		transport_script_open(t, o);
		http_puts(o, "{\"stream\":");
		transport_json_string(o, handle, hl);
		if (cursor >= 0)
			http_printf(o, ",\"cursor\":%lld", (long long)cursor);
		return http_puts(o, "})</script>\n");
	case TRANSPORT_RAW:
		/* Something at once: a server may hold the headers until
		 * the first body byte (nginx's postpone_output). */
		return http_puts(o, "\n");
	}
	return 0;
}

/* SSE carries data as lines of UTF-8: CR would become a line break. */
static int
transport_sse_text(const struct store_msg *m)
{
	return memchr(m->data, '\r', m->len) == NULL &&
	    transport_utf8_valid(m->data, m->len);
}

/* mixed: a complete part header for m, written from the open state. */
static int
transport_mixed_head(struct http_out *o, const struct store_msg *m)
{
	return http_printf(o, "Content-Type: %s\r\nContent-Length: %zu\r\n\r\n",
	    m->type, m->len);
}

/* mixed: end the current part and announce the next one as type. */
static int
transport_mixed_ahead(struct transport *t, struct http_out *o,
    const char *type)
{
	http_printf(o, "\r\n--%s\r\nContent-Type: %s\r\n\r\n", t->boundary,
	    type);
	if (type != t->guess)
		snprintf(t->guess, sizeof(t->guess), "%s", type);
	t->state = MIXED_PENDING;
	return o->failed ? -1 : 0;
}

int
transport_same(const struct transport *a, const struct transport *b)
{
	if (a->kind != b->kind)
		return 0;
	switch (a->kind) {
	case TRANSPORT_SSE:
	case TRANSPORT_RAW:
		return 1;
	case TRANSPORT_SCRIPT:
		return strcmp(a->callback, b->callback) == 0;
	case TRANSPORT_MIXED:
		break;
	}
	return 0;
}

int
transport_message(struct transport *t, struct http_out *o,
    const struct store_msg *m, const struct store_msg *prev)
{
	const char *ev;

	switch (t->kind) {
	case TRANSPORT_MIXED:
		if (t->state == MIXED_PENDING &&
		    strcmp(t->guess, m->type) != 0) {
			/* The announced part gets the previous message
			 * again, so that its Content-Type stays true. */
			if (prev != NULL)
				http_put(o, prev->data, prev->len);
			http_printf(o, "\r\n--%s\r\n", t->boundary);
			t->state = MIXED_OPEN;
		}
		if (t->state == MIXED_OPEN)
			transport_mixed_head(o, m);
		http_put(o, m->data, m->len);
		return transport_mixed_ahead(t, o, m->type);
	case TRANSPORT_SSE:
		http_printf(o, "id: %" PRId64 "\n", m->id);
		ev = m->event != NULL ? m->event : NULL;
		if (transport_sse_text(m)) {
			const char *p = m->data, *end = p + m->len, *nl;

			if (ev != NULL)
				http_printf(o, "event: %s\n", ev);
			for (;;) {
				nl = memchr(p, '\n', (size_t)(end - p));
				http_puts(o, "data: ");
				http_put(o, p, (size_t)((nl ? nl : end) - p));
				http_puts(o, "\n");
				if (nl == NULL)
					break;
				p = nl + 1;
			}
		} else {
			http_printf(o, "event: %s;base64\ndata: ",
			    ev != NULL ? ev : "message");
			transport_base64(o, m->data, m->len);
			http_puts(o, "\n");
		}
		return http_puts(o, "\n");
	case TRANSPORT_SCRIPT:
		transport_script_open(t, o);
		transport_json_message(o, m);
		return http_puts(o, ")</script>\n");
	case TRANSPORT_RAW:
		http_put(o, m->data, m->len);
		return http_puts(o, "\n");
	}
	return 0;
}

int
transport_gap(struct transport *t, struct http_out *o, int64_t gap,
    const struct store_msg *prev)
{
	char num[TRANSPORT_NUM_MAX];
	int n;

	switch (t->kind) {
	case TRANSPORT_MIXED:
		if (t->state == MIXED_PENDING) {
			if (prev != NULL)
				http_put(o, prev->data, prev->len);
			http_printf(o, "\r\n--%s\r\n", t->boundary);
		}
		n = snprintf(num, sizeof(num), "%" PRId64, gap);
		http_printf(o, "Content-Type: text/plain; charset=utf-8\r\n"
		    "X-Push-Gap: %s\r\nContent-Length: %d\r\n\r\n"
		    "%s\r\n--%s\r\n", num, n, num, t->boundary);
		t->state = MIXED_OPEN;
		return o->failed ? -1 : 0;
	case TRANSPORT_SSE:
		return http_printf(o, "event: gap\ndata: %" PRId64 "\n\n", gap);
	case TRANSPORT_SCRIPT:
		transport_script_open(t, o);
		return http_printf(o, "{\"gap\":%" PRId64 "})</script>\n", gap);
	case TRANSPORT_RAW:
		return http_printf(o, "#pushcgi-gap %" PRId64 "\n", gap);
	}
	return 0;
}

int
transport_heartbeat(struct transport *t, struct http_out *o,
    const struct store_msg *prev, int part)
{
	int first = part != TRANSPORT_BEAT_REST;
	int rest = part != TRANSPORT_BEAT_FIRST;

	switch (t->kind) {
	case TRANSPORT_MIXED:
		if (t->state == MIXED_PENDING && prev != NULL) {
			/* The same frame again: nothing changes on screen. */
			if (first)
				http_put(o, prev->data, prev->len);
			if (rest)
				transport_mixed_ahead(t, o, t->guess);
			return o->failed ? -1 : 0;
		}
		if (first)
			http_puts(o, "X-Heartbeat: 1");
		if (rest)
			http_puts(o, "\r\n");
		return o->failed ? -1 : 0;
	case TRANSPORT_SSE:
		return http_puts(o, first ? (rest ? ":\n" : ":") : "\n");
	case TRANSPORT_SCRIPT:
		return http_puts(o, first ? (rest ? " \n" : " ") : "\n");
	case TRANSPORT_RAW:
		return http_puts(o, first && rest ? "\n\n" : "\n");
	}
	return 0;
}

int
transport_end(struct transport *t, struct http_out *o,
    const struct store_msg *prev)
{
	if (t->kind != TRANSPORT_MIXED || t->state == MIXED_DONE)
		return o->failed ? -1 : 0;
	if (t->state == MIXED_PENDING && prev != NULL)
		http_put(o, prev->data, prev->len);
	else
		http_puts(o, "\r\n");
	t->state = MIXED_DONE;
	return http_printf(o, "\r\n--%s--\r\n", t->boundary);
}

int
transport_utf8_valid(const void *p, size_t n)
{
	const unsigned char *s = p, *end = s + n;
	unsigned c;
	int k;

	while (s < end) {
		c = *s;
		if (c < 0x80) {
			s++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			k = 1;
		else if (c >= 0xe0 && c <= 0xef)
			k = 2;
		else if (c >= 0xf0 && c <= 0xf4)
			k = 3;
		else
			return 0;
		if (end - s <= k)
			return 0;
		/* No overlongs, no surrogates, nothing above U+10FFFF. */
		if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f) ||
		    (c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] > 0x8f))
			return 0;
		for (int i = 1; i <= k; i++)
			if ((s[i] & 0xc0) != 0x80)
				return 0;
		s += k + 1;
	}
	return 1;
}

int
transport_base64(struct http_out *o, const void *p, size_t n)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *s = p;
	char out[TRANSPORT_B64_CHUNK / 3 * 4];
	size_t i, k = 0;
	unsigned v;

	for (i = 0; i + 3 <= n; i += 3) {
		v = (unsigned)s[i] << 16 | (unsigned)s[i + 1] << 8 | s[i + 2];
		out[k++] = tab[v >> 18];
		out[k++] = tab[(v >> 12) & 63];
		out[k++] = tab[(v >> 6) & 63];
		out[k++] = tab[v & 63];
		if (k == sizeof(out)) {
			if (http_put(o, out, k) != 0)
				return -1;
			k = 0;
		}
	}
	if (n - i == 1) {
		v = (unsigned)s[i] << 16;
		out[k++] = tab[v >> 18];
		out[k++] = tab[(v >> 12) & 63];
		out[k++] = '=';
		out[k++] = '=';
	} else if (n - i == 2) {
		v = (unsigned)s[i] << 16 | (unsigned)s[i + 1] << 8;
		out[k++] = tab[v >> 18];
		out[k++] = tab[(v >> 12) & 63];
		out[k++] = tab[(v >> 6) & 63];
		out[k++] = '=';
	}
	return http_put(o, out, k);
}

int
transport_json_string(struct http_out *o, const void *p, size_t n)
{
	const unsigned char *s = p, *run = p, *end = s + n;
	char esc[sizeof("\\u001f")];

	http_puts(o, "\"");
	for (; s < end; s++) {
		const char *rep = NULL;

		switch (*s) {
		case '"': rep = "\\\""; break;
		case '\\': rep = "\\\\"; break;
		case '\n': rep = "\\n"; break;
		case '\r': rep = "\\r"; break;
		case '\t': rep = "\\t"; break;
		case '<': rep = "\\u003c"; break;
		case '>': rep = "\\u003e"; break;
		case '&': rep = "\\u0026"; break;
		case '\'': rep = "\\u0027"; break;
		case 0xe2:
			/* U+2028 and U+2029 end a line in JavaScript. */
			if (end - s >= 3 && s[1] == 0x80 &&
			    (s[2] == 0xa8 || s[2] == 0xa9)) {
				http_put(o, run, (size_t)(s - run));
				http_puts(o, s[2] == 0xa8 ? "\\u2028" :
				    "\\u2029");
				s += 2;
				run = s + 1;
			}
			continue;
		default:
			if (*s < 0x20 || *s == 0x7f) {
				snprintf(esc, sizeof(esc), "\\u%04x", *s);
				rep = esc;
			}
		}
		if (rep != NULL) {
			http_put(o, run, (size_t)(s - run));
			http_puts(o, rep);
			run = s + 1;
		}
	}
	http_put(o, run, (size_t)(s - run));
	return http_puts(o, "\"");
}

int
transport_json_message(struct http_out *o, const struct store_msg *m)
{
	int text = transport_utf8_valid(m->data, m->len);

	http_printf(o, "{\"id\":%" PRId64 ",\"channel\":", m->id);
	transport_json_string(o, m->channel, strlen(m->channel));
	http_printf(o, ",\"time\":%" PRId64 ",\"type\":", m->time_ms);
	transport_json_string(o, m->type, strlen(m->type));
	http_puts(o, ",\"event\":");
	if (m->event != NULL)
		transport_json_string(o, m->event, strlen(m->event));
	else
		http_puts(o, "null");
	http_puts(o, ",\"data\":");
	if (text)
		transport_json_string(o, m->data, m->len);
	else {
		http_puts(o, "\"");
		transport_base64(o, m->data, m->len);
		http_puts(o, "\",\"encoding\":\"base64\"");
	}
	return http_puts(o, "}");
}
