/*
 * transport: how messages are framed on a push response, and what a stream
 * request may ask for.
 *
 * Four framings (format=, else the Accept header: text/event-stream means
 * sse; anything else means mixed):
 *
 * mixed   multipart/x-mixed-replace;boundary=B (no space: some servers cut
 *         the header at one).  B is random per stream.  Chromium shows a
 *         part only when the header block of the FOLLOWING part is
 *         complete, so right after each message's data we send the
 *         boundary and the next part's header block, guessing that the
 *         next message has the same Content-Type:
 *
 *           --B CRLF Content-Type: T CRLF Content-Length: N CRLF CRLF
 *           <data 1> CRLF --B CRLF Content-Type: T CRLF CRLF
 *           <data 2> CRLF --B CRLF Content-Type: T CRLF CRLF ...
 *
 *         When a message's type differs from the guess, the announced
 *         part is first filled with the previous message again (so every
 *         part's Content-Type is true), then the new part follows with its
 *         own Content-Type and Content-Length.  Parts whose header block
 *         was sent ahead carry no Content-Length: read up to the boundary.
 *         Before the first message the header block of part 1 is left open
 *         and heartbeats add an "X-Heartbeat: 1" line to it; afterwards a
 *         heartbeat re-sends the latest message (an image stays as it is):
 *         its data, then the boundary and header block.
 *         A gap is a text/plain part with an "X-Push-Gap: ID" header and
 *         the decimal ID as body.  The end closes with --B--.
 *
 * sse     text/event-stream.  First "retry:", a padding comment and an
 *         event "stream" whose data is the stream's handle "ID.SECRET"
 *         (see hub_sub_handle; also in the X-Push-Stream header), with
 *         an "id:" line when the stream starts from now on (see
 *         transport_begin).  Each message:
 *         "id: N", "event: E" (if it has one), one "data: " line per line
 *         of data, blank line.  Data that is not UTF-8 or holds a CR (which
 *         SSE would turn into a line break) is sent base64-encoded in one
 *         data line, and the event type gets the suffix ";base64"
 *         ("message;base64" when the message has no event name); ';' never
 *         occurs in an event name, so the marker is unambiguous.  A gap is
 *         "event: gap" with the ID as data (no id: line, so Last-Event-ID
 *         keeps naming the last message).  Heartbeat: a ":" comment line
 *         (the ":" and the newline written apart, see transport_heartbeat).
 *
 * script  text/html for an iframe: a head, TRANSPORT_PADDING bytes of
 *         comment (browsers that wait for a first chunk), then per message
 *         <script>parent.CB({...})</script> with the JSON of
 *         transport_json_message.  The JSON escapes < > & ' U+2028 U+2029
 *         as \uXXXX, so no message can end the script or break the
 *         parser.  First call: {"stream":"ID.SECRET"} (the handle);
 *         a gap: {"gap":ID}.
 *         Heartbeat: a space, then a newline (whitespace between scripts).
 *
 * raw     text/plain; charset=utf-8 (application/octet-stream when the
 *         Accept header names it): first an empty line (so that the
 *         headers leave servers that wait for body bytes), then each
 *         message's bytes followed by "\n".  A gap is the line
 *         "#pushcgi-gap ID".  Heartbeat: two empty lines, one per write,
 *         so line readers should skip empty lines (an empty message looks
 *         the same).
 *
 * Nothing here flushes: the caller flushes after each message.  Every
 * function returns 0, or -1 once the output has failed.
 */
#ifndef PUSHCGI_TRANSPORT_H
#define PUSHCGI_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "http.h"
#include "store.h"
#include "valid.h"

#define TRANSPORT_BOUNDARY_MAX  40   /* bytes in a multipart boundary */
#define TRANSPORT_TYPE_MAX      (sizeof("multipart/x-mixed-replace;" \
                                "boundary=") + TRANSPORT_BOUNDARY_MAX)
                                     /* bytes of transport_type's answer,
                                        NUL included: the longest is
                                        mixed's with the longest boundary */
#define TRANSPORT_PADDING       2048 /* bytes of initial padding */
#define TRANSPORT_RETRY_MS      2000 /* SSE reconnect delay we advise */
#define TRANSPORT_LAST_MAX      100  /* largest last=N */
#define TRANSPORT_HEARTBEAT_MIN 1    /* smallest heartbeat= (seconds) */
#define TRANSPORT_CALLBACK      "push" /* script callback by default */
#define TRANSPORT_ID_DIGITS     19   /* digits in a cursor (int64) */
#define TRANSPORT_PROBE_MS      200  /* between a heartbeat's two parts */
/* What a stream handle may hold. */
#define TRANSPORT_HANDLE_CHARS  "0123456789abcdefghijklmnopqrstuvwxyz."

enum { TRANSPORT_BEAT_ALL, TRANSPORT_BEAT_FIRST, TRANSPORT_BEAT_REST };

enum transport_kind {
	TRANSPORT_MIXED,
	TRANSPORT_SSE,
	TRANSPORT_SCRIPT,
	TRANSPORT_RAW
};

/* What a long poll answers with (format=). */
enum transport_poll_format {
	TRANSPORT_POLL_JSON, TRANSPORT_POLL_RAW, TRANSPORT_POLL_PAGE
};
#define TRANSPORT_REFRESH_MIN    1    /* smallest refresh= (page), s */
#define TRANSPORT_REFRESH_MAX    3600 /* largest refresh= (page), s */
#define TRANSPORT_REFRESH_DIGITS 4    /* digits in refresh= */
#define TRANSPORT_TIMEOUT_DIGITS 4    /* digits in a poll's timeout= */
#define TRANSPORT_LAST_DIGITS    3    /* digits in last= */
#define TRANSPORT_PARAMS         11   /* names in the allow-list */

/* Who a request is for: push-stream's streams or push-poll's polls.  One
 * allow-list and one parser serve both (transport_request). */
enum transport_for { TRANSPORT_FOR_STREAM = 1, TRANSPORT_FOR_POLL = 2 };

/*
 * What a stream or poll request asks for, from its query string and
 * headers.  ~13 KiB (the parameters): keep it off small thread stacks.
 */
struct transport_req {
	struct http_params params; /* as given (token= is the caller's) */
	int nchan;
	char chan[VALID_CHANNELS_MAX][VALID_CHANNEL_MAX + 1];
	const char *chans[VALID_CHANNELS_MAX]; /* chan[0..nchan) */
	int64_t since;      /* deliver ids > since; -1 = not given */
	int last;           /* the newest N first; -1 = not given */
	/* stream: script's callback (TRANSPORT_CALLBACK unless given);
	 * poll: JSONP's, "" = plain JSON */
	char callback[VALID_CALLBACK_MAX + 1];
	/* streams */
	enum transport_kind kind;
	int heartbeat;      /* seconds between heartbeats */
	int octet;          /* raw as application/octet-stream */
	/* polls */
	enum transport_poll_format format;
	int timeout;        /* seconds to hold */
	int refresh;        /* page: Refresh seconds */
};

/*
 * What a request's parameters were refused for (transport_request; 0 is
 * none): each responder
 * turns each into an HTTP status and a failure site of its own.  Not
 * every parser returns every value.
 */
enum transport_refusal {
	TRANSPORT_EPARAMS = 1,  /* the query string (http_parse_query) */
	TRANSPORT_ENOCHANNEL,   /* channel= missing or empty */
	TRANSPORT_ECHANNEL,     /* channel= not a list of names */
	TRANSPORT_EFORMAT,      /* format= not one of the parser's */
	TRANSPORT_ESINCELEID,   /* since= together with last_event_id= */
	TRANSPORT_ESINCE,       /* since= (last_event_id=) not an id */
	TRANSPORT_ELASTSINCE,   /* last= together with since= */
	TRANSPORT_ELAST,        /* last= out of range */
	TRANSPORT_ELEID,        /* the Last-Event-ID header not an id */
	TRANSPORT_EHEARTBEAT,   /* heartbeat= out of range */
	TRANSPORT_ECALLBACK,    /* callback= not a JavaScript name */
	TRANSPORT_ECALLBACKFMT, /* callback= without format=json */
	TRANSPORT_EREFRESHFMT,  /* refresh= without format=page */
	TRANSPORT_EREFRESH,     /* refresh= out of range */
	TRANSPORT_EPAGECURSOR,  /* format=page with since=, last=, timeout= */
	TRANSPORT_ETIMEOUT,     /* timeout= not a number */
	TRANSPORT_EINM          /* If-None-Match not one of our ETags */
};
#define TRANSPORT_REFUSAL_LAST TRANSPORT_EINM

/*
 * Parse a request for who from its query string qs (NULL: none) and the
 * headers that carry a cursor or a choice (any may be NULL): accept and
 * leid (Last-Event-ID) for a stream, inm (If-None-Match) and leid for a
 * poll.  One allow-list serves both: channel, format, since, last,
 * callback, token and "_" (a cache buster, ignored) for either;
 * last_event_id and heartbeat for streams; timeout and refresh for polls.
 * Any other parameter, or one given twice, is refused.
 *
 * Both: channel= is required (1-VALID_CHANNELS_MAX names), since= is an
 * id, last= (0-TRANSPORT_LAST_MAX) excludes since=, callback= is a
 * JavaScript name.
 * Streams: format= mixed, sse, script or raw, else by Accept; a
 * Last-Event-ID header wins over since= or last_event_id=, which win over
 * last=; a mixed stream with no cursor starts with the newest message
 * (last=1); heartbeat= from TRANSPORT_HEARTBEAT_MIN to c's heartbeat.
 * Polls: format= json, raw or page; the cursor is since=, else
 * If-None-Match, else Last-Event-ID, and a header cursor makes last=
 * void; callback= for json only; timeout= capped at c's
 * poll_timeout_max (default poll_timeout); refresh= for page only,
 * which takes no since=, last= or timeout= (it shows the newest
 * message).
 *
 * Returns 0, or what was refused (enum transport_refusal) with a
 * one-line reason in why: the request is a 400.
 */
int transport_request(struct transport_req *q, enum transport_for who,
    const char *qs, const char *accept, const char *inm, const char *leid,
    const struct conf *c, char *why, size_t whylen);
/* 1 if the allow-list lets who send a parameter called name, else 0. */
int transport_param_allowed(enum transport_for who, const char *name);

/* The framing asked for by an Accept header: TRANSPORT_SSE if it names
 * text/event-stream (with q > 0), else TRANSPORT_MIXED. */
enum transport_kind transport_negotiate(const char *accept);

/*
 * An If-None-Match header as a cursor: optional spaces, an optional weak
 * marker W/, then "DIGITS" or DIGITS (see transport_id), optional spaces;
 * nothing else (one entity tag only).  0, or -1 when it is anything else.
 */
int transport_if_none_match(const char *s, int64_t *out);

/*
 * A poll's JSON answer (see push-poll): optional "CALLBACK(", then
 * {"messages":[M,...],"next":NEXT[,"gap":GAP][,"more":true]} with each M
 * as transport_json_message writes m[0..n), then "});\n" or "}\n".  gap
 * 0: none; STORE_GAP_RESET: the log was replaced, written "gap":0 (see
 * mlog.h); callback NULL or "": plain JSON.
 */
int transport_poll_json(struct http_out *o, const struct store_msg *const *m,
    int n, int64_t next, int64_t gap, int more, const char *callback);

/* Framing state of one response. */
struct transport {
	enum transport_kind kind;
	int octet;
	char boundary[TRANSPORT_BOUNDARY_MAX + 1];
	char callback[VALID_CALLBACK_MAX + 1];
	int state;          /* mixed: where the part sequence stands */
	char guess[VALID_TYPE_MAX + 1]; /* mixed: type announced ahead */
};

/* Set up t for q.  boundary NULL picks a random one (tests pass theirs). */
void transport_init(struct transport *t, const struct transport_req *q,
    const char *boundary);
/* The response's Content-Type, written into buf (TRANSPORT_TYPE_MAX
 * bytes hold any). */
const char *transport_type(const struct transport *t, char *buf,
    size_t len);

/*
 * After the HTTP headers: preamble, padding and, for sse and script, the
 * stream's handle as the first event (raw and mixed carry it only in the
 * X-Push-Stream header).  handle: of TRANSPORT_HANDLE_CHARS only (else
 * -1, nothing written); NULL or "" sends no stream event.  cursor >= 0:
 * where the stream starts (it delivers what comes after that id): sse
 * puts it in an "id:" line of the stream event, script adds
 * "cursor":N, so that a client cut off before its first message
 * resumes from there.  -1: none.
 */
int transport_begin(struct transport *t, struct http_out *o,
    const char *handle, int64_t cursor);
/*
 * 1 when a message framed on a and on b gives the same bytes, and
 * changes neither: sse streams all frame a message alike, raw ones too,
 * script ones with the same callback; mixed ones never (each has its
 * own boundary and part state).  A writer with thousands of streams
 * frames a message once for all that are alike.
 */
int transport_same(const struct transport *a, const struct transport *b);
/* One message.  prev: the message sent before it (NULL if none); mixed
 * re-sends it in the cases described above. */
int transport_message(struct transport *t, struct http_out *o,
    const struct store_msg *m, const struct store_msg *prev);
/* Messages up to id gap on these channels were pruned unseen. */
int transport_gap(struct transport *t, struct http_out *o, int64_t gap,
    const struct store_msg *prev);
/*
 * Something that keeps the connection alive and shows nothing.  It comes
 * in two parts, to be flushed TRANSPORT_PROBE_MS apart: a web server that
 * only notices a gone client when it writes (Apache) needs two writes,
 * because the first one after the client's FIN still succeeds.  part:
 * TRANSPORT_BEAT_FIRST, TRANSPORT_BEAT_REST, or TRANSPORT_BEAT_ALL for
 * both at once.  Nothing else may be written between the two parts
 * except by finishing with TRANSPORT_BEAT_REST first.
 */
int transport_heartbeat(struct transport *t, struct http_out *o,
    const struct store_msg *prev, int part);
/* The stream ends cleanly (shutdown). */
int transport_end(struct transport *t, struct http_out *o,
    const struct store_msg *prev);

/* Building blocks, shared with the long-poll responder. */
/* A cursor: 1-TRANSPORT_ID_DIGITS decimal digits in s[0..n), at most
 * INT64_MAX, into *out.  0, or -1 if malformed. */
int transport_id(const char *s, size_t n, int64_t *out);
int transport_utf8_valid(const void *p, size_t n);
int transport_base64(struct http_out *o, const void *p, size_t n);
/* A JSON string (with its quotes) of valid UTF-8 p[0..n), escaped so it
 * is also safe inside <script>. */
int transport_json_string(struct http_out *o, const void *p, size_t n);
/* {"id":..,"channel":..,"time":..,"type":..,"event":..|null,"data":..}
 * with "encoding":"base64" added when data is not UTF-8. */
int transport_json_message(struct http_out *o, const struct store_msg *m);

#endif
