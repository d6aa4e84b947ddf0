#!/usr/bin/env bash
# Browser tests: www/push.js, the demo pages and the responders' framings
# in a real browser (Chromium, headless), through a real web server
# (tests/e2e/lib.sh; lighttpd with mod_fastcgi unless BROWSER_KIND names
# another kind).
#
# 1. img:    an <img> on a mixed stream shows each newly published PNG
#            frame: screenshots before and after a publish differ exactly
#            in the image's rectangle (pixels compared, not bytes).
# 2. order:  an EventSource page, an iframe script page and a long-poll
#            page each receive 200 messages exactly once and in order,
#            while the web server is stopped and started again in the
#            middle (120 messages published while it is down included:
#            more than one long-poll answer holds).
# 3. script: the iframe script transport calls the page's callback for
#            each message; a message holding </script> and quotes arrives
#            intact and runs nothing; binary data arrives as base64.
# 4. chat:   two chat.html pages see each other's messages (push-publish).
# 5. conn:   a page keeps one connection for all its channels, and one
#            more after subscribe() (counted with the DevTools Network
#            domain); transport 'auto' falls back to long-poll when the
#            stream never opens.
# 6. gap:    pages whose cursor was pruned while they were away (server
#            stopped, pushctl prune) get one 'gap' event, then the rest.
# 7. demo:   the demo pages (index, ps, ticker, image) show what is
#            published on their channels, and the image comes back after
#            a server restart.
# 8. close:  close() on an EventSource or iframe script page sends the
#            control request (push-publish?stream=HANDLE), which the
#            server answers "ended", and the stream is gone from the log
#            (pushctl stat: subscribers 1 -> 0); a long-poll page's held
#            request is released likewise; no page reconnects.  pagehide
#            sends the control request as a beacon; pageshow (back-forward
#            cache) connects again.
# 9. pull:   push-poll's format=page in a tab with script disabled
#            (Emulation.setScriptExecutionDisabled), refresh=1: after a
#            second HTML message (a big block of another colour) the
#            screenshot shows its colour with no navigation by the test;
#            an image message shows as an <img> of its raw URL; ps.html
#            without script shows each list in its <noscript> frame.
#
# The browser is driven over the DevTools protocol by tests/browser/cdp.py
# (Python standard library only); the tests are in tests/browser/tests.py.
# Environment as for make check: top_builddir, top_srcdir.  Optional:
# BROWSER_KIND, BROWSER_PORT (first port tried, 18500), CHROMIUM (the
# browser), ONLY (some of img,order,script,chat,conn,gap,demo,close,pull,
# with commas), SHOTS (a folder that keeps the screenshots).
# Prints "ok - ..." / "not ok - ..." lines; exits non-zero on any failure.
set -u
B=$(cd "${top_builddir:-.}" && pwd)
S=$(cd "${top_srcdir:-$(dirname "$0")/../..}" && pwd)
. "$S/tests/e2e/lib.sh" || exit 99

KIND=${BROWSER_KIND:-lighttpd-fastcgi}
CHROMIUM=${CHROMIUM:-$(command -v chromium || command -v chromium-browser)}

need() { # $1 what is missing
	echo "not ok - browser tests: $1"
	exit 1
}
[ -n "$CHROMIUM" ] && [ -x "$CHROMIUM" ] || need "no chromium"
command -v python3 >/dev/null || need "no python3"
[ -x "$B/pushctl" ] || need "$B/pushctl is not built"
[ -x "$B/cgi-bin/push-stream" ] || need "push-stream is not built"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/browser-tests.XXXXXX") || exit 99
dpid=
cleanup() {
	[ -n "$dpid" ] && kill "$dpid" 2>/dev/null
	e2e_stop >/dev/null 2>&1
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "run.sh: interrupted" >&2; exit 1' INT TERM

# The server (possibly another user, when run as root) reads the pages
# and the config; it owns the log's folder (lib.sh sees to that).
chmod 0755 "$tmp"
mkdir -p "$tmp/www" "$tmp/db" "$tmp/work" || exit 99
cp "$S"/www/* "$S"/tests/browser/pages/*.html "$tmp/www/" || exit 99
chmod -R a+rX "$tmp/www"
printf 'publish_token = demo\n' >"$tmp/push.conf"
chmod 0644 "$tmp/push.conf"
export PUSHCGI_DB="$tmp/db/push.db" PUSHCGI_CONF="$tmp/push.conf"
export DOCROOT="$tmp/www" CGIBIN="$B/cgi-bin"
"$B/pushctl" init >/dev/null || need "pushctl init failed"

port=$(e2e_free_port "${BROWSER_PORT:-18500}") || need "no free port"
e2e_start "$KIND" "$port" || need "$KIND did not start"

have() { [ -x "$CGIBIN/$1" ] && echo 1 || echo 0; }
fails=0
# The driver talks to us through two FIFOs: its lines come in on one, our
# answers go out on the other.
mkfifo "$tmp/to-driver" "$tmp/from-driver" || exit 99
exec {out}<>"$tmp/to-driver"
BASE="http://127.0.0.1:$port" PUSHCTL="$B/pushctl" CHROMIUM="$CHROMIUM" \
    PUSHGRAPH="$B/src/pushgraph" \
    WORK="$tmp/work" SHOTS="${SHOTS:-$tmp/work}" HAVE_POLL=$(have push-poll) \
    HAVE_PUBLISH=$(have push-publish) \
    python3 "$S/tests/browser/tests.py" <"$tmp/to-driver" \
    >"$tmp/from-driver" 2>&1 &
dpid=$!
exec {in}<"$tmp/from-driver"
# The driver asks for the server to be stopped or started between its
# steps ("@stop", "@start") and waits for our one-line answer.
while IFS= read -r line <&"$in"; do
	case $line in
	@stop)
		e2e_stop >&2 {in}<&- {out}>&-
		echo done >&"$out" ;;
	@start)
		# The servers must not inherit our ends of the FIFOs.
		if e2e_start "$KIND" "$port" >&2 {in}<&- {out}>&-; then
			echo done >&"$out"
		else
			echo failed >&"$out"
		fi ;;
	"not ok"*)
		fails=$((fails + 1))
		echo "$line" ;;
	*)
		echo "$line" ;;
	esac
done
wait "$dpid"
rc=$?
dpid=
# The driver exits 1 after a "not ok"; anything else is its own failure.
if [ "$rc" -ne 0 ] && { [ "$rc" -ne 1 ] || [ "$fails" -eq 0 ]; }; then
	echo "not ok - browser test driver exited with status $rc"
	fails=$((fails + 1))
fi
[ "$fails" -eq 0 ]
