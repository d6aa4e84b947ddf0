/*
 * bell: daemon-less wake-ups between processes, through file locks.
 *
 * THE PROBLEM.  Hundreds of CGI processes each wait for the next message
 * in a SQLite log.  They must sleep in the kernel (no CPU while idle), wake
 * within milliseconds of a publish, never miss one, survive any of them
 * being killed at any moment, and need no daemon.  inotify has a per-user
 * instance limit far below that; POSIX record locks have none, cost nothing
 * while waiting, and the kernel drops a dead process's locks by itself.
 *
 * THE FILE.  <db>-bell.  Its first page (BELL_GATE_BASE bytes) is mapped
 * MAP_SHARED by every process and holds a magic word and `last`, the
 * highest message id anyone announced.  Publishers raise it with an atomic
 * compare-and-swap "max" after their commit, so a process can learn that
 * nothing happened without touching SQLite.  Above the page, "gate L"
 * means "nothing after id L yet": it is the two bytes at BELL_GATE_BASE +
 * 2L (the keeper byte) and BELL_GATE_BASE + 2L + 1 (the spare byte).  The
 * gate bytes are never written: only locked.
 *
 * THE PROTOCOL (bell_wait, for a caller that has seen everything up to
 * `seen`):
 *
 *  1. Read L = last.  If L > seen, return READY.  Otherwise try to take a
 *     write lock on the keeper byte of gate L without blocking, and failing
 *     that on the spare byte.
 *  2. Got one: this process is a gatekeeper of gate L (bell_keep).  It
 *     re-reads last after the lock is granted: a publisher that raised it
 *     just before could not have seen our lock, so without this re-read
 *     its wake-up would be lost.  Then it sleeps in ppoll() with only
 *     SIGURG let through; each time it wakes it re-reads last.  The
 *     keeper also calls check() at once, then whenever the log's files
 *     are written (an inotify watch on their folder, bell_watch_start)
 *     and once a second, or every check_ms if it cannot watch: that is
 *     how rows inserted by plain SQL, which nobody announces, are noticed,
 *     and only the keeper pays for it.  If check() finds a newer id it
 *     raises last itself and signals the other gatekeepers like a
 *     publisher would.  The spare, meanwhile, blocks for a write lock on
 *     the keeper byte: whatever makes the keeper let go (progress, its
 *     deadline, its death) wakes it, with no signal and no CPU spent while
 *     it waits.  It then holds both bytes, lets go of the spare byte and
 *     carries on as the keeper, re-reading last first.  As soon as last
 *     != L each gatekeeper releases its byte, and once both are free every
 *     waiter blocked on the gate wakes at once; each goes back to 1.
 *  3. Got neither: block on a READ lock of both bytes of gate L.  Read
 *     requests do not conflict with each other, so the kernel wakes all of
 *     them when the last gatekeeper lets go.  Once granted, drop the read
 *     lock at once (it would keep the next gatekeeper out) and re-read
 *     last: if it moved, go back to 1.
 *  4. Granted but last is still L: both gatekeepers left without progress
 *     (timed out, were killed, or their clients went away).  Everybody
 *     blocked on gate L was just granted a read lock at the same time.
 *     Retrying step 1 now would meet someone's momentary read lock, read
 *     EAGAIN as "there is a gatekeeper", block for a read lock that is
 *     granted at once, and go round again: with a few hundred waiters that
 *     is a livelock at 100% CPU.  So instead queue with a BLOCKING write
 *     lock request on the keeper byte, bounded by BELL_REQUEUE_MS.  Queued
 *     writers stop taking read locks, the leftovers drain, the first writer
 *     is granted the byte and becomes the keeper (step 2, re-read first);
 *     the rest wait behind it, and when their bound expires they go back to
 *     1, where one becomes the spare and the others sleep on a read lock
 *     again.  The bound matters: the kernel hands a byte to queued writers
 *     one at a time, so a long queue would turn the next wake-up into a
 *     slow relay.
 *
 * Why a spare: a gatekeeper's caller has its own deadline (a heartbeat),
 * after which it must return, releasing its byte.  With a single byte that
 * release hands every waiter a read lock: all of them return to user
 * space, run step 4 and thrash in the kernel's lock queues; with 1000
 * waiters that cost about 0.4 s of CPU per heartbeat period, measured.
 * While the other byte is still held, the waiters' lock requests merely
 * retry inside the kernel and sleep again (about 16 us each), and the
 * vacancy is filled by the next waiter to arrive at step 1.  The full herd
 * of step 4 is left for when both gatekeepers go at once.
 *
 * Publishing (bell_ring) is: commit, raise last to the new id, then find
 * the gatekeepers of every gate below it and send each SIGURG.  F_GETLK
 * with an F_RDLCK probe over all those gate bytes reports one conflicting
 * lock, i.e. one WRITE lock, and its owner's pid; the range is split
 * around each hit and probed again, a bounded number of times, because
 * there are normally two gatekeepers and a gatekeeper of an older gate may
 * not have let go yet.  SIGURG, because its default action is to be
 * ignored: the gatekeeper may die between F_GETLK and kill() and its pid
 * be reused by an unrelated process, which must not be hurt.  F_GETLK
 * never reports the caller's own locks, so a publishing thread of a
 * gatekeeper's own process signals the keeping thread directly.
 *
 * Why a wake-up cannot be lost: a publisher raises last BEFORE it probes,
 * and a gatekeeper re-reads last AFTER its lock is granted.  The kernel
 * serialises lock operations on the file, so either the probe sees the
 * lock (and the gatekeeper gets SIGURG, which stays pending while blocked
 * until its ppoll lets it through) or the re-read sees the new id.  A spare
 * needs no signal: the keeper it waits behind releases the keeper byte on
 * progress, and the spare re-reads last once it has that byte.  Waiters in step 3 re-read after their grant,
 * which comes after both gatekeepers' releases, which come after they saw
 * the change.
 *
 * Why new bytes for every id: releasing a lock does not hand it to a
 * blocked waiter, it only wakes it so that it asks again.  If a releaser
 * could take the same byte again at once it could starve the waiters and
 * they would miss the wake-up.  A gate whose id has passed is never wanted
 * again, so that cannot happen; bytes of the current gate are re-taken
 * only while nothing happened, when nobody is owed a wake-up.
 *
 * Why exactly one descriptor per process: closing ANY descriptor of a
 * file drops ALL of the process's POSIX locks on it.  bell_open() keeps a
 * process-wide table and hands out the same descriptor (and mapping) for
 * every handle on one file.  POSIX locks also belong to the process, not
 * the thread, hence one waiting thread per process (see bell.h).
 *
 * Timed waits: a POSIX timer per handle delivers SIGALRM to the waiting
 * thread only (SIGEV_THREAD_ID); the handler does nothing and is installed
 * without SA_RESTART, so F_SETLKW returns EINTR.  A signal that lands just
 * before the blocking call began would be wasted, so while a bounded wait
 * (or an interrupt) is pending the handler re-arms the timer every
 * BELL_KICK_MS.  bell_interrupt() sets a flag and fires the same timer at
 * once: timer_settime() is async-signal-safe, so it works from a signal
 * handler as well as from another thread.
 *
 * A bell file deleted or replaced while processes use it would split
 * them: those that opened the old one and those that create a new one
 * would not hear each other.  So bell_ring, after ringing its own file,
 * rings the one the path names if that is another (one stat() per ring),
 * and a waiter that finds the file moved (bell_moved: its caller's
 * check() looks, and the keeper's folder watch reports the bell's and
 * the log's removal, creation and moves at once) switches with
 * bell_reopen.
 */
#include "config.h"

#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bell.h"
#include "mono.h"

#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid  /* glibc < 2.35 lacks it */
#endif

#define BELL_SUFFIX           "-bell"
#define BELL_MAGIC            0x70757368626c0001ULL /* "pushbl", v1 */
#define BELL_CHECK_DEFAULT_MS 100    /* when bell_open gets check_ms <= 0 */
#define BELL_CHECK_MAX_MS     60000
#define BELL_KICK_MS          5      /* timer repeat while a wake is owed */
#define BELL_RING_PROBES      16     /* F_GETLK calls per ring, at most */
#define BELL_BACKOFF_MS       10     /* pause after EDEADLK/ENOLCK */
#define BELL_ID_MAX           ((INT64_MAX - BELL_GATE_BASE) / 2 - 1)
#define BELL_KEEPER           0      /* byte of a gate: the one that checks */
#define BELL_SPARE            1      /* the one that only stands by */
#define BELL_NS               MONO_NS_PER_S  /* mono_ns() per second */
#define BELL_MS               MONO_NS_PER_MS /* mono_ns() per ms */
#define BELL_WAL_SUFFIX       "-wal"
#define BELL_CHECK_FORCE_MS   1000   /* check() at least this often */
#define BELL_WATCH_CHECK_MS   1000   /* check() period while watching */
#define BELL_SETTLE_MS        1      /* first re-check after a write */
#define BELL_JOURNAL_SUFFIX   "-journal"
#define BELL_EVENTS_MAX       4096   /* bytes of inotify events per read */
#define BELL_STAT_MARGIN_NS   BELL_NS /* trust an mtime this much older */

/* The shared first page. */
struct bell_page {
	uint64_t magic;
	int64_t last;           /* highest id announced; atomic */
};

/* What stat() said of one of the log's files ("absent" = all zero). */
struct bell_stamp {
	dev_t dev;
	ino_t ino;
	off_t size;
	int64_t mtime;          /* ns since the epoch */
};

/* One per bell file per process: the single descriptor and mapping. */
struct bell_file {
	struct bell_file *next;
	dev_t dev;
	ino_t ino;
	int fd;
	int refs;
	struct bell_page *pg;
	int64_t gate;           /* gate this process keeps, -1 if none */
	pid_t keeper;           /* thread id of the keeping thread */
};

struct bell {
	/* f changes only in bell_reopen (the waiting thread's); bell_ring,
	 * which any thread may call, reads it under fmu. */
	struct bell_file *f;
	pthread_mutex_t fmu;
	char path[PATH_MAX];      /* <db>-bell */
	int check_ms;
	int interrupt;          /* bell_interrupt() was called; atomic */
	int waiting;            /* a thread is inside bell_wait(); atomic */
	int timed;              /* a timer-bounded step is under way */
	int has_timer;
	timer_t timer;
	pid_t timer_tid;        /* the thread the timer signals */
	pid_t timer_pid;
	/* The keeper's cheap look before check() (see bell_quiet). */
	char files[2][PATH_MAX];  /* the log and its -wal */
	char dir[PATH_MAX];       /* their folder, watched by the keeper */
	const char *base;         /* the log's name in it (in files[0]) */
	int watch;                /* the keeper's inotify descriptor, or -1 */
	int xfd;                  /* bell_keeper_fd's descriptor, or -1 */
	struct bell_stamp seen[2];
	int64_t seen_at;        /* CLOCK_REALTIME ns of those stamps, 0 none */
	int64_t checked;        /* CLOCK_MONOTONIC ns of the last check() */
};

/* Result of bell_keep meaning "go back to step 1". */
#define BELL_AGAIN 3

static pthread_mutex_t bell_files_mu = PTHREAD_MUTEX_INITIALIZER;
static struct bell_file *bell_files;
static int bell_signals_ready;

/* The handle the current thread is waiting on, for the SIGALRM handler. */
static __thread struct bell *bell_cur
    __attribute__((tls_model("initial-exec")));

static void bell_on_alarm(int);
static void bell_arm(struct bell *, int64_t);
static off_t bell_byte(int64_t, int);
static int bell_lock(int, int, short, off_t, off_t);
static struct bell_file *bell_file_get(const char *, const struct stat *,
    const char *);
static void bell_file_put(struct bell_file *);
static int bell_raise(struct bell_file *, int64_t);
static void bell_signal(struct bell_file *, int64_t, int);
static int bell_timer(struct bell *);
static int bell_lock_wait(struct bell *, short, off_t, off_t, int64_t);
static int bell_stand_by(struct bell *, int64_t, int64_t);
static int bell_keep(struct bell *, int64_t, int, int64_t, bell_check_fn,
    void *);
static int bell_loop(struct bell *, int64_t, int64_t, bell_check_fn,
    void *);
static void bell_pause(int64_t);
static void bell_stamp(const char *, struct bell_stamp *);
static int bell_quiet(struct bell *, int64_t);
static void bell_on_urg(int);
static int bell_watch_start(struct bell *);
static void bell_watch_stop(struct bell *);
static int bell_watch_drain(struct bell *);
static int bell_doze(struct bell *, int64_t, const sigset_t *);
static int bell_file_moved(const struct bell *, const struct bell_file *);
static void bell_ring_path(struct bell *, int64_t);

/* Arm b's timer once, ns from now (0 disarms). */
static void
bell_arm(struct bell *b, int64_t ns)
{
	struct itimerspec it;

	memset(&it, 0, sizeof(it));
	it.it_value.tv_sec = ns / BELL_NS;
	it.it_value.tv_nsec = ns % BELL_NS;
	timer_settime(b->timer, 0, &it, NULL);
}

/*
 * SIGALRM: exists only to make a blocking call return EINTR.  If a bounded
 * step or an interrupt is still pending, the signal may have arrived just
 * before the blocking call started; fire again shortly so that it cannot
 * be missed.  Async-signal-safe (timer_settime, atomics).
 */
static void
bell_on_alarm(int sig)
{
	struct bell *b = bell_cur;
	int saved = errno;

	(void)sig;
	if (b != NULL && (__atomic_load_n(&b->interrupt, __ATOMIC_SEQ_CST) ||
	    __atomic_load_n(&b->timed, __ATOMIC_SEQ_CST)))
		bell_arm(b, BELL_KICK_MS * BELL_MS);
	errno = saved;
}

/* SIGURG's handler: nothing; its arrival ends the keeper's ppoll(), the
 * one place where SIGURG is not blocked (see bell_doze). */
static void
bell_on_urg(int sig)
{
	(void)sig;
}

/*
 * Install the SIGALRM handler (no SA_RESTART, so lock waits return EINTR)
 * and SIGURG's, and block SIGURG in the calling thread, so that threads
 * created later inherit the mask and a SIGURG sent to the process stays
 * pending for the gatekeeper's ppoll instead of going to another thread.
 * Returns 0, or -1 with errno set.
 */
int
bell_init_signals(void)
{
	struct sigaction sa;
	sigset_t set;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = bell_on_alarm;
	sa.sa_flags = 0;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGALRM, &sa, NULL) != 0)
		return -1;
	sa.sa_handler = bell_on_urg;
	if (sigaction(SIGURG, &sa, NULL) != 0)
		return -1;
	sigemptyset(&set);
	sigaddset(&set, SIGURG);
	if ((errno = pthread_sigmask(SIG_BLOCK, &set, NULL)) != 0)
		return -1;
	__atomic_store_n(&bell_signals_ready, 1, __ATOMIC_SEQ_CST);
	return 0;
}

/* Offset of byte `which` (BELL_KEEPER or BELL_SPARE) of gate L. */
static off_t
bell_byte(int64_t L, int which)
{
	return (off_t)(BELL_GATE_BASE + 2 * L + which);
}

/* fcntl lock command cmd of the given type on len bytes at off. */
static int
bell_lock(int fd, int cmd, short type, off_t off, off_t len)
{
	struct flock fl;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	fl.l_start = off;
	fl.l_len = len;
	return fcntl(fd, cmd, &fl);
}

/*
 * The process-wide entry for the bell file at path, opened (and created)
 * if this process has none yet; NULL with errno on failure.  Caller holds
 * bell_files_mu.  An existing entry is found by stat() BEFORE opening:
 * opening a second descriptor and closing it would drop the locks held
 * through the first.
 *
 * db is what stat() said of the log, or NULL if it does not exist yet.
 * Everyone who may use the log must be able to open its bell read-write,
 * so, as SQLite does for its -wal and -shm files, a new bell file gets
 * the log's permission bits, and a process running as root (pushctl run
 * by an administrator) hands the file to the log's owner; without a log
 * (a PostgreSQL log's wake-up folder, a log not made yet) the mode is
 * 0666 less the umask and root hands the file to the folder's owner (the
 * web server's user owns the folder it must write).
 */
static struct bell_file *
bell_file_get(const char *path, const struct stat *db, const char *dir)
{
	struct bell_file *f;
	struct stat st, ds;
	uint64_t zero = 0;
	mode_t mode = db != NULL ? (db->st_mode & 0666) : 0666;
	void *pg;
	int fd, e;

	if (stat(path, &st) == 0)
		for (f = bell_files; f != NULL; f = f->next)
			if (f->dev == st.st_dev && f->ino == st.st_ino) {
				f->refs++;
				return f;
			}
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, mode)) < 0)
		return NULL;
	if (fstat(fd, &st) != 0)
		goto fail;
	if (!S_ISREG(st.st_mode)) {
		errno = EINVAL;
		goto fail;
	}
	if (db != NULL && st.st_size == 0 && (st.st_mode & 0666) != mode)
		(void)fchmod(fd, mode);  /* new: the umask took some bits */
	if (db != NULL && geteuid() == 0 && (st.st_uid != db->st_uid ||
	    st.st_gid != db->st_gid))
		(void)fchown(fd, db->st_uid, db->st_gid);
	else if (db == NULL && st.st_size == 0 && geteuid() == 0 &&
	    stat(dir, &ds) == 0 && (st.st_uid != ds.st_uid ||
	    st.st_gid != ds.st_gid))
		(void)fchown(fd, ds.st_uid, ds.st_gid);
	/* Never shrink: concurrent creators all extend to the same size. */
	if (st.st_size < BELL_GATE_BASE && ftruncate(fd, BELL_GATE_BASE) != 0)
		goto fail;
	pg = mmap(NULL, BELL_GATE_BASE, PROT_READ | PROT_WRITE, MAP_SHARED,
	    fd, 0);
	if (pg == MAP_FAILED)
		goto fail;
	if ((f = calloc(1, sizeof(*f))) == NULL) {
		munmap(pg, BELL_GATE_BASE);
		errno = ENOMEM;
		goto fail;
	}
	f->pg = pg;
	__atomic_compare_exchange_n(&f->pg->magic, &zero, BELL_MAGIC, 0,
	    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&f->pg->magic, __ATOMIC_SEQ_CST) != BELL_MAGIC) {
		munmap(pg, BELL_GATE_BASE);
		free(f);
		errno = EPROTO;  /* not a bell file of this version */
		goto fail;
	}
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	f->fd = fd;
	f->refs = 1;
	f->gate = -1;
	f->next = bell_files;
	bell_files = f;
	return f;
fail:
	e = errno;
	close(fd);
	errno = e;
	return NULL;
}

/* Drop one reference; the last one unmaps and closes.  Caller holds
 * bell_files_mu. */
static void
bell_file_put(struct bell_file *f)
{
	struct bell_file **pp;

	if (--f->refs > 0)
		return;
	for (pp = &bell_files; *pp != NULL; pp = &(*pp)->next)
		if (*pp == f) {
			*pp = f->next;
			break;
		}
	munmap(f->pg, BELL_GATE_BASE);
	close(f->fd);
	free(f);
}

/* Open <db_path>-bell; see bell.h. */
int
bell_open(struct bell **out, const char *db_path, int check_ms)
{
	char path[PATH_MAX];
	struct stat db;
	struct bell *b;
	int n;

	*out = NULL;
	if (db_path == NULL || *db_path == '\0') {
		errno = EINVAL;
		return -1;
	}
	n = snprintf(path, sizeof(path), "%s%s", db_path, BELL_SUFFIX);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((b = calloc(1, sizeof(*b))) == NULL)
		return -1;
	pthread_mutex_init(&b->fmu, NULL);
	memcpy(b->path, path, (size_t)n + 1);
	snprintf(b->files[0], sizeof(b->files[0]), "%s", db_path);
	b->watch = -1;
	b->xfd = -1;
	if ((b->base = strrchr(b->files[0], '/')) == NULL) {
		b->base = b->files[0];
		snprintf(b->dir, sizeof(b->dir), ".");
	} else {
		snprintf(b->dir, sizeof(b->dir), "%.*s",
		    (int)(b->base - b->files[0]), b->files[0]);
		if (b->dir[0] == '\0')
			snprintf(b->dir, sizeof(b->dir), "/");
		b->base++;
	}
	if ((size_t)snprintf(b->files[1], sizeof(b->files[1]), "%s%s",
	    db_path, BELL_WAL_SUFFIX) >= sizeof(b->files[1]))
		b->files[1][0] = '\0';  /* no pre-check: check() every time */
	if (check_ms <= 0)
		check_ms = BELL_CHECK_DEFAULT_MS;
	b->check_ms = check_ms > BELL_CHECK_MAX_MS ? BELL_CHECK_MAX_MS :
	    check_ms;
	pthread_mutex_lock(&bell_files_mu);
	b->f = bell_file_get(path, stat(db_path, &db) == 0 ? &db : NULL,
	    b->dir);
	pthread_mutex_unlock(&bell_files_mu);
	if (b->f == NULL) {
		n = errno;
		pthread_mutex_destroy(&b->fmu);
		free(b);
		errno = n;
		return -1;
	}
	*out = b;
	return 0;
}

/* Close a handle; no thread may be waiting on it.  NULL is ignored. */
void
bell_close(struct bell *b)
{
	if (b == NULL)
		return;
	if (b->has_timer && b->timer_pid == getpid())
		timer_delete(b->timer);
	bell_watch_stop(b);
	pthread_mutex_lock(&bell_files_mu);
	bell_file_put(b->f);
	pthread_mutex_unlock(&bell_files_mu);
	pthread_mutex_destroy(&b->fmu);
	free(b);
}

/* Does b's path name another file than the one b has open (or none)? */
static int
bell_file_moved(const struct bell *b, const struct bell_file *f)
{
	struct stat st;

	if (stat(b->path, &st) != 0)
		return 1;
	return st.st_dev != f->dev || st.st_ino != f->ino;
}

int
bell_moved(struct bell *b)
{
	return bell_file_moved(b, b->f);
}

/* Switch b to the file its path names now; see bell.h. */
int
bell_reopen(struct bell *b)
{
	struct bell_file *nf, *old;
	struct stat db;
	int e;

	pthread_mutex_lock(&bell_files_mu);
	nf = bell_file_get(b->path, stat(b->files[0], &db) == 0 ? &db : NULL,
	    b->dir);
	e = errno;
	pthread_mutex_unlock(&bell_files_mu);
	if (nf == NULL) {
		errno = e;
		return -1;
	}
	pthread_mutex_lock(&b->fmu);
	old = b->f;
	b->f = nf;
	pthread_mutex_unlock(&b->fmu);
	/* Dropping the old file's last reference closes it, which drops
	 * only this process's locks on that file. */
	pthread_mutex_lock(&bell_files_mu);
	bell_file_put(old);
	pthread_mutex_unlock(&bell_files_mu);
	/* The log's files may be new too: no stamp of the old ones counts. */
	b->seen_at = 0;
	return 0;
}

/* The last id announced. */
int64_t
bell_last(struct bell *b)
{
	return __atomic_load_n(&b->f->pg->last, __ATOMIC_ACQUIRE);
}

/* Raise the shared last id to id if it is lower.  Returns 1 if it did. */
static int
bell_raise(struct bell_file *f, int64_t id)
{
	int64_t cur = __atomic_load_n(&f->pg->last, __ATOMIC_SEQ_CST);

	while (cur < id)
		if (__atomic_compare_exchange_n(&f->pg->last, &cur, id, 0,
		    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
			return 1;
	return 0;
}

/*
 * SIGURG to every gatekeeper of a gate below id (at most BELL_RING_PROBES
 * probes): F_GETLK reports one write lock of the range at a time, so the
 * range is split around each lock found.  Our own process's gate is
 * invisible to F_GETLK; unless skip_self, its keeping thread is signalled
 * directly.
 */
static void
bell_signal(struct bell_file *f, int64_t id, int skip_self)
{
	int64_t lo[BELL_RING_PROBES], hi[BELL_RING_PROBES];
	int64_t s, e, g;
	struct flock fl;
	int n = 0, probes = 0;

	lo[n] = bell_byte(0, BELL_KEEPER);
	hi[n++] = bell_byte(id, BELL_KEEPER);
	while (n > 0 && probes++ < BELL_RING_PROBES) {
		n--;
		memset(&fl, 0, sizeof(fl));
		fl.l_type = F_RDLCK;  /* conflicts with write locks only */
		fl.l_whence = SEEK_SET;
		fl.l_start = (off_t)lo[n];
		fl.l_len = (off_t)(hi[n] - lo[n]);
		if (fcntl(f->fd, F_GETLK, &fl) != 0 || fl.l_type == F_UNLCK)
			continue;
		if (fl.l_pid > 0)
			kill(fl.l_pid, SIGURG);
		s = fl.l_start > lo[n] ? fl.l_start : lo[n];
		e = fl.l_len == 0 ? hi[n] : fl.l_start + fl.l_len;
		if (e > hi[n])
			e = hi[n];
		g = hi[n];
		if (s > lo[n])
			hi[n++] = s;          /* keeps lo[n] */
		if (e < g && n < BELL_RING_PROBES) {
			lo[n] = e;
			hi[n++] = g;
		}
	}
	g = __atomic_load_n(&f->gate, __ATOMIC_SEQ_CST);
	if (!skip_self && g >= 0 && g < id)
		syscall(SYS_tgkill, getpid(),
		    __atomic_load_n(&f->keeper, __ATOMIC_SEQ_CST), SIGURG);
}

/* Announce id; see bell.h. */
void
bell_ring(struct bell *b, int64_t id)
{
	if (id <= 0)
		return;
	if (id > BELL_ID_MAX)
		id = BELL_ID_MAX;
	/* Probe even if someone else raised last already: they may have
	 * died before probing, and a probe costs microseconds. */
	pthread_mutex_lock(&b->fmu);
	bell_raise(b->f, id);
	bell_signal(b->f, id, 0);
	/* A bell file replaced under us (bell.h): the waiters of the one
	 * at the path, who may never hear the old one, are told too. */
	if (bell_file_moved(b, b->f))
		bell_ring_path(b, id);
	pthread_mutex_unlock(&b->fmu);
}

/* Announce id on the bell file b's path names now (created if missing,
 * as bell_open would), when that is not b's own.  Under b->fmu. */
static void
bell_ring_path(struct bell *b, int64_t id)
{
	struct bell_file *nf;
	struct stat db, st;

	if (stat(b->path, &st) != 0)
		return;  /* nobody waits on a bell that is not there */
	pthread_mutex_lock(&bell_files_mu);
	nf = bell_file_get(b->path, stat(b->files[0], &db) == 0 ? &db : NULL,
	    b->dir);
	pthread_mutex_unlock(&bell_files_mu);
	if (nf == NULL)
		return;
	if (nf != b->f) {
		bell_raise(nf, id);
		bell_signal(nf, id, 0);
	}
	pthread_mutex_lock(&bell_files_mu);
	bell_file_put(nf);
	pthread_mutex_unlock(&bell_files_mu);
}

/* Lower a bell left ahead by another log; see bell.h. */
int
bell_lower(struct bell *b, int64_t seen, int64_t id)
{
	struct bell_file *f;
	int64_t cur = seen;
	int done = 0;

	if (id < 0 || seen <= id)
		return 0;
	pthread_mutex_lock(&b->fmu);
	f = b->f;
	/* Only from the value the caller saw: a ring since then is this
	 * log's own and stays. */
	done = __atomic_compare_exchange_n(&f->pg->last, &cur, id, 0,
	    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
	/* The gatekeepers of the old gate see last move and let go: their
	 * waiters wait on the new gate from then on. */
	if (done)
		bell_signal(f, cur + 1 > BELL_ID_MAX ? BELL_ID_MAX : cur + 1,
		    0);
	pthread_mutex_unlock(&b->fmu);
	return done;
}

/* Interrupt the waiting thread; async-signal-safe. */
void
bell_interrupt(struct bell *b)
{
	__atomic_store_n(&b->interrupt, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&b->waiting, __ATOMIC_SEQ_CST))
		bell_arm(b, 1);
}

/* Make sure b has a timer that signals the calling thread. */
static int
bell_timer(struct bell *b)
{
	struct sigevent sev;
	pid_t tid = (pid_t)syscall(SYS_gettid);

	if (b->has_timer && b->timer_tid == tid)
		return 0;
	/* A handle used by another thread, or inherited over fork (the
	 * child has no timers). */
	if (b->has_timer && b->timer_pid == getpid())
		timer_delete(b->timer);
	b->has_timer = 0;
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_THREAD_ID;
	sev.sigev_signo = SIGALRM;
	sev.sigev_notify_thread_id = tid;
	if (timer_create(CLOCK_MONOTONIC, &sev, &b->timer) != 0)
		return -1;
	b->has_timer = 1;
	b->timer_tid = tid;
	b->timer_pid = getpid();
	return 0;
}

/*
 * Block for a lock of the given type on len bytes at off, for at most ns
 * nanoseconds (ns < 0: no bound).  Returns 0 when granted, or -1 with
 * errno (EINTR when the bound passed, an interrupt came, or another signal
 * arrived).
 */
static int
bell_lock_wait(struct bell *b, short type, off_t off, off_t len, int64_t ns)
{
	int r, e;

	if (ns >= 0) {
		__atomic_store_n(&b->timed, 1, __ATOMIC_SEQ_CST);
		bell_arm(b, ns > 0 ? ns : 1);
		/* Our arming may have overwritten an interrupt's. */
		if (__atomic_load_n(&b->interrupt, __ATOMIC_SEQ_CST)) {
			__atomic_store_n(&b->timed, 0, __ATOMIC_SEQ_CST);
			bell_arm(b, 0);
			errno = EINTR;
			return -1;
		}
	}
	r = bell_lock(b->f->fd, F_SETLKW, type, off, len);
	e = errno;
	if (ns >= 0) {
		__atomic_store_n(&b->timed, 0, __ATOMIC_SEQ_CST);
		bell_arm(b, 0);
	}
	errno = e;
	return r;
}

/* stat() of path into *s; all zero if it cannot be had. */
static void
bell_stamp(const char *path, struct bell_stamp *s)
{
	struct stat st;

	memset(s, 0, sizeof(*s));
	if (stat(path, &st) != 0)
		return;
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	s->size = st.st_size;
	s->mtime = (int64_t)st.st_mtim.tv_sec * BELL_NS + st.st_mtim.tv_nsec;
}

/*
 * The keeper's look for plain SQL inserts costs a SQLite read transaction,
 * and every one of those walks the POSIX locks that all the log's other
 * connections hold on its -shm file: with 1000 waiting processes that is
 * a few hundred microseconds, every check_ms.  A commit in WAL mode always
 * writes the -wal file (or, if someone turned WAL off, the log itself), so
 * two stat() calls tell that nothing was committed: 1 if both files look
 * as they did at the previous check() and may be trusted, else 0 (then
 * the caller runs check() and this records the files as they were just
 * before it).  Trusted means: the recorded mtimes were older than the
 * moment of recording by BELL_STAT_MARGIN_NS, so timestamp granularity
 * cannot hide a write that came after it; and check() ran less than
 * BELL_CHECK_FORCE_MS ago, a bound that holds whatever the file system's
 * timestamps do; and the log is a file there.  now is CLOCK_MONOTONIC ns.
 */
static int
bell_quiet(struct bell *b, int64_t now)
{
	struct bell_stamp cur[2];
	struct timespec ts;
	int64_t wall;
	int i, same = 1;

	if (b->files[1][0] == '\0')
		return 0;
	clock_gettime(CLOCK_REALTIME, &ts);
	wall = (int64_t)ts.tv_sec * BELL_NS + ts.tv_nsec;
	for (i = 0; i < 2; i++) {
		bell_stamp(b->files[i], &cur[i]);
		if (memcmp(&cur[i], &b->seen[i], sizeof(cur[i])) != 0 ||
		    cur[i].mtime > b->seen_at - BELL_STAT_MARGIN_NS)
			same = 0;
	}
	/* No log file at the path (a removed log, or a log that is not a
	 * file of this host, such as a database server's): its stamps
	 * tell nothing, check() looks. */
	if (cur[0].dev == 0 && cur[0].ino == 0)
		same = 0;
	if (same && b->seen_at != 0 &&
	    now - b->checked < BELL_CHECK_FORCE_MS * BELL_MS)
		return 1;
	memcpy(b->seen, cur, sizeof(cur));
	b->seen_at = wall;
	b->checked = now;
	return 0;
}

/*
 * The keeper's watch for plain SQL inserts: an inotify instance on the
 * log's folder, which reports every write to the log or its -wal (SQLite
 * writes them with write(), never through a shared mapping).  While it
 * works the keeper checks at once after a write, and otherwise only every
 * BELL_WATCH_CHECK_MS as a safety net, instead of every check_ms: an idle
 * keeper then wakes once a second rather than ten times.
 *
 * The instance outlives the gate: a keeper keeps it when it lets go, and
 * closes it only once it waits as a plain waiter (step 3), another
 * process keeping the gates now.  Closing an inotify instance waits in
 * the kernel for an RCU grace period (measured: ~11 ms): done at every
 * gate, it held the keeper between seeing a publish and releasing the
 * gate, and every message reached every subscriber that much later.  A
 * waiter about to sleep pays it instead, at the rare moments when the
 * keeping changes hands.  So a log has one or two instances at a time
 * (a user may create 128 by default); if none can be had, the keeper
 * checks every check_ms as before.  Events that came while this process
 * did not keep are drained here (the keeper checks at once anyway).
 * Returns 0 when watching.
 */
static int
bell_watch_start(struct bell *b)
{
	if (b->watch >= 0) {
		(void)bell_watch_drain(b);
		return 0;
	}
	if (b->files[1][0] == '\0')
		return -1;
	if ((b->watch = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0)
		return -1;
	/* Writes, and the log or its bell removed, created or moved in
	 * or out: check() then also finds a replaced log (bell.h). */
	if (inotify_add_watch(b->watch, b->dir, IN_MODIFY | IN_MOVED_TO |
	    IN_MOVED_FROM | IN_CREATE | IN_DELETE) < 0) {
		close(b->watch);
		b->watch = -1;
		return -1;
	}
	return 0;
}

static void
bell_watch_stop(struct bell *b)
{
	if (b->watch >= 0) {
		close(b->watch);
		b->watch = -1;
	}
}

/* Read the pending events: 1 if one concerns the log, its -wal or
 * -journal (or some were lost), else 0. */
static int
bell_watch_drain(struct bell *b)
{
	char buf[BELL_EVENTS_MAX]
	    __attribute__((aligned(__alignof__(struct inotify_event))));
	const struct inotify_event *ev;
	size_t blen = strlen(b->base);
	const char *sfx;
	ssize_t n;
	char *p;
	int ours = 0;

	while ((n = read(b->watch, buf, sizeof(buf))) > 0) {
		for (p = buf; p < buf + n; p += sizeof(*ev) + ev->len) {
			ev = (const struct inotify_event *)p;
			if (ev->mask & IN_Q_OVERFLOW) {
				ours = 1;
				continue;
			}
			if (ev->len == 0 || strncmp(ev->name, b->base,
			    blen) != 0)
				continue;
			sfx = ev->name + blen;
			if (*sfx == '\0' || strcmp(sfx, BELL_WAL_SUFFIX) == 0 ||
			    strcmp(sfx, BELL_JOURNAL_SUFFIX) == 0 ||
			    (strcmp(sfx, BELL_SUFFIX) == 0 &&
			    !(ev->mask & IN_MODIFY)))
				ours = 1;
		}
	}
	return ours;
}

/*
 * The keeper's sleep: at most wait ns, in ppoll() on the watch (if any)
 * and bell_keeper_fd's descriptor (if any) with mask (the thread's, SIGURG
 * let through), so that a publisher's signal, another signal, a write to
 * the log or news on that descriptor ends it.  A SIGURG that came while
 * we were awake is pending and ends it at once.  Returns 1 after a write
 * to the log, 2 on news on the descriptor (check() runs then, whatever
 * the log's files look like), else 0.
 */
static int
bell_doze(struct bell *b, int64_t wait, const sigset_t *mask)
{
	struct pollfd pfd[2];
	struct timespec ts;
	nfds_t n = 0;
	int w = -1, x = -1;

	ts.tv_sec = wait / BELL_NS;
	ts.tv_nsec = wait % BELL_NS;
	if (b->watch >= 0) {
		w = (int)n;
		pfd[n].fd = b->watch;
		pfd[n].events = POLLIN;
		pfd[n++].revents = 0;
	}
	if (b->xfd >= 0) {
		x = (int)n;
		pfd[n].fd = b->xfd;
		pfd[n].events = POLLIN;
		pfd[n++].revents = 0;
	}
	if (ppoll(pfd, n, &ts, mask) <= 0)
		return 0;
	/* The other descriptor's news is check()'s to consume. */
	if (x >= 0 && (pfd[x].revents & (POLLIN | POLLERR | POLLHUP)))
		return 2;
	if (w >= 0 && (pfd[w].revents & POLLIN))
		return bell_watch_drain(b);
	return 0;
}

void
bell_keeper_fd(struct bell *b, int fd)
{
	b->xfd = fd;
}

/* Sleep ms milliseconds (cut short by any signal): only after a lock
 * refusal that should not happen, so that it can never become a spin. */
static void
bell_pause(int64_t ms)
{
	struct timespec ts;

	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * BELL_MS;
	nanosleep(&ts, NULL);
}

/*
 * The spare's part of step 2: the caller holds the spare byte of gate L.
 * Block for the keeper byte, bounded by the deadline (ns, -1 none), so
 * that whatever makes the keeper let go (progress, its deadline, its
 * death) wakes us.  Returns BELL_KEEPER when we hold both bytes, else
 * BELL_AGAIN (spare byte released; back to step 1) or BELL_ERROR.
 */
static int
bell_stand_by(struct bell *b, int64_t L, int64_t deadline)
{
	struct bell_file *f = b->f;
	int64_t left;

	for (;;) {
		if (__atomic_load_n(&f->pg->last, __ATOMIC_SEQ_CST) != L ||
		    __atomic_load_n(&b->interrupt, __ATOMIC_SEQ_CST))
			break;
		left = -1;
		if (deadline >= 0 && (left = deadline - mono_ns()) <= 0)
			break;
		if (bell_lock_wait(b, F_WRLCK, bell_byte(L, BELL_KEEPER), 1,
		    left) == 0)
			return BELL_KEEPER;
		if (errno == EDEADLK || errno == ENOLCK)
			bell_pause(BELL_BACKOFF_MS);
		else if (errno != EINTR)
			break;
	}
	if (bell_lock(f->fd, F_SETLK, F_UNLCK, bell_byte(L, BELL_SPARE), 1) !=
	    0)
		return BELL_ERROR;
	return BELL_AGAIN;
}

/*
 * Step 2: the caller holds the write lock of byte `role` of gate L.  A
 * spare first stands by until it holds the keeper byte too, then lets go
 * of its own.  The keeper keeps its byte until last moves, check() finds a
 * newer id, the deadline (ns, -1 none) passes or an interrupt comes; then
 * releases it.  Returns BELL_AGAIN (back to step 1, which tells those
 * cases apart) or BELL_ERROR.
 */
static int
bell_keep(struct bell *b, int64_t L, int role, int64_t deadline,
    bell_check_fn check, void *arg)
{
	struct bell_file *f = b->f;
	struct timespec zero = { 0, 0 };
	sigset_t urg, doze;
	int64_t now, next, wait, x;
	int r, period, settle = 0, leave = 0, news = 0;

	sigemptyset(&urg);
	sigaddset(&urg, SIGURG);
	pthread_sigmask(SIG_BLOCK, NULL, &doze);
	sigdelset(&doze, SIGURG);
	__atomic_store_n(&f->keeper, (pid_t)syscall(SYS_gettid),
	    __ATOMIC_SEQ_CST);
	__atomic_store_n(&f->gate, L, __ATOMIC_SEQ_CST);
	if (role == BELL_SPARE) {
		if ((r = bell_stand_by(b, L, deadline)) != BELL_KEEPER) {
			__atomic_store_n(&f->gate, -1, __ATOMIC_SEQ_CST);
			return r;
		}
		/* Both bytes held: a probe finds us at every moment. */
		bell_lock(f->fd, F_SETLK, F_UNLCK, bell_byte(L, BELL_SPARE), 1);
	}
	/* A SIGURG left over from an earlier gate would only cost a spurious
	 * round; drop it BEFORE the re-read so no new one can be lost. */
	while (sigtimedwait(&urg, NULL, &zero) == SIGURG)
		;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	/* Watch before the first check: a write after it shows as an event. */
	period = bell_watch_start(b) == 0 && b->check_ms < BELL_WATCH_CHECK_MS ?
	    BELL_WATCH_CHECK_MS : b->check_ms;
	next = mono_ns();  /* check at once */
	for (;;) {
		if (__atomic_load_n(&f->pg->last, __ATOMIC_SEQ_CST) != L)
			break;
		if (__atomic_load_n(&b->interrupt, __ATOMIC_SEQ_CST))
			break;
		now = mono_ns();
		if (now >= next) {
			/* News on bell_keeper_fd's descriptor is check()'s to
			 * consume: the log's files say nothing of it. */
			x = check != NULL && (news || !bell_quiet(b, now)) ?
			    check(arg) : -1;
			news = 0;
			if (x == BELL_CHECK_LEAVE) {
				leave = 1;
				break;
			}
			if (x > BELL_ID_MAX)
				x = BELL_ID_MAX;
			if (x > L) {
				bell_raise(f, x);
				bell_signal(f, x, 1);
				break;
			}
			now = mono_ns();
			/* After a write the commit may not be visible yet (the
			 * writer still syncs or updates the -shm index, which
			 * makes no event): look again soon, less and less. */
			if (settle > 0 && settle < period) {
				next = now + (int64_t)settle * BELL_MS;
				settle *= 2;
			} else {
				settle = 0;
				next = now + (int64_t)period * BELL_MS;
			}
		}
		if (deadline >= 0 && now >= deadline)
			break;
		wait = next - now;
		if (deadline >= 0 && deadline - now < wait)
			wait = deadline - now;
		/* SIGURG, a timeout or another signal: look again; a write
		 * to the log's files: check at once. */
		if ((r = bell_doze(b, wait, &doze)) > 0) {
			next = mono_ns();
			settle = BELL_SETTLE_MS;
			news = r == 2;
		}
	}
	/* The watch stays open for the next gate (bell_watch_start). */
	__atomic_store_n(&f->gate, -1, __ATOMIC_SEQ_CST);
	if (bell_lock(f->fd, F_SETLK, F_UNLCK, bell_byte(L, BELL_KEEPER), 1) !=
	    0)
		return BELL_ERROR;
	return leave ? BELL_INTERRUPTED : BELL_AGAIN;
}

/* Steps 1-4 (see the top of this file).  deadline in CLOCK_MONOTONIC ns,
 * -1 for none. */
static int
bell_loop(struct bell *b, int64_t seen, int64_t deadline, bell_check_fn check,
    void *arg)
{
	struct bell_file *f = b->f;
	int64_t L, left, bound;
	int r, role;

	for (;;) {
		if (__atomic_exchange_n(&b->interrupt, 0, __ATOMIC_SEQ_CST))
			return BELL_INTERRUPTED;
		L = __atomic_load_n(&f->pg->last, __ATOMIC_SEQ_CST);
		if (L > seen)
			return BELL_READY;
		left = -1;
		if (deadline >= 0 && (left = deadline - mono_ns()) <= 0)
			return BELL_TIMEOUT;
		if (L < 0 || L > BELL_ID_MAX) {
			errno = ERANGE;
			return BELL_ERROR;
		}
		/* Step 1: keeper, else spare. */
		for (role = BELL_KEEPER; role <= BELL_SPARE; role++) {
			if (bell_lock(f->fd, F_SETLK, F_WRLCK,
			    bell_byte(L, role), 1) == 0)
				break;
			if (errno != EAGAIN && errno != EACCES)
				return BELL_ERROR;
		}
		if (role <= BELL_SPARE) {
			if ((r = bell_keep(b, L, role, deadline, check, arg)) !=
			    BELL_AGAIN)
				return r;
			continue;
		}
		/* Step 3.  Another process keeps: a watch kept from our
		 * last gate is closed now, before we sleep (see
		 * bell_watch_start). */
		bell_watch_stop(b);
		if (bell_lock_wait(b, F_RDLCK, bell_byte(L, BELL_KEEPER), 2,
		    left) != 0) {
			if (errno == EINTR)
				continue;
			if (errno != EDEADLK && errno != ENOLCK)
				return BELL_ERROR;
			bell_pause(BELL_BACKOFF_MS);
			continue;
		}
		if (bell_lock(f->fd, F_SETLK, F_UNLCK,
		    bell_byte(L, BELL_KEEPER), 2) != 0)
			return BELL_ERROR;
		if (__atomic_load_n(&f->pg->last, __ATOMIC_SEQ_CST) != L)
			continue;
		/* Step 4: both gatekeepers left without progress. */
		bound = BELL_REQUEUE_MS * BELL_MS;
		if (deadline >= 0 && (left = deadline - mono_ns()) < bound)
			bound = left > 0 ? left : 0;
		if (bell_lock_wait(b, F_WRLCK, bell_byte(L, BELL_KEEPER), 1,
		    bound) == 0) {
			if ((r = bell_keep(b, L, BELL_KEEPER, deadline, check,
			    arg)) != BELL_AGAIN)
				return r;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EDEADLK && errno != ENOLCK)
			return BELL_ERROR;
		bell_pause(BELL_BACKOFF_MS);
	}
}

/* Wait for an id above seen; see bell.h. */
int
bell_wait(struct bell *b, int64_t seen, int timeout_ms, bell_check_fn check,
    void *arg)
{
	sigset_t set, old;
	int64_t deadline = -1;
	int rc, restore, e;

	if (!__atomic_load_n(&bell_signals_ready, __ATOMIC_SEQ_CST) &&
	    bell_init_signals() != 0)
		return BELL_ERROR;
	if (__atomic_exchange_n(&b->interrupt, 0, __ATOMIC_SEQ_CST))
		return BELL_INTERRUPTED;
	if (bell_last(b) > seen)
		return BELL_READY;
	if (timeout_ms == 0)
		return BELL_TIMEOUT;
	if (timeout_ms > 0)
		deadline = mono_ns() + (int64_t)timeout_ms * BELL_MS;
	if (bell_timer(b) != 0)
		return BELL_ERROR;
	/* SIGURG blocked (but in the keeper's ppoll), SIGALRM deliverable. */
	sigemptyset(&set);
	sigaddset(&set, SIGURG);
	if ((errno = pthread_sigmask(SIG_BLOCK, &set, &old)) != 0)
		return BELL_ERROR;
	restore = !sigismember(&old, SIGURG);
	if (sigismember(&old, SIGALRM)) {
		sigemptyset(&set);
		sigaddset(&set, SIGALRM);
		pthread_sigmask(SIG_UNBLOCK, &set, NULL);
		restore = 1;
	}
	bell_cur = b;
	__atomic_store_n(&b->waiting, 1, __ATOMIC_SEQ_CST);
	rc = bell_loop(b, seen, deadline, check, arg);
	e = errno;
	__atomic_store_n(&b->waiting, 0, __ATOMIC_SEQ_CST);
	bell_cur = NULL;
	/* An interrupt's timer would otherwise fire in the caller's code. */
	if (rc == BELL_INTERRUPTED ||
	    __atomic_load_n(&b->interrupt, __ATOMIC_SEQ_CST))
		bell_arm(b, 0);
	if (restore)
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	errno = e;
	return rc;
}
