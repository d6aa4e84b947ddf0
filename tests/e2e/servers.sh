#!/usr/bin/env bash
# The shipped web-server configurations (conf/*), proven on their own with
# a stand-in responder (tests/e2e/probe) in place of push-stream,
# push-poll and push-publish.  For every kind that tests/e2e/lib.sh starts:
#
#   a) streaming: the first line of a response reaches curl while the
#      program is still writing (it leaves a marker file only after its
#      last line), so nothing buffers the response on the way;
#   b) every route (/cgi-bin/push-stream, -poll, -publish) reaches its
#      program in the intended mode (CGI or FastCGI) with PUSHCGI_DB and
#      PUSHCGI_CONF from the configuration and the request headers the
#      responders need (Last-Event-ID, If-None-Match, Authorization);
#      REMOTE_USER is not set without authentication, whatever the client
#      sends;
#   c) a 1 MiB binary POST body and a PUT body arrive intact;
#   d) many streams are open at once (each holds until told to end);
#   e) a restart works, and stopping, with streams open, leaves no process
#      behind and frees the port;
#   f) only with SERVERS_SLOW=1 (it takes SILENT seconds per kind): a
#      response that stays silent for SILENT (130) seconds, longer than
#      every server's default idle timeout and than the longest long-poll
#      (120 s), is not cut.
#
# No timing is asserted: every check waits for an event (a line, a file)
# and gives up only after WAIT seconds.
#
# Environment as for make check: top_builddir, top_srcdir.  SERVER_KINDS
# limits the kinds (default: all of e2e_kinds); SERVERS_PORT the first
# port tried.  Prints "ok - ..." / "not ok - ..." lines and exits non-zero
# on any failure.
set -u
B=$(cd "${top_builddir:-.}" && pwd)
S=$(cd "${top_srcdir:-$(dirname "$0")/../..}" && pwd)
. "$S/tests/e2e/lib.sh" || exit 99

PROBE="$B/tests/e2e/probe"
WAIT=30                 # seconds any single expectation may take
NCONC=20                # streams open at once in d)
NSTOP=3                 # streams open while the server stops in e)
BODY_BYTES=1048576      # the POST body of c)
SILENT=${SILENT:-130}   # seconds of silence in f)

fails=0

[ -x "$PROBE" ] || { echo "not ok - $PROBE is not built (make check)"; exit 1; }
command -v curl >/dev/null || { echo "not ok - curl is not installed"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/servers-e2e.XXXXXX") || exit 99
# The servers may run as another user (as root: www-data): they must
# reach the programs in here.
chmod 0755 "$tmp"
curls=()
cleanup() {
	local p
	for p in "${curls[@]}"; do
		kill "$p" 2>/dev/null
	done
	wait 2>/dev/null
	e2e_stop
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# The probe stands in for every responder, under the responders' names.
export CGIBIN="$tmp/cgi-bin"
mkdir -p "$CGIBIN" "$tmp/db"
for r in $E2E_RESPONDERS; do
	cp "$PROBE" "$CGIBIN/$r" || exit 99
done
export PUSHCGI_DB="$tmp/db/push.db"   # the probe writes its markers beside
export PUSHCGI_CONF="$tmp/pushcgi.conf"
: >"$PUSHCGI_CONF"
M="$tmp/db"                            # where the markers appear
head -c "$BODY_BYTES" /dev/urandom >"$tmp/post.bin"
printf 'line one\r\nline two\n\0end' >"$tmp/put.bin"

# Wait until file $1 exists (WAIT seconds at most).
wait_file() {
	local i
	for ((i = 0; i < WAIT * 10; i++)); do
		[ -e "$1" ] && return 0
		sleep 0.1
	done
	return 1
}

# Pids (one a line) of live processes running a program from $CGIBIN.
probe_procs() {
	local p exe
	for p in /proc/[0-9]*; do
		exe=$(readlink "$p/exe" 2>/dev/null) || continue
		case $exe in
		"$CGIBIN"/*)
			grep -q '^State:[[:space:]]*Z' "$p/status" 2>/dev/null ||
			    echo "${p#/proc/}" ;;
		esac
	done
}

# a) Stream 20 lines, 200 ms apart; print how line 1 arrived: "streamed"
# (the program had not finished) or "buffered", then "end" if the whole
# response arrived.
stream_order() {
	local url=$1 mark=$2 line first=none end=no
	while IFS= read -r line; do
		case $line in
		"line 1")
			if [ -e "$M/$mark.done" ]; then
				first=buffered
			else
				first=streamed
			fi ;;
		end) end=end ;;
		esac
	done < <(curl -sN --max-time $((WAIT * 2)) "$url?lines=20&ms=200&mark=$mark")
	echo "$first $end"
}

# b) Print the expected lines missing from the answer in file $1.
missing() {
	local f=$1 want
	shift
	for want in "$@"; do
		grep -qxF -- "$want" "$f" || echo "# missing: $want"
	done
}

run_kind() {
	local kind=$1 mode=fastcgi r got out i pids left pid before ndir spid

	case $kind in
	*-cgi) mode=cgi ;;
	esac

	# a) Lines arrive as they are written.
	got=$(stream_order "$(e2e_url push-stream)" "inc-$kind")
	if [ "$got" = "streamed end" ]; then
		ok "$kind: response lines arrive as they are written, not buffered"
	else
		nok "$kind: response lines arrive as they are written, not buffered (got: $got)"
	fi

	# b) Each route, its mode, the settings and the request headers.
	for r in $E2E_RESPONDERS; do
		out="$tmp/env-$kind-$r"
		curl -s --max-time "$WAIT" -o "$out" \
		    -H 'Last-Event-ID: 42' -H 'If-None-Match: "7"' \
		    -H 'Authorization: Bearer tok-e2e' \
		    -H 'Remote-User: mallory' \
		    "$(e2e_url "$r")?lines=1&ms=0"
		got=$(missing "$out" "mode=$mode" \
		    "PUSHCGI_DB=$PUSHCGI_DB" "PUSHCGI_CONF=$PUSHCGI_CONF" \
		    "REQUEST_METHOD=GET" "QUERY_STRING=lines=1&ms=0" \
		    "SCRIPT_NAME=/cgi-bin/$r" "HTTP_LAST_EVENT_ID=42" \
		    'HTTP_IF_NONE_MATCH="7"' \
		    "HTTP_AUTHORIZATION=Bearer tok-e2e" \
		    "REMOTE_USER=(unset)" "end")
		if [ -z "$got" ]; then
			ok "$kind: $r runs as $mode with PUSHCGI_DB, PUSHCGI_CONF, Last-Event-ID, If-None-Match and Authorization"
		else
			nok "$kind: $r runs as $mode with PUSHCGI_DB, PUSHCGI_CONF, Last-Event-ID, If-None-Match and Authorization"
			echo "$got"
			sed 's/^/# got: /' "$out" | head -n 20
		fi
	done

	# c) Request bodies arrive intact.
	out="$tmp/post-$kind"
	rm -f "$M/post-$kind.body"
	curl -s --max-time "$WAIT" -o "$out" \
	    -H 'Content-Type: application/octet-stream' \
	    --data-binary @"$tmp/post.bin" \
	    "$(e2e_url push-publish)?lines=1&ms=0&mark=post-$kind"
	got=$(missing "$out" "REQUEST_METHOD=POST" \
	    "CONTENT_LENGTH=$BODY_BYTES" \
	    "CONTENT_TYPE=application/octet-stream" "body=$BODY_BYTES" "end")
	if [ -z "$got" ] && cmp -s "$tmp/post.bin" "$M/post-$kind.body"; then
		ok "$kind: a 1 MiB binary POST body arrives intact"
	else
		nok "$kind: a 1 MiB binary POST body arrives intact"
		echo "$got"
		sed 's/^/# got: /' "$out" | head -n 20
	fi
	out="$tmp/put-$kind"
	curl -s --max-time "$WAIT" -o "$out" -T "$tmp/put.bin" \
	    "$(e2e_url push-publish)?lines=1&ms=0&mark=put-$kind"
	got=$(missing "$out" "REQUEST_METHOD=PUT" \
	    "CONTENT_LENGTH=$(wc -c <"$tmp/put.bin")" "end")
	if [ -z "$got" ] && cmp -s "$tmp/put.bin" "$M/put-$kind.body"; then
		ok "$kind: a PUT body arrives intact"
	else
		nok "$kind: a PUT body arrives intact"
		echo "$got"
	fi

	# f) A long silence (in the background while d) runs).
	if [ "${SERVERS_SLOW:-0}" = 1 ]; then
		curl -sN --max-time $((SILENT + WAIT)) -o "$tmp/silent" \
		    "$(e2e_url push-poll)?lines=1&ms=$((SILENT * 1000))" &
		spid=$!
		curls+=($spid)
	fi

	# d) NCONC streams at once: each sends lines until its stop file
	# appears, so all of them must be open together before any ends.
	pids=()
	for ((i = 0; i < NCONC; i++)); do
		rm -f "$M/c$i-$kind.stop" "$M/c$i-$kind.done"
		curl -sN --max-time $((WAIT * 3)) -o "$tmp/c$i" \
		    "$(e2e_url push-stream)?lines=0&ms=200&mark=c$i-$kind" &
		pids+=($!)
		curls+=($!)
	done
	left=$NCONC
	for ((i = 0; i < WAIT * 10 && left > 0; i++)); do
		left=0
		for ((r = 0; r < NCONC; r++)); do
			grep -q '^line 1$' "$tmp/c$r" 2>/dev/null || left=$((left + 1))
		done
		[ "$left" -gt 0 ] && sleep 0.1
	done
	for ((i = 0; i < NCONC; i++)); do
		: >"$M/c$i-$kind.stop"
	done
	wait "${pids[@]}" 2>/dev/null
	got=0
	for ((i = 0; i < NCONC; i++)); do
		[ -e "$M/c$i-$kind.done" ] && grep -q '^end$' "$tmp/c$i" &&
		    got=$((got + 1))
	done
	if [ "$left" -eq 0 ] && [ "$got" -eq "$NCONC" ]; then
		ok "$kind: $NCONC streams open at once, all complete"
	else
		nok "$kind: $NCONC streams open at once, all complete ($((NCONC - left)) were open together, $got completed)"
	fi

	if [ "${SERVERS_SLOW:-0}" = 1 ]; then
		wait "$spid"
		if grep -qx 'line 1' "$tmp/silent" && grep -qx end "$tmp/silent"
		then
			ok "$kind: a response silent for $SILENT s is not cut"
		else
			nok "$kind: a response silent for $SILENT s is not cut"
			tail -n 3 "$tmp/silent" | sed 's/^/# got: /'
		fi
	fi

	# e) Restart, then stop with streams open.
	if e2e_restart >"$tmp/restart.log" 2>&1 &&
	    curl -s --max-time "$WAIT" "$(e2e_url push-poll)?lines=1&ms=0" |
	    grep -qx end; then
		ok "$kind: restart"
	else
		nok "$kind: restart"
		sed 's/^/# /' "$tmp/restart.log"
		return
	fi
	pids=()
	for ((i = 0; i < NSTOP; i++)); do
		rm -f "$tmp/s$i"
		curl -sN --max-time $((WAIT * 3)) -o "$tmp/s$i" \
		    "$(e2e_url push-stream)?lines=0&ms=200&mark=s$i-$kind" &
		pids+=($!)
		curls+=($!)
	done
	for ((i = 0; i < NSTOP; i++)); do
		for ((r = 0; r < WAIT * 10; r++)); do
			grep -q '^line 1$' "$tmp/s$i" 2>/dev/null && break
			sleep 0.1
		done
	done
	before=$(e2e_procs | wc -l)
	ndir=$E2E_DIR
	e2e_stop 2>"$tmp/stop.log"
	left=$(probe_procs | tr '\n' ' ')
	for pid in "${pids[@]}"; do
		# The clients see their connection end (the probes have gone).
		for ((r = 0; r < WAIT * 10; r++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill "$pid" 2>/dev/null
	done
	wait "${pids[@]}" 2>/dev/null
	if [ "$before" -gt 0 ] && [ -z "$left" ] && [ ! -e "$ndir" ] &&
	    ! e2e_port_busy "$E2E_PORT"; then
		ok "$kind: stopping with $NSTOP streams open leaves no process, no folder, a free port"
	else
		nok "$kind: stopping with $NSTOP streams open leaves no process, no folder, a free port (processes before: $before, left: ${left:-none})"
	fi
	# The stop had to sweep up after the server: worth knowing, not a
	# failure of the configuration.
	grep -q . "$tmp/stop.log" && sed 's/^/# /' "$tmp/stop.log"
}

port=$(e2e_free_port "${SERVERS_PORT:-18400}")
for kind in ${SERVER_KINDS:-$(e2e_kinds)}; do
	port=$(e2e_free_port "$port")
	if ! e2e_start "$kind" "$port" >"$tmp/start.log" 2>&1; then
		nok "$kind: server starts"
		sed 's/^/# /' "$tmp/start.log"
		continue
	fi
	ok "$kind: server starts on port $port"
	run_kind "$kind"
	e2e_stop
	port=$((port + 1))
done

[ "$fails" -eq 0 ]
