#!/usr/bin/env bash
# Supervised FastCGI responders: what clients see when the process serving
# them is SIGKILLed (the OOM killer, a crash), and responders handed their
# socket by systemd's socket activation.
#
# For each kind in SUPERVISE_KINDS (default: nginx and apache-proxy-fcgi,
# whose responders run under spawn-fcgi and multiwatch, and
# lighttpd-fastcgi and apache-fcgid, whose web server starts them itself):
#
# 1. Stream: the process serving an open SSE stream (its streams row names
#    it) is SIGKILLed.  The client's response ends instead of hanging; a
#    reconnect (retried every 0.2 s, as EventSource does, up to WAIT s) is
#    served by another, live push-stream process of the server; a message
#    published then reaches the new stream.
# 2. Long-poll: the same for the process holding a long-poll (registered
#    in the streams table after a second): the poll ends; a new poll is
#    held by another process and answered with a message published then.
# 3. Publish: every push-publish process of the server is SIGKILLed while
#    a publish has sent half its body.  That request ends (an error, or a
#    201 when the web server had kept the body to itself and passes it on
#    later) instead of hanging; the next publish (retried up to WAIT s) is
#    a 201 served by a new process, and a live stream receives it.
# 4. Stop: under multiwatch, SIGTERM to multiwatch ends an open stream
#    cleanly and then multiwatch and its responder end, nothing restarted;
#    e2e_stop afterwards leaves none of the server's processes.
#
# 5. Socket activation (SUPERVISE_ACTIVATE_KINDS, default nginx and
#    apache-proxy-fcgi): each responder is started the way systemd's units
#    start it (systemd-socket-activate listens and, at the first
#    connection, becomes the responder with the socket as fd 3, LISTEN_FDS
#    and LISTEN_PID).  A stream and a publish through it; the stream's
#    process is the one systemd-socket-activate became.
# 6. Detection, no web server: a responder given another process's
#    LISTEN_PID, or a fd 3 that is no socket, or a malformed LISTEN_FDS,
#    stays a CGI program (answers the CGI request on stdout; the last two
#    say why on stderr); given its own LISTEN_PID and a listening socket
#    at fd 3 it is a FastCGI server and answers a FastCGI request there.
# 7. Units: make install DESTDIR=... puts a .socket and a .service per
#    responder in the unit folder, with the installed responder's path,
#    the log's folder writable, the socket in /run for www-data; and
#    systemd-analyze verify (when present) accepts them as installed
#    under a scratch prefix.
#
# Environment as for make check: top_builddir, top_srcdir.  SUPERVISE_KINDS
# and SUPERVISE_ACTIVATE_KINDS as above (empty: none); SUPERVISE_UNITS=0
# skips section 7.  E2E_FCGI=spawn-fcgi shows sections 1-3 failing for
# nginx and apache-proxy-fcgi without multiwatch.  Prints "ok - ..." /
# "not ok - ..." lines and exits non-zero on any failure.
set -u
B=$(cd "${top_builddir:-.}" && pwd)
S=$(cd "${top_srcdir:-$(dirname "$0")/../..}" && pwd)
. "$S/tests/e2e/lib.sh" || exit 99

PUSHCTL="$B/pushctl"
BASEPORT=${SUPERVISE_PORT:-$((20000 + RANDOM % 20000))}
WAIT=20                 # seconds any single expectation may take
TOKEN=e2e-supervise-token-0123456789
KINDS=${SUPERVISE_KINDS-nginx apache-proxy-fcgi lighttpd-fastcgi apache-fcgid}
ACTIVATE_KINDS=${SUPERVISE_ACTIVATE_KINDS-nginx apache-proxy-fcgi}

fails=0

tmp=$(mktemp -d "${TMPDIR:-/tmp}/supervise-e2e.XXXXXX") || exit 99
chmod 0755 "$tmp"
export PUSHCGI_DB="$tmp/push.db" PUSHCGI_CONF="$tmp/push.conf"
printf 'publish_token = %s\n' "$TOKEN" >"$PUSHCGI_CONF"
chmod 0644 "$PUSHCGI_CONF"
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

for prog in "$PUSHCTL" "$B/cgi-bin/push-stream" "$B/cgi-bin/push-poll" \
    "$B/cgi-bin/push-publish"; do
	[ -x "$prog" ] || { echo "not ok - $prog is not built"; exit 1; }
done
command -v sqlite3 >/dev/null || { echo "not ok - no sqlite3 shell"; exit 1; }
command -v python3 >/dev/null || { echo "not ok - no python3"; exit 1; }
"$PUSHCTL" init >/dev/null || { echo "not ok - pushctl init"; exit 1; }

# --- helpers ---------------------------------------------------------------

sql() { sqlite3 -cmd ".timeout 5000" "$PUSHCGI_DB" "$@"; }
last_id() { sql "SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'messages'"; }

# Pids of the running server's processes named $1 (comm), one a line.
server_pids() {
	local p
	for p in $(e2e_procs); do
		[ "$(cat "/proc/$p/comm" 2>/dev/null)" = "$1" ] && echo "$p"
	done
}
# 0 if pid $1 is one of the server's live processes named $2.
is_server_proc() { server_pids "$2" | grep -qx -- "$1"; }

# Subscribers: $1 name, $2 URL; body $tmp/NAME.body, headers .hdr.
sub_start() {
	local name=$1 url=$2
	rm -f "$tmp/$name.body" "$tmp/$name.hdr"
	curl -sN -o "$tmp/$name.body" -D "$tmp/$name.hdr" "$url" &
	curls+=($!)
	eval "pid_$name=$!"
}
sub_pid() { eval "echo \$pid_$1"; }
# The stream's handle id (X-Push-Stream: ID.SECRET), "" if none yet.
sub_id() {
	sed -n 's/^[Xx]-[Pp]ush-[Ss]tream: *\([1-9][0-9]*\)\.[0-9a-f]\{32\}\r\{0,1\}$/\1/p' \
	    "$tmp/$1.hdr" 2>/dev/null | head -n 1
}
# Wait until subscriber $1 has its handle (0) or its curl ended (1).
sub_ready() {
	local i
	for ((i = 0; i < WAIT * 10; i++)); do
		[ -n "$(sub_id "$1")" ] && return 0
		kill -0 "$(sub_pid "$1")" 2>/dev/null || {
			[ -n "$(sub_id "$1")" ]
			return
		}
		sleep 0.1
	done
	return 1
}
# Wait (WAIT s) for pid $1 (a curl of ours) to end: 0 if it did, and
# its exit status in $rc_end.
ended() {
	local i
	rc_end=
	for ((i = 0; i < WAIT * 10; i++)); do
		if ! kill -0 "$1" 2>/dev/null; then
			wait "$1" 2>/dev/null
			rc_end=$?
			return 0
		fi
		sleep 0.1
	done
	return 1
}
# Wait (WAIT s) until file $1 holds the fixed string $2.
has() {
	local i
	for ((i = 0; i < WAIT * 10; i++)); do
		grep -qF -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
# The pid in the streams row of stream id $1.
stream_pid() { sql "SELECT pid FROM streams WHERE id = $1"; }
# The pid of a registered stream subscribed to channel $1, other than $2.
chan_pid() {
	sql "SELECT t.pid FROM streams t JOIN subscriptions s ON s.stream = t.id
	    WHERE s.channel = '$1' AND t.pid != ${2:-0} ORDER BY t.id DESC LIMIT 1"
}
# Publish $2 on channel $1 through push-publish; prints the status.
publish() {
	curl -s --max-time "$WAIT" -o "$tmp/pub.body" -w '%{http_code}' \
	    -H "Authorization: Bearer $TOKEN" -H 'Content-Type: text/plain' \
	    --data-binary "$2" "$(e2e_url push-publish)?channel=$1" 2>/dev/null
}
# The server's processes now are gone after e2e_stop: 0 if so.
stop_clean() {
	local before p left=
	before=$(e2e_procs | tr '\n' ' ')
	e2e_stop 2>"$tmp/stop.log"
	for p in $before; do
		e2e_alive "$p" && left="$left $p($(cat /proc/$p/comm 2>/dev/null))"
	done
	[ -n "$before" ] && [ -z "$left" ] && return 0
	echo "# processes before the stop: ${before:-none}; left:${left:- none}"
	return 1
}

# A half-sent publish: headers and the first part of the body, then, once
# file GO exists, the rest; prints the answer's status line, "closed"
# (the connection ended without one), or "hung" (nothing within WAIT s).
cat >"$tmp/halfpub.py" <<'PY'
import os, socket, sys, time
port, path, token, ready, go, wait = sys.argv[1:7]
wait = float(wait)
body = b'half-then-rest'
s = socket.create_connection(('127.0.0.1', int(port)))
s.sendall(b'POST ' + path.encode() + b' HTTP/1.1\r\nHost: 127.0.0.1\r\n'
          b'Authorization: Bearer ' + token.encode() + b'\r\n'
          b'Content-Type: text/plain\r\nContent-Length: %d\r\n'
          b'Connection: close\r\n\r\n' % len(body) + body[:4])
open(ready, 'w').close()
end = time.time() + wait
while not os.path.exists(go) and time.time() < end:
    time.sleep(0.02)
try:
    s.sendall(body[4:])
except OSError:
    pass
s.settimeout(wait)
data = b''
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
except socket.timeout:
    print('hung')
    sys.exit(0)
except OSError:
    pass
line = data.split(b'\r\n', 1)[0].decode('latin-1')
print(line if line else 'closed')
PY

# Section 6's runner: start a responder the way its arguments say and
# print how it answered: "cgi STATUS-LINE" (on stdout, as CGI), "fastcgi
# STATUS-LINE" (a FastCGI request on the socket at fd 3), or "none".
# stderr lines go to stderr.
#   PROG DB PID-MODE FD3 LISTEN_FDS SOCKPATH
#   PID-MODE: own (LISTEN_PID is the responder's) or other (pid 1)
#   FD3: socket (a listening unix socket) or null (/dev/null)
cat >"$tmp/activate.py" <<'PY'
import os, socket, struct, subprocess, sys
prog, db, pidmode, fd3, nfds, path = sys.argv[1:7]
env = {'PATH': '/usr/bin:/bin', 'PUSHCGI_DB': db, 'LISTEN_FDS': nfds,
       'GATEWAY_INTERFACE': 'CGI/1.1', 'SERVER_PROTOCOL': 'HTTP/1.1',
       'REQUEST_METHOD': 'GET', 'QUERY_STRING': 'channel=cgi&timeout=0'}
if fd3 == 'socket':
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(path)
    ls.listen(8)
    fd = ls.fileno()
else:
    fd = os.open('/dev/null', os.O_RDONLY)
if fd != 3:
    os.dup2(fd, 3)
os.set_inheritable(3, True)
if pidmode == 'own':
    cmd = ['/bin/sh', '-c', 'LISTEN_PID=$$; export LISTEN_PID; exec "$0"', prog]
else:
    env['LISTEN_PID'] = '1'
    cmd = [prog]
p = subprocess.Popen(cmd, env=env, close_fds=False, stdin=subprocess.DEVNULL,
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
os.close(3)

def rec(t, content):
    return struct.pack('!BBHHBx', 1, t, 1, len(content), 0) + content

def nv(k, v):
    return bytes([len(k), len(v)]) + k + v

answer = 'none'
if pidmode == 'own' and fd3 == 'socket' and nfds == '1':
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.settimeout(10)
    c.connect(path)
    params = b''.join(nv(k, v) for k, v in [
        (b'REQUEST_METHOD', b'GET'), (b'GATEWAY_INTERFACE', b'CGI/1.1'),
        (b'SERVER_PROTOCOL', b'HTTP/1.1'), (b'SCRIPT_NAME', b'/cgi-bin/x'),
        (b'QUERY_STRING', b'channel=fcgi&timeout=0')])
    c.sendall(rec(1, struct.pack('!HB5x', 1, 0)) + rec(4, params) +
              rec(4, b'') + rec(5, b''))
    buf, out = b'', b''
    try:
        while True:
            b = c.recv(65536)
            if not b:
                break
            buf += b
            while len(buf) >= 8:
                _, t, _, cl, pl = struct.unpack('!BBHHBx', buf[:8])
                if len(buf) < 8 + cl + pl:
                    break
                if t == 6:
                    out += buf[8:8 + cl]
                buf = buf[8 + cl + pl:]
                if t == 3:
                    raise StopIteration
    except (StopIteration, socket.timeout, OSError):
        pass
    if out:
        answer = 'fastcgi ' + out.split(b'\r\n', 1)[0].decode('latin-1')
    p.terminate()
try:
    so, se = p.communicate(timeout=10)
except subprocess.TimeoutExpired:
    p.kill()
    so, se = p.communicate()
if answer == 'none' and so:
    answer = 'cgi ' + so.split(b'\r\n', 1)[0].decode('latin-1')
sys.stderr.write(se.decode('latin-1'))
print(answer)
print('exit %d' % p.returncode)
PY

# --- 1-4: a SIGKILLed responder ---------------------------------------------

# Section 1 for kind $1.
kill_stream() {
	local kind=$1 ch="sv-$1-s" url id p1 p2 i n after msg
	url="$(e2e_url push-stream)?channel=$ch&format=sse"
	sub_start a "$url"
	if ! sub_ready a; then
		nok "$kind: a stream is open before the kill"
		return
	fi
	id=$(sub_id a)
	p1=$(stream_pid "$id")
	check "$kind: the stream's process ($p1) is the server's push-stream" \
	    is_server_proc "$p1" push-stream
	# mod_proxy_fcgi keeps the connection of a response cut off by its
	# responder's death for KeepAliveTimeout unless told not to keep it.
	[ "$kind" = apache-proxy-fcgi ] &&
		check "$kind: the stream's answer says Connection: close (its client is let go at once when the responder dies, not held for KeepAliveTimeout)" \
		    grep -qi '^connection: *close' "$tmp/a.hdr"
	kill -KILL "$p1"
	check "$kind: the client's stream ends when its process is SIGKILLed" \
	    ended "$(sub_pid a)"
	# Reconnect as EventSource would, with its cursor.
	after=$(last_id)
	for ((n = 1; n <= WAIT * 5; n++)); do
		sub_start b "$url&since=$after"
		sub_ready b && break
		kill "$(sub_pid b)" 2>/dev/null
		sleep 0.2
	done
	if [ -z "$(sub_id b)" ]; then
		nok "$kind: a reconnect after the kill is served (tried $((n - 1)) times)"
		head -c 300 "$tmp/b.body" 2>/dev/null | sed 's/^/# /'
		return
	fi
	p2=$(stream_pid "$(sub_id b)")
	echo "# $kind: stream served by $p1, SIGKILLed; the reconnect (attempt $n) by $p2"
	check "$kind: a reconnect after the kill is served by a new push-stream process" \
	    eval '[ "$p2" != "$p1" ] && is_server_proc "$p2" push-stream'
	msg="after the kill on $kind"
	"$PUSHCTL" send "$ch" "$msg" >/dev/null
	check "$kind: a message published after the kill reaches the new stream" \
	    has "$tmp/b.body" "data: $msg"
	kill "$(sub_pid b)" 2>/dev/null
}

# Section 2 for kind $1.
kill_poll() {
	local kind=$1 ch="sv-$1-p" url p1 p2 n i msg pid
	url="$(e2e_url push-poll)?channel=$ch&timeout=60&since=$(last_id)"
	curl -s -o "$tmp/p1.body" "$url" &
	pid=$!
	curls+=($pid)
	for ((i = 0; i < WAIT * 10; i++)); do
		p1=$(chan_pid "$ch")
		[ -n "$p1" ] && break
		sleep 0.1
	done
	if [ -z "$p1" ]; then
		nok "$kind: a long-poll is held before the kill"
		return
	fi
	check "$kind: the poll's process ($p1) is the server's push-poll" \
	    is_server_proc "$p1" push-poll
	kill -KILL "$p1"
	check "$kind: a held long-poll ends when its process is SIGKILLed" \
	    ended "$pid"
	url="$(e2e_url push-poll)?channel=$ch&timeout=60&since=$(last_id)"
	p2=
	for ((n = 1; n <= WAIT * 5; n++)); do
		rm -f "$tmp/p2.body"
		curl -s -o "$tmp/p2.body" "$url" &
		pid=$!
		curls+=($pid)
		for ((i = 0; i < WAIT * 10; i++)); do
			p2=$(chan_pid "$ch" "$p1")
			[ -n "$p2" ] && break
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		[ -n "$p2" ] && break
		kill "$pid" 2>/dev/null
		sleep 0.2
	done
	echo "# $kind: poll held by $p1, SIGKILLed; the next (attempt $n) by ${p2:-nobody}"
	check "$kind: a poll after the kill is held by a new push-poll process" \
	    eval '[ -n "$p2" ] && is_server_proc "$p2" push-poll'
	msg="poll after the kill on $kind"
	"$PUSHCTL" send "$ch" "$msg" >/dev/null
	check "$kind: a message published after the kill answers the new poll" \
	    eval 'ended "$pid" && grep -qF "\"data\":\"$msg\"" "$tmp/p2.body"'
}

# Section 3 for kind $1.
kill_publish() {
	local kind=$1 ch="sv-$1-w" killed p n i code ans pid new ok
	sub_start w "$(e2e_url push-stream)?channel=$ch&format=sse"
	sub_ready w || { nok "$kind: a stream for the publishes is open"; return; }
	code=$(publish "$ch" "before the kill")
	check "$kind: a publish before the kill is a 201" [ "$code" = 201 ]
	rm -f "$tmp/hp.ready" "$tmp/hp.go"
	python3 "$tmp/halfpub.py" "$E2E_PORT" "/cgi-bin/push-publish?channel=$ch" \
	    "$TOKEN" "$tmp/hp.ready" "$tmp/hp.go" "$WAIT" >"$tmp/hp.out" 2>&1 &
	pid=$!
	curls+=($pid)
	for ((i = 0; i < WAIT * 10; i++)); do
		[ -e "$tmp/hp.ready" ] && break
		sleep 0.1
	done
	# Time for the web server to pass the request on (whether it did
	# or not, the request must not hang).
	sleep 0.5
	killed=$(server_pids push-publish | xargs)
	check "$kind: push-publish processes to SIGKILL" [ -n "$killed" ]
	kill -KILL $killed 2>/dev/null
	: >"$tmp/hp.go"
	ended "$pid"
	ans=$(cat "$tmp/hp.out")
	echo "# $kind: the half-sent publish, push-publish ($killed) SIGKILLed: ${ans:-no output}"
	check "$kind: a publish in flight when push-publish is SIGKILLed ends" \
	    eval '[ -n "$ans" ] && [ "$ans" != hung ]'
	for ((n = 1; n <= WAIT * 5; n++)); do
		code=$(publish "$ch" "published after the kill")
		[ "$code" = 201 ] && break
		sleep 0.2
	done
	echo "# $kind: the next publish: $code (attempt $n)"
	new=$(server_pids push-publish | xargs)
	ok=1
	[ -n "$new" ] || ok=0
	for p in $killed; do
		e2e_alive "$p" && ok=0
		case " $new " in *" $p "*) ok=0 ;; esac
	done
	check "$kind: a publish after the kill is a 201 from a new push-publish process ($new)" \
	    eval '[ "$code" = 201 ] && [ "$ok" = 1 ]'
	check "$kind: the publish after the kill reaches a live stream" \
	    has "$tmp/w.body" "data: published after the kill"
	kill "$(sub_pid w)" 2>/dev/null
}

port=$BASEPORT
# Section 4's first part, under multiwatch: SIGTERM to multiwatch (what
# its pid file names) ends an open stream cleanly (curl sees a complete
# response: multiwatch sent the responder one of its clean stops), and
# multiwatch and its responder end, nothing started again.
term_multiwatch() {
	local kind=$1 mw p i id gone=0
	mw=$(cat "$E2E_DIR/push-stream.pid" 2>/dev/null)
	if [ "$(cat "/proc/$mw/comm" 2>/dev/null)" != multiwatch ]; then
		nok "$kind: push-stream runs under multiwatch"
		return
	fi
	sub_start t "$(e2e_url push-stream)?channel=sv-$kind-t&format=sse"
	sub_ready t || { nok "$kind: a stream is open before the stop"; return; }
	id=$(sub_id t)
	p=$(stream_pid "$id")
	kill -TERM "$mw"
	ended "$(sub_pid t)"
	# nginx ends its response cleanly even when the responder dies:
	# the row tells, as only the responder's own clean end removes it.
	check "$kind: SIGTERM to multiwatch ends the stream cleanly (curl: ${rc_end:-still running}, streams row: $(sql "SELECT count(*) FROM streams WHERE id = $id"))" \
	    eval '[ "${rc_end:-1}" -eq 0 ] &&
	    [ "$(sql "SELECT count(*) FROM streams WHERE id = $id")" -eq 0 ]'
	for ((i = 0; i < WAIT * 10; i++)); do
		if ! e2e_alive "$mw" && ! e2e_alive "$p" &&
		    [ -z "$(server_pids push-stream)" ]; then
			gone=1
			break
		fi
		sleep 0.1
	done
	check "$kind: then multiwatch and push-stream end, nothing started again" \
	    [ "$gone" -eq 1 ]
}

for kind in $KINDS; do
	port=$(e2e_free_port "$port")
	if ! e2e_start "$kind" "$port" >"$tmp/start.log" 2>&1; then
		nok "$kind: server start"
		sed 's/^/# /' "$tmp/start.log"
		continue
	fi
	kill_stream "$kind"
	kill_poll "$kind"
	kill_publish "$kind"
	case $kind:${E2E_FCGI:-multiwatch} in
	nginx:multiwatch|apache-proxy-fcgi:multiwatch)
		term_multiwatch "$kind" ;;
	esac
	check "$kind: stopping leaves none of the server's processes" stop_clean
	grep -q . "$tmp/stop.log" 2>/dev/null && sed 's/^/# /' "$tmp/stop.log"
done

# --- 5: socket activation ----------------------------------------------------

for kind in $ACTIVATE_KINDS; do
	port=$(e2e_free_port "$port")
	if ! E2E_FCGI=socket-activate e2e_start "$kind" "$port" \
	    >"$tmp/start.log" 2>&1; then
		nok "$kind: server start with socket-activated responders"
		sed 's/^/# /' "$tmp/start.log"
		continue
	fi
	spid=$(cat "$E2E_DIR/push-stream.pid")
	check "$kind: before its first connection push-stream is still systemd-socket-activate" \
	    [ "$(readlink "/proc/$spid/exe")" = "$(e2e_which systemd-socket-activate)" ]
	ch="sa-$kind"
	sub_start sa "$(e2e_url push-stream)?channel=$ch&format=sse"
	if sub_ready sa; then
		p=$(stream_pid "$(sub_id sa)")
		check "$kind: a stream through the handed-over socket is served by the process systemd-socket-activate became" \
		    eval '[ "$p" = "$spid" ] && [ "$(readlink "/proc/$p/exe")" = "$CGIBIN/push-stream" ]'
		code=$(publish "$ch" "through socket activation")
		check "$kind: a publish through a socket-activated push-publish is a 201" \
		    [ "$code" = 201 ]
		check "$kind: the publish reaches the socket-activated stream" \
		    has "$tmp/sa.body" "data: through socket activation"
	else
		nok "$kind: a stream through the handed-over socket is served"
		sed 's/^/# /' "$E2E_DIR/spawn.log" 2>/dev/null
		tail -n 5 "$E2E_DIR/error.log" 2>/dev/null | sed 's/^/# /'
	fi
	kill "$(sub_pid sa)" 2>/dev/null
	check "$kind: stopping socket-activated responders leaves no process" \
	    stop_clean
done

# --- 6: detection without a web server ----------------------------------------

# activate PID-MODE FD3 LISTEN_FDS: the runner's output in $tmp/act.out,
# the responder's stderr in $tmp/act.err.
activate() {
	rm -f "$tmp/act.sock"
	python3 "$tmp/activate.py" "$B/cgi-bin/push-poll" "$PUSHCGI_DB" "$@" \
	    "$tmp/act.sock" >"$tmp/act.out" 2>"$tmp/act.err"
}
answered() { # $1: the expected first output line
	[ "$(head -n 1 "$tmp/act.out")" = "$1" ] && return 0
	sed 's/^/# got: /' "$tmp/act.out" "$tmp/act.err"
	return 1
}
activate other socket 1
check "another process's LISTEN_PID: the responder stays CGI, fd 3 untouched" \
    eval 'answered "cgi Status: 200 OK" && ! grep -q . "$tmp/act.err"'
activate own null 1
check "its own LISTEN_PID but fd 3 no socket: CGI, E421 on stderr" \
    eval 'answered "cgi Status: 200 OK" && grep -q E421 "$tmp/act.err"'
activate own socket 0x1
check "its own LISTEN_PID, LISTEN_FDS malformed: CGI, E420 on stderr" \
    eval 'answered "cgi Status: 200 OK" && grep -q E420 "$tmp/act.err"'
activate own socket 1
check "its own LISTEN_PID and a listening socket at fd 3: FastCGI there, a clean exit on SIGTERM" \
    eval 'answered "fastcgi Status: 200 OK" && grep -qx "exit 0" "$tmp/act.out"'

# --- 7: the installed units ---------------------------------------------------

# unit_value FILE KEY: the value of KEY= in FILE (the last one).
unit_value() { sed -n "s/^$2=//p" "$1" | tail -n 1; }
units_check() {
	local dest=$tmp/dest unitdir r u f exe db vb vp bad rc
	unitdir=$(sed -n 's/^systemdsystemunitdir = //p' "$B/Makefile")
	if [ -z "$unitdir" ]; then
		echo "# configured --without-systemdsystemunitdir: no units to check"
		return
	fi
	if ! make -s -C "$B" install DESTDIR="$dest" >"$tmp/install.log" 2>&1
	then
		nok "make install DESTDIR=... installs"
		tail -n 20 "$tmp/install.log" | sed 's/^/# /'
		return
	fi
	for r in $E2E_RESPONDERS; do
		bad=
		for u in socket service; do
			f="$dest$unitdir/$r.$u"
			[ -f "$f" ] || bad="$bad no $r.$u;"
			! grep -n '@[A-Za-z_]*@' "$f" 2>/dev/null ||
			    bad="$bad a placeholder is left in $r.$u;"
		done
		f="$dest$unitdir/$r.service"
		exe=$(unit_value "$f" ExecStart)
		db=$(sed -n 's/^Environment=PUSHCGI_DB=//p' "$f")
		[ "${exe##*/}" = "$r" ] && [ -x "$dest$exe" ] ||
		    bad="$bad ExecStart=$exe is not the installed $r;"
		[ -n "$db" ] && [ "$(unit_value "$f" ReadWritePaths)" = "${db%/*}" ] ||
		    bad="$bad ReadWritePaths is not the log's folder;"
		[ "$(unit_value "$f" Restart)" = on-failure ] ||
		    bad="$bad no Restart=on-failure;"
		[ "$(unit_value "$f" User)" = www-data ] || bad="$bad User;"
		f="$dest$unitdir/$r.socket"
		[ "$(unit_value "$f" ListenStream)" = "/run/pushcgi/$r.sock" ] &&
		    [ "$(unit_value "$f" SocketUser)" = www-data ] &&
		    [ "$(unit_value "$f" SocketMode)" = 0660 ] ||
		    bad="$bad the socket's path or owner;"
		if [ -z "$bad" ]; then
			ok "make install puts $r.socket and $r.service in $unitdir, ExecStart=$exe"
		else
			nok "make install puts $r.socket and $r.service in $unitdir:$bad"
		fi
	done
	if ! command -v systemd-analyze >/dev/null; then
		echo "# no systemd-analyze: the units are not verified"
		return
	fi
	# systemd-analyze verify wants the programs where the units say:
	# units made for a scratch prefix, the responders installed there.
	if [ -f "$S/config.status" ]; then
		echo "# the source tree is configured in place: no scratch" \
		    "build, the units are not verified"
		return
	fi
	vb=$tmp/vbuild
	vp=$tmp/vprefix
	mkdir -p "$vb" &&
	    (cd "$vb" && "$S/configure" -q --prefix="$vp" \
	    --with-systemdsystemunitdir="$vp/units" &&
	    make -s install-systemdsystemunitDATA) >"$tmp/vbuild.log" 2>&1 &&
	    make -s -C "$B" install-cgibinPROGRAMS \
	    cgibindir="$vp/lib/cgi-bin" >>"$tmp/vbuild.log" 2>&1
	if [ $? -ne 0 ]; then
		nok "units for a scratch prefix"
		tail -n 20 "$tmp/vbuild.log" | sed 's/^/# /'
		return
	fi
	systemd-analyze verify "$vp"/units/*.socket "$vp"/units/*.service \
	    >"$tmp/verify.log" 2>&1
	rc=$?
	sed 's/^/# /' "$tmp/verify.log"
	check "systemd-analyze verify accepts the six units (no error, no warning)" \
	    eval '[ "$rc" -eq 0 ] && ! grep -q . "$tmp/verify.log"'
}
[ "${SUPERVISE_UNITS:-1}" = 0 ] || units_check

[ "$fails" -eq 0 ]
