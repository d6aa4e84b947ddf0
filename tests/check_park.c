/*
 * Unit tests of lib/park.c, the loop of parked FastCGI requests, and of
 * the non-blocking writes it relies on (http.h: http_nowait_*, bodies by
 * reference, remainders).  A request's connection is one end of a Unix
 * socket pair; the test reads the other end as a web server would, as
 * FastCGI records.  Nothing asserts how fast anything is: every wait is
 * bounded by T_WAIT_MS, which only a bug reaches.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <fastcgi.h>

#include "http.h"
#include "mono.h"
#include "park.h"

#define T_WAIT_MS  10000      /* bound of every wait */
#define T_SLICE_MS 2          /* between looks while waiting */
#define T_REQS     4          /* requests one test parks */
#define T_BIG      (300 * 1024) /* more than a socket holds */
#define T_READ     (1 << 20)  /* what a reader keeps */
#define T_ID       7          /* the request id of every record */

/* One parked request, as its owner sees it.  Counters are read by the
 * test thread while the loop writes them: atomics. */
struct t_req {
	struct http_out o;
	int peer;                 /* the web server's end */
	int efd;                  /* its wake descriptor */
	struct park_req *pr;
	int wakes, timers, stops, detaches, releases;
	int wake_answer;          /* what wake returns after its write */
	const char *say;          /* what wake writes (NULL: nothing) */
	const char *big;          /* ... or this, T_BIG bytes, once */
	int rearm;                /* timer: set the next due this often */
	long long every;          /* ... this many ms apart */
	pthread_t release_tid;
};

static struct park *t_park;
static int t_stopfd = -1;
static pthread_t t_loop_tid;
static int t_holds, t_drops;  /* http_nowait_ref's hold and drop calls */
static int t_elsewhere;       /* detach() calls outside the loop */

static int
t_get(int *v)
{
	return __atomic_load_n(v, __ATOMIC_ACQUIRE);
}

static void
t_inc(int *v)
{
	__atomic_add_fetch(v, 1, __ATOMIC_ACQ_REL);
}

/* Wait until *v reaches want. */
static void
t_wait(int *v, int want, const char *what)
{
	long long end = mono_ms() + T_WAIT_MS;

	while (t_get(v) < want) {
		ck_assert_msg(mono_ms() < end, "waited for %s: %d of %d",
		    what, t_get(v), want);
		poll(NULL, 0, T_SLICE_MS);
	}
}

static void
t_hold(void *obj)
{
	(void)obj;
	t_inc(&t_holds);
}

static void
t_drop(void *obj)
{
	(void)obj;
	t_inc(&t_drops);
}

static int
t_wake(struct park_req *pr, void *arg)
{
	struct t_req *q = arg;
	uint64_t junk;
	const char *big;

	(void)pr;
	t_loop_tid = pthread_self();
	if (read(q->efd, &junk, sizeof(junk)) < 0 && errno != EAGAIN)
		return PARK_CLOSE;
	t_inc(&q->wakes);
	big = __atomic_exchange_n(&q->big, NULL, __ATOMIC_ACQ_REL);
	if (big != NULL || q->say != NULL) {
		if (http_nowait_begin(&q->o) != 0)
			return PARK_KEEP;       /* a remainder first */
		if (big != NULL) {
			http_nowait_ref(&q->o, big, T_BIG, q, t_hold, t_drop);
			http_put(&q->o, big, T_BIG);
		} else
			http_puts(&q->o, q->say);
		http_nowait_end(&q->o);
	}
	return q->wake_answer;
}

static int
t_timer(struct park_req *pr, void *arg)
{
	struct t_req *q = arg;

	t_inc(&q->timers);
	if (t_get(&q->timers) < q->rearm)
		park_due(pr, mono_ms() + q->every);
	return PARK_KEEP;
}

static int
t_stop(struct park_req *pr, void *arg)
{
	struct t_req *q = arg;

	(void)pr;
	t_inc(&q->stops);
	if (http_nowait_begin(&q->o) == 0) {
		http_puts(&q->o, "stopped\n");
		http_nowait_end(&q->o);
	}
	return PARK_END;
}

static void
t_detach(void *arg)
{
	struct t_req *q = arg;

	if (!pthread_equal(pthread_self(), t_loop_tid))
		t_inc(&t_elsewhere);
	t_inc(&q->detaches);
}

static void
t_release(void *arg)
{
	struct t_req *q = arg;

	q->release_tid = pthread_self();
	http_out_free(&q->o);
	t_inc(&q->releases);
}

static const struct park_ops t_ops = {
	t_wake, t_timer, t_stop, t_detach, t_release, NULL
};

static struct t_req t_reqs[T_REQS];

static void
setup(void)
{
	t_stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	ck_assert_int_ge(t_stopfd, 0);
	ck_assert_int_eq(park_open(&t_park, t_stopfd, "check"), 0);
	memset(t_reqs, 0, sizeof(t_reqs));
	t_holds = t_drops = t_elsewhere = 0;
}

/* Stop the loop (every request still parked gets stop()) and wait for
 * it to be gone. */
static void
t_stop_all(void)
{
	uint64_t one = 1;

	if (t_park == NULL)
		return;
	ck_assert_int_eq(write(t_stopfd, &one, sizeof(one)), sizeof(one));
	ck_assert_int_eq(park_wait(t_park, mono_ms() + T_WAIT_MS), 1);
	t_park = NULL;
}

static void
teardown(void)
{
	int i;

	t_stop_all();
	for (i = 0; i < T_REQS; i++) {
		if (t_reqs[i].peer > 0)
			close(t_reqs[i].peer);
		if (t_reqs[i].efd > 0)
			close(t_reqs[i].efd);
	}
	close(t_stopfd);
}

/* Park request k on a new socket pair; sndbuf > 0 sets the responder
 * end's send buffer. */
static struct t_req *
t_add(int k, long long due, int sndbuf)
{
	struct t_req *q = &t_reqs[k];
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
	    sv), 0);
	if (sndbuf > 0)
		ck_assert_int_eq(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF,
		    &sndbuf, sizeof(sndbuf)), 0);
	q->peer = sv[1];
	ck_assert_int_ge(q->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), 0);
	memset(&q->o, 0, sizeof(q->o));
	q->o.fd = -1;
	q->o.nw_fd = sv[0];
	q->o.nw_id = T_ID;
	http_out_park(&q->o);
	ck_assert_int_eq(park_add(t_park, sv[0], &q->o, q->efd, due, &t_ops,
	    q, &q->pr), 0);
	return q;
}

/* What the web server's end got: STDOUT content and whether the request
 * ended (END_REQUEST last, then EOF). */
struct t_got {
	char *out;
	size_t n;
	int ended, eof, bad;
};

/* Read the peer until EOF or until want bytes of STDOUT came (and, with
 * end, END_REQUEST), at most T_WAIT_MS. */
static void
t_read(int fd, struct t_got *g, size_t want, int end)
{
	static unsigned char buf[T_READ + 64];
	size_t have = 0, pos = 0, clen, plen;
	long long stop = mono_ms() + T_WAIT_MS;
	struct pollfd pfd;
	ssize_t k;

	memset(g, 0, sizeof(*g));
	g->out = malloc(T_READ);
	ck_assert_ptr_nonnull(g->out);
	while (mono_ms() < stop) {
		if (g->n >= want && (!end || g->ended))
			break;
		pfd.fd = fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, T_SLICE_MS * 10) <= 0)
			continue;
		k = read(fd, buf + have, sizeof(buf) - have);
		if (k <= 0) {
			g->eof = 1;
			break;
		}
		have += (size_t)k;
		while (have - pos >= FCGI_HEADER_LEN) {
			unsigned char *h = buf + pos;

			clen = (size_t)(h[4] << 8 | h[5]);
			plen = h[6];
			if (have - pos < FCGI_HEADER_LEN + clen + plen)
				break;
			if (h[0] != FCGI_VERSION_1 || (h[2] << 8 | h[3]) != T_ID ||
			    g->ended)
				g->bad = 1;
			if (h[1] == FCGI_STDOUT) {
				ck_assert_uint_le(g->n + clen, T_READ);
				memcpy(g->out + g->n, h + FCGI_HEADER_LEN, clen);
				g->n += clen;
			} else if (h[1] == FCGI_END_REQUEST)
				g->ended = 1;
			else
				g->bad = 1;
			pos += FCGI_HEADER_LEN + clen + plen;
		}
		memmove(buf, buf + pos, have - pos);
		have -= pos;
		pos = 0;
	}
}

/* 1. Parked: wake() once at once, then at each wake-up of its
 * descriptor; what it writes arrives as STDOUT records. */
START_TEST(wake_and_write)
{
	struct t_req *q;
	struct t_got g;
	uint64_t one = 1;

	t_reqs[0].say = "hello\n";
	q = t_add(0, -1, 0);
	t_wait(&q->wakes, 1, "the first wake");
	ck_assert_int_eq(write(q->efd, &one, sizeof(one)), sizeof(one));
	t_wait(&q->wakes, 2, "the wake of the descriptor");
	t_read(q->peer, &g, 12, 0);
	ck_assert_int_eq(g.bad, 0);
	ck_assert_uint_eq(g.n, 12);
	ck_assert_int_eq(memcmp(g.out, "hello\nhello\n", 12), 0);
	ck_assert_int_eq(park_count(t_park), 1);
	free(g.out);
}
END_TEST

/* 2. Timers: due times in order, re-armed by the owner. */
START_TEST(timers)
{
	struct t_req *a, *b;

	t_reqs[0].rearm = 3;
	t_reqs[0].every = 20;
	t_reqs[1].rearm = 1;
	a = t_add(0, mono_ms() + 30, 0);
	b = t_add(1, mono_ms() + 10, 0);
	t_wait(&b->timers, 1, "b's timer");
	t_wait(&a->timers, 3, "a's three timers");
	poll(NULL, 0, 100);
	ck_assert_int_eq(t_get(&a->timers), 3);
	ck_assert_int_eq(t_get(&b->timers), 1);
}
END_TEST

/* 3. The web server closes the connection: detach in the loop, release
 * on the worker, no longer counted; the other request goes on. */
START_TEST(hangup)
{
	struct t_req *a, *b;

	a = t_add(0, -1, 0);
	b = t_add(1, -1, 0);
	t_wait(&a->wakes, 1, "a parked");
	t_wait(&b->wakes, 1, "b parked");
	close(a->peer);
	a->peer = -1;
	t_wait(&a->releases, 1, "a released");
	ck_assert_int_eq(t_get(&a->detaches), 1);
	ck_assert_int_eq(t_get(&t_elsewhere), 0);
	ck_assert(!pthread_equal(a->release_tid, t_loop_tid));
	ck_assert_int_eq(park_count(t_park), 1);
	ck_assert_int_eq(t_get(&b->releases), 0);
}
END_TEST

/* 4. An owner that ends: its last bytes, the end of STDOUT and
 * END_REQUEST, then the connection closes. */
START_TEST(end)
{
	struct t_req *q;
	struct t_got g;

	t_reqs[0].say = "bye\n";
	t_reqs[0].wake_answer = PARK_END;
	q = t_add(0, -1, 0);
	t_read(q->peer, &g, 4, 1);
	ck_assert_int_eq(g.bad, 0);
	ck_assert_int_eq(g.ended, 1);
	ck_assert_uint_eq(g.n, 4);
	ck_assert_int_eq(memcmp(g.out, "bye\n", 4), 0);
	t_wait(&q->releases, 1, "released");
	ck_assert_int_eq(t_get(&q->detaches), 1);
	free(g.out);
	t_read(q->peer, &g, 1, 0);
	ck_assert_int_eq(g.eof, 1);
	free(g.out);
}
END_TEST

/*
 * 5. More than the socket takes (and than one record holds: several go,
 * whole): the rest waits in the output (its body
 * held by reference, not copied: one hold, one drop once sent), the
 * wake descriptor is not listened to meanwhile, and once it went wake()
 * is called again; every byte arrives, in order, in whole records.
 */
START_TEST(rest_kept)
{
	struct t_req *q;
	struct t_got g;
	uint64_t one = 1;
	char *big;
	size_t i;

	ck_assert_ptr_nonnull(big = malloc(T_BIG));
	for (i = 0; i < T_BIG; i++)
		big[i] = (char)('a' + i % 23);
	t_reqs[0].big = big;
	t_reqs[0].say = "after\n";
	q = t_add(0, -1, 4096);
	/* The wake counts itself before it writes: wait for the hold. */
	t_wait(&t_holds, 1, "the body held by the first wake");
	ck_assert_int_eq(t_get(&q->wakes), 1);
	/* Nobody reads: a wake-up now is not acted on. */
	ck_assert_int_eq(write(q->efd, &one, sizeof(one)), sizeof(one));
	poll(NULL, 0, 100);
	ck_assert_int_eq(t_get(&q->wakes), 1);
	t_read(q->peer, &g, T_BIG + 6, 0);
	ck_assert_int_eq(g.bad, 0);
	ck_assert_uint_eq(g.n, T_BIG + 6);
	ck_assert_int_eq(memcmp(g.out, big, T_BIG), 0);
	ck_assert_int_eq(memcmp(g.out + T_BIG, "after\n", 6), 0);
	ck_assert_int_eq(t_get(&t_drops), 1);
	ck_assert_int_ge(t_get(&q->wakes), 2);
	free(g.out);
	free(big);
}
END_TEST

/* 6. The stop: every parked request gets stop(), its end goes out with
 * END_REQUEST, all are released and the loop ends. */
START_TEST(stop)
{
	struct t_req *a, *b;
	struct t_got g;
	int i;

	a = t_add(0, mono_ms() + 60000, 0);
	b = t_add(1, -1, 0);
	t_wait(&a->wakes, 1, "a parked");
	t_wait(&b->wakes, 1, "b parked");
	t_stop_all();
	for (i = 0; i < 2; i++) {
		struct t_req *q = i == 0 ? a : b;

		ck_assert_int_eq(t_get(&q->stops), 1);
		ck_assert_int_eq(t_get(&q->releases), 1);
		t_read(q->peer, &g, 8, 1);
		ck_assert_int_eq(g.bad, 0);
		ck_assert_int_eq(g.ended, 1);
		ck_assert_uint_eq(g.n, 8);
		ck_assert_int_eq(memcmp(g.out, "stopped\n", 8), 0);
		free(g.out);
	}
}
END_TEST

static Suite *
park_suite(void)
{
	Suite *s = suite_create("park");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, wake_and_write);
	tcase_add_test(tc, timers);
	tcase_add_test(tc, hangup);
	tcase_add_test(tc, end);
	tcase_add_test(tc, rest_kept);
	tcase_add_test(tc, stop);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(park_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
