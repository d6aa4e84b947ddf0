/*
 * page: the newest message of some channels as a whole HTML page, for
 * push-poll's format=page (client pull: the browser reloads the page on
 * the Refresh header, no script needed).
 *
 * What the message becomes, by its Content-Type (parameters ignored,
 * compared without case):
 *
 *   text/html                  the data as it is (the publisher is
 *                              trusted: publishing needs a token)
 *   image/...                  an <img> whose src is the raw push-poll
 *                              URL of exactly that message (a relative
 *                              "?channel=..&since=ID-1&format=raw&
 *                              timeout=0[&token=..]" on the same path)
 *   text/..., application/json, application/javascript, application/xml,
 *   ...+json, ...+xml          the data HTML-escaped inside <pre>
 *   anything else, and text that is not UTF-8
 *                              its size and type, and a link to the raw
 *                              URL as above
 *
 * Above it a line names the message's id, channel and time (UTC); with
 * no message at all the page says that the channels are empty.  Every
 * page is UTF-8 (the caller sends "text/html; charset=utf-8").
 */
#ifndef PUSHCGI_PAGE_H
#define PUSHCGI_PAGE_H

#include <stddef.h>

#include "http.h"
#include "store.h"

/* refresh= itself is parsed with the poll's other parameters
 * (transport.h: TRANSPORT_REFRESH_MIN, TRANSPORT_REFRESH_MAX). */
#define PAGE_TYPE           "text/html; charset=utf-8"

enum page_kind { PAGE_HTML, PAGE_IMAGE, PAGE_TEXT, PAGE_OTHER };

/* What the page was asked for.  The strings are the request's decoded
 * parameters, borrowed for the call. */
struct page_ask {
	const char *channels;   /* channel= as given (checked names) */
	const char *token;      /* token= as given, or NULL */
	int refresh;            /* seconds, only shown in the page */
};

/* How a message of Content-Type type is shown (see above). */
enum page_kind page_kind(const char *type);

/*
 * Write the page for message m (NULL: the channels have none) to o.  The
 * message and a belong to the caller.  0, or -1 once o has failed.
 */
int page_write(struct http_out *o, const struct page_ask *a,
    const struct store_msg *m);

/* p[0..n) HTML-escaped (& < > " ') to o.  0 or -1. */
int page_escape(struct http_out *o, const void *p, size_t n);

#endif
