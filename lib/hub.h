/*
 * hub: in-process fan-out of new messages to the request threads.
 *
 * One hub per process.  Its thread is the process's only bell waiter
 * (POSIX locks are per process, see bell.h): when the log's last id moves
 * it reads the new messages once, over its own connection, into a ring of
 * recent messages, and wakes the subscriptions that care: through
 * their own eventfd (hub_sub_fd), or, for a request parked in the
 * process's loop (park.h), by a call into the loop (hub_sub_notify).  The
 * owner (a request's thread polls that descriptor together with its
 * client connection and a heartbeat timeout; the loop waits for all of
 * its requests at once) then calls
 * hub_sub_next(), which hands it every message after its cursor: from the
 * ring when the ring still covers the cursor, else read from the log over
 * the shared connection, a capped batch per lock (a subscriber holds no
 * SQLite connection of its own: thousands of them would cost memory and
 * descriptors).  No message is ever skipped: what retention removed
 * before a subscriber saw it is reported as a gap.
 *
 * The ring is complete above hub "base": every message with an id in
 * (base, cursor] is in it.  Evicting a message, or a gap seen by the hub
 * thread, raises base; a subscriber whose cursor is below base reads the
 * log itself, which also tells it exactly which gap concerns its channels.
 *
 * A second, shared connection (hub_db / hub_db_done, under a mutex) serves
 * short operations of any thread: the streams table (subscriber counts),
 * the last id, publishing.
 *
 * Control requests (store.h: the reserved STORE_CONTROL channel, written by
 * store_end_stream / store_end_channel or plain SQL) are
 * read by the same hub thread, once per process, and never reach the
 * ring: a request ending stream ID, or channel C, marks the matching
 * subscriptions of this process ended (those that began before the
 * request) and wakes them; their threads see hub_sub_ended(), end their
 * responses cleanly and unsubscribe.  Every message published before the
 * request is still delivered first.
 *
 * Lifetime: hub_open starts the thread; hub_stop makes every subscription
 * wake up and see hub_stopping(); hub_close (after the last unsubscribe)
 * joins the thread and frees everything.  The hub thread waits on a
 * condition variable, not on the bell, while no subscription exists.
 *
 * The hub thread's bell wait has no time bound: it returns on progress,
 * or when hub_stop, hub_interrupt or the last hub_unsubscribe interrupts
 * it.  Heartbeats are the subscription threads' business (their poll
 * timeout), so an idle process never leaves the bell: a gatekeeper that
 * let go of its gate every second would wake every other waiting process
 * of the log each time (bell.c), and a process that rejoined the gate
 * every second would cost a wake-up each; with a thousand CGI responders
 * that was a thousand wake-ups a second while nothing happened.
 */
#ifndef PUSHCGI_HUB_H
#define PUSHCGI_HUB_H

#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "store.h"

#define HUB_RING_MSGS    1024        /* messages kept in the ring */
#define HUB_RING_BYTES   (8L << 20)  /* bytes of data kept in the ring */
#define HUB_BATCH        64          /* messages handed over per lock */
#define HUB_DB_BATCH     256         /* messages per catch-up read */
#define HUB_DB_BYTES     (4L << 20)  /* bytes copied per read, catch-up or
                                        the hub thread's (at least one
                                        message is always taken) */
#define HUB_ERR_MAX      160         /* bytes of a failure reason kept */
#define HUB_SECRET_BYTES 16          /* random bytes in a stream's secret */
#define HUB_HANDLE_MAX   64          /* "ID.SECRET" with its NUL */
#define HUB_WATCH_MS     100         /* hub_watch_soon: between two looks */

enum {
	HUB_OK = 0,
	HUB_ERR = -1,      /* database or system failure: see hub_sub_error */
	HUB_EFULL = -2,    /* max_channel_subscribers reached */
	HUB_ESTOP = -3,    /* the hub is stopping */
	HUB_EUNAVAIL = -4  /* the log cannot be used now (STORE_EUNAVAIL) */
};

#define HUB_REGISTER 1     /* hub_subscribe: add a row to the streams table */
#define HUB_RESET (-1)     /* hub_cb's gap: the log was replaced */

/*
 * A message held by reference: m's pointers point into this allocation,
 * which lives until the last hub_msg_drop().  Ring messages and messages
 * read for catch-up look the same.
 */
struct hub_msg {
	struct store_msg m;
	int refs;
};

/*
 * Called by hub_sub_next/hub_sub_latest outside any lock, once per
 * message (gap 0), or with m NULL and gap > 0 when messages up to gap on
 * these channels were pruned before this subscriber saw them, or with m
 * NULL and gap HUB_RESET when the cursor belonged to another log file
 * (the log was replaced, see "A replaced log" in mlog.h): what was not
 * seen of the old log may be lost, the cursor is now 0 and the
 * messages that follow are the new log's, from its beginning.  m is held
 * for the call; hub_msg_hold() keeps it longer.  Return 0 to go on,
 * non-zero to stop (that value is returned).
 */
typedef int (*hub_cb)(void *arg, struct hub_msg *m, int64_t gap);

struct hub;
struct hub_sub;

/* Open the log (created if missing) with the process's wake-up, the
 * shared connection, and start the hub thread.  Call store_process_init()
 * first.  Returns HUB_OK,
 * or HUB_EUNAVAIL (the log or its bell file cannot be used now, see
 * STORE_EUNAVAIL) or HUB_ERR with a one-line reason in err. */
int hub_open(struct hub **out, const struct conf *c, char *err,
    size_t errlen);
/*
 * A replaced log (mlog.h).  The hub thread looks whether the path still
 * names the log and bell it has open at every wake-up and in every
 * gatekeeper check (which the folder watch triggers at once when the
 * log or its bell is removed, created or moved); hub_publish looks in
 * the write transaction (store_append).  When they changed, the hub
 * thread alone reopens both connections and the bell, and every
 * subscription reports HUB_RESET once and goes on from the new log's
 * beginning; its streams row is registered again in the new log (under
 * a new id: the handle it gave out no longer ends it).  hub_publish
 * that finds the log moved before its commit waits (at most
 * HUB_RELOG_WAIT_MS, defined in hub.c) for the reopen and tries once
 * more; otherwise, and when it moved during the commit, it returns
 * STORE_EMOVED: the message is not in the log at the path.
 *
 * hub_watch() is for any thread, at each heartbeat of a stream or a held
 * poll and at a poll's start: two stat() calls comparing the paths with
 * the files the hub has open; on a difference it asks the hub thread to
 * reopen and returns 1.  It also keeps this process's streams rows
 * counting (store_touch, at most twice a heartbeat per process).
 * hub_gen() counts the log files the hub has followed (0 at first).
 */
int hub_watch(struct hub *h);
/* hub_watch, at most once every HUB_WATCH_MS for the process (a poll's
 * look: a thousand polls coming back after a message would otherwise
 * stat the log two thousand times); 0 when it did not look. */
int hub_watch_soon(struct hub *h);
int64_t hub_gen(struct hub *h);

/* Wake every subscription for the end (they see hub_stopping()). */
void hub_stop(struct hub *h);
/* Async-signal-safe: make the hub thread leave a bell wait now. */
void hub_interrupt(struct hub *h);
int hub_stopping(struct hub *h);
/* Join the thread, free the ring, close the connections and the bell.
 * Every subscription must have been closed. */
void hub_close(struct hub *h);

/* The shared connection, locked until hub_db_done().  Keep it short. */
struct store *hub_db(struct hub *h);
void hub_db_done(struct hub *h);

/* Publish one message over the shared connection (store_publish: it
 * wakes every waiter).  Returns a STORE_* code (STORE_EMOVED: see "A replaced log" above); the
 * reason then is in err. */
int hub_publish(struct hub *h, const char *channel, const char *type,
    const char *event, const void *data, size_t len, int64_t *id,
    char *err, size_t errlen);

/*
 * Subscribe to channels[0..n-1] (valid, distinct names; copied).  The
 * cursor starts after `after`, or at the log's current end if after < 0.
 * With HUB_REGISTER a streams row is added (and removed again by
 * hub_unsubscribe) with a fresh random secret (HUB_SECRET_BYTES from
 * getrandom, as lowercase hex), and its id stored in *stream.  Returns
 * HUB_OK, HUB_EFULL, HUB_ESTOP, HUB_EUNAVAIL (the log cannot be written
 * now, STORE_EUNAVAIL) or HUB_ERR (reason in err).
 */
int hub_subscribe(struct hub *h, struct hub_sub **out,
    const char *const *channels, int n, int64_t after, int flags,
    int64_t *stream, char *err, size_t errlen);
/* Remove the subscription (and its streams row), close its descriptors. */
void hub_unsubscribe(struct hub_sub *s);
/*
 * Add the streams row that HUB_REGISTER would have added to a
 * subscription made without it (a held poll registers once it has
 * waited a while): it then counts as a subscriber, after the same
 * max_channel_subscribers check.  Returns HUB_OK, HUB_EFULL,
 * HUB_EUNAVAIL or HUB_ERR (reason in err).  Any thread, while nobody
 * unsubscribes s; once.
 */
int hub_sub_register(struct hub_sub *s, char *err, size_t errlen);

/* The eventfd to poll for POLLIN: something for this subscriber, or the
 * end.  hub_sub_next() clears it.  Made at the first call (a wake-up
 * before it is kept); -1 when no descriptor can be had. */
int hub_sub_fd(struct hub_sub *s);
/*
 * Instead of an eventfd, wake s by calling fn(arg) (park.h's park_wake:
 * a parked request owns no descriptor for it).  fn is called from any
 * thread, under the hub's locks: it must be quick, never block, never
 * call the hub.  A wake-up that came before is passed on at once.  Set
 * once, by the subscription's owner, before it waits that way.
 */
void hub_sub_notify(struct hub_sub *s, void (*fn)(void *), void *arg);
/* The id up to which this subscriber has seen its channels. */
int64_t hub_sub_cursor(struct hub_sub *s);
const char *hub_sub_error(const struct hub_sub *s);
/*
 * 1 once a control request ended this subscription (its eventfd was made
 * readable then), else 0.  The caller finishes its response cleanly:
 * read ended first, then deliver with hub_sub_next(), then end if ended
 * was 1, so that what was published before the request still goes out.
 */
int hub_sub_ended(const struct hub_sub *s);
/*
 * The stream's handle "ID.SECRET" (NUL-terminated, owned by s, valid
 * until hub_unsubscribe), or "" without HUB_REGISTER.  A capability:
 * whoever holds it may end the stream (push-publish compares the secret
 * with store_stream_info's in constant time), so it goes only to the
 * stream's own client.
 */
const char *hub_sub_handle(const struct hub_sub *s);

/*
 * Deliver the newest `count` messages on the subscription's channels
 * (oldest first) and move the cursor past them.  For "start with the last
 * N": call right after hub_subscribe.  Returns HUB_OK, HUB_ERR or cb's
 * non-zero value.
 */
int hub_sub_latest(struct hub_sub *s, int count, hub_cb cb, void *arg);
/*
 * Deliver everything after the cursor, in id order, with gap reports,
 * moving the cursor.  Returns HUB_OK when caught up, HUB_ERR, or cb's
 * non-zero value: cb refused that message, and the cursor stands just
 * before it, so the next call offers it again.
 */
int hub_sub_next(struct hub_sub *s, hub_cb cb, void *arg);

/*
 * Direct delivery, for a subscription whose owner sleeps most of the
 * time (a parked FastCGI stream, park.h): waking the owner for each
 * message costs a wake-up and a hand-over per subscriber, when the hub
 * thread, which has the message in hand, can write it to each of them
 * in turn.  The contract, which push-stream's stream_direct follows:
 *
 * Who writes a parked stream, and when.  From hub_sub_park until
 * hub_sub_unpark returns, the hub thread alone may call cb(arg, ...), and
 * everything cb touches (the response's output, its framing state, the
 * cursor) belongs to whichever of the two holds the subscription's
 * delivery lock: the hub thread takes it with a trylock for each pass
 * (a subscription it cannot take at once is woken instead), and
 * hub_sub_unpark takes it to end the parking, so it waits for a pass
 * in progress.  The owner (the request's thread, or the process's loop
 * for a parked request) does not touch what cb uses between park and
 * unpark, and after unpark the hub thread does not touch it until the
 * next park: every op of the loop unparks first and parks again before
 * it returns.  So the output and the cursor have one writer at any
 * time.
 *
 * What cb may do.  It runs in the hub thread, for new messages in id
 * order, each matching one of the channels and after the cursor; the
 * hub moves the cursor past each one cb takes, then, when cb took any,
 * calls it once more with m NULL and gap 0: the end of this pass (a
 * callback that gathers its sends flushes them then).  It must not block: it writes with
 * http_nowait_begin / http_nowait_end (http.h), which either send the
 * whole framed message at once, keep the unsent rest for the owner
 * (the loop sends it when the connection has room), or send nothing.
 * It returns
 *   HUB_DIRECT_DONE  delivered;
 *   HUB_DIRECT_WAKE  delivered, but the owner has work (the rest of
 *                    the write to send): it is woken;
 *   HUB_DIRECT_NO    not delivered, its state exactly as before the
 *                    call: it is woken, and hub_sub_next offers the
 *                    message again.
 *
 * Undoing a refused write.  HUB_DIRECT_NO must leave no trace, so a
 * callback saves what framing the message changes and restores it when
 * nothing was sent: push-stream copies its struct transport by value
 * before framing and assigns the copy back.  That works because struct
 * transport (transport.h) holds only values (its kind, flags, fixed
 * arrays for the boundary, callback name and mixed's announced type, the
 * part state), no pointer to memory that framing frees or reallocates:
 * whatever is added to it must keep it so.  References the callback
 * takes (mixed's previous message, held with hub_msg_hold) are taken only
 * after the write went (HUB_DIRECT_DONE or WAKE), never before.
 *
 * Messages that cannot go this way (a gap to report, a subscriber that
 * is behind the ring, the hub busy with it while it parks or unparks)
 * wake the thread as usual; the eventfd stays the one signal to act on.
 */
enum { HUB_DIRECT_DONE = 0, HUB_DIRECT_WAKE = 1, HUB_DIRECT_NO = 2 };
void hub_sub_park(struct hub_sub *s, hub_cb cb, void *arg);
void hub_sub_unpark(struct hub_sub *s);

/* A copy of m as a held message (refs 1), or NULL when out of memory. */
struct hub_msg *hub_msg_copy(const struct store_msg *m);
void hub_msg_hold(struct hub_msg *m);
void hub_msg_drop(struct hub_msg *m);

#endif
