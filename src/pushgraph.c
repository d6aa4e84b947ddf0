/*
 * pushgraph: a live load graph for <img src="/cgi-bin/push-stream?channel=load">.
 *
 *	pushgraph [--db PATH] [--channel NAME] [--interval MS] [--count N]
 *
 * Every interval (default 1000 ms) it samples /proc/loadavg, draws the
 * recent history as a PNG and publishes it through the C API (pushcgi.h):
 * the example of a program that publishes without spawning pushctl.
 * The PNG is written by hand with stored (uncompressed) deflate blocks, so
 * the example needs nothing but libc.  Exits 0 on SIGINT/SIGTERM or after
 * --count frames; 100 on bad usage; 111 if the log cannot be opened.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pushcgi.h"

#define GRAPH_W 240
#define GRAPH_H 80
#define GRAPH_ROW (1 + GRAPH_W * 3)            /* filter byte + RGB */
#define GRAPH_RAW (GRAPH_ROW * GRAPH_H)
#define GRAPH_STORED_MAX 65535                 /* bytes per stored block */
#define GRAPH_PNG_MAX (GRAPH_RAW + GRAPH_RAW / GRAPH_STORED_MAX * 5 + 256)
#define GRAPH_INTERVAL_MIN 10L      /* smallest --interval, ms */
#define GRAPH_INTERVAL_MAX 3600000L /* largest --interval (an hour), ms */
#define GRAPH_ERR_MAX 256           /* bytes of pushcgi_open's reason */

static volatile sig_atomic_t stopping;
static uint32_t crc_table[256];

static void
on_stop(int sig)
{
	(void)sig;
	stopping = 1;
}

static void
crc_init(void)
{
	uint32_t c;
	int n, k;

	for (n = 0; n < 256; n++) {
		c = (uint32_t)n;
		for (k = 0; k < 8; k++)
			c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
		crc_table[n] = c;
	}
}

static uint32_t
crc(const unsigned char *p, size_t n)
{
	uint32_t c = 0xffffffffu;

	while (n-- > 0)
		c = crc_table[(c ^ *p++) & 0xff] ^ (c >> 8);
	return c ^ 0xffffffffu;
}

static unsigned char *
put32(unsigned char *p, uint32_t v)
{
	p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v;
	return p + 4;
}

/* Append a chunk (type + data) with its length and CRC. */
static unsigned char *
chunk(unsigned char *p, const char *type, const unsigned char *data,
    size_t len)
{
	unsigned char *start;

	p = put32(p, (uint32_t)len);
	start = p;
	memcpy(p, type, 4);
	if (len > 0)
		memmove(p + 4, data, len);
	p += 4 + len;
	return put32(p, crc(start, len + 4));
}

/* Encode raw (filtered) scanlines as a PNG; returns its length. */
static size_t
png_encode(const unsigned char *raw, unsigned char *out)
{
	static unsigned char z[GRAPH_PNG_MAX];
	unsigned char ihdr[13], *p = out, *q = z;
	uint32_t a = 1, b = 0;
	size_t off = 0, i;

	memcpy(p, "\x89PNG\r\n\x1a\n", 8);
	p += 8;
	put32(ihdr, GRAPH_W);
	put32(ihdr + 4, GRAPH_H);
	ihdr[8] = 8;    /* bit depth */
	ihdr[9] = 2;    /* truecolour */
	ihdr[10] = ihdr[11] = ihdr[12] = 0;
	p = chunk(p, "IHDR", ihdr, sizeof(ihdr));
	*q++ = 0x78;    /* zlib header: deflate, 32K window */
	*q++ = 0x01;
	while (off < GRAPH_RAW) {
		size_t n = GRAPH_RAW - off > GRAPH_STORED_MAX ?
		    GRAPH_STORED_MAX : GRAPH_RAW - off;

		*q++ = off + n == GRAPH_RAW;  /* BFINAL, BTYPE 00 */
		*q++ = n & 0xff;
		*q++ = n >> 8;
		*q++ = ~n & 0xff;
		*q++ = (~n >> 8) & 0xff;
		memcpy(q, raw + off, n);
		q += n;
		off += n;
	}
	for (i = 0; i < GRAPH_RAW; i++) {
		a = (a + raw[i]) % 65521;
		b = (b + a) % 65521;
	}
	q = put32(q, (b << 16) | a);
	p = chunk(p, "IDAT", z, (size_t)(q - z));
	p = chunk(p, "IEND", NULL, 0);
	return (size_t)(p - out);
}

/* Draw the history (newest on the right) into raw scanlines. */
static void
draw(const double *hist, int n, double now, unsigned char *raw)
{
	double top = 1.0;
	int x, y, i;

	for (i = 0; i < n; i++)
		while (hist[i] > top)
			top *= 2;
	for (y = 0; y < GRAPH_H; y++) {
		unsigned char *row = raw + (size_t)y * GRAPH_ROW;

		row[0] = 0;
		for (x = 0; x < GRAPH_W; x++) {
			unsigned char *px = row + 1 + x * 3;
			int idx = n - GRAPH_W + x;
			double v = idx >= 0 ? hist[idx] : 0;
			int h = (int)(v / top * (GRAPH_H - 2) + 0.5);
			int grid = y % (GRAPH_H / 4) == 0;

			if (GRAPH_H - 1 - y < h) {
				px[0] = 0x30; px[1] = 0x90; px[2] = 0xe0;
			} else {
				px[0] = px[1] = px[2] = grid ? 0xdd : 0xff;
			}
		}
	}
	/* The newest sample as a red tick at the right edge, so that every
	 * frame differs visibly even when the load does not move. */
	y = (int)(now * 10) % GRAPH_H;
	for (i = 0; i < 4; i++) {
		unsigned char *px = raw + (size_t)y * GRAPH_ROW + 1 +
		    (GRAPH_W - 1 - i) * 3;

		px[0] = 0xe0; px[1] = 0x20; px[2] = 0x20;
	}
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "db", required_argument, NULL, 'd' },
		{ "channel", required_argument, NULL, 'c' },
		{ "interval", required_argument, NULL, 'i' },
		{ "count", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	static unsigned char raw[GRAPH_RAW], png[GRAPH_PNG_MAX];
	static double hist[GRAPH_W];
	const char *db = NULL, *channel = "load";
	long interval = 1000, count = -1;
	struct pushcgi *p;
	struct sigaction sa;
	char err[GRAPH_ERR_MAX];
	int ch, n = 0;

	while ((ch = getopt_long(argc, argv, "d:c:i:n:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'd': db = optarg; break;
		case 'c': channel = optarg; break;
		case 'i': interval = strtol(optarg, NULL, 10); break;
		case 'n': count = strtol(optarg, NULL, 10); break;
		case 'h':
			printf("usage: pushgraph [--db PATH] [--channel NAME] "
			    "[--interval MS] [--count N]\n");
			return 0;
		default:
			return 100;
		}
	}
	if (interval < GRAPH_INTERVAL_MIN || interval > GRAPH_INTERVAL_MAX ||
	    optind != argc) {
		fprintf(stderr, "pushgraph: --interval must be %ld..%ld ms\n",
		    GRAPH_INTERVAL_MIN, GRAPH_INTERVAL_MAX);
		return 100;
	}
	if ((p = pushcgi_open(db, err, sizeof(err))) == NULL) {
		fprintf(stderr, "pushgraph: %s\n", err);
		return 111;
	}
	crc_init();
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	while (!stopping && count != 0) {
		struct timespec ts = { interval / 1000,
		    (interval % 1000) * 1000000 };
		double load = 0;
		FILE *f = fopen("/proc/loadavg", "r");
		struct timespec now;

		if (f != NULL) {
			if (fscanf(f, "%lf", &load) != 1)
				load = 0;
			fclose(f);
		}
		if (n == GRAPH_W)
			memmove(hist, hist + 1, sizeof(hist[0]) * --n);
		hist[n++] = load;
		clock_gettime(CLOCK_REALTIME, &now);
		draw(hist, n, (double)now.tv_sec + now.tv_nsec / 1e9, raw);
		if (pushcgi_publish(p, channel, "image/png", NULL, png,
		    png_encode(raw, png), NULL) != 0) {
			fprintf(stderr, "pushgraph: %s\n", pushcgi_error(p));
			pushcgi_close(p);
			return 111;
		}
		if (count > 0)
			count--;
		if (count != 0)
			nanosleep(&ts, NULL);
	}
	pushcgi_close(p);
	return 0;
}
