/*
 * push-stream: the stream responder.  One long response per client,
 * carrying every message published on its channels, as it is published.
 *
 * Runs as plain CGI or as a threaded FastCGI server, whichever way the
 * web server starts it.  Request:
 *
 *   GET /cgi-bin/push-stream?channel=a,b,c[&format=mixed|sse|script|raw]
 *       [&since=ID | &last_event_id=ID | &last=N][&heartbeat=S]
 *       [&callback=NAME][&_=anything]
 *
 *   channel=   1-32 channel names, comma-separated (required)
 *   format=    framing; without it, an Accept header naming
 *              text/event-stream gets sse, anything else mixed
 *   since=ID   start after message ID (last_event_id= is the same; the
 *              Last-Event-ID header, sent by a reconnecting EventSource,
 *              takes precedence over both)
 *   last=N     start with the newest N messages (0-100); mixed starts
 *              with last=1 by default so that an image shows at once;
 *              the others start with what is published from now on
 *   heartbeat= seconds between heartbeats, 1 up to the configured value
 *   callback=  script format: the function called in the parent page
 *              (default "push")
 *   _=         ignored (cache busters)
 *
 * Any other parameter, a repeated one or one over its cap is a 400 with a
 * one-line reason; the framings, heartbeats and gap markers are described
 * in lib/transport.h; a gap marker with id 0 means that the log was
 * replaced and ids start again (the cursor rule, lib/mlog.h).  Every
 * response carries Cache-Control: no-cache, X-Accel-Buffering: no and
 * X-Push-Stream: the stream's handle
 * "ID.SECRET" (also sent as the first event by sse and script).  ID is
 * the stream's row in the log's streams table while it lasts; the handle
 * is a capability: a control request naming it ends the stream (see
 * push-publish; plain SQL can do the same with the ID alone, see
 * lib/mlog.h).  An ended stream, and every stream of a channel that is
 * ended as a whole, finishes cleanly at once (mixed closes its multipart
 * body) after every message published before the request.
 *
 * A client that leaves is noticed while idle (the FastCGI connection or the
 * CGI pipe closes) and at the latest by the next heartbeat's failed write;
 * its thread, descriptors and streams row are then released.  SIGTERM ends
 * every stream cleanly (mixed closes its multipart body) and the process
 * exits.  A channel under a configured private_channel prefix needs a
 * subscriber token in token= (lib/auth.h): 403 without a good one, 400
 * for a malformed token= parameter.
 *
 * Failure sites (the number in the error-log line): 1xx request reading,
 * 2xx parameters, 4xx process set-up, 5xx this file.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http.h"
#include "hub.h"
#include "mono.h"
#include "serve.h"
#include "transport.h"

#define STREAM_PROG "push-stream"

/* What the request asked for: ~13 KiB, on the heap (request threads have
 * small stacks) and freed once the subscription exists. */
struct stream_ask {
	struct transport_req q;
};

/* One stream's state while it lasts: kept small, there may be
 * thousands. */
struct stream {
	struct transport t;
	struct http_req *r;
	struct hub_msg *prev;      /* mixed: the latest message sent */
	long long next_beat;       /* monotonic ms of the next heartbeat */
	long long probe_at;        /* a heartbeat's second part is due, 0 */
	int beat_ms;
	int last;                  /* start with the newest N */
};

static int stream_handle(struct serve *, struct http_req *);
static int stream_request(struct stream_ask *, struct serve *,
    struct http_req *);
static int stream_refuse(struct http_req *, int, const char *);
static int stream_deliver(void *, struct hub_msg *, int64_t);
static int stream_direct(void *, struct hub_msg *, int64_t);
static void stream_beat_rest(struct stream *);

int
main(void)
{
	return serve_main(STREAM_PROG, stream_handle, SERVE_HUB);
}

/* Parse and check the request into a.  0, or -1 after http_fail. */
static int
stream_request(struct stream_ask *a, struct serve *s, struct http_req *r)
{
	const char *m = http_method(r), *accept, *leid;
	char why[HTTP_REASON_MAX];
	int rc;

	if (strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0) {
		http_header(r, "Allow", "GET, HEAD");
		/* LOG: method not GET or HEAD */
		return http_fail(r, 405, 501, "only GET and HEAD");
	}
	if (http_header_in(r, "HTTP_ACCEPT", &accept) != 0 ||
	    http_header_in(r, "HTTP_LAST_EVENT_ID", &leid) != 0)
		/* LOG: Accept or Last-Event-ID over its cap */
		return http_fail(r, 400, 509, "Accept or Last-Event-ID longer "
		    "than %d bytes", HTTP_HEADER_MAX);
	rc = transport_request(&a->q, TRANSPORT_FOR_STREAM,
	    http_env(r, "QUERY_STRING"), accept, NULL, leid, &s->conf, why,
	    sizeof(why));
	if (rc != 0)
		return stream_refuse(r, rc, why);
	rc = http_subscriber(&s->conf, a->q.chans, a->q.nchan, &a->q.params,
	    why, sizeof(why));
	if (rc == 400)
		/* LOG: token= malformed */
		return http_fail(r, 400, 510, "%s", why);
	if (rc != 0)
		/* LOG: a private channel without a valid token */
		return http_fail(r, 403, 511, "%s", why);
	return http_read_body(r, 0, NULL, NULL);
}

/* A 400 for what transport_request refused (rc), with its reason why.
 * Returns -1. */
static int
stream_refuse(struct http_req *r, int rc, const char *why)
{
	switch (rc) {
	case TRANSPORT_EPARAMS:
		/* LOG: the query string (unknown or repeated parameter, caps) */
		return http_fail(r, 400, 502, "%s", why);
	case TRANSPORT_ENOCHANNEL:
		/* LOG: channel= missing */
		return http_fail(r, 400, 521, "%s", why);
	case TRANSPORT_ECHANNEL:
		/* LOG: channel= not a list of channel names */
		return http_fail(r, 400, 522, "%s", why);
	case TRANSPORT_EFORMAT:
		/* LOG: format= unknown */
		return http_fail(r, 400, 523, "%s", why);
	case TRANSPORT_ESINCELEID:
		/* LOG: since= together with last_event_id= */
		return http_fail(r, 400, 524, "%s", why);
	case TRANSPORT_ESINCE:
		/* LOG: since= or last_event_id= not a message id */
		return http_fail(r, 400, 525, "%s", why);
	case TRANSPORT_ELASTSINCE:
		/* LOG: last= together with since= */
		return http_fail(r, 400, 526, "%s", why);
	case TRANSPORT_ELAST:
		/* LOG: last= out of range */
		return http_fail(r, 400, 527, "%s", why);
	case TRANSPORT_ELEID:
		/* LOG: the Last-Event-ID header not a message id */
		return http_fail(r, 400, 528, "%s", why);
	case TRANSPORT_EHEARTBEAT:
		/* LOG: heartbeat= out of range */
		return http_fail(r, 400, 529, "%s", why);
	case TRANSPORT_ECALLBACK:
		/* LOG: callback= not a JavaScript name */
		return http_fail(r, 400, 530, "%s", why);
	}
	/* LOG: a refusal of transport_request this responder does not know */
	return http_fail(r, 400, 520, "%s", why);
}

/* Finish a heartbeat whose first part was sent. */
static void
stream_beat_rest(struct stream *st)
{
	if (st->probe_at == 0)
		return;
	transport_heartbeat(&st->t, &st->r->out,
	    st->prev != NULL ? &st->prev->m : NULL, TRANSPORT_BEAT_REST);
	st->probe_at = 0;
}

/* The hub's delivery callback: one message or a gap, flushed at once.
 * Non-zero (refuse, stop) when the client can no longer be written. */
static int
stream_deliver(void *arg, struct hub_msg *m, int64_t gap)
{
	struct stream *st = arg;
	const struct store_msg *prev = st->prev != NULL ? &st->prev->m : NULL;
	struct http_out *o = &st->r->out;

	stream_beat_rest(st);
	if (m == NULL)
		/* A replaced log is the gap marker with id 0 (store.h). */
		transport_gap(&st->t, o, gap == HUB_RESET ? 0 : gap, prev);
	else {
		transport_message(&st->t, o, &m->m, prev);
		if (st->t.kind == TRANSPORT_MIXED) {
			/* mixed re-sends it as heartbeat and filler. */
			hub_msg_hold(m);
			hub_msg_drop(st->prev);
			st->prev = m;
		}
	}
	if (http_flush(o) != 0)
		return 1;
	st->next_beat = mono_ms() + st->beat_ms;
	return 0;
}

/*
 * The hub thread's delivery while the stream's thread sleeps (FastCGI,
 * hub.h's direct delivery): one message, framed as stream_deliver does,
 * sent without blocking.  What cannot go at once is left to the stream's
 * thread, with the framing state as it was.
 */
static int
stream_direct(void *arg, struct hub_msg *m, int64_t gap)
{
	struct stream *st = arg;
	struct http_out *o = &st->r->out;
	struct transport saved;
	int rc;

	if (m == NULL && gap == 0)
		return HUB_DIRECT_DONE; /* the end of a pass: all went */
	if (m == NULL || st->probe_at != 0 || http_nowait_begin(o) != 0)
		return HUB_DIRECT_NO;
	saved = st->t;
	transport_message(&st->t, o, &m->m,
	    st->prev != NULL ? &st->prev->m : NULL);
	rc = http_nowait_end(o);
	if (rc == HTTP_NOWAIT_NONE) {
		st->t = saved;
		return HUB_DIRECT_NO;
	}
	if (st->t.kind == TRANSPORT_MIXED) {
		hub_msg_hold(m);
		hub_msg_drop(st->prev);
		st->prev = m;
	}
	st->next_beat = mono_ms() + st->beat_ms;
	return rc == HTTP_NOWAIT_SENT ? HUB_DIRECT_DONE : HUB_DIRECT_WAKE;
}

static int
stream_handle(struct serve *s, struct http_req *r)
{
	char err[HTTP_REASON_MAX], type[TRANSPORT_TYPE_MAX];
	struct stream_ask *a;
	struct stream *st;
	struct hub_sub *sub = NULL;
	long long now, due;
	int rc, w, ended = 0, control, from_now;

	if ((st = calloc(1, sizeof(*st))) == NULL ||
	    (a = calloc(1, sizeof(*a))) == NULL) {
		free(st);
		/* LOG: out of memory for the request */
		return http_fail(r, 503, 504, "out of memory");
	}
	st->r = r;
	if (stream_request(a, s, r) != 0) {
		free(a);
		goto out;
	}
	rc = hub_subscribe(s->hub, &sub, a->q.chans, a->q.nchan, a->q.since,
	    HUB_REGISTER, NULL, err, sizeof(err));
	transport_init(&st->t, &a->q, NULL);
	st->beat_ms = a->q.heartbeat * 1000;
	st->last = a->q.last;
	from_now = a->q.since < 0 && a->q.last <= 0;
	free(a);
	if (rc != HUB_OK) {
		if (rc == HUB_EFULL)
			/* LOG: subscribing: max_subscribers reached */
			http_fail(r, 503, 505, "%s", err);
		else if (rc == HUB_ESTOP)
			/* LOG: subscribing: the process is stopping */
			http_fail(r, 503, 506, "%s", err);
		else if (rc == HUB_EUNAVAIL)
			/* LOG: subscribing: the log cannot be used now */
			http_fail(r, 503, 512, "%s", err);
		else
			/* LOG: subscribing failed */
			http_fail(r, 500, 507, "%s", err);
		goto out;
	}

	http_header(r, "X-Push-Stream", hub_sub_handle(sub));
	if (st->t.kind == TRANSPORT_SSE || st->t.kind == TRANSPORT_RAW)
		http_header(r, "X-Content-Type-Options", "nosniff");
	http_cors(r, &s->conf, NULL);
	if (http_start(r, 200, transport_type(&st->t, type, sizeof(type))) != 0)
		goto out;
	if (strcmp(http_method(r), "HEAD") == 0)
		goto out;
	/* A stream that starts "from now on" names where now is, so that a
	 * client cut off before its first message resumes from there. */
	transport_begin(&st->t, &r->out, hub_sub_handle(sub),
	    from_now ? hub_sub_cursor(sub) : -1);
	if (http_flush(&r->out) != 0)
		goto out;
	st->next_beat = mono_ms() + st->beat_ms;

	rc = HUB_OK;
	if (st->last > 0)
		rc = hub_sub_latest(sub, st->last, stream_deliver, st);
	for (;;) {
		/* Read before delivering: what came before the control
		 * request still goes out (hub.h). */
		control = hub_sub_ended(sub);
		if (rc == HUB_OK)
			rc = hub_sub_next(sub, stream_deliver, st);
		if (rc == HUB_ERR) {
			/* LOG: reading the messages to send failed */
			http_fail(r, 500, 508, "reading messages: %s",
			    hub_sub_error(sub));
			break;
		}
		if (rc != HUB_OK)
			break;          /* the client cannot be written */
		if (control || hub_stopping(s->hub) || serve_stopping()) {
			ended = 1;
			break;
		}
		now = mono_ms();
		due = st->probe_at != 0 ? st->probe_at : st->next_beat;
		/* Under FastCGI the hub thread writes new messages itself
		 * while this thread sleeps (stream_direct). */
		if (s->fcgi)
			hub_sub_park(sub, stream_direct, st);
		w = serve_wait(s, r, hub_sub_fd(sub),
		    due > now ? (int)(due - now) : 0);
		if (s->fcgi)
			hub_sub_unpark(sub);
		if (w == SERVE_STOP) {
			ended = 1;
			break;
		}
		if (w == SERVE_GONE)
			break;
		/* What the hub thread wrote may have moved the next
		 * heartbeat, or left a remainder to send. */
		if (http_drain(&r->out) != 0)
			break;
		due = st->probe_at != 0 ? st->probe_at : st->next_beat;
		if (w != SERVE_TIMEOUT || mono_ms() < due)
			continue;
		/* A heartbeat goes out in two writes, TRANSPORT_PROBE_MS
		 * apart (transport.h says why). */
		if (st->probe_at != 0)
			stream_beat_rest(st);
		else {
			/* Each heartbeat also looks whether the log is still
			 * the one at the path (hub.h: two stat() calls). */
			hub_watch(s->hub);
			transport_heartbeat(&st->t, &r->out,
			    st->prev != NULL ? &st->prev->m : NULL,
			    TRANSPORT_BEAT_FIRST);
			st->probe_at = mono_ms() + TRANSPORT_PROBE_MS;
			st->next_beat = mono_ms() + st->beat_ms;
		}
		if (http_flush(&r->out) != 0)
			break;
	}
	if (ended) {
		stream_beat_rest(st);
		transport_end(&st->t, &r->out,
		    st->prev != NULL ? &st->prev->m : NULL);
		http_flush(&r->out);
	}
out:
	hub_unsubscribe(sub);
	hub_msg_drop(st->prev);
	free(st);
	return r->fail_status != 0 ? -1 : 0;
}
