#!/usr/bin/env bash
# The stream responder (push-stream) through real web servers.
#
# For each server kind that tests/e2e/lib.sh can start (Apache with mod_cgi,
# mod_fcgid and mod_proxy_fcgi, lighttpd with mod_cgi and mod_fastcgi,
# nginx with FastCGI):
#
# 1. Delivery: mixed, sse, script and raw subscribers (curl -N) receive
#    messages published with pushctl, through the C API (tests/e2e/cpub)
#    and with plain SQL from the sqlite3 shell, text and a binary PNG-like
#    payload: every body must equal, byte for byte, the framing of exactly
#    those messages in id order (heartbeats may follow).  A mixed
#    subscriber without a cursor gets the latest message first.  A cursor
#    older than what retention kept gets a gap marker in every framing.
# 2. Resume: an SSE subscriber is cut off, messages are published while it
#    is away, it comes back with Last-Event-ID: it misses nothing and gets
#    nothing twice.
# 3. Drop: 50 subscribers (heartbeat=2) are killed at once.  Soon after
#    (the bound is heartbeat + 1 s; the figure measured is printed) no
#    responder process (CGI) or request thread (FastCGI) is left over, no
#    descriptor more than when idle, and no row in the streams table.
# 4. Stop: the responders get SIGTERM (the server's stop or restart): the
#    streams end cleanly (curl sees a complete response), and subscribers
#    that come back with their cursor lose nothing.
# 5. Control (run first): every stream's X-Push-Stream header and first
#    sse/script event carry its handle ID.SECRET, the secret being the
#    one in its streams row.  A control request written with plain SQL
#    (INSERT INTO messages(channel, data) VALUES('.control',
#    'end-stream ID')) ends that stream cleanly after the messages before
#    it, while another stream of the same channel keeps receiving; then
#    'end-channel NAME' ends every stream subscribed to NAME (alone or
#    among others; mixed closes its body) and no stream of another
#    channel.  The time from the insert to the stream's end is printed.
#
# Environment as for make check: top_builddir, top_srcdir.  STREAM_KINDS
# limits the kinds (default: all of e2e_kinds).  STREAM_ONLY=control runs
# only section 5.  Prints "ok - ..." /
# "not ok - ..." lines and exits non-zero on any failure.
set -u
B=$(cd "${top_builddir:-.}" && pwd)
S=$(cd "${top_srcdir:-$(dirname "$0")/../..}" && pwd)
. "$S/tests/e2e/lib.sh" || exit 99

PUSHCTL="$B/pushctl"
CPUB="$B/tests/e2e/cpub"
BASEPORT=${STREAM_PORT:-$((20000 + RANDOM % 20000))}
HB=2                    # heartbeat of the drop test (seconds)
NDROP=50                # subscribers dropped at once
SLACK=4                 # seconds allowed on top of heartbeat + 1
NWARM=12                # streams that fill a FastCGI idle pool (> threads)
WAIT=20                 # seconds any single expectation may take

fails=0

tmp=$(mktemp -d "${TMPDIR:-/tmp}/stream-e2e.XXXXXX") || exit 99
chmod 0755 "$tmp"
export PUSHCGI_DB="$tmp/push.db"
# Channels under "priv" need a subscriber token (section 6).
printf 'subscriber_secret = e2e-secret\nprivate_channel = priv\n' \
    >"$tmp/push.conf"
chmod 0644 "$tmp/push.conf"
export PUSHCGI_CONF="$tmp/push.conf"
curls=()
cleanup() {
	local p
	for p in "${curls[@]}"; do
		kill "$p" 2>/dev/null
	done
	wait 2>/dev/null
	e2e_stop >/dev/null 2>&1
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

for prog in "$PUSHCTL" "$CPUB" "$B/cgi-bin/push-stream"; do
	[ -x "$prog" ] || { echo "not ok - $prog is not built"; exit 1; }
done
command -v sqlite3 >/dev/null || { echo "not ok - no sqlite3 shell"; exit 1; }
command -v python3 >/dev/null || { echo "not ok - no python3"; exit 1; }
"$PUSHCTL" init >/dev/null || { echo "not ok - pushctl init"; exit 1; }

# --- helpers ---------------------------------------------------------------

sql() { sqlite3 -cmd ".timeout 5000" "$PUSHCGI_DB" "$@"; }
last_id() { sql "SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'messages'"; }
# Streams rows of the drop test's subscribers on kind channel $1.
drop_rows() { sql "SELECT count(*) FROM subscriptions WHERE channel GLOB '$1-drop*'"; }

# Start a subscriber: $1 name, $2 URL, rest: extra curl arguments.  The
# body goes to $tmp/$1.body, the headers to $tmp/$1.hdr.
sub_start() {
	local name=$1 url=$2
	shift 2
	rm -f "$tmp/$name.body" "$tmp/$name.hdr"
	curl -sN -o "$tmp/$name.body" -D "$tmp/$name.hdr" "$@" "$url" &
	curls+=($!)
	eval "pid_$name=$!"
}
# Wait until the subscriber's headers arrived (it is registered).
sub_ready() {
	local i
	for ((i = 0; i < WAIT * 10; i++)); do
		grep -qi '^x-push-stream:' "$tmp/$1.hdr" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
sub_pid() { eval "echo \$pid_$1"; }
sub_stop() { kill "$(sub_pid "$1")" 2>/dev/null; wait "$(sub_pid "$1")" 2>/dev/null; }

# python3 checker: verify NAME FORMAT CHANNEL AFTER [CALLBACK]
# Compares $tmp/NAME.body with the framing (lib/transport.h) of the
# messages on CHANNEL after AFTER, read from the log; heartbeats may
# follow.  Exit 0 if equal, 1 if not (yet), with a reason on stderr.
cat >"$tmp/verify.py" <<'PY'
import base64, re, sqlite3, sys

PAD = 2048

def utf8(b):
    try:
        b.decode('utf-8')
        return True
    except UnicodeDecodeError:
        return False

def js(b):
    out = bytearray(b'"')
    s = b.decode('utf-8')
    for ch in s:
        o = ord(ch)
        if ch == '"': out += b'\\"'
        elif ch == '\\': out += b'\\\\'
        elif ch == '\n': out += b'\\n'
        elif ch == '\r': out += b'\\r'
        elif ch == '\t': out += b'\\t'
        elif ch in '<>&\'' or o < 0x20 or o == 0x7f or o in (0x2028, 0x2029):
            out += b'\\u%04x' % o
        else: out += ch.encode('utf-8')
    return bytes(out + b'"')

def main():
    body_file, hdr_file, fmt, db, channel, after = sys.argv[1:7]
    cb = sys.argv[7] if len(sys.argv) > 7 else 'push'
    after = int(after)
    body = open(body_file, 'rb').read()
    hdr = open(hdr_file, 'rb').read().decode('latin-1')
    m = re.search(r'(?im)^x-push-stream:\s*([1-9]\d*\.[0-9a-f]{32})\r?$', hdr)
    if not m:
        print('no X-Push-Stream header with a handle ID.SECRET', file=sys.stderr); return 1
    handle = m.group(1).encode()
    con = sqlite3.connect('file:%s?mode=ro' % db, uri=True, timeout=5)
    rows = con.execute('SELECT id, channel, time, CAST(type AS BLOB), CAST(event AS BLOB), '
                       'CAST(data AS BLOB) FROM messages WHERE channel = ? AND id > ? '
                       'ORDER BY id', (channel, after)).fetchall()
    msgs = [(i, c, t, bytes(ty), bytes(e) if e is not None else None, bytes(d))
            for i, c, t, ty, e, d in rows]
    if not msgs:
        print('no messages in the log', file=sys.stderr); return 1
    exp = bytearray()
    beats = []
    if fmt == 'raw':
        exp += b'\n'
        for m in msgs: exp += m[5] + b'\n'
        beats = [b'\n']
    elif fmt == 'sse':
        exp += b'retry: 2000\n:' + b' ' * PAD + b'\nevent: stream\ndata: ' + handle + b'\n\n'
        for i, c, t, ty, e, d in msgs:
            exp += b'id: %d\n' % i
            if b'\r' not in d and utf8(d):
                if e is not None: exp += b'event: ' + e + b'\n'
                for line in d.split(b'\n'): exp += b'data: ' + line + b'\n'
            else:
                exp += b'event: ' + (e or b'message') + b';base64\ndata: ' + base64.b64encode(d) + b'\n'
            exp += b'\n'
        beats = [b':', b'\n']
    elif fmt == 'script':
        exp += (b'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>push</title>'
                b'</head><body>\n<!--' + b' ' * PAD + b'-->\n')
        pre = b'<script>parent.' + cb.encode() + b'('
        exp += pre + b'{"stream":"' + handle + b'"})</script>\n'
        for i, c, t, ty, e, d in msgs:
            j = b'{"id":%d,"channel":%s,"time":%d,"type":%s,"event":%s,"data":' % (
                i, js(c.encode()), t, js(ty), js(e) if e is not None else b'null')
            j += js(d) if utf8(d) else b'"' + base64.b64encode(d) + b'","encoding":"base64"'
            exp += pre + j + b'})</script>\n'
        beats = [b' ', b'\n']
    elif fmt == 'mixed':
        m = re.search(r'(?im)^content-type:\s*multipart/x-mixed-replace;boundary=(\S+)', hdr)
        if not m:
            print('no multipart Content-Type without a space', file=sys.stderr); return 1
        bd = m.group(1).encode()
        exp += b'--' + bd + b'\r\n'
        guess, prev = None, None
        for i, c, t, ty, e, d in msgs:
            if guess is not None and guess != ty:
                exp += prev + b'\r\n--' + bd + b'\r\n'
                guess = None
            if guess is None:
                exp += b'Content-Type: ' + ty + b'\r\nContent-Length: %d\r\n\r\n' % len(d)
            exp += d + b'\r\n--' + bd + b'\r\nContent-Type: ' + ty + b'\r\n\r\n'
            guess, prev = ty, d
        beats = [prev, b'\r\n--' + bd + b'\r\nContent-Type: ' + guess + b'\r\n\r\n']
    else:
        print('bad format', file=sys.stderr); return 2
    exp = bytes(exp)
    if len(body) < len(exp):
        if exp.startswith(body):
            print('incomplete: %d of %d bytes' % (len(body), len(exp)), file=sys.stderr)
        else:
            k = next(k for k in range(len(body)) if body[k] != exp[k])
            print('differs at byte %d: got %r, want %r' % (k, body[k:k + 40], exp[k:k + 40]),
                  file=sys.stderr)
        return 1
    if not body.startswith(exp):
        k = next(k for k in range(len(exp)) if body[k] != exp[k])
        print('differs at byte %d: got %r, want %r' % (k, body[k:k + 40], exp[k:k + 40]),
              file=sys.stderr)
        return 1
    rest = body[len(exp):]
    while rest:
        for b in beats:
            if rest.startswith(b):
                rest = rest[len(b):]
                break
        else:
            print('unexpected bytes after the messages: %r' % rest[:60], file=sys.stderr)
            return 1
    return 0

sys.exit(main())
PY
# verify NAME FORMAT CHANNEL AFTER [CALLBACK]: retry until equal or WAIT.
verify() {
	local name=$1 i
	shift
	for ((i = 0; i < WAIT * 5; i++)); do
		python3 "$tmp/verify.py" "$tmp/$name.body" "$tmp/$name.hdr" \
		    "$1" "$PUSHCGI_DB" "${@:2}" 2>"$tmp/$name.why" && return 0
		sleep 0.2
	done
	sed 's/^/# /' "$tmp/$name.why"
	return 1
}

# The ids an SSE body carries, one a line.
sse_ids() { sed -n 's/^id: //p' "$tmp/$1.body" 2>/dev/null; }

# Processes of the responder started by this server (not those of any
# other test running on the machine), one a line.
responder_pids() {
	local p sid
	for p in $(pgrep -x push-stream); do
		sid=$(e2e_sid "$p") || continue
		case " $E2E_SIDS " in
		*" $sid "*) grep -q '^State:[[:space:]]*[RSD]' \
		    "/proc/$p/status" 2>/dev/null && echo "$p" ;;
		esac
	done
}
# "pid threads fds" of each responder process, one a line.
responder_shapes() {
	local p t f
	for p in $(responder_pids); do
		t=$(ls "/proc/$p/task" 2>/dev/null | wc -l)
		f=$(ls "/proc/$p/fd" 2>/dev/null | wc -l)
		echo "$p $t $f"
	done
}
# 0 if the responders carry no more than at the baseline in file $2
# (responder_shapes output): CGI kinds ($1 *-cgi) no more processes;
# FastCGI kinds no more threads or descriptors in any process than it had
# then, and a new process no more than the lightest one had (an idle
# process: FastCGI servers keep theirs).
responders_idle() { # $1 kind, $2 baseline file
	responder_shapes | awk -v kind="$1" '
	    NR == FNR { bt[$1] = $2; bf[$1] = $3; n0++
		if (!(mt) || $2 < mt) mt = $2; if (!(mf) || $3 < mf) mf = $3
		next }
	    { n++
		if ($1 in bt) { if ($2 > bt[$1] || $3 > bf[$1]) bad++ }
		else if ($2 > mt || $3 > mf) bad++ }
	    END { if (kind ~ /-cgi$/) exit !(n <= n0); exit bad > 0 }' \
	    "$2" -
}
now_ms() { date +%s%3N; }

# A binary payload shaped like a PNG: signature, CR LF, NUL, 0xff, a
# multipart-like line and a fake "data:" line, so no framing can cheat.
printf '\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe\r\n--pushcgi\r\ndata: x\n\x00' \
    >"$tmp/fake.png"
head -c 3000 /dev/urandom >>"$tmp/fake.png"

# Messages pruned before any server starts, for the gap markers.
G1=$("$PUSHCTL" send gap "gone 1")
G2=$("$PUSHCTL" send gap "gone 2")
G3=$("$PUSHCTL" send gap "kept")
"$PUSHCTL" prune --keep 1 gap >/dev/null

# The handle ID.SECRET in a subscriber's headers ("" if none).
sub_handle() {
	sed -n 's/^[Xx]-[Pp]ush-[Ss]tream: *\([1-9][0-9]*\.[0-9a-f]\{32\}\)\r\{0,1\}$/\1/p' \
	    "$tmp/$1.hdr" 2>/dev/null | head -n 1
}
# Wait (at most WAIT s, polling every 20 ms) for subscriber $1's curl to
# end; its exit status in $rc_end, the time it took in ms in $ms_end.
sub_end() {
	local pid t0 i
	pid=$(sub_pid "$1")
	t0=$(now_ms)
	for ((i = 0; i < WAIT * 50; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.02
	done
	ms_end=$(($(now_ms) - t0))
	if kill -0 "$pid" 2>/dev/null; then
		rc_end=124
		return 1
	fi
	wait "$pid"
	rc_end=$?
}
running() { kill -0 "$(sub_pid "$1")" 2>/dev/null; }

# --- the tests, per server kind --------------------------------------------

# 5. Control requests (see the top of this file).
run_control() {
	local kind=$1 url cc after f h id sec t0 i
	url=$(e2e_url push-stream)
	cc="e2e-$kind-ctl"
	after=$(last_id)
	sub_start c1 "$url?channel=$cc&format=sse&since=$after"
	sub_start c2 "$url?channel=$cc&format=sse&since=$after"
	sub_start c3 "$url?channel=$cc-b,$cc&format=mixed&since=$after"
	sub_start c4 "$url?channel=$cc-b&format=raw&since=$after"
	sub_start c5 "$url?channel=$cc&format=script&since=$after"
	for f in c1 c2 c3 c4 c5; do
		sub_ready "$f" || nok "$kind: control: $f started"
	done
	for f in c1 c3 c4 c5; do
		h=$(sub_handle "$f")
		id=${h%%.*}
		sec=$(sql "SELECT secret FROM streams WHERE id = '${id:-0}'")
		check "$kind: control: $f's X-Push-Stream is its handle ID.SECRET, the secret of its streams row" \
		    eval '[ -n "$h" ] && [ "$sec" = "${h#*.}" ]'
	done
	check "$kind: control: two streams get distinct secrets" \
	    [ "$(sub_handle c1 | cut -d. -f2)" != "$(sub_handle c2 | cut -d. -f2)" ]
	"$PUSHCTL" send "$cc" "before the end" >/dev/null
	check "$kind: control: c1 gets the message before the request" \
	    verify c1 sse "$cc" "$after"

	# End c1 by its id, with plain SQL.
	id=$(sub_handle c1 | cut -d. -f1)
	t0=$(now_ms)
	sql "INSERT INTO messages(channel, data) VALUES('.control', 'end-stream ${id:-0}')"
	sub_end c1
	echo "# $kind: control: end-stream by plain SQL: the stream ended" \
	    "$(($(now_ms) - t0)) ms after the insert (polled every 20 ms)"
	check "$kind: control: end-stream ends that stream cleanly (curl exit $rc_end)" \
	    [ "$rc_end" -eq 0 ]
	check "$kind: control: the ended stream got every message before the request, and nothing else" \
	    verify c1 sse "$cc" "$after"
	for ((i = 0; i < WAIT * 10; i++)); do
		[ "$(sql "SELECT count(*) FROM streams WHERE id = '${id:-0}'")" -eq 0 ] && break
		sleep 0.1
	done
	check "$kind: control: the ended stream's row is gone" \
	    [ "$(sql "SELECT count(*) FROM streams WHERE id = '${id:-0}'")" -eq 0 ]
	check "$kind: control: the other streams of the channel go on" \
	    eval 'running c2 && running c3 && running c5'
	"$PUSHCTL" send "$cc" "after the end" >/dev/null
	check "$kind: control: another sse stream of the channel keeps receiving" \
	    verify c2 sse "$cc" "$after"
	check "$kind: control: a script stream of the channel keeps receiving" \
	    verify c5 script "$cc" "$after"
	check "$kind: control: no control request reaches a reader" \
	    eval '! grep -q "end-stream" "$tmp/c2.body" "$tmp/c3.body" "$tmp/c5.body"'

	# End every stream of channel $cc: c2, c3 (among its channels), c5.
	t0=$(now_ms)
	sql "INSERT INTO messages(channel, data) VALUES('.control', 'end-channel $cc')"
	for f in c2 c3 c5; do
		sub_end "$f"
		check "$kind: control: end-channel ends $f cleanly (curl exit $rc_end)" \
		    [ "$rc_end" -eq 0 ]
	done
	echo "# $kind: control: end-channel by plain SQL: its 3 streams ended" \
	    "$(($(now_ms) - t0)) ms after the insert (polled every 20 ms)"
	check "$kind: control: an ended mixed stream closes its multipart body" \
	    grep -q -- '--pushcgi[0-9a-f]*--' "$tmp/c3.body"
	check "$kind: control: a stream of another channel goes on" running c4
	"$PUSHCTL" send "$cc-b" "still here" >/dev/null
	check "$kind: control: ... and keeps receiving" \
	    verify c4 raw "$cc-b" "$after"
	sub_stop c4
}


run_kind() {
	local kind=$1 port=$2 url ch after first i rc t0 t1 failed
	ch="e2e-$kind"
	url=$(e2e_url push-stream)

	# 1. Delivery through every framing, from every kind of publisher.
	first=$("$PUSHCTL" send "$ch" "before the subscribers")
	sub_start latest "$url?channel=$ch"
	for f in mixed sse script raw; do
		sub_start "$f" "$url?channel=$ch&format=$f&since=$(last_id)"
	done
	for f in latest mixed sse script raw; do
		sub_ready "$f" || nok "$kind: $f subscriber started"
	done
	after=$(last_id)
	"$PUSHCTL" send "$ch" "hello from pushctl" >/dev/null
	"$PUSHCTL" send -t image/png "$ch" - <"$tmp/fake.png" >/dev/null
	printf 'from the C API: caf\xc3\xa9 </script> \xe2\x80\xa8' |
	    "$CPUB" "$PUSHCGI_DB" "$ch" "text/plain; charset=utf-8" >/dev/null
	sql "INSERT INTO messages(channel, data) VALUES('$ch', 'from plain SQL')"
	sql "INSERT INTO messages(channel, type, data) VALUES('$ch', 'image/png', readfile('$tmp/fake.png'))"
	"$PUSHCTL" send -e tick "$ch" $'two\nlines\n' >/dev/null
	"$PUSHCTL" send "$ch-other" "not for these subscribers" >/dev/null
	"$PUSHCTL" send -t image/png "$ch" - <"$tmp/fake.png" >/dev/null
	for f in mixed sse script raw; do
		check "$kind: $f gets every message byte-exact, in order" \
		    verify "$f" "$f" "$ch" "$after"
	done
	check "$kind: mixed without a cursor starts with the latest" \
	    verify latest mixed "$ch" $((first - 1))
	for f in latest mixed sse script raw; do
		sub_stop "$f"
	done

	# Messages pruned before a subscriber saw them (before this server
	# started, so no process has them in memory): a gap marker, then
	# what is left.
	for f in mixed sse script raw; do
		sub_start "gap$f" "$url?channel=gap&format=$f&since=$((G1 - 1))" -m 3
	done
	for f in mixed sse script raw; do
		wait "$(sub_pid "gap$f")"
	done
	check "$kind: sse reports a gap, then the rest" grep -qzP \
	    "\nevent: gap\ndata: $G2\n\nid: $G3\ndata: kept\n\n" "$tmp/gapsse.body"
	check "$kind: raw reports a gap, then the rest" grep -qzP \
	    "^\n#pushcgi-gap $G2\nkept\n" "$tmp/gapraw.body"
	check "$kind: script reports a gap, then the rest" grep -qzP \
	    "\(\{\"gap\":$G2\}\)</script>\n<script>[^\n]*\"id\":$G3," \
	    "$tmp/gapscript.body"
	check "$kind: mixed reports a gap, then the rest" grep -qzP \
	    "X-Push-Gap: $G2\r\nContent-Length: ${#G2}\r\n\r\n$G2\r\n--\S+\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 4\r\n\r\nkept\r\n" \
	    "$tmp/gapmixed.body"

	# 2. Resume with Last-Event-ID: nothing missed, nothing twice.
	after=$(last_id)
	sub_start r1 "$url?channel=$ch&format=sse&since=$after"
	sub_ready r1 || nok "$kind: resume subscriber started"
	for i in 1 2 3; do "$PUSHCTL" send "$ch" "resume $i" >/dev/null; done
	for ((i = 0; i < WAIT * 10; i++)); do
		[ "$(sse_ids r1 | wc -l)" -ge 3 ] && break
		sleep 0.1
	done
	sub_stop r1
	for i in 4 5 6; do "$PUSHCTL" send "$ch" "resume $i" >/dev/null; done
	sub_start r2 "$url?channel=$ch&format=sse&since=$after" \
	    -H "Last-Event-ID: $(sse_ids r1 | tail -n 1)"
	sub_ready r2 || nok "$kind: resumed subscriber started"
	"$PUSHCTL" send "$ch" "resume 7" >/dev/null
	for ((i = 0; i < WAIT * 10; i++)); do
		[ "$(cat <(sse_ids r1) <(sse_ids r2) | wc -l)" -ge 7 ] && break
		sleep 0.1
	done
	sub_stop r2
	check "$kind: a subscriber resuming with Last-Event-ID misses nothing and gets nothing twice" \
	    diff <(cat <(sse_ids r1) <(sse_ids r2)) \
	    <(sql "SELECT id FROM messages WHERE channel = '$ch' AND id > $after ORDER BY id")

	# 3. Drop 50 subscribers at once.  A threaded FastCGI responder
	# keeps between one and conf.threads idle threads, depending on what
	# came before; after the drop its pool is full again.  Fill it first
	# (more streams at once than conf.threads, ended by the client),
	# and let the spares retire (after SERVE_IDLE_MS of quiet), so that
	# the baseline is the state the drop returns to.
	case $kind in
	lighttpd-fastcgi | nginx | apache-proxy-fcgi)
		local warm=()
		for ((i = 0; i < NWARM; i++)); do
			curl -s -m 1 -o /dev/null \
			    "$url?channel=$ch-drop-warm&format=sse&heartbeat=$HB" &
			warm+=($!)
		done
		wait "${warm[@]}" 2>/dev/null
		for ((i = 0; i < (HB + 1 + SLACK) * 10; i++)); do
			[ "$(drop_rows "$ch")" -eq 0 ] && break
			sleep 0.1
		done
		sleep 1.5
		;;
	*)
		sleep 0.5
		;;
	esac
	responder_shapes >"$tmp/base"
	local drop=()
	for ((i = 0; i < NDROP; i++)); do
		curl -sN -o /dev/null "$url?channel=$ch-drop$i&format=sse&heartbeat=$HB" &
		drop+=($!)
		curls+=($!)
	done
	for ((i = 0; i < WAIT * 10; i++)); do
		[ "$(drop_rows "$ch")" -ge "$NDROP" ] && break
		sleep 0.1
	done
	check "$kind: $NDROP subscribers connected" [ "$(drop_rows "$ch")" -ge "$NDROP" ]
	kill -9 "${drop[@]}" 2>/dev/null
	wait "${drop[@]}" 2>/dev/null
	t0=$(now_ms)
	failed=1
	while [ $(($(now_ms) - t0)) -lt $(((HB + 1 + SLACK) * 1000)) ]; do
		if [ "$(drop_rows "$ch")" -eq 0 ] &&
		    responders_idle "$kind" "$tmp/base"; then
			failed=0
			break
		fi
		sleep 0.1
	done
	t1=$(now_ms)
	echo "# $kind: $NDROP dropped subscribers released after" \
	    "$((t1 - t0)) ms; threads and fds per process before:" \
	    "$(cut -d' ' -f2- "$tmp/base" | sort | uniq -c | tr -s ' \n' ' ')," \
	    "after: $(responder_shapes | cut -d' ' -f2- | sort | uniq -c |
	    tr -s ' \n' ' '); stream rows of the $NDROP: $(drop_rows "$ch")"
	check "$kind: $NDROP dropped subscribers leave no thread, process, descriptor or stream row" \
	    [ "$failed" -eq 0 ]

	# 4. SIGTERM to the responders ends streams cleanly; nothing lost.
	after=$(last_id)
	for f in s1 s2; do
		sub_start "$f" "$url?channel=$ch&format=sse&since=$after"
		sub_ready "$f" || nok "$kind: $f started"
	done
	sub_start m1 "$url?channel=$ch&format=mixed&since=$after"
	sub_ready m1 || nok "$kind: m1 started"
	"$PUSHCTL" send "$ch" "before the stop" >/dev/null
	verify s1 sse "$ch" "$after" >/dev/null
	kill -TERM $(responder_pids) 2>/dev/null
	rc=0
	for f in s1 s2 m1; do
		wait "$(sub_pid "$f")"
		[ $? -eq 0 ] || rc=1
	done
	check "$kind: SIGTERM ends every stream cleanly" [ "$rc" -eq 0 ]
	check "$kind: a mixed stream ends with the closing boundary" \
	    grep -q -- '--pushcgi[0-9a-f]*--' "$tmp/m1.body"
	"$PUSHCTL" send "$ch" "while stopped" >/dev/null
	e2e_restart >/dev/null 2>&1 || nok "$kind: server restart"
	for f in s1 s2; do
		sub_start "${f}b" "$url?channel=$ch&format=sse" \
		    -H "Last-Event-ID: $(sse_ids "$f" | tail -n 1)"
	done
	"$PUSHCTL" send "$ch" "after the restart" >/dev/null
	for f in s1 s2; do
		for ((i = 0; i < WAIT * 10; i++)); do
			[ "$(cat <(sse_ids "$f") <(sse_ids "${f}b") | wc -l)" -ge 3 ] && break
			sleep 0.1
		done
		sub_stop "${f}b"
		check "$kind: $f resumes after the stop without a loss" \
		    diff <(cat <(sse_ids "$f") <(sse_ids "${f}b")) \
		    <(sql "SELECT id FROM messages WHERE channel = '$ch' AND id > $after ORDER BY id")
	done
}

# 6. Private channels: no token, a wrong one, an expired one and one for
# another channel are refused (403; a malformed token= is a 400) and
# leave no stream behind; the right token (pushctl token) gets the stream.
run_private() { # $1 kind, $2 port
	local kind=$1 url good other expired code q t i
	url="$(e2e_url push-stream)?format=raw&channel=priv-$1"
	good=$("$PUSHCTL" token "priv-$1" 600)
	other=$("$PUSHCTL" token "priv-other" 600)
	expired=$(python3 -c 'import hmac, hashlib, sys
e = "1000000000"
m = hmac.new(b"e2e-secret", ("pushcgi-sub:%s:%s" % (sys.argv[1], e)).encode(),
    hashlib.sha256).hexdigest()
print(e + "." + m)' "priv-$1")
	for t in "none:" "wrong:1999999999.$(printf '%064d' 7)" \
	    "expired:$expired" "other:$other"; do
		q=
		[ "${t%%:*}" = none ] || q="&token=${t#*:}"
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time "$WAIT" \
		    "$url$q")
		check "$kind: private channel, ${t%%:*} token: 403 ($code)" \
		    [ "$code" = 403 ]
	done
	code=$(curl -s -o /dev/null -w '%{http_code}' --max-time "$WAIT" \
	    "$url&token=not-a-token")
	check "$kind: private channel, malformed token: 400" [ "$code" = 400 ]
	sub_start priv "$url&token=$good"
	if sub_ready priv; then
		"$PUSHCTL" send "priv-$1" "for the holder" >/dev/null
		for ((i = 0; i < WAIT * 10; i++)); do
			grep -q 'for the holder' "$tmp/priv.body" && break
			sleep 0.1
		done
		check "$kind: private channel, right token: delivered" \
		    grep -q 'for the holder' "$tmp/priv.body"
	else
		nok "$kind: private channel, right token: stream starts"
	fi
	sub_stop priv
}

for kind in ${STREAM_KINDS:-$(e2e_kinds)}; do
	port=$(e2e_free_port "$BASEPORT") || { nok "$kind: a free port"; continue; }
	if ! e2e_start "$kind" "$port" >"$tmp/start.log" 2>&1; then
		nok "$kind: server starts"
		sed 's/^/# /' "$tmp/start.log"
		continue
	fi
	run_control "$kind"
	run_private "$kind" "$port"
	[ "${STREAM_ONLY:-}" = control ] || run_kind "$kind" "$port"
	# A sanitizer build reports into the server's error log.
	check "$kind: no sanitizer report in the error log" \
	    eval '! e2e_log | grep -E "ERROR: (Address|Leak)Sanitizer|runtime error:"'
	e2e_log | grep -E -A12 "ERROR: (Address|Leak)Sanitizer|runtime error:" |
	    head -n 40 | sed 's/^/# /'
	e2e_stop >/dev/null 2>&1
done

[ "$fails" -eq 0 ]
