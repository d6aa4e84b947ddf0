/*
 * valid: allow-list checks for names that come from clients and operators.
 * Nothing here allocates; every function stops at its cap, so a hostile
 * input costs at most cap + 1 bytes of scanning.
 */
#include "config.h"

#include <string.h>

#include "valid.h"

static int valid_is_tchar(int);
static int valid_is_namechar(int);
static const char *valid_ows(const char *);
static const char *valid_token(const char *);
static const char *valid_quoted(const char *);

/* RFC 7230 tchar: the characters a token may hold. */
static int
valid_is_tchar(int c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return 1;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int
valid_is_namechar(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

int
valid_channel(const char *s)
{
	size_t i;

	if (s == NULL || s[0] == '\0' || s[0] == '.')
		return 0;
	for (i = 0; s[i] != '\0'; i++)
		if (i >= VALID_CHANNEL_MAX || !valid_is_namechar(s[i]))
			return 0;
	return 1;
}

int
valid_event(const char *s)
{
	size_t i;

	if (s == NULL || s[0] == '\0')
		return 0;
	for (i = 0; s[i] != '\0'; i++)
		if (i >= VALID_EVENT_MAX ||
		    !(valid_is_namechar(s[i]) || s[i] == ':'))
			return 0;
	return 1;
}

/* Skip optional white space at *p: spaces only.  RFC 7230 also allows
 * HTAB, but a type is printable ASCII (valid.h), as the log's schema
 * checks: a tab would pass here and fail the insert. */
static const char *
valid_ows(const char *p)
{
	while (*p == ' ')
		p++;
	return p;
}

/* Skip one token; NULL if there is none at p. */
static const char *
valid_token(const char *p)
{
	const char *q = p;

	while (valid_is_tchar((unsigned char)*q))
		q++;
	return q == p ? NULL : q;
}

/* Skip one quoted-string (no obs-text, no HTAB: see valid_ows); NULL if
 * malformed. */
static const char *
valid_quoted(const char *p)
{
	if (*p++ != '"')
		return NULL;
	while (*p != '"') {
		int c;

		if (*p == '\\')
			p++;
		c = (unsigned char)*p;
		if (c < 0x20 || c > 0x7e)
			return NULL;
		p++;
	}
	return p + 1;
}

int
valid_type(const char *s)
{
	const char *p;

	if (s == NULL || strnlen(s, VALID_TYPE_MAX + 1) > VALID_TYPE_MAX)
		return 0;
	if ((p = valid_token(s)) == NULL || *p++ != '/')
		return 0;
	if ((p = valid_token(p)) == NULL)
		return 0;
	for (;;) {
		p = valid_ows(p);
		if (*p == '\0')
			return 1;
		if (*p++ != ';')
			return 0;
		p = valid_ows(p);
		if ((p = valid_token(p)) == NULL || *p++ != '=')
			return 0;
		p = *p == '"' ? valid_quoted(p) : valid_token(p);
		if (p == NULL)
			return 0;
	}
}

int
valid_callback(const char *s)
{
	size_t i;
	int start = 1;

	if (s == NULL || s[0] == '\0')
		return 0;
	for (i = 0; s[i] != '\0'; i++) {
		int c = (unsigned char)s[i];

		if (i >= VALID_CALLBACK_MAX)
			return 0;
		if (c == '.') {
			if (start)
				return 0;
			start = 1;
			continue;
		}
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    c == '_' || c == '$' || (!start && c >= '0' && c <= '9')) {
			start = 0;
			continue;
		}
		return 0;
	}
	return !start;
}

int
valid_channel_list(const char *csv, char out[][VALID_CHANNEL_MAX + 1],
    int max)
{
	int n = 0, i;

	if (csv == NULL || *csv == '\0')
		return -1;
	for (;;) {
		const char *end = strchr(csv, ',');
		size_t len = end ? (size_t)(end - csv) : strlen(csv);
		char name[VALID_CHANNEL_MAX + 1];

		if (len == 0 || len > VALID_CHANNEL_MAX)
			return -1;
		memcpy(name, csv, len);
		name[len] = '\0';
		if (!valid_channel(name))
			return -1;
		for (i = 0; i < n; i++)
			if (strcmp(out[i], name) == 0)
				break;
		if (i == n) {
			if (n >= max)
				return -1;
			memcpy(out[n++], name, len + 1);
		}
		if (end == NULL)
			return n;
		csv = end + 1;
	}
}
