/*
 * thread: work done when a thread ends, for thread-local state.
 *
 * A module that keeps state in a __thread variable (a scratch buffer, a
 * held message) registers it once per thread; when the thread ends
 * (returns from its start routine or calls pthread_exit) each registered
 * function is called with its argument, the last registered first.  Not
 * called at process exit: the process's memory goes with it.  One
 * pthread key serves every module, made on first use; should it not be
 * had (PTHREAD_KEYS_MAX reached), registering fails and nothing is ever
 * written under another module's key.
 */
#ifndef PUSHCGI_THREAD_H
#define PUSHCGI_THREAD_H

/* One registration: lives in the thread-local state it is about. */
struct thread_end {
	void (*fn)(void *);
	void *arg;
	struct thread_end *next;
	int kept;                 /* registered in this thread */
};

/* Have fn(arg) called at the calling thread's end; e must be that
 * thread's own (thread-local) and outlive it.  Once per e and thread: a
 * registered e returns 0 at once (fn and arg as first given).  0, or -1
 * when no key could be made (fn is then never called). */
int thread_at_end(struct thread_end *e, void (*fn)(void *), void *arg);

#endif
