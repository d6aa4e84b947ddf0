/*
 * mono: the monotonic clock, for deadlines, timers and heartbeats.
 *
 * One reading of CLOCK_MONOTONIC, in nanoseconds for the bell's timers
 * and in milliseconds for everything else.  It never jumps with the wall
 * clock, so a deadline computed from it holds when the time is set; its
 * origin is arbitrary, so its values mean nothing outside this process
 * (wall-clock times, such as a message's, come from CLOCK_REALTIME).
 * A module of its own below every other: the bell, the responders and
 * pushctl all use it, and it needs nothing (no SQLite, no FastCGI).
 */
#ifndef PUSHCGI_MONO_H
#define PUSHCGI_MONO_H

#include <stdint.h>

#define MONO_NS_PER_MS 1000000LL /* nanoseconds in a millisecond */
#define MONO_NS_PER_S  1000000000LL /* nanoseconds in a second */

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t mono_ns(void);

/* CLOCK_MONOTONIC in milliseconds (mono_ns, truncated). */
int64_t mono_ms(void);

#endif
