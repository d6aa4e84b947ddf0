#!/usr/bin/env bash
# Request bodies and an unusable log, through real web servers.
#
# For each server kind that tests/e2e/lib.sh can start:
#
# 1. Chunked bodies (Transfer-Encoding: chunked, no Content-Length, as
#    curl -T - sends a pipe): a short text, all 256 byte values, and a
#    body of exactly max_data are stored byte for byte (201); one byte
#    more is a 413.  A Content-Length body of all 256 byte values too.
# 2. Oversized bodies (max_data + 1, 8 MiB, 64 MiB; with Content-Length
#    and chunked): the client gets push-publish's own 413 with its
#    one-line reason (Apache's CGI modules drop the connection of a
#    program that does not take the whole body), and nothing is stored.
#    A body sent to push-stream or push-poll (bodiless GETs, and a POST
#    they refuse) gets their own answer the same way.
# 3. A log the server's user cannot write: the log file read-only
#    (0444), its -wal and -shm files read-only (0444, a live connection
#    of root's keeps them), its folder read-only with no -wal/-shm in it.
#    push-publish, and push-stream / push-poll (which register the
#    subscriber), answer 503 with Retry-After and one line naming the
#    file at fault and the cause; the log is left unchanged.  The
#    responders are started again after each change, since a FastCGI
#    process keeps the files it opened writable.  Then writable again:
#    201.
# And once (lighttpd-fastcgi, root only, where tmpfs can be mounted): a
# full disk is a 503 naming the log and the full file system.
#
# Environment as for make check: top_builddir, top_srcdir.  BODIES_KINDS
# limits the kinds (default: all of e2e_kinds).  Prints "ok - ..." /
# "not ok - ..." lines and exits non-zero on any failure.
set -u
B=$(cd "${top_builddir:-.}" && pwd)
S=$(cd "${top_srcdir:-$(dirname "$0")/../..}" && pwd)
. "$S/tests/e2e/lib.sh" || exit 99

PUSHCTL="$B/pushctl"
BASEPORT=${BODIES_PORT:-$((20000 + RANDOM % 20000))}
WAIT=60                 # seconds any single request may take
TOKEN=e2e-bodies-token-0123456789
MAXDATA=1048576         # the default max_data, said aloud
MIB=1048576

fails=0
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bodies-e2e.XXXXXX") || exit 99
# The log lives in a folder of its own, which the tests make read-only.
chmod 0755 "$tmp"
mkdir "$tmp/log"
export PUSHCGI_DB="$tmp/log/push.db" PUSHCGI_CONF="$tmp/pushcgi.conf"
holder=
cleanup() {
	[ -n "$holder" ] && kill "$holder" 2>/dev/null
	wait 2>/dev/null
	e2e_stop >/dev/null 2>&1
	mountpoint -q "$tmp/full" 2>/dev/null && umount "$tmp/full"
	chmod -R u+w "$tmp" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

for prog in "$PUSHCTL" "$B/cgi-bin/push-stream" "$B/cgi-bin/push-poll" \
    "$B/cgi-bin/push-publish"; do
	[ -x "$prog" ] || { echo "not ok - $prog is not built"; exit 1; }
done
command -v python3 >/dev/null || { echo "not ok - no python3"; exit 1; }
printf 'publish_token = %s\nmax_data = %s\n' "$TOKEN" "$MAXDATA" \
    >"$PUSHCGI_CONF"
chmod 0644 "$PUSHCGI_CONF"
"$PUSHCTL" init >/dev/null || { echo "not ok - pushctl init"; exit 1; }

# --- helpers ---------------------------------------------------------------

# A read of a copy of the log: nothing SQLite does then (root's -wal
# and -shm files) can change what the responders find.
sql() {
	local f
	rm -f "$tmp/copy.db" "$tmp/copy.db-wal" "$tmp/copy.db-shm"
	for f in "" -wal; do
		[ -f "$PUSHCGI_DB$f" ] && cp "$PUSHCGI_DB$f" "$tmp/copy.db$f"
	done
	python3 -c 'import sqlite3, sys
con = sqlite3.connect(sys.argv[1], timeout=5)
for row in con.execute(sys.argv[2]):
    print("|".join(str(c) for c in row))' "$tmp/copy.db" "$1"
}
rows() { sql "SELECT count(*) FROM messages"; }
# 0 if message $1's data is file $2's bytes, and its type is $3 (if given).
stored_is() {
	sql "SELECT count(*) FROM messages" >/dev/null
	python3 -c 'import sqlite3, sys
con = sqlite3.connect(sys.argv[1], timeout=5)
row = con.execute("SELECT type, data FROM messages WHERE id = ?", (int(sys.argv[2]),)).fetchone()
want = open(sys.argv[3], "rb").read()
if row is None or bytes(row[1]) != want or (len(sys.argv) > 4 and row[0] != sys.argv[4]):
    print("# message %s: %r bytes, want %d" % (sys.argv[2], None if row is None else len(row[1]), len(want)))
    sys.exit(1)' "$tmp/copy.db" "$@"
}

# req NAME [curl arguments...]: one request; $tmp/NAME.body, .hdr, and
# "STATUS CURL_EXIT" in $tmp/NAME.code.
req() {
	local name=$1 rc
	shift
	curl -s --max-time "$WAIT" -o "$tmp/$name.body" -D "$tmp/$name.hdr" \
	    -w '%{http_code}' "$@" >"$tmp/$name.code" 2>/dev/null
	rc=$?
	echo " $rc" >>"$tmp/$name.code"
}
code() { tr -d '\n' <"$tmp/$1.code"; }
is_code() { # $1 name, $2 wanted status (curl must have ended well)
	[ "$(code "$1")" = "$2 0" ] && return 0
	echo "# $1: status and curl exit '$(code "$1")', want '$2 0':" \
	    "$(head -c 300 "$tmp/$1.body")"
	return 1
}
hdr() { # $1 name, $2 header: its value
	sed -n "s/^$2:[[:space:]]*//Ip" "$tmp/$1.hdr" | tr -d '\r' | head -n 1
}
json() { # $1 name, $2 Python expression on the body as j
	python3 -c 'import json, sys
j = json.load(open(sys.argv[1]))
print(eval(sys.argv[2]))' "$tmp/$1.body" "$2" 2>/dev/null
}
# 0 if body $1 is one line that contains every further argument.
one_line() {
	local name=$1 s
	shift
	if [ "$(wc -l <"$tmp/$name.body")" != 1 ]; then
		echo "# $name: not one line: $(head -c 300 "$tmp/$name.body")"
		return 1
	fi
	for s in "$@"; do
		grep -qF -- "$s" "$tmp/$name.body" && continue
		echo "# $name: no '$s' in: $(cat "$tmp/$name.body")"
		return 1
	done
}
publish() { # NAME [curl arguments...]: POST to push-publish?channel=body
	local name=$1
	shift
	req "$name" -X POST -H "X-Push-Token: $TOKEN" "$@" \
	    "$(e2e_url push-publish)?channel=body"
}
# Start the responders again (a FastCGI process keeps what it opened).
restart() {
	e2e_restart >"$tmp/start.log" 2>&1 && return 0
	sed 's/^/# /' "$tmp/start.log"
	return 1
}

# Bodies: text, every byte value, max_data exactly, and larger ones.
printf 'chunked body' >"$tmp/text"
python3 -c 'import sys; sys.stdout.buffer.write(bytes(range(256)))' \
    >"$tmp/all256"
head -c "$MAXDATA" /dev/urandom >"$tmp/max"
head -c $((MAXDATA + 1)) /dev/urandom >"$tmp/max1"
head -c $((8 * MIB)) /dev/urandom >"$tmp/8m"
head -c $((64 * MIB)) /dev/urandom >"$tmp/64m"

# --- 1 and 2: bodies, per kind ---------------------------------------------

run_bodies() {
	local kind=$1 n id f te
	n=$(rows)
	publish c1 -H 'Transfer-Encoding: chunked' --data-binary @"$tmp/text"
	check "$kind: a chunked body: 201" is_code c1 201
	check "$kind: a chunked body is stored byte for byte" \
	    stored_is "$(json c1 'j["id"]')" "$tmp/text"
	publish c2 -H 'Transfer-Encoding: chunked' \
	    -H 'Content-Type: application/octet-stream' \
	    --data-binary @"$tmp/all256"
	check "$kind: a chunked body of all 256 byte values is stored byte for byte" \
	    eval 'is_code c2 201 && stored_is "$(json c2 "j[\"id\"]")" \
	    "$tmp/all256" application/octet-stream'
	publish c3 -H 'Content-Type: application/octet-stream' \
	    --data-binary @"$tmp/all256"
	check "$kind: all 256 byte values with Content-Length, byte for byte" \
	    eval 'is_code c3 201 && stored_is "$(json c3 "j[\"id\"]")" \
	    "$tmp/all256"'
	# curl -T - reads a pipe: chunked, its length unknown to curl.
	req c4 -T - -H "X-Push-Token: $TOKEN" -H 'Content-Type: image/x-test' \
	    "$(e2e_url push-publish)?channel=body" <"$tmp/max"
	check "$kind: exactly max_data from a pipe (curl -T -, chunked): 201, byte for byte" \
	    eval 'is_code c4 201 && stored_is "$(json c4 "j[\"id\"]")" \
	    "$tmp/max" image/x-test'
	publish c5 --data-binary @"$tmp/max"
	check "$kind: exactly max_data with Content-Length: 201, byte for byte" \
	    eval 'is_code c5 201 && stored_is "$(json c5 "j[\"id\"]")" "$tmp/max"'
	check "$kind: five messages stored" [ "$(rows)" = $((n + 5)) ]

	n=$(rows)
	for f in max1 8m 64m; do
		for te in length chunked; do
			if [ "$te" = chunked ]; then
				publish "o-$f-$te" -H 'Transfer-Encoding: chunked' \
				    --data-binary @"$tmp/$f"
			else
				publish "o-$f-$te" --data-binary @"$tmp/$f"
			fi
			check "$kind: $f bytes ($te): 413 with the reason" eval \
			    'is_code "o-$f-$te" 413 && one_line "o-$f-$te" \
			    "larger than $MAXDATA bytes"'
		done
	done
	check "$kind: oversized bodies stored nothing" [ "$(rows)" = "$n" ]

	# Bodies to the responders that take none.
	req s1 --data-binary @"$tmp/8m" "$(e2e_url push-stream)?channel=body"
	check "$kind: 8 MiB POSTed to push-stream: its 405 with the reason" \
	    eval 'is_code s1 405 && one_line s1 "only GET and HEAD"'
	req p1 -H 'Transfer-Encoding: chunked' --data-binary @"$tmp/8m" \
	    "$(e2e_url push-poll)?channel=body"
	check "$kind: 8 MiB POSTed chunked to push-poll: its 405 with the reason" \
	    eval 'is_code p1 405 && one_line p1 "only GET"'
	case $kind in
	lighttpd-*)
		# lighttpd refuses a GET with a body itself (400).
		echo "# $kind: GETs with a body not sent (lighttpd refuses them)"
		return ;;
	esac
	req s2 -X GET --data-binary @"$tmp/8m" \
	    "$(e2e_url push-stream)?channel=body&format=sse"
	check "$kind: a GET to push-stream with an 8 MiB body: 413 with the reason" \
	    eval 'is_code s2 413 && one_line s2 "larger than 65536 bytes"'
	req p2 -X GET --data-binary @"$tmp/max1" \
	    "$(e2e_url push-poll)?channel=body&since=0"
	check "$kind: a GET to push-poll with a 1 MiB body: 413 with the reason" \
	    eval 'is_code p2 413 && one_line p2 "larger than 65536 bytes"'
	req p3 -X GET -H 'Transfer-Encoding: chunked' --data-binary 'x' \
	    "$(e2e_url push-poll)?channel=body&since=0&timeout=1"
	check "$kind: a GET to push-poll with a small chunked body is served (200)" \
	    is_code p3 200
}

# --- 3: a log that cannot be written -----------------------------------------

# sums: a fingerprint of the log's files (contents, not times; an empty
# -wal is no change).
sums() {
	(cd "$(dirname "$PUSHCGI_DB")" && for f in push.db push.db-wal; do
		[ -s "$f" ] && cksum <"$f"
	done)
}

# expect_503 KIND WHAT FILE CAUSE: publish, stream and poll each answer
# 503 with Retry-After and one line naming FILE and CAUSE; nothing is
# written.
expect_503() {
	local kind=$1 what=$2 file=$3 cause=$4 before n
	n=$(rows)
	before=$(sums)
	publish u1 --data-binary 'not stored'
	check "$kind: $what: publish is a 503" is_code u1 503
	check "$kind: $what: the 503 carries Retry-After" [ -n "$(hdr u1 Retry-After)" ]
	check "$kind: $what: one line naming $file and the cause" \
	    one_line u1 "$file" "$cause"
	publish u2 -H 'Transfer-Encoding: chunked' --data-binary @"$tmp/all256"
	check "$kind: $what: a chunked publish is a 503 too" is_code u2 503
	req u3 --max-time 10 "$(e2e_url push-stream)?channel=body&format=sse"
	check "$kind: $what: push-stream (it registers the stream): 503 naming $file" \
	    eval 'is_code u3 503 && [ -n "$(hdr u3 Retry-After)" ] &&
	    one_line u3 "$file" "$cause"'
	# A poll registers once it has waited POLL_REGISTER_MS (1 s).
	req u4 --max-time 20 "$(e2e_url push-poll)?channel=body&timeout=5"
	check "$kind: $what: push-poll (it registers the poll): 503 naming $file" \
	    eval 'is_code u4 503 && [ -n "$(hdr u4 Retry-After)" ] &&
	    one_line u4 "$file" "$cause"'
	check "$kind: $what: the log is unchanged" \
	    eval '[ "$(rows)" = "$n" ] && [ "$(sums)" = "$before" ]'
	# lighttpd's mod_cgi passes no CGI program's stderr to its error log.
	if [ "$kind" = lighttpd-cgi ]; then
		echo "# $kind: the error log line not looked for (lighttpd drops CGI stderr)"
	else
		check "$kind: $what: the error log has the line" \
		    eval 'e2e_log | grep -q "503 .*$file"'
	fi
}

# Make the FastCGI responders open the log afresh (a FastCGI process
# keeps the files it opened): end them; the servers that started them
# start new ones at the next request, the spawn-fcgi'd ones are started
# again here.  CGI responders open it for every request anyway.
fresh_responders() {
	local i
	case $E2E_KIND in
	apache-cgi|lighttpd-cgi) return 0 ;;
	esac
	end_responders
	# What an ended responder could not remove (a read-only folder)
	# goes now, and a responder lighttpd started again meanwhile (it
	# may have opened those files) goes too: whatever starts from now
	# on finds the folder as it is.
	rm -f "$PUSHCGI_DB-wal" "$PUSHCGI_DB-shm"
	end_responders
	case $E2E_KIND in
	apache-proxy-fcgi|nginx)
		rm -f "$E2E_DIR"/push-*.sock
		e2e_spawn || return 1 ;;
	lighttpd-fastcgi)
		# lighttpd starts them again by itself, within seconds;
		# until then it answers 503 itself.
		for i in $(seq 100); do
			[ "$(count_responders)" -ge 3 ] && break
			sleep 0.1
		done ;;
	esac
}
count_responders() {
	local p n=0
	for p in $(e2e_procs); do
		case "$(cat "/proc/$p/comm" 2>/dev/null)" in
		push-stream|push-poll|push-publish) n=$((n + 1)) ;;
		esac
	done
	echo "$n"
}
# SIGTERM every responder of the running server and wait for them.
end_responders() {
	local p i pids=()
	for p in $(e2e_procs); do
		case "$(cat "/proc/$p/comm" 2>/dev/null)" in
		push-stream|push-poll|push-publish) pids+=("$p") ;;
		esac
	done
	[ ${#pids[@]} -gt 0 ] || return 0
	kill -TERM "${pids[@]}" 2>/dev/null
	for p in "${pids[@]}"; do
		for i in $(seq 100); do
			e2e_alive "$p" || break
			sleep 0.1
		done
	done
}

run_unwritable() {
	local kind=$1 db=$PUSHCGI_DB
	# The log file read-only: SQLite then makes -wal and -shm so too.
	chmod 0444 "$db"
	if restart; then
		expect_503 "$kind" "a read-only log file" "$db:" \
		    "not writable by $E2E_RUN_USER; owner $E2E_RUN_USER, mode 0444"
	else
		nok "$kind: restart with a read-only log"
	fi
	e2e_stop >/dev/null 2>&1
	chmod 0644 "$db"
	rm -f "$db-wal" "$db-shm"

	# The -shm file read-only, kept by a live connection of root's
	# (e2e_start gives it to the server's user, its mode kept; one of
	# root's own, 0644, is in tests/cli.sh).
	python3 -c 'import os, sqlite3, sys, time
con = sqlite3.connect(sys.argv[1])
con.execute("SELECT count(*) FROM messages").fetchone()
open(sys.argv[2], "w").close()
while os.path.exists(sys.argv[2]):
    time.sleep(0.05)' "$db" "$tmp/holding" </dev/null >/dev/null 2>&1 &
	holder=$!
	for i in $(seq 100); do [ -e "$tmp/holding" ] && break; sleep 0.1; done
	chmod 0444 "$db-shm"
	if e2e_start "$kind" "$port" >"$tmp/start.log" 2>&1; then
		expect_503 "$kind" "a read-only -shm file" "$db-shm:" \
		    "not writable by $E2E_RUN_USER; owner $E2E_RUN_USER, mode 0444"
	else
		nok "$kind: start with a read-only -shm file"
		sed 's/^/# /' "$tmp/start.log"
	fi
	e2e_stop >/dev/null 2>&1
	rm -f "$tmp/holding"
	wait "$holder"
	holder=
	rm -f "$db-wal" "$db-shm"

	# The folder read-only, no -wal/-shm in it: SQLite cannot open the
	# log at all.  (e2e_start refuses such a folder: made so after.)
	e2e_start "$kind" "$port" >"$tmp/start.log" 2>&1 || {
		nok "$kind: start for the read-only folder"; return; }
	chmod 0555 "$tmp/log"
	fresh_responders
	expect_503 "$kind" "a read-only folder" "folder $tmp/log:" \
	    "not writable by $E2E_RUN_USER"
	chmod 0755 "$tmp/log"
	fresh_responders
	publish w1 --data-binary 'writable again'
	check "$kind: writable again: 201" is_code w1 201
}

# A full disk: the log on a small tmpfs, filled up.
run_full() {
	local kind=$1 saved=$PUSHCGI_DB n
	mkdir "$tmp/full"
	if [ "$(id -u)" -ne 0 ] ||
	    ! mount -t tmpfs -o size=2m,mode=0755 tmpfs "$tmp/full" 2>/dev/null
	then
		echo "# not run (needs root and a tmpfs mount): a full disk"
		return
	fi
	e2e_stop >/dev/null 2>&1
	export PUSHCGI_DB="$tmp/full/push.db"
	"$PUSHCTL" init >/dev/null && e2e_share_db &&
	    e2e_start "$kind" "$port" >"$tmp/start.log" 2>&1 || {
		nok "$kind: start with the log on a tmpfs"
		sed 's/^/# /' "$tmp/start.log"
		PUSHCGI_DB=$saved
		return
	}
	publish f0 --data-binary 'before the disk is full'
	check "$kind: log on a tmpfs: 201" is_code f0 201
	n=$(rows)
	head -c $((4 * MIB)) /dev/zero >"$tmp/full/filler" 2>/dev/null
	publish f1 --data-binary @"$tmp/max"
	check "$kind: a full disk: publish is a 503 with Retry-After" \
	    eval 'is_code f1 503 && [ -n "$(hdr f1 Retry-After)" ]'
	check "$kind: a full disk: one line naming the log and the cause" \
	    one_line f1 "$PUSHCGI_DB:" "no space left"
	check "$kind: a full disk: nothing stored" [ "$(rows)" = "$n" ]
	rm -f "$tmp/full/filler"
	publish f2 --data-binary 'after'
	check "$kind: space again: 201" is_code f2 201
	e2e_stop >/dev/null 2>&1
	umount "$tmp/full"
	PUSHCGI_DB=$saved
}

for kind in ${BODIES_KINDS:-$(e2e_kinds)}; do
	port=$(e2e_free_port "$BASEPORT") || { nok "$kind: a free port"; continue; }
	if ! e2e_start "$kind" "$port" >"$tmp/start.log" 2>&1; then
		nok "$kind: server starts"
		sed 's/^/# /' "$tmp/start.log"
		continue
	fi
	run_bodies "$kind"
	if [ "$(id -u)" -eq 0 ] && [ "$E2E_RUN_USER" != root ]; then
		run_unwritable "$kind"
	else
		echo "# not run (needs root, servers as another user): an unwritable log"
	fi
	[ "$kind" = "${BODIES_FULL_KIND:-lighttpd-fastcgi}" ] && run_full "$kind"
	check "$kind: no sanitizer report in the error log" \
	    eval '! e2e_log | grep -E "ERROR: (Address|Leak)Sanitizer|runtime error:"'
	e2e_log | grep -E -A12 "ERROR: (Address|Leak)Sanitizer|runtime error:" |
	    head -n 40 | sed 's/^/# /'
	e2e_stop >/dev/null 2>&1
done

[ "$fails" -eq 0 ]
