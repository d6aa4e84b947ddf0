/*
 * serve: CGI-or-FastCGI detection, the FastCGI accept loop and request
 * threads, signals, and the idle wait of streaming handlers.  See serve.h.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <fcgiapp.h>

#include "elog.h"
#include "mono.h"
#include "serve.h"
#include "store.h"

#define SERVE_ACCEPT_PAUSE_MS 100 /* after an unexpected accept failure */
#define SERVE_TRIM_KEEP  1024     /* stack kept below the trimming frame */
#define SERVE_TRIM_WAIT_MS 1000   /* waits at least this long trim it */
#define SERVE_LISTEN_FD 0         /* FastCGI: the listening socket is fd 0 */
#define SERVE_SD_FD 3             /* socket activation: the first socket
                                     passed (SD_LISTEN_FDS_START) */
#define SERVE_SD_FDS_MAX 1024     /* LISTEN_FDS above this is malformed */
#define SERVE_SD_NUM_MAX 10       /* digits in LISTEN_PID / LISTEN_FDS */
#define SERVE_IDLE_MS 1000        /* a thread beyond conf.threads that
                                     waited this long for a connection
                                     leaves: after a burst the process
                                     shrinks back */
#define SERVE_SPAWN_MS 20         /* connections waited this long with no
                                     thread free and none taken: one more
                                     thread (again after as long) */

/* One accepted FastCGI request and its thread's state. */
struct serve_req {
	FCGX_Request fr;
	struct http_req http;
};

static volatile sig_atomic_t serve_stop;
static int serve_stopfd = -1;
static struct hub *volatile serve_sighub;

static struct serve serve_ctx;
/*
 * This request thread's stack (serve_spawn's, SERVE_STACK bytes): where
 * it ends, for serve_stack_trim.  Not known (NULL) in the main thread and
 * under the sanitizers, whose stacks are theirs to manage.
 */
static __thread char *serve_stack_lo;
static __thread int serve_stack_trimmed; /* this request's stack was */
static size_t serve_page;
static serve_handler serve_fn;
/* The step of the setup that failed, if any: then every request fails
 * (serve_setup_fail). */
static enum {
	SERVE_SETUP_OK, SERVE_SETUP_EVENTFD, SERVE_SETUP_CONF,
	SERVE_SETUP_SIGNALS, SERVE_SETUP_HUB
} serve_setup;
static int serve_setup_status = 500;  /* ... with this status: 503 when
                                         the log cannot be used now */
static char serve_setup_err[SERVE_ERR_MAX];

static pthread_mutex_t serve_live_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t serve_live_cv = PTHREAD_COND_INITIALIZER;
static int serve_live;                 /* requests being served (atomic) */
static int serve_idle;                 /* threads waiting for a connection */
static int serve_threads;              /* request threads alive */
static pthread_t serve_gone;           /* the request thread that left
                                          last, to be joined */
static int serve_gone_set;
static int serve_idle_max;             /* idle threads kept: conf.threads */
static long serve_taken;               /* connections accepted (atomic) */
static int serve_busyfd = -1;          /* readable: no thread is idle */
static int serve_watching;             /* the main thread is in
                                          serve_watch (serve_live_mu) */
static pthread_mutex_t serve_park_mu = PTHREAD_MUTEX_INITIALIZER;
static struct park *serve_loop;        /* parked requests (serve_park),
                                          made at the first; under
                                          serve_park_mu until made */

static void serve_poke(void);
static void serve_leave(int);
static void serve_on_signal(int);
static void serve_block(sigset_t *);
static void serve_setup_fail(struct http_req *);
static void serve_run(struct http_req *);
static long serve_sd_number(const char *);
static int serve_is_listener(int);
static void serve_take_socket(const char *);
static int serve_cgi(void);
static int serve_fcgi(void);
static int serve_spawn(void);
static void serve_one(struct serve_req *);
static void serve_watch(void);
static void serve_conn(int);
static void serve_stack_find(void);
static void serve_stack_trim(void);
static void *serve_worker(void *);
static void serve_reject(struct serve_req *);
static void serve_finish(struct serve_req *);

int
serve_stopping(void)
{
	return serve_stop != 0;
}

/* Make the stop descriptor readable (async-signal-safe).  A full
 * counter is readable too, so a failed write loses nothing. */
static void
serve_poke(void)
{
	uint64_t one = 1;
	ssize_t n;

	if (serve_stopfd >= 0) {
		n = write(serve_stopfd, &one, sizeof(one));
		(void)n;
	}
}

/* SIGTERM/SIGINT/SIGHUP: only async-signal-safe calls. */
static void
serve_on_signal(int sig)
{
	int saved = errno;
	struct hub *h = serve_sighub;

	(void)sig;
	serve_stop = 1;
	serve_poke();
	if (h != NULL)
		hub_interrupt(h);
	errno = saved;
}

/* Block the stop signals (threads created now inherit the mask). */
static void
serve_block(sigset_t *old)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, old);
}

/* The decimal value of a LISTEN_* variable: digits only, at most
 * SERVE_SD_NUM_MAX of them; -1 when unset or anything else. */
static long
serve_sd_number(const char *v)
{
	long n = 0;
	size_t i;

	if (v == NULL || v[0] == '\0')
		return -1;
	for (i = 0; v[i] != '\0'; i++) {
		if (i >= SERVE_SD_NUM_MAX || v[i] < '0' || v[i] > '9')
			return -1;
		n = n * 10 + (v[i] - '0');
	}
	return n;
}

/* 1 if fd is a listening stream socket, else 0. */
static int
serve_is_listener(int fd)
{
	struct stat st;
	int v = 0, type = 0;
	socklen_t len;

	if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode))
		return 0;
	len = sizeof(v);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) != 0 ||
	    v == 0)
		return 0;
	len = sizeof(type);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 ||
	    type != SOCK_STREAM)
		return 0;
	return 1;
}

/*
 * systemd's socket activation protocol (sd_listen_fds(3), written out so
 * that there is no libsystemd to link): when LISTEN_PID names this
 * process and LISTEN_FDS is at least 1, the listening socket is fd 3.  It
 * is moved to fd 0, where libfcgi looks for it and where spawn-fcgi and a
 * unit's StandardInput=socket put it, so that FCGX_IsCGI then finds a
 * FastCGI server as it does for those.  LISTEN_PID, LISTEN_FDS and
 * LISTEN_FDNAMES are removed (they describe this process, not a child of
 * it).  Only one socket is served: any further ones passed are closed.
 * Without the variables, or with another process's LISTEN_PID, nothing
 * is touched and the detection is libfcgi's alone.  Variables that name
 * this process but a descriptor that is not a listening stream socket
 * are reported on stderr and removed; fd 3 is left as it is.
 */
static void
serve_take_socket(const char *prog)
{
	long pid, n, i;

	pid = serve_sd_number(getenv("LISTEN_PID"));
	if (pid <= 0 || pid != (long)getpid())
		return;
	n = serve_sd_number(getenv("LISTEN_FDS"));
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	if (n < 1 || n > SERVE_SD_FDS_MAX) {
		/* LOG: socket activation: LISTEN_FDS malformed */
		elog(prog, 420, "socket activation: LISTEN_FDS is not a count "
		    "from 1 to %d: ignored", SERVE_SD_FDS_MAX);
		return;
	}
	if (!serve_is_listener(SERVE_SD_FD)) {
		/* LOG: socket activation: fd 3 is no listening socket */
		elog(prog, 421, "socket activation: fd %d is not a listening "
		    "stream socket: ignored", SERVE_SD_FD);
		return;
	}
	for (i = 1; i < n; i++)
		close(SERVE_SD_FD + (int)i);
	if (dup2(SERVE_SD_FD, SERVE_LISTEN_FD) < 0) {
		/* LOG: socket activation: the socket cannot be moved to fd 0 */
		elog(prog, 422, "socket activation: dup2: %s",
		    strerror(errno));
		return;
	}
	close(SERVE_SD_FD);
}

int
serve_main(const char *prog, serve_handler handler, int flags)
{
	struct sigaction sa;
	sigset_t old;
	char err[SERVE_ERR_MAX];
	int cgi, rc, live;

	/* A socket from systemd goes where libfcgi looks.  FCGX_IsCGI
	 * initialises libfcgi, which installs its own SIGTERM handler (a
	 * flag nobody would look at): ours come after. */
	serve_take_socket(prog);
	cgi = FCGX_IsCGI();
	serve_ctx.prog = prog;
	serve_ctx.fcgi = !cgi;
	serve_fn = handler;
	signal(SIGPIPE, SIG_IGN);
	serve_stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = serve_on_signal;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);

	if (serve_stopfd < 0) {
		serve_setup = SERVE_SETUP_EVENTFD;
		snprintf(serve_setup_err, sizeof(serve_setup_err),
		    "eventfd: %s", strerror(errno));
	} else if (conf_load(&serve_ctx.conf, err, sizeof(err)) != 0) {
		serve_setup = SERVE_SETUP_CONF;
		snprintf(serve_setup_err, sizeof(serve_setup_err), "%s", err);
	} else if (store_process_init(cgi ? STORE_PROC_SINGLE : 0) != 0) {
		/* A CGI responder waits and reads like a follower
		 * (STORE_PROC_SINGLE); a FastCGI process reads once per
		 * wake-up for all its clients, and its many threads' heaps
		 * are better trimmed. */
		serve_setup = SERVE_SETUP_SIGNALS;
		snprintf(serve_setup_err, sizeof(serve_setup_err),
		    "signals: %s", strerror(errno));
	} else if (flags & SERVE_HUB) {
		serve_block(&old);
		rc = hub_open(&serve_ctx.hub, &serve_ctx.conf, err,
		    sizeof(err));
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (rc != HUB_OK) {
			serve_setup = SERVE_SETUP_HUB;
			if (rc == HUB_EUNAVAIL)
				serve_setup_status = 503;
			snprintf(serve_setup_err, sizeof(serve_setup_err),
			    "%s", err);
		} else
			serve_sighub = serve_ctx.hub;
	}

	rc = cgi ? serve_cgi() : serve_fcgi();

	/* Requests stuck past SERVE_STOP_MS still use the hub and the stop
	 * descriptor: then the process ends around them. */
	pthread_mutex_lock(&serve_live_mu);
	live = serve_threads;
	pthread_mutex_unlock(&serve_live_mu);
	if (live == 0 && serve_loop == NULL) {
		int fd = serve_stopfd;

		serve_sighub = NULL;
		hub_close(serve_ctx.hub);
		serve_ctx.hub = NULL;
		serve_stopfd = -1;
		if (fd >= 0)
			close(fd);
	}
	return rc;
}

/* Record the failure of the setup step that failed for request r. */
static void
serve_setup_fail(struct http_req *r)
{
	switch (serve_setup) {
	case SERVE_SETUP_OK:
		break;
	case SERVE_SETUP_EVENTFD:
		/* LOG: setup: no stop descriptor (eventfd) */
		http_fail(r, serve_setup_status, 400, "%s", serve_setup_err);
		break;
	case SERVE_SETUP_CONF:
		/* LOG: setup: the config file cannot be used */
		http_fail(r, serve_setup_status, 401, "%s", serve_setup_err);
		break;
	case SERVE_SETUP_SIGNALS:
		/* LOG: setup: the bell's signals cannot be set up */
		http_fail(r, serve_setup_status, 402, "%s", serve_setup_err);
		break;
	case SERVE_SETUP_HUB:
		/* LOG: setup: the hub (log, bell, thread) cannot be opened */
		http_fail(r, serve_setup_status, 403, "%s", serve_setup_err);
		break;
	}
}

/* Handle one request and answer a recorded failure. */
static void
serve_run(struct http_req *r)
{
	if (serve_setup != SERVE_SETUP_OK)
		serve_setup_fail(r);
	else
		serve_fn(&serve_ctx, r);
	if (r->parked)
		return;                 /* the loop's now */
	http_answer_failure(r);
	/* FastCGI: FCGX_Finish_r (serve_finish) writes what is left together
	 * with the end-of-request record; a flush here would cost one more
	 * write and one more wake-up of the web server. */
	if (!serve_ctx.fcgi)
		http_flush(&r->out);
	else
		http_drain(&r->out);    /* what a direct write left */
}

static int
serve_cgi(void)
{
	struct http_req r;

	http_init_cgi(&r, serve_ctx.prog);
	serve_run(&r);
	http_release(&r);
	return 0;
}

static int
serve_fcgi(void)
{
	struct pollfd pfd[2];
	struct timespec until;
	struct park *loop;
	uint64_t junk;
	int i, n, fl, started = 0, threads, parked = 0, gone;
	pthread_t last;

	if (serve_setup != SERVE_SETUP_OK)
		/* LOG: FastCGI: the setup failed, every request will fail */
		elog(serve_ctx.prog, 413, "setup failed, every request is "
		    "refused: %s", serve_setup_err);
	if (FCGX_Init() != 0) {
		/* LOG: FastCGI: libfcgi cannot be initialised */
		elog(serve_ctx.prog, 407, "FCGX_Init failed");
		return 111;
	}
	/* Request threads wait for the socket in epoll and then accept:
	 * accept must never block (another thread or process may take the
	 * connection first). */
	if ((fl = fcntl(SERVE_LISTEN_FD, F_GETFL)) < 0 ||
	    fcntl(SERVE_LISTEN_FD, F_SETFL, fl | O_NONBLOCK) < 0) {
		/* LOG: FastCGI: the socket cannot be made non-blocking */
		elog(serve_ctx.prog, 408, "listening socket: %s",
		    strerror(errno));
		return 111;
	}
	if ((serve_busyfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		/* LOG: FastCGI: no descriptor for the threads' busy signal */
		elog(serve_ctx.prog, 416, "eventfd: %s", strerror(errno));
		return 111;
	}
	n = serve_ctx.conf.threads > 0 ? serve_ctx.conf.threads : 1;
	serve_idle_max = n;
	for (i = 0; i < n; i++)
		if (serve_spawn() == 0)
			started++;
		else
			break;
	if (started == 0) {
		/* LOG: FastCGI: not one request thread can be started */
		elog(serve_ctx.prog, 409, "no request thread");
		return 111;
	}

	/* The main thread takes the signals, and while no request thread
	 * is idle, watches whether connections wait (serve_watch). */
	while (!serve_stop) {
		pfd[0].fd = serve_stopfd;
		pfd[0].events = POLLIN;
		pfd[1].fd = serve_busyfd;
		pfd[1].events = POLLIN;
		if (poll(pfd, 2, -1) <= 0)
			continue;
		if (pfd[0].revents & POLLIN)
			break;
		if (pfd[1].revents & POLLIN) {
			if (read(serve_busyfd, &junk, sizeof(junk)) < 0)
				(void)0;
			serve_watch();
		}
	}
	serve_stop = 1;
	if (serve_ctx.hub != NULL)
		hub_stop(serve_ctx.hub);

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += SERVE_STOP_MS / 1000;
	until.tv_nsec += (long)(SERVE_STOP_MS % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&serve_live_mu);
	while (serve_threads > 0)
		if (pthread_cond_timedwait(&serve_live_cv, &serve_live_mu,
		    &until) == ETIMEDOUT)
			break;
	threads = serve_threads;
	gone = threads == 0 && serve_gone_set;
	last = serve_gone;
	serve_gone_set = 0;
	pthread_mutex_unlock(&serve_live_mu);
	if (gone)
		pthread_join(last, NULL);
	/* Parked requests end in the loop (park.h), sending their ends;
	 * no request thread parks any more once the threads are gone. */
	pthread_mutex_lock(&serve_park_mu);
	loop = serve_loop;
	pthread_mutex_unlock(&serve_park_mu);
	if (threads == 0 && loop != NULL) {
		parked = park_count(loop);
		if (park_wait(loop, mono_ms() + SERVE_STOP_MS)) {
			pthread_mutex_lock(&serve_park_mu);
			serve_loop = NULL;
			pthread_mutex_unlock(&serve_park_mu);
			parked = 0;
		}
	}
	if (threads > 0 || parked > 0)
		/* LOG: FastCGI: requests outlive the grace time of the stop */
		elog(serve_ctx.prog, 410, "%d requests still running at exit",
		    __atomic_load_n(&serve_live, __ATOMIC_RELAXED) + parked);
	return 0;
}

/*
 * End a FastCGI request and free it.  FCGX_Finish_r writes the end of
 * the request; closing is ours.  libfcgi's own close lingers (shutdown,
 * then a wait of up to 2 s until the web server closes its end, so that
 * unread input cannot turn the close into a reset that loses the
 * answer): a sleep and a wake-up more for every request, which a
 * thousand long-polls answered at once pay a thousand times.  When the
 * request was read to its end (the web server has sent all it will) and
 * nothing is left unread, a reset cannot happen and a plain close is
 * enough; otherwise (an early refusal: the server may still be sending
 * the body) libfcgi closes as it does.  Each
 * connection is used for one request, whatever FCGI_KEEP_CONN asked.
 */
static void
serve_finish(struct serve_req *sr)
{
	char c;
	ssize_t n;
	int fd = sr->fr.ipcFd, keep = sr->fr.keepConnection;

	if (sr->http.parked) {
		/* The loop owns the connection: libfcgi's buffers go. */
		FCGX_Free(&sr->fr, 0);
		free(sr);
		return;
	}
	sr->fr.keepConnection = 1;      /* FCGX_Finish_r: do not close */
	FCGX_Finish_r(&sr->fr);
	if (sr->fr.ipcFd >= 0 && !keep && sr->http.body_eof) {
		/* 0: the server closed already; EAGAIN: nothing unread. */
		n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
		if (n == 0 || (n < 0 && (errno == EAGAIN ||
		    errno == EWOULDBLOCK))) {
			close(fd);
			sr->fr.ipcFd = -1;
		}
	}
	/* Still open (input left, or an error): libfcgi's close. */
	FCGX_Free(&sr->fr, 1);
	http_release(&sr->http);
	free(sr);
}

/* Answer an accepted request at once with a 503 (max_subscribers) and
 * free it. */
static void
serve_reject(struct serve_req *sr)
{
	http_init_fcgi(&sr->http, &sr->fr, serve_ctx.prog);
	/* LOG: FastCGI: refused: max_subscribers */
	http_fail(&sr->http, 503, 404, "too many requests in this process "
	    "(max_subscribers)");
	http_answer_failure(&sr->http);
	serve_finish(sr);
}

/*
 * Start one more request thread (counted idle until it takes a
 * connection).  Stop signals are blocked in it.  0, or -1 when no
 * thread can be made (the counts are then left as they were).
 */
static int
serve_spawn(void)
{
	pthread_attr_t attr;
	pthread_t t;
	sigset_t old;
	int rc;

	pthread_mutex_lock(&serve_live_mu);
	serve_threads++;
	pthread_mutex_unlock(&serve_live_mu);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, SERVE_STACK);
	serve_block(&old);
	rc = pthread_create(&t, &attr, serve_worker, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (rc == 0)
		return 0;
	pthread_mutex_lock(&serve_live_mu);
	serve_threads--;
	pthread_cond_broadcast(&serve_live_cv);
	pthread_mutex_unlock(&serve_live_mu);
	return -1;
}

/*
 * The main thread, while no request thread is idle: when connections
 * wait SERVE_SPAWN_MS and no thread took one meanwhile (a slow request
 * body, a long catch-up holds them all), one more thread; again after
 * as long while that lasts.  Busy threads that keep taking connections
 * (a burst of short requests) get no company: a thousand long-polls
 * coming back after a message are served by the threads there are.
 * Returns once a thread is idle again, or at the stop.
 */
static void
serve_watch(void)
{
	struct pollfd pfd[2];
	long taken;
	int idle, calm = 0;

	for (;;) {
		pthread_mutex_lock(&serve_live_mu);
		idle = serve_idle;
		taken = __atomic_load_n(&serve_taken, __ATOMIC_RELAXED);
		/* Back to sleep once a thread was idle at two looks in a
		 * row: threads that come and go in a burst do not wake this
		 * thread each time (they tell it only while it sleeps). */
		calm = idle > 0 ? calm + 1 : 0;
		serve_watching = calm < 2 && !serve_stop;
		pthread_mutex_unlock(&serve_live_mu);
		if (!serve_watching)
			return;
		if (idle > 0) {
			pfd[0].fd = serve_stopfd;
			pfd[0].events = POLLIN;
			poll(pfd, 1, SERVE_SPAWN_MS);
			continue;
		}
		pfd[0].fd = serve_stopfd;
		pfd[0].events = POLLIN;
		pfd[1].fd = SERVE_LISTEN_FD;
		pfd[1].events = POLLIN;
		if (poll(pfd, 2, SERVE_SPAWN_MS) <= 0 || (pfd[0].revents & POLLIN))
			continue;
		/* Connections wait: give the threads SERVE_SPAWN_MS. */
		if (poll(pfd, 1, SERVE_SPAWN_MS) != 0)
			continue;
		pthread_mutex_lock(&serve_live_mu);
		idle = serve_idle;
		if (__atomic_load_n(&serve_taken, __ATOMIC_RELAXED) != taken)
			idle = 1;
		pthread_mutex_unlock(&serve_live_mu);
		pfd[1].revents = 0;
		if (idle == 0 && poll(&pfd[1], 1, 0) > 0 &&
		    (pfd[1].revents & POLLIN))
			serve_spawn();
	}
}

/* Serve one accepted connection: read its request (libfcgi reads a
 * connection it is given in ipcFd instead of accepting one), refuse it
 * above max_subscribers, else serve it. */
static void
serve_conn(int fd)
{
	struct serve_req *sr;
	int full;

	/* Counted without a lock: at the cap, two at once may both pass
	 * or both be refused; the cap is not exact to a request. */
	full = __atomic_add_fetch(&serve_live, 1, __ATOMIC_ACQ_REL) +
	    park_count(__atomic_load_n(&serve_loop, __ATOMIC_ACQUIRE)) >
	    serve_ctx.conf.max_subscribers;
	if (full)
		__atomic_sub_fetch(&serve_live, 1, __ATOMIC_ACQ_REL);
	if ((sr = calloc(1, sizeof(*sr))) == NULL) {
		close(fd);
		poll(NULL, 0, SERVE_ACCEPT_PAUSE_MS);
	} else {
		/* No listening socket: a request libfcgi cannot read is
		 * closed, and nothing else is accepted by it. */
		FCGX_InitRequest(&sr->fr, -1, 0);
		sr->fr.ipcFd = fd;
		sr->fr.keepConnection = 1;      /* its first Finish */
		if (FCGX_Accept_r(&sr->fr) < 0) {
			FCGX_Free(&sr->fr, 1);
			free(sr);
		} else if (full)
			serve_reject(sr);
		else
			serve_one(sr);
	}
	if (!full)
		__atomic_sub_fetch(&serve_live, 1, __ATOMIC_ACQ_REL);
}

/* Serve an accepted request (counted live) and free it. */
static void
serve_one(struct serve_req *sr)
{
	serve_stack_trimmed = 0;
	http_init_fcgi(&sr->http, &sr->fr, serve_ctx.prog);
	serve_run(&sr->http);
	serve_finish(sr);
}

/*
 * A request thread: accept a connection and serve it, and the next, as
 * long as there are some; then wait for one in an epoll set of its own
 * where the listening socket is EPOLLEXCLUSIVE, so that a connection
 * wakes one idle thread, which serves it itself (one wake-up per
 * connection).  A thread beyond conf.threads that waited SERVE_IDLE_MS
 * with nothing to do leaves.  The last thread to stop being idle tells
 * the main thread (serve_watch).
 */
static void *
serve_worker(void *arg)
{
	struct epoll_event ev;
	uint64_t one = 1;
	int ep, fd, n, leave = 0, uncounted = 0;

	(void)arg;
	serve_stack_find();
	memset(&ev, 0, sizeof(ev));
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
	    (ev.events = EPOLLIN | EPOLLEXCLUSIVE,
	    epoll_ctl(ep, EPOLL_CTL_ADD, SERVE_LISTEN_FD, &ev)) != 0 ||
	    (ev.events = EPOLLIN,
	    epoll_ctl(ep, EPOLL_CTL_ADD, serve_stopfd, &ev)) != 0) {
		/* LOG: FastCGI: a request thread cannot watch the socket */
		elog(serve_ctx.prog, 417, "epoll: %s", strerror(errno));
		leave = 1;
	}
	while (!leave && !serve_stop) {
		fd = accept4(SERVE_LISTEN_FD, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0) {
			__atomic_add_fetch(&serve_taken, 1, __ATOMIC_RELAXED);
			serve_conn(fd);
			continue;
		}
		if (errno != EAGAIN && errno != EWOULDBLOCK &&
		    errno != EINTR && errno != ECONNABORTED) {
			/* LOG: FastCGI: accepting a connection failed */
			elog(serve_ctx.prog, 406, "accept: %s",
			    strerror(errno));
			poll(NULL, 0, SERVE_ACCEPT_PAUSE_MS);
		}
		pthread_mutex_lock(&serve_live_mu);
		serve_idle++;
		pthread_mutex_unlock(&serve_live_mu);
		n = epoll_wait(ep, &ev, 1, SERVE_IDLE_MS);
		pthread_mutex_lock(&serve_live_mu);
		/* The last idle thread busy: the main thread watches. */
		if (--serve_idle == 0 && !serve_watching &&
		    write(serve_busyfd, &one, sizeof(one)) < 0)
			(void)0;        /* full: readable anyway */
		leave = uncounted = n == 0 && serve_threads > serve_idle_max;
		if (leave)
			serve_threads--;
		pthread_mutex_unlock(&serve_live_mu);
	}
	if (ep >= 0)
		close(ep);
	serve_leave(!uncounted);
	return NULL;
}

/*
 * A request thread's end (uncount: it is still counted in
 * serve_threads).  Each thread that leaves joins the one that left
 * before it, and the main thread joins the last at the stop, so that no
 * request thread is still on its way out when the process exits (its
 * stack and thread-local storage would be left behind).
 */
static void
serve_leave(int uncount)
{
	pthread_t prev;
	int have;

	pthread_mutex_lock(&serve_live_mu);
	if (uncount)
		serve_threads--;
	have = serve_gone_set;
	prev = serve_gone;
	serve_gone = pthread_self();
	serve_gone_set = 1;
	pthread_cond_broadcast(&serve_live_cv);
	pthread_mutex_unlock(&serve_live_mu);
	if (have)
		pthread_join(prev, NULL);
}


static void
serve_stack_find(void)
{
#if !defined(__SANITIZE_ADDRESS__)
	pthread_attr_t a;
	void *lo;
	size_t len;

	if (pthread_getattr_np(pthread_self(), &a) != 0)
		return;
	if (pthread_attr_getstack(&a, &lo, &len) == 0 && len <= SERVE_STACK &&
	    (serve_page = (size_t)sysconf(_SC_PAGESIZE)) > 0)
		serve_stack_lo = lo;
	pthread_attr_destroy(&a);
#endif
}

/*
 * Give the kernel back the pages of this thread's stack below the caller's
 * frame (less SERVE_TRIM_KEEP), once a request: a stream parked for hours
 * would otherwise keep, as resident memory, every page of stack it touched
 * while it was set up (parsing, subscribing, catching up: 12 KiB, where
 * sleeping needs 8).  Once, not at every wait: a madvise and a page fault
 * per heartbeat of every idle stream would cost more CPU than the pages
 * are worth.  The pages come back zeroed when touched again.  Nothing
 * below the caller's frame is live but what this function calls (the
 * madvise wrapper), which needs far less than SERVE_TRIM_KEEP.
 */
static void
serve_stack_trim(void)
{
	char here, *top;

	if (serve_stack_lo == NULL || serve_stack_trimmed)
		return;
	serve_stack_trimmed = 1;
	top = (char *)(((uintptr_t)&here - SERVE_TRIM_KEEP) &
	    ~(uintptr_t)(serve_page - 1));
	if (top > serve_stack_lo)
		(void)madvise(serve_stack_lo, (size_t)(top - serve_stack_lo),
		    MADV_DONTNEED);
}

int
serve_wait(struct serve *s, struct http_req *r, int wakefd, int timeout_ms)
{
	struct pollfd pfd[3];
	long long deadline, left;
	int n, iw, ic, rc;

	(void)s;
	if (!r->body_done && http_read_body(r, 0, NULL, NULL) != 0)
		return SERVE_GONE;
	if (timeout_ms < 0 || timeout_ms >= SERVE_TRIM_WAIT_MS)
		serve_stack_trim();
	deadline = timeout_ms >= 0 ? mono_ms() + timeout_ms : -1;
	for (;;) {
		if (serve_stop)
			return SERVE_STOP;
		n = 0;
		iw = ic = -1;
		pfd[n].fd = serve_stopfd;
		pfd[n].events = POLLIN;
		pfd[n++].revents = 0;
		if (wakefd >= 0) {
			iw = n;
			pfd[n].fd = wakefd;
			pfd[n].events = POLLIN;
			pfd[n++].revents = 0;
		}
		if (http_poll_setup(r, &pfd[n]))
			ic = n++;
		left = -1;
		if (deadline >= 0) {
			left = deadline - mono_ms();
			if (left < 0)
				left = 0;
		}
		rc = poll(pfd, (nfds_t)n, (int)left);
		if (rc < 0) {
			if (errno == EINTR)
				continue;
			return SERVE_GONE;
		}
		if (serve_stop || (pfd[0].revents & POLLIN))
			return SERVE_STOP;
		if (ic >= 0 && http_poll_gone(r, &pfd[ic]))
			return SERVE_GONE;
		if (iw >= 0 && (pfd[iw].revents & POLLIN))
			return SERVE_WAKE;
		if (rc == 0 || (deadline >= 0 && mono_ms() >= deadline))
			return SERVE_TIMEOUT;
	}
}

/* serve_park and serve_park_req: o is where the output goes, keep (or
 * NULL) where the request is copied (o is then &keep->out). */
static int
serve_park_as(struct http_req *r, struct http_req *keep, struct http_out *o,
    int wakefd, long long due, const struct park_ops *ops, void *arg)
{
	struct park *loop;

	if (r->fcgi == NULL || r->out.failed || r->out.nw_fd < 0 ||
	    http_flush(&r->out) != 0 || http_drain(&r->out) != 0)
		return -1;
	pthread_mutex_lock(&serve_park_mu);
	if (serve_loop == NULL && !serve_stop &&
	    park_open(&serve_loop, serve_stopfd, serve_ctx.prog) != 0) {
		/* LOG: FastCGI: the loop of parked requests cannot start */
		elog(serve_ctx.prog, 414, "park: %s", strerror(errno));
		serve_loop = NULL;
	}
	loop = serve_loop;
	pthread_mutex_unlock(&serve_park_mu);
	if (loop == NULL)
		return -1;
	if (keep != NULL) {
		*keep = *r;
		keep->out.buf = NULL;   /* FastCGI's is NULL: never shared */
		keep->out.used = keep->out.cap = 0;
		keep->fcgi = NULL;
		keep->envp = NULL;
		keep->in_fd = -1;
		keep->poll_fd = -1;
	} else
		*o = r->out;
	http_out_park(o);
	if (park_add(loop, r->out.nw_fd, o, wakefd, due, ops, arg, NULL) !=
	    0) {
		/* Nothing was taken over: the request stays the thread's. */
		memset(o, 0, sizeof(*o));
		return -1;
	}
	memset(&r->out, 0, sizeof(r->out));
	r->out.fd = -1;
	r->out.nw_fd = -1;
	/* It counts as the loop's now, not as a thread's. */
	r->parked = 1;
	return 0;
}

int
serve_park(struct serve *s, struct http_req *r, struct http_out *o,
    int wakefd, long long due, const struct park_ops *ops, void *arg)
{
	(void)s;
	return serve_park_as(r, NULL, o, wakefd, due, ops, arg);
}

int
serve_park_req(struct serve *s, struct http_req *r, struct http_req *keep,
    int wakefd, long long due, const struct park_ops *ops, void *arg)
{
	(void)s;
	return serve_park_as(r, keep, &keep->out, wakefd, due, ops, arg);
}
