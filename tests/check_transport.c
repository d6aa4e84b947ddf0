/*
 * Unit tests of lib/transport.c (framing, to the byte; escaping) and of
 * the query-string parser in lib/http.c (allow-list, caps, decoding).
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <check.h>
#include <fastcgi.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http.h"
#include "transport.h"

#define B "BOUNDARY"
#define H99 "99.0123456789abcdef0123456789abcdef" /* a stream handle */

static struct conf cfg;
static struct http_params params;
static char why[HTTP_REASON_MAX];

static void
setup(void)
{
	conf_defaults(&cfg);
	cfg.heartbeat = 20;
	memset(&params, 0, sizeof(params));
	why[0] = '\0';
}

/* The memory output as a string (no NULs in these tests). */
static const char *
out_str(struct http_out *o)
{
	http_put(o, "", 1);
	o->used--;
	return o->buf;
}

static struct store_msg
msg(int64_t id, const char *channel, const char *type, const char *event,
    const char *data, size_t len)
{
	struct store_msg m;

	m.id = id;
	m.channel = channel;
	m.time_ms = 1700000000000LL + id;
	m.type = type;
	m.event = event;
	m.data = data;
	m.len = len;
	return m;
}

/* A stream request: -1 when its query string stops at the allow-list,
 * else transport_request's answer. */
static int
parse(const char *qs, const char *accept, const char *leid,
    struct transport_req *q)
{
	int rc;

	rc = transport_request(q, TRANSPORT_FOR_STREAM, qs, accept, NULL,
	    leid, &cfg, why, sizeof(why));
	return rc == TRANSPORT_EPARAMS ? -1 : rc;
}

static void
init(struct transport *t, enum transport_kind kind, struct http_out *o)
{
	struct transport_req q;

	memset(&q, 0, sizeof(q));
	q.kind = kind;
	snprintf(q.callback, sizeof(q.callback), "%s", "cb");
	transport_init(t, &q, B);
	http_out_mem(o);
}

START_TEST(query_basic)
{
	static const char *const allowed[] = { "a", "b", "c", NULL };

	ck_assert_int_eq(http_parse_query("a=1&b=x+y%20z%2Bw&c", allowed,
	    &params, why, sizeof(why)), 0);
	ck_assert_int_eq(params.n, 3);
	ck_assert_str_eq(http_param(&params, "a"), "1");
	ck_assert_str_eq(http_param(&params, "b"), "x y z+w");
	ck_assert_str_eq(http_param(&params, "c"), "");
	ck_assert_ptr_null(http_param(&params, "d"));
	/* Empty pieces are skipped; an empty query is fine. */
	ck_assert_int_eq(http_parse_query("&&a=%41%62&", allowed, &params,
	    why, sizeof(why)), 0);
	ck_assert_int_eq(params.n, 1);
	ck_assert_str_eq(http_param(&params, "a"), "Ab");
	ck_assert_int_eq(http_parse_query("", allowed, &params, why,
	    sizeof(why)), 0);
	ck_assert_int_eq(params.n, 0);
	ck_assert_int_eq(http_parse_query(NULL, allowed, &params, why,
	    sizeof(why)), 0);
	/* Escaped names are decoded before the allow-list. */
	ck_assert_int_eq(http_parse_query("%61=1", allowed, &params, why,
	    sizeof(why)), 0);
	ck_assert_str_eq(http_param(&params, "a"), "1");
}
END_TEST

START_TEST(query_refused)
{
	static const char *const allowed[] = { "a", "b", NULL };
	static const char *const many[] = { "p0", "p1", "p2", "p3", "p4",
	    "p5", "p6", "p7", "p8", "p9", "p10", "p11", "p12", "p13", "p14",
	    "p15", "p16", "p17", NULL };
	char *big;
	size_t i;
	int n;

	ck_assert_int_eq(http_parse_query("a=1&evil=2", allowed, &params, why,
	    sizeof(why)), -1);
	ck_assert_str_eq(why, "unknown parameter \"evil\"");
	ck_assert_int_eq(http_parse_query("a=1&a=2", allowed, &params, why,
	    sizeof(why)), -1);
	ck_assert_str_eq(why, "parameter \"a\" given twice");
	/* An unknown name is shown sanitised. */
	ck_assert_int_eq(http_parse_query("x%0A%22y=1", allowed, &params,
	    why, sizeof(why)), -1);
	ck_assert_str_eq(why, "unknown parameter \"x??y\"");
	ck_assert_int_eq(http_parse_query("a=%zz", allowed, &params, why,
	    sizeof(why)), -1);
	ck_assert_int_eq(http_parse_query("a=%4", allowed, &params, why,
	    sizeof(why)), -1);
	ck_assert_int_eq(http_parse_query("a=%", allowed, &params, why,
	    sizeof(why)), -1);
	ck_assert_int_eq(http_parse_query("a=x%00y", allowed, &params, why,
	    sizeof(why)), -1);
	ck_assert_ptr_nonnull(strstr(why, "NUL"));

	/* More than HTTP_PARAMS_MAX parameters. */
	big = malloc(HTTP_QUERY_MAX + 64);
	ck_assert_ptr_nonnull(big);
	big[0] = '\0';
	for (n = 0; n <= HTTP_PARAMS_MAX; n++)
		snprintf(big + strlen(big), 16, "%sp%d=1", n ? "&" : "", n);
	ck_assert_int_eq(http_parse_query(big, many, &params, why,
	    sizeof(why)), -1);
	ck_assert_ptr_nonnull(strstr(why, "more than"));
	*strrchr(big, '&') = '\0';
	ck_assert_int_eq(http_parse_query(big, many, &params, why,
	    sizeof(why)), 0);
	ck_assert_int_eq(params.n, HTTP_PARAMS_MAX);

	/* A value at the cap passes, one byte more does not. */
	strcpy(big, "a=");
	for (i = 0; i < HTTP_VALUE_MAX; i++)
		big[2 + i] = 'v';
	big[2 + HTTP_VALUE_MAX] = '\0';
	ck_assert_int_eq(http_parse_query(big, allowed, &params, why,
	    sizeof(why)), 0);
	ck_assert_uint_eq(strlen(http_param(&params, "a")), HTTP_VALUE_MAX);
	strcat(big, "v");
	ck_assert_int_eq(http_parse_query(big, allowed, &params, why,
	    sizeof(why)), -1);
	ck_assert_ptr_nonnull(strstr(why, "longer than"));

	/* The whole query string is capped. */
	memset(big, 'a', HTTP_QUERY_MAX + 1);
	big[HTTP_QUERY_MAX + 1] = '\0';
	ck_assert_int_eq(http_parse_query(big, allowed, &params, why,
	    sizeof(why)), -1);
	ck_assert_ptr_nonnull(strstr(why, "query string longer"));

	/* A name over HTTP_NAME_MAX. */
	memset(big, 'n', HTTP_NAME_MAX + 1);
	strcpy(big + HTTP_NAME_MAX + 1, "=1");
	ck_assert_int_eq(http_parse_query(big, allowed, &params, why,
	    sizeof(why)), -1);
	ck_assert_ptr_nonnull(strstr(why, "name longer"));
	free(big);
}
END_TEST

START_TEST(stream_params)
{
	struct transport_req q;

	ck_assert_int_eq(parse("channel=news", NULL, NULL, &q), 0);
	ck_assert_int_eq(q.kind, TRANSPORT_MIXED);
	ck_assert_int_eq(q.nchan, 1);
	ck_assert_str_eq(q.chan[0], "news");
	ck_assert_int_eq(q.last, 1);          /* mixed: latest at once */
	ck_assert(q.since == -1);
	ck_assert_int_eq(q.heartbeat, 20);
	ck_assert_str_eq(q.callback, TRANSPORT_CALLBACK);

	ck_assert_int_eq(parse("channel=a,b,a,c&format=sse", NULL, NULL, &q),
	    0);
	ck_assert_int_eq(q.kind, TRANSPORT_SSE);
	ck_assert_int_eq(q.nchan, 3);
	ck_assert_int_eq(q.last, -1);

	ck_assert_int_eq(parse("channel=a&format=raw&since=42&_=123", NULL,
	    NULL, &q), 0);
	ck_assert_int_eq(q.kind, TRANSPORT_RAW);
	ck_assert(q.since == 42);
	ck_assert_int_eq(q.last, -1);
	ck_assert_int_eq(parse("channel=a&format=raw", "application/"
	    "octet-stream", NULL, &q), 0);
	ck_assert_int_eq(q.octet, 1);

	ck_assert_int_eq(parse("channel=a&last_event_id=7&format=script&"
	    "callback=app.on_msg", NULL, NULL, &q), 0);
	ck_assert(q.since == 7);
	ck_assert_int_eq(q.kind, TRANSPORT_SCRIPT);
	ck_assert_str_eq(q.callback, "app.on_msg");

	/* The Last-Event-ID header wins over the URL's cursor. */
	ck_assert_int_eq(parse("channel=a&since=3", "text/event-stream", "9",
	    &q), 0);
	ck_assert(q.since == 9);
	ck_assert_int_eq(q.kind, TRANSPORT_SSE);
	ck_assert_int_eq(parse("channel=a&last=5&format=sse", NULL, "9", &q),
	    0);
	ck_assert(q.since == 9);
	ck_assert_int_eq(q.last, -1);
	ck_assert_int_eq(parse("channel=a&last=5", NULL, NULL, &q), 0);
	ck_assert_int_eq(q.last, 5);
	ck_assert_int_eq(parse("channel=a&since=9223372036854775807", NULL,
	    NULL, &q), 0);
	ck_assert(q.since == INT64_MAX);

	ck_assert_int_eq(parse("channel=a&heartbeat=2", NULL, NULL, &q), 0);
	ck_assert_int_eq(q.heartbeat, 2);
}
END_TEST

START_TEST(stream_params_refused)
{
	struct transport_req q;

	ck_assert_int_gt(parse("format=sse", NULL, NULL, &q), 0);
	ck_assert_int_gt(parse("channel=", NULL, NULL, &q), 0);
	ck_assert_int_gt(parse("channel=.x", NULL, NULL, &q), 0);
	ck_assert_int_gt(parse("channel=a%20b", NULL, NULL, &q), 0);
	ck_assert_int_gt(parse("channel=a,,b", NULL, NULL, &q), 0);
	ck_assert_int_gt(parse("channel=a&format=json", NULL, NULL, &q), 0);
	ck_assert_int_gt(parse("channel=a&since=1&last=2", NULL, NULL, &q), 0);
	ck_assert_int_gt(parse("channel=a&since=1&last_event_id=2", NULL,
	    NULL, &q), 0);
	ck_assert_int_gt(parse("channel=a&since=-1", NULL, NULL, &q), 0);
	ck_assert_int_gt(parse("channel=a&since=9223372036854775808", NULL,
	    NULL, &q), 0);
	ck_assert_int_gt(parse("channel=a&since=1x", NULL, NULL, &q), 0);
	ck_assert_int_gt(parse("channel=a&last=101", NULL, NULL, &q), 0);
	ck_assert_int_gt(parse("channel=a&heartbeat=0", NULL, NULL, &q), 0);
	ck_assert_int_gt(parse("channel=a&heartbeat=21", NULL, NULL, &q), 0);
	ck_assert_int_gt(parse("channel=a&callback=alert(1)", NULL, NULL, &q),
	    0);
	ck_assert_int_gt(parse("channel=a&callback=a..b", NULL, NULL, &q), 0);
	ck_assert_int_gt(parse("channel=a", NULL, "x1", &q), 0);
	ck_assert_int_gt(parse("channel=a", NULL, "", &q), 0);
	/* Unknown parameters stop at the allow-list. */
	ck_assert_int_eq(parse("channel=a&secret=x", NULL, NULL, &q), -1);
	ck_assert_str_eq(why, "unknown parameter \"secret\"");
}
END_TEST

/* One poll request: 0 or what was refused. */
static int
poll_parse(const char *qs, const char *inm, const char *leid,
    struct transport_req *a)
{
	return transport_request(a, TRANSPORT_FOR_POLL, qs, NULL, inm, leid,
	    &cfg, why, sizeof(why));
}

START_TEST(poll_params)
{
	static struct transport_req a;
	int64_t v;

	cfg.poll_timeout = 25;
	cfg.poll_timeout_max = 120;
	ck_assert_int_eq(poll_parse("channel=b,a,b", NULL, NULL, &a), 0);
	ck_assert_int_eq(a.nchan, 2);
	ck_assert_str_eq(a.chans[0], "b");
	ck_assert_str_eq(a.chans[1], "a");
	ck_assert_int_eq(a.since, -1);
	ck_assert_int_eq(a.last, -1);
	ck_assert_int_eq(a.timeout, 25);
	ck_assert_int_eq(a.format, TRANSPORT_POLL_JSON);
	ck_assert_str_eq(a.callback, "");
	ck_assert_int_eq(poll_parse("channel=a&timeout=9999&format=raw&last=3",
	    NULL, NULL, &a), 0);
	ck_assert_int_eq(a.timeout, 120);
	ck_assert_int_eq(a.format, TRANSPORT_POLL_RAW);
	ck_assert_int_eq(a.last, 3);
	/* since= beats If-None-Match, which beats Last-Event-ID; a header
	 * cursor makes last= void. */
	ck_assert_int_eq(poll_parse("channel=a&since=7", "\"8\"", "9", &a), 0);
	ck_assert_int_eq(a.since, 7);
	ck_assert_int_eq(poll_parse("channel=a&last=5", " W/\"8\" ", "9", &a),
	    0);
	ck_assert_int_eq(a.since, 8);
	ck_assert_int_eq(a.last, -1);
	ck_assert_int_eq(poll_parse("channel=a", "", "9", &a), 0);
	ck_assert_int_eq(a.since, 9);
	ck_assert_int_eq(poll_parse("channel=a&callback=x.y", NULL, NULL, &a),
	    0);
	ck_assert_str_eq(a.callback, "x.y");

	ck_assert_int_eq(poll_parse("channel=a&bogus=1", NULL, NULL, &a),
	    TRANSPORT_EPARAMS);
	ck_assert_int_eq(poll_parse(NULL, NULL, NULL, &a),
	    TRANSPORT_ENOCHANNEL);
	ck_assert_int_eq(poll_parse("channel=.a", NULL, NULL, &a),
	    TRANSPORT_ECHANNEL);
	ck_assert_int_eq(poll_parse("channel=a&format=sse", NULL, NULL, &a),
	    TRANSPORT_EFORMAT);
	ck_assert_int_eq(poll_parse("channel=a&format=raw&callback=f", NULL,
	    NULL, &a), TRANSPORT_ECALLBACKFMT);
	ck_assert_int_eq(poll_parse("channel=a&callback=f()", NULL, NULL, &a),
	    TRANSPORT_ECALLBACK);
	ck_assert_int_eq(poll_parse("channel=a&timeout=10000", NULL, NULL, &a),
	    TRANSPORT_ETIMEOUT);
	ck_assert_int_eq(poll_parse("channel=a&since=x", NULL, NULL, &a),
	    TRANSPORT_ESINCE);
	ck_assert_int_eq(poll_parse("channel=a", "\"1\",\"2\"", NULL, &a),
	    TRANSPORT_EINM);
	ck_assert_int_eq(poll_parse("channel=a", NULL, "-1", &a),
	    TRANSPORT_ELEID);
	ck_assert_int_eq(poll_parse("channel=a&since=1&last=1", NULL, NULL,
	    &a), TRANSPORT_ELASTSINCE);
	ck_assert_int_eq(poll_parse("channel=a&last=101", NULL, NULL, &a),
	    TRANSPORT_ELAST);
	ck_assert_int_eq(poll_parse("channel=a&last=0100", NULL, NULL, &a),
	    TRANSPORT_ELAST);

	ck_assert_int_eq(transport_if_none_match("\t12 ", &v), 0);
	ck_assert_int_eq(v, 12);
	ck_assert_int_eq(transport_if_none_match("W/12", &v), 0);
	ck_assert_int_eq(v, 12);
	ck_assert_int_eq(transport_if_none_match("\"9223372036854775807\"", &v),
	    0);
	ck_assert_int_eq(v, INT64_MAX);
	ck_assert_int_eq(transport_if_none_match("\"9223372036854775808\"", &v),
	    -1);
	ck_assert_int_eq(transport_if_none_match("\"\"", &v), -1);
	ck_assert_int_eq(transport_if_none_match("\"12", &v), -1);
	ck_assert_int_eq(transport_if_none_match("w/\"12\"", &v), -1);
	ck_assert_int_eq(transport_if_none_match("*", &v), -1);
}
END_TEST

/*
 * transport_same: what it calls alike frames a message to the same bytes
 * and leaves the state as it was (so one framing serves many streams);
 * mixed streams are never alike, script ones only with one callback.
 */
START_TEST(same_framing)
{
	static const enum transport_kind kinds[] = {
		TRANSPORT_SSE, TRANSPORT_RAW, TRANSPORT_SCRIPT
	};
	struct store_msg m = msg(21, "news", "text/plain", "ev", "x\ny", 3);
	struct transport_req q;
	struct transport a, b, a0;
	struct http_out oa, ob;
	size_t i;

	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		memset(&q, 0, sizeof(q));
		q.kind = kinds[i];
		snprintf(q.callback, sizeof(q.callback), "cb");
		transport_init(&a, &q, NULL);
		transport_init(&b, &q, NULL);   /* another random boundary */
		ck_assert_int_eq(transport_same(&a, &b), 1);
		a0 = a;
		http_out_mem(&oa);
		http_out_mem(&ob);
		transport_message(&a, &oa, &m, NULL);
		transport_message(&b, &ob, &m, NULL);
		ck_assert_uint_eq(oa.used, ob.used);
		ck_assert_int_eq(memcmp(oa.buf, ob.buf, oa.used), 0);
		ck_assert_int_eq(memcmp(&a, &a0, sizeof(a)), 0);
		http_out_free(&oa);
		http_out_free(&ob);
	}
	memset(&q, 0, sizeof(q));
	q.kind = TRANSPORT_SCRIPT;
	snprintf(q.callback, sizeof(q.callback), "one");
	transport_init(&a, &q, NULL);
	snprintf(q.callback, sizeof(q.callback), "two");
	transport_init(&b, &q, NULL);
	ck_assert_int_eq(transport_same(&a, &b), 0);
	q.kind = TRANSPORT_MIXED;
	transport_init(&a, &q, "same");
	transport_init(&b, &q, "same");
	ck_assert_int_eq(transport_same(&a, &b), 0);
	q.kind = TRANSPORT_SSE;
	transport_init(&b, &q, NULL);
	ck_assert_int_eq(transport_same(&a, &b), 0);
}
END_TEST

/* transport_if_none_match(s): 0 with *v set to want, or -1 with *v left
 * as it was. */
static void
inm_is(const char *s, int64_t want)
{
	int64_t v = 77;

	ck_assert_msg(transport_if_none_match(s, &v) == 0,
	    "If-None-Match [%s] refused", s);
	ck_assert_msg(v == want, "If-None-Match [%s]: %lld, not %lld", s,
	    (long long)v, (long long)want);
}

static void
inm_refused(const char *s)
{
	int64_t v = 77;

	ck_assert_msg(transport_if_none_match(s, &v) == -1,
	    "If-None-Match [%s] accepted", s);
	ck_assert_msg(v == 77, "If-None-Match [%s] refused but wrote %lld", s,
	    (long long)v);
}

START_TEST(if_none_match)
{
	/* Accepted: a bare number, a quoted one (the ETag push-poll sends),
	 * weak W/ before either, spaces and tabs around, every length up to
	 * TRANSPORT_ID_DIGITS, zero, and INT64_MAX. */
	inm_is("12", 12);
	inm_is("\"12\"", 12);
	inm_is("W/12", 12);
	inm_is("W/\"12\"", 12);
	inm_is("  \"12\"\t", 12);
	inm_is("\t W/\"12\"  ", 12);
	inm_is("0", 0);
	inm_is("\"0\"", 0);
	inm_is("0000000000000000012", 12);               /* 19 digits */
	inm_is("\"9223372036854775807\"", INT64_MAX);
	inm_is("9223372036854775807", INT64_MAX);

	/* Refused: over-long (20 digits, even of zeros), signs, non-digits,
	 * spaces inside, a list of tags, overflow, and what is not an ETag
	 * of ours at all. */
	inm_refused("00000000000000000012");
	inm_refused("\"00000000000000000012\"");
	inm_refused("\"12345678901234567890123456789\"");
	inm_refused("+12");
	inm_refused("-12");
	inm_refused("\"-1\"");
	inm_refused("\"+1\"");
	inm_refused("W/-1");
	inm_refused("12a");
	inm_refused("0x10");
	inm_refused("1.5");
	inm_refused("\"abc\"");
	inm_refused("\" 12\"");
	inm_refused("\"12 \"");
	inm_refused("1 2");
	inm_refused("W/ \"12\"");
	inm_refused("W\"12\"");
	inm_refused("\"1\", \"2\"");
	inm_refused("\"1\",\"2\"");
	inm_refused("1,2");
	inm_refused("W/\"1\", W/\"2\"");
	inm_refused("9223372036854775808");
	inm_refused("\"9223372036854775808\"");
	inm_refused("\"9999999999999999999\"");
	inm_refused("");
	inm_refused("   ");
	inm_refused("W/");
	inm_refused("\"");
	inm_refused("\"\"");
	inm_refused("\"12");
	inm_refused("12\"");
	inm_refused("w/\"12\"");
	inm_refused("*");
}
END_TEST

START_TEST(poll_json)
{
	struct store_msg m1 = msg(1, "a", "text/plain", NULL, "x</script>", 10);
	struct store_msg m2 = msg(2, "b", "image/png", "ev", "\xff", 1);
	const struct store_msg *ms[] = { &m1, &m2 };
	struct http_out o;

	http_out_mem(&o);
	ck_assert_int_eq(transport_poll_json(&o, ms, 2, 2, 0, 0, NULL), 0);
	ck_assert_str_eq(out_str(&o), "{\"messages\":["
	    "{\"id\":1,\"channel\":\"a\",\"time\":1700000000001,"
	    "\"type\":\"text/plain\",\"event\":null,"
	    "\"data\":\"x\\u003c/script\\u003e\"},"
	    "{\"id\":2,\"channel\":\"b\",\"time\":1700000000002,"
	    "\"type\":\"image/png\",\"event\":\"ev\",\"data\":\"/w==\","
	    "\"encoding\":\"base64\"}],\"next\":2}\n");
	http_out_free(&o);
	http_out_mem(&o);
	ck_assert_int_eq(transport_poll_json(&o, NULL, 0, 5, 4, 1, "cb.f"), 0);
	ck_assert_str_eq(out_str(&o),
	    "cb.f({\"messages\":[],\"next\":5,\"gap\":4,\"more\":true});\n");
	http_out_free(&o);
}
END_TEST

START_TEST(negotiation)
{
	ck_assert_int_eq(transport_negotiate(NULL), TRANSPORT_MIXED);
	ck_assert_int_eq(transport_negotiate("*/*"), TRANSPORT_MIXED);
	ck_assert_int_eq(transport_negotiate("text/event-stream"),
	    TRANSPORT_SSE);
	ck_assert_int_eq(transport_negotiate("text/html, TEXT/Event-Stream ;"
	    " q=0.5"), TRANSPORT_SSE);
	ck_assert_int_eq(transport_negotiate("text/event-stream;q=0"),
	    TRANSPORT_MIXED);
	ck_assert_int_eq(transport_negotiate("text/event-stream; q=0.000, "
	    "*/*"), TRANSPORT_MIXED);
	ck_assert_int_eq(transport_negotiate("text/event-stream;q=0.01"),
	    TRANSPORT_SSE);
	ck_assert_int_eq(transport_negotiate("text/event-streams"),
	    TRANSPORT_MIXED);
	ck_assert_int_eq(transport_negotiate("image/avif,image/webp,*/*;"
	    "q=0.8"), TRANSPORT_MIXED);
}
END_TEST

START_TEST(frame_mixed)
{
	struct transport t;
	struct http_out o;
	struct store_msg m1 = msg(1, "cam", "image/png", NULL, "AB", 2);
	struct store_msg m2 = msg(2, "cam", "image/png", NULL, "CD", 2);
	struct store_msg m3 = msg(3, "cam", "text/plain", NULL, "hi", 2);
	char type[128];

	init(&t, TRANSPORT_MIXED, &o);
	ck_assert_str_eq(transport_type(&t, type, sizeof(type)),
	    "multipart/x-mixed-replace;boundary=" B);
	ck_assert_int_eq(transport_begin(&t, &o, "5.00ff", -1), 0);
	ck_assert_int_eq(transport_heartbeat(&t, &o, NULL, TRANSPORT_BEAT_ALL),
	    0);
	ck_assert_int_eq(transport_message(&t, &o, &m1, NULL), 0);
	ck_assert_int_eq(transport_message(&t, &o, &m2, &m1), 0);
	ck_assert_int_eq(transport_heartbeat(&t, &o, &m2, TRANSPORT_BEAT_FIRST),
	    0);
	ck_assert_int_eq(transport_heartbeat(&t, &o, &m2, TRANSPORT_BEAT_REST),
	    0);
	ck_assert_int_eq(transport_message(&t, &o, &m3, &m2), 0);
	ck_assert_int_eq(transport_gap(&t, &o, 77, &m3), 0);
	ck_assert_int_eq(transport_end(&t, &o, &m3), 0);
	ck_assert_str_eq(out_str(&o),
	    "--" B "\r\n"
	    "X-Heartbeat: 1\r\n"
	    "Content-Type: image/png\r\nContent-Length: 2\r\n\r\n"
	    "AB\r\n--" B "\r\nContent-Type: image/png\r\n\r\n"
	    "CD\r\n--" B "\r\nContent-Type: image/png\r\n\r\n"
	    "CD\r\n--" B "\r\nContent-Type: image/png\r\n\r\n"
	    "CD\r\n--" B "\r\n"
	    "Content-Type: text/plain\r\nContent-Length: 2\r\n\r\n"
	    "hi\r\n--" B "\r\nContent-Type: text/plain\r\n\r\n"
	    "hi\r\n--" B "\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\nX-Push-Gap: 77\r\n"
	    "Content-Length: 2\r\n\r\n77\r\n--" B "\r\n"
	    "\r\n\r\n--" B "--\r\n");
	http_out_free(&o);

	/* Random boundaries: distinct, long enough, token characters. */
	{
		struct transport_req q;
		struct transport a, b;

		memset(&q, 0, sizeof(q));
		transport_init(&a, &q, NULL);
		transport_init(&b, &q, NULL);
		ck_assert_str_ne(a.boundary, b.boundary);
		ck_assert_uint_ge(strlen(a.boundary), 24);
		ck_assert_uint_eq(strspn(a.boundary, "pushcgi0123456789abcdef"),
		    strlen(a.boundary));
	}
}
END_TEST

START_TEST(frame_sse)
{
	struct transport t;
	struct http_out o;
	struct store_msg m1 = msg(10, "news", "text/plain", "tick", "a\nb\n", 4);
	struct store_msg m2 = msg(11, "news", "text/plain", NULL, " lead", 5);
	struct store_msg m3 = msg(12, "news", "application/octet-stream", NULL,
	    "\x89PNG\r\n", 6);
	struct store_msg m4 = msg(13, "news", "text/plain", "e", "", 0);
	struct store_msg m5 = msg(14, "news", "text/plain", "bin", "\xff", 1);
	const char *s;
	char type[64];
	size_t i;

	init(&t, TRANSPORT_SSE, &o);
	ck_assert_str_eq(transport_type(&t, type, sizeof(type)),
	    "text/event-stream");
	ck_assert_int_eq(transport_begin(&t, &o, H99, -1), 0);
	s = out_str(&o);
	ck_assert_int_eq(strncmp(s, "retry: 2000\n:", 13), 0);
	for (i = 0; i < TRANSPORT_PADDING; i++)
		ck_assert_int_eq(s[13 + i], ' ');
	ck_assert_str_eq(s + 13 + TRANSPORT_PADDING,
	    "\nevent: stream\ndata: " H99 "\n\n");
	o.used = 0;
	transport_message(&t, &o, &m1, NULL);
	transport_message(&t, &o, &m2, NULL);
	transport_message(&t, &o, &m3, NULL);
	transport_message(&t, &o, &m4, NULL);
	transport_message(&t, &o, &m5, NULL);
	transport_gap(&t, &o, 8, NULL);
	transport_heartbeat(&t, &o, NULL, TRANSPORT_BEAT_ALL);
	ck_assert_int_eq(transport_end(&t, &o, NULL), 0);
	ck_assert_str_eq(out_str(&o),
	    "id: 10\nevent: tick\ndata: a\ndata: b\ndata: \n\n"
	    "id: 11\ndata:  lead\n\n"
	    "id: 12\nevent: message;base64\ndata: iVBORw0K\n\n"
	    "id: 13\nevent: e\ndata: \n\n"
	    "id: 14\nevent: bin;base64\ndata: /w==\n\n"
	    "event: gap\ndata: 8\n\n"
	    ":\n");
	http_out_free(&o);
}
END_TEST

START_TEST(frame_script)
{
	static const char evil[] = "</script><script>alert(\"x\")</script>"
	    " & 'q' \\ \xe2\x80\xa8 \xe2\x80\xa9 \xc3\xa9 \x01 <!--";
	struct transport t;
	struct http_out o;
	struct store_msg m1 = msg(3, "chat", "text/html", "say", evil,
	    sizeof(evil) - 1);
	struct store_msg m2 = msg(4, "cam", "image/png", NULL, "\x89PNG", 4);
	const char *s, *body;
	char type[64];

	init(&t, TRANSPORT_SCRIPT, &o);
	ck_assert_str_eq(transport_type(&t, type, sizeof(type)),
	    "text/html; charset=utf-8");
	transport_begin(&t, &o, "12.ab", -1);
	s = out_str(&o);
	ck_assert_ptr_nonnull(strstr(s, "<!DOCTYPE html>"));
	ck_assert_uint_gt(strlen(s), TRANSPORT_PADDING);
	ck_assert_ptr_nonnull(strstr(s, "-->\n<script>parent.cb("
	    "{\"stream\":\"12.ab\"})</script>\n"));
	o.used = 0;
	transport_message(&t, &o, &m1, NULL);
	transport_message(&t, &o, &m2, NULL);
	transport_gap(&t, &o, 2, NULL);
	transport_heartbeat(&t, &o, NULL, TRANSPORT_BEAT_ALL);
	s = out_str(&o);
	ck_assert_str_eq(s,
	    "<script>parent.cb({\"id\":3,\"channel\":\"chat\",\"time\":"
	    "1700000000003,\"type\":\"text/html\",\"event\":\"say\",\"data\":"
	    "\"\\u003c/script\\u003e\\u003cscript\\u003ealert(\\\"x\\\")"
	    "\\u003c/script\\u003e \\u0026 \\u0027q\\u0027 \\\\ \\u2028 "
	    "\\u2029 \xc3\xa9 \\u0001 \\u003c!--\"})</script>\n"
	    "<script>parent.cb({\"id\":4,\"channel\":\"cam\",\"time\":"
	    "1700000000004,\"type\":\"image/png\",\"event\":null,\"data\":"
	    "\"iVBORw==\",\"encoding\":\"base64\"})</script>\n"
	    "<script>parent.cb({\"gap\":2})</script>\n"
	    " \n");
	/* Nothing a message holds can end the script early. */
	body = strchr(s, '(');
	ck_assert_ptr_eq(strstr(body, "</script"), strstr(s, ")</script>") + 1);
	ck_assert_ptr_null(strstr(s, "\xe2\x80\xa8"));
	ck_assert_ptr_null(strstr(s, "\xe2\x80\xa9"));
	ck_assert_ptr_null(strstr(s, "<!--"));
	http_out_free(&o);
}
END_TEST

START_TEST(frame_raw)
{
	struct transport t;
	struct http_out o;
	struct store_msg m1 = msg(1, "log", "text/plain", NULL, "line", 4);
	struct store_msg m2 = msg(2, "log", "image/png", NULL, "\x00\x01\n", 3);
	char type[64];

	init(&t, TRANSPORT_RAW, &o);
	ck_assert_str_eq(transport_type(&t, type, sizeof(type)),
	    "text/plain; charset=utf-8");
	t.octet = 1;
	ck_assert_str_eq(transport_type(&t, type, sizeof(type)),
	    "application/octet-stream");
	transport_begin(&t, &o, "1.cd", -1);
	ck_assert_uint_eq(o.used, 1);
	o.used = 0;
	transport_message(&t, &o, &m1, NULL);
	transport_message(&t, &o, &m2, NULL);
	transport_heartbeat(&t, &o, NULL, TRANSPORT_BEAT_ALL);
	transport_gap(&t, &o, 9, NULL);
	transport_end(&t, &o, NULL);
	ck_assert_uint_eq(o.used, 4 + 1 + 3 + 1 + 2 + 15);
	ck_assert_mem_eq(o.buf, "line\n\x00\x01\n\n\n\n#pushcgi-gap 9\n",
	    o.used);
	http_out_free(&o);
}
END_TEST

/* The handle is the first event of sse and script only; an empty one
 * sends no stream event; one that could break a framing is refused and
 * nothing is written. */
START_TEST(frame_handle)
{
	static const char *const bad[] = { "1.a\n", "1.A", "1\"", "1 2",
	    "1.</script>", "\r" };
	struct transport t;
	struct http_out o;
	const char *s;
	size_t i;
	int kind;

	init(&t, TRANSPORT_MIXED, &o);
	ck_assert_int_eq(transport_begin(&t, &o, H99, -1), 0);
	ck_assert_str_eq(out_str(&o), "--" B "\r\n");
	http_out_free(&o);

	init(&t, TRANSPORT_RAW, &o);
	ck_assert_int_eq(transport_begin(&t, &o, H99, -1), 0);
	ck_assert_str_eq(out_str(&o), "\n");
	http_out_free(&o);

	init(&t, TRANSPORT_SSE, &o);
	ck_assert_int_eq(transport_begin(&t, &o, "", -1), 0);
	s = out_str(&o);
	ck_assert_uint_eq(strlen(s), 13 + TRANSPORT_PADDING + 1);
	ck_assert_ptr_null(strstr(s, "event"));
	http_out_free(&o);

	init(&t, TRANSPORT_SCRIPT, &o);
	ck_assert_int_eq(transport_begin(&t, &o, NULL, -1), 0);
	ck_assert_ptr_null(strstr(out_str(&o), "<script>"));
	http_out_free(&o);

	/* A stream from now on names where it starts. */
	init(&t, TRANSPORT_SSE, &o);
	ck_assert_int_eq(transport_begin(&t, &o, "7.ab", 41), 0);
	ck_assert_ptr_nonnull(strstr(out_str(&o),
	    "\nevent: stream\nid: 41\ndata: 7.ab\n\n"));
	http_out_free(&o);
	init(&t, TRANSPORT_SCRIPT, &o);
	ck_assert_int_eq(transport_begin(&t, &o, "7.ab", 41), 0);
	ck_assert_ptr_nonnull(strstr(out_str(&o),
	    "{\"stream\":\"7.ab\",\"cursor\":41})</script>"));
	http_out_free(&o);

	for (kind = TRANSPORT_MIXED; kind <= TRANSPORT_RAW; kind++)
		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			init(&t, (enum transport_kind)kind, &o);
			ck_assert_int_eq(transport_begin(&t, &o, bad[i], -1), -1);
			ck_assert_uint_eq(o.used, 0);
			http_out_free(&o);
		}
}
END_TEST

/* A heartbeat written in two parts is the same bytes as one written
 * whole, for every framing and state. */
START_TEST(heartbeat_parts)
{
	struct store_msg m = msg(1, "c", "image/gif", NULL, "GIF89a", 6);
	struct transport t1, t2;
	struct http_out a, b;
	int kind, sent;

	for (kind = TRANSPORT_MIXED; kind <= TRANSPORT_RAW; kind++) {
		for (sent = 0; sent <= 1; sent++) {
			init(&t1, (enum transport_kind)kind, &a);
			init(&t2, (enum transport_kind)kind, &b);
			transport_begin(&t1, &a, "1.cd", -1);
			transport_begin(&t2, &b, "1.cd", -1);
			if (sent) {
				transport_message(&t1, &a, &m, NULL);
				transport_message(&t2, &b, &m, NULL);
			}
			transport_heartbeat(&t1, &a, &m, TRANSPORT_BEAT_ALL);
			transport_heartbeat(&t2, &b, &m, TRANSPORT_BEAT_FIRST);
			ck_assert_uint_lt(b.used, a.used);
			transport_heartbeat(&t2, &b, &m, TRANSPORT_BEAT_REST);
			ck_assert_uint_eq(a.used, b.used);
			ck_assert_mem_eq(a.buf, b.buf, a.used);
			http_out_free(&a);
			http_out_free(&b);
		}
	}
}
END_TEST

START_TEST(codecs)
{
	static const char *const plain[] = { "", "f", "fo", "foo", "foob",
	    "fooba", "foobar" };
	static const char *const coded[] = { "", "Zg==", "Zm8=", "Zm9v",
	    "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
	struct http_out o;
	char *big;
	size_t i;

	for (i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		http_out_mem(&o);
		transport_base64(&o, plain[i], strlen(plain[i]));
		ck_assert_str_eq(out_str(&o), coded[i]);
		http_out_free(&o);
	}
	/* Across the internal chunk size. */
	big = malloc(10000);
	memset(big, 0xff, 10000);
	http_out_mem(&o);
	transport_base64(&o, big, 10000);
	ck_assert_uint_eq(o.used, (10000 + 2) / 3 * 4);
	ck_assert_int_eq(o.buf[0], '/');
	ck_assert_int_eq(o.buf[o.used - 1], '=');
	http_out_free(&o);
	free(big);

	ck_assert(transport_utf8_valid("", 0));
	ck_assert(transport_utf8_valid("plain ascii\n", 12));
	ck_assert(transport_utf8_valid("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80",
	    9));
	ck_assert(!transport_utf8_valid("\xc0\x80", 2));      /* overlong */
	ck_assert(!transport_utf8_valid("\xe0\x80\x80", 3));  /* overlong */
	ck_assert(!transport_utf8_valid("\xed\xa0\x80", 3));  /* surrogate */
	ck_assert(!transport_utf8_valid("\xf4\x90\x80\x80", 4)); /* > 10FFFF */
	ck_assert(!transport_utf8_valid("\xe2\x82", 2));      /* cut short */
	ck_assert(!transport_utf8_valid("\x80", 1));
	ck_assert(!transport_utf8_valid("\xff", 1));
	ck_assert(!transport_utf8_valid("\xc3\x28", 2));
}
END_TEST

START_TEST(out_mem)
{
	struct http_out o;
	int i;

	http_out_mem(&o);
	for (i = 0; i < 1000; i++)
		ck_assert_int_eq(http_printf(&o, "%04d", i), 0);
	ck_assert_uint_eq(o.used, 4000);
	ck_assert_int_eq(memcmp(o.buf + 3996, "0999", 4), 0);
	ck_assert_int_eq(http_flush(&o), 0);
	http_out_free(&o);
}
END_TEST

/* ---- non-blocking writes on a real FastCGI connection ---------------- */

#define FC_ID      1                    /* the request id used */
#define FC_BIG     30000                /* more than the socket holds */
#define FC_READ    (1 << 20)            /* what the reader keeps */

/* Append one FastCGI record to buf at *n. */
static void
fc_record(unsigned char *buf, size_t *n, int type, const void *p,
    size_t len)
{
	unsigned char *h = buf + *n;

	h[0] = FCGI_VERSION_1;
	h[1] = (unsigned char)type;
	h[2] = 0;
	h[3] = FC_ID;
	h[4] = (unsigned char)(len >> 8);
	h[5] = (unsigned char)(len & 0xff);
	h[6] = h[7] = 0;
	memcpy(h + FCGI_HEADER_LEN, p, len);
	*n += FCGI_HEADER_LEN + len;
}

/* What the web server's side read, until the responder closed. */
struct fc_reader {
	int fd;
	unsigned char *buf;
	size_t n;
};

static void *
fc_read_all(void *arg)
{
	struct fc_reader *rd = arg;
	ssize_t k;

	while (rd->n < FC_READ &&
	    (k = read(rd->fd, rd->buf + rd->n, FC_READ - rd->n)) > 0)
		rd->n += (size_t)k;
	close(rd->fd);
	return NULL;
}

/*
 * A real libfcgi request over a Unix socket: records written by
 * http_nowait_end (whole, in part, or not at all) and by libfcgi itself
 * must follow each other whole, so that the web server's side reads
 * STDOUT records carrying exactly the bytes written, in order, then the
 * end of the request.
 */
START_TEST(nowait_records)
{
	static const unsigned char begin[8] = { 0, FCGI_RESPONDER, 0 };
	static const char hdrs[] = "\r\n\r\nhello\n";
	struct sockaddr_un sa;
	struct fc_reader rd;
	struct http_req r;
	FCGX_Request fr;
	pthread_t th;
	unsigned char req[256], *p, *end;
	char dir[] = "/tmp/pushcgi-check-XXXXXX", *big, *want, *got;
	size_t n = 0, glen = 0, wlen, i;
	int lfd, cfd, snd = 4096, ended = 0;
	unsigned char nv[2 + 14 + 3];

	ck_assert_ptr_nonnull(mkdtemp(dir));
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/s", dir);
	ck_assert_int_ge(lfd = socket(AF_UNIX, SOCK_STREAM, 0), 0);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(lfd, 4), 0);
	ck_assert_int_ge(cfd = socket(AF_UNIX, SOCK_STREAM, 0), 0);
	ck_assert_int_eq(connect(cfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	/* BEGIN_REQUEST, one parameter, end of parameters, empty body. */
	fc_record(req, &n, FCGI_BEGIN_REQUEST, begin, sizeof(begin));
	nv[0] = 14;
	nv[1] = 3;
	memcpy(nv + 2, "REQUEST_METHOD", 14);
	memcpy(nv + 16, "GET", 3);
	fc_record(req, &n, FCGI_PARAMS, nv, sizeof(nv));
	fc_record(req, &n, FCGI_PARAMS, "", 0);
	fc_record(req, &n, FCGI_STDIN, "", 0);
	ck_assert_int_eq(write(cfd, req, n), (ssize_t)n);

	ck_assert_int_eq(FCGX_Init(), 0);
	ck_assert_int_eq(FCGX_InitRequest(&fr, lfd, 0), 0);
	ck_assert_int_eq(FCGX_Accept_r(&fr), 0);
	http_init_fcgi(&r, &fr, "check");
	ck_assert_str_eq(http_method(&r), "GET");
	/* A small send buffer, and nobody reading yet: the big message
	 * cannot go whole. */
	ck_assert_int_eq(setsockopt(fr.ipcFd, SOL_SOCKET, SO_SNDBUF, &snd,
	    sizeof(snd)), 0);
	ck_assert_int_eq(http_start(&r, 200, "text/plain"), 0);

	/* Small: sent whole. */
	ck_assert_int_eq(http_nowait_begin(&r.out), 0);
	http_puts(&r.out, "hello\n");
	ck_assert_int_eq(http_nowait_end(&r.out), HTTP_NOWAIT_SENT);
	/* Over HTTP_NOWAIT_MAX: nothing sent, the output still good. */
	ck_assert_int_eq(http_nowait_begin(&r.out), 0);
	big = malloc(HTTP_NOWAIT_MAX + 1);
	ck_assert_ptr_nonnull(big);
	memset(big, 'x', HTTP_NOWAIT_MAX + 1);
	http_put(&r.out, big, HTTP_NOWAIT_MAX + 1);
	ck_assert_int_eq(http_nowait_end(&r.out), HTTP_NOWAIT_NONE);
	ck_assert_int_eq(r.out.failed, 0);
	/* Bigger than the socket holds: sent in part, the rest kept. */
	for (i = 0; i < FC_BIG; i++)
		big[i] = (char)('a' + i % 26);
	ck_assert_int_eq(http_nowait_begin(&r.out), 0);
	http_put(&r.out, big, FC_BIG);
	ck_assert_int_eq(http_nowait_end(&r.out), HTTP_NOWAIT_PART);
	/* While a remainder waits, no other non-blocking write starts,
	 * and bytes not flushed refuse one too. */
	ck_assert_int_eq(http_nowait_begin(&r.out), -1);

	rd.fd = cfd;
	rd.n = 0;
	ck_assert_ptr_nonnull(rd.buf = malloc(FC_READ));
	ck_assert_int_eq(pthread_create(&th, NULL, fc_read_all, &rd), 0);
	/* The request's own thread: the remainder goes first. */
	http_puts(&r.out, "tail\n");
	ck_assert_int_eq(http_nowait_begin(&r.out), -1);
	ck_assert_int_eq(http_flush(&r.out), 0);
	ck_assert_int_eq(http_nowait_begin(&r.out), 0);
	http_puts(&r.out, "last\n");
	ck_assert_int_eq(http_nowait_end(&r.out), HTTP_NOWAIT_SENT);
	ck_assert_int_eq(http_drain(&r.out), 0);
	FCGX_Finish_r(&fr);
	http_release(&r);
	ck_assert_int_eq(pthread_join(th, NULL), 0);

	/* Every record whole, ours and libfcgi's; STDOUT's bytes in
	 * order; an empty STDOUT record, then END_REQUEST, last. */
	ck_assert_ptr_nonnull(got = malloc(FC_READ));
	p = rd.buf;
	end = rd.buf + rd.n;
	while (p < end) {
		size_t clen, plen;

		ck_assert_int_ge(end - p, FCGI_HEADER_LEN);
		ck_assert_int_eq(ended, 0);
		ck_assert_int_eq(p[0], FCGI_VERSION_1);
		ck_assert_int_eq((p[2] << 8) | p[3], FC_ID);
		clen = (size_t)((p[4] << 8) | p[5]);
		plen = p[6];
		ck_assert_uint_le(FCGI_HEADER_LEN + clen + plen,
		    (size_t)(end - p));
		if (p[1] == FCGI_STDOUT) {
			memcpy(got + glen, p + FCGI_HEADER_LEN, clen);
			glen += clen;
		} else {
			ck_assert_int_eq(p[1], FCGI_END_REQUEST);
			ended = 1;
		}
		p += FCGI_HEADER_LEN + clen + plen;
	}
	ck_assert_int_eq(ended, 1);
	wlen = strlen(hdrs) + FC_BIG + 10;
	ck_assert_ptr_nonnull(want = malloc(wlen));
	memcpy(want, hdrs, strlen(hdrs));
	memcpy(want + strlen(hdrs), big, FC_BIG);
	memcpy(want + strlen(hdrs) + FC_BIG, "tail\nlast\n", 10);
	ck_assert_int_eq(strncmp(got, "Status: 200 OK\r\n", 16), 0);
	ck_assert_uint_ge(glen, wlen);
	ck_assert_int_eq(memcmp(got + glen - wlen, want, wlen), 0);

	free(want);
	free(got);
	free(big);
	free(rd.buf);
	close(lfd);
	unlink(sa.sun_path);
	rmdir(dir);
}
END_TEST

static Suite *
transport_suite(void)
{
	Suite *s = suite_create("transport");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, query_basic);
	tcase_add_test(tc, same_framing);
	tcase_add_test(tc, query_refused);
	tcase_add_test(tc, stream_params);
	tcase_add_test(tc, stream_params_refused);
	tcase_add_test(tc, poll_params);
	tcase_add_test(tc, if_none_match);
	tcase_add_test(tc, poll_json);
	tcase_add_test(tc, negotiation);
	tcase_add_test(tc, frame_mixed);
	tcase_add_test(tc, frame_sse);
	tcase_add_test(tc, frame_script);
	tcase_add_test(tc, frame_raw);
	tcase_add_test(tc, frame_handle);
	tcase_add_test(tc, heartbeat_parts);
	tcase_add_test(tc, codecs);
	tcase_add_test(tc, out_mem);
	tcase_add_test(tc, nowait_records);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(transport_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
