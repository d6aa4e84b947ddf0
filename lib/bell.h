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

/* Returns the current last id known to the log, or -1 on error.  Called by
 * the gatekeeper at once and then every check_ms; must be cheap when
 * nothing changed (see mlog_changed). */
typedef int64_t (*bell_check_fn)(void *arg);

enum { BELL_TIMEOUT = 0, BELL_READY = 1, BELL_INTERRUPTED = 2,
       BELL_ERROR = -1 };

int bell_init_signals(void);

/* Open or create <db_path>-bell.  Returns 0 or -1 with errno set. */
int bell_open(struct bell **out, const char *db_path, int check_ms);
void bell_close(struct bell *b);

/* The last id announced (a relaxed atomic read of shared memory). */
int64_t bell_last(struct bell *b);

/* Announce that id has been committed: raise the shared last id to id if
 * lower, and signal the gatekeeper(s) of every gate below id. */
void bell_ring(struct bell *b, int64_t id);

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

#endif
