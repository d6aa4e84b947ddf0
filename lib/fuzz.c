/*
 * fuzz: the targets behind LLVMFuzzerTestOneInput (see fuzz.h).
 *
 * Parsers (input: text; several fields are separated by '\n', a missing
 * trailing field means "absent", and each field ends at a NUL as a CGI
 * variable would):
 *   query    QS \n ACCEPT \n LAST-EVENT-ID: transport_request for a
 *            stream (the allow-list, then the fields), transport_negotiate
 *   poll     QS \n IF-NONE-MATCH \n LAST-EVENT-ID: push-poll's request,
 *            transport_request for a poll, then auth_subscriber
 *   cursor   raw bytes: transport_id and transport_if_none_match against
 *            independent reference parsers
 *   auth     AUTHORIZATION \n TOKENS \n CHANNELS: auth_bearer,
 *            auth_publisher, auth_subscriber, with tokens made by
 *            auth_sub_token that must pass (or be expired)
 *   valid    one string: valid_channel, valid_event, valid_type,
 *            valid_callback, valid_channel_list against what the log's
 *            schema and the framings rely on
 *   conf     config file text: conf_parse
 *   control  byte 0 picks the channel, the rest is the data of a message:
 *            store_control_parse against a reference
 * Framings (input: a program of messages, gaps, heartbeats; see
 * fz_program), with the output parsed back by an independent reader:
 *   mixed, sse, script, raw: transport_begin/_message/_gap/_heartbeat/
 *            _end
 *   json     push-poll's JSON answer, transport_poll_json
 */
#include "config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "conf.h"
#include "fuzz.h"
#include "http.h"
#include "mlog.h"
#include "transport.h"
#include "valid.h"

#define FZ_NOW        1700000000L /* "now" for token expiry */
#define FZ_FIELDS_MAX 4           /* '\n'-separated fields of an input */
#define FZ_OPS_MAX    64          /* steps of a framing program */
#define FZ_MSGS_MAX   FZ_OPS_MAX
#define FZ_JSON_DEPTH 16          /* nesting the JSON reader accepts */
#define FZ_JSON_NODES (FZ_MSGS_MAX * 8 + 8) /* values in a poll answer */
#define FZ_JSON_CALL  16          /* values in one script call's JSON */
#define FZ_AUTH_OWN   4           /* channels the own-token check signs */
#define FZ_INPUT_MAX  (1 << 16)   /* bytes of input looked at */

/* A property failed: say which, and abort (libFuzzer saves the input). */
#define FZ_CHECK(cond, ...) do { \
	if (!(cond)) \
		fz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__); \
} while (0)

static void fz_fail(const char *, int, const char *, const char *, ...)
    __attribute__((format(printf, 4, 5), noreturn));

static void
fz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fuzz: %s:%d: property failed: %s: ", file, line,
	    cond);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

/* ---- small helpers ---------------------------------------------------- */

/* Split data into at most nf fields at '\n' (the last takes the rest),
 * copied NUL-terminated into buf (size + 1 bytes); absent fields NULL. */
static void
fz_fields(const uint8_t *data, size_t size, char *buf, char **f, int nf)
{
	char *p = buf, *nl;
	int i;

	memcpy(buf, data, size);
	buf[size] = '\0';
	for (i = 0; i < nf; i++)
		f[i] = NULL;
	for (i = 0; i < nf && p != NULL; i++) {
		f[i] = p;
		if (i == nf - 1)
			break;
		nl = memchr(p, '\n', (size_t)(buf + size - p));
		if (nl == NULL)
			break;
		*nl = '\0';
		p = nl + 1;
	}
}

/* 1 if s holds no line break (a reason must stay one line). */
static int
fz_one_line(const char *s)
{
	return strpbrk(s, "\r\n") == NULL;
}

/* ASCII lower case. */
static int
fz_lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* The first place needle occurs in hay[0..n), without case, or NULL.
 * Plain loops: the sanitizers' hooks on strncasecmp and memcmp would
 * cost more than the code under test. */
static const char *
fz_find_ci(const char *hay, size_t n, const char *needle)
{
	size_t k = strlen(needle), i, m;
	int first = fz_lower((unsigned char)needle[0]);

	for (i = 0; k <= n && i <= n - k; i++) {
		if (fz_lower((unsigned char)hay[i]) != first)
			continue;
		for (m = 1; m < k && fz_lower((unsigned char)hay[i + m]) ==
		    fz_lower((unsigned char)needle[m]); m++)
			;
		if (m == k)
			return hay + i;
	}
	return NULL;
}

/* How often needle occurs in hay[0..n), without case. */
static int
fz_count_ci(const char *hay, size_t n, const char *needle)
{
	const char *p = hay, *q;
	int c = 0;

	while ((q = fz_find_ci(p, n - (size_t)(p - hay), needle)) != NULL) {
		c++;
		p = q + 1;
	}
	return c;
}

static const void *
fz_memmem(const void *hay, size_t n, const void *needle, size_t k)
{
	const char *h = hay, *nd = needle, *q;
	size_t m;

	if (k == 0)
		return hay;
	while (n >= k && (q = memchr(h, nd[0], n - k + 1)) != NULL) {
		n -= (size_t)(q - h);
		h = q;
		for (m = 1; m < k && h[m] == nd[m]; m++)
			;
		if (m == k)
			return h;
		h++;
		n--;
	}
	return NULL;
}

/* Reference: a cursor is 1-19 digits, at most INT64_MAX. */
static int
fz_ref_id(const char *s, size_t n, int64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (n < 1 || n > 19)
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0'); /* < 10^19 < 2^64 */
	}
	if (v > (uint64_t)INT64_MAX)
		return -1;
	*out = (int64_t)v;
	return 0;
}

/* Reference: ^[ \t]*(W/)?("DIGITS"|DIGITS)[ \t]*$, scanned forward. */
static int
fz_ref_inm(const char *s, int64_t *out)
{
	const char *d, *e;
	int quoted = 0;

	s += strspn(s, " \t");
	if (s[0] == 'W' && s[1] == '/')
		s += 2;
	if (*s == '"') {
		quoted = 1;
		s++;
	}
	d = s;
	e = s + strspn(s, "0123456789");
	s = e;
	if (quoted && *s++ != '"')
		return -1;
	s += strspn(s, " \t");
	if (*s != '\0')
		return -1;
	return fz_ref_id(d, (size_t)(e - d), out);
}

static int
fz_namechar(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

/* What the log's schema lets a channel be (not '.control'). */
static int
fz_ref_channel(const char *s)
{
	size_t n = strlen(s), i;

	if (n < 1 || n > VALID_CHANNEL_MAX || s[0] == '.')
		return 0;
	for (i = 0; i < n; i++)
		if (!fz_namechar((unsigned char)s[i]))
			return 0;
	return 1;
}

/* Reference base64 (RFC 4648, padded) of p[0..n), malloc'd. */
static char *
fz_b64(const void *p, size_t n, size_t *outlen)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *s = p;
	char *o = malloc((n + 2) / 3 * 4 + 1);
	size_t i, k = 0;

	if (o == NULL)
		abort();
	for (i = 0; i < n; i += 3) {
		unsigned v = (unsigned)s[i] << 16;

		if (i + 1 < n)
			v |= (unsigned)s[i + 1] << 8;
		if (i + 2 < n)
			v |= s[i + 2];
		o[k++] = tab[v >> 18];
		o[k++] = tab[(v >> 12) & 63];
		o[k++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
		o[k++] = i + 2 < n ? tab[v & 63] : '=';
	}
	o[k] = '\0';
	*outlen = k;
	return o;
}

/* Reference UTF-8 check (RFC 3629): decode and range-check each code
 * point instead of matching lead bytes. */
static int
fz_utf8(const void *p, size_t n)
{
	const unsigned char *s = p;
	size_t i = 0, k, j;
	uint32_t cp, min;

	while (i < n) {
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if ((s[i] & 0xe0) == 0xc0) {
			k = 1;
			cp = s[i] & 0x1f;
			min = 0x80;
		} else if ((s[i] & 0xf0) == 0xe0) {
			k = 2;
			cp = s[i] & 0x0f;
			min = 0x800;
		} else if ((s[i] & 0xf8) == 0xf0) {
			k = 3;
			cp = s[i] & 0x07;
			min = 0x10000;
		} else
			return 0;
		if (n - i <= k)
			return 0;
		for (j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + j] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += k + 1;
	}
	return 1;
}

/* ---- a strict JSON reader (RFC 8259) into a flat tree ----------------- */

enum { JN_OBJ, JN_ARR, JN_STR, JN_NUM, JN_TRUE, JN_FALSE, JN_NULL };

struct jnode {
	int kind;
	int parent;
	int next;          /* next sibling, -1 */
	int first;         /* first child, -1 */
	const char *key;   /* member name (decoded) in an object, else NULL */
	size_t keylen;
	const char *s;     /* JN_STR: decoded; JN_NUM: the text */
	size_t len;
};

struct jdoc {
	const char *p, *end;
	struct jnode *n;
	int nn, cap;
	char *arena;       /* decoded strings */
	size_t used;
};

static int jv_value(struct jdoc *, int, int);

static void
jv_ws(struct jdoc *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' ||
	    *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static int
jv_hex4(struct jdoc *j, uint32_t *v)
{
	int i;

	*v = 0;
	if (j->end - j->p < 4)
		return -1;
	for (i = 0; i < 4; i++) {
		char c = *j->p++;

		*v <<= 4;
		if (c >= '0' && c <= '9')
			*v |= (uint32_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			*v |= (uint32_t)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			*v |= (uint32_t)(c - 'A' + 10);
		else
			return -1;
	}
	return 0;
}

/* A string at j->p, decoded into the arena: *s, *len.  0 or -1. */
static int
jv_string(struct jdoc *j, const char **s, size_t *len)
{
	char *o = j->arena + j->used, *start = o;
	const char *run;
	uint32_t cp, lo;

	if (j->p >= j->end || *j->p != '"')
		return -1;
	j->p++;
	for (;;) {
		if (j->p >= j->end)
			return -1;
		if (*j->p == '"')
			break;
		if ((unsigned char)*j->p < 0x20)
			return -1;
		if (*j->p != '\\') {
			run = j->p;
			while (j->p < j->end && *j->p != '"' && *j->p != '\\' &&
			    (unsigned char)*j->p >= 0x20)
				j->p++;
			memcpy(o, run, (size_t)(j->p - run));
			o += j->p - run;
			continue;
		}
		j->p++;
		if (j->p >= j->end)
			return -1;
		switch (*j->p++) {
		case '"': *o++ = '"'; break;
		case '\\': *o++ = '\\'; break;
		case '/': *o++ = '/'; break;
		case 'b': *o++ = '\b'; break;
		case 'f': *o++ = '\f'; break;
		case 'n': *o++ = '\n'; break;
		case 'r': *o++ = '\r'; break;
		case 't': *o++ = '\t'; break;
		case 'u':
			if (jv_hex4(j, &cp) != 0)
				return -1;
			if (cp >= 0xdc00 && cp <= 0xdfff)
				return -1;      /* a lone low surrogate */
			if (cp >= 0xd800 && cp <= 0xdbff) {
				if (j->end - j->p < 2 || j->p[0] != '\\' ||
				    j->p[1] != 'u')
					return -1;
				j->p += 2;
				if (jv_hex4(j, &lo) != 0 || lo < 0xdc00 ||
				    lo > 0xdfff)
					return -1;
				cp = 0x10000 + ((cp - 0xd800) << 10) +
				    (lo - 0xdc00);
			}
			if (cp < 0x80)
				*o++ = (char)cp;
			else if (cp < 0x800) {
				*o++ = (char)(0xc0 | cp >> 6);
				*o++ = (char)(0x80 | (cp & 0x3f));
			} else if (cp < 0x10000) {
				*o++ = (char)(0xe0 | cp >> 12);
				*o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
				*o++ = (char)(0x80 | (cp & 0x3f));
			} else {
				*o++ = (char)(0xf0 | cp >> 18);
				*o++ = (char)(0x80 | ((cp >> 12) & 0x3f));
				*o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
				*o++ = (char)(0x80 | (cp & 0x3f));
			}
			break;
		default:
			return -1;
		}
	}
	j->p++;
	/* Raw bytes in a JSON text must be UTF-8. */
	if (!fz_utf8(start, (size_t)(o - start)))
		return -1;
	*s = start;
	*len = (size_t)(o - start);
	j->used += *len;
	return 0;
}

static int
jv_number(struct jdoc *j)
{
	const char *p = j->p;

	if (p < j->end && *p == '-')
		p++;
	if (p >= j->end)
		return -1;
	if (*p == '0')
		p++;
	else if (*p >= '1' && *p <= '9')
		while (p < j->end && *p >= '0' && *p <= '9')
			p++;
	else
		return -1;
	if (p < j->end && *p == '.') {
		if (++p >= j->end || *p < '0' || *p > '9')
			return -1;
		while (p < j->end && *p >= '0' && *p <= '9')
			p++;
	}
	if (p < j->end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < j->end && (*p == '+' || *p == '-'))
			p++;
		if (p >= j->end || *p < '0' || *p > '9')
			return -1;
		while (p < j->end && *p >= '0' && *p <= '9')
			p++;
	}
	j->p = p;
	return 0;
}

static int
jv_node(struct jdoc *j, int kind, int parent)
{
	struct jnode *n;

	if (j->nn == j->cap)
		return -1;
	n = &j->n[j->nn];
	memset(n, 0, sizeof(*n));
	n->kind = kind;
	n->parent = parent;
	n->next = n->first = -1;
	return j->nn++;
}

/* Link child after the last child of parent (tracked in *last). */
static void
jv_link(struct jdoc *j, int parent, int child, int *last)
{
	if (*last < 0)
		j->n[parent].first = child;
	else
		j->n[*last].next = child;
	*last = child;
}

/* One value at j->p into a new node under parent; its index or -1. */
static int
jv_value(struct jdoc *j, int parent, int depth)
{
	const char *lit[] = { "true", "false", "null" };
	int kinds[] = { JN_TRUE, JN_FALSE, JN_NULL };
	const char *key, *start;
	size_t keylen;
	int me, child, last = -1, i;

	if (depth > FZ_JSON_DEPTH)
		return -1;
	jv_ws(j);
	if (j->p >= j->end)
		return -1;
	start = j->p;
	switch (*j->p) {
	case '{':
		if ((me = jv_node(j, JN_OBJ, parent)) < 0)
			return -1;
		j->p++;
		jv_ws(j);
		if (j->p < j->end && *j->p == '}') {
			j->p++;
			return me;
		}
		for (;;) {
			jv_ws(j);
			if (jv_string(j, &key, &keylen) != 0)
				return -1;
			jv_ws(j);
			if (j->p >= j->end || *j->p++ != ':')
				return -1;
			if ((child = jv_value(j, me, depth + 1)) < 0)
				return -1;
			j->n[child].key = key;
			j->n[child].keylen = keylen;
			jv_link(j, me, child, &last);
			jv_ws(j);
			if (j->p >= j->end)
				return -1;
			if (*j->p == '}') {
				j->p++;
				return me;
			}
			if (*j->p++ != ',')
				return -1;
		}
	case '[':
		if ((me = jv_node(j, JN_ARR, parent)) < 0)
			return -1;
		j->p++;
		jv_ws(j);
		if (j->p < j->end && *j->p == ']') {
			j->p++;
			return me;
		}
		for (;;) {
			if ((child = jv_value(j, me, depth + 1)) < 0)
				return -1;
			jv_link(j, me, child, &last);
			jv_ws(j);
			if (j->p >= j->end)
				return -1;
			if (*j->p == ']') {
				j->p++;
				return me;
			}
			if (*j->p++ != ',')
				return -1;
		}
	case '"':
		if ((me = jv_node(j, JN_STR, parent)) < 0)
			return -1;
		if (jv_string(j, &j->n[me].s, &j->n[me].len) != 0)
			return -1;
		return me;
	default:
		for (i = 0; i < 3; i++) {
			size_t k = strlen(lit[i]);

			if ((size_t)(j->end - j->p) >= k &&
			    memcmp(j->p, lit[i], k) == 0) {
				j->p += k;
				return jv_node(j, kinds[i], parent);
			}
		}
		if (jv_number(j) != 0 || (me = jv_node(j, JN_NUM, parent)) < 0)
			return -1;
		j->n[me].s = start;
		j->n[me].len = (size_t)(j->p - start);
		return me;
	}
}

/* Read one JSON value of at most maxnodes values from text[0..n); *used:
 * bytes it took (with the white space before it).  The root's index (0),
 * or -1 if not JSON (or larger). */
static int
jv_parse(struct jdoc *j, const char *text, size_t n, size_t *used,
    int maxnodes)
{
	int root;

	memset(j, 0, sizeof(*j));
	j->p = text;
	j->end = text + n;
	j->cap = (int)(n < (size_t)maxnodes ? n : (size_t)maxnodes) + 1;
	j->n = malloc(sizeof(*j->n) * (size_t)j->cap);
	j->arena = malloc(n + 1);
	if (j->n == NULL || j->arena == NULL)
		abort();
	root = jv_value(j, -1, 0);
	if (used != NULL)
		*used = (size_t)(j->p - text);
	return root;
}

static void
jv_free(struct jdoc *j)
{
	free(j->n);
	free(j->arena);
}

/* The member called key of object node obj, or -1. */
static int
jv_get(const struct jdoc *j, int obj, const char *key)
{
	int c;

	for (c = j->n[obj].first; c >= 0; c = j->n[c].next)
		if (j->n[c].keylen == strlen(key) &&
		    memcmp(j->n[c].key, key, j->n[c].keylen) == 0)
			return c;
	return -1;
}

static int
jv_count(const struct jdoc *j, int node)
{
	int c, k = 0;

	for (c = j->n[node].first; c >= 0; c = j->n[c].next)
		k++;
	return k;
}

/* 1 if node is the string s[0..n). */
static int
jv_is_str(const struct jdoc *j, int node, const void *s, size_t n)
{
	return node >= 0 && j->n[node].kind == JN_STR && j->n[node].len == n &&
	    memcmp(j->n[node].s, s, n) == 0;
}

/* 1 if node is the integer v written plainly. */
static int
jv_is_int(const struct jdoc *j, int node, int64_t v)
{
	char num[32];
	int k = snprintf(num, sizeof(num), "%" PRId64, v);

	return node >= 0 && j->n[node].kind == JN_NUM &&
	    j->n[node].len == (size_t)k && memcmp(j->n[node].s, num, k) == 0;
}

/* No member name twice in any object of the tree. */
static int
jv_unique_keys(const struct jdoc *j)
{
	int i, a, b;

	for (i = 0; i < j->nn; i++) {
		if (j->n[i].kind != JN_OBJ)
			continue;
		for (a = j->n[i].first; a >= 0; a = j->n[a].next)
			for (b = j->n[a].next; b >= 0; b = j->n[b].next)
				if (j->n[a].keylen == j->n[b].keylen &&
				    memcmp(j->n[a].key, j->n[b].key,
				    j->n[a].keylen) == 0)
					return 0;
	}
	return 1;
}

/* Node obj is the JSON of message m, as transport_json_message
 * promises: every field, data as text or base64. */
static void
jv_check_msg(const struct jdoc *j, int obj, const struct store_msg *m)
{
	int text = fz_utf8(m->data, m->len), d, e, nk;
	char *b64;
	size_t blen;

	FZ_CHECK(obj >= 0 && j->n[obj].kind == JN_OBJ, "message %" PRId64
	    " is not an object", m->id);
	nk = 6 + !text;
	FZ_CHECK(jv_count(j, obj) == nk, "message %" PRId64 ": %d members",
	    m->id, jv_count(j, obj));
	FZ_CHECK(jv_is_int(j, jv_get(j, obj, "id"), m->id), "id %" PRId64,
	    m->id);
	FZ_CHECK(jv_is_int(j, jv_get(j, obj, "time"), m->time_ms), "time of "
	    "%" PRId64, m->id);
	FZ_CHECK(jv_is_str(j, jv_get(j, obj, "channel"), m->channel,
	    strlen(m->channel)), "channel of %" PRId64, m->id);
	FZ_CHECK(jv_is_str(j, jv_get(j, obj, "type"), m->type,
	    strlen(m->type)), "type of %" PRId64, m->id);
	e = jv_get(j, obj, "event");
	if (m->event == NULL)
		FZ_CHECK(e >= 0 && j->n[e].kind == JN_NULL, "event of %" PRId64
		    " not null", m->id);
	else
		FZ_CHECK(jv_is_str(j, e, m->event, strlen(m->event)),
		    "event of %" PRId64, m->id);
	d = jv_get(j, obj, "data");
	if (text) {
		FZ_CHECK(jv_is_str(j, d, m->data, m->len), "data of %" PRId64
		    " does not decode to the message", m->id);
		return;
	}
	b64 = fz_b64(m->data, m->len, &blen);
	FZ_CHECK(jv_is_str(j, d, b64, blen), "base64 data of %" PRId64,
	    m->id);
	free(b64);
	FZ_CHECK(jv_is_str(j, jv_get(j, obj, "encoding"), "base64", 6),
	    "encoding of %" PRId64, m->id);
}

/* ---- parser targets --------------------------------------------------- */

static void
fz_conf_base(struct conf *c)
{
	conf_defaults(c);
	c->heartbeat = 20;
	c->ntokens = 2;
	snprintf(c->tokens[0], sizeof(c->tokens[0]), "tok-1");
	snprintf(c->tokens[1], sizeof(c->tokens[1]), "s3cret/+==");
	snprintf(c->subscriber_secret, sizeof(c->subscriber_secret),
	    "fuzz-secret");
	c->nprivate = 2;
	snprintf(c->private_prefix[0], sizeof(c->private_prefix[0]), "priv");
	snprintf(c->private_prefix[1], sizeof(c->private_prefix[1]), "p.");
}

/* Channels in chan[0..n) are valid and distinct. */
static void
fz_check_chans(char chan[][VALID_CHANNEL_MAX + 1], int n)
{
	int i, k;

	FZ_CHECK(n >= 1 && n <= VALID_CHANNELS_MAX, "%d channels", n);
	for (i = 0; i < n; i++) {
		FZ_CHECK(fz_ref_channel(chan[i]), "channel \"%s\"", chan[i]);
		for (k = 0; k < i; k++)
			FZ_CHECK(strcmp(chan[i], chan[k]) != 0,
			    "channel \"%s\" twice", chan[i]);
	}
}

/* The parameters a request kept: allowed for who, distinct, capped. */
static void
fz_check_params(const struct http_params *p, enum transport_for who)
{
	int i, k;

	FZ_CHECK(p->n >= 0 && p->n <= HTTP_PARAMS_MAX, "%d params", p->n);
	for (i = 0; i < p->n; i++) {
		FZ_CHECK(transport_param_allowed(who, p->p[i].name),
		    "parameter %d not from the allow-list", i);
		FZ_CHECK(strlen(p->p[i].value) <= HTTP_VALUE_MAX, "value of "
		    "%s too long", p->p[i].name);
		for (k = 0; k < i; k++)
			FZ_CHECK(p->p[i].name != p->p[k].name, "%s twice",
			    p->p[i].name);
	}
}

static int
fz_query(const uint8_t *data, size_t size)
{
	static struct transport_req q;
	char *buf = malloc(size + 1), *f[3], why[HTTP_REASON_MAX];
	struct conf c;
	enum transport_kind k;
	int rc;

	fz_conf_base(&c);
	fz_fields(data, size, buf, f, 3);
	k = transport_negotiate(f[1]);
	FZ_CHECK(k == TRANSPORT_SSE || k == TRANSPORT_MIXED, "kind %d", k);
	why[0] = '\0';
	rc = transport_request(&q, TRANSPORT_FOR_STREAM, f[0], f[1], NULL,
	    f[2], &c, why, sizeof(why));
	if (rc != 0) {
		FZ_CHECK(rc >= 1 && rc <= TRANSPORT_REFUSAL_LAST &&
		    why[0] != '\0' && fz_one_line(why),
		    "rc %d reason \"%s\"", rc, why);
		goto out;
	}
	fz_check_params(&q.params, TRANSPORT_FOR_STREAM);
	fz_check_chans(q.chan, q.nchan);
	FZ_CHECK(q.kind >= TRANSPORT_MIXED && q.kind <= TRANSPORT_RAW,
	    "kind %d", q.kind);
	FZ_CHECK(q.since >= -1, "since %" PRId64, q.since);
	FZ_CHECK(q.last >= -1 && q.last <= TRANSPORT_LAST_MAX, "last %d",
	    q.last);
	FZ_CHECK(q.since < 0 || q.last < 0, "since and last");
	FZ_CHECK(q.kind != TRANSPORT_MIXED || q.since >= 0 || q.last >= 0,
	    "mixed without a start");
	FZ_CHECK(q.heartbeat >= TRANSPORT_HEARTBEAT_MIN && q.heartbeat <=
	    c.heartbeat, "heartbeat %d", q.heartbeat);
	FZ_CHECK(valid_callback(q.callback), "callback \"%s\"", q.callback);
	if (f[2] != NULL) {
		int64_t v;

		FZ_CHECK(fz_ref_id(f[2], strlen(f[2]), &v) == 0 &&
		    v == q.since, "Last-Event-ID \"%s\" gave %" PRId64, f[2],
		    q.since);
	}
out:
	free(buf);
	return 0;
}

static int
fz_poll(const uint8_t *data, size_t size)
{
	static struct transport_req a;
	char *buf = malloc(size + 1), *f[3], why[HTTP_REASON_MAX];
	const char *since;
	struct conf c;
	int64_t v;
	int rc, i, priv = 0;

	fz_conf_base(&c);
	fz_fields(data, size, buf, f, 3);
	why[0] = '\0';
	rc = transport_request(&a, TRANSPORT_FOR_POLL, f[0], NULL, f[1],
	    f[2], &c, why, sizeof(why));
	if (rc != 0) {
		FZ_CHECK(rc >= 1 && rc <= TRANSPORT_REFUSAL_LAST &&
		    why[0] != '\0' && fz_one_line(why), "rc %d reason \"%s\"",
		    rc, why);
		goto out;
	}
	fz_check_params(&a.params, TRANSPORT_FOR_POLL);
	fz_check_chans(a.chan, a.nchan);
	for (i = 0; i < a.nchan; i++)
		FZ_CHECK(a.chans[i] == a.chan[i], "chans[%d]", i);
	FZ_CHECK(a.timeout >= 0 && a.timeout <= c.poll_timeout_max,
	    "timeout %d", a.timeout);
	FZ_CHECK(a.format == TRANSPORT_POLL_JSON || a.format ==
	    TRANSPORT_POLL_RAW || a.format == TRANSPORT_POLL_PAGE,
	    "format %d", a.format);
	FZ_CHECK(a.format != TRANSPORT_POLL_PAGE || (a.refresh >=
	    TRANSPORT_REFRESH_MIN && a.refresh <= TRANSPORT_REFRESH_MAX &&
	    a.since == -1 && a.last == -1), "page: refresh %d since %lld "
	    "last %d", a.refresh, (long long)a.since, a.last);
	FZ_CHECK(a.callback[0] == '\0' || (valid_callback(a.callback) &&
	    a.format == TRANSPORT_POLL_JSON), "callback \"%s\"", a.callback);
	FZ_CHECK(a.last >= -1 && a.last <= TRANSPORT_LAST_MAX, "last %d",
	    a.last);
	FZ_CHECK(a.since < 0 || a.last < 0, "since and last");
	/* The cursor, against the reference parsers. */
	since = http_param(&a.params, "since");
	if (since != NULL)
		FZ_CHECK(fz_ref_id(since, strlen(since), &v) == 0 &&
		    v == a.since, "since");
	else if (f[1] != NULL && f[1][0] != '\0')
		FZ_CHECK(fz_ref_inm(f[1], &v) == 0 && v == a.since,
		    "If-None-Match \"%s\" gave %" PRId64, f[1], a.since);
	else if (f[2] != NULL && f[2][0] != '\0')
		FZ_CHECK(fz_ref_id(f[2], strlen(f[2]), &v) == 0 &&
		    v == a.since, "Last-Event-ID");
	else
		FZ_CHECK(a.since == -1, "a cursor from nowhere");

	rc = auth_subscriber(&c, a.chans, a.nchan, http_param(&a.params,
	    "token"), FZ_NOW, why, sizeof(why));
	FZ_CHECK(rc == AUTH_OK || rc == AUTH_DENIED || rc == AUTH_EXPIRED ||
	    rc == AUTH_BAD, "auth %d", rc);
	FZ_CHECK(fz_one_line(why), "reason \"%s\"", why);
	for (i = 0; i < a.nchan; i++)
		priv |= auth_private(&c, a.chans[i]);
	if (priv && rc == AUTH_OK) {
		const char *t = http_param(&a.params, "token");

		FZ_CHECK(t != NULL && *t != '\0', "private without a token");
	}
out:
	free(buf);
	return 0;
}

static int
fz_cursor(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1), num[32];
	int64_t v = -7, w = -7;
	int rc, ref;

	memcpy(s, data, size);
	s[size] = '\0';
	rc = transport_id((const char *)data, size, &v);
	ref = fz_ref_id((const char *)data, size, &w);
	FZ_CHECK(rc == ref && (rc != 0 || v == w), "transport_id %d/%d %"
	    PRId64 "/%" PRId64, rc, ref, v, w);
	if (rc == 0) {
		/* What we print for it parses back to the same id. */
		snprintf(num, sizeof(num), "%" PRId64, v);
		FZ_CHECK(transport_id(num, strlen(num), &w) == 0 && w == v,
		    "round trip of %" PRId64, v);
	}
	v = w = -7;
	rc = transport_if_none_match(s, &v);
	ref = fz_ref_inm(s, &w);
	FZ_CHECK(rc == ref && (rc != 0 || v == w), "If-None-Match \"%s\": "
	    "%d/%d", s, rc, ref);
	if (rc == 0) {
		/* The ETag we send for it is read back as it. */
		snprintf(num, sizeof(num), "\"%" PRId64 "\"", v);
		FZ_CHECK(transport_if_none_match(num, &w) == 0 && w == v,
		    "ETag round trip");
	}
	free(s);
	return 0;
}

/* Split a token= list at commas into t[0..]: at most max. */
static int
fz_split(char *s, char **t, int max)
{
	int n = 0;
	char *c;

	while (n < max) {
		t[n++] = s;
		if ((c = strchr(s, ',')) == NULL)
			break;
		*c = '\0';
		s = c + 1;
	}
	return n;
}

static int
fz_auth(const uint8_t *data, size_t size)
{
	static char chan[VALID_CHANNELS_MAX][VALID_CHANNEL_MAX + 1];
	static char list[AUTH_TOKENS_MAX + 64];
	const char *chans[VALID_CHANNELS_MAX], *b;
	char *buf = malloc(size + 1), *f[3], why[HTTP_REASON_MAX], *copy;
	char *tok[VALID_CHANNELS_MAX + 1], mine[AUTH_SUB_TOKEN_MAX + 1];
	struct conf c;
	size_t used;
	long long exp;
	int n, i, k, nt, rc, good, priv = 0;

	fz_conf_base(&c);
	fz_fields(data, size, buf, f, 3);

	/* Authorization: Bearer TOKEN. */
	b = auth_bearer(f[0]);
	if (b != NULL) {
		FZ_CHECK(strncasecmp(f[0], "bearer ", 7) == 0 && b > f[0] + 6 &&
		    b <= f[0] + strlen(f[0]) && *b != ' ' && *b != '\0' &&
		    strspn(f[0] + 7, " ") == (size_t)(b - f[0] - 7),
		    "bearer of \"%s\"", f[0]);
	} else if (f[0] != NULL && strncasecmp(f[0], "bearer ", 7) == 0)
		FZ_CHECK(f[0][7 + strspn(f[0] + 7, " ")] == '\0', "no bearer "
		    "in \"%s\"", f[0]);
	/* The constant-time comparison is a comparison. */
	if (f[0] != NULL && f[1] != NULL)
		FZ_CHECK(auth_equal(f[0], strlen(f[0]), f[1], strlen(f[1])) ==
		    (strcmp(f[0], f[1]) == 0), "auth_equal");
	if (f[0] != NULL)
		FZ_CHECK(auth_equal(f[0], strlen(f[0]), "", 0) ==
		    (f[0][0] == '\0'), "auth_equal with nothing");
	rc = auth_publisher(&c, b, NULL);
	good = b != NULL && (strcmp(b, c.tokens[0]) == 0 ||
	    strcmp(b, c.tokens[1]) == 0);
	FZ_CHECK(rc == (good ? AUTH_OK : AUTH_DENIED), "publisher %d", rc);
	c.trust_remote_user = 1;
	FZ_CHECK(auth_publisher(&c, b, f[0]) == (good || (f[0] != NULL &&
	    *f[0] != '\0') ? AUTH_OK : AUTH_DENIED), "trusted user");
	c.trust_remote_user = 0;

	/* The subscriber side. */
	n = f[2] != NULL ? valid_channel_list(f[2], chan, VALID_CHANNELS_MAX) :
	    -1;
	if (n < 1) {
		snprintf(chan[0], sizeof(chan[0]), "priv");
		n = 1;
	}
	for (i = 0; i < n; i++) {
		chans[i] = chan[i];
		priv |= auth_private(&c, chan[i]);
	}
	why[0] = '\0';
	rc = auth_subscriber(&c, chans, n, f[1], FZ_NOW, why, sizeof(why));
	FZ_CHECK(fz_one_line(why), "reason \"%s\"", why);
	FZ_CHECK(rc == AUTH_OK || rc == AUTH_DENIED || rc == AUTH_EXPIRED ||
	    rc == AUTH_BAD, "subscriber %d", rc);
	if (rc == AUTH_OK && priv) {
		/* Each private channel has a token that auth_sub_token
		 * makes for it, unexpired. */
		FZ_CHECK(f[1] != NULL && *f[1] != '\0', "no tokens");
		copy = strdup(f[1]);
		nt = fz_split(copy, tok, VALID_CHANNELS_MAX + 1);
		for (i = 0; i < n; i++) {
			if (!auth_private(&c, chan[i]))
				continue;
			for (good = 0, k = 0; k < nt; k++) {
				exp = strtoll(tok[k], NULL, 10);
				if (exp >= FZ_NOW && auth_sub_token(&c, chan[i],
				    (time_t)exp, mine, sizeof(mine)) == 0 &&
				    strcmp(mine, tok[k]) == 0)
					good = 1;
			}
			FZ_CHECK(good, "channel %s let in without its token",
			    chan[i]);
		}
		free(copy);
	}

	/* Tokens made for (the first few of) these channels let them in
	 * until they expire. */
	exp = FZ_NOW + (size > 0 ? data[0] : 0);
	if (n > FZ_AUTH_OWN) {
		n = FZ_AUTH_OWN;
		for (priv = 0, i = 0; i < n; i++)
			priv |= auth_private(&c, chan[i]);
	}
	for (used = 0, i = 0; i < n; i++) {
		FZ_CHECK(auth_sub_token(&c, chan[i], (time_t)exp, mine,
		    sizeof(mine)) == 0, "no token for %s", chan[i]);
		used += (size_t)snprintf(list + used, sizeof(list) - used,
		    "%s%s", i > 0 ? "," : "", mine);
	}
	FZ_CHECK(auth_subscriber(&c, chans, n, list, FZ_NOW, why,
	    sizeof(why)) == AUTH_OK, "own tokens refused: %s", why);
	FZ_CHECK(auth_subscriber(&c, chans, n, list, (time_t)exp, why,
	    sizeof(why)) == AUTH_OK, "own tokens refused at expiry: %s", why);
	rc = auth_subscriber(&c, chans, n, list, (time_t)exp + 1, why,
	    sizeof(why));
	FZ_CHECK(rc == (priv ? AUTH_EXPIRED : AUTH_OK), "after expiry %d",
	    rc);
	free(buf);
	return 0;
}

static int
fz_valid(const uint8_t *data, size_t size)
{
	static char out[VALID_CHANNELS_MAX][VALID_CHANNEL_MAX + 1];
	char *s = malloc(size + 1), *copy, *seg, *nx;
	size_t n, i;
	int k, j, found, dots;

	memcpy(s, data, size);
	s[size] = '\0';
	n = strlen(s);

	/* A channel: what the schema's CHECK takes (minus '.control'). */
	FZ_CHECK(valid_channel(s) == fz_ref_channel(s), "channel \"%s\"", s);

	/* An event name goes into "event: E" lines and the schema. */
	if (valid_event(s)) {
		FZ_CHECK(n >= 1 && n <= VALID_EVENT_MAX, "event length %zu", n);
		for (i = 0; i < n; i++)
			FZ_CHECK(fz_namechar((unsigned char)s[i]) ||
			    s[i] == ':', "event byte 0x%02x",
			    (unsigned char)s[i]);
	}

	/* A media type goes into a Content-Type header line and the
	 * schema, which takes 1-255 bytes of printable ASCII. */
	if (valid_type(s)) {
		FZ_CHECK(n >= 3 && n <= VALID_TYPE_MAX, "type length %zu", n);
		FZ_CHECK(strchr(s, '/') != NULL && s[0] != '/', "type \"%s\"",
		    s);
		for (i = 0; i < n; i++)
			FZ_CHECK(s[i] >= 0x20 && s[i] <= 0x7e,
			    "type byte 0x%02x at %zu", (unsigned char)s[i], i);
	}

	/* A callback name is written into a script unquoted. */
	if (valid_callback(s)) {
		FZ_CHECK(n >= 1 && n <= VALID_CALLBACK_MAX, "callback length");
		for (i = 0, dots = 1; i < n; i++) {
			int c = (unsigned char)s[i];

			if (c == '.') {
				FZ_CHECK(!dots, "empty callback part");
				dots = 1;
				continue;
			}
			FZ_CHECK((c >= 'a' && c <= 'z') ||
			    (c >= 'A' && c <= 'Z') || c == '_' || c == '$' ||
			    (!dots && c >= '0' && c <= '9'),
			    "callback byte 0x%02x", c);
			dots = 0;
		}
		FZ_CHECK(!dots, "callback ends with '.'");
	}

	/* A channel list: valid, distinct names, each one of the list's. */
	k = valid_channel_list(s, out, VALID_CHANNELS_MAX);
	if (k >= 1) {
		fz_check_chans(out, k);
		for (j = 0; j < k; j++) {
			copy = strdup(s);
			for (found = 0, seg = copy; seg != NULL; seg = nx) {
				if ((nx = strchr(seg, ',')) != NULL)
					*nx++ = '\0';
				if (strcmp(seg, out[j]) == 0)
					found = 1;
			}
			free(copy);
			FZ_CHECK(found, "channel %s not in the list", out[j]);
		}
	} else
		FZ_CHECK(k == -1, "list gave %d", k);
	free(s);
	return 0;
}

static int
fz_conf(const uint8_t *data, size_t size)
{
	static struct conf c;
	char err[512];
	int i;

	conf_defaults(&c);
	err[0] = '\0';
	if (conf_parse(&c, (const char *)data, size, "fuzz.conf", err,
	    sizeof(err)) != 0) {
		FZ_CHECK(strncmp(err, "fuzz.conf:", 10) == 0 &&
		    strchr(err, '\n') == NULL, "error \"%s\"", err);
		return 0;
	}
	FZ_CHECK(c.db[0] != '\0' && strlen(c.db) < sizeof(c.db), "db");
	FZ_CHECK(c.heartbeat >= 1 && c.heartbeat <= 3600, "heartbeat");
	FZ_CHECK(c.poll_timeout >= 0 && c.poll_timeout_max >= 0, "poll");
	FZ_CHECK(c.check_ms >= 10 && c.check_ms <= 1000, "check_ms");
	FZ_CHECK(c.max_data >= 1 && c.threads >= 1 && c.threads <= 64,
	    "max_data, threads");
	FZ_CHECK(c.trust_remote_user == 0 || c.trust_remote_user == 1,
	    "trust_remote_user");
	FZ_CHECK(c.ntokens >= 0 && c.ntokens <= CONF_TOKENS_MAX, "ntokens");
	for (i = 0; i < c.ntokens; i++) {
		size_t k, n = strlen(c.tokens[i]);

		FZ_CHECK(n >= 1 && n <= CONF_TOKEN_MAX, "token length");
		for (k = 0; k < n; k++)
			FZ_CHECK(c.tokens[i][k] > ' ' && c.tokens[i][k] <= '~',
			    "token byte");
	}
	FZ_CHECK(c.norigins >= 0 && c.norigins <= CONF_ORIGINS_MAX, "origins");
	for (i = 0; i < c.norigins; i++)
		FZ_CHECK(c.origins[i][0] != '\0' && fz_one_line(c.origins[i]) &&
		    strchr(c.origins[i], ' ') == NULL, "origin");
	FZ_CHECK(c.nprivate >= 0 && c.nprivate <= CONF_PRIVATE_MAX, "private");
	for (i = 0; i < c.nprivate; i++)
		FZ_CHECK(fz_ref_channel(c.private_prefix[i]), "private prefix");
	FZ_CHECK(strpbrk(c.subscriber_secret, " \t\r\n") == NULL, "secret");
	return 0;
}

static int
fz_control(const uint8_t *data, size_t size)
{
	static const char sp[] = "end-stream ", cp[] = "end-channel ";
	char chan[VALID_CHANNEL_MAX + 1], *name;
	struct store_msg m;
	int64_t stream = -7, v = -1;
	const char *d;
	size_t n;
	int rc, want = STORE_CONTROL_NONE;

	if (size == 0)
		return 0;
	memset(&m, 0, sizeof(m));
	m.channel = data[0] & 1 ? MLOG_CONTROL : "news";
	m.type = MLOG_DEFAULT_TYPE;
	m.data = d = (const char *)data + 1;
	m.len = n = size - 1;
	rc = store_control_parse(&m, &stream, chan, sizeof(chan));

	/* The reference: exactly one of the two forms the writers make. */
	if ((data[0] & 1) && n > sizeof(sp) - 1 &&
	    memcmp(d, sp, sizeof(sp) - 1) == 0 && d[sizeof(sp) - 1] != '0' &&
	    fz_ref_id(d + sizeof(sp) - 1, n - (sizeof(sp) - 1), &v) == 0 &&
	    v >= 1)
		want = STORE_CONTROL_END_STREAM;
	name = malloc(n + 1);
	memcpy(name, d, n);
	name[n] = '\0';
	if ((data[0] & 1) && n > sizeof(cp) - 1 && strlen(name) == n &&
	    memcmp(d, cp, sizeof(cp) - 1) == 0 &&
	    fz_ref_channel(name + sizeof(cp) - 1))
		want = STORE_CONTROL_END_CHANNEL;
	FZ_CHECK(rc == want, "control \"%s\": %d, want %d", name, rc, want);
	if (rc == STORE_CONTROL_END_STREAM) {
		char again[64];

		FZ_CHECK(stream == v, "stream %" PRId64, stream);
		snprintf(again, sizeof(again), "%s%" PRId64, sp, stream);
		FZ_CHECK(strlen(again) == n && memcmp(again, d, n) == 0,
		    "not what end-stream writes");
	}
	if (rc == STORE_CONTROL_END_CHANNEL)
		FZ_CHECK(strcmp(chan, name + sizeof(cp) - 1) == 0, "channel "
		    "\"%s\"", chan);
	free(name);
	return 0;
}

/* ---- framing programs -------------------------------------------------- */

enum { OP_MSG, OP_GAP, OP_BEAT, OP_BEAT2, OP_END };

struct fz_op {
	int op;
	int msg;              /* OP_MSG: index into msgs */
	int64_t gap;          /* OP_GAP */
};

/* Messages as the log can hold them: a valid channel, a type of 1-255
 * printable ASCII bytes, an event of the schema's alphabet, any data. */
struct fz_prog {
	int nops, nmsgs;
	struct fz_op op[FZ_OPS_MAX];
	struct store_msg m[FZ_MSGS_MAX];
	char type[FZ_MSGS_MAX][VALID_TYPE_MAX + 1];
	char event[FZ_MSGS_MAX][VALID_EVENT_MAX + 1];
	const char *handle;   /* transport_begin's */
	int64_t cursor;
	int octet;
	const char *callback;
};

struct fz_in {
	const uint8_t *p;
	size_t n;
};

static unsigned
fz_byte(struct fz_in *in)
{
	if (in->n == 0)
		return 0;
	in->n--;
	return *in->p++;
}

static const char *const fz_types[] = {
	"text/plain; charset=utf-8", "image/png", "image/jpeg",
	"application/json", "text/html", "text/plain", "a/b; x=\"--y\"",
	"application/octet-stream"
};
static const char *const fz_events[] = {
	NULL, NULL, "update", "a:b.c-d_e", "message", "gap", "stream"
};
static const char *const fz_chans[] = { "news", "a", "cam.1", "x-y_Z" };
static const char *const fz_handles[] = {
	"", "1.abcdef0123456789", "42.0123456789abcdef0123456789abcdef", NULL
};
static const char *const fz_callbacks[] = { "push", "a.b$_", "_$.x1" };
static const char fz_evchars[] =
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-";

/*
 * The program: byte 0 picks the handle, the cursor's presence, octet and
 * the callback; then steps, each a byte b:
 *   b % 8 in 0-3: a message.  Next byte s: s % 16 < 8 picks a type of
 *     fz_types, else a type follows (length byte, then bytes made
 *     printable); s / 16 % 8 < 7 picks an event of fz_events, else one
 *     follows (length byte, bytes mapped to the alphabet).  Then the id
 *     step, a time byte, and two bytes of data length (capped by what
 *     is left), the data.
 *   4: a gap (next byte: how far above the last id), 5: a heartbeat in
 *   one piece, 6: a heartbeat in two, 7: the end of the program.
 */
static void
fz_program(struct fz_prog *g, const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	int64_t id = 0;
	unsigned b, s, k, i;
	size_t len;

	/* Only the counts: the arrays are written before they are read. */
	g->nops = g->nmsgs = 0;
	b = fz_byte(&in);
	g->handle = fz_handles[b % 3];
	g->cursor = (b & 4) ? (int64_t)(b >> 3) : -1;
	g->octet = (b >> 5) & 1;
	g->callback = fz_callbacks[(b >> 6) % 3];
	while (in.n > 0 && g->nops < FZ_OPS_MAX) {
		struct fz_op *op = &g->op[g->nops];

		op->msg = 0;
		op->gap = 0;
		b = fz_byte(&in);
		switch (b % 8) {
		case 0: case 1: case 2: case 3: {
			struct store_msg *m = &g->m[g->nmsgs];
			char *t = g->type[g->nmsgs], *e = g->event[g->nmsgs];

			s = fz_byte(&in);
			if (s % 16 < 8)
				snprintf(t, VALID_TYPE_MAX + 1, "%s",
				    fz_types[s % 8]);
			else {
				k = fz_byte(&in);
				for (i = 0; i < k && in.n > 0; i++)
					t[i] = (char)(' ' + fz_byte(&in) % 95);
				t[i] = '\0';
				if (i == 0)
					snprintf(t, VALID_TYPE_MAX + 1, "x/y");
			}
			k = s / 16 % 8;
			if (k < 7)
				m->event = fz_events[k];
			else {
				k = fz_byte(&in) % VALID_EVENT_MAX + 1;
				for (i = 0; i < k && in.n > 0; i++)
					e[i] = fz_evchars[fz_byte(&in) %
					    (sizeof(fz_evchars) - 1)];
				e[i] = '\0';
				m->event = i > 0 ? e : NULL;
			}
			id += 1 + fz_byte(&in);
			m->id = id;
			m->time_ms = 1700000000000LL + fz_byte(&in);
			m->channel = fz_chans[b / 8 % 4];
			m->type = t;
			len = fz_byte(&in);
			len |= (size_t)fz_byte(&in) << 8;
			if (len > in.n)
				len = in.n;
			m->data = in.p;
			m->len = len;
			in.p += len;
			in.n -= len;
			op->op = OP_MSG;
			op->msg = g->nmsgs++;
			break;
		}
		case 4:
			op->op = OP_GAP;
			op->gap = id + 1 + fz_byte(&in);
			id = op->gap;
			break;
		case 5:
			op->op = OP_BEAT;
			break;
		case 6:
			op->op = OP_BEAT2;
			break;
		default:
			op->op = OP_END;
			break;
		}
		g->nops++;
		if (op->op == OP_END)
			break;
	}
}

/* Run g through the framing kind into o (memory output); t gets the
 * framing state (its boundary). */
static void
fz_run(const struct fz_prog *g, enum transport_kind kind,
    struct transport *t, struct http_out *o)
{
	struct transport_req q;
	const struct store_msg *prev = NULL;
	int i;

	memset(&q, 0, sizeof(q));
	q.kind = kind;
	q.octet = g->octet;
	snprintf(q.callback, sizeof(q.callback), "%s", g->callback);
	transport_init(t, &q, NULL);
	http_out_mem(o);
	FZ_CHECK(transport_begin(t, o, g->handle, g->cursor) == 0, "begin");
	for (i = 0; i < g->nops; i++) {
		const struct fz_op *op = &g->op[i];

		switch (op->op) {
		case OP_MSG:
			FZ_CHECK(transport_message(t, o, &g->m[op->msg],
			    prev) == 0, "message");
			prev = &g->m[op->msg];
			break;
		case OP_GAP:
			FZ_CHECK(transport_gap(t, o, op->gap, prev) == 0,
			    "gap");
			break;
		case OP_BEAT:
			transport_heartbeat(t, o, prev, TRANSPORT_BEAT_ALL);
			break;
		case OP_BEAT2:
			transport_heartbeat(t, o, prev, TRANSPORT_BEAT_FIRST);
			transport_heartbeat(t, o, prev, TRANSPORT_BEAT_REST);
			break;
		}
	}
	FZ_CHECK(transport_end(t, o, prev) == 0 && !o->failed, "end");
}

/* A handle that could break a framing is refused, and nothing written. */
static void
fz_bad_handle(enum transport_kind kind)
{
	static const char *const bad[] = {
		"1.x\n", "</script>", "1.2\r\n\r\n", "\"", "1 2", "A.b"
	};
	struct transport_req q;
	struct transport t;
	struct http_out o;
	size_t i;

	memset(&q, 0, sizeof(q));
	q.kind = kind;
	snprintf(q.callback, sizeof(q.callback), "push");
	transport_init(&t, &q, "B");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		http_out_mem(&o);
		FZ_CHECK(transport_begin(&t, &o, bad[i], -1) == -1 &&
		    o.used == 0, "handle \"%s\" taken", bad[i]);
		http_out_free(&o);
	}
}

/* ---- mixed: parse the multipart stream back ---------------------------- */

struct fz_part {
	const char *type;     /* NULL: no Content-Type */
	size_t typelen;
	const char *body;
	size_t len;
	int gap;              /* has X-Push-Gap */
	int64_t gapv;
};

static int
fz_mixed(const uint8_t *data, size_t size)
{
	static struct fz_prog g;
	struct fz_part *parts;
	struct transport t;
	struct http_out o;
	const char *p, *end, *nl, *hit;
	char delim[TRANSPORT_BOUNDARY_MAX + 8], num[32];
	size_t dl, cl = 0;
	int np = 0, have_cl, i, j, k, ok, nexp = 0;

	fz_program(&g, data, size);
	fz_run(&g, TRANSPORT_MIXED, &t, &o);
	if (size > 0 && data[0] == 0xff)
		fz_bad_handle(TRANSPORT_MIXED);
	dl = (size_t)snprintf(delim, sizeof(delim), "\r\n--%s", t.boundary);
	parts = calloc((size_t)g.nops + 8 + (size_t)g.nmsgs * 2,
	    sizeof(*parts));
	p = o.buf;
	end = o.buf + o.used;
	FZ_CHECK(o.used >= dl - 2 && memcmp(p, delim + 2, dl - 2) == 0 &&
	    end - p >= (ptrdiff_t)dl && memcmp(p + dl - 2, "\r\n", 2) == 0,
	    "stream does not open with the boundary");
	p += dl;
	for (;;) {
		struct fz_part *pt = &parts[np];

		FZ_CHECK(np < g.nops + 8 + g.nmsgs * 2, "too many parts");
		memset(pt, 0, sizeof(*pt));
		have_cl = 0;
		/* The header block: known lines only, then an empty line. */
		for (;;) {
			nl = fz_memmem(p, (size_t)(end - p), "\r\n", 2);
			FZ_CHECK(nl != NULL, "part %d: header block not closed",
			    np);
			if (nl == p) {
				p += 2;
				break;
			}
			if ((size_t)(nl - p) > 14 && memcmp(p, "Content-Type: ",
			    14) == 0) {
				FZ_CHECK(pt->type == NULL, "two types");
				pt->type = p + 14;
				pt->typelen = (size_t)(nl - p - 14);
			} else if ((size_t)(nl - p) > 16 && memcmp(p,
			    "Content-Length: ", 16) == 0) {
				int64_t v;

				FZ_CHECK(!have_cl && fz_ref_id(p + 16,
				    (size_t)(nl - p - 16), &v) == 0,
				    "Content-Length");
				have_cl = 1;
				cl = (size_t)v;
			} else if ((size_t)(nl - p) > 12 && memcmp(p,
			    "X-Push-Gap: ", 12) == 0) {
				FZ_CHECK(!pt->gap && fz_ref_id(p + 12,
				    (size_t)(nl - p - 12), &pt->gapv) == 0,
				    "X-Push-Gap");
				pt->gap = 1;
			} else
				FZ_CHECK(nl - p == 14 && memcmp(p,
				    "X-Heartbeat: 1", 14) == 0, "part %d: "
				    "header line \"%.*s\"", np,
				    (int)(nl - p), p);
			p = nl + 2;
		}
		pt->body = p;
		if (have_cl) {
			FZ_CHECK((size_t)(end - p) >= cl, "short body");
			pt->len = cl;
			FZ_CHECK(fz_memmem(p, cl, delim, dl) == NULL, "part %d "
			    "holds the boundary", np);
			p += cl;
			FZ_CHECK((size_t)(end - p) >= dl && memcmp(p, delim, dl)
			    == 0, "part %d: no boundary after its "
			    "Content-Length", np);
		} else {
			hit = fz_memmem(p, (size_t)(end - p), delim, dl);
			FZ_CHECK(hit != NULL, "part %d not closed", np);
			pt->len = (size_t)(hit - p);
			p = hit;
		}
		p += dl;
		np++;
		if (end - p == 4 && memcmp(p, "--\r\n", 4) == 0)
			break;
		FZ_CHECK(end - p >= 2 && memcmp(p, "\r\n", 2) == 0, "part %d: "
		    "boundary not followed by CRLF", np);
		p += 2;
	}

	/* Every message and gap shows, in order; every other part is a
	 * message shown before again, or empty; no Content-Type lies. */
	for (i = 0; i < g.nops; i++)
		if (g.op[i].op == OP_MSG || g.op[i].op == OP_GAP)
			nexp++;
	for (i = 0, j = 0, k = 0; i < np; i++) {
		const struct fz_part *pt = &parts[i];
		const struct fz_op *op;

		while (k < g.nops && g.op[k].op != OP_MSG && g.op[k].op !=
		    OP_GAP)
			k++;
		op = k < g.nops ? &g.op[k] : NULL;
		if (op != NULL && op->op == OP_MSG) {
			const struct store_msg *m = &g.m[op->msg];

			if (!pt->gap && pt->type != NULL && pt->typelen ==
			    strlen(m->type) && memcmp(pt->type, m->type,
			    pt->typelen) == 0 && pt->len == m->len &&
			    memcmp(pt->body, m->data, m->len) == 0) {
				j++;
				k++;
				continue;
			}
		} else if (op != NULL) {
			int n = snprintf(num, sizeof(num), "%" PRId64, op->gap);

			if (pt->gap && pt->gapv == op->gap && pt->len ==
			    (size_t)n && memcmp(pt->body, num, (size_t)n) ==
			    0 &&
			    pt->type != NULL && pt->typelen == 25 &&
			    memcmp(pt->type, "text/plain; charset=utf-8", 25) ==
			    0) {
				j++;
				k++;
				continue;
			}
		}
		FZ_CHECK(!pt->gap, "part %d: a gap out of place", i);
		if (pt->type == NULL) {
			FZ_CHECK(pt->len == 0, "part %d: data without a type",
			    i);
			continue;
		}
		/* A repeat of a message already shown. */
		for (ok = 0, op = g.op; op < g.op + k; op++) {
			const struct store_msg *m = &g.m[op->msg];

			if (op->op == OP_MSG && pt->typelen ==
			    strlen(m->type) && memcmp(pt->type, m->type,
			    pt->typelen) == 0 && pt->len == m->len &&
			    memcmp(pt->body, m->data, m->len) == 0)
				ok = 1;
		}
		FZ_CHECK(ok, "part %d (%.*s, %zu bytes) is no message", i,
		    (int)pt->typelen, pt->type, pt->len);
	}
	FZ_CHECK(j == nexp, "%d of %d messages and gaps shown", j, nexp);
	free(parts);
	http_out_free(&o);
	return 0;
}

/* ---- sse: read the stream as a browser's EventSource does -------------- */

struct fz_event {
	char *type;
	size_t tlen;
	char *data;
	size_t len;
	int has_id;
	char *id;
	size_t idlen;
};

static int
fz_sse(const uint8_t *data, size_t size)
{
	static struct fz_prog g;
	struct fz_event *ev;
	struct transport t;
	struct http_out o;
	const char *p, *end, *le, *colon, *val;
	char *dbuf, *tbuf, *ibuf, *dstart, *tstart, *istart, num[32];
	size_t dlen = 0, tlen = 0, ilen = 0, vlen, nlen;
	int nev = 0, maxev, pending = 0, has_id = 0, lines = 0, i, k;

	fz_program(&g, data, size);
	fz_run(&g, TRANSPORT_SSE, &t, &o);
	if (size > 0 && data[0] == 0xff)
		fz_bad_handle(TRANSPORT_SSE);
	maxev = g.nops + 2;
	ev = calloc((size_t)maxev, sizeof(*ev));
	/* Three arenas: what the events' data, types and ids are read
	 * into, each no longer than the stream. */
	dbuf = dstart = malloc(o.used + 1);
	tbuf = tstart = malloc(o.used + 1);
	ibuf = istart = malloc(o.used + 1);
	p = o.buf;
	end = o.buf + o.used;
	while (p < end) {
		/* A line ends at CRLF, LF or CR (the SSE rules). */
		for (le = p; le < end && *le != '\r' && *le != '\n'; le++)
			;
		FZ_CHECK(le < end, "the stream ends inside a line");
		nlen = (size_t)(le - p);
		lines++;
		if (nlen == 0) {
			/* A blank line ends an event: there must be one. */
			FZ_CHECK(pending, "a blank line outside an event");
			FZ_CHECK(nev < maxev, "too many events");
			ev[nev].type = tbuf;
			ev[nev].tlen = tlen;
			ev[nev].data = dbuf;
			ev[nev].len = dlen > 0 ? dlen - 1 : 0;
			ev[nev].has_id = has_id;
			ev[nev].id = ibuf;
			ev[nev].idlen = ilen;
			nev++;
			dbuf += dlen;
			tbuf += tlen;
			ibuf += ilen;
			dlen = tlen = ilen = 0;
			pending = has_id = 0;
		} else if (*p != ':') {
			/* Every field is one we write, "name: value". */
			colon = memchr(p, ':', nlen);
			FZ_CHECK(colon != NULL && colon + 1 < le &&
			    colon[1] == ' ', "line \"%.*s\"", (int)nlen, p);
			val = colon + 2;
			vlen = (size_t)(le - val);
			k = (int)(colon - p);
			if (k == 4 && memcmp(p, "data", 4) == 0) {
				memcpy(dbuf + dlen, val, vlen);
				dlen += vlen;
				dbuf[dlen++] = '\n';
			} else if (k == 5 && memcmp(p, "event", 5) == 0) {
				FZ_CHECK(tlen == 0, "two event lines");
				memcpy(tbuf, val, vlen);
				tlen = vlen;
			} else if (k == 2 && memcmp(p, "id", 2) == 0) {
				FZ_CHECK(!has_id, "two id lines");
				memcpy(ibuf, val, vlen);
				ilen = vlen;
				has_id = 1;
			} else
				FZ_CHECK(k == 5 && memcmp(p, "retry", 5) == 0 &&
				    lines == 1, "field \"%.*s\"", k, p);
			if (k != 5 || memcmp(p, "retry", 5) != 0)
				pending = 1;
		}
		p = le + 1;
		if (*le == '\r' && p < end && *p == '\n')
			p++;
	}
	FZ_CHECK(!pending, "the last event is not ended");

	/* The events are the stream event, then the messages and gaps. */
	k = 0;
	if (g.handle[0] != '\0') {
		FZ_CHECK(nev > 0 && ev[0].tlen == 6 && memcmp(ev[0].type,
		    "stream", 6) == 0 && ev[0].len == strlen(g.handle) &&
		    memcmp(ev[0].data, g.handle, ev[0].len) == 0,
		    "stream event");
		if (g.cursor >= 0) {
			int n = snprintf(num, sizeof(num), "%" PRId64,
			    g.cursor);

			FZ_CHECK(ev[0].has_id && ev[0].idlen == (size_t)n &&
			    memcmp(ev[0].id, num, (size_t)n) == 0, "cursor");
		} else
			FZ_CHECK(!ev[0].has_id, "stream event with an id");
		k = 1;
	}
	for (i = 0; i < g.nops; i++) {
		const struct fz_op *op = &g.op[i];
		const struct fz_event *e;
		int n;

		if (op->op != OP_MSG && op->op != OP_GAP)
			continue;
		FZ_CHECK(k < nev, "event %d missing", k);
		e = &ev[k++];
		if (op->op == OP_GAP) {
			n = snprintf(num, sizeof(num), "%" PRId64, op->gap);
			FZ_CHECK(!e->has_id && e->tlen == 3 && memcmp(e->type,
			    "gap", 3) == 0 && e->len == (size_t)n &&
			    memcmp(e->data, num, (size_t)n) == 0, "gap event");
		} else {
			const struct store_msg *m = &g.m[op->msg];
			const char *name = m->event != NULL ? m->event :
			    "message";
			int text = fz_utf8(m->data, m->len) &&
			    memchr(m->data, '\r', m->len) == NULL;

			n = snprintf(num, sizeof(num), "%" PRId64, m->id);
			FZ_CHECK(e->has_id && e->idlen == (size_t)n &&
			    memcmp(e->id, num, (size_t)n) == 0, "id of %"
			    PRId64, m->id);
			if (text) {
				FZ_CHECK(m->event != NULL ? e->tlen ==
				    strlen(name) && memcmp(e->type, name,
				    e->tlen) == 0 : e->tlen == 0, "event of %"
				    PRId64, m->id);
				FZ_CHECK(e->len == m->len && memcmp(e->data,
				    m->data, m->len) == 0, "data of %" PRId64,
				    m->id);
			} else {
				char *b = fz_b64(m->data, m->len, &vlen);

				FZ_CHECK(e->tlen == strlen(name) + 7 &&
				    memcmp(e->type, name, strlen(name)) == 0 &&
				    memcmp(e->type + strlen(name), ";base64", 7)
				    == 0, "base64 event of %" PRId64, m->id);
				FZ_CHECK(e->len == vlen && memcmp(e->data, b,
				    vlen) == 0, "base64 data of %" PRId64,
				    m->id);
				free(b);
			}
		}
	}
	FZ_CHECK(k == nev, "%d events for %d", nev, k);
	free(ev);
	free(dstart);
	free(tstart);
	free(istart);
	http_out_free(&o);
	return 0;
}

/* ---- script: an HTML page of <script> calls ---------------------------- */

static int
fz_script(const uint8_t *data, size_t size)
{
	static struct fz_prog g;
	struct transport t;
	struct http_out o;
	struct jdoc j;
	const char *p, *end, *r;
	char open[VALID_CALLBACK_MAX + 32];
	size_t ol, used;
	int scripts = 0, i, k, root;

	fz_program(&g, data, size);
	fz_run(&g, TRANSPORT_SCRIPT, &t, &o);
	if (size > 0 && data[0] == 0xff)
		fz_bad_handle(TRANSPORT_SCRIPT);
	p = o.buf;
	end = o.buf + o.used;
	/* The head: its one comment (the padding) is closed. */
	r = fz_memmem(p, o.used, "-->\n", 4);
	FZ_CHECK(strncmp(p, "<!DOCTYPE html>\n", 16) == 0 && r != NULL &&
	    fz_count_ci(p, (size_t)(r - p), "<!--") == 1 &&
	    fz_count_ci(p, (size_t)(r - p), "<script") == 0, "head");
	p = r + 4;
	r = p;
	/* After the head, case-insensitively: no comment opens, and
	 * <script / </script occur only as the framing writes them. */
	FZ_CHECK(fz_find_ci(p, (size_t)(end - p), "<!--") == NULL,
	    "a comment opens");
	for (i = 0; i < g.nops; i++)
		if (g.op[i].op == OP_MSG || g.op[i].op == OP_GAP)
			scripts++;
	if (g.handle[0] != '\0')
		scripts++;
	FZ_CHECK(fz_count_ci(p, (size_t)(end - p), "<script") == scripts &&
	    fz_count_ci(p, (size_t)(end - p), "</script") == scripts,
	    "%d scripts written, %d opened, %d closed", scripts,
	    fz_count_ci(p, (size_t)(end - p), "<script"),
	    fz_count_ci(p, (size_t)(end - p), "</script"));
	FZ_CHECK(fz_memmem(p, (size_t)(end - p), "\xe2\x80\xa8", 3) == NULL &&
	    fz_memmem(p, (size_t)(end - p), "\xe2\x80\xa9", 3) == NULL,
	    "a JavaScript line break");

	/* Each script is <script>parent.CB(JSON)</script>, whitespace
	 * (heartbeats) between them; the JSON is what was sent. */
	ol = (size_t)snprintf(open, sizeof(open), "<script>parent.%s(",
	    g.callback);
	k = g.handle[0] != '\0' ? -1 : 0;
	for (i = 0; ; i++) {
		const struct fz_op *op = NULL;

		while (p < end && (*p == ' ' || *p == '\n'))
			p++;
		if (p == end)
			break;
		FZ_CHECK((size_t)(end - p) > ol && memcmp(p, open, ol) == 0,
		    "script %d does not call the callback", i);
		p += ol;
		root = jv_parse(&j, p, (size_t)(end - p), &used,
		    FZ_JSON_CALL);
		FZ_CHECK(root == 0, "script %d: not JSON", i);
		FZ_CHECK(memchr(p, '<', used) == NULL && jv_unique_keys(&j),
		    "script %d: '<' or a repeated key in the JSON", i);
		if (k < 0) {
			FZ_CHECK(jv_count(&j, 0) == 1 + (g.cursor >= 0) &&
			    jv_is_str(&j, jv_get(&j, 0, "stream"), g.handle,
			    strlen(g.handle)) && (g.cursor < 0 ||
			    jv_is_int(&j, jv_get(&j, 0, "cursor"), g.cursor)),
			    "stream call");
		} else {
			while (k < g.nops && g.op[k].op != OP_MSG &&
			    g.op[k].op != OP_GAP)
				k++;
			FZ_CHECK(k < g.nops, "script %d: nothing sent", i);
			op = &g.op[k];
			if (op->op == OP_GAP)
				FZ_CHECK(j.n[0].kind == JN_OBJ &&
				    jv_count(&j, 0) == 1 && jv_is_int(&j,
				    jv_get(&j, 0, "gap"), op->gap), "gap call");
			else
				jv_check_msg(&j, 0, &g.m[op->msg]);
		}
		k++;
		jv_free(&j);
		p += used;
		FZ_CHECK((size_t)(end - p) >= 11 && memcmp(p, ")</script>\n",
		    11) == 0, "script %d not closed", i);
		p += 11;
	}
	(void)r;
	http_out_free(&o);
	return 0;
}

/* ---- raw: the bytes, a newline after each ------------------------------ */

static int
fz_raw(const uint8_t *data, size_t size)
{
	static struct fz_prog g;
	struct transport t;
	struct http_out o, want;
	int i;

	fz_program(&g, data, size);
	fz_run(&g, TRANSPORT_RAW, &t, &o);
	http_out_mem(&want);
	http_puts(&want, "\n");
	for (i = 0; i < g.nops; i++) {
		const struct fz_op *op = &g.op[i];

		if (op->op == OP_MSG) {
			http_put(&want, g.m[op->msg].data, g.m[op->msg].len);
			http_puts(&want, "\n");
		} else if (op->op == OP_GAP)
			http_printf(&want, "#pushcgi-gap %" PRId64 "\n",
			    op->gap);
		else if (op->op == OP_BEAT || op->op == OP_BEAT2)
			http_puts(&want, "\n\n");
	}
	FZ_CHECK(o.used == want.used && memcmp(o.buf, want.buf, o.used) == 0,
	    "raw output differs");
	http_out_free(&o);
	http_out_free(&want);
	return 0;
}

/* ---- json: push-poll's answer ----------------------------------------- */

static int
fz_json(const uint8_t *data, size_t size)
{
	static struct fz_prog g;
	const struct store_msg *ms[FZ_MSGS_MAX];
	struct http_out o;
	struct jdoc j;
	const char *p, *cb;
	size_t n, cl, used;
	int64_t next, gap;
	int i, more, root, arr, c;

	fz_program(&g, data, size);
	for (i = 0; i < g.nmsgs; i++)
		ms[i] = &g.m[i];
	next = g.nmsgs > 0 ? g.m[g.nmsgs - 1].id : (int64_t)g.nops;
	gap = g.cursor >= 0 ? g.cursor : 0;
	more = g.octet;
	cb = size > 0 && (data[0] & 0x80) ? g.callback : NULL;
	http_out_mem(&o);
	FZ_CHECK(transport_poll_json(&o, ms, g.nmsgs, next, gap, more, cb) ==
	    0, "write");
	p = o.buf;
	n = o.used;
	FZ_CHECK(n > 0 && p[n - 1] == '\n', "no final newline");
	n--;
	if (cb != NULL) {
		cl = strlen(cb);
		FZ_CHECK(n > cl + 2 && memcmp(p, cb, cl) == 0 && p[cl] == '(' &&
		    memcmp(p + n - 2, ");", 2) == 0, "JSONP call");
		p += cl + 1;
		n -= cl + 3;
	}
	root = jv_parse(&j, p, n, &used, FZ_JSON_NODES);
	FZ_CHECK(root == 0 && used == n, "not JSON");
	FZ_CHECK(j.n[0].kind == JN_OBJ && jv_unique_keys(&j), "answer");
	FZ_CHECK(jv_count(&j, 0) == 2 + (gap > 0) + (more != 0), "members");
	FZ_CHECK(jv_is_int(&j, jv_get(&j, 0, "next"), next), "next");
	if (gap > 0)
		FZ_CHECK(jv_is_int(&j, jv_get(&j, 0, "gap"), gap), "gap");
	if (more)
		FZ_CHECK(jv_get(&j, 0, "more") >= 0 &&
		    j.n[jv_get(&j, 0, "more")].kind == JN_TRUE, "more");
	arr = jv_get(&j, 0, "messages");
	FZ_CHECK(arr >= 0 && j.n[arr].kind == JN_ARR && jv_count(&j, arr) ==
	    g.nmsgs, "messages");
	for (i = 0, c = j.n[arr].first; c >= 0; c = j.n[c].next, i++)
		jv_check_msg(&j, c, &g.m[i]);
	FZ_CHECK(fz_memmem(o.buf, o.used, "\xe2\x80\xa8", 3) == NULL &&
	    fz_memmem(o.buf, o.used, "\xe2\x80\xa9", 3) == NULL &&
	    memchr(o.buf, '<', o.used) == NULL, "unsafe for a script");
	jv_free(&j);
	http_out_free(&o);
	return 0;
}

/* ---- the table --------------------------------------------------------- */

static const struct fuzz_target {
	const char *name;
	int (*run)(const uint8_t *, size_t);
	const char *what;
} fuzz_targets[] = {
	{ "query", fz_query, "stream query string, Accept, Last-Event-ID" },
	{ "poll", fz_poll, "poll query string, If-None-Match, Last-Event-ID, "
	    "token=" },
	{ "cursor", fz_cursor, "cursors: Last-Event-ID, If-None-Match" },
	{ "auth", fz_auth, "Authorization, subscriber tokens" },
	{ "valid", fz_valid, "channel, event, Content-Type, callback names" },
	{ "conf", fz_conf, "the config file" },
	{ "control", fz_control, "'.control' channel messages" },
	{ "mixed", fz_mixed, "multipart/x-mixed-replace framing" },
	{ "sse", fz_sse, "text/event-stream framing" },
	{ "script", fz_script, "<script> framing and its JSON" },
	{ "raw", fz_raw, "raw framing" },
	{ "json", fz_json, "long-poll JSON and JSONP answers" },
};
#define FZ_NTARGETS ((int)(sizeof(fuzz_targets) / sizeof(fuzz_targets[0])))

static int fz_current = -1;

int
fuzz_ntargets(void)
{
	return FZ_NTARGETS;
}

const char *
fuzz_name(int i)
{
	return i >= 0 && i < FZ_NTARGETS ? fuzz_targets[i].name : NULL;
}

const char *
fuzz_what(int i)
{
	return i >= 0 && i < FZ_NTARGETS ? fuzz_targets[i].what : NULL;
}

int
fuzz_select(const char *name)
{
	int i;

	for (i = 0; i < FZ_NTARGETS; i++)
		if (strcmp(fuzz_targets[i].name, name) == 0) {
			fz_current = i;
			return 0;
		}
	return -1;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *name = getenv(FUZZ_ENV), *base;
	int i;

	if ((name == NULL || *name == '\0') && *argc > 0) {
		base = strrchr((*argv)[0], '/');
		base = base != NULL ? base + 1 : (*argv)[0];
		if (strncmp(base, "fuzz-", 5) == 0)
			name = base + 5;
	}
	if (name == NULL || fuzz_select(name) != 0) {
		fprintf(stderr, "fuzz: name a target in $%s (or run as "
		    "fuzz-TARGET):\n", FUZZ_ENV);
		for (i = 0; i < FZ_NTARGETS; i++)
			fprintf(stderr, "  %-8s %s\n", fuzz_targets[i].name,
			    fuzz_targets[i].what);
		exit(2);
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (fz_current < 0)
		abort();
	if (size > FZ_INPUT_MAX)
		size = FZ_INPUT_MAX;
	return fuzz_targets[fz_current].run(data, size);
}
