/*
 * auth: who may publish, and who may subscribe to private channels.
 *
 * Publishing is closed unless the config opens it:
 *  - a publish token (config "publish_token", up to CONF_TOKENS_MAX of
 *    them) presented as "Authorization: Bearer TOKEN" or as the
 *    X-Push-Token header; compared in constant time against every
 *    configured token;
 *  - or, with "trust_remote_user = 1", any request the web server has
 *    authenticated itself (REMOTE_USER set and not empty).
 * No token configured and no trust: every publish is refused (403).
 *
 * Private channels: a channel under a configured "private_channel" prefix
 * needs a subscriber token signed with "subscriber_secret":
 *
 *   token = EXPIRY "." HEX
 *   EXPIRY = seconds since the epoch, decimal, at most AUTH_EXPIRY_DIGITS
 *   HEX    = lowercase hex of HMAC-SHA256(subscriber_secret,
 *                                         "pushcgi-sub:" CHANNEL ":" EXPIRY)
 *
 * One token names one channel; a request on several private channels
 * passes several tokens, comma-separated, in the token= parameter (at most
 * VALID_CHANNELS_MAX).  A token is good until EXPIRY.  `pushctl token
 * CHANNEL [SECONDS]` prints one; any language with HMAC-SHA256 can make
 * them (the README shows PHP and Python).
 */
#ifndef PUSHCGI_AUTH_H
#define PUSHCGI_AUTH_H

#include <stddef.h>
#include <time.h>

#include "conf.h"
#include "valid.h"

#define AUTH_EXPIRY_DIGITS 12   /* digits in a token's expiry */
#define AUTH_MAC_HEX       64   /* hex digits of an HMAC-SHA256 */
#define AUTH_SUB_TOKEN_MAX (AUTH_EXPIRY_DIGITS + 1 + AUTH_MAC_HEX)
#define AUTH_TOKENS_MAX    (VALID_CHANNELS_MAX * (AUTH_SUB_TOKEN_MAX + 1))
                                /* bytes of a token= parameter */
#define AUTH_TTL_DEFAULT   3600 /* pushctl token's default lifetime */

enum {
	AUTH_OK = 0,
	AUTH_DENIED = -1,  /* no or wrong credentials: 403 */
	AUTH_EXPIRED = -2, /* a subscriber token is past its expiry: 403 */
	AUTH_BAD = -3      /* malformed token parameter: 400 */
};

/* Constant-time comparison of two byte strings; 1 if equal. */
int auth_equal(const void *a, size_t alen, const void *b, size_t blen);

/*
 * May this request publish?  bearer: the token the request presented
 * (Authorization: Bearer or X-Push-Token), or NULL; remote_user: the
 * REMOTE_USER variable, or NULL.  Returns AUTH_OK or AUTH_DENIED.
 */
int auth_publisher(const struct conf *c, const char *bearer,
    const char *remote_user);

/* 1 if channel is under one of c's private_channel prefixes. */
int auth_private(const struct conf *c, const char *channel);

/*
 * Make the subscriber token for channel, good until expiry, into out
 * (at least AUTH_SUB_TOKEN_MAX + 1 bytes).  Returns 0, or -1 when no
 * subscriber_secret is configured or the channel is invalid.
 */
int auth_sub_token(const struct conf *c, const char *channel,
    time_t expiry, char *out, size_t outlen);

/*
 * Check that every private channel among channels[0..n-1] is covered by a
 * valid, unexpired token in tokens (the token= parameter, comma-separated,
 * or NULL).  Public channels need nothing.  now: the current time.
 * Returns AUTH_OK, AUTH_DENIED, AUTH_EXPIRED or AUTH_BAD, with a one-line
 * reason in why (naming the channel).
 */
int auth_subscriber(const struct conf *c, const char *const *channels,
    int n, const char *tokens, time_t now, char *why, size_t whylen);

/*
 * The token of an "Authorization: Bearer TOKEN" header value (the scheme
 * compared without case, spaces after it skipped), or NULL when the value
 * is NULL, another scheme, or has no token.  Points into authorization.
 */
const char *auth_bearer(const char *authorization);

#endif
