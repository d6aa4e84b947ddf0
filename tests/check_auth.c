/* Unit tests of lib/auth.c: publisher tokens, trusted users, subscriber
 * tokens. */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "conf.h"

/* A known answer, computed independently of this code with Python's hmac
 * module: HMAC-SHA256("k3y-for-tests",
 * "pushcgi-sub:private.room:1700000000"). */
#define KA_SECRET  "k3y-for-tests"
#define KA_CHANNEL "private.room"
#define KA_EXPIRY  1700000000
#define KA_TOKEN   "1700000000." \
    "1c8bca937990fb723b0d0d939e82f755a8ac9b621d2363bc5061c796a7b97c16"

#define NOW        ((time_t)1700000000 - 100)
#define WHY_MAX    200  /* bytes of a reason */

static struct conf cf;

static void
setup_conf(void)
{
	conf_defaults(&cf);
	snprintf(cf.subscriber_secret, sizeof(cf.subscriber_secret), "%s",
	    KA_SECRET);
	cf.nprivate = 2;
	snprintf(cf.private_prefix[0], sizeof(cf.private_prefix[0]),
	    "private.");
	snprintf(cf.private_prefix[1], sizeof(cf.private_prefix[1]), "user-");
}

/* A token for ch good until expiry, made with auth_sub_token. */
static void
token(const char *ch, time_t expiry, char *out)
{
	ck_assert_int_eq(auth_sub_token(&cf, ch, expiry, out,
	    AUTH_SUB_TOKEN_MAX + 1), 0);
}

START_TEST(equal)
{
	ck_assert(auth_equal("abc", 3, "abc", 3));
	ck_assert(!auth_equal("abc", 3, "abd", 3));
	ck_assert(!auth_equal("abc", 3, "xbc", 3));
	ck_assert(!auth_equal("abc", 3, "abcd", 4));
	ck_assert(!auth_equal("abcd", 4, "abc", 3));
	ck_assert(!auth_equal("abc", 3, "", 0));
	ck_assert(!auth_equal("", 0, "abc", 3));
	ck_assert(auth_equal("", 0, "", 0));
	/* A longer string whose prefix repeats the shorter one. */
	ck_assert(!auth_equal("abcabc", 6, "abc", 3));
	ck_assert(auth_equal("a\0b", 3, "a\0b", 3));
	ck_assert(!auth_equal("a\0b", 3, "a\0c", 3));
}
END_TEST

START_TEST(publisher)
{
	/* No tokens, no trust: closed. */
	ck_assert_int_eq(auth_publisher(&cf, NULL, NULL), AUTH_DENIED);
	ck_assert_int_eq(auth_publisher(&cf, "", NULL), AUTH_DENIED);
	ck_assert_int_eq(auth_publisher(&cf, "anything", NULL), AUTH_DENIED);
	ck_assert_int_eq(auth_publisher(&cf, NULL, "alice"), AUTH_DENIED);

	cf.ntokens = 1;
	snprintf(cf.tokens[0], sizeof(cf.tokens[0]), "s3cret-one");
	ck_assert_int_eq(auth_publisher(&cf, "s3cret-one", NULL), AUTH_OK);
	ck_assert_int_eq(auth_publisher(&cf, "s3cret-on", NULL), AUTH_DENIED);
	ck_assert_int_eq(auth_publisher(&cf, "s3cret-one!", NULL),
	    AUTH_DENIED);
	ck_assert_int_eq(auth_publisher(&cf, "S3CRET-ONE", NULL),
	    AUTH_DENIED);
	ck_assert_int_eq(auth_publisher(&cf, "", NULL), AUTH_DENIED);
	ck_assert_int_eq(auth_publisher(&cf, NULL, NULL), AUTH_DENIED);

	/* Several tokens: each one opens, nothing else does. */
	cf.ntokens = 3;
	snprintf(cf.tokens[1], sizeof(cf.tokens[1]), "second");
	snprintf(cf.tokens[2], sizeof(cf.tokens[2]), "third-token");
	ck_assert_int_eq(auth_publisher(&cf, "s3cret-one", NULL), AUTH_OK);
	ck_assert_int_eq(auth_publisher(&cf, "second", NULL), AUTH_OK);
	ck_assert_int_eq(auth_publisher(&cf, "third-token", NULL), AUTH_OK);
	ck_assert_int_eq(auth_publisher(&cf, "secondthird-token", NULL),
	    AUTH_DENIED);
	ck_assert_int_eq(auth_publisher(&cf, "fourth", NULL), AUTH_DENIED);

	/* REMOTE_USER: only when trusted, only when not empty. */
	ck_assert_int_eq(auth_publisher(&cf, NULL, "alice"), AUTH_DENIED);
	cf.trust_remote_user = 1;
	ck_assert_int_eq(auth_publisher(&cf, NULL, "alice"), AUTH_OK);
	ck_assert_int_eq(auth_publisher(&cf, NULL, ""), AUTH_DENIED);
	ck_assert_int_eq(auth_publisher(&cf, NULL, NULL), AUTH_DENIED);
	ck_assert_int_eq(auth_publisher(&cf, "wrong", NULL), AUTH_DENIED);
	cf.ntokens = 0;
	ck_assert_int_eq(auth_publisher(&cf, NULL, "bob"), AUTH_OK);
	ck_assert_int_eq(auth_publisher(&cf, "s3cret-one", NULL),
	    AUTH_DENIED);
}
END_TEST

START_TEST(bearer)
{
	ck_assert_str_eq(auth_bearer("Bearer abc"), "abc");
	ck_assert_str_eq(auth_bearer("bearer   abc"), "abc");
	ck_assert_str_eq(auth_bearer("BEARER x.y"), "x.y");
	ck_assert_ptr_null(auth_bearer(NULL));
	ck_assert_ptr_null(auth_bearer("Basic YWxpY2U6cHc="));
	ck_assert_ptr_null(auth_bearer("Bearer"));
	ck_assert_ptr_null(auth_bearer("Bearer "));
	ck_assert_ptr_null(auth_bearer("Bearerabc"));
	ck_assert_ptr_null(auth_bearer(""));
}
END_TEST

START_TEST(known_answer)
{
	char out[AUTH_SUB_TOKEN_MAX + 1];

	ck_assert_int_eq(auth_sub_token(&cf, KA_CHANNEL, KA_EXPIRY, out,
	    sizeof(out)), 0);
	ck_assert_str_eq(out, KA_TOKEN);
	/* The same token, checked, right up to its expiry second. */
	ck_assert_int_eq(auth_subscriber(&cf, (const char *[]){ KA_CHANNEL },
	    1, KA_TOKEN, KA_EXPIRY, NULL, 0), AUTH_OK);
}
END_TEST

START_TEST(sub_token_make)
{
	char out[AUTH_SUB_TOKEN_MAX + 1], small[20];

	ck_assert_int_eq(auth_sub_token(&cf, ".bad", 10, out, sizeof(out)),
	    -1);
	ck_assert_int_eq(auth_sub_token(&cf, "a b", 10, out, sizeof(out)),
	    -1);
	ck_assert_int_eq(auth_sub_token(&cf, "ok", -1, out, sizeof(out)), -1);
	ck_assert_int_eq(auth_sub_token(&cf, "ok", (time_t)1000000000000LL,
	    out, sizeof(out)), -1);
	ck_assert_int_eq(auth_sub_token(&cf, "ok", 10, small, sizeof(small)),
	    -1);
	ck_assert_int_eq(auth_sub_token(&cf, "ok", (time_t)999999999999LL,
	    out, sizeof(out)), 0);
	ck_assert_uint_eq(strlen(out), AUTH_SUB_TOKEN_MAX);
	cf.subscriber_secret[0] = '\0';
	ck_assert_int_eq(auth_sub_token(&cf, "ok", 10, out, sizeof(out)), -1);
}
END_TEST

START_TEST(subscriber)
{
	const char *room[] = { "private.room" };
	char t[AUTH_SUB_TOKEN_MAX + 1], why[WHY_MAX], bad[200];

	token("private.room", NOW + 60, t);
	ck_assert_int_eq(auth_subscriber(&cf, room, 1, t, NOW, why,
	    sizeof(why)), AUTH_OK);
	/* No token, empty token=. */
	ck_assert_int_eq(auth_subscriber(&cf, room, 1, NULL, NOW, why,
	    sizeof(why)), AUTH_DENIED);
	ck_assert_ptr_nonnull(strstr(why, "private.room"));
	ck_assert_int_eq(auth_subscriber(&cf, room, 1, "", NOW, why,
	    sizeof(why)), AUTH_DENIED);
	/* Expired: one second past. */
	ck_assert_int_eq(auth_subscriber(&cf, room, 1, t, NOW + 61, why,
	    sizeof(why)), AUTH_EXPIRED);
	ck_assert_ptr_nonnull(strstr(why, "expired"));
	ck_assert_int_eq(auth_subscriber(&cf, room, 1, t, NOW + 60, why,
	    sizeof(why)), AUTH_OK);
	/* A wrong MAC: one hex digit changed. */
	snprintf(bad, sizeof(bad), "%s", t);
	bad[strlen(bad) - 1] = bad[strlen(bad) - 1] == '0' ? '1' : '0';
	ck_assert_int_eq(auth_subscriber(&cf, room, 1, bad, NOW, why,
	    sizeof(why)), AUTH_DENIED);
	/* A later expiry with the old MAC does not pass. */
	snprintf(bad, sizeof(bad), "%lld%s", (long long)NOW + 9999,
	    strchr(t, '.'));
	ck_assert_int_eq(auth_subscriber(&cf, room, 1, bad, NOW, why,
	    sizeof(why)), AUTH_DENIED);
	/* Another channel's token. */
	token("private.other", NOW + 60, t);
	ck_assert_int_eq(auth_subscriber(&cf, room, 1, t, NOW, why,
	    sizeof(why)), AUTH_DENIED);
	/* Another secret's token. */
	token("private.room", NOW + 60, t);
	snprintf(cf.subscriber_secret, sizeof(cf.subscriber_secret), "other");
	ck_assert_int_eq(auth_subscriber(&cf, room, 1, t, NOW, why,
	    sizeof(why)), AUTH_DENIED);
}
END_TEST

START_TEST(malformed)
{
	const char *room[] = { "private.room" };
	const char *pub[] = { "news" };
	char t[AUTH_SUB_TOKEN_MAX + 1], bad[AUTH_TOKENS_MAX + 200], why[WHY_MAX];
	int i;

	token("private.room", NOW + 60, t);
	static const char *const cases[] = {
		"x", ".", "123", "123.", ".abc",
		"123.abc",                                  /* short MAC */
		"1234567890123.1c8bca937990fb723b0d0d939e82f755a8ac9b621d2363bc5061c796a7b97c16",
		"1700000000.1C8BCA937990FB723B0D0D939E82F755A8AC9B621D2363BC5061C796A7B97C16",
		"1700000000.1c8bca937990fb723b0d0d939e82f755a8ac9b621d2363bc5061c796a7b97c166",
		"1700000000.1c8bca937990fb723b0d0d939e82f755a8ac9b621d2363bc5061c796a7b97c1g",
		"-1.1c8bca937990fb723b0d0d939e82f755a8ac9b621d2363bc5061c796a7b97c16",
	};
	for (i = 0; i < (int)(sizeof(cases) / sizeof(cases[0])); i++)
		ck_assert_msg(auth_subscriber(&cf, room, 1, cases[i], NOW, why,
		    sizeof(why)) == AUTH_BAD, "case %d", i);
	/* Separators: no empty items, no trailing comma, no spaces. */
	snprintf(bad, sizeof(bad), "%s,", t);
	ck_assert_int_eq(auth_subscriber(&cf, room, 1, bad, NOW, why,
	    sizeof(why)), AUTH_BAD);
	snprintf(bad, sizeof(bad), ",%s", t);
	ck_assert_int_eq(auth_subscriber(&cf, room, 1, bad, NOW, why,
	    sizeof(why)), AUTH_BAD);
	snprintf(bad, sizeof(bad), "%s,,%s", t, t);
	ck_assert_int_eq(auth_subscriber(&cf, room, 1, bad, NOW, why,
	    sizeof(why)), AUTH_BAD);
	snprintf(bad, sizeof(bad), "%s, %s", t, t);
	ck_assert_int_eq(auth_subscriber(&cf, room, 1, bad, NOW, why,
	    sizeof(why)), AUTH_BAD);
	/* More tokens than channels a request may name. */
	bad[0] = '\0';
	for (i = 0; i <= VALID_CHANNELS_MAX; i++) {
		if (i > 0)
			strcat(bad, ",");
		strcat(bad, t);
	}
	ck_assert_int_eq(auth_subscriber(&cf, room, 1, bad, NOW, why,
	    sizeof(why)), AUTH_BAD);
	/* Malformed is malformed on a public channel too. */
	ck_assert_int_eq(auth_subscriber(&cf, pub, 1, "junk", NOW, why,
	    sizeof(why)), AUTH_BAD);
}
END_TEST

START_TEST(several)
{
	const char *chans[] = { "news", "private.a", "user-7", "private.b" };
	char ta[AUTH_SUB_TOKEN_MAX + 1], t7[AUTH_SUB_TOKEN_MAX + 1];
	char tb[AUTH_SUB_TOKEN_MAX + 1], old[AUTH_SUB_TOKEN_MAX + 1];
	char list[AUTH_TOKENS_MAX + 1], why[WHY_MAX];

	token("private.a", NOW + 10, ta);
	token("user-7", NOW + 10, t7);
	token("private.b", NOW + 10, tb);
	token("private.b", NOW - 10, old);

	/* Public channels need nothing. */
	ck_assert_int_eq(auth_subscriber(&cf, chans, 1, NULL, NOW, why,
	    sizeof(why)), AUTH_OK);
	ck_assert(!auth_private(&cf, "news"));
	ck_assert(!auth_private(&cf, "privatexyz"));
	ck_assert(auth_private(&cf, "private.a"));
	ck_assert(auth_private(&cf, "user-7"));

	/* Every private channel covered, in any order. */
	snprintf(list, sizeof(list), "%s,%s,%s", tb, ta, t7);
	ck_assert_int_eq(auth_subscriber(&cf, chans, 4, list, NOW, why,
	    sizeof(why)), AUTH_OK);
	/* One missing: refused, naming it. */
	snprintf(list, sizeof(list), "%s,%s", ta, t7);
	ck_assert_int_eq(auth_subscriber(&cf, chans, 4, list, NOW, why,
	    sizeof(why)), AUTH_DENIED);
	ck_assert_ptr_nonnull(strstr(why, "private.b"));
	/* One expired, beside the good ones. */
	snprintf(list, sizeof(list), "%s,%s,%s", ta, t7, old);
	ck_assert_int_eq(auth_subscriber(&cf, chans, 4, list, NOW, why,
	    sizeof(why)), AUTH_EXPIRED);
	ck_assert_ptr_nonnull(strstr(why, "private.b"));
	/* An expired one and a fresh one for the same channel: fine. */
	snprintf(list, sizeof(list), "%s,%s,%s,%s", old, ta, t7, tb);
	ck_assert_int_eq(auth_subscriber(&cf, chans, 4, list, NOW, why,
	    sizeof(why)), AUTH_OK);
	/* Tokens of other channels do not stand in. */
	snprintf(list, sizeof(list), "%s,%s,%s", ta, ta, t7);
	ck_assert_int_eq(auth_subscriber(&cf, chans, 4, list, NOW, why,
	    sizeof(why)), AUTH_DENIED);
}
END_TEST

START_TEST(no_secret)
{
	const char *room[] = { "private.room" };
	const char *pub[] = { "news" };
	char why[WHY_MAX];

	cf.subscriber_secret[0] = '\0';
	ck_assert_int_eq(auth_subscriber(&cf, room, 1, KA_TOKEN, NOW, why,
	    sizeof(why)), AUTH_DENIED);
	ck_assert_ptr_nonnull(strstr(why, "subscriber_secret"));
	ck_assert_int_eq(auth_subscriber(&cf, pub, 1, NULL, NOW, why,
	    sizeof(why)), AUTH_OK);
	/* No private prefixes: nothing is private. */
	cf.nprivate = 0;
	ck_assert_int_eq(auth_subscriber(&cf, room, 1, NULL, NOW, why,
	    sizeof(why)), AUTH_OK);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("auth");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup_conf, NULL);
	tcase_add_test(tc, equal);
	tcase_add_test(tc, publisher);
	tcase_add_test(tc, bearer);
	tcase_add_test(tc, known_answer);
	tcase_add_test(tc, sub_token_make);
	tcase_add_test(tc, subscriber);
	tcase_add_test(tc, malformed);
	tcase_add_test(tc, several);
	tcase_add_test(tc, no_secret);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
