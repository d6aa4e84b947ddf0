/*
 * page: format=page of push-poll, the newest message as an HTML page
 * (see page.h).
 */
#include "config.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "page.h"
#include "transport.h"

#define PAGE_TIME_MAX 32        /* bytes of "YYYY-MM-DD HH:MM:SS UTC" */

static int page_base_is(const char *type, size_t n, const char *want);
static int page_url_part(struct http_out *, const char *);
static int page_raw_url(struct http_out *, const struct page_ask *,
    const struct store_msg *);

/* The head every page starts with; the <title> follows. */
static const char page_head[] =
    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width\">\n"
    "<style>body{margin:0;font-family:sans-serif}"
    ".push-meta{margin:0;padding:2px 6px;font-size:12px;color:#444;"
    "background:#eee}pre{margin:6px;white-space:pre-wrap}"
    "img{max-width:100%}</style>\n";

/* type[0..n) is want, without regard to case. */
static int
page_base_is(const char *type, size_t n, const char *want)
{
	return strlen(want) == n && strncasecmp(type, want, n) == 0;
}

enum page_kind
page_kind(const char *type)
{
	size_t n;

	if (type == NULL)
		return PAGE_OTHER;
	while (*type == ' ')
		type++;
	n = strcspn(type, "; ");
	if (page_base_is(type, n, "text/html"))
		return PAGE_HTML;
	if (n > 6 && strncasecmp(type, "image/", 6) == 0)
		return PAGE_IMAGE;
	if (n > 5 && strncasecmp(type, "text/", 5) == 0)
		return PAGE_TEXT;
	if (page_base_is(type, n, "application/json") ||
	    page_base_is(type, n, "application/javascript") ||
	    page_base_is(type, n, "application/xml"))
		return PAGE_TEXT;
	if ((n > 5 && strncasecmp(type + n - 5, "+json", 5) == 0) ||
	    (n > 4 && strncasecmp(type + n - 4, "+xml", 4) == 0))
		return PAGE_TEXT;
	return PAGE_OTHER;
}

int
page_escape(struct http_out *o, const void *p, size_t n)
{
	const char *s = p, *e = s + n, *run = s;

	for (; s < e; s++) {
		const char *rep;

		switch (*s) {
		case '&': rep = "&amp;"; break;
		case '<': rep = "&lt;"; break;
		case '>': rep = "&gt;"; break;
		case '"': rep = "&quot;"; break;
		case '\'': rep = "&#39;"; break;
		default: continue;
		}
		http_put(o, run, (size_t)(s - run));
		http_puts(o, rep);
		run = s + 1;
	}
	return http_put(o, run, (size_t)(e - run));
}

/* A query value percent-encoded (all but A-Z a-z 0-9 - . _ ~). */
static int
page_url_part(struct http_out *o, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	unsigned char c;

	for (; *s != '\0'; s++) {
		c = (unsigned char)*s;
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' ||
		    c == '_' || c == '~') {
			http_put(o, s, 1);
		} else {
			char pct[3] = { '%', hex[c >> 4], hex[c & 15] };

			http_put(o, pct, 3);
		}
	}
	return o->failed ? -1 : 0;
}

/*
 * The raw URL of exactly m, as an attribute value (&amp;): relative, so
 * it names this responder on whatever path it was reached.  since=ID-1
 * on the same channels selects m (ids grow; m is one of them), timeout=0
 * answers 304 at once should m have been pruned since.
 */
static int
page_raw_url(struct http_out *o, const struct page_ask *a,
    const struct store_msg *m)
{
	http_puts(o, "?channel=");
	page_url_part(o, a->channels);
	http_printf(o, "&amp;since=%" PRId64 "&amp;format=raw&amp;timeout=0",
	    m->id - 1);
	if (a->token != NULL && *a->token != '\0') {
		http_puts(o, "&amp;token=");
		page_url_part(o, a->token);
	}
	return o->failed ? -1 : 0;
}

int
page_write(struct http_out *o, const struct page_ask *a,
    const struct store_msg *m)
{
	char when[PAGE_TIME_MAX];
	struct tm tm;
	time_t t;
	enum page_kind k;

	http_puts(o, page_head);
	http_puts(o, "<title>");
	page_escape(o, a->channels, strlen(a->channels));
	http_puts(o, "</title></head>\n<body>\n");
	if (m == NULL) {
		http_puts(o, "<p class=\"push-meta push-empty\">No message on ");
		page_escape(o, a->channels, strlen(a->channels));
		return http_printf(o, " yet; this page reloads every %d s."
		    "</p>\n</body></html>\n", a->refresh);
	}
	t = (time_t)(m->time_ms / 1000);
	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(when, sizeof(when), "?");
	http_printf(o, "<p class=\"push-meta\">Message <span "
	    "id=\"push-id\">%" PRId64 "</span> on ", m->id);
	page_escape(o, m->channel, strlen(m->channel));
	http_printf(o, ", <time>%s</time>; this page reloads every %d s."
	    "</p>\n<div id=\"push-msg\">", when, a->refresh);

	k = page_kind(m->type);
	if ((k == PAGE_HTML || k == PAGE_TEXT) &&
	    !transport_utf8_valid(m->data, m->len))
		k = PAGE_OTHER;
	switch (k) {
	case PAGE_HTML:
		http_put(o, m->data, m->len);
		break;
	case PAGE_TEXT:
		http_puts(o, "<pre>");
		page_escape(o, m->data, m->len);
		http_puts(o, "</pre>");
		break;
	case PAGE_IMAGE:
		http_puts(o, "<img src=\"");
		page_raw_url(o, a, m);
		http_puts(o, "\" alt=\"");
		page_escape(o, m->type, strlen(m->type));
		http_puts(o, "\">");
		break;
	case PAGE_OTHER:
		http_printf(o, "<p>%zu bytes of ", m->len);
		page_escape(o, m->type, strlen(m->type));
		http_puts(o, ": <a href=\"");
		page_raw_url(o, a, m);
		http_puts(o, "\">the message itself</a></p>");
		break;
	}
	return http_puts(o, "</div>\n</body></html>\n");
}
