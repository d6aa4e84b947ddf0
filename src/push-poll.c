/*
 * push-poll: the long-poll responder.  One request, one answer: every
 * retained message after the client's cursor at once, or, when there is
 * none, the request is held until one is published or the timeout passes.
 *
 * Runs as plain CGI or as a threaded FastCGI server, whichever way the
 * web server starts it.  Request:
 *
 *   GET /cgi-bin/push-poll?channel=a,b,c[&since=ID][&last=N][&timeout=S]
 *       [&format=json|raw][&callback=NAME][&token=T1,T2][&_=anything]
 *   GET /cgi-bin/push-poll?channel=a,b,c&format=page[&refresh=N]
 *       [&token=T1,T2][&_=anything]
 *
 *   channel=   1-32 channel names, comma-separated (required)
 *   since=ID   the cursor: answer with the messages after ID.  Without
 *              it, the If-None-Match header is the cursor (an ETag this
 *              responder sent: "ID" quoted, W/"ID" or bare digits), else
 *              the Last-Event-ID header (digits).  A cursor is 1-19
 *              decimal digits, at most 2^63-1.
 *   last=N     no cursor at all: answer at once with the newest N (0-100)
 *              messages of these channels (raw: the oldest of them; the
 *              next poll goes on from its ETag).  N = 0, or no message
 *              at all: wait for the next one, as without last=.  Without a
 *              cursor and without last=, wait for the next message
 *              published from now on.  last= and since= exclude each
 *              other; a header cursor makes last= void.
 *   timeout=S  seconds to hold a request that finds nothing (0 = answer
 *              at once).  Default: the config's poll_timeout (25 s);
 *              larger values are cut to poll_timeout_max (120 s).
 *   format=    json (default), raw or page
 *   refresh=N  page only: seconds after which the browser loads the page
 *              again (1-3600; default: the config's heartbeat)
 *   callback=  json only: JSONP; the answer becomes text/javascript
 *              NAME({...}); (identifiers joined by '.', at most 64 bytes)
 *   token=     subscriber tokens for private channels (lib/auth.h),
 *              comma-separated, one per private channel
 *   _=         ignored (cache busters)
 *
 * Any other parameter, a repeated one, a malformed cursor or one over its
 * cap is a 400 with a one-line reason.
 *
 * Answers, json: 200, application/json (or text/javascript, the type
 * RFC 9239 names for scripts, with callback=):
 *
 *   {"messages":[M,...],"next":ID[,"gap":G][,"more":true]}
 *
 * with each M as transport_json_message writes it (id, channel, time,
 * type, event, data, and "encoding":"base64" for data that is not UTF-8).
 * "next" is the cursor for the next poll: since=ID, or If-None-Match with
 * the ETag.  "gap":G means that messages up to id G on these channels were
 * removed by retention before this client saw them (the messages listed
 * are those still retained); "gap":0 means that the log was replaced and
 * ids start again: "next" may then be below the cursor asked for (the
 * cursor rule, lib/store.h; raw: X-Push-Gap: 0).  "more":true means the
 * answer was cut at POLL_ANSWER_MSGS messages or about POLL_ANSWER_BYTES
 * bytes of data (at least one message is always sent): poll again at
 * once.  A held request
 * that times out, or is ended by SIGTERM, is answered with no messages
 * and "next" naming the cursor to continue from (it may have moved past
 * messages of other channels, never past one of these).
 *
 * Headers: ETag: "NEXT" and X-Push-Next: NEXT.  Exception: a json request
 * held longer than the heartbeat interval (config "heartbeat") sends its
 * status and headers then (without ETag and X-Push-Next, which are not
 * known yet), followed by a space and a newline each heartbeat, so that
 * web-server idle timers do not fire and a client that left is noticed;
 * the body's "next" is always authoritative.  Whitespace before JSON (or
 * before the JSONP call) changes nothing for a parser.
 *
 * Answers, raw: the OLDEST message after the cursor alone, as the whole
 * body, with its own Content-Type and a Content-Length; ETag: "ID" and
 * X-Push-Id/X-Push-Next: ID of that message, X-Push-Channel, X-Push-Event
 * (when it has one), X-Push-Gap: G when a gap came before it.  A raw
 * request held to its timeout (or to SIGTERM) gets 304 Not Modified with
 * ETag: "CURSOR" and X-Push-Next (and X-Push-Gap when one was seen): a
 * script loops on "If-None-Match: <the last ETag>" and treats 200 as a
 * message and 304 as "nothing yet".  Raw answers cannot be started before
 * their message is known, so they get no heartbeats: under a web server
 * that notices a gone client only when writing (Apache mod_cgi), a raw
 * request that was left is released at its timeout.
 *
 * Answers, page (client pull, for browsers without script): 200 at once,
 * never held, a whole HTML page (lib/page.h) showing the newest message of
 * these channels (an HTML message as it is, text escaped in <pre>, an
 * image as an <img> of its raw URL: since=ID-1&format=raw&timeout=0),
 * its id and time, or that there is none yet; Content-Type text/html;
 * charset=utf-8, Refresh: N, Cache-Control: no-store, no ETag.  since=,
 * last=, timeout= and callback= do not apply (400); cursor headers are
 * ignored; gaps do not apply.
 *
 * CORS: when the request's Origin is allowed by a cors_origin line,
 * every answer carries Access-Control-Allow-Origin and
 * Access-Control-Expose-Headers (ETag and the X-Push- headers).  OPTIONS
 * (the preflight a browser sends before If-None-Match or Last-Event-ID
 * headers cross origins) is answered 204 with the allowed methods and
 * headers and Access-Control-Max-Age when the Origin is allowed, else
 * 403.  A cross-origin page avoids the preflight by using since=.
 *
 * Other answers: 405 (with Allow) for methods other than GET and OPTIONS;
 * 403 for a private channel without a good token (missing, wrong,
 * expired), 400 for a malformed token=; 503 with Retry-After when too many
 * requests are held (max_subscribers, max_channel_subscribers) or the
 * process is stopping; 500 for a failure of the log.
 *
 * A request held longer than POLL_REGISTER_MS (1 s) is registered in the
 * log's streams table (it counts as a subscriber for pushctl stat and the
 * per-channel limit) until it is answered or the client leaves; an answer
 * given sooner writes nothing to the log, so that a thousand clients
 * polling again after each message do not queue for SQLite's write lock
 * before they can wait.  A
 * client that leaves while held is noticed while idle (the FastCGI
 * connection or the CGI pipe closes) and, for json, at the latest by the
 * heartbeat's failed write; the request and its streams row are then
 * released.
 *
 * Failure sites (the number in the error-log line): 1xx request reading,
 * 4xx process set-up, 6xx this file.
 */
#include "config.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "hub.h"
#include "mono.h"
#include "page.h"
#include "park.h"
#include "serve.h"
#include "transport.h"
#include "valid.h"

#define POLL_PROG          "push-poll"
#define POLL_ANSWER_MSGS   100          /* messages in one json answer */
#define POLL_ANSWER_BYTES  (1L << 20)   /* data bytes after which an answer
                                           is cut (one message may be
                                           larger: it goes alone) */
#define POLL_MSG_OVERHEAD  256          /* bytes counted per message for
                                           its JSON fields */
#define POLL_LAST_MAX      TRANSPORT_LAST_MAX  /* largest last=N */
#define POLL_REGISTER_MS   1000         /* a held poll is registered as a
                                           subscriber after this long */
#define POLL_MAX_AGE       "600"        /* preflight cache, seconds */
#define POLL_NUM_MAX       24           /* bytes of a decimal int64 + 1 */
#define POLL_ETAG_MAX      (POLL_NUM_MAX + 2)
#define POLL_JSONP_TYPE    "text/javascript; charset=utf-8" /* RFC 9239 */
#define POLL_EXPOSE        "ETag, X-Push-Next, X-Push-Id, X-Push-Gap, " \
                           "X-Push-Channel, X-Push-Event"

/* One poll's answer as it is collected.  Messages are held references
 * (hub_msg_hold), dropped by poll_release. */
struct poll {
	struct hub_msg *msg[POLL_ANSWER_MSGS];
	int n;
	int cap;                   /* messages this answer may take */
	long bytes;                /* data bytes collected */
	int64_t gap;               /* highest gap seen, 0 = none */
	int reset;                 /* the log was replaced (HUB_RESET) */
	int more;                  /* the answer was cut: more are waiting */
	int latest;                /* collecting hub_sub_latest: take all */
};

static int poll_handle(struct serve *, struct http_req *);
static int poll_request(struct transport_req *, struct serve *,
    struct http_req *);
static int poll_preflight(struct serve *, struct http_req *, int);
static int poll_refuse(struct http_req *, int, const char *);
static int poll_collect(void *, struct hub_msg *, int64_t);
static int poll_gather(struct poll *, struct hub_sub *, struct http_req *,
    int);
static int poll_answer(struct poll *, enum transport_poll_format,
    const char *, struct http_req *, int64_t);
static int poll_answer_json(struct poll *, const char *, struct http_req *,
    int64_t);
static int poll_answer_raw(struct poll *, struct http_req *, int64_t);
static int poll_page(struct serve *, struct http_req *, struct transport_req *,
    struct poll *);
static void poll_release(struct poll *);
static int poll_subscribe(struct serve *, struct http_req *,
    struct transport_req *, struct hub_sub **, int64_t, int);
static int poll_hold(struct serve *, struct http_req *,
    struct transport_req *, struct poll *, struct hub_sub *, int64_t *,
    long long);

/*
 * A held poll under FastCGI, parked (park.h): it owns no thread while it
 * waits.  The request's copy keeps its response headers (CORS) and its
 * output; the loop answers it when something comes, at its timeout or
 * at the stop, and sends its heartbeats; after POLL_REGISTER_MS the
 * worker registers it as a subscriber (hub_sub_register).
 */
struct held {
	struct http_req r;
	struct poll p;
	struct serve *s;
	struct hub_sub *sub;
	enum transport_poll_format format;
	char callback[VALID_CALLBACK_MAX + 1];
	int64_t cursor;
	long long deadline;        /* monotonic ms: answer with nothing */
	long long register_at;     /* ... register as a subscriber, 0 done */
	long long next_beat, probe_at;
	int notified;              /* hub_sub_notify was set */
	struct park_req *pr;       /* its place in the loop (registering) */
	int reg;                   /* HELD_REG_*, atomic */
	int reg_rc;                /* the refusal (HUB_E*), once HELD_REG_NO */
	char reg_err[HTTP_REASON_MAX];
};

enum { HELD_REG_NOT, HELD_REG_ASKED, HELD_REG_DONE, HELD_REG_NO };

static int poll_park(struct serve *, struct http_req *,
    struct transport_req *, struct poll *, struct hub_sub **, int64_t,
    long long);
static int held_wake(struct park_req *, void *);
static int held_timer(struct park_req *, void *);
static int held_stop(struct park_req *, void *);
static void held_detach(void *);
static void held_release(void *);

static int held_quick(void *);

static const struct park_ops held_ops = {
	held_wake, held_timer, held_stop, held_detach, held_release,
	held_quick
};

int
main(void)
{
	return serve_main(POLL_PROG, poll_handle, SERVE_HUB);
}

/* OPTIONS: the CORS preflight; cors: http_cors said the Origin is
 * allowed.  0 after the answer, or -1 after http_fail. */
static int
poll_preflight(struct serve *s, struct http_req *r, int cors)
{
	const char *origin;

	(void)s;
	if (http_read_body(r, 0, NULL, NULL) != 0)
		return -1;
	if (http_header_in(r, "HTTP_ORIGIN", &origin) != 0 || origin == NULL)
		/* LOG: OPTIONS without an Origin header */
		return http_fail(r, 403, 601, "OPTIONS is a CORS preflight: "
		    "it needs an Origin header");
	if (!cors)
		/* LOG: OPTIONS from an origin not in cors_origin */
		return http_fail(r, 403, 602, "origin not allowed (see "
		    "cors_origin in the config)");
	http_header(r, "Access-Control-Allow-Methods", "GET, OPTIONS");
	http_header(r, "Access-Control-Allow-Headers",
	    "If-None-Match, Last-Event-ID");
	http_header(r, "Access-Control-Max-Age", POLL_MAX_AGE);
	http_header(r, "Allow", "GET, OPTIONS");
	http_start_held(r, 204, NULL);
	return 0;
}

/* A 400 for what transport_request refused (rc), with its reason why.
 * Returns -1. */
static int
poll_refuse(struct http_req *r, int rc, const char *why)
{
	switch (rc) {
	case TRANSPORT_EPARAMS:
		/* LOG: the query string (unknown or repeated parameter, caps) */
		return http_fail(r, 400, 603, "%s", why);
	case TRANSPORT_ENOCHANNEL:
		/* LOG: channel= missing */
		return http_fail(r, 400, 604, "%s", why);
	case TRANSPORT_ECHANNEL:
		/* LOG: channel= not a list of channel names */
		return http_fail(r, 400, 605, "%s", why);
	case TRANSPORT_EFORMAT:
		/* LOG: format= unknown */
		return http_fail(r, 400, 606, "%s", why);
	case TRANSPORT_ECALLBACKFMT:
		/* LOG: callback= without format=json */
		return http_fail(r, 400, 607, "%s", why);
	case TRANSPORT_ECALLBACK:
		/* LOG: callback= not a JavaScript name */
		return http_fail(r, 400, 608, "%s", why);
	case TRANSPORT_ETIMEOUT:
		/* LOG: timeout= not a number */
		return http_fail(r, 400, 609, "%s", why);
	case TRANSPORT_ESINCE:
		/* LOG: since= not a message id */
		return http_fail(r, 400, 611, "%s", why);
	case TRANSPORT_EINM:
		/* LOG: If-None-Match not one of this responder's ETags */
		return http_fail(r, 400, 612, "%s", why);
	case TRANSPORT_ELEID:
		/* LOG: the Last-Event-ID header not a message id */
		return http_fail(r, 400, 613, "%s", why);
	case TRANSPORT_ELASTSINCE:
		/* LOG: last= together with since= */
		return http_fail(r, 400, 614, "%s", why);
	case TRANSPORT_ELAST:
		/* LOG: last= out of range */
		return http_fail(r, 400, 615, "%s", why);
	case TRANSPORT_EREFRESHFMT:
		/* LOG: refresh= without format=page */
		return http_fail(r, 400, 625, "%s", why);
	case TRANSPORT_EREFRESH:
		/* LOG: refresh= out of range */
		return http_fail(r, 400, 626, "%s", why);
	case TRANSPORT_EPAGECURSOR:
		/* LOG: format=page with since=, last= or timeout= */
		return http_fail(r, 400, 627, "%s", why);
	}
	/* LOG: a refusal of transport_request this responder does not know */
	return http_fail(r, 400, 631, "%s", why);
}

/* Parse and check the request into a (CORS headers are added by the
 * caller first, so that refusals carry them too).  0, or -1 after
 * http_fail. */
static int
poll_request(struct transport_req *a, struct serve *s, struct http_req *r)
{
	char why[HTTP_REASON_MAX];
	const char *inm, *leid;
	int rc;

	/* The cursor: since=, else If-None-Match, else Last-Event-ID. */
	if (http_header_in(r, "HTTP_IF_NONE_MATCH", &inm) != 0 ||
	    http_header_in(r, "HTTP_LAST_EVENT_ID", &leid) != 0)
		/* LOG: If-None-Match or Last-Event-ID over its cap */
		return http_fail(r, 400, 610, "If-None-Match or Last-Event-ID "
		    "longer than %d bytes", HTTP_HEADER_MAX);
	if ((rc = transport_request(a, TRANSPORT_FOR_POLL,
	    http_env(r, "QUERY_STRING"), NULL, inm, leid, &s->conf, why,
	    sizeof(why))) != 0)
		return poll_refuse(r, rc, why);

	rc = http_subscriber(&s->conf, a->chans, a->nchan, &a->params, why,
	    sizeof(why));
	if (rc == 400)
		/* LOG: token= malformed */
		return http_fail(r, 400, 616, "%s", why);
	if (rc != 0)
		/* LOG: a private channel without a valid token */
		return http_fail(r, 403, 617, "%s", why);
	return http_read_body(r, 0, NULL, NULL);
}

/*
 * The hub's delivery callback: collect one message or a gap into the
 * answer.  Refuses (1) a message once the answer is full, and anything
 * after that; the hub then keeps it for a later call.
 */
static int
poll_collect(void *arg, struct hub_msg *m, int64_t gap)
{
	struct poll *p = arg;
	long add;

	if (p->more)
		return 1;
	if (m == NULL) {
		/* After a full answer a gap belongs to the next one. */
		if (p->n >= p->cap && !p->latest) {
			p->more = 1;
			return 1;
		}
		if (gap == HUB_RESET) {
			/* Gaps of the old log mean nothing any more. */
			p->reset = 1;
			p->gap = 0;
		} else if (gap > p->gap)
			p->gap = gap;
		return 0;
	}
	add = (long)m->m.len + POLL_MSG_OVERHEAD;
	if (!p->latest && p->n > 0 &&
	    (p->n >= p->cap || p->bytes + add > POLL_ANSWER_BYTES)) {
		p->more = 1;
		return 1;
	}
	if (p->n >= POLL_ANSWER_MSGS) {
		/* Only hub_sub_latest gets here, with at most
		 * POLL_LAST_MAX (== POLL_ANSWER_MSGS) messages. */
		p->more = 1;
		return 1;
	}
	hub_msg_hold(m);
	p->msg[p->n++] = m;
	p->bytes += add;
	return 0;
}

/*
 * Collect what the subscription has after its cursor.  Returns 1 when
 * there is something to answer with (messages, or for json a gap), 0
 * when not, -1 after http_fail.
 */
static int
poll_gather(struct poll *p, struct hub_sub *sub, struct http_req *r,
    int json)
{
	int rc;

	rc = hub_sub_next(sub, poll_collect, p);
	if (rc == HUB_ERR)
		/* LOG: reading the messages after the cursor failed */
		return http_fail(r, 500, 618, "reading messages: %s",
		    hub_sub_error(sub));
	return p->n > 0 || (json && (p->gap > 0 || p->reset));
}

/* Drop the collected messages. */
static void
poll_release(struct poll *p)
{
	int i;

	for (i = 0; i < p->n; i++)
		hub_msg_drop(p->msg[i]);
	p->n = 0;
	p->bytes = 0;
}

/* Write the answer for what was collected; next: the cursor after it.
 * Not flushed: it goes out with the end of the request (under FastCGI
 * in one write with the end records, so the web server wakes once for
 * it).  0, or -1 (the client cannot be written). */
static int
poll_answer(struct poll *p, enum transport_poll_format format,
    const char *callback, struct http_req *r, int64_t next)
{
	if (format == TRANSPORT_POLL_RAW)
		return poll_answer_raw(p, r, next);
	return poll_answer_json(p, callback, r, next);
}

/*
 * json: the body is built in memory first, so that it goes out with a
 * Content-Length and the ETag (unless heartbeats started the response).
 */
static int
poll_answer_json(struct poll *p, const char *callback, struct http_req *r,
    int64_t next)
{
	struct http_out body;
	const struct store_msg *msgs[POLL_ANSWER_MSGS];
	char num[POLL_NUM_MAX], etag[POLL_ETAG_MAX];
	int i, rc;

	http_out_mem(&body);
	for (i = 0; i < p->n; i++)
		msgs[i] = &p->msg[i]->m;
	transport_poll_json(&body, msgs, p->n, next, p->reset ?
	    STORE_GAP_RESET : p->gap, p->more, callback);
	if (body.failed) {
		http_out_free(&body);
		/* LOG: out of memory for the JSON answer */
		return http_fail(r, 503, 619, "out of memory");
	}
	if (!r->started) {
		snprintf(num, sizeof(num), "%" PRId64, next);
		snprintf(etag, sizeof(etag), "\"%" PRId64 "\"", next);
		http_header(r, "ETag", etag);
		http_header(r, "X-Push-Next", num);
		snprintf(num, sizeof(num), "%zu", body.used);
		http_header(r, "Content-Length", num);
		http_start_held(r, 200, callback[0] != '\0' ?
		    POLL_JSONP_TYPE : "application/json");
	}
	rc = http_put(&r->out, body.buf, body.used);
	http_out_free(&body);
	return rc;
}

/* raw: the oldest collected message alone, or 304 when there is none. */
static int
poll_answer_raw(struct poll *p, struct http_req *r, int64_t next)
{
	const struct store_msg *m;
	char num[POLL_NUM_MAX], etag[POLL_ETAG_MAX];

	if (p->gap > 0 || p->reset) {
		snprintf(num, sizeof(num), "%" PRId64, p->gap);
		http_header(r, "X-Push-Gap", num);
	}
	if (p->n == 0) {
		snprintf(num, sizeof(num), "%" PRId64, next);
		snprintf(etag, sizeof(etag), "\"%" PRId64 "\"", next);
		http_header(r, "ETag", etag);
		http_header(r, "X-Push-Next", num);
		return http_start_held(r, 304, NULL);
	}
	m = &p->msg[0]->m;
	snprintf(num, sizeof(num), "%" PRId64, m->id);
	snprintf(etag, sizeof(etag), "\"%" PRId64 "\"", m->id);
	http_header(r, "ETag", etag);
	http_header(r, "X-Push-Id", num);
	http_header(r, "X-Push-Next", num);
	http_header(r, "X-Push-Channel", m->channel);
	if (m->event != NULL)
		http_header(r, "X-Push-Event", m->event);
	http_header(r, "X-Content-Type-Options", "nosniff");
	snprintf(num, sizeof(num), "%zu", m->len);
	http_header(r, "Content-Length", num);
	if (http_start_held(r, 200, m->type) != 0)
		return -1;
	return http_put(&r->out, m->data, m->len);
}

/*
 * format=page: the newest message (or none) as an HTML page, at once.
 * Not flushed, like poll_answer.  0, or -1 (after http_fail, or the
 * client cannot be written).
 */
static int
poll_page(struct serve *s, struct http_req *r, struct transport_req *a,
    struct poll *p)
{
	struct hub_sub *sub = NULL;
	struct http_out body;
	struct page_ask pa;
	char num[POLL_NUM_MAX];
	int rc;

	if (poll_subscribe(s, r, a, &sub, -1, 0) != HUB_OK)
		return -1;
	p->latest = 1;
	rc = hub_sub_latest(sub, 1, poll_collect, p);
	p->latest = 0;
	if (rc == HUB_ERR) {
		/* LOG: format=page: reading the newest message failed */
		http_fail(r, 500, 628, "reading messages: %s",
		    hub_sub_error(sub));
		hub_unsubscribe(sub);
		return -1;
	}
	hub_unsubscribe(sub);
	pa.channels = http_param(&a->params, "channel");
	pa.token = http_param(&a->params, "token");
	pa.refresh = a->refresh;
	http_out_mem(&body);
	page_write(&body, &pa, p->n > 0 ? &p->msg[p->n - 1]->m : NULL);
	if (body.failed) {
		http_out_free(&body);
		/* LOG: out of memory for the page */
		return http_fail(r, 503, 629, "out of memory");
	}
	snprintf(num, sizeof(num), "%d", a->refresh);
	http_header(r, "Refresh", num);
	http_header(r, "Cache-Control", "no-store");
	http_header(r, "X-Content-Type-Options", "nosniff");
	snprintf(num, sizeof(num), "%zu", body.used);
	http_header(r, "Content-Length", num);
	rc = http_start_held(r, 200, PAGE_TYPE);
	if (rc == 0)
		rc = http_put(&r->out, body.buf, body.used);
	http_out_free(&body);
	return rc;
}

/* Subscribe (with flags) after cursor `after`; a refusal is recorded
 * with http_fail.  HUB_OK or the hub's code. */
static int
poll_subscribe(struct serve *s, struct http_req *r, struct transport_req *a,
    struct hub_sub **sub, int64_t after, int flags)
{
	char err[HTTP_REASON_MAX];
	int64_t stream;
	int rc;

	rc = hub_subscribe(s->hub, sub, a->chans, a->nchan, after, flags,
	    &stream, err, sizeof(err));
	if (rc == HUB_EFULL)
		/* LOG: subscribing: max_subscribers reached */
		http_fail(r, 503, 620, "%s", err);
	else if (rc == HUB_ESTOP)
		/* LOG: subscribing: the process is stopping */
		http_fail(r, 503, 621, "%s", err);
	else if (rc == HUB_EUNAVAIL)
		/* LOG: subscribing: the log cannot be used now */
		http_fail(r, 503, 630, "%s", err);
	else if (rc != HUB_OK)
		/* LOG: subscribing failed */
		http_fail(r, 500, 622, "%s", err);
	return rc;
}

/*
 * Hold the request on the registered subscription until something comes
 * (1), the timeout or the stop (0: answer with nothing), or the client
 * leaves or cannot be written (-1; also after http_fail).  json sends
 * heartbeats, each in two writes TRANSPORT_PROBE_MS apart (see
 * transport_heartbeat for why), starting the response at the first one.
 */
static int
poll_hold(struct serve *s, struct http_req *r, struct transport_req *a,
    struct poll *p, struct hub_sub *sub, int64_t *cursor, long long deadline)
{
	long long now, next_beat, probe_at = 0, due;
	int beat_ms = s->conf.heartbeat * 1000, json, w, rc;

	json = a->format == TRANSPORT_POLL_JSON;
	next_beat = mono_ms() + beat_ms;
	for (;;) {
		if (hub_stopping(s->hub) || serve_stopping())
			return 0;
		now = mono_ms();
		if (now >= deadline && probe_at == 0)
			return 0;
		due = deadline;
		if (json && probe_at != 0 && probe_at < due)
			due = probe_at;
		else if (json && next_beat < due)
			due = next_beat;
		w = serve_wait(s, r, hub_sub_fd(sub),
		    due > now ? (int)(due - now) : 0);
		if (w == SERVE_STOP)
			return 0;
		if (w == SERVE_GONE)
			return -1;
		if (w == SERVE_WAKE) {
			rc = poll_gather(p, sub, r, json);
			*cursor = hub_sub_cursor(sub);
			if (rc != 0) {
				if (probe_at != 0) {
					http_puts(&r->out, "\n");
					probe_at = 0;
				}
				return rc;
			}
			continue;
		}
		now = mono_ms();
		if (!json || now < due)
			continue;
		if (probe_at != 0) {
			http_puts(&r->out, "\n");
			probe_at = 0;
		} else if (now < deadline) {
			/* Each heartbeat also looks whether the log is still
			 * the one at the path (hub.h). */
			hub_watch(s->hub);
			if (!r->started) {
				http_header(r, "X-Content-Type-Options",
				    "nosniff");
				http_start(r, 200, a->callback[0] != '\0' ?
				    POLL_JSONP_TYPE :
				    "application/json");
			}
			http_puts(&r->out, " ");
			probe_at = now + TRANSPORT_PROBE_MS;
			next_beat = now + beat_ms;
		}
		if (http_flush(&r->out) != 0)
			return -1;
	}
}

/* The next time a held poll's timer is due. */
static long long
held_due(const struct held *h)
{
	long long due = h->deadline;

	if (h->register_at != 0 && h->register_at < due)
		due = h->register_at;
	if (h->format == TRANSPORT_POLL_JSON) {
		if (h->probe_at != 0 && h->probe_at < due)
			due = h->probe_at;
		else if (h->probe_at == 0 && h->next_beat < due)
			due = h->next_beat;
	}
	return due;
}

/*
 * Answer a held poll with what it collected (or with nothing, or with
 * the failure recorded in h->r) and end the request, without blocking.
 * PARK_END, or PARK_KEEP while a heartbeat's remainder is still on its
 * way (the loop calls held_wake again once it went).
 */
static int
held_answer(struct held *h)
{
	struct http_req *r = &h->r;
	int64_t next;

	if (http_pending(&r->out))
		return PARK_KEEP;
	if (http_nowait_begin(&r->out) != 0)
		return PARK_CLOSE;
	if (r->fail_status != 0)
		http_answer_failure(r);
	else {
		if (h->probe_at != 0) {
			http_puts(&r->out, "\n");
			h->probe_at = 0;
		}
		next = h->p.more ? h->p.msg[h->p.n - 1]->m.id : h->cursor;
		if (h->format == TRANSPORT_POLL_RAW && h->p.n > 0)
			next = h->p.msg[0]->m.id;
		poll_answer(&h->p, h->format, h->callback, r, next);
		if (r->fail_status != 0)
			http_answer_failure(r);
	}
	http_nowait_finish(&r->out);
	return PARK_END;
}

/* park.h's wake: something for the poll (or the registration's answer,
 * or the stop): answer, or keep holding. */
static int
held_wake(struct park_req *pr, void *arg)
{
	struct held *h = arg;
	int rc;

	if (__atomic_load_n(&h->reg, __ATOMIC_ACQUIRE) == HELD_REG_NO) {
		if (h->reg_rc == HUB_EFULL)
			/* LOG: a held poll: max_channel_subscribers reached */
			http_fail(&h->r, 503, 632, "%s", h->reg_err);
		else if (h->reg_rc == HUB_EUNAVAIL)
			/* LOG: a held poll: the log cannot be used now */
			http_fail(&h->r, 503, 633, "%s", h->reg_err);
		else
			/* LOG: a held poll: registering it failed */
			http_fail(&h->r, 500, 634, "%s", h->reg_err);
		return held_answer(h);
	}
	if (!h->notified) {
		/* The hub wakes it through the loop, with no descriptor; a
		 * wake-up since its thread looked calls park_wake now.  Until
		 * then there is nothing to look for. */
		h->notified = 1;
		hub_sub_notify(h->sub, park_wake, pr);
		park_due(pr, held_due(h));
		return PARK_KEEP;
	}
	/* Gather unless what came before is still to be answered (a
	 * heartbeat's rest was on its way). */
	if (!(h->p.n > 0 || (h->format == TRANSPORT_POLL_JSON &&
	    (h->p.gap > 0 || h->p.reset)))) {
		rc = poll_gather(&h->p, h->sub, &h->r,
		    h->format == TRANSPORT_POLL_JSON);
		h->cursor = hub_sub_cursor(h->sub);
		if (rc == 0 && !hub_stopping(h->s->hub) && !serve_stopping()) {
			park_due(pr, held_due(h));
			return PARK_KEEP;
		}
	}
	return held_answer(h);
}

/* The worker: register the held poll as a subscriber (a write to the
 * log), then tell the loop how that went if it was refused. */
static void
held_register(void *arg)
{
	struct held *h = arg;
	int rc;

	rc = hub_sub_register(h->sub, h->reg_err, sizeof(h->reg_err));
	if (rc == HUB_OK) {
		__atomic_store_n(&h->reg, HELD_REG_DONE, __ATOMIC_RELEASE);
		return;
	}
	h->reg_rc = rc;
	__atomic_store_n(&h->reg, HELD_REG_NO, __ATOMIC_RELEASE);
	park_wake(h->pr);
}

static void
held_watch(void *arg)
{
	hub_watch(arg);
}

/* park.h's timer: registration, heartbeats (json, two writes
 * TRANSPORT_PROBE_MS apart), the timeout. */
static int
held_timer(struct park_req *pr, void *arg)
{
	struct held *h = arg;
	struct http_req *r = &h->r;
	long long now = mono_ms();

	if (h->register_at != 0 && now >= h->register_at) {
		h->register_at = 0;
		h->pr = pr;
		__atomic_store_n(&h->reg, HELD_REG_ASKED, __ATOMIC_RELEASE);
		if (park_job(pr, held_register, h) != 0)
			__atomic_store_n(&h->reg, HELD_REG_NOT,
			    __ATOMIC_RELEASE);
	}
	if (now >= h->deadline && h->probe_at == 0)
		return held_answer(h);
	if (h->format == TRANSPORT_POLL_JSON && !http_pending(&r->out)) {
		if (h->probe_at != 0 && now >= h->probe_at) {
			if (http_nowait_begin(&r->out) == 0) {
				http_puts(&r->out, "\n");
				http_nowait_end(&r->out);
			}
			h->probe_at = 0;
		} else if (h->probe_at == 0 && now >= h->next_beat &&
		    now < h->deadline) {
			/* Each heartbeat also looks whether the log is
			 * still the one at the path (hub.h). */
			park_job(pr, held_watch, h->s->hub);
			if (http_nowait_begin(&r->out) == 0) {
				if (!r->started) {
					http_header(r, "X-Content-Type-Options",
					    "nosniff");
					http_start(r, 200,
					    h->callback[0] != '\0' ?
					    POLL_JSONP_TYPE :
					    "application/json");
				}
				http_puts(&r->out, " ");
				http_nowait_end(&r->out);
			}
			h->probe_at = now + TRANSPORT_PROBE_MS;
			h->next_beat = now + h->s->conf.heartbeat * 1000;
		}
	}
	if (r->out.failed)
		return PARK_CLOSE;
	park_due(pr, held_due(h));
	return PARK_KEEP;
}

/* park.h's stop: answered with what it has (nothing). */
static int
held_stop(struct park_req *pr, void *arg)
{
	(void)pr;
	return held_answer(arg);
}

static void
held_detach(void *arg)
{
	(void)arg;
}

/* park.h's quick: a poll that was not registered has no row to remove:
 * the loop releases it itself. */
static int
held_quick(void *arg)
{
	struct held *h = arg;

	return __atomic_load_n(&h->reg, __ATOMIC_ACQUIRE) == HELD_REG_NOT;
}

/* park.h's release (the worker): the subscription (its row, if it was
 * registered), the messages, the output. */
static void
held_release(void *arg)
{
	struct held *h = arg;

	hub_unsubscribe(h->sub);
	poll_release(&h->p);
	http_out_free(&h->r.out);
	free(h);
}

/*
 * Under FastCGI: hold the poll in the process's loop instead of this
 * thread.  *sub is taken over (set to NULL) when it is parked: then 0,
 * and r belongs to the loop; -1 when the thread is to hold it itself.
 */
static int
poll_park(struct serve *s, struct http_req *r, struct transport_req *a,
    struct poll *p, struct hub_sub **sub, int64_t cursor, long long deadline)
{
	struct held *h;
	long long now = mono_ms();

	if (!s->fcgi || (h = calloc(1, sizeof(*h))) == NULL)
		return -1;
	h->p = *p;
	h->s = s;
	h->sub = *sub;
	h->format = a->format;
	snprintf(h->callback, sizeof(h->callback), "%s", a->callback);
	h->cursor = cursor;
	h->deadline = deadline;
	h->register_at = now + POLL_REGISTER_MS < deadline ?
	    now + POLL_REGISTER_MS : 0;
	h->next_beat = now + s->conf.heartbeat * 1000;
	if (serve_park_req(s, r, &h->r, -1, held_due(h), &held_ops, h) !=
	    0) {
		free(h);
		return -1;
	}
	*sub = NULL;
	return 0;
}

static int
poll_handle(struct serve *s, struct http_req *r)
{
	const char *m = http_method(r);
	struct transport_req *a;
	struct poll *p;
	struct hub_sub *sub = NULL;
	int64_t cursor, next;
	long long deadline, quiet;
	int rc, cors;

	/* Every answer carries the CORS headers when the Origin is
	 * allowed. */
	cors = http_cors(r, &s->conf, POLL_EXPOSE);
	if (strcmp(m, "OPTIONS") == 0)
		return poll_preflight(s, r, cors);
	if (strcmp(m, "GET") != 0) {
		http_header(r, "Allow", "GET, OPTIONS");
		/* LOG: method not GET or OPTIONS */
		return http_fail(r, 405, 600, "only GET (and OPTIONS)");
	}
	/* a is read only once transport_request filled it whole. */
	if ((a = malloc(sizeof(*a))) == NULL ||
	    (p = calloc(1, sizeof(*p))) == NULL) {
		free(a);
		/* LOG: out of memory for the request */
		return http_fail(r, 503, 623, "out of memory");
	}
	p->cap = POLL_ANSWER_MSGS;
	if (poll_request(a, s, r) != 0)
		goto out;
	if (a->format == TRANSPORT_POLL_RAW)
		p->cap = 1;
	/* A replaced log is noticed by polls too: two stat() calls
	 * (hub.h) before the cursor meets the log, at most every
	 * HUB_WATCH_MS for the process. */
	hub_watch_soon(s->hub);
	if (a->format == TRANSPORT_POLL_PAGE) {
		poll_page(s, r, a, p);
		goto out;
	}

	/* First look without registering: most polls find something. */
	if (poll_subscribe(s, r, a, &sub, a->since, 0) != HUB_OK)
		goto out;
	if (a->since < 0 && a->last > 0) {
		p->latest = 1;
		rc = hub_sub_latest(sub, a->last, poll_collect, p);
		p->latest = 0;
		if (rc == HUB_ERR) {
			/* LOG: last=: reading the newest messages failed */
			http_fail(r, 500, 624, "reading messages: %s",
			    hub_sub_error(sub));
			goto out;
		}
		if (p->n > 0) {
			/* raw sends the oldest; the next poll goes on
			 * from it. */
			if (a->format == TRANSPORT_POLL_RAW && p->n > 1)
				p->more = 1;
			next = p->more ? p->msg[a->format ==
			    TRANSPORT_POLL_RAW ? 0 : p->n - 1]->m.id :
			    hub_sub_cursor(sub);
			poll_answer(p, a->format, a->callback, r, next);
			goto out;
		}
	}
	rc = poll_gather(p, sub, r, a->format == TRANSPORT_POLL_JSON);
	if (rc < 0)
		goto out;
	cursor = hub_sub_cursor(sub);
	deadline = mono_ms() + (long long)a->timeout * 1000;
	if (rc == 0 && a->timeout > 0 && !serve_stopping() &&
	    poll_park(s, r, a, p, &sub, cursor, deadline) == 0)
		goto out;               /* held by the loop now */
	if (rc == 0 && a->timeout > 0 && !serve_stopping()) {
		/* Nothing yet: hold, unregistered for a moment (a client
		 * that polls again right after each answer then costs no
		 * write to the log), then registered as a subscriber from
		 * where the wait got to. */
		quiet = mono_ms() + POLL_REGISTER_MS;
		rc = poll_hold(s, r, a, p, sub, &cursor,
		    quiet < deadline ? quiet : deadline);
		if (rc < 0)
			goto out;
	}
	if (rc == 0 && p->n == 0 && mono_ms() < deadline &&
	    !serve_stopping() && !hub_stopping(s->hub)) {
		hub_unsubscribe(sub);
		sub = NULL;
		if (poll_subscribe(s, r, a, &sub, cursor, HUB_REGISTER) !=
		    HUB_OK)
			goto out;
		rc = poll_gather(p, sub, r, a->format == TRANSPORT_POLL_JSON);
		cursor = hub_sub_cursor(sub);
		if (rc == 0)
			rc = poll_hold(s, r, a, p, sub, &cursor, deadline);
		if (rc < 0)
			goto out;
	}
	next = p->more ? p->msg[p->n - 1]->m.id : cursor;
	if (a->format == TRANSPORT_POLL_RAW && p->n > 0)
		next = p->msg[0]->m.id;
	poll_answer(p, a->format, a->callback, r, next);
	/* A registered poll's unsubscribe writes to the log: the answer
	 * goes first. */
	if (hub_sub_handle(sub)[0] != '\0')
		http_flush(&r->out);
out:
	hub_unsubscribe(sub);
	poll_release(p);
	free(p);
	free(a);
	return r->fail_status != 0 ? -1 : 0;
}
