/*
 * thread: work done when a thread ends.  See thread.h for the contract.
 */
#include "config.h"

#include <pthread.h>
#include <stddef.h>

#include "thread.h"

static pthread_key_t thread_key;
static int thread_key_ok;
static pthread_once_t thread_once = PTHREAD_ONCE_INIT;
static __thread struct thread_end *thread_ends;  /* newest first */

/* The key's destructor: value is the thread's newest registration. */
static void
thread_run_ends(void *value)
{
	struct thread_end *e, *next;

	thread_ends = NULL;
	for (e = value; e != NULL; e = next) {
		next = e->next;
		e->kept = 0;
		e->next = NULL;
		e->fn(e->arg);
	}
}

static void
thread_key_make(void)
{
	thread_key_ok = pthread_key_create(&thread_key, thread_run_ends) == 0;
}

int
thread_at_end(struct thread_end *e, void (*fn)(void *), void *arg)
{
	if (e->kept)
		return 0;
	pthread_once(&thread_once, thread_key_make);
	if (!thread_key_ok || pthread_setspecific(thread_key, e) != 0)
		return -1;
	e->fn = fn;
	e->arg = arg;
	e->next = thread_ends;
	e->kept = 1;
	thread_ends = e;
	return 0;
}
