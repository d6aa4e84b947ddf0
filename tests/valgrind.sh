#!/usr/bin/env bash
# tests/valgrind.sh BUILD_DIR: every pushctl command and every request path
# of the responders (run as plain CGI, as a web server's mod_cgi runs them)
# under valgrind's memcheck, which fails a run on any memory error and on
# any definite, indirect or possible leak.
#
# One line per run, "ok - NAME" or "not ok - NAME" (a run passes when it
# exits as expected, valgrind found nothing, and its output says what it
# should); the valgrind log of a failed run follows as "# " lines.  Exits
# non-zero on any failure.  Every run is bounded by a timeout; streams and
# followers are ended with SIGTERM or SIGINT once their message arrived.
# push-poll and push-publish are checked when they are built.
#
# Environment: VG_TIMEOUT (seconds a run may take, default 120),
# VG_WAIT (seconds to wait for a message to arrive, default 60).
# valgrind.supp beside this script holds suppressions for third-party
# noise only, each with the reason.
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
b=${1:-}
if [ -z "$b" ] || [ ! -x "$b/pushctl" ]; then
	echo "usage: $0 BUILD_DIR (a built tree: BUILD_DIR/pushctl)" >&2
	exit 100
fi
b=$(cd "$b" && pwd)

VG_TIMEOUT=${VG_TIMEOUT:-120}
VG_WAIT=${VG_WAIT:-60}
VG_PATH=/usr/local/bin:/usr/bin:/bin

passed=0
failed=0

if ! command -v valgrind >/dev/null; then
	echo "not ok - valgrind is installed"
	exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pushcgi-vg.XXXXXX") || exit 111
bg_pids=
cleanup() {
	local p
	for p in $bg_pids; do
		kill -KILL "$p" 2>/dev/null
	done
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

export PUSHCGI_DB=$tmp/push.db
export PUSHCGI_CONF=$tmp/push.conf
cat >"$PUSHCGI_CONF" <<EOF
publish_token = vgtoken
max_data = 4096
heartbeat = 1
poll_timeout = 1
subscriber_secret = vgsecret
private_channel = priv.
EOF

VG=(valgrind --leak-check=full
    --show-leak-kinds=definite,indirect,possible
    --errors-for-leak-kinds=definite,indirect,possible
    --error-exitcode=99 --track-fds=no --num-callers=30)
[ -f "$top/tests/valgrind.supp" ] &&
    VG+=(--suppressions="$top/tests/valgrind.supp")

n=0
vg_env=()

# Record a result.  $1: 0 pass, else fail; $2: name; $3: valgrind log.
result() {
	if [ "$1" -eq 0 ]; then
		passed=$((passed + 1))
		echo "ok - $2"
	else
		failed=$((failed + 1))
		echo "not ok - $2"
		[ -n "${3:-}" ] && [ -f "$3" ] && sed 's/^/# /' "$3" |
		    tail -n 80
	fi
}

# 0 if the valgrind logs of run $1 report no error: the program's own log
# ends with "ERROR SUMMARY: 0 errors"; a child forked to exec another
# program (pushctl every) leaves a log of its own without a summary.
vg_clean() {
	grep -q 'ERROR SUMMARY: [1-9]' "$tmp/vg.$1".* 2>/dev/null && return 1
	grep -q 'ERROR SUMMARY: 0 errors' "$tmp/vg.$1".* 2>/dev/null
}

# Run program "$@" under valgrind, bounded by a timeout, with its valgrind
# logs in $tmp/vg.$run.*; the caller redirects.
vg_cmd() {
	timeout -k 10 "$VG_TIMEOUT" "${VG[@]}" \
	    --log-file="$tmp/vg.$run.%p" "$@"
}

# Start program "$@" under valgrind in the background, with no timeout in
# between (the signals that end it must reach it); vg_end bounds it.  Its
# environment: ours, changed by the env(1) arguments in vg_env.
# Sets run, out, err, pid; stdout to $out unless $VG_OUT names a file.
vg_start() {
	n=$((n + 1))
	run=$n
	out=$tmp/out.$run
	err=$tmp/err.$run
	env "${vg_env[@]}" "${VG[@]}" --log-file="$tmp/vg.$run.%p" "$@" \
	    >"${VG_OUT:-$out}" 2>"$err" <"${VG_STDIN:-/dev/null}" &
	pid=$!
	bg_pids="$bg_pids $pid"
}

# 0 if process $1 exists and has not ended (a zombie has).
alive() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	s=${s##*) }
	[ "${s%% *}" != Z ]
}

# Send signal $1 (if not empty) to the background run $pid, wait for its
# end (SIGKILL after VG_TIMEOUT seconds); its status in $rc.
vg_end() {
	local end=$((SECONDS + VG_TIMEOUT))
	[ -n "$1" ] && kill -"$1" "$pid" 2>/dev/null
	while [ "$SECONDS" -lt "$end" ]; do
		alive "$pid" || break
		sleep 0.1
	done
	alive "$pid" && { echo "# run $run did not end: killed"; \
	    kill -KILL "$pid"; }
	wait_bg "$pid"
}

# Run "$@" to its end: stdout in $out, stderr in $err, status in $rc.
vg_run() {
	n=$((n + 1))
	run=$n
	out=$tmp/out.$run
	err=$tmp/err.$run
	vg_cmd "$@" >"$out" 2>"$err" <"${VG_STDIN:-/dev/null}"
	rc=$?
}

# The whole check of one run: expected exit $2, clean valgrind, and the
# extra test "$3" (shell code, may be empty).  $1: name.
vg_check() {
	local name=$1 want=$2 test=${3:-} ok=0 log
	log=$(ls "$tmp/vg.$run".* 2>/dev/null | head -n 1)
	if [ "$rc" -ne "$want" ]; then
		ok=1
		echo "# $name: exit $rc, expected $want; stderr:"
		sed 's/^/#   /' "$err" | head -n 10
	fi
	if ! vg_clean "$run"; then
		ok=1
		log=$(grep -L 'ERROR SUMMARY: 0 errors' "$tmp/vg.$run".* \
		    2>/dev/null | head -n 1)
	fi
	if [ -n "$test" ] && ! eval "$test"; then
		ok=1
		echo "# $name: output check failed: $test"
		tr -s ' ' <"$out" | head -c 1000 | sed 's/^/#   /'
		echo
	fi
	[ "$ok" -eq 0 ] && log=
	result "$ok" "valgrind: $name" "$log"
}

# pushctl ARGS... expecting exit $1, output test $2.  $3: name.
pc() {
	local want=$1 test=$2 name=$3
	shift 3
	vg_run "$b/pushctl" "$@"
	vg_check "pushctl $name" "$want" "$test"
}

# Wait until file $1 contains fixed string $2 (or the process $3 ended).
wait_for() {
	local end=$((SECONDS + VG_WAIT))
	while [ "$SECONDS" -lt "$end" ]; do
		grep -qaF -- "$2" "$1" 2>/dev/null && return 0
		[ -n "${3:-}" ] && ! alive "$3" && break
		sleep 0.1
	done
	grep -qaF -- "$2" "$1" 2>/dev/null
}

# Wait until channel $1 has a subscriber (pushctl ls), while process $2
# lasts.
subscribed() {
	local end=$((SECONDS + VG_WAIT))
	while [ "$SECONDS" -lt "$end" ]; do
		"$b/pushctl" ls 2>/dev/null |
		    awk -v c="$1" '$1 == c && $4 > 0 { f = 1 } END { exit !f }' &&
		    return 0
		alive "$2" || return 1
		sleep 0.1
	done
	return 1
}

# Reap background process $1; its status in $rc.
wait_bg() {
	wait "$1"
	rc=$?
	bg_pids=${bg_pids// $1/}
}

# Publish without valgrind (the publisher is not what is being checked
# there); prints the new id.
publish() {
	"$b/pushctl" send "$@"
}

# --- pushctl -----------------------------------------------------------------
head -c 3000 /dev/urandom >"$tmp/binary"
printf 'a\0b\001\377\n' >>"$tmp/binary"
head -c 5000 /dev/zero | tr '\0' x >"$tmp/big"

pc 0 'grep -q "usage: pushctl" "$out"' --help --help
pc 0 'grep -q "^pushctl" "$out"' --version --version
pc 100 '' "no command"
pc 100 '' "unknown command" frobnicate
pc 100 '' "bad option" --no-such-option ls
pc 111 '' "missing --conf file" --conf "$tmp/none.conf" ls
pc 0 '[ -f "$PUSHCGI_DB" ]' init init
pc 0 '' "init again" init
pc 0 '[ -f "$tmp/other.db" ]' "--db init" --db "$tmp/other.db" init
pc 100 '' "send without channel" send
pc 0 'grep -qE "^[0-9]+$" "$out"' "send DATA" send news hello
pc 0 'grep -qE "^[0-9]+$" "$out"' "send -t -e" send -t text/html -e upd news \
    '<b>x</b>'
VG_STDIN=$tmp/binary pc 0 'grep -qE "^[0-9]+$" "$out"' "send - (binary stdin)" \
    send -t application/octet-stream bin -
VG_STDIN=$tmp/binary pc 0 'grep -qE "^[0-9]+$" "$out"' "send (stdin, no DATA)" \
    send bin
pc 1 '' "send invalid channel" send .bad x
pc 1 '' "send invalid type" send -t 'no type' news x
pc 1 '' "send invalid event" send -e 'a b' news x
VG_STDIN=$tmp/big pc 1 '' "send over max_data" send news -
pc 0 'grep -q "hello" "$out" && grep -q "upd" "$out"' tail tail news
pc 0 'cmp -s "$out" "$tmp/binary"' "tail -n 1 --raw (binary)" \
    tail -n 1 --raw bin
pc 0 'grep -q "\\\\x" "$out"' "tail --since 0 two channels" \
    tail --since 0 news bin
pc 100 '' "tail without channel" tail
pc 100 '' "tail bad -n" tail -n x news
pc 0 '' "tail --count 1 -f" tail -f --count 1 -n 1 news
pc 0 '' "tail -f --timeout 1" tail -f -n 0 --timeout 1 news
pc 0 'grep -q "^news " "$out"' ls ls
pc 100 '' "ls with an argument" ls x
pc 0 '[ -s "$out" ]' stat stat
pc 0 'grep -q news "$out"' "stat CHANNEL" stat news bin
pc 1 '' "stat unknown channel" stat nosuch
pc 0 '' "prune --keep 1 CHANNEL" prune --keep 1 news
pc 0 '' "prune --age" prune --age 3600
pc 0 '' "prune (config)" prune
pc 100 '' "prune two channels" prune a b
pc 0 'grep -q "gap" "$out"' "tail after prune: gap" tail --since 0 news
pc 0 '' "every --count 2" every --count 2 1 ev -- echo tick
pc 0 '' "every --changed -t -e" every --changed -t text/plain -e tick \
    --count 1 1 ev -- printf x
pc 1 '' "every, command not found" every --count 1 1 ev -- \
    "$tmp/no-such-command"
pc 100 '' "every without --" every 1 ev echo
pc 100 '' "every 0 seconds" every 0 ev -- true
pc 1 '' "every invalid channel" every 1 .x -- true
pc 0 '' rm rm bin
pc 100 '' "rm without channel" rm
if "$b/pushctl" --help 2>/dev/null | grep -q '^ *token'; then
	pc 0 'grep -qE "^[0-9]+\.[0-9a-f]{64}$" "$out"' token token priv.a 60
	pc 0 'grep -qE "^[0-9]+\.[0-9a-f]{64}$" "$out"' "token default ttl" \
	    token priv.a
	pc 100 '' "token without channel" token
fi

# tail -f and every as long-running processes, ended by a signal once
# they have done their work.
for sig in TERM INT; do
	vg_start "$b/pushctl" tail -f -n 1 news
	# The newest message first, then one published while following.
	ok=0
	wait_for "$out" news "$pid" || ok=1
	publish news "follow-$sig" >/dev/null
	wait_for "$out" "follow-$sig" "$pid" || ok=1
	vg_end "$sig"
	[ "$ok" -eq 0 ] || rc=-1
	vg_check "pushctl tail -f, ended by SIG$sig" 0 \
	    "grep -q follow-$sig \"\$out\""
done
vg_start "$b/pushctl" every 1 evsig -- echo every-sig
end=$((SECONDS + VG_WAIT))
while [ "$SECONDS" -lt "$end" ] && alive "$pid"; do
	"$b/pushctl" tail -n 1 evsig 2>/dev/null | grep -q every-sig && break
	sleep 0.1
done
vg_end TERM
vg_check "pushctl every, ended by SIGTERM" 0 \
    '"$b/pushctl" tail -n 1 evsig | grep -q every-sig'

# --- the responders as plain CGI --------------------------------------------
# cgi PROG METHOD QUERY [VAR=VALUE...]: run a responder as a web server's
# mod_cgi would, stdout into a pipe (the responders watch it to notice a
# client that leaves), stdin from $VG_STDIN.  Foreground: status in $rc.
cgi_env() { # PROG METHOD QUERY [VAR=VALUE...]: prints nothing, sets env
	local prog=$1 method=$2 query=$3
	shift 3
	cgi_vars=(PATH="$VG_PATH" PUSHCGI_DB="$PUSHCGI_DB"
	    PUSHCGI_CONF="$PUSHCGI_CONF" GATEWAY_INTERFACE=CGI/1.1
	    SERVER_PROTOCOL=HTTP/1.1 SERVER_SOFTWARE=valgrind-test
	    SERVER_NAME=127.0.0.1 SERVER_PORT=80 REMOTE_ADDR=127.0.0.1
	    REMOTE_PORT=40000 SCRIPT_NAME="/cgi-bin/$prog"
	    REQUEST_URI="/cgi-bin/$prog?$query" REQUEST_METHOD="$method"
	    QUERY_STRING="$query" "$@")
}

# Start a responder in the background; its stdout is a pipe read by cat
# into $out.  Sets run, out, err, pid, catpid.
cgi_start() {
	local fifo=$tmp/pipe.$((n + 1))
	cgi_env "$@"
	mkfifo "$fifo" || return 1
	cat "$fifo" >"$tmp/out.$((n + 1))" &
	catpid=$!
	bg_pids="$bg_pids $catpid"
	vg_env=(-i "${cgi_vars[@]}")
	VG_OUT=$fifo vg_start "$b/cgi-bin/$1"
	vg_env=()
}

# Wait for the background responder (signal $1 first, if not empty) and
# its pipe's reader.
cgi_end() {
	vg_end "$1"
	local keep=$rc
	wait_bg "$catpid"
	rc=$keep
}

# Run a responder to its end (see cgi_start); status in $rc.
cgi() {
	cgi_start "$@"
	cgi_end ""
}

# An answer's status line: CGI "Status: NNN", 200 when absent.
status_is() {
	local s
	s=$(sed -n '1,/^\r\{0,1\}$/p' "$out" | tr -d '\r' |
	    sed -n 's/^Status: \([0-9][0-9][0-9]\).*/\1/p' | head -n 1)
	[ "${s:-200}" = "$1" ]
}

# push-stream: each framing, from a cursor, until the message published
# after it has arrived; then SIGTERM (the web server's stop).
for fmt in mixed sse script raw accept-sse; do
	since=$(publish news "before-$fmt")
	q="channel=news,other&since=$since"
	vars=()
	case $fmt in
	accept-sse) vars=(HTTP_ACCEPT=text/event-stream) ;;
	script) q="$q&format=script&callback=cb.f" ;;
	*) q="$q&format=$fmt&heartbeat=1" ;;
	esac
	cgi_start push-stream GET "$q" "${vars[@]}"
	ok=0
	publish -t text/plain news "stream-$fmt" >/dev/null
	wait_for "$out" "stream-$fmt" "$pid" || ok=1
	cgi_end TERM
	[ "$ok" -eq 0 ] || rc=-1
	vg_check "push-stream $fmt, ended by SIGTERM" 0 \
	    "grep -qaF stream-$fmt \"\$out\" && ! grep -qaF before-$fmt \"\$out\""
done

# mixed starts with the newest message (an image shows at once); a
# binary one.
publish -t image/png img - <"$tmp/binary" >/dev/null
cgi_start push-stream GET "channel=img&format=mixed"
ok=0
wait_for "$out" "image/png" "$pid" || ok=1
cgi_end TERM
[ "$ok" -eq 0 ] || rc=-1
vg_check "push-stream mixed, latest binary part at once" 0 \
    "grep -qa 'multipart/x-mixed-replace;boundary=' \"\$out\""

# sse resuming from a Last-Event-ID older than what retention kept: a gap,
# then what is left.
first=$(publish gappy g1)
publish gappy g2 >/dev/null
publish gappy g3 >/dev/null
"$b/pushctl" prune --keep 1 gappy >/dev/null
cgi_start push-stream GET "channel=gappy&format=sse" \
    HTTP_LAST_EVENT_ID="$first"
ok=0
wait_for "$out" "data: g3" "$pid" || ok=1
cgi_end TERM
[ "$ok" -eq 0 ] || rc=-1
vg_check "push-stream sse, Last-Event-ID before a gap" 0 \
    'grep -qa "^event: gap" "$out" && grep -qa "^data: g3" "$out" &&
    ! grep -qa "^data: g2" "$out"'

# A client that leaves: the pipe's reader goes away.
cgi_start push-stream GET "channel=news&format=raw&heartbeat=1"
ok=0
wait_for "$out" "Content-Type" "$pid" || ok=1
kill -TERM "$catpid" 2>/dev/null
cgi_end ""
[ "$ok" -eq 0 ] || rc=-1
vg_check "push-stream raw, client leaves" 0 ''

for bad in "" "channel=.bad" "channel=news&format=nope" \
    "channel=news&bogus=1" "channel=news&channel=x" "channel=news&since=x" \
    "channel=news&last=1000" "channel=news&format=script&callback=a(b)"; do
	cgi push-stream GET "$bad"
	vg_check "push-stream 400 ($bad)" 0 'status_is 400'
done
cgi push-stream GET "channel=priv.a&format=raw"
vg_check "push-stream 403 (private channel)" 0 'status_is 403'

# push-poll: an immediate answer, a held one that times out, raw.
if [ -x "$b/cgi-bin/push-poll" ]; then
	since=$(publish news poll-a)
	publish news poll-b >/dev/null
	cgi push-poll GET "channel=news&since=$since"
	vg_check "push-poll json, immediate" 0 \
	    'status_is 200 && grep -q "poll-b" "$out" && ! grep -q "poll-a" "$out"'
	last=$(publish news poll-c)
	cgi push-poll GET "channel=news,other&since=$last&timeout=1"
	vg_check "push-poll json, timeout=1" 0 \
	    "status_is 200 && grep -q '\"messages\":\[\]' \"\$out\""
	cgi push-poll GET "channel=news&last=2&callback=cb.f"
	vg_check "push-poll jsonp last=2" 0 'grep -q "cb.f(" "$out"'
	cgi push-poll GET "channel=news&format=raw" \
	    HTTP_IF_NONE_MATCH="\"$since\""
	vg_check "push-poll raw, If-None-Match" 0 \
	    'status_is 200 && grep -q "poll-b" "$out"'
	cgi push-poll GET "channel=news&format=raw&since=$last&timeout=1"
	vg_check "push-poll raw, timeout=1: 304" 0 'status_is 304'
	cgi_start push-poll GET "channel=news&since=$last&timeout=60"
	ok=0
	subscribed news "$pid" || ok=1
	publish news poll-d >/dev/null
	cgi_end ""
	[ "$ok" -eq 0 ] || rc=-1
	vg_check "push-poll json, held and woken" 0 'grep -q "poll-d" "$out"'
	publish quiet q >/dev/null
	cgi_start push-poll GET "channel=quiet&timeout=60"
	ok=0
	subscribed quiet "$pid" || ok=1
	cgi_end TERM
	[ "$ok" -eq 0 ] || rc=-1
	vg_check "push-poll held, ended by SIGTERM" 0 'status_is 200'
	for bad in "" "channel=.bad" "channel=news&since=x" \
	    "channel=news&timeout=x" "channel=news&format=nope" \
	    "channel=news&bogus=1"; do
		cgi push-poll GET "$bad"
		vg_check "push-poll 400 ($bad)" 0 'status_is 400'
	done
else
	echo "# push-poll is not built: its runs are left out"
fi

# push-publish: with the token, without it, too large, channel info,
# removal, and ending a stream by its handle (the control request).
if [ -x "$b/cgi-bin/push-publish" ]; then
	printf 'published-by-cgi' >"$tmp/body"
	pp() { # WANT-STATUS NAME METHOD QUERY [VAR=VALUE...], body $VG_STDIN
		local want=$1 name=$2
		shift 2
		cgi push-publish "$@"
		vg_check "push-publish $name" 0 "status_is $want"
	}
	VG_STDIN=$tmp/body pp 201 "POST with X-Push-Token" POST channel=pub \
	    CONTENT_LENGTH=16 CONTENT_TYPE=text/plain HTTP_X_PUSH_TOKEN=vgtoken
	result "$("$b/pushctl" tail -n 1 pub | grep -q published-by-cgi;
	    echo $?)" "push-publish: the message is in the log"
	VG_STDIN=$tmp/body pp 201 "POST with Bearer, event=" POST \
	    "channel=pub&event=ev" CONTENT_LENGTH=16 \
	    CONTENT_TYPE=application/octet-stream \
	    HTTP_AUTHORIZATION="Bearer vgtoken"
	VG_STDIN=$tmp/body pp 201 PUT PUT channel=pub CONTENT_LENGTH=16 \
	    HTTP_X_PUSH_TOKEN=vgtoken
	VG_STDIN=$tmp/body pp 403 "without a token" POST channel=pub \
	    CONTENT_LENGTH=16 CONTENT_TYPE=text/plain
	VG_STDIN=$tmp/body pp 403 "wrong token" POST channel=pub \
	    CONTENT_LENGTH=16 CONTENT_TYPE=text/plain HTTP_X_PUSH_TOKEN=wrong
	VG_STDIN=$tmp/big pp 413 "over max_data" POST channel=pub \
	    CONTENT_LENGTH=5000 CONTENT_TYPE=text/plain \
	    HTTP_X_PUSH_TOKEN=vgtoken
	VG_STDIN=$tmp/body pp 415 "bad Content-Type" POST channel=pub \
	    CONTENT_LENGTH=16 CONTENT_TYPE='no type' HTTP_X_PUSH_TOKEN=vgtoken
	VG_STDIN=$tmp/body pp 400 "invalid channel" POST channel=.bad \
	    CONTENT_LENGTH=16 CONTENT_TYPE=text/plain HTTP_X_PUSH_TOKEN=vgtoken
	pp 400 "unknown parameter" GET "channel=pub&bogus=1" \
	    HTTP_X_PUSH_TOKEN=vgtoken
	pp 200 "GET channel info" GET channel=pub HTTP_X_PUSH_TOKEN=vgtoken
	pp 404 "GET unknown channel" GET channel=nosuch \
	    HTTP_X_PUSH_TOKEN=vgtoken
	pp 403 "GET without a token" GET channel=pub
	pp 405 "other method" PATCH channel=pub HTTP_X_PUSH_TOKEN=vgtoken
	pp 403 "OPTIONS from an origin not allowed" OPTIONS channel=pub \
	    HTTP_ORIGIN=http://example.invalid
	pp 200 DELETE DELETE channel=pub HTTP_X_PUSH_TOKEN=vgtoken
	result "$("$b/pushctl" stat pub >/dev/null 2>&1 && echo 1 ||
	    echo 0)" "push-publish: DELETE removed the channel"

	# A stream ended by a control request with its handle: both
	# programs under valgrind.
	publish ctl c0 >/dev/null
	cgi_start push-stream GET "channel=ctl&format=sse"
	spid=$pid scat=$catpid srun=$run sout=$out
	ok=0
	wait_for "$sout" "X-Push-Stream:" "$spid" || ok=1
	handle=$(sed -n 's/^X-Push-Stream: \([0-9.a-zA-Z]*\).*/\1/p' \
	    "$sout" | tr -d '\r' | head -n 1)
	pp 200 "POST stream=HANDLE (control)" POST "stream=$handle" \
	    CONTENT_LENGTH=0
	pp 404 "POST stream=unknown id" POST "stream=999999" \
	    CONTENT_LENGTH=0 HTTP_X_PUSH_TOKEN=vgtoken
	pp 400 "POST stream=malformed" POST "stream=x.y.z" CONTENT_LENGTH=0
	pid=$spid catpid=$scat run=$srun out=$sout
	err=$tmp/err.$run
	cgi_end ""
	[ "$ok" -eq 0 ] || rc=-1
	vg_check "push-stream ended by a control request" 0 \
	    'status_is 200'
else
	echo "# push-publish is not built: its runs are left out"
fi

# ---- the responders as threaded FastCGI servers, behind nginx -----------
# What FastCGI has that CGI has not: request threads that accept and
# serve, streams parked in the process's loop (heartbeats from its timers,
# messages written by the hub thread, a client that leaves), held polls
# answered by the loop, one registered by its worker and answered at its
# timeout, publishes, and the stop (SIGTERM ends every parked stream).
# Each responder runs under valgrind (E2E_WRAP in tests/e2e/lib.sh) until
# the stop; its report is read then.
fcgi_part() {
	local f=$tmp/fcgi g st sa sb pa pb ok r log
	local E2E_WRAP
	mkdir -p "$f/vg" && chmod 0755 "$tmp" "$f" && chmod 0777 "$f/vg" ||
	    return 1
	cp "$top/tests/valgrind.supp" "$f/vg.supp" && chmod 0644 "$f/vg.supp"
	cp "$PUSHCGI_CONF" "$f/push.conf" && chmod 0644 "$f/push.conf" &&
	    echo "poll_timeout_max = 5" >>"$f/push.conf"
	export PUSHCGI_DB=$f/push.db PUSHCGI_CONF=$f/push.conf
	"$b/pushctl" init >/dev/null || return 1
	export top_builddir=$b top_srcdir=$top
	# shellcheck source=e2e/lib.sh
	. "$top/tests/e2e/lib.sh" || return 1
	E2E_WRAP="$(command -v valgrind) --leak-check=full \
--show-leak-kinds=definite,indirect,possible \
--errors-for-leak-kinds=definite,indirect,possible --track-fds=no \
--num-callers=30 --suppressions=$f/vg.supp --log-file=$f/vg/%p.log"
	if ! E2E_FCGI=spawn-fcgi E2E_START_WAIT=120 e2e_start nginx \
	    "$(e2e_free_port $((30000 + RANDOM % 20000)))" >"$f/start.log" 2>&1
	then
		result 1 "valgrind FastCGI: nginx and the responders start" \
		    "$f/start.log"
		e2e_stop >/dev/null 2>&1
		return 0
	fi
	g=$(e2e_url push-stream)
	st="curl -sN --max-time $VG_TIMEOUT"
	# Streams: one stays, one leaves, one mixed; a held poll answered.
	$st "$g?channel=vf.s&format=sse" >"$f/sa" 2>/dev/null & sa=$!
	$st "$g?channel=vf.s&format=sse" >"$f/sb" 2>/dev/null & sb=$!
	$st "$g?channel=vf.s&format=mixed" >"$f/sm" 2>/dev/null &
	bg_pids="$bg_pids $sa $sb $!"
	$st "$(e2e_url push-poll)?channel=vf.p&timeout=60" >"$f/pa" \
	    2>/dev/null & pa=$!
	# A poll held past its registration (1 s) to its timeout (2 s).
	$st "$(e2e_url push-poll)?channel=vf.q&timeout=2" >"$f/pb" \
	    2>/dev/null & pb=$!
	bg_pids="$bg_pids $pa $pb"
	ok=0
	wait_for "$f/sa" "event: stream" "$sa" &&
	    wait_for "$f/sb" "event: stream" "$sb" || ok=1
	kill "$sb" 2>/dev/null
	sleep 2         # two heartbeats; sb's stream is let go meanwhile
	for r in 1 2; do
		curl -s -o /dev/null -X POST -H "X-Push-Token: vgtoken" \
		    --data-binary "fcgi-$r" \
		    "$(e2e_url push-publish)?channel=vf.s" || ok=1
	done
	curl -s -o /dev/null -X POST -H "X-Push-Token: vgtoken" \
	    --data-binary "fcgi-poll" "$(e2e_url push-publish)?channel=vf.p" ||
	    ok=1
	wait_for "$f/sa" "fcgi-2" "$sa" && wait_for "$f/sm" "fcgi-2" &&
	    wait_for "$f/pa" "fcgi-poll" "$pa" || ok=1
	wait_bg "$pb"
	grep -q '"messages":\[\]' "$f/pb" || ok=1
	result "$ok" "valgrind FastCGI: streams, a leaving client, polls and publishes through nginx" ""
	# The stop: SIGTERM to each responder (e2e_stop), which ends its
	# parked streams and writes its valgrind report (a leak check of a
	# threaded server takes seconds on a busy machine: time for that).
	E2E_STOP_WAIT=120 e2e_stop >"$f/stop.log" 2>&1
	wait_bg "$sa"
	ok=0
	[ "$(grep -l "ERROR SUMMARY" "$f"/vg/*.log 2>/dev/null | wc -l)" -ge 3 ] ||
	    ok=1
	log=$(grep -L 'ERROR SUMMARY: 0 errors' "$f"/vg/*.log 2>/dev/null |
	    head -n 1)
	[ -z "$log" ] || ok=1
	# On failure: the log with errors, else how the stop went (a
	# responder without a report was killed).
	ls -l "$f/vg" >>"$f/stop.log" 2>&1
	result "$ok" "valgrind FastCGI: push-stream, push-poll, push-publish stop with no error and no leak" "${log:-$f/stop.log}"
}
if command -v nginx >/dev/null && command -v spawn-fcgi >/dev/null &&
    command -v curl >/dev/null && [ -x "$b/cgi-bin/push-poll" ] &&
    [ -x "$b/cgi-bin/push-publish" ]; then
	fcgi_part
else
	echo "# nginx, spawn-fcgi or curl missing: the FastCGI runs are left out"
fi

echo "# valgrind: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
