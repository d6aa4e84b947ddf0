/*
 * Unit tests of lib/http.c's request body reading in CGI mode: where the
 * body ends (CONTENT_LENGTH, or EOF for a chunked request without one),
 * the caps, and that a refused body is read to its end first (so that
 * the web server passes the answer on).  The body comes from a pipe
 * that a child process fills.  And http_cors: whether it says an Origin
 * is allowed, and the headers it adds.  And http_subscriber: the HTTP
 * status of a subscriber's token= parameter.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "elog.h"
#include "http.h"

#define T_MIB (1024 * 1024)

static struct http_req req;
static pid_t writer;
static size_t written;       /* what the writer managed to write */
static int done_fd;          /* the writer's count comes back here */

/* The environment of one request. */
static void
env(const char *cl, const char *te)
{
	unsetenv("CONTENT_LENGTH");
	unsetenv("HTTP_TRANSFER_ENCODING");
	if (cl != NULL)
		setenv("CONTENT_LENGTH", cl, 1);
	if (te != NULL)
		setenv("HTTP_TRANSFER_ENCODING", te, 1);
	setenv("REQUEST_METHOD", "POST", 1);
}

/*
 * Set up req on a pipe that a child fills with n bytes (byte i is i %
 * 256) and then closes: the body, as a CGI program gets it on stdin.
 */
static void
body(size_t n)
{
	int p[2], c[2];

	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(pipe(c), 0);
	if ((writer = fork()) == 0) {
		unsigned char buf[4096];
		size_t off = 0, k, i;
		ssize_t w;

		close(p[0]);
		close(c[0]);
		signal(SIGPIPE, SIG_IGN);
		while (off < n) {
			k = n - off < sizeof(buf) ? n - off : sizeof(buf);
			for (i = 0; i < k; i++)
				buf[i] = (unsigned char)((off + i) % 256);
			if ((w = write(p[1], buf, k)) <= 0)
				break;
			off += (size_t)w;
		}
		close(p[1]);
		(void)write(c[1], &off, sizeof(off));
		_exit(0);
	}
	ck_assert_int_gt(writer, 0);
	close(p[1]);
	close(c[1]);
	done_fd = c[0];
	http_init_cgi(&req, "check_http");
	req.in_fd = p[0];
	req.err_fd = open("/dev/null", O_WRONLY);
}

/* Wait for the writer: how much of its body it could write. */
static size_t
finish(void)
{
	int status;

	close(req.in_fd);
	written = 0;
	ck_assert_int_eq(read(done_fd, &written, sizeof(written)),
	    (ssize_t)sizeof(written));
	close(done_fd);
	ck_assert_int_eq(waitpid(writer, &status, 0), writer);
	close(req.err_fd);
	http_release(&req);
	return written;
}

/* 1 if data[0..n) is the writer's pattern. */
static int
pattern(const char *data, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((unsigned char)data[i] != i % 256)
			return 0;
	return 1;
}

START_TEST(content_length)
{
	char *data;
	size_t len;

	env("300", NULL);
	body(300);
	ck_assert_int_eq(http_read_body(&req, 1000, &data, &len), 0);
	ck_assert_uint_eq(len, 300);
	ck_assert(pattern(data, len));
	free(data);
	finish();
}
END_TEST

/* Apache's mod_cgid: a chunked body comes without CONTENT_LENGTH and
 * ends at EOF.  Every byte value, exactly max bytes. */
START_TEST(chunked_to_eof)
{
	char *data;
	size_t len;

	env(NULL, "chunked");
	body(T_MIB);
	ck_assert_int_eq(http_read_body(&req, T_MIB, &data, &len), 0);
	ck_assert_uint_eq(len, T_MIB);
	ck_assert(pattern(data, len));
	free(data);
	finish();
	env(NULL, "gzip, Chunked ");
	body(256);
	ck_assert_int_eq(http_read_body(&req, 1000, &data, &len), 0);
	ck_assert_uint_eq(len, 256);
	ck_assert(pattern(data, len));
	free(data);
	finish();
}
END_TEST

/* Neither CONTENT_LENGTH nor Transfer-Encoding: no body, stdin unread. */
START_TEST(no_body)
{
	char *data;
	size_t len = 99;

	env(NULL, NULL);
	body(0);
	ck_assert_int_eq(http_read_body(&req, 1000, &data, &len), 0);
	ck_assert_uint_eq(len, 0);
	ck_assert_ptr_nonnull(data);    /* an empty string, as always */
	ck_assert_int_eq(data[0], '\0');
	free(data);
	finish();
}
END_TEST

START_TEST(not_chunked_is_411)
{
	char *data;
	size_t len;

	env(NULL, "gzip");
	body(5000);
	ck_assert_int_eq(http_read_body(&req, 1000, &data, &len), -1);
	ck_assert_int_eq(req.fail_status, 411);
	/* The body was taken all the same. */
	ck_assert_uint_eq(finish(), 5000);
}
END_TEST

START_TEST(bad_content_length)
{
	const char *bad[] = { "12a", "-1", "+1", " 1", "123456789012345678901",
	    "99999999999999999999" };
	char *data;
	size_t len, i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		env(bad[i], NULL);
		body(0);
		ck_assert_int_eq(http_read_body(&req, 1000, &data, &len), -1);
		ck_assert_msg(req.fail_status == 400, "%s: %d", bad[i],
		    req.fail_status);
		finish();
	}
}
END_TEST

/* Too large: a 413, after the whole body was read and thrown away. */
START_TEST(too_large_is_read_first)
{
	char *data;
	size_t len;

	env("3000000", NULL);
	body(3000000);
	ck_assert_int_eq(http_read_body(&req, T_MIB, &data, &len), -1);
	ck_assert_int_eq(req.fail_status, 413);
	ck_assert_ptr_nonnull(strstr(req.fail_msg, "larger than 1048576"));
	ck_assert_uint_eq(finish(), 3000000);

	env(NULL, "chunked");
	body(8 * T_MIB);
	ck_assert_int_eq(http_read_body(&req, T_MIB, &data, &len), -1);
	ck_assert_int_eq(req.fail_status, 413);
	ck_assert_uint_eq(finish(), 8 * T_MIB);

	env(NULL, "chunked");
	body(T_MIB + 1);
	ck_assert_int_eq(http_read_body(&req, T_MIB, &data, &len), -1);
	ck_assert_int_eq(req.fail_status, 413);
	ck_assert_uint_eq(finish(), T_MIB + 1);
}
END_TEST

/* A body beyond what is thrown away is not read at all. */
START_TEST(beyond_the_drain_cap)
{
	char cl[32], *data;
	size_t len;

	snprintf(cl, sizeof(cl), "%llu", HTTP_DRAIN_MAX + 1);
	env(cl, NULL);
	body(T_MIB);
	ck_assert_int_eq(http_read_body(&req, T_MIB, &data, &len), -1);
	ck_assert_int_eq(req.fail_status, 413);
	ck_assert_uint_lt(finish(), T_MIB);
}
END_TEST

/* Discarding (a bodiless request's body): up to HTTP_DISCARD_MAX is no
 * failure; more is a 413, read to the end first; a failure recorded
 * before wins and the body is read all the same. */
START_TEST(discard)
{
	char n[32];

	snprintf(n, sizeof(n), "%d", HTTP_DISCARD_MAX);
	env(n, NULL);
	body(HTTP_DISCARD_MAX);
	ck_assert_int_eq(http_read_body(&req, 0, NULL, NULL), 0);
	ck_assert_uint_eq(finish(), HTTP_DISCARD_MAX);

	env(NULL, "chunked");
	body(HTTP_DISCARD_MAX + 1);
	ck_assert_int_eq(http_read_body(&req, 0, NULL, NULL), -1);
	ck_assert_int_eq(req.fail_status, 413);
	ck_assert_uint_eq(finish(), HTTP_DISCARD_MAX + 1);

	env("2000000", NULL);
	body(2000000);
	http_fail(&req, 403, 1, "refused first");
	ck_assert_int_eq(http_read_body(&req, 0, NULL, NULL), -1);
	ck_assert_int_eq(req.fail_status, 403);
	ck_assert_uint_eq(finish(), 2000000);
}
END_TEST

/* A failure answered before the body was read takes the body first. */
START_TEST(answer_reads_the_body)
{
	int out[2];
	char buf[512];
	ssize_t n;

	env("2000000", NULL);
	body(2000000);
	ck_assert_int_eq(pipe(out), 0);
	req.out.fd = out[1];
	http_fail(&req, 405, 2, "only GET");
	http_answer_failure(&req);
	http_flush(&req.out);
	close(out[1]);
	n = read(out[0], buf, sizeof(buf) - 1);
	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
	ck_assert_ptr_nonnull(strstr(buf, "Status: 405"));
	ck_assert_ptr_nonnull(strstr(buf, "\r\n\r\nonly GET\n"));
	close(out[0]);
	ck_assert_uint_eq(finish(), 2000000);
}
END_TEST

/* http_cors on a CGI request from origin (NULL: none), with the
 * cors_origin lines origins[0..n). */
static int
cors(const char *origin, const char *const *origins, int n,
    const char *expose)
{
	struct conf c;
	int i;

	conf_defaults(&c);
	for (i = 0; i < n; i++)
		snprintf(c.origins[i], sizeof(c.origins[i]), "%s", origins[i]);
	c.norigins = n;
	if (origin != NULL)
		setenv("HTTP_ORIGIN", origin, 1);
	else
		unsetenv("HTTP_ORIGIN");
	http_init_cgi(&req, "check_http");
	return http_cors(&req, &c, expose);
}

START_TEST(cors_named_origin)
{
	const char *o[] = { "https://a.example", "https://b.example" };

	ck_assert_int_eq(cors("https://b.example", o, 2, "X-Push-Id"), 1);
	ck_assert_str_eq(req.hdrs, "Access-Control-Allow-Origin: "
	    "https://b.example\r\nVary: Origin\r\n"
	    "Access-Control-Expose-Headers: X-Push-Id\r\n");
	ck_assert_int_eq(cors("https://a.example", o, 2, NULL), 1);
	ck_assert_str_eq(req.hdrs, "Access-Control-Allow-Origin: "
	    "https://a.example\r\nVary: Origin\r\n");
}
END_TEST

START_TEST(cors_any_origin)
{
	const char *o[] = { "https://a.example", "*" };

	ck_assert_int_eq(cors("https://c.example", o, 2, "ETag"), 1);
	ck_assert_str_eq(req.hdrs, "Access-Control-Allow-Origin: *\r\n"
	    "Access-Control-Expose-Headers: ETag\r\n");
}
END_TEST

START_TEST(cors_refused)
{
	const char *o[] = { "https://a.example" };

	/* Not listed, a prefix of a listed one, none, empty: 0, and not a
	 * byte of header. */
	ck_assert_int_eq(cors("https://evil.example", o, 1, "ETag"), 0);
	ck_assert_uint_eq(req.hdrlen, 0);
	ck_assert_int_eq(cors("https://a.exampl", o, 1, "ETag"), 0);
	ck_assert_uint_eq(req.hdrlen, 0);
	ck_assert_int_eq(cors(NULL, o, 1, "ETag"), 0);
	ck_assert_uint_eq(req.hdrlen, 0);
	ck_assert_int_eq(cors("", o, 1, "ETag"), 0);
	ck_assert_uint_eq(req.hdrlen, 0);
	/* No cors_origin line: nothing is allowed. */
	ck_assert_int_eq(cors("https://a.example", o, 0, "ETag"), 0);
	ck_assert_uint_eq(req.hdrlen, 0);
}
END_TEST

START_TEST(cors_allowed_when_headers_do_not_fit)
{
	const char *o[] = { "*" };
	struct conf c;

	ck_assert_int_eq(cors("https://a.example", o, 1, NULL), 1);
	/* A full header buffer: still allowed (a preflight goes by it). */
	conf_defaults(&c);
	memcpy(c.origins[0], "*", 2);
	c.norigins = 1;
	req.hdrlen = sizeof(req.hdrs) - 8;
	ck_assert_int_eq(http_cors(&req, &c, "ETag"), 1);
	ck_assert_uint_eq(req.hdrlen, sizeof(req.hdrs) - 8);
}
END_TEST

/* http_subscriber for channel with the query qs, the private prefix
 * "room-" and a secret configured. */
static int
subscriber(const char *channel, const char *qs, char *why, size_t whylen)
{
	static const char *const allowed[] = { "channel", "token", NULL };
	struct http_params p;
	struct conf c;
	char err[HTTP_REASON_MAX];

	conf_defaults(&c);
	snprintf(c.subscriber_secret, sizeof(c.subscriber_secret), "s3cret");
	c.nprivate = 1;
	snprintf(c.private_prefix[0], sizeof(c.private_prefix[0]), "room-");
	ck_assert_int_eq(http_parse_query(qs, allowed, &p, err, sizeof(err)),
	    0);
	return http_subscriber(&c, &channel, 1, &p, why, whylen);
}

START_TEST(subscriber_statuses)
{
	struct conf c;
	char tok[AUTH_SUB_TOKEN_MAX + 1], qs[2 * AUTH_SUB_TOKEN_MAX];
	char why[HTTP_REASON_MAX];

	conf_defaults(&c);
	snprintf(c.subscriber_secret, sizeof(c.subscriber_secret), "s3cret");
	ck_assert_int_eq(auth_sub_token(&c, "room-1", time(NULL) + 60, tok,
	    sizeof(tok)), 0);
	/* A public channel needs nothing. */
	ck_assert_int_eq(subscriber("lobby", "channel=lobby", why,
	    sizeof(why)), 0);
	/* A private one: a good token, then none, a wrong and an expired
	 * one (403), and a malformed token= (400). */
	snprintf(qs, sizeof(qs), "token=%s", tok);
	ck_assert_int_eq(subscriber("room-1", qs, why, sizeof(why)), 0);
	ck_assert_int_eq(subscriber("room-1", "", why, sizeof(why)), 403);
	ck_assert_str_eq(why, "private channel room-1 needs a valid "
	    "subscriber token");
	ck_assert_int_eq(subscriber("room-2", qs, why, sizeof(why)), 403);
	ck_assert_int_eq(auth_sub_token(&c, "room-1", time(NULL) - 1, tok,
	    sizeof(tok)), 0);
	snprintf(qs, sizeof(qs), "token=%s", tok);
	ck_assert_int_eq(subscriber("room-1", qs, why, sizeof(why)), 403);
	ck_assert_str_eq(why, "private channel room-1: the token has expired");
	ck_assert_int_eq(subscriber("room-1", "token=junk", why, sizeof(why)),
	    400);
	ck_assert_ptr_nonnull(strstr(why, "malformed token="));
}
END_TEST

/* The error log's one line format (elog.h), and http_log writing it to a
 * CGI request's stderr. */
START_TEST(error_log_line)
{
	char line[ELOG_LINE_MAX], want[64], big[2 * ELOG_LINE_MAX];
	struct http_req r;
	size_t k;
	ssize_t n;
	int p[2];

	snprintf(want, sizeof(want), "prog[%ld]: E123 a b\n", (long)getpid());
	k = elog_format(line, sizeof(line), "prog", 123, "a%cb", '\n');
	ck_assert_str_eq(line, want);
	ck_assert_uint_eq(k, strlen(want));
	/* Site 0, a notice: no number. */
	snprintf(want, sizeof(want), "prog[%ld]: moved\n", (long)getpid());
	elog_format(line, sizeof(line), "prog", 0, "moved");
	ck_assert_str_eq(line, want);
	/* Cut at the cap, still one line. */
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	k = elog_format(line, sizeof(line), "prog", 1, "%s", big);
	ck_assert_uint_eq(k, sizeof(line) - 1);
	ck_assert_int_eq(line[k - 1], '\n');
	ck_assert_ptr_eq(strchr(line, '\n'), line + k - 1);

	ck_assert_int_eq(pipe(p), 0);
	http_init_cgi(&r, "prog");
	r.err_fd = p[1];
	http_log(&r, 123, "a%cb", '\n');
	n = read(p[0], line, sizeof(line) - 1);
	ck_assert_int_gt(n, 0);
	line[n] = '\0';
	snprintf(want, sizeof(want), "prog[%ld]: E123 a b\n", (long)getpid());
	ck_assert_str_eq(line, want);
	close(p[0]);
	close(p[1]);
	http_release(&r);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("http");
	TCase *tc = tcase_create("body");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, content_length);
	tcase_add_test(tc, chunked_to_eof);
	tcase_add_test(tc, no_body);
	tcase_add_test(tc, not_chunked_is_411);
	tcase_add_test(tc, bad_content_length);
	tcase_add_test(tc, too_large_is_read_first);
	tcase_add_test(tc, beyond_the_drain_cap);
	tcase_add_test(tc, discard);
	tcase_add_test(tc, answer_reads_the_body);
	tcase_add_test(tc, error_log_line);
	suite_add_tcase(s, tc);
	tc = tcase_create("cors");
	tcase_add_test(tc, cors_named_origin);
	tcase_add_test(tc, cors_any_origin);
	tcase_add_test(tc, cors_refused);
	tcase_add_test(tc, cors_allowed_when_headers_do_not_fit);
	suite_add_tcase(s, tc);
	tc = tcase_create("subscriber");
	tcase_add_test(tc, subscriber_statuses);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
