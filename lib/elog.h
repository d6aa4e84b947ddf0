/*
 * elog: the one format of an error-log line, and the writer of the lines
 * that go to the process's own stderr.
 *
 * A line is "PROG[PID]: E<site> <message>" followed by a newline; a
 * notice that is no failure (site 0) has no "E<site> ".  Control
 * characters in the message become spaces, so that one call is one line,
 * and a line is cut at ELOG_LINE_MAX bytes.  Under a web server, stderr
 * is its error log (CGI, and FastCGI for the lines not tied to a request);
 * a FastCGI request's lines go to the FCGI_STDERR stream instead
 * (http_log), formatted here all the same.
 *
 * Every failure site has its own number, written as a literal at the one
 * call that logs it (elog, http_log, http_fail), below a tag comment
 * naming it; tests/sites.sh lists them, and the ranges of the files are
 * kept there (README "Error log and failure sites").
 */
#ifndef PUSHCGI_ELOG_H
#define PUSHCGI_ELOG_H

#include <stdarg.h>
#include <stddef.h>

#define ELOG_LINE_MAX 1024 /* bytes in one error-log line, newline included */

/*
 * Format one line into line[0..cap) (cap >= 2): prog, this process's id,
 * "E<site> " unless site is 0, the message, a newline, then a NUL.  The
 * caller owns line; prog and fmt are borrowed.  Returns the line's length
 * without the NUL (at least 1: the newline).
 */
size_t elog_vformat(char *line, size_t cap, const char *prog, int site,
    const char *fmt, va_list ap);
size_t elog_format(char *line, size_t cap, const char *prog, int site,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/*
 * Format one line (at most ELOG_LINE_MAX bytes) and write it to stderr
 * (fd 2) in one write(2), so that lines of several threads or processes
 * never mix.  A failed write is lost: there is nowhere else to report it.
 */
void elog(const char *prog, int site, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
