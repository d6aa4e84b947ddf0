#!/usr/bin/env bash
# Runs tests/check_pglog against a PostgreSQL log.  With PUSHCGI_TEST_PG
# set (a connection URI) it uses that database; PUSHCGI_TEST_PG_CTL, if
# set, is then the command the test runs with "stop" or "start" to stop
# and start that server (without it the server-down test is skipped with
# a SKIP line).  Otherwise it starts a throwaway cluster (tests/pg.sh)
# when the PostgreSQL 15 server binaries are installed, and otherwise
# prints a SKIP line and exits 77 (automake's "skipped").
set -u
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
top_builddir=${top_builddir:-.}
. "$top_srcdir/tests/pg.sh"

if [ -z "${PUSHCGI_TEST_PG:-}" ]; then
	if ! pg_have; then
		echo "SKIP - check_pglog: no PostgreSQL server binaries in $PG_BIN" \
		    "(Debian: apt-get install postgresql-15), and PUSHCGI_TEST_PG unset"
		exit 77
	fi
	pg_up || { echo "not ok - check_pglog: could not start a throwaway cluster"; exit 1; }
	trap pg_down EXIT
	export PUSHCGI_TEST_PG=$PG_URI
	export PUSHCGI_TEST_PG_CTL="bash $top_srcdir/tests/pg.sh"
fi
"$top_builddir/tests/check_pglog"
