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
#include "bell.h"
#include "conf.h"
#include "mlog.h"
#include "mono.h"
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
static struct bell *tail_bell;   /* woken by on_stop */

static void usage_exit(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(int, const char *, ...) __attribute__((format(printf, 2, 3), noreturn));
static int open_log(struct mlog **, int);
static int status_exit(struct mlog *, int);
static int cmd_init(int, char **);
static int cmd_send(int, char **);
static int cmd_tail(int, char **);
static int reader_gone(void);
static int cmd_ls(int, char **);
static int cmd_stat(int, char **);
static int cmd_rm(int, char **);
static int cmd_prune(int, char **);
static int cmd_every(int, char **);
static int cmd_token(int, char **);
static int operands(int, char **);
static void help_exit(void) __attribute__((noreturn));
static void bad_option(int, char **) __attribute__((noreturn));
static int tail_skip(void *, const struct mlog_msg *);
struct tail_out;
static int tail_gap(struct tail_out *, int64_t);
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
	if (tail_bell != NULL)
		bell_interrupt(tail_bell);
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
open_log(struct mlog **l, int flags)
{
	char err[ERR_MAX];
	int rc;

	rc = mlog_open(l, &cfg, flags, err, sizeof(err));
	if (rc == MLOG_ENOENT)
		die(EX_SYSTEM, "%s: no message log here (create it with "
		    "\"pushctl init\")", cfg.db);
	if (rc != MLOG_OK)
		die(EX_SYSTEM, "%s", err);
	return 0;
}

/* Turn an mlog failure into a message and an exit code. */
static int
status_exit(struct mlog *l, int rc)
{
	fprintf(stderr, "%s: %s\n", progname, mlog_errmsg(l));
	mlog_close(l);
	exit(rc == MLOG_ERR || rc == MLOG_ESCHEMA || rc == MLOG_EMOVED ||
	    rc == MLOG_EUNAVAIL ?
	    EX_SYSTEM : EX_REFUSED);
}

static int
cmd_init(int argc, char **argv)
{
	struct mlog *l;
	struct bell *b;
	int64_t last, rung;

	if (operands(argc, argv) != argc)
		usage_exit("init takes no arguments");
	open_log(&l, MLOG_CREATE);
	if (bell_open(&b, cfg.db, cfg.check_ms) != 0)
		die(EX_SYSTEM, "%s-bell: %s", cfg.db, strerror(errno));
	rung = bell_last(b);
	if (mlog_last_id(l, &last) != MLOG_OK)
		status_exit(l, MLOG_ERR);
	/* A bell kept from a removed log would stay ahead (bell.h). */
	bell_lower(b, rung, last);
	printf("%s: ready, last id %" PRId64 "\n", cfg.db, last);
	bell_close(b);
	mlog_close(l);
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
	struct mlog *l;
	struct bell *b;
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
	/* MLOG_RELOG: a log replaced since the open is reopened once; a
	 * replacement during the commit is exit 111 (lib/mlog.h). */
	open_log(&l, MLOG_CREATE | MLOG_RELOG);
	if (bell_open(&b, cfg.db, cfg.check_ms) != 0)
		die(EX_SYSTEM, "%s-bell: %s", cfg.db, strerror(errno));
	rc = mlog_append(l, channel, type, event, data, len, &id);
	free(buf);
	if (rc != MLOG_OK)
		status_exit(l, rc);
	bell_ring(b, id);
	if (!quiet)
		printf("%" PRId64 "\n", id);
	bell_close(b);
	mlog_close(l);
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
tail_print(void *arg, const struct mlog_msg *m)
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
tail_skip(void *arg, const struct mlog_msg *m)
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

/* The gatekeeper's look for plain SQL inserts: cheap when nothing moved. */
static int64_t
tail_check(void *arg)
{
	struct mlog *l = arg;
	int64_t last;

	/* A replaced log or bell: leave the wait and reopen. */
	if (mlog_moved(l) || (tail_bell != NULL && bell_moved(tail_bell)))
		return BELL_CHECK_LEAVE;
	if (!mlog_changed(l) && tail_bell != NULL)
		return bell_last(tail_bell);
	return mlog_last_id(l, &last) == MLOG_OK ? last : -1;
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

/* 1 if stdout is a pipe or socket whose reader has gone (POLLERR or
 * POLLHUP with nothing asked for), else 0. */
static int
reader_gone(void)
{
	struct pollfd p;

	p.fd = STDOUT_FILENO;
	p.events = 0;
	p.revents = 0;
	return poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLHUP)) != 0;
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
	struct mlog *l;
	int64_t cursor = -1, stream = 0, gap, last, shown, deadline = 0;
	long long lines = TAIL_DEFAULT_LINES;
	int ch, n, follow = 0, rc, wait_ms, relog = 0;

	optind = 0;
	while ((ch = getopt_long(argc, argv, ":fs:n:rc:T:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'h': help_exit();
		case 'f': follow = 1; break;
		case 's': cursor = parse_num("--since", optarg, INT64_MAX); break;
		case 'n': lines = parse_num("-n", optarg, MLOG_READ_MAX); break;
		case 'r': out.raw = 1; break;
		case 'c': out.count = parse_num("--count", optarg, INT64_MAX); break;
		case 'T':
			deadline = mono_ms() +
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
	open_log(&l, follow ? MLOG_CREATE : 0);
	if (!follow) {
		/* Reading a channel that never was is a mistake worth a
		 * status; following one waits for its first message. */
		struct mlog_stat st;
		int i;

		for (i = 0; i < n; i++)
			if ((rc = mlog_stat(l, chans[i], &st)) != MLOG_OK)
				status_exit(l, rc);
	}
	if (follow) {
		struct sigaction sa;

		if (bell_init_signals() != 0 ||
		    bell_open(&tail_bell, cfg.db, cfg.check_ms) != 0)
			die(EX_SYSTEM, "%s-bell: %s", cfg.db, strerror(errno));
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_stop;
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGHUP, &sa, NULL);
		signal(SIGPIPE, SIG_IGN);
		if ((rc = mlog_stream_open(l, chans, n, getpid(), NULL,
		    &stream)) != MLOG_OK)
			status_exit(l, rc);
	}
	if (cursor < 0) {
		/* Like tail(1): the newest lines first, then what follows. */
		if ((rc = mlog_last_id(l, &cursor)) != MLOG_OK)
			status_exit(l, rc);
		if (lines > 0 && (rc = mlog_latest(l, chans, n, (int)lines,
		    tail_print, &out)) < 0)
			status_exit(l, rc);
	}
	while (!out.failed && out.count != 0 && !stopping) {
		/* Snapshot before reading: a publish after this point raises
		 * the bell above `known`, so no wake-up can be lost. */
		int64_t known = tail_bell != NULL ? bell_last(tail_bell) : 0;

		do {
			/* The gap goes before the messages after it: look for
			 * it first (a read of one row that prints nothing). */
			shown = 0;
			if (!out.raw) {
				if ((rc = mlog_read(l, chans, n, cursor, 1,
				    tail_skip, NULL, &shown, NULL)) < 0)
					status_exit(l, rc);
				/* A cursor of another log (lib/mlog.h):
				 * "gap 0", then the log from its start. */
				if (shown == MLOG_GAP_RESET) {
					if (tail_gap(&out, 0) != 0)
						break;
					cursor = 0;
					shown = 0;
				}
				if (shown > 0 && tail_gap(&out, shown) != 0)
					break;
			}
			out.page = 0;
			rc = mlog_read(l, chans, n, cursor, MLOG_READ_MAX,
			    tail_print, &out, &gap, &last);
			if (rc < 0)
				status_exit(l, rc);
			if (gap == MLOG_GAP_RESET) {
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
		} while (rc == 0 && out.page == MLOG_READ_MAX);
		if (!follow || out.failed || out.count == 0 || stopping)
			break;
		/* The log was replaced (seen below, then the rest of the old
		 * file read above): "gap 0", the new log from its start. */
		if (relog) {
			relog = 0;
			if (mlog_reopen(l) == MLOG_OK) {
				if (!out.raw && tail_gap(&out, 0) != 0)
					break;
				cursor = 0;
				if (mlog_stream_open(l, chans, n, getpid(),
				    NULL, &stream) != MLOG_OK)
					stream = 0;
				continue;
			}
		}
		wait_ms = cfg.heartbeat * 1000;
		if (deadline != 0) {
			if (mono_ms() >= deadline)
				break;
			if (deadline - mono_ms() < wait_ms)
				wait_ms = (int)(deadline - mono_ms());
		}
		rc = bell_wait(tail_bell, known, wait_ms, tail_check, l);
		if (rc == BELL_ERROR)
			die(EX_SYSTEM, "waiting for messages: %s",
			    strerror(errno));
		/* Each wake-up and heartbeat: the log or bell replaced
		 * (lib/mlog.h)?  Then follow the new log from its start. */
		if (mlog_moved(l))
			relog = 1;
		if (bell_moved(tail_bell))
			(void)bell_reopen(tail_bell);
		if ((known = bell_last(tail_bell)) > cursor) {
			int64_t top;

			/* A bell kept from a replaced log (bell.h). */
			if (mlog_last_id(l, &top) == MLOG_OK)
				bell_lower(tail_bell, known, top);
		}
		/* Each heartbeat: a reader that left (the pipe's far end
		 * closed) ends us now, not at the next message. */
		if (rc == BELL_TIMEOUT && reader_gone()) {
			out.failed = 1;
			break;
		}
	}
	if (stream != 0)
		mlog_stream_close(l, stream);
	if (tail_bell != NULL)
		bell_close(tail_bell);
	tail_bell = NULL;
	mlog_close(l);
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
ls_line(void *arg, const struct mlog_stat *st)
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
	struct mlog *l;
	int rc;

	if (operands(argc, argv) != argc)
		usage_exit("ls takes no arguments");
	open_log(&l, 0);
	printf("%-24s %9s %12s %11s  %s\n", "CHANNEL", "RETAINED", "LAST-ID",
	    "SUBSCRIBERS", "LAST-PUBLISH");
	if ((rc = mlog_stats(l, ls_line, NULL)) < 0)
		status_exit(l, rc);
	mlog_close(l);
	return EX_OK;
}

static void
stat_print(const struct mlog_stat *st)
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
stat_sum(void *arg, const struct mlog_stat *st)
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
	struct mlog_stat st;
	struct totals t = { 0, 0, 0 };
	struct stat sb;
	struct mlog *l;
	int64_t last;
	int i, rc, missing = 0;

	i = operands(argc, argv) - 1;   /* argv[1..] are the operands */
	argc -= i;
	argv += i;
	open_log(&l, 0);
	if (argc == 1) {
		if ((rc = mlog_last_id(l, &last)) != MLOG_OK ||
		    (rc = mlog_stats(l, stat_sum, &t)) < 0)
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
		rc = mlog_stat(l, argv[i], &st);
		if (rc == MLOG_ENOENT) {
			fprintf(stderr, "%s: no channel \"%s\"\n", progname,
			    argv[i]);
			missing = 1;
			continue;
		}
		if (rc != MLOG_OK)
			status_exit(l, rc);
		if (i > 1)
			putchar('\n');
		stat_print(&st);
	}
	mlog_close(l);
	return missing ? EX_REFUSED : EX_OK;
}

static int
cmd_rm(int argc, char **argv)
{
	struct mlog *l;
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
		rc = mlog_remove(l, argv[i], &deleted);
		if (rc == MLOG_ENOENT) {
			fprintf(stderr, "%s: no channel \"%s\"\n", progname,
			    argv[i]);
			missing = 1;
		} else if (rc != MLOG_OK)
			status_exit(l, rc);
		else
			printf("%s: removed %" PRId64 " messages\n", argv[i],
			    deleted);
	}
	mlog_close(l);
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
	struct mlog *l;
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
	if ((rc = mlog_prune(l, channel, keep, age, &deleted)) != MLOG_OK)
		status_exit(l, rc);
	printf("pruned %" PRId64 " messages\n", deleted);
	mlog_close(l);
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
	struct mlog *l;
	struct bell *b;
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
	open_log(&l, MLOG_CREATE);
	if (bell_open(&b, cfg.db, cfg.check_ms) != 0)
		die(EX_SYSTEM, "%s-bell: %s", cfg.db, strerror(errno));
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
			rc = mlog_append(l, channel, type, event, buf, len, &id);
			if (rc != MLOG_OK) {
				free(buf);
				status_exit(l, rc);
			}
			bell_ring(b, id);
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
	bell_close(b);
	mlog_close(l);
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

	mlog_process_init();
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
