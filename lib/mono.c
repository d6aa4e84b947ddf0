/*
 * mono: the monotonic clock.  See mono.h for the contract.
 */
#include "config.h"

#include <time.h>

#include "mono.h"

int64_t
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * MONO_NS_PER_S + ts.tv_nsec;
}

int64_t
mono_ms(void)
{
	return mono_ns() / MONO_NS_PER_MS;
}
