/*
 * pushctl: the operator's tool for a pushcgi message log.
 *
 *	pushctl [--db PATH] [--conf PATH] COMMAND [ARGS]
 *
 * Commands
 *	init                     create the log (and its bell file) if missing
 *	send [-q] [-t TYPE] [-e EVENT] CHANNEL [DATA|-]
 *	                         publish one message; DATA, or stdin when DATA is
 *	                         "-" or absent (binary-safe); prints the new id
 *	                         (not with -q)
 *	tail [-f] [--since ID] [-n N] [--raw] [--count N] [--timeout S] CHANNEL...
 *	                         print messages; -f keeps following (a subscriber)
 *	ls                       one line per channel
 *	stat [CHANNEL...]        details of the log, or of channels
 *	rm CHANNEL...            remove channels and their messages
 *	prune [--keep N] [--age S] [CHANNEL]
 *	                         apply retention now
 *	every [-t TYPE] [-e EVENT] [--changed] [--count N] SECONDS CHANNEL --
 *	    COMMAND [ARG...]     publish COMMAND's output every SECONDS
 *	token CHANNEL [SECONDS]  print a subscriber token for a private channel,
 *	                         good for SECONDS (default 3600; see auth.h)
 *
 * Options of a command may come before or after its operands, as in GNU
 * tools; "--" ends them (pushctl send ch -- -x sends "-x").  The options
 * before the command (--db, --conf) come before it.  every's COMMAND, after
 * its "--", is never looked at for options.  man/pushctl.1 is the manual.
 *
 * The log is found as every pushcgi program finds it: --db, else
 * $PUSHCGI_DB, else "db" in the config file ($PUSHCGI_CONF or --conf, else
 * the built-in default path), else the built-in default database path.
 *
 * Exit codes: 0 done; 1 refused (unknown channel, invalid name, type or
 * event, message too large, command failed); 100 usage; 111 system error
 * (the log cannot be opened or written, out of memory, I/O).
 *
 * tail output: one line per message, "ID<TAB>CHANNEL<TAB>EVENT<TAB>DATA"
 * (EVENT "-" when none; DATA with \\, \n, \r, \t and other bytes outside
 * printable ASCII written as \\, \n, \r, \t, \xHH), and a line
 * "gap<TAB>ID" when messages up to ID were pruned before they could be
 * shown, printed before the messages that follow the gap.  --raw writes
 * each message's bytes alone, with nothing between.  tail -f wakes at
 * every heartbeat (config) only to see whether its reader is gone.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "conf.h"
#include "hub.h"
#include "mono.h"
#include "store.h"
#include "valid.h"

#define EX_OK      0
#define EX_REFUSED 1
#define EX_USAGE   100
#define EX_SYSTEM  111

#define TAIL_DEFAULT_LINES 10
#define EVERY_MAX_SECONDS  86400
#define TOKEN_MAX_SECONDS  (10LL * 366 * 86400) /* a token's longest life */
#define TIMEOUT_MAX_SECONDS 1000000 /* largest tail --timeout */
#define OPTION_NAME_MAX    40   /* bytes of an option's name kept for a
                                   usage line, NUL included */
#define ERR_MAX            512  /* bytes of a library's failure reason */
#define TIME_MAX           32   /* bytes of an ISO 8601 UTC time and NUL */

static const char *progname = "pushctl";
static struct conf cfg;
static volatile sig_atomic_t stopping;
static int64_t tail_deadline;    /* tail --timeout: monotonic ms, 0 none */

static void usage_exit(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(int, const char *, ...) __attribute__((format(printf, 2, 3), noreturn));
static int open_log(struct store **, int);
static int status_exit(struct store *, int);
static int cmd_init(int, char **);
static int cmd_send(int, char **);
static int cmd_tail(int, char **);
static int cmd_ls(int, char **);
static int cmd_stat(int, char **);
static int cmd_rm(int, char **);
static int cmd_prune(int, char **);
static int cmd_every(int, char **);
static int cmd_token(int, char **);
static int operands(int, char **);
static void help_exit(void) __attribute__((noreturn));
static void bad_option(int, char **) __attribute__((noreturn));
static int tail_skip(void *, const struct store_msg *);
struct tail_out;
static int tail_gap(struct tail_out *, int64_t);
static int tail_deliver(void *, struct hub_msg *, int64_t);
static int tail_follow(const char *const *, int, int64_t, long long,
    struct tail_out *);
static void on_stop(int);

static const char usage_text[] =
"usage: pushctl [--db PATH] [--conf PATH] COMMAND [ARGS]\n"
"\n"
"  init                      create the message log if it is missing\n"
"  send [-q] [-t TYPE] [-e EVENT] CHANNEL [DATA|-]\n"
"                            publish DATA (or stdin) to CHANNEL; prints the id\n"
"                            (-t, --type; -e, --event; -q, --quiet: no id)\n"
"  tail [-f] [--since ID] [-n N] [--raw] [--count N] [--timeout S] CHANNEL...\n"
"                            print the last N (10) messages, or all after ID;\n"
"                            -f, --follow: keep following until interrupted;\n"
"                            -n, --lines\n"
"  ls                        list channels: retained, last id, subscribers\n"
"  stat [CHANNEL...]         details of the log or of channels\n"
"  rm CHANNEL...             remove channels and their messages\n"
"  prune [--keep N] [--age SECONDS] [CHANNEL]\n"
"                            apply retention now (defaults from the config)\n"
"  every [-t TYPE] [-e EVENT] [--changed] [--count N] SECONDS CHANNEL -- CMD...\n"
"                            run CMD every SECONDS and publish its output\n"
"  token CHANNEL [SECONDS]   print a subscriber token for a private channel,\n"
"                            good for SECONDS (default %d)\n"
"\n"
"  --db PATH     message log (default: $PUSHCGI_DB, the config, or %s)\n"
"  --conf PATH   config file (default: $PUSHCGI_CONF or %s)\n"
"  -h, --help    this text;  -V, --version  the version\n"
"\n"
"A command's options may also follow its operands; \"--\" ends them.\n"
"See pushctl(1).\n"
"\n"
"Exit codes: 0 done, 1 refused (unknown channel, invalid input, too large),\n"
"100 usage, 111 system error.\n";

static void
usage_exit(const char *fmt, ...)
{
	va_list ap;

	if (fmt != NULL) {
		fprintf(stderr, "%s: ", progname);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fprintf(stderr, " (see pushctl --help)\n");
	}
	exit(EX_USAGE);
}

/* Print the usage text on stdout and exit 0: --help, anywhere. */
static void
help_exit(void)
{
	printf(usage_text, AUTH_TTL_DEFAULT, conf_default_db(),
	    conf_default_path());
	exit(EX_OK);
}

/*
 * A command's getopt_long said '?' (unknown option) or ':' (missing
 * argument; every optstring starts with ':'): one line naming the program,
 * the command and the option, then exit 100.  getopt's own message would
 * name the command as if it were the program.
 */
static void
bad_option(int ch, char **argv)
{
	const char *arg = optind > 0 ? argv[optind - 1] : "";
	char opt[OPTION_NAME_MAX];

	if (strncmp(arg, "--", 2) == 0 && arg[2] != '\0')
		snprintf(opt, sizeof(opt), "%.*s", (int)strcspn(arg, "="), arg);
	else
		snprintf(opt, sizeof(opt), "-%c", optopt);
	if (ch == ':')
		usage_exit("%s: option %.32s needs an argument", argv[0], opt);
	usage_exit("%s: unknown option %.32s", argv[0], opt);
}

/*
 * Options of a command that takes none but --help: reject any other, honour
 * "--".  argv[0] is the command.  Returns the index of the first operand
 * (GNU getopt has moved the operands after the options).
 */
static int
operands(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	int ch;

	optind = 0;
	while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (ch == 'h')
			help_exit();
		bad_option(ch, argv);
	}
	return optind;
}

static void
die(int code, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

static void
on_stop(int sig)
{
	(void)sig;
	stopping = 1;
}

/* Parse a non-negative decimal number no larger than max, or usage_exit. */
static long long
parse_num(const char *what, const char *s, long long max)
{
	char *end;
	long long n;

	errno = 0;
	n = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || n < 0 || n > max)
		usage_exit("%s must be a whole number from 0 to %lld, not "
		    "\"%.32s\"", what, max, s);
	return n;
}

static int
open_log(struct store **l, int flags)
{
	char err[ERR_MAX];
	int rc;

	rc = store_open(l, &cfg, flags, err, sizeof(err));
	if (rc == STORE_ENOENT)
		die(EX_SYSTEM, "%s: no message log here (create it with "
		    "\"pushctl init\")", cfg.db);
	if (rc != STORE_OK)
		die(EX_SYSTEM, "%s", err);
	return 0;
}

/* Turn a store failure into a message and an exit code. */
static int
status_exit(struct store *l, int rc)
{
	fprintf(stderr, "%s: %s\n", progname, store_errmsg(l));
	store_close(l);
	exit(rc == STORE_ERR || rc == STORE_ESCHEMA || rc == STORE_EMOVED ||
	    rc == STORE_EUNAVAIL ?
	    EX_SYSTEM : EX_REFUSED);
}

static int
cmd_init(int argc, char **argv)
{
	struct store *l;
	int64_t last;

	if (operands(argc, argv) != argc)
		usage_exit("init takes no arguments");
	open_log(&l, STORE_CREATE | STORE_WAKE);
	/* A wake-up kept from a removed log would stay ahead (store.h). */
	if (store_sync(l, &last) != STORE_OK)
		status_exit(l, STORE_ERR);
	printf("%s: ready, last id %" PRId64 "\n", cfg.db, last);
	store_close(l);
	return EX_OK;
}

/* Read all of fd into a buffer of at most max + 1 bytes, so that the caller
 * can tell "too large" without reading an endless stream. */
static unsigned char *
read_all(int fd, size_t max, size_t *len)
{
	size_t cap = 4096, n = 0;
	unsigned char *buf = malloc(cap), *nb;
	ssize_t r;

	if (buf == NULL)
		die(EX_SYSTEM, "out of memory");
	for (;;) {
		if (n == cap) {
			if (cap > max) 
				break;
			cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
			if ((nb = realloc(buf, cap)) == NULL)
				die(EX_SYSTEM, "out of memory");
			buf = nb;
		}
		r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			die(EX_SYSTEM, "reading input: %s", strerror(errno));
		if (r == 0)
			break;
		n += (size_t)r;
	}
	*len = n;
	return buf;
}

static int
cmd_send(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "type", required_argument, NULL, 't' },
		{ "event", required_argument, NULL, 'e' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *type = NULL, *event = NULL, *channel;
	unsigned char *buf = NULL;
	const void *data;
	size_t len;
	struct store *l;
	int64_t id;
	int ch, rc, quiet = 0;

	optind = 0;
	while ((ch = getopt_long(argc, argv, ":t:e:qh", opts, NULL)) != -1) {
		switch (ch) {
		case 'h': help_exit();
		case 't': type = optarg; break;
		case 'e': event = optarg; break;
		case 'q': quiet = 1; break;
		default: bad_option(ch, argv);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1 || argc > 2)
		usage_exit("send takes CHANNEL and optional DATA");
	channel = argv[0];
	if (!valid_channel(channel))
		die(EX_REFUSED, "invalid channel name \"%.140s\" (1-128 of "
		    "A-Z a-z 0-9 . _ -, not starting with '.')", channel);
	if (type != NULL && !valid_type(type))
		die(EX_REFUSED, "invalid media type \"%.300s\"", type);
	if (event != NULL && !valid_event(event))
		die(EX_REFUSED, "invalid event name \"%.80s\" (1-64 of A-Z a-z "
		    "0-9 . _ : -)", event);
	if (argc == 2 && strcmp(argv[1], "-") != 0) {
		data = argv[1];
		len = strlen(argv[1]);
	} else {
		buf = read_all(STDIN_FILENO, (size_t)cfg.max_data, &len);
		data = buf;
	}
	/* STORE_RELOG: a log replaced since the open is reopened once; a
	 * replacement during the commit is exit 111 (lib/store.h). */
	open_log(&l, STORE_CREATE | STORE_RELOG | STORE_WAKE);
	rc = store_publish(l, channel, type, event, data, len, &id);
	free(buf);
	if (rc != STORE_OK)
		status_exit(l, rc);
	if (!quiet)
		printf("%" PRId64 "\n", id);
	store_close(l);
	return EX_OK;
}

struct tail_out {
	int raw;
	long long count;  /* messages still to print, -1 = no limit */
	int page;         /* messages passed in the current read */
	int failed;       /* stdout write failed: the reader went away */
};

/* Print one message in tail's line format (or raw). */
static int
tail_print(void *arg, const struct store_msg *m)
{
	struct tail_out *o = arg;
	const unsigned char *p = m->data;
	size_t i;

	o->page++;
	if (o->count == 0)
		return 1;
	if (o->raw) {
		if (fwrite(m->data, 1, m->len, stdout) != m->len)
			o->failed = 1;
	} else {
		printf("%" PRId64 "\t%s\t%s\t", m->id, m->channel,
		    m->event != NULL ? m->event : "-");
		for (i = 0; i < m->len; i++) {
			switch (p[i]) {
			case '\\': fputs("\\\\", stdout); break;
			case '\n': fputs("\\n", stdout); break;
			case '\r': fputs("\\r", stdout); break;
			case '\t': fputs("\\t", stdout); break;
			default:
				if (p[i] < 0x20 || p[i] > 0x7e)
					printf("\\x%02x", p[i]);
				else
					putchar(p[i]);
			}
		}
		putchar('\n');
	}
	if (o->count > 0)
		o->count--;
	if (fflush(stdout) != 0 || ferror(stdout))
		o->failed = 1;
	return o->failed ? 2 : 0;
}

/* A read callback that prints nothing: for finding the gap alone. */
static int
tail_skip(void *arg, const struct store_msg *m)
{
	(void)arg;
	(void)m;
	return 0;
}

/* Print the gap line for messages pruned up to id.  0, or -1 when stdout
 * failed. */
static int
tail_gap(struct tail_out *o, int64_t id)
{
	printf("gap\t%" PRId64 "\n", id);
	if (fflush(stdout) != 0 || ferror(stdout))
		o->failed = 1;
	return o->failed ? -1 : 0;
}

/* Collect channel arguments into names/chans, dropping repeats. */
static int
channel_args(int argc, char **argv,
    char names[][VALID_CHANNEL_MAX + 1], const char **chans)
{
	int i, j, n = 0;

	for (i = 0; i < argc; i++) {
		if (!valid_channel(argv[i]))
			die(EX_REFUSED, "invalid channel name \"%.140s\" (1-128 "
			    "of A-Z a-z 0-9 . _ -, not starting with '.')",
			    argv[i]);
		for (j = 0; j < n; j++)
			if (strcmp(names[j], argv[i]) == 0)
				break;
		if (j < n)
			continue;
		if (n == VALID_CHANNELS_MAX)
			usage_exit("at most %d channels", VALID_CHANNELS_MAX);
		snprintf(names[n], VALID_CHANNEL_MAX + 1, "%s", argv[i]);
		chans[n] = names[n];
		n++;
	}
	return n;
}

/* tail -f's delivery: a message, a gap (messages up to gap pruned
 * before we saw them) or the log replaced (HUB_RESET): "gap 0", then the
 * new log from its start.  Raw output shows messages only. */
static int
tail_deliver(void *arg, struct hub_msg *m, int64_t gap)
{
	struct tail_out *o = arg;

	if (m != NULL)
		return tail_print(o, &m->m);
	if (o->raw)
		return 0;
	return tail_gap(o, gap == HUB_RESET ? 0 : gap) != 0 ? 2 : 0;
}

/*
 * tail -f: follow the channels through the hub, as the responders do
 * (lib/hub.h: the same catch-up reads, gap reports and replaced-log
 * handling), registered as a subscriber.  After the newest `lines`
 * messages when there is no cursor, else after cursor.  Ends when the
 * count is printed, --timeout passes, a signal comes or stdout's reader
 * leaves (seen at once on a pipe, as a hang-up).
 */
static int
tail_follow(const char *const *chans, int n, int64_t cursor,
    long long lines, struct tail_out *out)
{
	struct sigaction sa;
	struct hub *h;
	struct hub_sub *sub;
	struct pollfd pfd[2];
	sigset_t stops, old;
	char err[ERR_MAX];
	int64_t left;
	int rc, wait_ms;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* The hub's thread never takes our stop signals: they interrupt
	 * the poll below. */
	sigemptyset(&stops);
	sigaddset(&stops, SIGINT);
	sigaddset(&stops, SIGTERM);
	sigaddset(&stops, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &stops, &old);
	rc = hub_open(&h, &cfg, err, sizeof(err));
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != HUB_OK)
		die(EX_SYSTEM, "%s", err);
	if (hub_subscribe(h, &sub, chans, n, cursor, HUB_REGISTER, NULL, err,
	    sizeof(err)) != HUB_OK) {
		hub_close(h);
		die(EX_SYSTEM, "%s", err);
	}
	rc = HUB_OK;
	if (cursor < 0 && lines > 0)
		rc = hub_sub_latest(sub, (int)lines, tail_deliver, out);
	while (rc == HUB_OK && !out->failed && out->count != 0 &&
	    !stopping) {
		if ((rc = hub_sub_next(sub, tail_deliver, out)) != HUB_OK ||
		    out->failed || out->count == 0)
			break;
		wait_ms = cfg.heartbeat * 1000;
		if (tail_deadline != 0) {
			if ((left = tail_deadline - mono_ms()) <= 0)
				break;
			if (left < wait_ms)
				wait_ms = (int)left;
		}
		pfd[0].fd = hub_sub_fd(sub);
		pfd[0].events = POLLIN;
		pfd[1].fd = STDOUT_FILENO;
		pfd[1].events = 0;
		pfd[0].revents = pfd[1].revents = 0;
		if (poll(pfd, 2, wait_ms) == 0)
			/* Each heartbeat: is the log still the one at the
			 * path?  (The hub then follows the new one.) */
			hub_watch(h);
		if (pfd[1].revents & (POLLERR | POLLHUP | POLLNVAL))
			out->failed = 1;
	}
	if (rc == HUB_ERR)
		fprintf(stderr, "%s: %s\n", progname, hub_sub_error(sub));
	hub_unsubscribe(sub);
	hub_close(h);
	return rc == HUB_ERR || out->failed ? EX_SYSTEM : EX_OK;
}

static int
cmd_tail(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "follow", no_argument, NULL, 'f' },
		{ "since", required_argument, NULL, 's' },
		{ "lines", required_argument, NULL, 'n' },
		{ "raw", no_argument, NULL, 'r' },
		{ "count", required_argument, NULL, 'c' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	char names[VALID_CHANNELS_MAX][VALID_CHANNEL_MAX + 1];
	const char *chans[VALID_CHANNELS_MAX];
	struct tail_out out = { 0, -1, 0, 0 };
	struct store *l;
	int64_t cursor = -1, gap, last, shown;
	long long lines = TAIL_DEFAULT_LINES;
	int ch, n, follow = 0, rc;

	optind = 0;
	while ((ch = getopt_long(argc, argv, ":fs:n:rc:T:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'h': help_exit();
		case 'f': follow = 1; break;
		case 's': cursor = parse_num("--since", optarg, INT64_MAX); break;
		case 'n': lines = parse_num("-n", optarg, STORE_READ_MAX); break;
		case 'r': out.raw = 1; break;
		case 'c': out.count = parse_num("--count", optarg, INT64_MAX); break;
		case 'T':
			tail_deadline = mono_ms() +
			    parse_num("--timeout", optarg,
			    TIMEOUT_MAX_SECONDS) * 1000;
			break;
		default: bad_option(ch, argv);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		usage_exit("tail needs at least one CHANNEL");
	n = channel_args(argc, argv, names, chans);
	open_log(&l, follow ? STORE_CREATE : 0);
	if (!follow) {
		/* Reading a channel that never was is a mistake worth a
		 * status; following one waits for its first message. */
		struct store_stat st;
		int i;

		for (i = 0; i < n; i++)
			if ((rc = store_stat(l, chans[i], &st)) != STORE_OK)
				status_exit(l, rc);
	}
	if (follow) {
		store_close(l);
		return tail_follow(chans, n, cursor, lines, &out);
	}
	if (cursor < 0) {
		/* Like tail(1): the newest lines first, then what follows. */
		if ((rc = store_last_id(l, &cursor)) != STORE_OK)
			status_exit(l, rc);
		if (lines > 0 && (rc = store_latest(l, chans, n, (int)lines,
		    tail_print, &out)) < 0)
			status_exit(l, rc);
	}
	/* Everything after the cursor, then the end. */
	do {
		/* The gap goes before the messages after it: look for it
		 * first (a read of one row that prints nothing). */
		shown = 0;
		if (!out.raw) {
			if ((rc = store_read(l, chans, n, cursor, 1, tail_skip,
			    NULL, &shown, NULL)) < 0)
				status_exit(l, rc);
			/* A cursor of another log (lib/store.h, lib/mlog.h): "gap 0", then
			 * the log from its start. */
			if (shown == STORE_GAP_RESET) {
				if (tail_gap(&out, 0) != 0)
					break;
				cursor = 0;
				shown = 0;
			}
			if (shown > 0 && tail_gap(&out, shown) != 0)
				break;
		}
		out.page = 0;
		rc = store_read(l, chans, n, cursor, STORE_READ_MAX,
		    tail_print, &out, &gap, &last);
		if (rc < 0)
			status_exit(l, rc);
		if (gap == STORE_GAP_RESET) {
			if (!out.raw && tail_gap(&out, 0) != 0)
				break;
			gap = shown = 0;
		}
		/* Pruned while reading: said now, not skipped. */
		if (gap > shown && !out.raw && !out.failed)
			tail_gap(&out, gap);
		if (gap < shown)
			gap = shown;
		cursor = last > gap ? last : gap;
	} while (rc == 0 && out.page == STORE_READ_MAX && !out.failed &&
	    out.count != 0);
	store_close(l);
	return out.failed ? EX_SYSTEM : EX_OK;
}

static void
format_time(int64_t ms, char *buf, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (ms <= 0 || gmtime_r(&t, &tm) == NULL) {
		snprintf(buf, len, "-");
		return;
	}
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int
ls_line(void *arg, const struct store_stat *st)
{
	char when[TIME_MAX];

	(void)arg;
	format_time(st->last_time_ms, when, sizeof(when));
	printf("%-24s %9" PRId64 " %12" PRId64 " %11" PRId64 "  %s\n",
	    st->channel, st->count, st->last_id, st->subscribers, when);
	return 0;
}

static int
cmd_ls(int argc, char **argv)
{
	struct store *l;
	int rc;

	if (operands(argc, argv) != argc)
		usage_exit("ls takes no arguments");
	open_log(&l, 0);
	printf("%-24s %9s %12s %11s  %s\n", "CHANNEL", "RETAINED", "LAST-ID",
	    "SUBSCRIBERS", "LAST-PUBLISH");
	if ((rc = store_stats(l, ls_line, NULL)) < 0)
		status_exit(l, rc);
	store_close(l);
	return EX_OK;
}

static void
stat_print(const struct store_stat *st)
{
	char when[TIME_MAX];

	format_time(st->last_time_ms, when, sizeof(when));
	printf("channel: %s\nretained: %" PRId64 "\nfirst_id: %" PRId64
	    "\nlast_id: %" PRId64 "\nlast_publish: %s\npruned_to: %" PRId64
	    "\nsubscribers: %" PRId64 "\n", st->channel, st->count,
	    st->first_id, st->last_id, when, st->pruned_to, st->subscribers);
}

struct totals {
	int64_t channels, messages, subscribers;
};

static int
stat_sum(void *arg, const struct store_stat *st)
{
	struct totals *t = arg;

	t->channels++;
	t->messages += st->count;
	t->subscribers += st->subscribers;
	return 0;
}

static int
cmd_stat(int argc, char **argv)
{
	struct store_stat st;
	struct totals t = { 0, 0, 0 };
	struct stat sb;
	struct store *l;
	int64_t last;
	int i, rc, missing = 0;

	i = operands(argc, argv) - 1;   /* argv[1..] are the operands */
	argc -= i;
	argv += i;
	open_log(&l, 0);
	if (argc == 1) {
		if ((rc = store_last_id(l, &last)) != STORE_OK ||
		    (rc = store_stats(l, stat_sum, &t)) < 0)
			status_exit(l, rc);
		printf("db: %s\nsize: %lld\nconfig: %s\nlast_id: %" PRId64
		    "\nchannels: %" PRId64 "\nretained: %" PRId64
		    "\nsubscribers: %" PRId64 "\nretain_count: %ld\n"
		    "retain_age: %ld\nmax_data: %ld\nheartbeat: %d\n",
		    cfg.db, stat(cfg.db, &sb) == 0 ? (long long)sb.st_size :
		    -1LL, cfg.path[0] != '\0' ? cfg.path : "(none: defaults)",
		    last, t.channels, t.messages, t.subscribers,
		    cfg.retain_count, cfg.retain_age, cfg.max_data,
		    cfg.heartbeat);
	}
	for (i = 1; i < argc; i++) {
		if (!valid_channel(argv[i]))
			die(EX_REFUSED, "invalid channel name \"%.140s\"",
			    argv[i]);
		rc = store_stat(l, argv[i], &st);
		if (rc == STORE_ENOENT) {
			fprintf(stderr, "%s: no channel \"%s\"\n", progname,
			    argv[i]);
			missing = 1;
			continue;
		}
		if (rc != STORE_OK)
			status_exit(l, rc);
		if (i > 1)
			putchar('\n');
		stat_print(&st);
	}
	store_close(l);
	return missing ? EX_REFUSED : EX_OK;
}

static int
cmd_rm(int argc, char **argv)
{
	struct store *l;
	int64_t deleted;
	int i, rc, missing = 0;

	i = operands(argc, argv) - 1;   /* argv[1..] are the operands */
	argc -= i;
	argv += i;
	if (argc < 2)
		usage_exit("rm needs at least one CHANNEL");
	for (i = 1; i < argc; i++)
		if (!valid_channel(argv[i]))
			die(EX_REFUSED, "invalid channel name \"%.140s\"",
			    argv[i]);
	open_log(&l, 0);
	for (i = 1; i < argc; i++) {
		rc = store_remove(l, argv[i], &deleted);
		if (rc == STORE_ENOENT) {
			fprintf(stderr, "%s: no channel \"%s\"\n", progname,
			    argv[i]);
			missing = 1;
		} else if (rc != STORE_OK)
			status_exit(l, rc);
		else
			printf("%s: removed %" PRId64 " messages\n", argv[i],
			    deleted);
	}
	store_close(l);
	return missing ? EX_REFUSED : EX_OK;
}

static int
cmd_prune(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "keep", required_argument, NULL, 'k' },
		{ "age", required_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	long keep = cfg.retain_count, age = cfg.retain_age;
	const char *channel = NULL;
	struct store *l;
	int64_t deleted;
	int ch, rc;

	optind = 0;
	while ((ch = getopt_long(argc, argv, ":k:a:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'h': help_exit();
		case 'k': keep = (long)parse_num("--keep", optarg, LONG_MAX); break;
		case 'a': age = (long)parse_num("--age", optarg, LONG_MAX); break;
		default: bad_option(ch, argv);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc > 1)
		usage_exit("prune takes at most one CHANNEL");
	if (argc == 1) {
		channel = argv[0];
		if (!valid_channel(channel))
			die(EX_REFUSED, "invalid channel name \"%.140s\"",
			    channel);
	}
	open_log(&l, 0);
	if ((rc = store_prune(l, channel, keep, age, &deleted)) != STORE_OK)
		status_exit(l, rc);
	printf("pruned %" PRId64 " messages\n", deleted);
	store_close(l);
	return EX_OK;
}

/* Run argv with stdout to a pipe; collect up to max + 1 bytes.  Returns the
 * wait status, or -1 if it could not be started. */
static int
run_capture(char **argv, size_t max, unsigned char **out, size_t *len)
{
	int fds[2], status;
	pid_t pid;

	if (pipe(fds) != 0)
		die(EX_SYSTEM, "pipe: %s", strerror(errno));
	if ((pid = fork()) < 0)
		die(EX_SYSTEM, "fork: %s", strerror(errno));
	if (pid == 0) {
		signal(SIGPIPE, SIG_DFL);
		dup2(fds[1], STDOUT_FILENO);
		close(fds[0]);
		close(fds[1]);
		execvp(argv[0], argv);
		fprintf(stderr, "%s: %s: %s\n", progname, argv[0],
		    strerror(errno));
		_exit(127);
	}
	close(fds[1]);
	*out = read_all(fds[0], max, len);
	close(fds[0]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			die(EX_SYSTEM, "waitpid: %s", strerror(errno));
	return status;
}

static int
cmd_every(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "type", required_argument, NULL, 't' },
		{ "event", required_argument, NULL, 'e' },
		{ "changed", no_argument, NULL, 'C' },
		{ "count", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *type = NULL, *event = NULL, *channel;
	unsigned char *prev = NULL, *buf;
	size_t prevlen = 0, len;
	long long seconds, count = -1;
	struct store *l;
	struct sigaction sa;
	int ch, rc, status, changed_only = 0, dash, nargs;
	char **cmd;
	int64_t id, next;

	/* Options are looked for only before the first "--": what follows
	 * is COMMAND and its arguments, untouched. */
	for (dash = 1; dash < argc; dash++)
		if (strcmp(argv[dash], "--") == 0)
			break;
	if (dash >= argc - 1)
		usage_exit("usage: every SECONDS CHANNEL -- COMMAND [ARG...]");
	cmd = argv + dash + 1;
	optind = 0;
	while ((ch = getopt_long(dash, argv, ":t:e:Cc:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'h': help_exit();
		case 't': type = optarg; break;
		case 'e': event = optarg; break;
		case 'C': changed_only = 1; break;
		case 'c': count = parse_num("--count", optarg, INT64_MAX); break;
		default: bad_option(ch, argv);
		}
	}
	nargs = dash - optind;
	argv += optind;
	if (nargs != 2)
		usage_exit("usage: every SECONDS CHANNEL -- COMMAND [ARG...]");
	seconds = parse_num("SECONDS", argv[0], EVERY_MAX_SECONDS);
	if (seconds < 1)
		usage_exit("SECONDS must be at least 1");
	channel = argv[1];
	if (!valid_channel(channel))
		die(EX_REFUSED, "invalid channel name \"%.140s\"", channel);
	if (type != NULL && !valid_type(type))
		die(EX_REFUSED, "invalid media type \"%.300s\"", type);
	if (event != NULL && !valid_event(event))
		die(EX_REFUSED, "invalid event name \"%.80s\"", event);
	open_log(&l, STORE_CREATE | STORE_WAKE);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	next = mono_ms();
	while (!stopping && count != 0) {
		status = run_capture(cmd, (size_t)cfg.max_data, &buf, &len);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr, "%s: %s failed (%s %d); nothing "
			    "published\n", progname, cmd[0],
			    WIFEXITED(status) ? "exit" : "signal",
			    WIFEXITED(status) ? WEXITSTATUS(status) :
			    WTERMSIG(status));
			if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
				exit(EX_REFUSED);
		} else if (changed_only && prev != NULL && len == prevlen &&
		    memcmp(prev, buf, len) == 0) {
			/* Same output as last time: nothing to tell. */
		} else {
			rc = store_publish(l, channel, type, event, buf, len,
			    &id);
			if (rc != STORE_OK) {
				free(buf);
				status_exit(l, rc);
			}
			if (count > 0)
				count--;
		}
		free(prev);
		prev = buf;
		prevlen = len;
		if (count == 0)
			break;
		next += seconds * 1000;
		while (!stopping && mono_ms() < next) {
			int64_t left = next - mono_ms();
			struct timespec ts = { left / 1000,
			    (left % 1000) * 1000000 };

			nanosleep(&ts, NULL);
		}
	}
	free(prev);
	store_close(l);
	return EX_OK;
}

/* Print a subscriber token for CHANNEL, good for SECONDS from now. */
static int
cmd_token(int argc, char **argv)
{
	char tok[AUTH_SUB_TOKEN_MAX + 1];
	long long ttl = AUTH_TTL_DEFAULT;
	int first = operands(argc, argv) - 1;

	argc -= first;                  /* argv[1..] are the operands */
	argv += first;
	if (argc < 2 || argc > 3)
		usage_exit("usage: token CHANNEL [SECONDS]");
	if (!valid_channel(argv[1]))
		die(EX_REFUSED, "invalid channel name \"%.140s\" (1-128 of "
		    "A-Z a-z 0-9 . _ -, not starting with '.')", argv[1]);
	if (argc == 3)
		ttl = parse_num("SECONDS", argv[2], TOKEN_MAX_SECONDS);
	if (cfg.subscriber_secret[0] == '\0')
		die(EX_REFUSED, "no subscriber_secret in the config%s%s",
		    cfg.path[0] != '\0' ? " " : "", cfg.path);
	if (auth_sub_token(&cfg, argv[1], time(NULL) + (time_t)ttl, tok,
	    sizeof(tok)) != 0)
		die(EX_SYSTEM, "cannot make a token (HMAC-SHA256 failed)");
	if (!auth_private(&cfg, argv[1]))
		fprintf(stderr, "%s: note: %s is not under a private_channel "
		    "prefix: it needs no token\n", progname, argv[1]);
	if (printf("%s\n", tok) < 0 || fflush(stdout) != 0)
		die(EX_SYSTEM, "writing the token: %s", strerror(errno));
	return EX_OK;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "db", required_argument, NULL, 'd' },
		{ "conf", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = {
		{ "init", cmd_init }, { "send", cmd_send }, { "tail", cmd_tail },
		{ "ls", cmd_ls }, { "stat", cmd_stat }, { "rm", cmd_rm },
		{ "prune", cmd_prune }, { "every", cmd_every },
		{ "token", cmd_token },
	};
	const char *db = NULL, *confpath = NULL;
	char err[ERR_MAX];
	size_t i;
	int ch;

	store_process_init(STORE_PROC_SINGLE);
	while ((ch = getopt_long(argc, argv, "+d:c:hV", opts, NULL)) != -1) {
		switch (ch) {
		case 'd': db = optarg; break;
		case 'c': confpath = optarg; break;
		case 'h':
			help_exit();
		case 'V':
			printf("pushctl (%s) %s\n", PACKAGE_NAME,
			    PACKAGE_VERSION);
			return EX_OK;
		default:
			usage_exit(NULL);
		}
	}
	if (optind >= argc)
		usage_exit("no command given");
	if (confpath != NULL && setenv("PUSHCGI_CONF", confpath, 1) != 0)
		die(EX_SYSTEM, "setenv: %s", strerror(errno));
	if (conf_load(&cfg, err, sizeof(err)) != 0)
		die(EX_SYSTEM, "%s", err);
	if (db != NULL) {
		if (strlen(db) >= sizeof(cfg.db))
			usage_exit("--db path too long");
		snprintf(cfg.db, sizeof(cfg.db), "%s", db);
	}
	argc -= optind;
	argv += optind;
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(argv[0], cmds[i].name) == 0)
			return cmds[i].fn(argc, argv);
	usage_exit("unknown command \"%.32s\"", argv[0]);
}
