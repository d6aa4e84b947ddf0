/*
 * Unit tests of lib/page.c: what push-poll's format=page makes of each
 * kind of message, escaping, the raw URL of an image.
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "page.h"

static struct http_out o;

static void
setup(void)
{
	http_out_mem(&o);
}

static void
teardown(void)
{
	http_out_free(&o);
}

/* The memory output as a string (no NULs in these tests). */
static const char *
out_str(void)
{
	http_put(&o, "", 1);
	o.used--;
	return o.buf;
}

static struct store_msg
msg(int64_t id, const char *type, const char *data)
{
	struct store_msg m;

	m.id = id;
	m.channel = "news";
	m.time_ms = 1700000000123LL;   /* 2023-11-14 22:13:20 UTC */
	m.type = type;
	m.event = NULL;
	m.data = data;
	m.len = strlen(data);
	return m;
}

START_TEST(kinds)
{
	ck_assert_int_eq(page_kind("text/html"), PAGE_HTML);
	ck_assert_int_eq(page_kind("TEXT/HTML; charset=utf-8"), PAGE_HTML);
	ck_assert_int_eq(page_kind("text/htmlx"), PAGE_TEXT);
	ck_assert_int_eq(page_kind("image/png"), PAGE_IMAGE);
	ck_assert_int_eq(page_kind("image/"), PAGE_OTHER);
	ck_assert_int_eq(page_kind("text/plain; charset=utf-8"), PAGE_TEXT);
	ck_assert_int_eq(page_kind("application/json"), PAGE_TEXT);
	ck_assert_int_eq(page_kind("application/ld+json"), PAGE_TEXT);
	ck_assert_int_eq(page_kind("application/atom+xml"), PAGE_TEXT);
	ck_assert_int_eq(page_kind("application/octet-stream"), PAGE_OTHER);
	ck_assert_int_eq(page_kind("application/jsonx"), PAGE_OTHER);
	ck_assert_int_eq(page_kind(NULL), PAGE_OTHER);
}
END_TEST

START_TEST(escape)
{
	page_escape(&o, "a<b>&\"c'd", 9);
	ck_assert_str_eq(out_str(), "a&lt;b&gt;&amp;&quot;c&#39;d");
}
END_TEST

START_TEST(text_escaped)
{
	struct page_ask a = { "news", NULL, 7 };
	struct store_msg m = msg(42, "text/plain",
	    "<script>alert(1)</script> & done");
	const char *s;

	ck_assert_int_eq(page_write(&o, &a, &m), 0);
	s = out_str();
	ck_assert_ptr_nonnull(strstr(s, "<!DOCTYPE html>"));
	ck_assert_ptr_nonnull(strstr(s, "<pre>&lt;script&gt;alert(1)&lt;/"
	    "script&gt; &amp; done</pre>"));
	ck_assert_ptr_null(strstr(s, "<script"));
	ck_assert_ptr_nonnull(strstr(s, "Message <span id=\"push-id\">42"
	    "</span> on news, <time>2023-11-14 22:13:20 UTC</time>"));
	ck_assert_ptr_nonnull(strstr(s, "reloads every 7 s"));
	ck_assert_ptr_nonnull(strstr(s, "</html>\n"));
}
END_TEST

START_TEST(html_as_is)
{
	struct page_ask a = { "news", NULL, 5 };
	struct store_msg m = msg(3, "text/html; charset=utf-8",
	    "<div style=\"background:red\">x</div>");

	ck_assert_int_eq(page_write(&o, &a, &m), 0);
	ck_assert_ptr_nonnull(strstr(out_str(), "<div id=\"push-msg\">"
	    "<div style=\"background:red\">x</div></div>"));
}
END_TEST

START_TEST(image_url)
{
	struct page_ask a = { "news,cams", "1900000000.ab&c", 5 };
	struct store_msg m = msg(1000, "image/png", "\x89PNG");

	ck_assert_int_eq(page_write(&o, &a, &m), 0);
	ck_assert_ptr_nonnull(strstr(out_str(), "<img src=\"?channel="
	    "news%2Ccams&amp;since=999&amp;format=raw&amp;timeout=0&amp;"
	    "token=1900000000.ab%26c\" alt=\"image/png\">"));
}
END_TEST

START_TEST(binary_and_bad_text)
{
	struct page_ask a = { "news", NULL, 5 };
	struct store_msg m = msg(8, "application/octet-stream", "\x01\x02");
	struct store_msg bad = msg(9, "text/plain", "\xff<x>");
	const char *s;

	ck_assert_int_eq(page_write(&o, &a, &m), 0);
	ck_assert_ptr_nonnull(strstr(out_str(), "<p>2 bytes of application/"
	    "octet-stream: <a href=\"?channel=news&amp;since=7&amp;format="
	    "raw&amp;timeout=0\">"));
	o.used = 0;
	ck_assert_int_eq(page_write(&o, &a, &bad), 0);
	s = out_str();
	ck_assert_ptr_nonnull(strstr(s, "<p>4 bytes of text/plain"));
	ck_assert_ptr_null(strstr(s, "<x>"));
}
END_TEST

START_TEST(empty)
{
	struct page_ask a = { "a<b", NULL, 30 };
	const char *s;

	ck_assert_int_eq(page_write(&o, &a, NULL), 0);
	s = out_str();
	ck_assert_ptr_nonnull(strstr(s, "No message on a&lt;b yet; this page "
	    "reloads every 30 s."));
	ck_assert_ptr_null(strstr(s, "push-msg"));
}
END_TEST

static Suite *
page_suite(void)
{
	Suite *s = suite_create("page");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, kinds);
	tcase_add_test(tc, escape);
	tcase_add_test(tc, text_escaped);
	tcase_add_test(tc, html_as_is);
	tcase_add_test(tc, image_url);
	tcase_add_test(tc, binary_and_bad_text);
	tcase_add_test(tc, empty);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(page_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
