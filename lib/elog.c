/*
 * elog: the format of an error-log line and its writer (see elog.h).
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "elog.h"

size_t
elog_vformat(char *line, size_t cap, const char *prog, int site,
    const char *fmt, va_list ap)
{
	int n, m;
	size_t k;
	char *p;

	if (site != 0)
		n = snprintf(line, cap - 1, "%s[%ld]: E%d ", prog,
		    (long)getpid(), site);
	else
		n = snprintf(line, cap - 1, "%s[%ld]: ", prog, (long)getpid());
	if (n < 0 || (size_t)n >= cap - 1)
		n = 0;
	m = vsnprintf(line + n, cap - 1 - (size_t)n, fmt, ap);
	if (m < 0)
		line[n] = '\0';
	for (p = line; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	k = strlen(line);
	line[k++] = '\n';
	line[k] = '\0';
	return k;
}

size_t
elog_format(char *line, size_t cap, const char *prog, int site,
    const char *fmt, ...)
{
	va_list ap;
	size_t k;

	va_start(ap, fmt);
	k = elog_vformat(line, cap, prog, site, fmt, ap);
	va_end(ap);
	return k;
}

void
elog(const char *prog, int site, const char *fmt, ...)
{
	char line[ELOG_LINE_MAX];
	va_list ap;
	size_t k;

	va_start(ap, fmt);
	k = elog_vformat(line, sizeof(line), prog, site, fmt, ap);
	va_end(ap);
	while (write(2, line, k) < 0 && errno == EINTR)
		;
}
