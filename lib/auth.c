/*
 * auth: publisher tokens, trusted web-server users and signed subscriber
 * tokens.  See auth.h for the contract and the token format.
 *
 * HMAC-SHA256 comes from Nettle (GnuTLS's crypto library: small, so a
 * CGI responder or a pushctl send starts fast; OpenSSL's libcrypto costs
 * several milliseconds of dynamic linking per process); every comparison of a secret against
 * what a client sent goes through auth_equal, whose running time depends
 * only on the length of its first argument (the client's bytes), never on
 * where the first difference lies.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <nettle/hmac.h>
#include <nettle/sha2.h>

#include "auth.h"
#include "conf.h"
#include "valid.h"

#define AUTH_MAC_BYTES   SHA256_DIGEST_SIZE /* bytes of an HMAC-SHA256 */
#define AUTH_SUB_PREFIX  "pushcgi-sub:"
#define AUTH_MSG_MAX     (sizeof(AUTH_SUB_PREFIX) + VALID_CHANNEL_MAX + 1 + \
                          AUTH_EXPIRY_DIGITS + 1)
#define AUTH_EXPIRY_LIMIT 999999999999LL /* largest AUTH_EXPIRY_DIGITS value */

/* One parsed subscriber token: pointers into the caller's list. */
struct auth_tok {
	long long expiry;
	const char *exp;        /* the expiry's digits as sent */
	size_t explen;
	const char *mac;        /* AUTH_MAC_HEX lowercase hex digits */
};

static int auth_mac_hex(const struct conf *, const char *, const char *,
    size_t, char *);
static int auth_parse_tokens(const char *, struct auth_tok *, int *);

int
auth_equal(const void *a, size_t alen, const void *b, size_t blen)
{
	const unsigned char *x = a, *y = b;
	unsigned int diff;
	size_t i;

	/* Walk a whole: with b empty, compare against a's own bytes (the
	 * length difference already decides the answer). */
	diff = alen != blen;
	for (i = 0; i < alen; i++)
		diff |= (unsigned int)(x[i] ^ (blen > 0 ? y[i % blen] : x[i]));
	return diff == 0;
}

int
auth_publisher(const struct conf *c, const char *bearer,
    const char *remote_user)
{
	size_t blen;
	int i, match = 0;

	if (bearer != NULL && *bearer != '\0') {
		blen = strlen(bearer);
		/* Every configured token is compared: no early exit that
		 * would tell which one came close. */
		for (i = 0; i < c->ntokens && i < CONF_TOKENS_MAX; i++)
			if (c->tokens[i][0] != '\0' && auth_equal(bearer, blen,
			    c->tokens[i], strlen(c->tokens[i])))
				match = 1;
		if (match)
			return AUTH_OK;
	}
	if (c->trust_remote_user && remote_user != NULL &&
	    *remote_user != '\0')
		return AUTH_OK;
	return AUTH_DENIED;
}

const char *
auth_bearer(const char *authorization)
{
	static const char scheme[] = "bearer";
	size_t i;

	if (authorization == NULL)
		return NULL;
	for (i = 0; i < sizeof(scheme) - 1; i++)
		if ((authorization[i] | 0x20) != scheme[i])
			return NULL;
	if (authorization[i] != ' ')
		return NULL;
	while (authorization[i] == ' ')
		i++;
	return authorization[i] != '\0' ? authorization + i : NULL;
}

int
auth_private(const struct conf *c, const char *channel)
{
	size_t n;
	int i;

	for (i = 0; i < c->nprivate && i < CONF_PRIVATE_MAX; i++) {
		n = strlen(c->private_prefix[i]);
		if (n > 0 && strncmp(channel, c->private_prefix[i], n) == 0)
			return 1;
	}
	return 0;
}

/*
 * The MAC of (channel, expiry digits exp[0..explen)) under c's
 * subscriber_secret, as AUTH_MAC_HEX lowercase hex digits and a NUL into
 * hex.  Returns 0, or -1 when there is no secret.
 */
static int
auth_mac_hex(const struct conf *c, const char *channel, const char *exp,
    size_t explen, char *hex)
{
	static const char digits[] = "0123456789abcdef";
	unsigned char msg[AUTH_MSG_MAX], mac[AUTH_MAC_BYTES];
	struct hmac_sha256_ctx ctx;
	size_t clen, plen = sizeof(AUTH_SUB_PREFIX) - 1, n, i;

	if (c->subscriber_secret[0] == '\0')
		return -1;
	clen = strlen(channel);
	if (clen > VALID_CHANNEL_MAX || explen > AUTH_EXPIRY_DIGITS)
		return -1;
	memcpy(msg, AUTH_SUB_PREFIX, plen);
	memcpy(msg + plen, channel, clen);
	msg[plen + clen] = ':';
	memcpy(msg + plen + clen + 1, exp, explen);
	n = plen + clen + 1 + explen;
	hmac_sha256_set_key(&ctx, strlen(c->subscriber_secret),
	    (const uint8_t *)c->subscriber_secret);
	hmac_sha256_update(&ctx, n, msg);
	hmac_sha256_digest(&ctx, AUTH_MAC_BYTES, mac);
	for (i = 0; i < AUTH_MAC_BYTES; i++) {
		hex[2 * i] = digits[mac[i] >> 4];
		hex[2 * i + 1] = digits[mac[i] & 0x0f];
	}
	hex[AUTH_MAC_HEX] = '\0';
	return 0;
}

int
auth_sub_token(const struct conf *c, const char *channel, time_t expiry,
    char *out, size_t outlen)
{
	char exp[AUTH_EXPIRY_DIGITS + 2], hex[AUTH_MAC_HEX + 1];
	int n;

	if (!valid_channel(channel) || expiry < 0 ||
	    (long long)expiry > AUTH_EXPIRY_LIMIT)
		return -1;
	n = snprintf(exp, sizeof(exp), "%lld", (long long)expiry);
	if (n <= 0 || (size_t)n >= sizeof(exp))
		return -1;
	if (auth_mac_hex(c, channel, exp, (size_t)n, hex) != 0)
		return -1;
	if ((size_t)n + 1 + AUTH_MAC_HEX >= outlen)
		return -1;
	snprintf(out, outlen, "%s.%s", exp, hex);
	return 0;
}

/*
 * Split the token= list into t[0..*n-1] by allow-list: each token is 1 to
 * AUTH_EXPIRY_DIGITS decimal digits, '.', AUTH_MAC_HEX lowercase hex
 * digits; tokens are separated by single commas; at most
 * VALID_CHANNELS_MAX of them and AUTH_TOKENS_MAX bytes.  Returns 0, or -1
 * if anything is malformed.
 */
static int
auth_parse_tokens(const char *s, struct auth_tok *t, int *n)
{
	const char *p = s;
	size_t i;

	*n = 0;
	if (strlen(s) > AUTH_TOKENS_MAX)
		return -1;
	for (;;) {
		if (*n == VALID_CHANNELS_MAX)
			return -1;
		t[*n].exp = p;
		t[*n].expiry = 0;
		for (i = 0; p[i] >= '0' && p[i] <= '9'; i++) {
			if (i == AUTH_EXPIRY_DIGITS)
				return -1;
			t[*n].expiry = t[*n].expiry * 10 + (p[i] - '0');
		}
		if (i == 0 || p[i] != '.')
			return -1;
		t[*n].explen = i;
		p += i + 1;
		t[*n].mac = p;
		for (i = 0; i < AUTH_MAC_HEX; i++)
			if (!((p[i] >= '0' && p[i] <= '9') ||
			    (p[i] >= 'a' && p[i] <= 'f')))
				return -1;
		p += AUTH_MAC_HEX;
		(*n)++;
		if (*p == '\0')
			return 0;
		if (*p != ',')
			return -1;
		p++;
	}
}

int
auth_subscriber(const struct conf *c, const char *const *channels, int n,
    const char *tokens, time_t now, char *why, size_t whylen)
{
	struct auth_tok t[VALID_CHANNELS_MAX];
	char hex[AUTH_MAC_HEX + 1];
	int i, j, nt = 0, good, expired;

	if (why != NULL && whylen > 0)
		why[0] = '\0';
	/* An empty token= is the same as none. */
	if (tokens != NULL && *tokens != '\0' &&
	    auth_parse_tokens(tokens, t, &nt) != 0) {
		snprintf(why, whylen, "malformed token= (EXPIRY.HEX, up to %d "
		    "comma-separated)", VALID_CHANNELS_MAX);
		return AUTH_BAD;
	}
	for (i = 0; i < n; i++) {
		if (!auth_private(c, channels[i]))
			continue;
		if (c->subscriber_secret[0] == '\0') {
			snprintf(why, whylen, "private channel %.*s: no "
			    "subscriber_secret is configured",
			    VALID_CHANNEL_MAX, channels[i]);
			return AUTH_DENIED;
		}
		good = expired = 0;
		/* Every token is tried (no early exit), so the time taken
		 * does not say which token nearly matched. */
		for (j = 0; j < nt; j++) {
			if (auth_mac_hex(c, channels[i], t[j].exp, t[j].explen,
			    hex) != 0)
				continue;
			if (!auth_equal(t[j].mac, AUTH_MAC_HEX, hex,
			    AUTH_MAC_HEX))
				continue;
			/* Good until EXPIRY, that second included. */
			if ((long long)now <= t[j].expiry)
				good = 1;
			else
				expired = 1;
		}
		if (good)
			continue;
		if (expired) {
			snprintf(why, whylen, "private channel %.*s: the "
			    "token has expired", VALID_CHANNEL_MAX,
			    channels[i]);
			return AUTH_EXPIRED;
		}
		snprintf(why, whylen, "private channel %.*s needs a valid "
		    "subscriber token", VALID_CHANNEL_MAX, channels[i]);
		return AUTH_DENIED;
	}
	return AUTH_OK;
}
