/*
 * bell: daemon-less cross-process wake-ups through file locks.
 *
 * A bell file sits beside the log (<db>-bell).  Its first page is shared
 * memory holding the last message id anyone announced; publishers raise it
 * after each commit.  Waiters sleep in the kernel on POSIX record locks of
 * "gates" (gate L = the two bytes at offset BELL_GATE_BASE + 2L, meaning
 * "nothing after L yet"); one of them, the gatekeeper, holds the first
 * byte's write lock, wakes on SIGURG from a publisher, looks for plain SQL
 * inserts when the log's files are written (inotify on their folder;
 * every check_ms where it cannot watch), and releases the gate when the
 * last id has moved, which wakes all others at once.  A second one holds the other
 * byte as a spare, so that a gatekeeper's leaving does not wake everyone.
 * The protocol, and why each step is there, is in bell.c.
 *
 * Rules for callers:
 * - one struct bell per process (POSIX locks are per process: closing any
 *   other descriptor of the bell file would drop them);
 * - in a threaded process only one thread calls bell_wait() (the hub's bell
 *   thread); others may call bell_last() and bell_ring();
 * - call bell_init_signals() before creating any thread: it blocks SIGURG
 *   (let through only in the gatekeeper's ppoll) and installs no-op
 *   handlers for it and for SIGALRM, used to time out lock waits.
 */
#ifndef PUSHCGI_BELL_H
#define PUSHCGI_BELL_H

#include <stdint.h>
#include <pthread.h>

#define BELL_GATE_BASE 4096  /* offset of gate 0's first byte */
#define BELL_REQUEUE_MS 200  /* bounded write-lock queueing after a herd */

struct bell;

/* Returns the current last id known to the log, or -1 on error, or
 * BELL_CHECK_LEAVE to make bell_wait return BELL_INTERRUPTED now (the
 * log or the bell was replaced: the caller reopens).  Called by the
 * gatekeeper at once, whenever the log's folder shows a write to the log
 * or the log or bell removed, created or moved, and at least once a
 * second (every check_ms where the folder cannot be watched); must be
 * cheap when nothing changed (see mlog_changed). */
#define BELL_CHECK_LEAVE (-2)
typedef int64_t (*bell_check_fn)(void *arg);

enum { BELL_TIMEOUT = 0, BELL_READY = 1, BELL_INTERRUPTED = 2,
       BELL_ERROR = -1 };

int bell_init_signals(void);

/* Open or create <db_path>-bell.  Returns 0 or -1 with errno set. */
int bell_open(struct bell **out, const char *db_path, int check_ms);
void bell_close(struct bell *b);

/* The last id announced (a relaxed atomic read of shared memory).  From
 * the waiting thread (or while none waits): see bell_reopen. */
int64_t bell_last(struct bell *b);

/* Announce that id has been committed: raise the shared last id to id if
 * lower, and signal the gatekeeper(s) of every gate below id.  If the
 * path names another bell file than b's (removed and made anew), that
 * one is rung too.  Any thread. */
void bell_ring(struct bell *b, int64_t id);

/*
 * A replaced bell file: bell_moved() is 1 when <db>-bell names another
 * file than the one b has open, or none (one stat()).  bell_reopen()
 * switches b to the file there now (creating it, as bell_open does) and
 * drops this process's locks on the old one; 0, or -1 with errno (then
 * b stays as it was).  Call bell_reopen from the thread that waits, never
 * during a bell_wait; the other threads may go on ringing meanwhile.
 */
int bell_moved(struct bell *b);
int bell_reopen(struct bell *b);

/*
 * A bell kept while its log was replaced holds the old log's last id, so
 * every wait would return at once until the new log's ids passed it.
 * Whoever reads bell_last() as `seen` and THEN the log's highest id ever
 * given (mlog_last_id) as `id`, and finds seen > id, knows the bell
 * belongs to another log (a publisher rings only after its commit):
 * bell_lower() sets last from seen (only if it still is seen) to id and
 * wakes the gatekeepers of the old gate.  Returns 1 if it lowered.
 */
int bell_lower(struct bell *b, int64_t seen, int64_t id);

/*
 * Sleep until bell_last() > seen (BELL_READY), timeout_ms passes
 * (BELL_TIMEOUT; -1 = no timeout) or bell_interrupt() is called
 * (BELL_INTERRUPTED).  check (may be NULL) finds plain SQL inserts while
 * this process is the gatekeeper.  Uses no CPU while it sleeps.
 */
int bell_wait(struct bell *b, int64_t seen, int timeout_ms,
    bell_check_fn check, void *arg);

/* Make the thread blocked in bell_wait() on b return BELL_INTERRUPTED soon
 * (or its next bell_wait() at once).  Async-signal-safe and callable from
 * any thread.  It fires that thread's SIGALRM timer: if it races with
 * bell_wait() returning, one stray SIGALRM (an EINTR) may follow. */
void bell_interrupt(struct bell *b);

/*
 * Another way news comes, for a log whose writers may be on other hosts
 * (a database server's notifications): while this process is the
 * gatekeeper it also polls fd for input, and calls check() at once when
 * fd is readable (or fails); check() must consume what made it readable,
 * or the keeper would call it again and again.  -1: none.  From the
 * waiting thread (check() itself may call it, e.g. to open the
 * descriptor only once it is the keeper).
 */
void bell_keeper_fd(struct bell *b, int fd);

#endif
