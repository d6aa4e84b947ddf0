/*
 * Unit tests of lib/thread.c: work registered for a thread's end runs
 * when that thread ends, newest first, once, and only in that thread.
 */
#include "config.h"

#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "thread.h"

#define T_MAX 8

static char t_order[T_MAX + 1];  /* the letters of the calls, in order */
static int t_n;
static pthread_mutex_t t_mu = PTHREAD_MUTEX_INITIALIZER;

static __thread struct thread_end t_a, t_b;

static void
t_note(void *arg)
{
	pthread_mutex_lock(&t_mu);
	if (t_n < T_MAX)
		t_order[t_n++] = *(const char *)arg;
	pthread_mutex_unlock(&t_mu);
}

static void
t_reset(void)
{
	memset(t_order, 0, sizeof(t_order));
	t_n = 0;
}

/* A thread registering a (twice) and then b, if asked. */
static void *
t_run(void *arg)
{
	static const char a = 'a', b = 'b';
	int both = arg != NULL, before;

	pthread_mutex_lock(&t_mu);
	before = t_n;
	pthread_mutex_unlock(&t_mu);
	ck_assert_int_eq(thread_at_end(&t_a, t_note, (void *)&a), 0);
	ck_assert_int_eq(thread_at_end(&t_a, t_note, (void *)&a), 0);
	if (both)
		ck_assert_int_eq(thread_at_end(&t_b, t_note, (void *)&b), 0);
	/* Nothing runs before the end. */
	pthread_mutex_lock(&t_mu);
	ck_assert_int_eq(t_n, before);
	pthread_mutex_unlock(&t_mu);
	return NULL;
}

static void
t_thread(int both)
{
	pthread_t t;

	ck_assert_int_eq(pthread_create(&t, NULL, t_run,
	    both ? (void *)1 : NULL), 0);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
}

START_TEST(newest_first_once)
{
	t_reset();
	t_thread(1);
	ck_assert_str_eq(t_order, "ba");
}
END_TEST

/* Each thread's registrations are its own: a second thread after the
 * first gets its own calls. */
START_TEST(per_thread)
{
	t_reset();
	t_thread(0);
	t_thread(1);
	ck_assert_str_eq(t_order, "aba");
}
END_TEST

static Suite *
thread_suite(void)
{
	Suite *s = suite_create("thread");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, newest_first_once);
	tcase_add_test(tc, per_thread);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(thread_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
