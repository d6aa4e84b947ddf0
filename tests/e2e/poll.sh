#!/usr/bin/env bash
# The long-poll responder (push-poll) through real web servers.
#
# For each server kind that tests/e2e/lib.sh can start (Apache with mod_cgi,
# mod_fcgid and mod_proxy_fcgi, lighttpd with mod_cgi and mod_fastcgi,
# nginx with FastCGI):
#
# 1. Loop: a long-poll client (python3) polls with its cursor (since=, and
#    every other time If-None-Match with the ETag it got) while four
#    publishers at once (pushctl send, the C API through tests/e2e/cpub,
#    plain SQL from the sqlite3 shell, and a second pushctl) publish
#    POLL_COUNT messages (1000 by default) as fast as they can: the client
#    gets every one of them exactly once, in id order.  To keep the run
#    short, the kinds in POLL_SMALL_KINDS (apache-cgi, lighttpd-cgi and
#    apache-proxy-fcgi: they add no FastCGI server and no code path that
#    the others lack) get POLL_COUNT_SMALL (200) messages.
# 2. The contract, one request at a time: the empty answer of a timeout
#    with its cursor (json 200, raw 304); a gap marker for a cursor older
#    than what retention kept; JSONP with a valid callback, 400 for a bad
#    one; raw byte-exact (binary, NUL bytes) with its Content-Type;
#    If-None-Match and Last-Event-ID cursors; CORS headers and the
#    OPTIONS preflight allowed and refused; 405; 400 for bad parameters;
#    private channels with a missing, wrong, expired, malformed and good
#    subscriber token; 503 with Retry-After past max_channel_subscribers;
#    a client that leaves a held poll: its streams row is gone within the
#    heartbeat + 1 s (plus SLACK for a loaded machine; the figure is
#    printed); SIGTERM to a responder holding a poll answers it cleanly
#    with the empty result.
# 3. format=page: an empty channel's page, the newest message as a page
#    (text escaped, HTML as it is, an image as an <img> whose raw URL
#    serves its bytes), the Refresh header and its bounds, no-store, a
#    private channel with and without its token.
#
# Environment as for make check: top_builddir, top_srcdir.  POLL_KINDS
# limits the kinds (default: all of e2e_kinds); POLL_COUNT the messages of
# the loop.  Prints "ok - ..." / "not ok - ..." lines and exits non-zero on
# any failure.
set -u
B=$(cd "${top_builddir:-.}" && pwd)
S=$(cd "${top_srcdir:-$(dirname "$0")/../..}" && pwd)
. "$S/tests/e2e/lib.sh" || exit 99

PUSHCTL="$B/pushctl"
CPUB="$B/tests/e2e/cpub"
BASEPORT=${POLL_PORT:-$((20000 + RANDOM % 20000))}
COUNT=${POLL_COUNT:-1000}  # messages of the loop test (divisible by 4)
SMALL=${POLL_COUNT_SMALL:-200} # the same on the kinds below
SMALL_KINDS=${POLL_SMALL_KINDS:-"apache-cgi lighttpd-cgi apache-proxy-fcgi"}
HB=2                    # heartbeat from the config written below (s)
SLACK=4                 # seconds allowed on top of heartbeat + 1
WAIT=20                 # seconds any single expectation may take
LOOP_WAIT=900           # seconds the loop test may take in all (a
                        # sanitizer build publishes slowly)
SECRET=poll-e2e-secret
ORIGIN=http://allowed.example

fails=0

tmp=$(mktemp -d "${TMPDIR:-/tmp}/poll-e2e.XXXXXX") || exit 99
export PUSHCGI_DB="$tmp/push.db"
export PUSHCGI_CONF="$tmp/pushcgi.conf"
bg=()
cleanup() {
	local p
	for p in "${bg[@]}"; do
		kill "$p" 2>/dev/null
	done
	wait 2>/dev/null
	e2e_stop >/dev/null 2>&1
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

for prog in "$PUSHCTL" "$CPUB" "$B/cgi-bin/push-poll"; do
	[ -x "$prog" ] || { echo "not ok - $prog is not built"; exit 1; }
done
command -v sqlite3 >/dev/null || { echo "not ok - no sqlite3 shell"; exit 1; }
command -v python3 >/dev/null || { echo "not ok - no python3"; exit 1; }

cat >"$PUSHCGI_CONF" <<EOF
heartbeat = $HB
poll_timeout = 5
poll_timeout_max = 15
retain_count = 100000
cors_origin = $ORIGIN
subscriber_secret = $SECRET
private_channel = priv
max_channel_subscribers = 3
EOF
chmod 0644 "$PUSHCGI_CONF"
"$PUSHCTL" init >/dev/null || { echo "not ok - pushctl init"; exit 1; }
# From here on the log is used as the servers' user only (as the shipped
# configs advise): a root process that creates the -wal file while a
# responder opens it would leave that responder with a read-only log.
e2e_identity && e2e_share_db || { echo "not ok - hand the log over"; exit 1; }
# A build under a private folder is out of that user's reach: run copies.
if ! e2e_as_user test -x "$PUSHCTL" -a -x "$CPUB"; then
	mkdir -p "$tmp/bin" && cp "$PUSHCTL" "$CPUB" "$tmp/bin/" &&
	    chmod -R a+rX "$tmp/bin" || { echo "not ok - copy the tools"; exit 1; }
	PUSHCTL=$tmp/bin/pushctl
	CPUB=$tmp/bin/cpub
fi

# --- helpers ---------------------------------------------------------------

pushctl() { e2e_as_user "$PUSHCTL" "$@"; }
cpub() { e2e_as_user "$CPUB" "$PUSHCGI_DB" "$@"; }
sql() { e2e_as_user sqlite3 -cmd ".timeout 5000" "$PUSHCGI_DB" "$@"; }
last_id() { sql "SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'messages'"; }
# Held polls registered on channel $1.
rows() { sql "SELECT count(*) FROM subscriptions WHERE channel = '$1'"; }
now_ms() { date +%s%3N; }

# get NAME URL [curl args...]: one request; body in $tmp/NAME.body,
# headers in $tmp/NAME.hdr, status code printed.
get() {
	local name=$1 url=$2
	shift 2
	curl -s -o "$tmp/$name.body" -D "$tmp/$name.hdr" --max-time 30 \
	    -w '%{http_code}' "$@" "$url"
}
# hdr NAME HEADER: the value of a response header (CR stripped).
hdr() {
	sed -n "s/^$2:[[:space:]]*//Ip" "$tmp/$1.hdr" | tr -d '\r' | tail -n 1
}
# One python3 helper for the whole run (starting python costs much more
# than the checks): reads requests, one a line, fields TAB-separated, and
# answers each with one line.
#   check BODY HDR EXPR   "1" if EXPR holds, with j = the parsed JSON body
#                         (JSONP: the callback name in cb, its argument in
#                         j), h = the headers (lower-case names); else "0 "
#                         and why
#   token CHANNEL EXPIRY SECRET
#                         a subscriber token made as lib/auth.h documents
cat >"$tmp/helper.py" <<'PY'
import hashlib, hmac, json, re, sys

def check(body_file, hdr_file, expr):
    body = open(body_file, 'rb').read().decode('utf-8')
    h = {}
    for line in open(hdr_file, 'rb').read().decode('latin-1').split('\r\n'):
        if ':' in line:
            k, v = line.split(':', 1)
            h[k.strip().lower()] = v.strip()
    cb = None
    s = body.strip()
    m = re.match(r'^([A-Za-z_$][\w$.]*)\((.*)\);$', s, re.S)
    if m:
        cb, s = m.group(1), m.group(2)
    j = json.loads(s)
    if eval(expr):
        return '1'
    return '0 body %r headers %r' % (body[:300], h)

for line in sys.stdin:
    f = line.rstrip('\n').split('\t')
    try:
        if f[0] == 'check':
            out = check(*f[1:4])
        elif f[0] == 'token':
            ch, exp, key = f[1:4]
            out = exp + '.' + hmac.new(key.encode(), ('pushcgi-sub:%s:%s' % (
                ch, exp)).encode(), hashlib.sha256).hexdigest()
        else:
            out = '0 unknown request'
    except Exception as e:
        out = '0 %r' % (e,)
    print(out.replace('\n', ' '), flush=True)
PY
coproc HELPER { python3 -u "$tmp/helper.py"; }
bg+=($HELPER_PID)
# helper FIELDS...: one request, the answer on stdout.
helper() {
	local IFS=$'\t' line
	echo "$*" >&"${HELPER[1]}"
	read -r line <&"${HELPER[0]}"
	echo "$line"
}
# A subscriber token for channel $1 good until $2 (epoch seconds), with
# secret $3 (default: the configured one).
token() { helper token "$1" "$2" "${3:-$SECRET}"; }
# jcheck NAME PYTHON-EXPR: 0 if EXPR holds for response NAME (see above).
jcheck() {
	local a
	a=$(helper check "$tmp/$1.body" "$tmp/$1.hdr" "$2")
	[ "$a" = 1 ] && return 0
	echo "# ${a#0 }"
	return 1
}

# The loop client: polls URL for CHANNEL from cursor START until it holds
# COUNT messages, or WAIT seconds after file DONE appeared, or DEADLINE
# seconds pass; writes the ids it got, one a line, to OUT.  Every answer is checked: status 200, JSON, ids above the
# cursor and increasing, "next" at least the last id, the ETag (when the
# headers were not sent early) equal to "next".
cat >"$tmp/client.py" <<'PY'
import json, os, sys, time, urllib.request, urllib.error
url, channel, cursor, count, deadline, out, done, wait = sys.argv[1:9]
cursor, count = int(cursor), int(count)
end = time.time() + float(deadline)
def over():
    # WAIT seconds after the publishers are done (file DONE exists),
    # at the latest DEADLINE seconds after the start.
    if time.time() >= end:
        return True
    try:
        return time.time() >= os.stat(done).st_mtime + float(wait)
    except FileNotFoundError:
        return False
ids, polls, etag, more = [], 0, None, 0
def fail(why):
    open(out, 'w').write(''.join('%d\n' % i for i in ids))
    print('client: %s (after %d polls, %d messages)' % (why, polls, len(ids)),
          file=sys.stderr)
    sys.exit(1)
while len(ids) < count and not over():
    polls += 1
    if polls % 2 == 0 and etag is not None:
        req = urllib.request.Request('%s?channel=%s&timeout=5' % (url, channel),
                                     headers={'If-None-Match': etag})
    else:
        req = urllib.request.Request('%s?channel=%s&since=%d&timeout=5' %
                                     (url, channel, cursor))
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, hdrs, body = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        fail('HTTP %d: %r' % (e.code, e.read()[:200]))
    except Exception as e:
        fail('request failed: %r' % (e,))
    if status != 200:
        fail('status %d' % status)
    try:
        j = json.loads(body)
    except ValueError:
        fail('not JSON: %r' % body[:200])
    if 'gap' in j:
        fail('unexpected gap %r' % j['gap'])
    prev = cursor
    for m in j['messages']:
        if m['channel'] != channel or m['id'] <= prev:
            fail('message %r after cursor %d out of order' % (m['id'], prev))
        prev = m['id']
        ids.append(m['id'])
    if j['next'] < prev:
        fail('next %d below the last id %d' % (j['next'], prev))
    if hdrs.get('ETag') is not None:
        if hdrs['ETag'] != '"%d"' % j['next']:
            fail('ETag %s but next %d' % (hdrs['ETag'], j['next']))
        etag = hdrs['ETag']
    else:
        etag = None
    if j.get('more'):
        more += 1
    cursor = j['next']
open(out, 'w').write(''.join('%d\n' % i for i in ids))
print('# %d polls, %d messages, %d answers cut with "more"' % (polls, len(ids), more))
PY

# Processes of push-poll started by this server, one a line.
responder_pids() {
	local p sid
	for p in $(pgrep -x push-poll); do
		sid=$(e2e_sid "$p") || continue
		case " $E2E_SIDS " in
		*" $sid "*) echo "$p" ;;
		esac
	done
}

# A binary payload with NUL bytes, CR LF and invalid UTF-8.
printf '\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe\x00\r\n--x\r\n\x00' \
    >"$tmp/fake.png"
head -c 5000 /dev/urandom >>"$tmp/fake.png"

# Messages pruned before any server starts (so no responder holds them in
# memory), for the gap markers.
G1=$(pushctl send gap "gone 1")
G2=$(pushctl send gap "gone 2")
G3=$(pushctl send gap "kept")
pushctl prune --keep 1 gap >/dev/null

# --- the tests, per server kind --------------------------------------------

# 1. $3 messages from four publishers at once, one long-poll client.
loop_test() {
	local kind=$1 url=$2 COUNT=$3 ch="loop-$1" start n q pids=() i rc t0
	start=$(last_id)
	rm -f "$tmp/loop.done"
	python3 "$tmp/client.py" "$url" "$ch" "$start" "$COUNT" "$LOOP_WAIT" \
	    "$tmp/loop.ids" "$tmp/loop.done" "$WAIT" 2>"$tmp/client.err" &
	local client=$!
	bg+=($client)
	sleep 0.5
	t0=$(now_ms)
	q=$((COUNT / 4))
	# Each publisher is one shell running as the servers' user.
	e2e_as_user bash -c 'for ((i = 0; i < $1; i++)); do
		"$2" send "$3" "pushctl A $i" >/dev/null || exit 1
	done' - "$q" "$PUSHCTL" "$ch" &
	pids+=($!)
	e2e_as_user bash -c 'for ((i = 0; i < $1; i++)); do
		printf "cpub %d \x00 binary" "$i" |
		    "$2" "$PUSHCGI_DB" "$3" application/octet-stream \
		    >/dev/null || exit 1
	done' - "$q" "$CPUB" "$ch" &
	pids+=($!)
	for ((i = 0; i < q; i++)); do
		echo "INSERT INTO messages(channel, data) VALUES('$ch', 'sql $i');"
	done | sql >/dev/null &
	pids+=($!)
	e2e_as_user bash -c 'for ((i = 0; i < $1; i++)); do
		"$2" send -e b "$3" "pushctl B $i" >/dev/null || exit 1
	done' - "$q" "$PUSHCTL" "$ch" &
	pids+=($!)
	rc=0
	for i in "${pids[@]}"; do
		wait "$i" || rc=1
	done
	: >"$tmp/loop.done"
	echo "# $kind: $COUNT messages published in $(($(now_ms) - t0)) ms"
	check "$kind: four publishers published $COUNT messages" [ "$rc" -eq 0 ]
	wait "$client"
	rc=$?
	sed 's/^/# /' "$tmp/client.err"
	n=$(sql "SELECT count(*) FROM messages WHERE channel = '$ch' AND id > $start")
	check "$kind: the log holds the $COUNT messages" [ "$n" -eq "$COUNT" ]
	check "$kind: a long-poll client looping with its cursor gets all $COUNT, each once, in order" \
	    eval '[ "$rc" -eq 0 ] && diff -q "$tmp/loop.ids" <(sql "SELECT id FROM messages WHERE channel = '"'$ch'"' AND id > $start ORDER BY id") >/dev/null'
}

# 2. The contract.
contract_tests() {
	local kind=$1 url=$2 ch="c-$1" id l s n t0 t1 exp pid failed rc
	# Timeout: the empty answer naming the cursor.
	pushctl send "$ch" "one" >/dev/null
	l=$(last_id)
	pushctl send "other-$kind" "not on $ch" >/dev/null
	s=$(get tmo "$url?channel=$ch&since=$l&timeout=1")
	check "$kind: json timeout answers 200 with no messages and the cursor" \
	    jcheck tmo "$s == 200 and j['messages'] == [] and $l <= j['next'] <= $(last_id) and 'gap' not in j and h['etag'] == '\"%d\"' % j['next'] and h['x-push-next'] == str(j['next']) and h['content-type'].split(';')[0] == 'application/json' and cb is None"
	# (the ETag then equals If-None-Match: no server may turn it into 304)
	n=$(last_id)
	s=$(get tmoi "$url?channel=$ch&timeout=1" -H "If-None-Match: \"$n\"")
	check "$kind: a json timeout with an If-None-Match cursor is still the 200 answer" \
	    jcheck tmoi "$s == 200 and j['messages'] == [] and j['next'] >= $n"
	s=$(get tmo0 "$url?channel=$ch&since=$l&timeout=0")
	check "$kind: timeout=0 answers at once" \
	    jcheck tmo0 "$s == 200 and j['messages'] == [] and j['next'] >= $l"
	s=$(get rtmo "$url?channel=$ch&since=$l&timeout=1&format=raw")
	check "$kind: raw timeout answers 304 with the cursor as ETag" \
	    eval '[ "$s" = 304 ] && [ ! -s "$tmp/rtmo.body" ] && [ "$(hdr rtmo ETag)" = "\"$(hdr rtmo X-Push-Next)\"" ] && [ "$(hdr rtmo X-Push-Next)" -ge "$l" ]'

	# A cursor before the messages: everything after it, at once.
	id=$(pushctl send -e ev "$ch" "two")
	s=$(get json "$url?channel=$ch&since=$l")
	check "$kind: json answers at once with the messages after the cursor" \
	    jcheck json "$s == 200 and [m['id'] for m in j['messages']] == [$id] and j['messages'][0]['data'] == 'two' and j['messages'][0]['event'] == 'ev' and j['messages'][0]['channel'] == '$ch' and j['next'] == $id and h['etag'] == '\"$id\"'"
	s=$(get inm "$url?channel=$ch" -H "If-None-Match: \"$l\"")
	check "$kind: If-None-Match is the cursor" \
	    jcheck inm "$s == 200 and [m['id'] for m in j['messages']] == [$id]"
	s=$(get inmw "$url?channel=$ch" -H "If-None-Match: W/\"$l\"")
	check "$kind: a weak If-None-Match is the cursor" \
	    jcheck inmw "$s == 200 and [m['id'] for m in j['messages']] == [$id]"
	s=$(get leid "$url?channel=$ch" -H "Last-Event-ID: $l")
	check "$kind: Last-Event-ID is the cursor" \
	    jcheck leid "$s == 200 and [m['id'] for m in j['messages']] == [$id]"
	s=$(get sinc "$url?channel=$ch&since=$((id - 1))" -H "If-None-Match: \"$l\"")
	check "$kind: since= wins over If-None-Match" \
	    jcheck sinc "$s == 200 and [m['id'] for m in j['messages']] == [$id]"
	exp=$(sql "SELECT id FROM messages WHERE channel = '$ch' ORDER BY id DESC LIMIT 2" |
	    sort -n | paste -sd, -)
	s=$(get last "$url?channel=$ch&last=2")
	check "$kind: last=2 without a cursor answers with the newest 2" \
	    jcheck last "$s == 200 and [m['id'] for m in j['messages']] == [$exp]"
	s=$(get bad "$url?channel=$ch" -H 'If-None-Match: "12x"')
	check "$kind: a malformed If-None-Match is a 400" [ "$s" = 400 ]

	# Held, then answered by a publish.
	l=$(last_id)
	curl -s -o "$tmp/held.body" -D "$tmp/held.hdr" --max-time 30 \
	    "$url?channel=$ch&since=$l&timeout=10" &
	pid=$!
	bg+=($pid)
	for ((n = 0; n < WAIT * 10; n++)); do
		[ "$(rows "$ch")" -ge 1 ] && break
		sleep 0.1
	done
	check "$kind: a held poll is registered as a subscriber" [ "$(rows "$ch")" -ge 1 ]
	id=$(printf 'caf\xc3\xa9 </script>' | cpub "$ch" "text/plain; charset=utf-8")
	wait "$pid"
	check "$kind: a held poll is answered by the next publish (C API)" \
	    jcheck held "[m['id'] for m in j['messages']] == [$id] and j['messages'][0]['data'] == 'caf\u00e9 </script>' and j['next'] == $id"
	check "$kind: an answered poll leaves no streams row" [ "$(rows "$ch")" -eq 0 ]

	# Held past the heartbeat: headers early, whitespace, then the answer.
	l=$(last_id)
	rm -f "$tmp/beat.hdr"
	curl -s -o "$tmp/beat.body" -D "$tmp/beat.hdr" --max-time 30 \
	    "$url?channel=$ch&since=$l&timeout=15" &
	pid=$!
	bg+=($pid)
	for ((n = 0; n < WAIT * 10; n++)); do
		[ -s "$tmp/beat.hdr" ] && break
		sleep 0.1
	done
	id=$(pushctl send "$ch" "after a heartbeat")
	wait "$pid"
	check "$kind: a poll held past the heartbeat sends whitespace, then the answer" \
	    jcheck beat "[m['id'] for m in j['messages']] == [$id] and j['next'] == $id and open('$tmp/beat.body').read().startswith(' ') and 'etag' not in h"

	# Gap: messages pruned before the client saw them.
	s=$(get gapj "$url?channel=gap&since=$((G1 - 1))")
	check "$kind: json reports a gap, then what is left" \
	    jcheck gapj "$s == 200 and j['gap'] == $G2 and [m['id'] for m in j['messages']] == [$G3] and j['next'] >= $G3"
	s=$(get gapr "$url?channel=gap&since=$((G1 - 1))&format=raw")
	check "$kind: raw reports a gap with X-Push-Gap and the next message" \
	    eval '[ "$s" = 200 ] && [ "$(hdr gapr X-Push-Gap)" = "$G2" ] && [ "$(cat "$tmp/gapr.body")" = kept ] && [ "$(hdr gapr ETag)" = "\"$G3\"" ]'

	# JSONP.
	s=$(get jsonp "$url?channel=$ch&since=$((id - 1))&callback=my.cb_1")
	check "$kind: JSONP wraps the answer in the callback" \
	    jcheck jsonp "$s == 200 and cb == 'my.cb_1' and [m['id'] for m in j['messages']] == [$id] and h['content-type'] == 'text/javascript; charset=utf-8'"
	for cbad in 1x a-b alert%281%29 a..b %3Cb%3E "$(printf 'x%.0s' {1..65})"; do
		s=$(get cbad "$url?channel=$ch&callback=$cbad")
		check "$kind: callback=$cbad is a 400" [ "$s" = 400 ]
	done

	# raw: byte-exact, with its Content-Type.
	l=$(last_id)
	id=$(pushctl send -t image/png "$ch" - <"$tmp/fake.png")
	pushctl send "$ch" "after the image" >/dev/null
	s=$(get raw "$url?channel=$ch&since=$l&format=raw")
	check "$kind: raw answers the oldest message byte-exact with its type" \
	    eval '[ "$s" = 200 ] && cmp -s "$tmp/raw.body" "$tmp/fake.png" && [ "$(hdr raw Content-Type)" = image/png ] && [ "$(hdr raw ETag)" = "\"$id\"" ] && [ "$(hdr raw X-Push-Id)" = "$id" ]'
	s=$(get raw2 "$url?channel=$ch&format=raw" -H "If-None-Match: $(hdr raw ETag)")
	check "$kind: raw with If-None-Match from the last ETag gets the next one" \
	    eval '[ "$s" = 200 ] && [ "$(cat "$tmp/raw2.body")" = "after the image" ] && [ "$(hdr raw2 ETag)" = "\"$((id + 1))\"" ]'

	# CORS.
	s=$(get cors "$url?channel=$ch&since=$l&timeout=0" -H "Origin: $ORIGIN")
	check "$kind: an allowed Origin gets Allow-Origin and Expose-Headers" \
	    eval '[ "$s" = 200 ] && [ "$(hdr cors Access-Control-Allow-Origin)" = "$ORIGIN" ] && hdr cors Access-Control-Expose-Headers | grep -q "ETag, X-Push-Next"'
	s=$(get corsno "$url?channel=$ch&since=$l&timeout=0" -H "Origin: http://evil.example")
	check "$kind: another Origin gets no CORS headers" \
	    eval '[ "$s" = 200 ] && ! grep -qi "^access-control" "$tmp/corsno.hdr"'
	s=$(get pre "$url?channel=$ch" -X OPTIONS -H "Origin: $ORIGIN" \
	    -H "Access-Control-Request-Method: GET" \
	    -H "Access-Control-Request-Headers: if-none-match")
	check "$kind: the preflight of an allowed Origin is a 204 with methods and headers" \
	    eval '[ "$s" = 204 ] && [ "$(hdr pre Access-Control-Allow-Origin)" = "$ORIGIN" ] && hdr pre Access-Control-Allow-Methods | grep -q GET && hdr pre Access-Control-Allow-Headers | grep -q If-None-Match && [ -n "$(hdr pre Access-Control-Max-Age)" ]'
	s=$(get preno "$url?channel=$ch" -X OPTIONS -H "Origin: http://evil.example" \
	    -H "Access-Control-Request-Method: GET")
	check "$kind: the preflight of another Origin is a 403" \
	    eval '[ "$s" = 403 ] && ! grep -qi "^access-control-allow" "$tmp/preno.hdr"'

	# Methods and parameters.
	s=$(get post "$url?channel=$ch" -X POST -d x)
	check "$kind: POST is a 405 with Allow" \
	    eval '[ "$s" = 405 ] && hdr post Allow | grep -q GET'
	s=$(get del "$url?channel=$ch" -X DELETE)
	check "$kind: DELETE is a 405" [ "$s" = 405 ]
	for q in "" "channel=" "channel=.x" "channel=$ch&since=abc" \
	    "channel=$ch&since=12345678901234567890" "channel=$ch&last=101" \
	    "channel=$ch&since=1&last=2" "channel=$ch&timeout=x" \
	    "channel=$ch&timeout=12345" "channel=$ch&format=xml" \
	    "channel=$ch&format=raw&callback=cb" "channel=$ch&bogus=1" \
	    "channel=$ch&since=1&since=2" "channel=a%00b"; do
		s=$(get badq "$url?$q")
		check "$kind: ?$q is a 400 with a reason" \
		    eval '[ "$s" = 400 ] && [ -s "$tmp/badq.body" ]'
	done

	# Private channels.
	pushctl send "priv-$kind" "secret" >/dev/null
	t=$(( $(date +%s) + 600 ))
	s=$(get pnone "$url?channel=priv-$kind&since=0&timeout=0")
	check "$kind: a private channel without a token is a 403" [ "$s" = 403 ]
	s=$(get pwrong "$url?channel=priv-$kind&since=0&timeout=0&token=$(token "priv-$kind" "$t" wrong-secret)")
	check "$kind: a token signed with another secret is a 403" [ "$s" = 403 ]
	s=$(get pother "$url?channel=priv-$kind&since=0&timeout=0&token=$(token "priv-other" "$t")")
	check "$kind: a token for another channel is a 403" [ "$s" = 403 ]
	s=$(get pexp "$url?channel=priv-$kind&since=0&timeout=0&token=$(token "priv-$kind" $(( $(date +%s) - 10 )))")
	check "$kind: an expired token is a 403" [ "$s" = 403 ]
	s=$(get pbad "$url?channel=priv-$kind&since=0&timeout=0&token=not-a-token")
	check "$kind: a malformed token is a 400" [ "$s" = 400 ]
	s=$(get pok "$url?channel=priv-$kind&since=0&timeout=0&token=$(token "priv-$kind" "$t")")
	check "$kind: a good token opens the private channel" \
	    jcheck pok "$s == 200 and [m['data'] for m in j['messages']] == ['secret']"
	s=$(get pmix "$url?channel=$ch,priv-$kind&since=$(last_id)&timeout=0&token=$(token "priv-$kind" "$t")")
	check "$kind: public and private channels together with one token" \
	    jcheck pmix "$s == 200 and j['messages'] == []"

	# max_channel_subscribers (3 in the config): the 4th is a 503, on
	# a channel nobody has published to yet as well.
	local full=()
	for n in 1 2 3; do
		curl -s -o /dev/null --max-time 30 "$url?channel=full-$kind&timeout=10" &
		full+=($!)
		bg+=($!)
	done
	for ((n = 0; n < WAIT * 10; n++)); do
		[ "$(rows "full-$kind")" -ge 3 ] && break
		sleep 0.1
	done
	s=$(get full "$url?channel=full-$kind&timeout=1")
	check "$kind: past max_channel_subscribers a poll is a 503 with Retry-After" \
	    eval '[ "$s" = 503 ] && [ -n "$(hdr full Retry-After)" ]'
	kill "${full[@]}" 2>/dev/null
	wait "${full[@]}" 2>/dev/null

	# A client that leaves a held poll: released within heartbeat + 1 s.
	curl -s -o /dev/null --max-time 30 "$url?channel=leave-$kind&timeout=15" &
	pid=$!
	bg+=($pid)
	for ((n = 0; n < WAIT * 10; n++)); do
		[ "$(rows "leave-$kind")" -ge 1 ] && break
		sleep 0.1
	done
	check "$kind: the held poll is registered" [ "$(rows "leave-$kind")" -ge 1 ]
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	t0=$(now_ms)
	failed=1
	while [ $(($(now_ms) - t0)) -lt $(((HB + 1 + SLACK) * 1000)) ]; do
		[ "$(rows "leave-$kind")" -eq 0 ] && { failed=0; break; }
		sleep 0.1
	done
	t1=$(now_ms)
	echo "# $kind: a held poll that was left released after $((t1 - t0)) ms"
	check "$kind: a client that leaves a held poll leaves no streams row" \
	    [ "$failed" -eq 0 ]

	# SIGTERM to the responders while a poll is held: a clean empty
	# answer naming the cursor.
	l=$(last_id)
	curl -s -o "$tmp/term.body" -D "$tmp/term.hdr" --max-time 30 \
	    "$url?channel=term-$kind&since=$l&timeout=10" &
	pid=$!
	bg+=($pid)
	for ((n = 0; n < WAIT * 10; n++)); do
		[ "$(rows "term-$kind")" -ge 1 ] && break
		sleep 0.1
	done
	kill -TERM $(responder_pids) 2>/dev/null
	wait "$pid"
	rc=$?
	check "$kind: SIGTERM answers a held poll with the empty result" \
	    eval '[ "$rc" -eq 0 ] && jcheck term "j[\"messages\"] == [] and j[\"next\"] >= $l"'
}

# 3. format=page: the newest message as an HTML page with a Refresh header.
page_tests() {
	local kind=$1 url=$2 ch="pg-$1" s s2 id src t
	s=$(get pgempty "$url?channel=$ch&format=page")
	check "$kind: page of an empty channel says so, with Refresh (the heartbeat), no-store (one Cache-Control line) and a charset" \
	    eval '[ "$s" = 200 ] && [ "$(hdr pgempty Refresh)" = "$HB" ] && grep -qi "^cache-control:.*no-store" "$tmp/pgempty.hdr" && [ "$(grep -ci "^cache-control:" "$tmp/pgempty.hdr")" = 1 ] && [ "$(hdr pgempty Content-Type)" = "text/html; charset=utf-8" ] && grep -q "No message on $ch yet" "$tmp/pgempty.body" && ! grep -qi "^etag:" "$tmp/pgempty.hdr"'
	pushctl send "$ch" "first" >/dev/null
	id=$(pushctl send "$ch" '<script>alert(1)</script> & "q"')
	s=$(get pgtext "$url?channel=$ch&format=page&refresh=7" -H 'If-None-Match: "1"')
	check "$kind: page shows the newest text message escaped in <pre>, with its id" \
	    eval '[ "$s" = 200 ] && [ "$(hdr pgtext Refresh)" = 7 ] && grep -qF "<pre>&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;q&quot;</pre>" "$tmp/pgtext.body" && ! grep -qi "<script" "$tmp/pgtext.body" && grep -qF "<span id=\"push-id\">$id</span>" "$tmp/pgtext.body" && ! grep -q first "$tmp/pgtext.body"'
	id=$(printf '<div id="blk" style="background:#0a0">green</div>' |
	    pushctl send -t 'text/html; charset=utf-8' "$ch" -)
	s=$(get pghtml "$url?channel=$ch&format=page")
	check "$kind: page shows an HTML message as it is" \
	    eval '[ "$s" = 200 ] && grep -qF "<div id=\"blk\" style=\"background:#0a0\">green</div>" "$tmp/pghtml.body"'
	id=$(pushctl send -t image/png "$ch" - <"$tmp/fake.png")
	s=$(get pgimg "$url?channel=$ch&format=page&refresh=3600")
	src=$(sed -n 's/.*<img src="\([^"]*\)".*/\1/p' "$tmp/pgimg.body" | sed 's/&amp;/\&/g')
	check "$kind: page shows an image message as an <img> of its raw URL" \
	    eval '[ "$s" = 200 ] && [ "$(hdr pgimg Refresh)" = 3600 ] && [ "$src" = "?channel=$ch&since=$((id - 1))&format=raw&timeout=0" ]'
	pushctl send "$ch" "after the image" >/dev/null
	s=$(get pgraw "${url%%\?*}$src")
	check "$kind: the <img> URL serves that image's bytes, though newer messages came" \
	    eval '[ "$s" = 200 ] && [ "$(hdr pgraw Content-Type)" = image/png ] && cmp -s "$tmp/pgraw.body" "$tmp/fake.png"'
	for q in "refresh=1" "refresh=3600" "refresh=0" "refresh=3601" \
	    "refresh=-1" "refresh=" "refresh=1x" "refresh=99999"; do
		s=$(get pgref "$url?channel=$ch&format=page&$q")
		case $q in
		refresh=1|refresh=3600)
			check "$kind: page with $q is a 200" \
			    eval '[ "$s" = 200 ] && [ "$(hdr pgref Refresh)" = "${q#refresh=}" ]' ;;
		*)
			check "$kind: page with $q is a 400 with a reason" \
			    eval '[ "$s" = 400 ] && grep -q "refresh= must be 1-3600" "$tmp/pgref.body"' ;;
		esac
	done
	for q in "format=json&refresh=5" "refresh=5" "format=page&since=1" \
	    "format=page&last=1" "format=page&timeout=5" \
	    "format=page&callback=cb"; do
		s=$(get pgbad "$url?channel=$ch&$q")
		check "$kind: ?$q is a 400 with a reason" \
		    eval '[ "$s" = 400 ] && [ -s "$tmp/pgbad.body" ]'
	done
	# A private channel: as for the other formats; the <img> URL carries
	# the token.
	id=$(pushctl send -t image/png "priv-pg-$kind" - <"$tmp/fake.png")
	t=$(token "priv-pg-$kind" $(( $(date +%s) + 600 )))
	s=$(get pgpno "$url?channel=priv-pg-$kind&format=page")
	check "$kind: page of a private channel without a token is a 403" [ "$s" = 403 ]
	s=$(get pgpok "$url?channel=priv-pg-$kind&format=page&token=$t")
	src=$(sed -n 's/.*<img src="\([^"]*\)".*/\1/p' "$tmp/pgpok.body" | sed 's/&amp;/\&/g')
	s2=$(get pgpraw "${url%%\?*}$src")
	check "$kind: page of a private channel with its token, the <img> URL carries it" \
	    eval '[ "$s" = 200 ] && [ "$s2" = 200 ] && cmp -s "$tmp/pgpraw.body" "$tmp/fake.png" && case $src in *"&token="*) true ;; *) false ;; esac'
}

for kind in ${POLL_KINDS:-$(e2e_kinds)}; do
	port=$(e2e_free_port "$BASEPORT") || { nok "$kind: a free port"; continue; }
	if ! e2e_start "$kind" "$port" >"$tmp/start.log" 2>&1; then
		nok "$kind: server starts"
		sed 's/^/# /' "$tmp/start.log"
		continue
	fi
	url=$(e2e_url push-poll)
	case " $SMALL_KINDS " in
	*" $kind "*) loop_test "$kind" "$url" "$SMALL" ;;
	*) loop_test "$kind" "$url" "$COUNT" ;;
	esac
	# (before the contract tests: their last one stops the responders)
	page_tests "$kind" "$url"
	contract_tests "$kind" "$url"
	# A sanitizer build reports into the server's error log.
	check "$kind: no sanitizer report in the error log" \
	    eval '! e2e_log | grep -E "ERROR: (Address|Leak)Sanitizer|runtime error:"'
	e2e_log | grep -E -A12 "ERROR: (Address|Leak)Sanitizer|runtime error:" |
	    head -n 40 | sed 's/^/# /'
	e2e_stop >/dev/null 2>&1
done

[ "$fails" -eq 0 ]
