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
#include "elog.h"
#include "mono.h"
#include "park.h"
#include "serve.h"
#include "thread.h"
#include "transport.h"

#define STREAM_PROG "push-stream"
#define STREAM_FRAMES     4    /* framings of one message a thread keeps */
#define STREAM_FRAME_MAX  4096 /* bytes of a framing worth keeping (a
                                  bigger body goes by reference) */

/* What the request asked for: ~13 KiB, on the heap (request threads have
 * small stacks) and freed once the subscription exists. */
struct stream_ask {
	struct transport_req q;
};

/* One stream's state while it lasts: kept small, there may be
 * thousands.  Under FastCGI a stream, once set up, is parked (park.h):
 * the process's loop and the hub thread write it, and it owns no
 * thread; the output is then park_out, no longer the request's. */
struct stream {
	struct transport t;
	struct http_out *o;        /* the request's, or &park_out once
	                              parked */
	struct serve *s;
	struct hub_sub *sub;
	struct hub_msg *prev;      /* mixed: the latest message sent */
	long long next_beat;       /* monotonic ms of the next heartbeat */
	long long probe_at;        /* a heartbeat's second part is due, 0 */
	int beat_ms;
	int last;                  /* start with the newest N */
	int notified;              /* parked: hub_sub_notify was set */
	int ending;                /* parked: to end once the remainder went */
	struct http_out park_out;
};

static int stream_handle(struct serve *, struct http_req *);
static int stream_request(struct stream_ask *, struct serve *,
    struct http_req *);
static int stream_refuse(struct http_req *, int, const char *);
static int stream_deliver(void *, struct hub_msg *, int64_t);
static int stream_direct(void *, struct hub_msg *, int64_t);
static int stream_push(void *, struct hub_msg *, int64_t);
static void stream_beat_rest(struct stream *);
static int stream_park(struct stream *, struct serve *, struct http_req *);
static int stream_wake(struct park_req *, void *);
static int stream_timer(struct park_req *, void *);
static int stream_stop(struct park_req *, void *);
static void stream_detach(void *);
static void stream_release(void *);
static void stream_free(struct stream *);

/*
 * The framings of the message a thread is delivering (the hub thread, the
 * loop): thousands of streams that frame alike (transport_same: every sse
 * stream, every raw one, script ones with one callback) get the bytes
 * framed once.  m is held while kept, so its address names it.
 */
struct stream_frames {
	struct hub_msg *m;
	int n;
	struct {
		struct transport t;        /* a state it was framed from */
		size_t len;
		char bytes[STREAM_FRAME_MAX];
	} f[STREAM_FRAMES];
	struct thread_end end;         /* m let go at the thread's end */
};
static __thread struct stream_frames stream_fr;

/* A thread's end lets go of the message its framings kept. */
static void
stream_fr_end(void *arg)
{
	struct stream_frames *fr = arg;

	hub_msg_drop(fr->m);
	fr->m = NULL;
	fr->n = 0;
}

/* A parked stream's owner (park.h). */
static const struct park_ops stream_ops = {
	stream_wake, stream_timer, stream_stop, stream_detach, stream_release,
	NULL    /* its streams row is removed: the worker's */
};

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
	transport_heartbeat(&st->t, st->o,
	    st->prev != NULL ? &st->prev->m : NULL, TRANSPORT_BEAT_REST);
	st->probe_at = 0;
}

/* The held messages a non-blocking write may send by reference. */
static void
stream_hold(void *m)
{
	hub_msg_hold(m);
}

static void
stream_drop(void *m)
{
	hub_msg_drop(m);
}

/* Let the bodies of m and of the previous message (mixed re-sends it)
 * go by reference in the write being collected. */
static void
stream_refs(struct stream *st, struct hub_msg *m)
{
	if (m != NULL)
		http_nowait_ref(st->o, m->m.data, m->m.len, m, stream_hold,
		    stream_drop);
	if (st->prev != NULL && st->t.kind == TRANSPORT_MIXED)
		http_nowait_ref(st->o, st->prev->m.data, st->prev->m.len,
		    st->prev, stream_hold, stream_drop);
}

/* Frame m for st into its output (a write being collected): this
 * thread's framing of m when st frames alike, else framed and kept. */
static void
stream_frame(struct stream *st, struct hub_msg *m)
{
	struct stream_frames *fr = &stream_fr;
	struct http_out mem;
	int i;

	/* Framed for st alone: mixed (its own previous message), a long
	 * message, or a thread whose end could not let go of a kept one. */
	if (st->t.kind == TRANSPORT_MIXED || m->m.len > STREAM_FRAME_MAX / 2 ||
	    thread_at_end(&fr->end, stream_fr_end, fr) != 0) {
		transport_message(&st->t, st->o, &m->m,
		    st->prev != NULL ? &st->prev->m : NULL);
		return;
	}
	if (fr->m != m) {
		hub_msg_drop(fr->m);
		hub_msg_hold(m);
		fr->m = m;
		fr->n = 0;
	}
	for (i = 0; i < fr->n; i++)
		if (transport_same(&fr->f[i].t, &st->t)) {
			http_put(st->o, fr->f[i].bytes, fr->f[i].len);
			return;
		}
	http_out_mem(&mem);
	if (fr->n < STREAM_FRAMES)
		fr->f[fr->n].t = st->t;
	transport_message(&st->t, &mem, &m->m, NULL);
	if (!mem.failed && mem.used <= STREAM_FRAME_MAX &&
	    fr->n < STREAM_FRAMES) {
		memcpy(fr->f[fr->n].bytes, mem.buf, mem.used);
		fr->f[fr->n++].len = mem.used;
	}
	http_put(st->o, mem.buf, mem.used);
	http_out_free(&mem);
}

/* After m went out: mixed keeps it to re-send (heartbeats, filler). */
static void
stream_sent(struct stream *st, struct hub_msg *m)
{
	if (m != NULL && st->t.kind == TRANSPORT_MIXED) {
		hub_msg_hold(m);
		hub_msg_drop(st->prev);
		st->prev = m;
	}
	st->next_beat = mono_ms() + st->beat_ms;
}

/* The hub's delivery callback in the stream's own thread: one message or
 * a gap, flushed at once.  Non-zero (refuse, stop) when the client can no
 * longer be written. */
static int
stream_deliver(void *arg, struct hub_msg *m, int64_t gap)
{
	struct stream *st = arg;
	const struct store_msg *prev = st->prev != NULL ? &st->prev->m : NULL;

	stream_beat_rest(st);
	if (m == NULL)
		/* A replaced log is the gap marker with id 0 (store.h). */
		transport_gap(&st->t, st->o, gap == HUB_RESET ? 0 : gap, prev);
	else
		transport_message(&st->t, st->o, &m->m, prev);
	if (http_flush(st->o) != 0)
		return 1;
	stream_sent(st, m);
	return 0;
}

/*
 * The hub thread's delivery while nobody else writes the stream (hub.h's
 * direct delivery): one message, framed as stream_deliver does, sent
 * without blocking.  What cannot go at once is left to the stream's
 * owner (its thread, or the loop), with the framing state as it was.
 */
static int
stream_direct(void *arg, struct hub_msg *m, int64_t gap)
{
	struct stream *st = arg;
	struct http_out *o = st->o;
	struct transport saved;
	int rc;

	if (m == NULL && gap == 0)
		return HUB_DIRECT_DONE; /* the end of a pass: all went */
	if (m == NULL || st->probe_at != 0 || http_nowait_begin(o) != 0)
		return HUB_DIRECT_NO;
	saved = st->t;
	stream_refs(st, m);
	stream_frame(st, m);
	rc = http_nowait_end(o);
	if (rc == HTTP_NOWAIT_NONE) {
		st->t = saved;
		return HUB_DIRECT_NO;
	}
	stream_sent(st, m);
	return rc == HTTP_NOWAIT_SENT ? HUB_DIRECT_DONE : HUB_DIRECT_WAKE;
}

/*
 * The loop's delivery callback for a parked stream (hub_sub_next from
 * stream_wake): a message or a gap (after the rest of a heartbeat, if
 * one is due), sent without blocking; a full socket keeps it as the
 * output's remainder.  Refuses (1) while a remainder waits: the loop
 * calls stream_wake again once it went.
 */
static int
stream_push(void *arg, struct hub_msg *m, int64_t gap)
{
	struct stream *st = arg;
	const struct store_msg *prev;

	if (http_nowait_begin(st->o) != 0)
		return 1;
	stream_refs(st, m);
	stream_beat_rest(st);
	prev = st->prev != NULL ? &st->prev->m : NULL;
	if (m == NULL)
		transport_gap(&st->t, st->o, gap == HUB_RESET ? 0 : gap, prev);
	else
		stream_frame(st, m);
	if (http_nowait_end(st->o) == HTTP_NOWAIT_NONE)
		return 1;               /* failed: sticky */
	stream_sent(st, m);
	return 0;
}

/* A parked stream hands itself back to direct delivery and times its
 * next heartbeat (or a heartbeat's second part).  Returns PARK_KEEP. */
static int
stream_rearm(struct park_req *pr, struct stream *st)
{
	park_due(pr, st->probe_at != 0 ? st->probe_at : st->next_beat);
	hub_sub_park(st->sub, stream_direct, st);
	return PARK_KEEP;
}

/* The end of a parked stream's response (without blocking): the rest of
 * a heartbeat, then the framing's end; PARK_END.  While a remainder
 * waits, PARK_KEEP: the loop calls stream_wake once it went, which ends
 * it then. */
static int
stream_end(struct stream *st)
{
	if (http_pending(st->o) && !st->o->failed) {
		st->ending = 1;
		return PARK_KEEP;
	}
	if (http_nowait_begin(st->o) == 0) {
		if (st->t.kind == TRANSPORT_MIXED && st->prev != NULL)
			http_nowait_ref(st->o, st->prev->m.data,
			    st->prev->m.len, st->prev, stream_hold,
			    stream_drop);
		stream_beat_rest(st);
		transport_end(&st->t, st->o,
		    st->prev != NULL ? &st->prev->m : NULL);
		http_nowait_end(st->o);
	}
	return PARK_END;
}

/* park.h's wake: deliver what came (the hub woke us, a remainder went,
 * or we were just parked); end the stream if a control request or the
 * stop says so. */
static int
stream_wake(struct park_req *pr, void *arg)
{
	struct stream *st = arg;
	int control, rc;

	hub_sub_unpark(st->sub);
	if (st->ending)
		return stream_end(st);
	if (!st->notified) {
		/* The hub wakes it through the loop, with no descriptor; a
		 * wake-up since its thread caught up calls park_wake now.
		 * Until then there is nothing to look for. */
		st->notified = 1;
		hub_sub_notify(st->sub, park_wake, pr);
		return stream_rearm(pr, st);
	}
	/* Read before delivering: what came before the control request
	 * still goes out (hub.h). */
	control = hub_sub_ended(st->sub);
	rc = hub_sub_next(st->sub, stream_push, st);
	if (rc == HUB_ERR) {
		/* LOG: a parked stream: reading the messages to send failed */
		elog(STREAM_PROG, 531, "reading messages: %s",
		    hub_sub_error(st->sub));
		return PARK_CLOSE;
	}
	if (st->o->failed)
		return PARK_CLOSE;
	if (rc == HUB_OK && (control || hub_stopping(st->s->hub) ||
	    serve_stopping()))
		return stream_end(st);
	return stream_rearm(pr, st);
}

/* Keeps the log's identity checked and this process's subscriber rows
 * counting (hub_watch), off the loop: it may write to the log. */
static void
stream_watch(void *arg)
{
	hub_watch(arg);
}

/* park.h's timer: a heartbeat is due, in two writes TRANSPORT_PROBE_MS
 * apart (transport.h says why); none while a remainder waits (bytes are
 * on their way, or the client is stuck and the remainder will tell). */
static int
stream_timer(struct park_req *pr, void *arg)
{
	static int64_t watched;   /* mono_ms of the last hub_watch job */
	struct stream *st = arg;
	long long now = mono_ms();
	int64_t w;

	hub_sub_unpark(st->sub);
	if (st->probe_at != 0 && now >= st->probe_at) {
		/* The rest of a heartbeat must follow its first part before
		 * anything else: while a remainder waits, it is tried again
		 * a little later (or goes first with the next message). */
		if (http_nowait_begin(st->o) == 0) {
			stream_beat_rest(st);
			http_nowait_end(st->o);
		} else
			st->probe_at = now + TRANSPORT_PROBE_MS;
	} else if (st->probe_at == 0 && now >= st->next_beat) {
		/* Each heartbeat also looks whether the log is still the one
		 * at the path (hub.h), at most once a second a process. */
		w = __atomic_load_n(&watched, __ATOMIC_RELAXED);
		if (now - w >= 1000) {
			__atomic_store_n(&watched, now, __ATOMIC_RELAXED);
			park_job(pr, stream_watch, st->s->hub);
		}
		if (http_nowait_begin(st->o) == 0) {
			if (st->t.kind == TRANSPORT_MIXED && st->prev != NULL)
				http_nowait_ref(st->o, st->prev->m.data,
				    st->prev->m.len, st->prev, stream_hold,
				    stream_drop);
			transport_heartbeat(&st->t, st->o,
			    st->prev != NULL ? &st->prev->m : NULL,
			    TRANSPORT_BEAT_FIRST);
			http_nowait_end(st->o);
			st->probe_at = now + TRANSPORT_PROBE_MS;
		}
		st->next_beat = now + st->beat_ms;
	}
	if (st->o->failed)
		return PARK_CLOSE;
	return stream_rearm(pr, st);
}

/* park.h's stop: SIGTERM ends every stream cleanly. */
static int
stream_stop(struct park_req *pr, void *arg)
{
	struct stream *st = arg;

	(void)pr;
	hub_sub_unpark(st->sub);
	return stream_end(st);
}

/* park.h's detach: no more direct delivery, the connection closes. */
static void
stream_detach(void *arg)
{
	struct stream *st = arg;

	hub_sub_unpark(st->sub);
}

/* park.h's release (the worker thread): the subscription (its streams
 * row: a write to the log), the held message, the output, the state. */
static void
stream_release(void *arg)
{
	stream_free(arg);
}

static void
stream_free(struct stream *st)
{
	hub_unsubscribe(st->sub);
	hub_msg_drop(st->prev);
	http_out_free(&st->park_out);
	free(st);
}

/*
 * Under FastCGI: hand the set-up stream to the process's loop.  0 when
 * it is parked (st belongs to the loop now), -1 when the thread goes on
 * serving it.
 */
static int
stream_park(struct stream *st, struct serve *s, struct http_req *r)
{
	if (!s->fcgi)
		return -1;
	st->o = &st->park_out;
	if (serve_park(s, r, &st->park_out, -1, st->next_beat, &stream_ops,
	    st) == 0)
		return 0;
	st->o = &r->out;
	return -1;
}

static int
stream_handle(struct serve *s, struct http_req *r)
{
	char err[HTTP_REASON_MAX], type[TRANSPORT_TYPE_MAX];
	struct stream_ask *a;
	struct stream *st;
	long long now, due;
	int rc, w, ended = 0, control, from_now;

	/* a is read only once transport_request filled it whole. */
	if ((st = calloc(1, sizeof(*st))) == NULL ||
	    (a = malloc(sizeof(*a))) == NULL) {
		free(st);
		/* LOG: out of memory for the request */
		return http_fail(r, 503, 504, "out of memory");
	}
	st->o = &r->out;
	st->s = s;
	if (stream_request(a, s, r) != 0) {
		free(a);
		goto out;
	}
	rc = hub_subscribe(s->hub, &st->sub, a->q.chans, a->q.nchan,
	    a->q.since, HUB_REGISTER, NULL, err, sizeof(err));
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

	http_header(r, "X-Push-Stream", hub_sub_handle(st->sub));
	if (st->t.kind == TRANSPORT_SSE || st->t.kind == TRANSPORT_RAW)
		http_header(r, "X-Content-Type-Options", "nosniff");
	http_cors(r, &s->conf, NULL);
	if (http_start(r, 200, transport_type(&st->t, type, sizeof(type))) != 0)
		goto out;
	if (strcmp(http_method(r), "HEAD") == 0)
		goto out;
	/* A stream that starts "from now on" names where now is, so that a
	 * client cut off before its first message resumes from there. */
	transport_begin(&st->t, &r->out, hub_sub_handle(st->sub),
	    from_now ? hub_sub_cursor(st->sub) : -1);
	if (http_flush(&r->out) != 0)
		goto out;
	st->next_beat = mono_ms() + st->beat_ms;

	rc = HUB_OK;
	if (st->last > 0)
		rc = hub_sub_latest(st->sub, st->last, stream_deliver, st);
	for (;;) {
		/* Read before delivering: what came before the control
		 * request still goes out (hub.h). */
		control = hub_sub_ended(st->sub);
		if (rc == HUB_OK)
			rc = hub_sub_next(st->sub, stream_deliver, st);
		if (rc == HUB_ERR) {
			/* LOG: reading the messages to send failed */
			http_fail(r, 500, 508, "reading messages: %s",
			    hub_sub_error(st->sub));
			break;
		}
		if (rc != HUB_OK)
			break;          /* the client cannot be written */
		if (control || hub_stopping(s->hub) || serve_stopping()) {
			ended = 1;
			break;
		}
		/* Caught up: under FastCGI the loop takes it from here. */
		if (stream_park(st, s, r) == 0)
			return 0;
		now = mono_ms();
		due = st->probe_at != 0 ? st->probe_at : st->next_beat;
		w = serve_wait(s, r, hub_sub_fd(st->sub),
		    due > now ? (int)(due - now) : 0);
		if (w == SERVE_STOP) {
			ended = 1;
			break;
		}
		if (w == SERVE_GONE)
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
	stream_free(st);
	return r->fail_status != 0 ? -1 : 0;
}
