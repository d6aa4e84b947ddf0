/*
 * cpub: publish one message read from stdin through the public C API, as a
 * sensor daemon would.  For the end-to-end tests.
 *
 *	cpub DB CHANNEL [TYPE] < data      prints the new id
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "pushcgi.h"

#define CPUB_MAX (64L << 20) /* largest message read from stdin */

int
main(int argc, char **argv)
{
	struct pushcgi *p;
	char err[256], *buf;
	size_t len = 0;
	ssize_t n;
	int64_t id;

	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: cpub DB CHANNEL [TYPE] < data\n");
		return 100;
	}
	if ((buf = malloc(CPUB_MAX)) == NULL)
		return 111;
	while ((n = read(0, buf + len, CPUB_MAX - len)) > 0)
		len += (size_t)n;
	if (n < 0 || len == CPUB_MAX) {
		fprintf(stderr, "cpub: stdin unreadable or too large\n");
		return 111;
	}
	if ((p = pushcgi_open(argv[1], err, sizeof(err))) == NULL) {
		fprintf(stderr, "cpub: %s\n", err);
		return 111;
	}
	if (pushcgi_publish(p, argv[2], argc == 4 ? argv[3] : NULL, NULL, buf,
	    len, &id) != 0) {
		fprintf(stderr, "cpub: %s\n", pushcgi_error(p));
		pushcgi_close(p);
		return 1;
	}
	printf("%" PRId64 "\n", id);
	pushcgi_close(p);
	free(buf);
	return 0;
}
