#!/usr/bin/env bash
# The publisher and control responder (push-publish) through real web
# servers.
#
# For each server kind that tests/e2e/lib.sh can start:
#
# 1. Publishing: a binary body with its Content-Type, published with the
#    right token (Bearer, then X-Push-Token), reaches a push-stream
#    subscriber byte for byte under that type; the answer (201, JSON and
#    X-Push-Id) names the new id and the one subscriber.  A missing or
#    wrong token is a 403 and writes nothing (rows counted); so are an
#    over-long body (413), a bad Content-Type (415), another method (405).
# 2. CORS: a preflight from a configured origin gets 204 and the rules; one
#    from another origin 403.
# 3. Channel info: GET answers every field as the log has it; an unknown
#    channel is a 404.
# 4. Control: with the right secret, one of two live SSE streams is ended
#    (curl sees a complete response) and the other goes on receiving; a
#    wrong secret is a 403 and ends nothing.  The time from sending a
#    control request to its stream's end is measured in one process five
#    times and printed.
# 5. DELETE: a channel's live stream ends cleanly and its messages are
#    gone.
# 6. A log busy past its busy timeout: 503 with Retry-After (one kind).
# And once, on lighttpd with mod_cgi plus an HTTP basic auth snippet: with
# trust_remote_user = 1 an authenticated user publishes without a token;
# with it off, the same user is refused.
#
# Environment as for make check: top_builddir, top_srcdir.  PUBLISH_KINDS
# limits the kinds (default: all of e2e_kinds).  Prints "ok - ..." /
# "not ok - ..." lines and exits non-zero on any failure.
set -u
B=$(cd "${top_builddir:-.}" && pwd)
S=$(cd "${top_srcdir:-$(dirname "$0")/../..}" && pwd)
. "$S/tests/e2e/lib.sh" || exit 99

PUSHCTL="$B/pushctl"
BASEPORT=${PUBLISH_PORT:-$((20000 + RANDOM % 20000))}
WAIT=20                 # seconds any single expectation may take
TOKEN=e2e-publish-token-0123456789
MAXDATA=65536
ORIGIN=http://allowed.example

fails=0

tmp=$(mktemp -d "${TMPDIR:-/tmp}/publish-e2e.XXXXXX") || exit 99
export PUSHCGI_DB="$tmp/push.db" PUSHCGI_CONF="$tmp/pushcgi.conf"
DOCROOT="$S/www"
curls=()
cleanup() {
	local p
	for p in "${curls[@]}" $(cat "$tmp"/*.cpid 2>/dev/null); do
		kill "$p" 2>/dev/null
	done
	[ -n "${holder:-}" ] && kill "$holder" 2>/dev/null
	wait 2>/dev/null
	e2e_stop >/dev/null 2>&1
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

for prog in "$PUSHCTL" "$B/cgi-bin/push-stream" "$B/cgi-bin/push-publish"; do
	[ -x "$prog" ] || { echo "not ok - $prog is not built"; exit 1; }
done
command -v sqlite3 >/dev/null || { echo "not ok - no sqlite3 shell"; exit 1; }
command -v python3 >/dev/null || { echo "not ok - no python3"; exit 1; }
write_conf() { # extra lines as arguments
	{
		echo "publish_token = $TOKEN"
		echo "publish_token = a-second-token"
		echo "cors_origin = $ORIGIN"
		echo "max_data = $MAXDATA"
		for l in "$@"; do echo "$l"; done
	} >"$PUSHCGI_CONF"
	chmod 0644 "$PUSHCGI_CONF"
}
write_conf
"$PUSHCTL" init >/dev/null || { echo "not ok - pushctl init"; exit 1; }

# --- helpers ---------------------------------------------------------------

sql() { sqlite3 -cmd ".timeout 5000" "$PUSHCGI_DB" "$@"; }
rows() { sql "SELECT count(*) FROM messages WHERE channel = '$1'"; }

# req NAME [curl arguments...]: one request; $tmp/NAME.body, .hdr, and
# the status in $tmp/NAME.code.
req() {
	local name=$1
	shift
	curl -s --max-time "$WAIT" -o "$tmp/$name.body" -D "$tmp/$name.hdr" \
	    -w '%{http_code}' "$@" >"$tmp/$name.code" 2>/dev/null
}
code() { cat "$tmp/$1.code"; }
# same GOT WANT: equal strings, or say both.
same() { [ "$1" = "$2" ] && return 0; echo "# got '$1', want '$2'"; return 1; }
is_code() { # $1 name, $2 wanted status
	[ "$(code "$1")" = "$2" ] && return 0
	echo "# $1: status $(code "$1"), want $2: $(head -c 200 "$tmp/$1.body")"
	return 1
}
hdr() { # $1 name, $2 header: its value
	sed -n "s/^$2:[[:space:]]*//Ip" "$tmp/$1.hdr" | tr -d '\r' | head -n 1
}
# 0 if response NAME is application/json (parameters allowed: nginx
# may add a charset).
is_json() {
	local re='^application/json(;|$)'
	[[ "$(hdr "$1" Content-Type)" =~ $re ]]
}
# json NAME EXPR: evaluate a Python expression on the JSON body as j.
json() {
	python3 -c 'import json, sys
j = json.load(open(sys.argv[1]))
print(eval(sys.argv[2]))' "$tmp/$1.body" "$2" 2>/dev/null
}

# Subscribers: body in $tmp/NAME.body, headers in $tmp/NAME.hdr; each
# exits with curl's status.
sub_start() {
	local name=$1 url=$2
	shift 2
	rm -f "$tmp/$name.body" "$tmp/$name.hdr"
	(curl -sN -o "$tmp/$name.body" -D "$tmp/$name.hdr" "$@" "$url" &
	    echo $! >"$tmp/$name.cpid"
	    wait $!) &
	curls+=($!)
	eval "pid_$name=$!"
}
sub_pid() { eval "echo \$pid_$1"; }
# Hang up subscriber $1 (its curl) and reap it.
sub_kill() {
	local i
	for ((i = 0; i < WAIT * 10; i++)); do
		[ -s "$tmp/$1.cpid" ] && break
		sleep 0.1
	done
	kill "$(cat "$tmp/$1.cpid" 2>/dev/null)" 2>/dev/null
	wait "$(sub_pid "$1")" 2>/dev/null
}
sub_ready() {
	local i
	for ((i = 0; i < WAIT * 10; i++)); do
		grep -qi '^x-push-stream:' "$tmp/$1.hdr" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
sub_handle() { hdr "$1" X-Push-Stream; }
sub_alive() { kill -0 "$(sub_pid "$1")" 2>/dev/null; }
# Wait until subscriber $1 has ended (bounded); its exit status.
sub_wait_end() {
	local i
	for ((i = 0; i < WAIT * 100; i++)); do
		sub_alive "$1" || break
		sleep 0.01
	done
	sub_alive "$1" && { echo "# $1 did not end"; return 124; }
	wait "$(sub_pid "$1")"
}
# 0 once subscriber $1's SSE body names message id $2.
sse_has() {
	local i
	for ((i = 0; i < WAIT * 10; i++)); do
		grep -qx "id: $2" "$tmp/$1.body" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# The mixed part of message file $3 with type $2 in body $1, byte-exact.
cat >"$tmp/part.py" <<'PY'
import sys
body = open(sys.argv[1], 'rb').read()
typ = sys.argv[2].encode()
data = open(sys.argv[3], 'rb').read()
part = b'Content-Type: ' + typ + b'\r\nContent-Length: %d\r\n\r\n' % len(data) + data + b'\r\n--'
sys.exit(0 if part in body else 1)
PY
# ctltime.py STREAM_URL PUBLISH_URL: open an SSE stream, send the control
# request that names its handle, and read the stream to its end, all in
# one process.  Prints "STATUS MS": the control answer's status and the
# milliseconds from sending the request to the stream's complete end
# (http.client raises on a truncated chunked body, so exit 1 then).
cat >"$tmp/ctltime.py" <<'PY'
import http.client, sys, time, urllib.parse
def conn(url):
    u = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=20), \
        u.path + '?' + u.query
s, path = conn(sys.argv[1])
s.request('GET', path)
r = s.getresponse()
handle = r.getheader('X-Push-Stream')
if r.status != 200 or not handle:
    print('stream answered %d without a handle' % r.status); sys.exit(1)
r.readline()                    # the stream has begun
c, path = conn(sys.argv[2] + '?stream=' + handle)
t0 = time.monotonic()
c.request('POST', path, body=b'')
status = c.getresponse().status
r.read()                        # to the end, complete or an exception
print(status, round((time.monotonic() - t0) * 1000, 1))
PY
has_part() {
	local i
	for ((i = 0; i < WAIT * 5; i++)); do
		python3 "$tmp/part.py" "$@" && return 0
		sleep 0.2
	done
	return 1
}

# A binary body: PNG signature, NUL, CR LF, 0xff, and random bytes.
printf '\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe\r\n--x\r\ndata: y\n\x00' \
    >"$tmp/img.png"
head -c 3000 /dev/urandom >>"$tmp/img.png"
head -c $((MAXDATA + 1)) /dev/zero >"$tmp/big"
head -c "$MAXDATA" /dev/zero >"$tmp/max"

# --- the tests, per server kind --------------------------------------------

run_kind() {
	local kind=$1 ch pub url n id i rc
	ch="pub-$kind"
	pub=$(e2e_url push-publish)
	url=$(e2e_url push-stream)

	# 1. Publishing.
	sub_start m "$url?channel=$ch&format=mixed"
	sub_ready m || nok "$kind: mixed subscriber started"
	req p1 -X POST --data-binary @"$tmp/img.png" \
	    -H 'Content-Type: image/png' -H "Authorization: Bearer $TOKEN" \
	    "$pub?channel=$ch"
	check "$kind: publish with a Bearer token: 201" is_code p1 201
	id=$(json p1 'j["id"]')
	check "$kind: the answer names the new id, the channel and 1 subscriber" \
	    same "$id,$(json p1 'j["channel"]'),$(json p1 'j["subscribers"]')" \
	    "$(sql "SELECT max(id) FROM messages WHERE channel = '$ch'"),$ch,1"
	check "$kind: X-Push-Id names the new id" [ "$(hdr p1 X-Push-Id)" = "$id" ]
	check "$kind: the answer is application/json" \
	    is_json p1
	check "$kind: the subscriber gets the body byte-exact under its type" \
	    has_part "$tmp/m.body" image/png "$tmp/img.png"
	check "$kind: the log holds the body and type" python3 -c '
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
t, d = con.execute("SELECT type, data FROM messages WHERE id = ?", (int(sys.argv[2]),)).fetchone()
sys.exit(not (t == "image/png" and bytes(d) == open(sys.argv[3], "rb").read()))' \
	    "$PUSHCGI_DB" "$id" "$tmp/img.png"
	req p2 -X PUT --data-binary 'second, by X-Push-Token' \
	    -H 'Content-Type: text/plain; charset=utf-8' \
	    -H 'X-Push-Token: a-second-token' "$pub?channel=$ch&event=note"
	check "$kind: PUT with X-Push-Token (the second token): 201" is_code p2 201
	check "$kind: event= is kept" [ "$(sql "SELECT event FROM messages WHERE id = $(json p2 'j["id"]')")" = note ]
	req p3 -X POST --data-binary "$(printf 'no type')" -H 'Content-Type:' \
	    -H "X-Push-Token: $TOKEN" "$pub?channel=$ch"
	check "$kind: no Content-Type: the default type" \
	    [ "$(sql "SELECT type FROM messages WHERE id = $(json p3 'j["id"]')")" = "text/plain; charset=utf-8" ]
	sub_kill m

	n=$(rows "$ch")
	req d1 -X POST --data-binary 'x' "$pub?channel=$ch"
	check "$kind: no token: 403" is_code d1 403
	req d2 -X POST --data-binary 'x' -H 'Authorization: Bearer wrong' "$pub?channel=$ch"
	check "$kind: wrong Bearer token: 403" is_code d2 403
	req d3 -X POST --data-binary 'x' -H "X-Push-Token: ${TOKEN}x" "$pub?channel=$ch"
	check "$kind: wrong X-Push-Token: 403" is_code d3 403
	req d4 -X POST --data-binary 'x' -H "Authorization: Basic $(printf 'u:%s' "$TOKEN" | base64)" "$pub?channel=$ch"
	check "$kind: the token as Basic credentials: 403" is_code d4 403
	check "$kind: refused publishes wrote nothing" [ "$(rows "$ch")" = "$n" ]
	check "$kind: a refusal says why in one line" \
	    [ "$(wc -l <"$tmp/d1.body")" = 1 ]
	req e1 -X POST --data-binary @"$tmp/big" -H "X-Push-Token: $TOKEN" \
	    -H 'Content-Type: application/octet-stream' "$pub?channel=$ch"
	check "$kind: a body over max_data: 413" is_code e1 413
	req e2 -X POST --data-binary 'x' -H "X-Push-Token: $TOKEN" \
	    -H 'Content-Type: no-slash' "$pub?channel=$ch"
	check "$kind: an invalid Content-Type: 415" is_code e2 415
	req e3 -X PATCH --data-binary 'x' -H "X-Push-Token: $TOKEN" "$pub?channel=$ch"
	check "$kind: PATCH: 405" is_code e3 405
	check "$kind: 405 names the methods" \
	    [ "$(hdr e3 Allow)" = "GET, POST, PUT, DELETE, OPTIONS" ]
	req e4 -X POST --data-binary 'x' -H "X-Push-Token: $TOKEN" "$pub?channel=.bad"
	check "$kind: an invalid channel: 400" is_code e4 400
	req e5 -X POST --data-binary 'x' -H "X-Push-Token: $TOKEN" "$pub?channel=$ch&color=red"
	check "$kind: an unknown parameter: 400" is_code e5 400
	check "$kind: refused requests wrote nothing" [ "$(rows "$ch")" = "$n" ]
	req e6 -X POST --data-binary @"$tmp/max" -H "X-Push-Token: $TOKEN" \
	    -H 'Content-Type: application/octet-stream' "$pub?channel=$ch"
	check "$kind: a body of exactly max_data: 201" is_code e6 201

	# 2. CORS.
	req o1 -X OPTIONS -H "Origin: $ORIGIN" \
	    -H 'Access-Control-Request-Method: POST' \
	    -H 'Access-Control-Request-Headers: authorization' "$pub?channel=$ch"
	check "$kind: preflight from an allowed origin: 204" is_code o1 204
	check "$kind: preflight allows the origin, methods and headers" \
	    [ "$(hdr o1 Access-Control-Allow-Origin)" = "$ORIGIN" \
	    -a "$(hdr o1 Access-Control-Allow-Methods)" = "GET, POST, PUT, DELETE, OPTIONS" \
	    -a "$(hdr o1 Access-Control-Allow-Headers)" = "Content-Type, Authorization, X-Push-Token" \
	    -a -n "$(hdr o1 Access-Control-Max-Age)" ]
	req o2 -X OPTIONS -H 'Origin: http://evil.example' \
	    -H 'Access-Control-Request-Method: POST' "$pub?channel=$ch"
	check "$kind: preflight from another origin: 403" is_code o2 403
	check "$kind: no Allow-Origin for another origin" \
	    [ -z "$(hdr o2 Access-Control-Allow-Origin)" ]
	req o3 -X POST --data-binary 'cors' -H "Origin: $ORIGIN" \
	    -H "X-Push-Token: $TOKEN" "$pub?channel=$ch"
	check "$kind: a CORS publish is allowed and exposes X-Push-Id" \
	    [ "$(code o3)" = 201 -a "$(hdr o3 Access-Control-Allow-Origin)" = "$ORIGIN" \
	    -a "$(hdr o3 Access-Control-Expose-Headers)" = X-Push-Id ]

	# 3. Channel info, with one subscriber connected, on a channel of
	# its own (the subscribers above may not be released yet: a CGI
	# stream notices a client that left at its next heartbeat).
	local ci="$ch-info"
	"$PUSHCTL" send "$ci" one >/dev/null
	"$PUSHCTL" send -t text/csv "$ci" 2,3 >/dev/null
	sub_start i1 "$url?channel=$ci&format=sse"
	sub_ready i1 || nok "$kind: info subscriber started"
	req g1 -H "X-Push-Token: $TOKEN" "$pub?channel=$ci"
	check "$kind: GET channel info: 200" is_code g1 200
	check "$kind: channel info fields match the log" python3 -c '
import json, sqlite3, sys
j = json.load(open(sys.argv[1]))
con = sqlite3.connect(sys.argv[2])
cnt, first = con.execute("SELECT count(*), coalesce(min(id), 0) FROM messages WHERE channel = ?", (sys.argv[3],)).fetchone()
last, t = con.execute("SELECT id, time FROM messages WHERE channel = ? ORDER BY id DESC LIMIT 1", (sys.argv[3],)).fetchone()
want = {"channel": sys.argv[3], "messages": cnt, "first_id": first, "last_id": last, "last_time": t, "subscribers": 1}
if j != want or cnt != 2:
    print("# got %r, want %r" % (j, want)); sys.exit(1)' \
	    "$tmp/g1.body" "$PUSHCGI_DB" "$ci"
	req g2 -H "X-Push-Token: $TOKEN" "$pub?channel=$ch-never"
	check "$kind: info on an unknown channel: 404" is_code g2 404
	req g3 "$pub?channel=$ci"
	check "$kind: info without a token: 403" is_code g3 403
	sub_kill i1

	# 4. Control: end one stream by its handle.
	sub_start c1 "$url?channel=$ch&format=sse"
	sub_start c2 "$url?channel=$ch&format=sse"
	sub_ready c1 && sub_ready c2 || nok "$kind: control subscribers started"
	local h1 h2
	h1=$(sub_handle c1)
	h2=$(sub_handle c2)
	check "$kind: X-Push-Stream is a handle ID.SECRET" \
	    bash -c "[[ '$h1' =~ ^[0-9]+\.[0-9a-zA-Z]+$ ]]"
	req k1 -X POST --data-binary '' "$pub?stream=${h1%%.*}.${h2#*.}"
	check "$kind: another stream's secret: 403" is_code k1 403
	req k2 -X POST --data-binary '' "$pub?stream=${h1%%.*}"
	check "$kind: a bare id without a token: 403" is_code k2 403
	req k3 -X POST --data-binary '' "$pub?stream=${h1%%.*}x"
	check "$kind: a malformed handle: 400" is_code k3 400
	req k4 -X POST --data-binary '' "$pub?stream=99999999.${h1#*.}"
	check "$kind: an unknown stream: 404" is_code k4 404
	id=$("$PUSHCTL" send "$ch" "after the refused control requests")
	check "$kind: refused control requests ended nothing" \
	    eval 'sse_has c1 "$id" && sse_has c2 "$id" && sub_alive c1 && sub_alive c2'
	req k5 -X POST --data-binary '' "$pub?stream=$h1"
	sub_wait_end c1
	rc=$?
	check "$kind: the right secret: 200" is_code k5 200
	check "$kind: the named stream ended cleanly" [ "$rc" -eq 0 ]
	id=$("$PUSHCTL" send "$ch" "after the control request")
	check "$kind: the other stream goes on" eval 'sse_has c2 "$id" && sub_alive c2'
	check "$kind: the ended stream's row is gone" \
	    [ "$(sql "SELECT count(*) FROM streams WHERE id = ${h1%%.*}")" = 0 ]
	req k6 -X DELETE -H "X-Push-Token: $TOKEN" "$pub?stream=${h2%%.*}"
	sub_wait_end c2
	rc=$?
	check "$kind: a publisher ends a stream by its id alone" \
	    [ "$(code k6)" = 200 -a "$rc" -eq 0 ]
	# The time from a control request to its stream's end, in one
	# process (printed, not asserted).
	local ms=() out
	for i in 1 2 3 4 5; do
		out=$(python3 "$tmp/ctltime.py" "$url?channel=$ch&format=sse" \
		    "$pub" 2>&1) || { echo "# $out"; out=; break; }
		[ "${out%% *}" = 200 ] || { echo "# $out"; break; }
		ms+=("${out#* }")
	done
	check "$kind: 5 control requests (200) each end their stream cleanly" \
	    [ ${#ms[@]} -eq 5 ]
	echo "# $kind: control request sent to the stream's end: ${ms[*]} ms"

	# 5. DELETE a channel with a live stream.
	sub_start x1 "$url?channel=$ch&format=sse"
	sub_ready x1 || nok "$kind: delete subscriber started"
	n=$(rows "$ch")
	req x2 -X DELETE -H "Authorization: Bearer $TOKEN" "$pub?channel=$ch"
	check "$kind: DELETE a channel: 200" is_code x2 200
	check "$kind: DELETE says how many messages went" \
	    [ "$(json x2 'j["deleted"]')" = "$n" ]
	sub_wait_end x1
	check "$kind: the channel's live stream ended cleanly" [ $? -eq 0 ]
	check "$kind: the channel's messages are gone" [ "$(rows "$ch")" = 0 ]
	req x3 -H "X-Push-Token: $TOKEN" "$pub?channel=$ch"
	check "$kind: info after DELETE: 404" is_code x3 404
	req x4 -X DELETE -H "X-Push-Token: $TOKEN" "$pub?channel=$ch"
	check "$kind: DELETE again: 404" is_code x4 404
	req x5 -X DELETE "$pub?channel=$ch-other"
	check "$kind: DELETE without a token: 403" is_code x5 403
}

# A writer holds the log for longer than the busy timeout (5 s): 503.
run_busy() {
	local kind=$1 ch=busy-$1 pub n
	pub=$(e2e_url push-publish)
	"$PUSHCTL" send "$ch" warm >/dev/null
	n=$(rows "$ch")
	mkfifo "$tmp/hold"
	sqlite3 "$PUSHCGI_DB" <"$tmp/hold" >/dev/null 2>&1 &
	holder=$!
	exec 7>"$tmp/hold"
	echo "BEGIN IMMEDIATE;" >&7
	echo "INSERT INTO messages(channel, data) VALUES('$ch', 'held');" >&7
	sleep 0.5
	req b1 -X POST --data-binary 'x' -H "X-Push-Token: $TOKEN" "$pub?channel=$ch"
	echo "ROLLBACK;" >&7
	exec 7>&-
	wait "$holder"
	holder=
	rm -f "$tmp/hold"
	check "$kind: a log busy past the timeout: 503" is_code b1 503
	check "$kind: 503 carries Retry-After" [ -n "$(hdr b1 Retry-After)" ]
	check "$kind: nothing was written while busy" [ "$(rows "$ch")" = "$n" ]
}

for kind in ${PUBLISH_KINDS:-$(e2e_kinds)}; do
	port=$(e2e_free_port "$BASEPORT") || { nok "$kind: a free port"; continue; }
	if ! e2e_start "$kind" "$port" >"$tmp/start.log" 2>&1; then
		nok "$kind: server starts"
		sed 's/^/# /' "$tmp/start.log"
		continue
	fi
	run_kind "$kind"
	[ "$kind" = "${PUBLISH_BUSY_KIND:-lighttpd-fastcgi}" ] && run_busy "$kind"
	check "$kind: no sanitizer report in the error log" \
	    eval '! e2e_log | grep -E "ERROR: (Address|Leak)Sanitizer|runtime error:"'
	e2e_log | grep -E -A12 "ERROR: (Address|Leak)Sanitizer|runtime error:" |
	    head -n 40 | sed 's/^/# /'
	e2e_stop >/dev/null 2>&1
done

# trust_remote_user: lighttpd with mod_cgi (the config is read per
# request) and HTTP basic auth in front of push-publish, from a copy of
# the shipped configuration with an auth snippet first.
if [ -z "${PUBLISH_KINDS:-}" ] || [[ " $PUBLISH_KINDS " == *" lighttpd-cgi "* ]]; then
	mkdir -p "$tmp/src/conf"
	printf 'alice:wonderland\n' >"$tmp/users"
	chmod 0644 "$tmp/users"
	{
		echo 'server.modules += ( "mod_auth", "mod_authn_file" )'
		echo 'auth.backend = "plain"'
		echo "auth.backend.plain.userfile = \"$tmp/users\""
		echo 'auth.require = ( "/cgi-bin/push-publish" => ( "method" => "basic", "realm" => "pushcgi", "require" => "valid-user" ) )'
		cat "$S/conf/lighttpd-cgi.conf"
	} >"$tmp/src/conf/lighttpd-cgi.conf"
	saved_src=$E2E_SRCDIR
	E2E_SRCDIR="$tmp/src"
	port=$(e2e_free_port "$BASEPORT")
	if ! e2e_start lighttpd-cgi "$port" >"$tmp/start.log" 2>&1; then
		nok "lighttpd-cgi with basic auth: server starts"
		sed 's/^/# /' "$tmp/start.log"
	else
		pub=$(e2e_url push-publish)
		write_conf "trust_remote_user = 1"
		n=$(rows trusted)
		req u1 -X POST --data-binary 'by alice' -u alice:wonderland "$pub?channel=trusted"
		check "trusted REMOTE_USER publishes without a token: 201" is_code u1 201
		check "the trusted publish was written" [ "$(rows trusted)" = $((n + 1)) ]
		req u2 -X POST --data-binary 'by nobody' "$pub?channel=trusted"
		check "no credentials: the server asks for them (401)" is_code u2 401
		req u3 -X POST --data-binary 'by mallory' -u alice:wrong "$pub?channel=trusted"
		check "wrong credentials: 401" is_code u3 401
		write_conf "trust_remote_user = 0"
		req u4 -X POST --data-binary 'by alice again' -u alice:wonderland "$pub?channel=trusted"
		check "REMOTE_USER not trusted: 403" is_code u4 403
		check "untrusted and refused publishes wrote nothing" \
		    [ "$(rows trusted)" = $((n + 1)) ]
		check "lighttpd-cgi with basic auth: no sanitizer report in the error log" \
		    eval '! e2e_log | grep -E "ERROR: (Address|Leak)Sanitizer|runtime error:"'
		e2e_stop >/dev/null 2>&1
	fi
	E2E_SRCDIR=$saved_src
	write_conf
fi

[ "$fails" -eq 0 ]
