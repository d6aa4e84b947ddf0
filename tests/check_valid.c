/* Unit tests of the allow-list checks in lib/valid.c. */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "valid.h"

START_TEST(channel_names)
{
	char name[VALID_CHANNEL_MAX + 2];

	ck_assert(valid_channel("news"));
	ck_assert(valid_channel("a"));
	ck_assert(valid_channel("cam-1.jpeg_2"));
	ck_assert(valid_channel("9"));
	ck_assert(!valid_channel(""));
	ck_assert(!valid_channel(NULL));
	ck_assert(!valid_channel(".hidden"));
	ck_assert(!valid_channel("a b"));
	ck_assert(!valid_channel("a/b"));
	ck_assert(!valid_channel("a,b"));
	ck_assert(!valid_channel("caf\xc3\xa9"));
	ck_assert(!valid_channel("x\n"));
	memset(name, 'a', VALID_CHANNEL_MAX);
	name[VALID_CHANNEL_MAX] = '\0';
	ck_assert(valid_channel(name));
	name[VALID_CHANNEL_MAX] = 'a';
	name[VALID_CHANNEL_MAX + 1] = '\0';
	ck_assert(!valid_channel(name));
}
END_TEST

START_TEST(media_types)
{
	char big[VALID_TYPE_MAX + 2];

	ck_assert(valid_type("text/plain"));
	ck_assert(valid_type("text/plain; charset=utf-8"));
	ck_assert(valid_type("image/jpeg"));
	ck_assert(valid_type("application/vnd.api+json"));
	ck_assert(valid_type("text/plain;charset=\"utf-8\""));
	ck_assert(valid_type("multipart/mixed; boundary=\"a b\""));
	ck_assert(!valid_type(""));
	ck_assert(!valid_type("text"));
	ck_assert(!valid_type("text/"));
	ck_assert(!valid_type("/plain"));
	ck_assert(!valid_type("text/plain\r\nX-Evil: 1"));
	ck_assert(!valid_type("text/plain\n"));
	ck_assert(!valid_type("text/plain; charset"));
	ck_assert(!valid_type("text/plain; charset=\"open"));
	ck_assert(!valid_type("text/pl ain"));
	ck_assert(!valid_type("text/plain; a=\"\x01\""));
	/* Printable ASCII only, as the log's schema checks: no tab, not
	 * even where RFC 7230 allows one (found by the valid fuzz target). */
	ck_assert(valid_type("text/plain ; charset=utf-8"));
	ck_assert(!valid_type("text/plain;\tcharset=utf-8"));
	ck_assert(!valid_type("text/plain\t; charset=utf-8"));
	ck_assert(!valid_type("text/plain; a=\"x\ty\""));
	ck_assert(!valid_type("text/plain; a=\"x\\\ty\""));
	memset(big, 'a', sizeof(big));
	big[1] = '/';
	big[VALID_TYPE_MAX] = '\0';
	ck_assert(valid_type(big));
	big[VALID_TYPE_MAX] = 'a';
	big[VALID_TYPE_MAX + 1] = '\0';
	ck_assert(!valid_type(big));
}
END_TEST

START_TEST(events_and_callbacks)
{
	ck_assert(valid_event("update"));
	ck_assert(valid_event("ns:update-2"));
	ck_assert(!valid_event(""));
	ck_assert(!valid_event("two words"));
	ck_assert(!valid_event("x\ny"));
	ck_assert(valid_callback("push"));
	ck_assert(valid_callback("window.app.on_msg$"));
	ck_assert(valid_callback("_a1"));
	ck_assert(!valid_callback("1a"));
	ck_assert(!valid_callback("a..b"));
	ck_assert(!valid_callback("a."));
	ck_assert(!valid_callback(".a"));
	ck_assert(!valid_callback("alert(1)"));
	ck_assert(!valid_callback("a</script>"));
	ck_assert(!valid_callback(""));
}
END_TEST

START_TEST(channel_lists)
{
	char out[VALID_CHANNELS_MAX][VALID_CHANNEL_MAX + 1];
	char many[VALID_CHANNELS_MAX * 4 + 8] = "";
	int i;

	ck_assert_int_eq(valid_channel_list("a,b,c", out, 8), 3);
	ck_assert_str_eq(out[0], "a");
	ck_assert_str_eq(out[2], "c");
	ck_assert_int_eq(valid_channel_list("a,a,b", out, 8), 2);
	ck_assert_int_eq(valid_channel_list("", out, 8), -1);
	ck_assert_int_eq(valid_channel_list("a,,b", out, 8), -1);
	ck_assert_int_eq(valid_channel_list("a,", out, 8), -1);
	ck_assert_int_eq(valid_channel_list("a,.b", out, 8), -1);
	ck_assert_int_eq(valid_channel_list("a,b c", out, 8), -1);
	for (i = 0; i <= VALID_CHANNELS_MAX; i++) {
		char one[8];

		snprintf(one, sizeof(one), "%sc%d", i ? "," : "", i);
		strcat(many, one);
	}
	ck_assert_int_eq(valid_channel_list(many, out, VALID_CHANNELS_MAX),
	    -1);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("valid");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, channel_names);
	tcase_add_test(tc, media_types);
	tcase_add_test(tc, events_and_callbacks);
	tcase_add_test(tc, channel_lists);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
