/*
 * valid: allow-list checks for every name a client or operator hands us.
 *
 * Each function looks at untrusted bytes and says yes or no; none of them
 * allocates or keeps a pointer.  The caps are the product's published limits.
 */
#ifndef PUSHCGI_VALID_H
#define PUSHCGI_VALID_H

#include <stddef.h>

#define VALID_CHANNEL_MAX   128 /* bytes in a channel name */
#define VALID_TYPE_MAX      255 /* bytes in a media type */
#define VALID_EVENT_MAX     64  /* bytes in an SSE event name */
#define VALID_CHANNELS_MAX  32  /* channels one request may name */
#define VALID_CALLBACK_MAX  64  /* bytes in a JSONP / script callback name */

/* 1-128 of [A-Za-z0-9._-], not starting with '.'.  Returns 1 if valid. */
int valid_channel(const char *s);

/* A media type: type "/" subtype, then any "; name=value" parameters, each
 * part an RFC 7230 token (a parameter value may also be a quoted string);
 * printable ASCII only, at most VALID_TYPE_MAX bytes.  Returns 1 if valid. */
int valid_type(const char *s);

/* An SSE event name: 1-64 of [A-Za-z0-9._:-].  Returns 1 if valid. */
int valid_event(const char *s);

/* A JavaScript callback: identifiers joined by '.', each
 * [A-Za-z_$][A-Za-z0-9_$]*, at most VALID_CALLBACK_MAX bytes. */
int valid_callback(const char *s);

/*
 * Split a comma-separated list of channel names into out[0..n-1] (each
 * VALID_CHANNEL_MAX + 1 bytes, NUL-terminated).  Duplicates are dropped.
 * Returns n (1..max), or -1 if the list is empty, longer than max names, or
 * any name is invalid.
 */
int valid_channel_list(const char *csv, char out[][VALID_CHANNEL_MAX + 1],
    int max);

#endif
