/*
 * Unit tests of lib/bell.c.  The "log" here is a counter in shared memory:
 * a publisher increments it (its commit) and rings; a plain-SQL publisher
 * increments it without ringing; check() returns it.  Waiters are forked
 * processes, because POSIX locks belong to processes.  Nothing here asserts
 * how fast anything is: a lost wake-up shows as a wait that never ends,
 * which the per-test timeout turns into a failure.
 */
#include "config.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bell.h"

#define T_WAIT_MS     30000  /* a waiter's bound: only a bug reaches it */
#define T_FIND_MS     10000  /* how long to look for a gatekeeper */
#define T_WAITERS     16
#define T_HERD        40     /* waiters in the gatekeeper-kill test */
#define T_PUBLISHERS  3
#define T_PER_PUB     300
#define T_PLAIN       100    /* unannounced "plain SQL" inserts */
#define T_STRESS_W    30

/* Exit codes of waiter children: the bell_wait result plus this. */
#define T_EXIT_BASE   10

#define T_PATH_MAX    512    /* the test's directory path, bytes */

static char t_dir[T_PATH_MAX];
static char t_db[T_PATH_MAX + 16];
static char t_bellpath[T_PATH_MAX + 32];
static int64_t *t_counter;    /* the fake log, shared with children */

static void
t_setup(void)
{
	const char *tmp = getenv("TMPDIR");

	ck_assert_int_lt(snprintf(t_dir, sizeof(t_dir), "%s/bellXXXXXX",
	    tmp != NULL && *tmp != '\0' ? tmp : "/tmp"), sizeof(t_dir));
	ck_assert_ptr_nonnull(mkdtemp(t_dir));
	snprintf(t_db, sizeof(t_db), "%s/log.db", t_dir);
	snprintf(t_bellpath, sizeof(t_bellpath), "%s-bell", t_db);
	t_counter = mmap(NULL, sizeof(*t_counter), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert(t_counter != MAP_FAILED);
	*t_counter = 0;
	ck_assert_int_eq(bell_init_signals(), 0);
}

static void
t_teardown(void)
{
	char p[T_PATH_MAX + 32];
	const char *extra[] = { "log.db-wal", "log.dbx", "other-wal" };
	size_t i;

	for (i = 0; i < sizeof(extra) / sizeof(extra[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", t_dir, extra[i]);
		unlink(p);
	}
	unlink(t_bellpath);
	rmdir(t_dir);
	munmap(t_counter, sizeof(*t_counter));
}

static int64_t
t_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
t_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* The check function: the fake log's last id. */
static int64_t
t_check(void *arg)
{
	(void)arg;
	return __atomic_load_n(t_counter, __ATOMIC_SEQ_CST);
}

/* The pid holding a write lock on len bytes at off (0: to the end of the
 * file), or 0.  Opens its own descriptor: only for processes that hold no
 * bell locks. */
static pid_t
t_holder(off_t off, off_t len)
{
	struct flock fl;
	int fd;

	if ((fd = open(t_bellpath, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_RDLCK;
	fl.l_whence = SEEK_SET;
	fl.l_start = off;
	fl.l_len = len;
	if (fcntl(fd, F_GETLK, &fl) != 0 || fl.l_type == F_UNLCK)
		fl.l_pid = 0;
	close(fd);
	return fl.l_pid;
}

/* A gatekeeper (keeper or spare) of any gate, or 0. */
static pid_t
t_keeper(void)
{
	return t_holder(BELL_GATE_BASE, 0);
}

/* The gatekeepers of gate L: keeper byte, spare byte (0 if none). */
static void
t_gate(int64_t L, pid_t *keeper, pid_t *spare)
{
	*keeper = t_holder(BELL_GATE_BASE + 2 * L, 1);
	*spare = t_holder(BELL_GATE_BASE + 2 * L + 1, 1);
}

/* Wait until gate L has a keeper other than `not` (and, if both, a spare
 * too); returns the keeper or 0. */
static pid_t
t_find_gate(int64_t L, int both, pid_t not)
{
	int64_t end = t_ms() + T_FIND_MS;
	pid_t k, s;

	while (t_ms() < end) {
		t_gate(L, &k, &s);
		if (k > 0 && k != not && (!both || (s > 0 && s != not)))
			return k;
		t_sleep_ms(5);
	}
	return 0;
}

/* Wait until some process other than `not` keeps gate 0. */
static pid_t
t_find_keeper(pid_t not)
{
	return t_find_gate(0, 0, not);
}

/* Fork a process that opens its own handle and waits once for an id
 * above seen; it exits with T_EXIT_BASE + the result. */
static pid_t
t_waiter(int64_t seen, int timeout_ms, int check_ms, int with_check)
{
	struct bell *b;
	pid_t pid;
	int r;

	if ((pid = fork()) != 0)
		return pid;
	if (bell_open(&b, t_db, check_ms) != 0)
		_exit(1);
	r = bell_wait(b, seen, timeout_ms, with_check ? t_check : NULL, NULL);
	bell_close(b);
	_exit(T_EXIT_BASE + r);
}

/* Reap pid and return its exit code (-1 if it died of a signal). */
static int
t_reap(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -2;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(open_creates_file)
{
	struct bell *b;
	struct stat st;
	mode_t old;

	old = umask(027);
	ck_assert_int_eq(bell_open(&b, t_db, 100), 0);
	umask(old);
	ck_assert_int_eq(stat(t_bellpath, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0640);
	ck_assert_int_ge(st.st_size, BELL_GATE_BASE);
	ck_assert_int_eq(bell_last(b), 0);
	bell_close(b);
	/* Reopening keeps the announced id. */
	ck_assert_int_eq(bell_open(&b, t_db, 100), 0);
	bell_ring(b, 7);
	bell_close(b);
	ck_assert_int_eq(bell_open(&b, t_db, 0), 0);
	ck_assert_int_eq(bell_last(b), 7);
	bell_close(b);
}
END_TEST

START_TEST(open_refuses)
{
	char p[T_PATH_MAX + 32], longp[PATH_MAX + 8];
	struct bell *b = (struct bell *)1;
	FILE *fp;

	snprintf(p, sizeof(p), "%s/none/log.db", t_dir);
	ck_assert_int_eq(bell_open(&b, p, 100), -1);
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_ptr_null(b);
	memset(longp, 'a', sizeof(longp) - 1);
	longp[sizeof(longp) - 1] = '\0';
	ck_assert_int_eq(bell_open(&b, longp, 100), -1);
	ck_assert_int_eq(errno, ENAMETOOLONG);
	ck_assert_int_eq(bell_open(&b, "", 100), -1);
	/* A file that is not a bell file is left alone. */
	fp = fopen(t_bellpath, "w");
	ck_assert_ptr_nonnull(fp);
	fputs("this is not a bell file", fp);
	fclose(fp);
	ck_assert_int_eq(bell_open(&b, t_db, 100), -1);
	ck_assert_int_eq(errno, EPROTO);
}
END_TEST

/* Count this process's descriptors on the bell file. */
static int
t_bell_fds(void)
{
	char link[320], got[T_PATH_MAX + 64];
	struct dirent *de;
	ssize_t n;
	DIR *d;
	int count = 0;

	ck_assert_ptr_nonnull(d = opendir("/proc/self/fd"));
	while ((de = readdir(d)) != NULL) {
		snprintf(link, sizeof(link), "/proc/self/fd/%s", de->d_name);
		n = readlink(link, got, sizeof(got) - 1);
		if (n < 0)
			continue;
		got[n] = '\0';
		if (strcmp(got, t_bellpath) == 0)
			count++;
	}
	closedir(d);
	return count;
}

START_TEST(one_descriptor_per_process)
{
	struct bell *a, *b;

	ck_assert_int_eq(bell_open(&a, t_db, 100), 0);
	ck_assert_int_eq(bell_open(&b, t_db, 100), 0);
	ck_assert_int_eq(t_bell_fds(), 1);
	bell_ring(a, 3);
	ck_assert_int_eq(bell_last(b), 3);
	bell_close(a);
	ck_assert_int_eq(t_bell_fds(), 1);
	bell_ring(b, 4);
	ck_assert_int_eq(bell_last(b), 4);
	bell_close(b);
	ck_assert_int_eq(t_bell_fds(), 0);
}
END_TEST

START_TEST(ring_only_raises)
{
	struct bell *b;

	ck_assert_int_eq(bell_open(&b, t_db, 100), 0);
	bell_ring(b, 5);
	ck_assert_int_eq(bell_last(b), 5);
	bell_ring(b, 3);
	ck_assert_int_eq(bell_last(b), 5);
	bell_ring(b, 0);
	bell_ring(b, -8);
	ck_assert_int_eq(bell_last(b), 5);
	bell_ring(b, 9);
	ck_assert_int_eq(bell_last(b), 9);
	bell_close(b);
}
END_TEST

START_TEST(wait_ready_and_timeout)
{
	struct bell *b;
	int64_t t0;

	ck_assert_int_eq(bell_open(&b, t_db, 100), 0);
	bell_ring(b, 5);
	ck_assert_int_eq(bell_wait(b, 4, -1, NULL, NULL), BELL_READY);
	ck_assert_int_eq(bell_wait(b, 5, 0, NULL, NULL), BELL_TIMEOUT);
	t0 = t_ms();
	ck_assert_int_eq(bell_wait(b, 5, 100, NULL, NULL), BELL_TIMEOUT);
	ck_assert_int_ge(t_ms() - t0, 100);  /* never early */
	/* It released its gate: another process can take it. */
	ck_assert_int_eq(t_keeper(), 0);
	bell_close(b);
}
END_TEST

START_TEST(reader_times_out)
{
	struct bell *b;
	pid_t k, s;
	int64_t t0;

	k = t_waiter(0, T_WAIT_MS, 100, 0);
	ck_assert_int_eq(t_find_keeper(0), k);
	s = t_waiter(0, T_WAIT_MS, 100, 0);
	ck_assert_int_eq(t_find_gate(0, 1, 0), k);
	ck_assert_int_eq(bell_open(&b, t_db, 100), 0);
	/* Blocked on the gate (a lock wait, not sigtimedwait): the timer
	 * must cut it short. */
	t0 = t_ms();
	ck_assert_int_eq(bell_wait(b, 0, 150, NULL, NULL), BELL_TIMEOUT);
	ck_assert_int_ge(t_ms() - t0, 150);
	bell_ring(b, 1);
	ck_assert_int_eq(t_reap(k), T_EXIT_BASE + BELL_READY);
	ck_assert_int_eq(t_reap(s), T_EXIT_BASE + BELL_READY);
	bell_close(b);
}
END_TEST

START_TEST(ring_wakes_every_waiter)
{
	pid_t kids[T_WAITERS];
	struct bell *b;
	int i;

	for (i = 0; i < T_WAITERS; i++)
		kids[i] = t_waiter(0, T_WAIT_MS, 100, 0);
	ck_assert_int_gt(t_find_keeper(0), 0);
	t_sleep_ms(100);    /* let the others block (not needed for success) */
	ck_assert_int_eq(bell_open(&b, t_db, 100), 0);
	bell_ring(b, 1);
	for (i = 0; i < T_WAITERS; i++)
		ck_assert_int_eq(t_reap(kids[i]), T_EXIT_BASE + BELL_READY);
	bell_close(b);
}
END_TEST

START_TEST(check_finds_unannounced)
{
	struct bell *b;
	pid_t kids[4];
	int i;

	for (i = 0; i < 4; i++)
		kids[i] = t_waiter(0, T_WAIT_MS, 20, 1);
	ck_assert_int_gt(t_find_keeper(0), 0);
	__atomic_store_n(t_counter, 3, __ATOMIC_SEQ_CST);  /* no ring */
	for (i = 0; i < 4; i++)
		ck_assert_int_eq(t_reap(kids[i]), T_EXIT_BASE + BELL_READY);
	ck_assert_int_eq(bell_open(&b, t_db, 100), 0);
	ck_assert_int_eq(bell_last(b), 3);
	bell_close(b);
}
END_TEST

START_TEST(check_runs_at_once)
{
	pid_t k;

	/* With the longest interval, only a check made the moment the
	 * waiter becomes gatekeeper ends this before the test's timeout. */
	__atomic_store_n(t_counter, 2, __ATOMIC_SEQ_CST);
	k = t_waiter(0, -1, 60000, 1);
	ck_assert_int_eq(t_reap(k), T_EXIT_BASE + BELL_READY);
}
END_TEST

/* Append a byte to the file name in the test's folder. */
static void
t_touch(const char *name)
{
	char path[T_PATH_MAX + 32];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", t_dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "x", 1), 1);
	close(fd);
}

/* A waiter (bounded by timeout_ms) whose keeper checks at once and then
 * not for 60 s; returns once it keeps the gate and has made that check. */
static pid_t
t_slow_keeper(int timeout_ms)
{
	pid_t k;

	k = t_waiter(0, timeout_ms, 60000, 1);
	ck_assert_int_gt(t_find_keeper(0), 0);
	t_sleep_ms(200);
	return k;
}

START_TEST(write_to_log_wakes_keeper)
{
	pid_t k;

	/* The keeper checks at once, then not for 60 s: only its watch on
	 * the log's folder can make it see the unannounced id before the
	 * waiter's 20 s run out. */
	k = t_slow_keeper(20000);
	__atomic_store_n(t_counter, 5, __ATOMIC_SEQ_CST);  /* no ring */
	t_touch("log.db-wal");                /* what a plain INSERT does */
	ck_assert_int_eq(t_reap(k), T_EXIT_BASE + BELL_READY);
}
END_TEST

/* The keeper's check for t_fd_keeper: consume the pipe's news, then the
 * counter as t_check reads it. */
static int t_fd = -1;

static int64_t
t_fd_check(void *arg)
{
	char buf[16];

	while (read(t_fd, buf, sizeof(buf)) > 0)
		;
	return t_check(arg);
}

START_TEST(keeper_fd_wakes_keeper)
{
	int p[2];
	pid_t k;

	/* As write_to_log_wakes_keeper, but the news comes on a descriptor
	 * of bell_keeper_fd (a database server's notifications): only that
	 * can end the wait before the waiter's 20 s. */
	ck_assert_int_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	if ((k = fork()) == 0) {
		struct bell *b;
		int r;

		close(p[1]);
		t_fd = p[0];
		if (bell_open(&b, t_db, 60000) != 0)
			_exit(1);
		bell_keeper_fd(b, t_fd);
		r = bell_wait(b, 0, 20000, t_fd_check, NULL);
		bell_close(b);
		_exit(T_EXIT_BASE + r);
	}
	close(p[0]);
	ck_assert_int_gt(t_find_keeper(0), 0);
	t_sleep_ms(200);
	__atomic_store_n(t_counter, 7, __ATOMIC_SEQ_CST);  /* no ring */
	ck_assert_int_eq(write(p[1], "n", 1), 1);
	ck_assert_int_eq(t_reap(k), T_EXIT_BASE + BELL_READY);
	close(p[1]);
}
END_TEST

START_TEST(commit_visible_after_write)
{
	pid_t k;

	/* A commit shows only after its last write (the writer syncs, then
	 * updates the -shm index, which makes no event): the keeper must
	 * look again after the write, not only once. */
	k = t_slow_keeper(20000);
	t_touch("log.db-wal");
	t_sleep_ms(50);
	__atomic_store_n(t_counter, 6, __ATOMIC_SEQ_CST);
	ck_assert_int_eq(t_reap(k), T_EXIT_BASE + BELL_READY);
}
END_TEST

START_TEST(other_files_do_not_count)
{
	pid_t k;

	/* A write to another file of the folder makes the keeper drain its
	 * watch but not check, so the unannounced id stays unseen. */
	k = t_slow_keeper(2000);
	__atomic_store_n(t_counter, 5, __ATOMIC_SEQ_CST);
	t_touch("log.dbx");
	t_touch("other-wal");
	ck_assert_int_eq(t_reap(k), T_EXIT_BASE + BELL_TIMEOUT);
}
END_TEST

struct t_later {
	struct bell *b;
	int ms;
};

static void *
t_interrupt_later(void *arg)
{
	struct t_later *l = arg;

	t_sleep_ms(l->ms);
	bell_interrupt(l->b);
	return NULL;
}

START_TEST(interrupt_from_thread)
{
	struct t_later l;
	struct bell *b;
	pthread_t th;
	pid_t k, s;

	ck_assert_int_eq(bell_open(&b, t_db, 100), 0);
	l.b = b;
	l.ms = 50;
	/* As gatekeeper (alone). */
	ck_assert_int_eq(pthread_create(&th, NULL, t_interrupt_later, &l), 0);
	ck_assert_int_eq(bell_wait(b, 0, -1, NULL, NULL), BELL_INTERRUPTED);
	pthread_join(th, NULL);
	/* As a reader blocked in a lock wait behind keeper and spare. */
	k = t_waiter(0, T_WAIT_MS, 100, 0);
	ck_assert_int_eq(t_find_keeper(0), k);
	s = t_waiter(0, T_WAIT_MS, 100, 0);
	ck_assert_int_eq(t_find_gate(0, 1, 0), k);
	ck_assert_int_eq(pthread_create(&th, NULL, t_interrupt_later, &l), 0);
	ck_assert_int_eq(bell_wait(b, 0, -1, NULL, NULL), BELL_INTERRUPTED);
	pthread_join(th, NULL);
	/* Many times at random points: never lost, never a hang. */
	for (l.ms = 0; l.ms < 20; l.ms++) {
		ck_assert_int_eq(pthread_create(&th, NULL, t_interrupt_later,
		    &l), 0);
		ck_assert_int_eq(bell_wait(b, 0, -1, NULL, NULL),
		    BELL_INTERRUPTED);
		pthread_join(th, NULL);
	}
	bell_ring(b, 1);
	ck_assert_int_eq(t_reap(k), T_EXIT_BASE + BELL_READY);
	ck_assert_int_eq(t_reap(s), T_EXIT_BASE + BELL_READY);
	bell_close(b);
}
END_TEST

START_TEST(interrupt_before_wait)
{
	struct bell *b;

	ck_assert_int_eq(bell_open(&b, t_db, 100), 0);
	bell_interrupt(b);
	ck_assert_int_eq(bell_wait(b, 0, -1, NULL, NULL), BELL_INTERRUPTED);
	/* Consumed: the next wait is a normal one. */
	ck_assert_int_eq(bell_wait(b, 0, 50, NULL, NULL), BELL_TIMEOUT);
	bell_close(b);
}
END_TEST

static struct bell *t_sig_bell;

static void
t_on_usr1(int sig)
{
	(void)sig;
	bell_interrupt(t_sig_bell);
}

START_TEST(interrupt_from_signal_handler)
{
	struct sigaction sa;
	pid_t k, s, kicker;
	int i;

	ck_assert_int_eq(bell_open(&t_sig_bell, t_db, 100), 0);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = t_on_usr1;
	sa.sa_flags = SA_RESTART;  /* the hardest case: lock waits restart */
	sigemptyset(&sa.sa_mask);
	ck_assert_int_eq(sigaction(SIGUSR1, &sa, NULL), 0);
	k = t_waiter(0, T_WAIT_MS, 100, 0);
	ck_assert_int_eq(t_find_keeper(0), k);
	s = t_waiter(0, T_WAIT_MS, 100, 0);
	ck_assert_int_eq(t_find_gate(0, 1, 0), k);
	for (i = 0; i < 5; i++) {
		if ((kicker = fork()) == 0) {
			t_sleep_ms(20 * i);
			kill(getppid(), SIGUSR1);
			_exit(0);
		}
		ck_assert_int_eq(bell_wait(t_sig_bell, 0, -1, NULL, NULL),
		    BELL_INTERRUPTED);
		t_reap(kicker);
	}
	bell_ring(t_sig_bell, 1);
	ck_assert_int_eq(t_reap(k), T_EXIT_BASE + BELL_READY);
	ck_assert_int_eq(t_reap(s), T_EXIT_BASE + BELL_READY);
	bell_close(t_sig_bell);
}
END_TEST

/* Kill pid (a child) and forget it in kids[]. */
static void
t_kill(pid_t *kids, int n, pid_t pid)
{
	int i, st;

	ck_assert_int_eq(kill(pid, SIGKILL), 0);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	for (i = 0; i < n; i++)
		if (kids[i] == pid)
			kids[i] = 0;
}

START_TEST(keepers_killed)
{
	pid_t kids[T_HERD], k, s;
	struct bell *b;
	int i, round;

	for (i = 0; i < T_HERD; i++)
		kids[i] = t_waiter(0, T_WAIT_MS, 100, 0);
	for (round = 0; round < 3; round++) {
		/* The keeper alone dies: the spare takes over (and, with
		 * nobody arriving, nobody takes the spare byte). */
		k = t_find_gate(0, 1, 0);
		ck_assert_int_gt(k, 0);
		t_kill(kids, T_HERD, k);
		ck_assert_int_gt(t_find_gate(0, 0, k), 0);
		/* Every gatekeeper dies: the herd elects a new keeper.  A
		 * spare comes with the next waiter to arrive. */
		t_gate(0, &k, &s);
		ck_assert_int_gt(k, 0);
		t_kill(kids, T_HERD, k);
		if (s > 0 && s != k)  /* a spare in the act of taking over */
			t_kill(kids, T_HERD, s);
		ck_assert_int_gt(t_find_gate(0, 0, k), 0);
		for (i = 0; i < T_HERD; i++)
			if (kids[i] == 0) {
				kids[i] = t_waiter(0, T_WAIT_MS, 100, 0);
				break;
			}
	}
	ck_assert_int_eq(bell_open(&b, t_db, 100), 0);
	bell_ring(b, 1);
	for (i = 0; i < T_HERD; i++)
		if (kids[i] != 0)
			ck_assert_int_eq(t_reap(kids[i]),
			    T_EXIT_BASE + BELL_READY);
	bell_close(b);
}
END_TEST

START_TEST(spare_takes_over_checking)
{
	pid_t kids[4], k;
	int i;

	for (i = 0; i < 4; i++)
		kids[i] = t_waiter(0, T_WAIT_MS, 20, 1);
	k = t_find_gate(0, 1, 0);
	ck_assert_int_gt(k, 0);
	t_kill(kids, 4, k);
	/* Unannounced: only a keeper's check can find it, and with no new
	 * waiters arriving only the spare can have become the keeper. */
	__atomic_store_n(t_counter, 1, __ATOMIC_SEQ_CST);
	for (i = 0; i < 4; i++)
		if (kids[i] != 0)
			ck_assert_int_eq(t_reap(kids[i]),
			    T_EXIT_BASE + BELL_READY);
}
END_TEST

/* A follower of the fake log: exits 0 once it has seen `target`, 1 on a
 * wait that timed out (a lost wake-up) or an error. */
static pid_t
t_follower(int64_t target)
{
	struct bell *b;
	int64_t known, have = 0;
	pid_t pid;
	int r;

	if ((pid = fork()) != 0)
		return pid;
	if (bell_open(&b, t_db, 20) != 0)
		_exit(2);
	for (;;) {
		known = bell_last(b);
		have = __atomic_load_n(t_counter, __ATOMIC_SEQ_CST);
		if (have >= target)
			_exit(0);
		r = bell_wait(b, known, T_WAIT_MS, t_check, NULL);
		if (r != BELL_READY)
			_exit(3);
	}
}

/* A publisher: n commits, each announced unless plain; small pauses so
 * that waiters really go to sleep between publishes. */
static pid_t
t_publisher(int n, int plain)
{
	struct bell *b;
	int64_t id;
	pid_t pid;
	int i;

	if ((pid = fork()) != 0)
		return pid;
	if (bell_open(&b, t_db, 20) != 0)
		_exit(2);
	for (i = 0; i < n; i++) {
		id = __atomic_add_fetch(t_counter, 1, __ATOMIC_SEQ_CST);
		if (!plain)
			bell_ring(b, id);
		if (i % 7 == 0)
			t_sleep_ms(1);
	}
	bell_close(b);
	_exit(0);
}

START_TEST(concurrent_publishers_and_followers)
{
	pid_t w[T_STRESS_W], p[T_PUBLISHERS + 1];
	int64_t target = T_PUBLISHERS * T_PER_PUB + T_PLAIN;
	int i;

	for (i = 0; i < T_STRESS_W; i++)
		w[i] = t_follower(target);
	t_find_keeper(0);
	for (i = 0; i < T_PUBLISHERS; i++)
		p[i] = t_publisher(T_PER_PUB, 0);
	p[i] = t_publisher(T_PLAIN, 1);
	for (i = 0; i <= T_PUBLISHERS; i++)
		ck_assert_int_eq(t_reap(p[i]), 0);
	for (i = 0; i < T_STRESS_W; i++)
		ck_assert_int_eq(t_reap(w[i]), 0);
}
END_TEST

/*
 * A bell file removed (and made anew by a newcomer) while a publisher
 * holds the old one: its ring reaches the waiter on the new file, and
 * bell_reopen moves it to that file.
 */
START_TEST(ring_reaches_replaced_bell)
{
	struct bell *b;
	pid_t w;

	ck_assert_int_eq(bell_open(&b, t_db, 100), 0);
	ck_assert_int_eq(bell_moved(b), 0);
	ck_assert_int_eq(unlink(t_bellpath), 0);
	ck_assert_int_eq(bell_moved(b), 1);
	w = t_waiter(0, T_WAIT_MS, 100, 0);   /* creates the new file */
	ck_assert_int_gt(t_find_keeper(0), 0);
	bell_ring(b, 1);
	ck_assert_int_eq(t_reap(w), T_EXIT_BASE + BELL_READY);
	ck_assert_int_eq(bell_reopen(b), 0);
	ck_assert_int_eq(bell_moved(b), 0);
	ck_assert_int_eq(bell_last(b), 1);
	bell_close(b);
}
END_TEST

/*
 * A keeper whose check() says BELL_CHECK_LEAVE returns BELL_INTERRUPTED;
 * the removal of the bell file (a replaced log) makes it look at once,
 * though it would otherwise not look again for 60 s.
 */
START_TEST(keeper_leaves_when_told)
{
	pid_t k;

	k = t_slow_keeper(20000);
	__atomic_store_n(t_counter, BELL_CHECK_LEAVE, __ATOMIC_SEQ_CST);
	ck_assert_int_eq(unlink(t_bellpath), 0);
	ck_assert_int_eq(t_reap(k), T_EXIT_BASE + BELL_INTERRUPTED);
}
END_TEST

/*
 * bell_lower: only from the value the caller saw; the gatekeeper of the
 * old gate moves to the new one, and a later ring wakes it.
 */
START_TEST(lower_moves_gatekeepers)
{
	struct bell *b;
	pid_t w;

	ck_assert_int_eq(bell_open(&b, t_db, 100), 0);
	bell_ring(b, 10);
	w = t_waiter(10, T_WAIT_MS, 100, 0);
	ck_assert_int_eq(t_find_gate(10, 0, 0), w);
	ck_assert_int_eq(bell_lower(b, 9, 3), 0);
	ck_assert_int_eq(bell_last(b), 10);
	ck_assert_int_eq(bell_lower(b, 10, 3), 1);
	ck_assert_int_eq(bell_last(b), 3);
	ck_assert_int_eq(bell_lower(b, 3, 3), 0);
	ck_assert_int_eq(t_find_gate(3, 0, 0), w);
	bell_ring(b, 11);
	ck_assert_int_eq(t_reap(w), T_EXIT_BASE + BELL_READY);
	bell_close(b);
}
END_TEST

START_TEST(sigurg_is_harmless)
{
	sigset_t set;
	pid_t pid;

	if ((pid = fork()) == 0) {
		sigemptyset(&set);
		sigprocmask(SIG_SETMASK, &set, NULL);
		kill(getpid(), SIGURG);
		_exit(0);
	}
	ck_assert_int_eq(t_reap(pid), 0);
}
END_TEST

static Suite *
bell_suite(void)
{
	Suite *s = suite_create("bell");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, t_setup, t_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, open_creates_file);
	tcase_add_test(tc, ring_reaches_replaced_bell);
	tcase_add_test(tc, keeper_leaves_when_told);
	tcase_add_test(tc, lower_moves_gatekeepers);
	tcase_add_test(tc, open_refuses);
	tcase_add_test(tc, one_descriptor_per_process);
	tcase_add_test(tc, ring_only_raises);
	tcase_add_test(tc, wait_ready_and_timeout);
	tcase_add_test(tc, reader_times_out);
	tcase_add_test(tc, ring_wakes_every_waiter);
	tcase_add_test(tc, check_finds_unannounced);
	tcase_add_test(tc, check_runs_at_once);
	tcase_add_test(tc, write_to_log_wakes_keeper);
	tcase_add_test(tc, keeper_fd_wakes_keeper);
	tcase_add_test(tc, commit_visible_after_write);
	tcase_add_test(tc, other_files_do_not_count);
	tcase_add_test(tc, interrupt_from_thread);
	tcase_add_test(tc, interrupt_before_wait);
	tcase_add_test(tc, interrupt_from_signal_handler);
	tcase_add_test(tc, keepers_killed);
	tcase_add_test(tc, spare_takes_over_checking);
	tcase_add_test(tc, concurrent_publishers_and_followers);
	tcase_add_test(tc, sigurg_is_harmless);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(bell_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
