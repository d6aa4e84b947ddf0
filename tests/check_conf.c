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

/* conf_parse: the same rules from memory; the last line needs no newline,
 * a NUL byte or an over-long line is refused with its line number. */
START_TEST(parse_memory)
{
	static const char nul[] = "heartbeat = 5\ndb = /a\0x\n";
	char text[CONF_LINE_MAX + 64], err[256];
	struct conf c;
	size_t n;

	conf_defaults(&c);
	ck_assert_int_eq(conf_parse(&c, "# c\r\nheartbeat = 7\r\n"
	    "publish_token = t", 37, "mem", err, sizeof(err)), 0);
	ck_assert_int_eq(c.heartbeat, 7);
	ck_assert_int_eq(c.ntokens, 1);
	ck_assert_str_eq(c.tokens[0], "t");
	ck_assert_str_eq(c.path, "");

	ck_assert_int_eq(conf_parse(&c, nul, sizeof(nul) - 1, "mem", err,
	    sizeof(err)), -1);
	ck_assert_str_eq(err, "mem:2: NUL byte");
	ck_assert_int_eq(conf_parse(&c, "heartbeat = 0", 13, NULL, err,
	    sizeof(err)), -1);
	ck_assert_msg(strncmp(err, "(config):1: ", 12) == 0, "%s", err);

	/* CONF_LINE_MAX bytes before the newline pass, one more does not. */
	n = (size_t)snprintf(text, sizeof(text), "db = /");
	memset(text + n, 'a', CONF_LINE_MAX - n);
	text[CONF_LINE_MAX] = '\n';
	ck_assert_int_eq(conf_parse(&c, text, CONF_LINE_MAX + 1, "mem", err,
	    sizeof(err)), 0);
	ck_assert_uint_eq(strlen(c.db), CONF_LINE_MAX - 5);
	text[CONF_LINE_MAX] = 'a';
	text[CONF_LINE_MAX + 1] = '\n';
	ck_assert_int_eq(conf_parse(&c, text, CONF_LINE_MAX + 2, "mem", err,
	    sizeof(err)), -1);
	ck_assert_msg(strstr(err, "mem:1: line longer") != NULL, "%s", err);
}
END_TEST

/* The file loader runs on conf_parse: a NUL in a file is refused too,
 * and the file's size is capped. */
START_TEST(file_nul_and_cap)
{
	struct conf c;
	char err[256];
	FILE *f;
	long i;

	write_conf("heartbeat = 5\n");
	f = fopen(path, "a");
	ck_assert_ptr_nonnull(f);
	fputs("db = /x", f);
	fputc('\0', f);
	fputs("\n", f);
	fclose(f);
	conf_defaults(&c);
	ck_assert_int_eq(conf_read_file(&c, path, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, ":2: NUL byte") != NULL, "%s", err);
	unlink(path);

	write_conf("");
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	for (i = 0; i <= CONF_FILE_MAX / 16; i++)
		fputs("# padding  line\n", f);
	fclose(f);
	ck_assert_int_eq(conf_read_file(&c, path, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "longer than") != NULL, "%s", err);
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
	tcase_add_test(tc, parse_memory);
	tcase_add_test(tc, file_nul_and_cap);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
