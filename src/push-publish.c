/*
 * push-publish: the publisher and control responder.  Publishes one
 * message per request, tells what a channel holds, removes a channel, and
 * ends a named stream (the "control connection" of the Comet literature).
 *
 * Runs as plain CGI or as a threaded FastCGI server, whichever way the
 * web server starts it.  Requests:
 *
 *   POST|PUT /cgi-bin/push-publish?channel=NAME[&event=E]    (body)
 *       Publish the body as one message on NAME.  The request's
 *       Content-Type is the message's type (no Content-Type: text/plain;
 *       charset=utf-8; one that is not a valid media type: 415); event=
 *       is its SSE event name.  A body over the configured max_data: 413.
 *       Answer: 201, application/json
 *           {"id":ID,"channel":"NAME","subscribers":K}
 *       with X-Push-Id: ID; K counts the streams and polls on NAME, in
 *       every process, connected at that moment.  Subscribers are woken
 *       at once (the bell is rung after the commit).
 *       Note: curl -d sends application/x-www-form-urlencoded, which is
 *       then kept; say -H 'Content-Type: ...' --data-binary @file.
 *
 *   GET /cgi-bin/push-publish?channel=NAME
 *       Channel info, 200 application/json:
 *           {"channel":"NAME","messages":RETAINED,"first_id":ID,
 *            "last_id":ID,"last_time":MS,"subscribers":K}
 *       (first_id 0 when nothing is retained; last_time in milliseconds
 *       since the epoch).  404 if nothing was ever published to NAME.
 *       Closed like publishing: what a channel holds and who listens is
 *       the publisher's business, not the world's.
 *
 *   DELETE /cgi-bin/push-publish?channel=NAME
 *       Removes NAME's messages and ends every stream and long-poll
 *       subscribed to it, in every responder process, cleanly (a control
 *       message, see lib/mlog.h).  200 {"channel":"NAME","deleted":N};
 *       404 if NAME never existed (its subscribers, if any, are ended all
 *       the same).
 *
 *   POST|DELETE /cgi-bin/push-publish?stream=HANDLE
 *       End one stream: it wakes, finishes its response cleanly and
 *       frees what it held.  HANDLE is "ID.SECRET" as the stream's client
 *       got it (push-stream); whoever holds it may end that stream.  A
 *       publisher (token or trusted user, below) may give "ID" alone.
 *       200 {"stream":ID,"ended":true}; 404 no such stream; 403 wrong or
 *       missing secret; 400 a handle that is not ID or ID.SECRET.
 *
 *   OPTIONS  CORS preflight: 204 with Access-Control-Allow-Methods,
 *       -Allow-Headers (Content-Type, Authorization, X-Push-Token) and
 *       -Max-Age when the request's Origin is a configured cors_origin;
 *       403 otherwise.  Every other answer carries
 *       Access-Control-Allow-Origin for such origins and exposes
 *       X-Push-Id.
 *
 *   Any other method: 405 with Allow.  Parameters other than channel=,
 *   event=, stream= and _= (ignored, cache busters), repeated ones or
 *   ones over their caps: 400.
 *
 * Security model: closed by default.  Every request but the preflight
 * and the secret-bearing control request needs a publisher:
 * "Authorization: Bearer TOKEN" or "X-Push-Token: TOKEN" naming one of the
 * configured publish_token values (compared in constant time), or, with
 * trust_remote_user = 1, a request the web server authenticated itself
 * (REMOTE_USER not empty).  No token configured and no trust: 403 for all.
 * Apache passes Authorization to CGI and FastCGI programs only with
 * "CGIPassAuth On" (the shipped conf/apache-*.conf have it).
 *
 * The log cannot be used now: 503 with Retry-After and a reason that
 * names the file and the cause: busy past its busy timeout (another
 * writer holding it), the log, its -wal or -shm file or its folder not
 * writable by the web server's user, a full disk, an I/O error (see
 * STORE_EUNAVAIL); or the log removed or replaced while the message was
 * written (lib/store.h, lib/mlog.h).  Nothing is stored then.  A body over max_data
 * is read and thrown away (up to 64 MiB more, HTTP_DRAIN_MAX) before the
 * 413, so that every server passes the answer on; a chunked body (curl
 * -T -, no Content-Length) is stored byte for byte like any other.
 * Every failure is answered with a one-line reason and logged as one
 * line to the server's error log.
 *
 * Failure sites (the number in the error-log line): 1xx request reading,
 * 4xx process set-up, 6xx this file.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "http.h"
#include "hub.h"
#include "serve.h"
#include "store.h"
#include "valid.h"

#define PUBLISH_PROG     "push-publish"
#define PUBLISH_METHODS  "GET, POST, PUT, DELETE, OPTIONS"
#define PUBLISH_HEADERS  "Content-Type, Authorization, X-Push-Token"
#define PUBLISH_EXPOSE   "X-Push-Id" /* headers a cross-origin page reads */
#define PUBLISH_MAX_AGE  "600"     /* seconds a preflight may be cached */
#define PUBLISH_ID_DIGITS 18       /* digits in a stream id */
#define PUBLISH_SECRET_MAX 128     /* bytes of a stored stream secret */
#define PUBLISH_WRONG_SECRET 1     /* publish_control: not a STORE_* code */
#define PUBLISH_ERR_MAX  HTTP_REASON_MAX /* bytes of a store reason kept */
#define PUBLISH_NUM_MAX  24        /* bytes of a decimal int64 and its NUL */

static const char *const publish_params[] = {
	"channel", "event", "stream", "_", NULL
};

static int publish_handle(struct serve *, struct http_req *);
static int publish_preflight(struct serve *, struct http_req *, int);
static int publish_authorized(struct serve *, struct http_req *);
static int publish_db_status(int);
static const char *publish_db_note(int);
static int publish_post(struct serve *, struct http_req *, const char *,
    const char *);
static int publish_info(struct serve *, struct http_req *, const char *);
static int publish_delete(struct serve *, struct http_req *, const char *);
static int publish_control(struct serve *, struct http_req *,
    const char *);
static int publish_parse_handle(const char *, int64_t *, const char **);

int
main(void)
{
	return serve_main(PUBLISH_PROG, publish_handle, SERVE_HUB);
}

/* OPTIONS: a preflight from an allowed origin gets the rules. */
static int
publish_preflight(struct serve *s, struct http_req *r, int allowed)
{
	(void)s;
	if (http_read_body(r, 0, NULL, NULL) != 0)
		return -1;
	if (!allowed)
		/* LOG: OPTIONS from an origin not in cors_origin */
		return http_fail(r, 403, 701, "preflight from an origin that is "
		    "not a configured cors_origin");
	http_header(r, "Access-Control-Allow-Methods", PUBLISH_METHODS);
	http_header(r, "Access-Control-Allow-Headers", PUBLISH_HEADERS);
	http_header(r, "Access-Control-Max-Age", PUBLISH_MAX_AGE);
	http_start_held(r, 204, NULL);
	return 0;
}

/* 1 if the request presents publisher credentials (auth.h), 0 if not,
 * -1 after http_fail when a credential header is over its cap. */
static int
publish_authorized(struct serve *s, struct http_req *r)
{
	const char *authz, *xtok, *user;

	if (http_header_in(r, "HTTP_AUTHORIZATION", &authz) != 0 ||
	    http_header_in(r, "HTTP_X_PUSH_TOKEN", &xtok) != 0)
		/* LOG: Authorization or X-Push-Token over its cap */
		return http_fail(r, 400, 702, "Authorization or X-Push-Token "
		    "longer than %d bytes", HTTP_HEADER_MAX);
	user = http_env(r, "REMOTE_USER");
	if (auth_publisher(&s->conf, auth_bearer(authz), user) == AUTH_OK ||
	    (xtok != NULL &&
	    auth_publisher(&s->conf, xtok, NULL) == AUTH_OK))
		return 1;
	return 0;
}

/*
 * The status that answers a store failure rc: 400 invalid, 413 too large,
 * 404 unknown, 503 the log cannot be used now (STORE_EUNAVAIL: busy past
 * its timeout, a file or folder it cannot write, a full disk; the reason
 * then names the file and the cause), else 500.  Each caller's http_fail
 * carries its own site, with the reason "WHAT: NOTE REASON" (NOTE:
 * publish_db_note).
 */
static int
publish_db_status(int rc)
{
	switch (rc) {
	case STORE_EINVAL:
		return 400;
	case STORE_E2BIG:
		return 413;
	case STORE_ENOENT:
		return 404;
	case STORE_EMOVED:
		/* The log was replaced under us (lib/store.h): not in the log
		 * at the path; the next try goes to the new one. */
		return 503;
	case STORE_EUNAVAIL:
		return 503;
	}
	return 500;
}

/* What the reason of a store failure rc starts with: "the log cannot be
 * used now: " for STORE_EUNAVAIL, else "". */
static const char *
publish_db_note(int rc)
{
	return rc == STORE_EUNAVAIL ? "the log cannot be used now: " : "";
}

/* POST/PUT: one message. */
static int
publish_post(struct serve *s, struct http_req *r, const char *channel,
    const char *event)
{
	int64_t subs;
	struct store *l;
	char err[PUBLISH_ERR_MAX], num[PUBLISH_NUM_MAX], *data = NULL;
	const char *type;
	size_t len = 0;
	int64_t id = 0;
	int rc;

	type = http_env(r, "CONTENT_TYPE");
	if (type != NULL && *type == '\0')
		type = NULL;
	if (type != NULL && !valid_type(type)) {
		/* LOG: Content-Type not a valid media type */
		http_fail(r, 415, 711, "Content-Type is not a valid media type "
		    "(type/subtype and parameters, printable ASCII, at most %d "
		    "bytes)", VALID_TYPE_MAX);
		http_read_body(r, 0, NULL, NULL);
		return -1;
	}
	if (http_read_body(r, (size_t)s->conf.max_data, &data, &len) != 0)
		return -1;
	rc = hub_publish(s->hub, channel, type, event, data, len, &id, err,
	    sizeof(err));
	free(data);
	if (rc != STORE_OK)
		/* LOG: publishing: the log refused or failed */
		return http_fail(r, publish_db_status(rc), 712,
		    "publishing: %s%s", publish_db_note(rc), err);

	/* Who was listening: the count after the commit. */
	subs = 0;
	l = hub_db(s->hub);
	rc = store_subscribers(l, channel, &subs);
	if (rc != STORE_OK)
		snprintf(err, sizeof(err), "%s", store_errmsg(l));
	hub_db_done(s->hub);
	if (rc != STORE_OK)
		/* LOG: published, but the subscribers cannot be counted */
		http_log(r, 713, "message %" PRId64 " published, but counting "
		    "subscribers failed: %s", id, err);

	snprintf(num, sizeof(num), "%" PRId64, id);
	http_header(r, "X-Push-Id", num);
	if (http_start_held(r, 201, "application/json") != 0)
		return 0;
	http_printf(&r->out, "{\"id\":%" PRId64 ",\"channel\":\"%s\","
	    "\"subscribers\":%" PRId64 "}\n", id, channel, subs);
	return 0;
}

/* GET: channel info. */
static int
publish_info(struct serve *s, struct http_req *r, const char *channel)
{
	struct store_stat st;
	struct store *l;
	char err[PUBLISH_ERR_MAX];
	int rc;

	if (http_read_body(r, 0, NULL, NULL) != 0)
		return -1;
	l = hub_db(s->hub);
	rc = store_stat(l, channel, &st);
	if (rc != STORE_OK)
		snprintf(err, sizeof(err), "%s", store_errmsg(l));
	hub_db_done(s->hub);
	if (rc != STORE_OK)
		/* LOG: channel info: the log failed */
		return http_fail(r, publish_db_status(rc), 721,
		    "channel info: %s%s", publish_db_note(rc), err);
	if (http_start_held(r, 200, "application/json") != 0)
		return 0;
	http_printf(&r->out, "{\"channel\":\"%s\",\"messages\":%" PRId64 ","
	    "\"first_id\":%" PRId64 ",\"last_id\":%" PRId64 ","
	    "\"last_time\":%" PRId64 ",\"subscribers\":%" PRId64 "}\n",
	    channel, st.count, st.first_id, st.last_id, st.last_time_ms,
	    st.subscribers);
	return 0;
}

/* DELETE: end the channel's subscribers, remove its messages. */
static int
publish_delete(struct serve *s, struct http_req *r, const char *channel)
{
	struct store *l;
	char err[PUBLISH_ERR_MAX];
	int64_t cid = 0, deleted = 0;
	int rc, rrc;

	if (http_read_body(r, 0, NULL, NULL) != 0)
		return -1;
	l = hub_db(s->hub);
	/* The control request wakes every process's hub (store.h). */
	rc = store_end_channel(l, channel, &cid);
	if (rc != STORE_OK)
		snprintf(err, sizeof(err), "%s", store_errmsg(l));
	rrc = rc == STORE_OK ? store_remove(l, channel, &deleted) : rc;
	if (rc == STORE_OK && rrc != STORE_OK)
		snprintf(err, sizeof(err), "%s", store_errmsg(l));
	hub_db_done(s->hub);
	if (rc != STORE_OK)
		/* LOG: DELETE: the channel's streams cannot be ended */
		return http_fail(r, publish_db_status(rc), 731,
		    "ending the channel's streams: %s%s",
		    publish_db_note(rc), err);
	if (rrc != STORE_OK)
		/* LOG: DELETE: the channel's messages cannot be removed */
		return http_fail(r, publish_db_status(rrc), 732,
		    "removing the channel: %s%s", publish_db_note(rrc), err);
	if (http_start_held(r, 200, "application/json") != 0)
		return 0;
	http_printf(&r->out, "{\"channel\":\"%s\",\"deleted\":%" PRId64 "}\n",
	    channel, deleted);
	return 0;
}

/*
 * Parse a stream handle, "ID" or "ID.SECRET" (ID 1 to PUBLISH_ID_DIGITS
 * digits, no leading zero; SECRET letters and digits), at most
 * HUB_HANDLE_MAX - 1 bytes.  *secret gets the secret or NULL.  0 or -1.
 */
static int
publish_parse_handle(const char *h, int64_t *id, const char **secret)
{
	size_t i;

	*id = 0;
	*secret = NULL;
	if (strlen(h) >= HUB_HANDLE_MAX || h[0] < '1' || h[0] > '9')
		return -1;
	for (i = 0; h[i] >= '0' && h[i] <= '9'; i++) {
		if (i == PUBLISH_ID_DIGITS)
			return -1;
		*id = *id * 10 + (h[i] - '0');
	}
	if (h[i] == '\0')
		return 0;
	if (h[i] != '.' || h[i + 1] == '\0')
		return -1;
	*secret = h + i + 1;
	for (i++; h[i] != '\0'; i++)
		if (!((h[i] >= '0' && h[i] <= '9') ||
		    (h[i] >= 'a' && h[i] <= 'z') ||
		    (h[i] >= 'A' && h[i] <= 'Z')))
			return -1;
	return 0;
}

/* POST/DELETE ?stream=HANDLE: end one stream. */
static int
publish_control(struct serve *s, struct http_req *r, const char *handle)
{
	struct store *l;
	char err[PUBLISH_ERR_MAX], stored[PUBLISH_SECRET_MAX + 1];
	const char *secret;
	int64_t id, cid = 0;
	pid_t pid;
	int rc, authorized;

	if (http_read_body(r, 0, NULL, NULL) != 0)
		return -1;
	if (publish_parse_handle(handle, &id, &secret) != 0)
		/* LOG: stream= not a stream handle */
		return http_fail(r, 400, 741, "stream= must be ID or ID.SECRET "
		    "(as sent to the stream's client)");
	if ((authorized = publish_authorized(s, r)) < 0)
		return -1;
	if (!authorized && secret == NULL)
		/* LOG: ending a stream without its secret or credentials */
		return http_fail(r, 403, 742, "ending a stream needs its "
		    "secret (stream=ID.SECRET) or a publisher's credentials");

	stored[0] = '\0';
	l = hub_db(s->hub);
	rc = store_stream_info(l, id, &pid, stored, sizeof(stored));
	if (rc != STORE_OK)
		snprintf(err, sizeof(err), "%s", store_errmsg(l));
	/* A stream without a secret (a pushctl follower) can only be ended
	 * by a publisher. */
	else if (!authorized && (stored[0] == '\0' ||
	    !auth_equal(secret, strlen(secret), stored, strlen(stored))))
		rc = PUBLISH_WRONG_SECRET;
	else if ((rc = store_end_stream(l, id, &cid)) != STORE_OK)
		snprintf(err, sizeof(err), "%s", store_errmsg(l));
	hub_db_done(s->hub);
	if (rc == PUBLISH_WRONG_SECRET)
		/* LOG: ending a stream with a wrong secret */
		return http_fail(r, 403, 743, "wrong secret for stream %" PRId64,
		    id);
	if (rc != STORE_OK)
		/* LOG: ending a stream: the log failed */
		return http_fail(r, publish_db_status(rc), 744,
		    "ending a stream: %s%s", publish_db_note(rc), err);
	if (http_start_held(r, 200, "application/json") != 0)
		return 0;
	http_printf(&r->out, "{\"stream\":%" PRId64 ",\"ended\":true}\n", id);
	return 0;
}

static int
publish_handle(struct serve *s, struct http_req *r)
{
	struct http_params *p;
	const char *m = http_method(r), *channel, *event, *stream;
	char why[HTTP_REASON_MAX];
	int cors, authorized, rc = -1;

	cors = http_cors(r, &s->conf, PUBLISH_EXPOSE);
	if (strcmp(m, "OPTIONS") == 0)
		return publish_preflight(s, r, cors);
	if (strcmp(m, "GET") != 0 && strcmp(m, "POST") != 0 &&
	    strcmp(m, "PUT") != 0 && strcmp(m, "DELETE") != 0) {
		http_header(r, "Allow", PUBLISH_METHODS);
		/* LOG: method not GET, POST, PUT, DELETE or OPTIONS */
		http_fail(r, 405, 703, "method %.16s: only %s", m,
		    PUBLISH_METHODS);
		http_read_body(r, 0, NULL, NULL);
		return -1;
	}
	/* ~8.5 KiB: off the request thread's small stack. */
	if ((p = calloc(1, sizeof(*p))) == NULL)
		/* LOG: out of memory for the request */
		return http_fail(r, 503, 704, "out of memory");
	if (http_parse_query(http_env(r, "QUERY_STRING"), publish_params, p,
	    why, sizeof(why)) != 0) {
		/* LOG: the query string (unknown or repeated parameter, caps) */
		http_fail(r, 400, 705, "%s", why);
		goto discard;
	}
	channel = http_param(p, "channel");
	event = http_param(p, "event");
	stream = http_param(p, "stream");

	if (stream != NULL) {
		if (channel != NULL || event != NULL) {
			/* LOG: stream= with channel= or event= */
			http_fail(r, 400, 706, "stream= goes alone");
			goto discard;
		}
		if (strcmp(m, "POST") != 0 && strcmp(m, "DELETE") != 0) {
			http_header(r, "Allow", "POST, DELETE, OPTIONS");
			/* LOG: stream= with a method not POST or DELETE */
			http_fail(r, 405, 707, "ending a stream takes POST or "
			    "DELETE");
			goto discard;
		}
		rc = publish_control(s, r, stream);
		goto out;
	}
	if (channel == NULL || !valid_channel(channel)) {
		/* LOG: channel= missing or not a channel name */
		http_fail(r, 400, 708, "channel= must be 1-%d of A-Z a-z 0-9 "
		    ". _ -, not starting with '.'", VALID_CHANNEL_MAX);
		goto discard;
	}
	if (event != NULL && (strcmp(m, "POST") != 0 && strcmp(m, "PUT") != 0)) {
		/* LOG: event= with GET or DELETE */
		http_fail(r, 400, 709, "event= is for POST and PUT");
		goto discard;
	}
	if (event != NULL && !valid_event(event)) {
		/* LOG: event= not an event name */
		http_fail(r, 400, 710, "event= must be 1-%d of A-Z a-z 0-9 "
		    ". _ : -", VALID_EVENT_MAX);
		goto discard;
	}
	if ((authorized = publish_authorized(s, r)) < 0)
		goto discard;
	if (!authorized) {
		/* LOG: publishing without a publisher's credentials */
		http_fail(r, 403, 700, "publishing needs a publish token "
		    "(Authorization: Bearer or X-Push-Token)%s",
		    s->conf.trust_remote_user ? " or an authenticated user" :
		    "");
		goto discard;
	}
	if (strcmp(m, "GET") == 0)
		rc = publish_info(s, r, channel);
	else if (strcmp(m, "DELETE") == 0)
		rc = publish_delete(s, r, channel);
	else
		rc = publish_post(s, r, channel, event);
	goto out;
discard:
	/* Read what the client sent (up to a cap), so that the web server
	 * is not cut off while it is still sending the body. */
	http_read_body(r, 0, NULL, NULL);
out:
	free(p);
	/* Answers are short and held: serve sends them with the end of the
	 * request, in one write. */
	return rc != 0 || r->fail_status != 0 ? -1 : 0;
}
