/* Unit tests of lib/conf.c: defaults, the file format, $PUSHCGI_DB. */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"

static char path[64];

/* Write text to a fresh temporary file named in path. */
static void
write_conf(const char *text)
{
	FILE *f;
	int fd;

	snprintf(path, sizeof(path), "/tmp/pushcgi-conf-XXXXXX");
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	f = fdopen(fd, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

static void
teardown(void)
{
	if (path[0] != '\0')
		unlink(path);
	path[0] = '\0';
	unsetenv("PUSHCGI_CONF");
	unsetenv("PUSHCGI_DB");
}

START_TEST(defaults)
{
	struct conf c;
	char err[256];

	setenv("PUSHCGI_CONF", "", 1);
	ck_assert_int_eq(conf_load(&c, err, sizeof(err)), 0);
	ck_assert_int_eq(c.heartbeat, 20);
	ck_assert_int_eq(c.poll_timeout, 25);
	ck_assert_int_eq(c.max_data, 1 << 20);
	ck_assert_int_eq(c.ntokens, 0);
	ck_assert_int_eq(c.trust_remote_user, 0);
	ck_assert_str_eq(c.db, conf_default_db());
}
END_TEST

START_TEST(file_and_env)
{
	struct conf c;
	char err[256];

	write_conf("# comment\n"
	    "db = /srv/push.db\n"
	    "  heartbeat=5   # trailing comment\n"
	    "retain_count = 50\n"
	    "publish_token = s3cret\n"
	    "publish_token = other\n"
	    "trust_remote_user = yes\n"
	    "synchronous = full\n"
	    "cors_origin = https://example.org\n"
	    "private_channel = admin\n");
	setenv("PUSHCGI_CONF", path, 1);
	ck_assert_int_eq(conf_load(&c, err, sizeof(err)), 0);
	ck_assert_str_eq(c.db, "/srv/push.db");
	ck_assert_int_eq(c.heartbeat, 5);
	ck_assert_int_eq(c.retain_count, 50);
	ck_assert_int_eq(c.ntokens, 2);
	ck_assert_str_eq(c.tokens[1], "other");
	ck_assert_int_eq(c.trust_remote_user, 1);
	ck_assert_int_eq(c.synchronous_full, 1);
	ck_assert_str_eq(c.origins[0], "https://example.org");
	ck_assert_str_eq(c.private_prefix[0], "admin");
	ck_assert_str_eq(c.path, path);
	setenv("PUSHCGI_DB", "/tmp/other.db", 1);
	ck_assert_int_eq(conf_load(&c, err, sizeof(err)), 0);
	ck_assert_str_eq(c.db, "/tmp/other.db");
}
END_TEST

START_TEST(errors_name_the_line)
{
	static const char *bad[] = {
		"publish_tokn = x\n",
		"heartbeat = 0\n",
		"heartbeat = 5s\n",
		"max_data = 99999999999\n",
		"just words\n",
		"publish_token = two words\n",
		"synchronous = sometimes\n",
		"private_channel = .x\n",
	};
	struct conf c;
	char err[256];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_conf(bad[i]);
		setenv("PUSHCGI_CONF", path, 1);
		ck_assert_int_eq(conf_load(&c, err, sizeof(err)), -1);
		ck_assert_msg(strstr(err, ":1: ") != NULL, "%s", err);
		unlink(path);
	}
	setenv("PUSHCGI_CONF", "/nonexistent/pushcgi.conf", 1);
	ck_assert_int_eq(conf_load(&c, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "/nonexistent/pushcgi.conf"));
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("conf");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, defaults);
	tcase_add_test(tc, file_and_env);
	tcase_add_test(tc, errors_name_the_line);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
