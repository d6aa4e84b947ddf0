#!/usr/bin/env bash
# A log removed or replaced under running responders (lib/mlog.h, "A
# replaced log"), through real web servers.
#
# For each server kind that tests/e2e/lib.sh can start, with these
# subscribers open on one channel: an SSE stream that stays connected
# throughout (s1), an SSE stream that is cut off before each replacement
# and comes back after it with Last-Event-ID (s2), and a long-poll client
# that loops on "next" and is waiting when the log goes (p1); while a
# publisher loop publishes through pushctl send, push-publish (HTTP POST)
# and plain SQL (sqlite3: INSERT INTO messages):
#
#   rm   the log, its -wal, -shm and -bell are removed; then either
#        "pushctl init" or simply the next publish makes a new one;
#   mv   a fresh log made elsewhere is moved over the path alone, as the
#        README says (the responders remove the old log's -wal and -shm
#        beside it).  No other program may open the log in that moment
#        (SQLite would read the old WAL into the new file), so the loop
#        holds all its publishes around the mv, and p1 its next poll (under
#        mod_fcgid a request may start a new responder process).
#
# Then: every publish that got a success (pushctl exit 0, HTTP 201, the
# sqlite3 shell's exit 0) reached every subscriber, exactly once (each
# message's data is unique), except, for s2, what went into the old log
# while it was away (that log is gone; counted and printed), and for p1
# the same when the poll that brought it the gap marker first was sent
# only after the replacement began (it was not open then; the README's
# "A replaced log": what it had not seen of the old log may be lost), or
# under apache-fcgid sent before and answered after it (mod_fcgid may
# hold a request until it has started a responder process for it);
# every other publish got exit 111 or a 5xx;
# each subscriber was told of each replacement (the gap marker with id 0).
# Plain SQL writers are not guarded by pushcgi (they do not check the
# path): the loop holds its SQL inserts while a replacement is under way,
# and uses them before and after.  Counts are printed.
#
# Environment as for make check: top_builddir, top_srcdir.  RELOG_KINDS
# limits the kinds (default: all of e2e_kinds); RELOG_KEEP=DIR keeps a
# copy of the run's folder (streams, polls, publishes) there.  Prints "ok - ..." /
# "not ok - ..." lines and exits non-zero on any failure.
set -u
B=$(cd "${top_builddir:-.}" && pwd)
S=$(cd "${top_srcdir:-$(dirname "$0")/../..}" && pwd)
. "$S/tests/e2e/lib.sh" || exit 99

PUSHCTL="$B/pushctl"
BASEPORT=${RELOG_PORT:-$((20000 + RANDOM % 20000))}
TOKEN=relog-e2e-token
NOLD=60      # messages in a log before it is replaced (above what the
             # new one reaches, so that s2's old cursor is beyond it)
NAFTER=9     # messages published after each replacement, 3 each way
WAIT=30      # seconds any single expectation may take

fails=0
tmp=$(mktemp -d "${TMPDIR:-/tmp}/relog-e2e.XXXXXX") || exit 99
chmod 0755 "$tmp"
mkdir "$tmp/log" "$tmp/fresh"
chmod 0777 "$tmp/fresh"
export PUSHCGI_DB="$tmp/log/push.db"
printf 'publish_token = %s\nheartbeat = 2\n' "$TOKEN" >"$tmp/push.conf"
chmod 0644 "$tmp/push.conf"
export PUSHCGI_CONF="$tmp/push.conf"
bgs=()
cleanup() {
	local p
	for p in "${bgs[@]}"; do
		kill "$p" 2>/dev/null
	done
	wait 2>/dev/null
	e2e_stop >/dev/null 2>&1
	[ -n "${RELOG_KEEP:-}" ] && cp -r "$tmp" "$RELOG_KEEP"; rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

for prog in "$PUSHCTL" "$B/cgi-bin/push-stream" "$B/cgi-bin/push-poll" \
    "$B/cgi-bin/push-publish"; do
	[ -x "$prog" ] || { echo "not ok - $prog is not built"; exit 1; }
done
command -v sqlite3 >/dev/null || { echo "not ok - no sqlite3 shell"; exit 1; }
command -v python3 >/dev/null || { echo "not ok - no python3"; exit 1; }
# A build under a private folder is out of the server user's reach: the
# test's publishers, which run as that user, use a copy.
e2e_identity || { echo "not ok - the servers' user"; exit 1; }
if ! e2e_as_user test -x "$PUSHCTL"; then
	mkdir -p "$tmp/bin" && cp "$PUSHCTL" "$tmp/bin/" &&
	    chmod -R a+rX "$tmp/bin" || { echo "not ok - copy pushctl"; exit 1; }
	PUSHCTL=$tmp/bin/pushctl
fi

ok() { echo "ok - $*"; }
nok() { echo "not ok - $*"; fails=$((fails + 1)); }

# The test's own publishers run as the server's user: a log they create
# is then one the responders can write (lib.sh, e2e_as_user).
as_user() { e2e_as_user "$@"; }
pushctl() { as_user "$PUSHCTL" "$@"; }
sql_as() { as_user sqlite3 -cmd ".timeout 5000" "$PUSHCGI_DB" "$@"; }

# The poll client and the checker.
cat >"$tmp/relog.py" <<'PY'
import json, os, sys, time, urllib.request, urllib.error

def poll(url, chan, since, out, stop, paused):
    """Long-poll in a loop from `since`, as push.js does: each answer's
    messages and gap go to `out` (one JSON line each), then "next".
    No new poll while `paused` exists (a file moved over the log): under
    mod_fcgid a request can start a new responder process, which opens
    the log, in the moment the README asks that no program does."""
    nxt = int(since)
    with open(out, 'a', buffering=1) as f:
        while not os.path.exists(stop):
            if os.path.exists(paused):
                time.sleep(0.05)
                continue
            sent = time.time()
            u = '%s?channel=%s&since=%d&timeout=5&_=%d' % (
                url, chan, nxt, sent * 1000)
            try:
                with urllib.request.urlopen(u, timeout=30) as r:
                    a = json.loads(r.read())
            except (urllib.error.URLError, OSError, ValueError) as e:
                f.write(json.dumps({'error': str(e)}) + '\n')
                time.sleep(0.2)
                continue
            f.write(json.dumps({'sent': sent, 'got': time.time()}) + '\n')
            if 'gap' in a:
                f.write(json.dumps({'gap': a['gap']}) + '\n')
            for m in a['messages']:
                f.write(json.dumps({'id': m['id'], 'data': m['data']}) +
                        '\n')
            nxt = a['next']

def sse_events(path):
    """(kind, id, data) of each event of an SSE body."""
    try:
        text = open(path, 'rb').read().decode('utf-8', 'replace')
    except FileNotFoundError:
        return []
    evs = []
    for block in text.replace('\r\n', '\n').split('\n\n'):
        ev, eid, data = 'message', None, []
        for line in block.split('\n'):
            if line.startswith('event: '):
                ev = line[7:]
            elif line.startswith('id: '):
                eid = line[4:]
            elif line.startswith('data: '):
                data.append(line[6:])
        if data:
            evs.append((ev, eid, '\n'.join(data)))
    return evs

def received(kind, files, came_back=None):
    """Messages (data, in order) and resets seen by one subscriber.  For a
    poll client, came_back (a list) gets the number of each reset that
    came first in the answer to a poll sent after that replacement had
    begun (the times in replaced.N, beside the poll's record); with
    RELOG_QUEUED=1 in the environment, also to one sent before it and
    answered after: the server may have held that request back until it
    started a responder process for it, which never had the old log."""
    queued = os.environ.get('RELOG_QUEUED') == '1'

    msgs, resets = [], 0
    for path in files:
        if kind == 'poll':
            sent, got, first = 0.0, 0.0, False
            for line in open(path):
                j = json.loads(line)
                if 'sent' in j:
                    sent, got, first = j['sent'], j['got'], True
                    continue
                if j.get('gap') == 0:
                    resets += 1
                    at = os.path.join(os.path.dirname(path),
                                      'replaced.%d' % resets)
                    if (first and came_back is not None and
                            os.path.exists(at)):
                        began = float(open(at).read())
                        if sent > began or (queued and got > began):
                            came_back.append(resets)
                elif 'data' in j:
                    msgs.append(j['data'])
                first = False
        else:
            for ev, eid, data in sse_events(path):
                if ev == 'gap' and data == '0':
                    resets += 1
                elif ev == 'message':
                    msgs.append(data)
    return msgs, resets

def check(published, want_resets, final, *subs):
    """Exit 0 when every subscriber has every successful publish once
    and at least want_resets resets; else 1 (with final, say why)."""
    good = [l.split('\t')[1] for l in open(published).read().splitlines()
            if l.split('\t')[2] == 'ok']
    bad = 0
    for sub in subs:
        name, kind, files, excused = (sub.split(':', 3) + [''])[:4]
        came_back = []
        msgs, resets = received(kind, files.split(','), came_back)
        seen = set(msgs)
        skip = set(open(excused).read().split()) if excused else set()
        # A poll sent only after a replacement began was not open when
        # it happened: what went into the old log that the client had
        # not seen yet may be lost (README, "A replaced log").
        for n in came_back:
            skip |= set(open(os.path.join(os.path.dirname(published),
                                          'old.%d' % n)).read().split())
        missing = [d for d in good if d not in seen and d not in skip]
        lost = [d for d in good if d not in seen and d in skip]
        twice = sorted(set(d for d in msgs if msgs.count(d) > 1))
        if missing or twice or resets < int(want_resets):
            bad = 1
            if final == '1':
                print('%s: %d messages, %d missing (%s), %d twice (%s), '
                      '%d resets (want %s)' % (
                          name, len(msgs), len(missing),
                          ' '.join(missing[:5]), len(twice),
                          ' '.join(twice[:5]), resets, want_resets),
                      file=sys.stderr)
        elif final == '1':
            print('%s: %d messages (%d successful publishes%s), %d resets'
                  % (name, len(msgs), len(good), (', %d of them into a '
                     'log removed while it was away' % len(lost))
                  if lost else '', resets), file=sys.stderr)
    sys.exit(bad)

if __name__ == '__main__':
    {'poll': poll, 'check': check}[sys.argv[1]](*sys.argv[2:])
PY

# --- publishing --------------------------------------------------------------

# One publish, recorded in $tmp/published as "WAY<TAB>DATA<TAB>RESULT":
# ok (a success), fail (exit 111 or a 5xx, what a replaced log may give)
# or other:CODE (anything else, a bug).
publish() { # $1 way (ctl|http|sql), $2 data
	local code res
	case $1 in
	ctl)
		pushctl send -q "$ch" "$2" >/dev/null 2>>"$tmp/ctl.err"
		code=$?
		case $code in 0) res=ok ;; 111) res=fail ;; *) res=other:$code ;; esac
		;;
	http)
		code=$(curl -s -o /dev/null -w '%{http_code}' -X POST \
		    -H "Authorization: Bearer $TOKEN" --data-binary "$2" \
		    "$(e2e_url push-publish)?channel=$ch")
		case $code in 201) res=ok ;; 5??) res=fail ;; *) res=other:$code ;; esac
		;;
	sql)
		as_user sqlite3 -cmd ".timeout 5000" "$PUSHCGI_DB" \
		    "INSERT INTO messages(channel, data) VALUES('$ch', '$2')" \
		    >/dev/null 2>>"$tmp/sql.err"
		code=$?
		# A failed plain insert is no pushcgi answer: only its
		# success is counted.
		[ $code -eq 0 ] && res=ok || res=sqlfail
		;;
	esac
	printf '%s\t%s\t%s\n' "$1" "$2" "$res" >>"$tmp/published"
}

# Publish n messages, the three ways in turn: $1 prefix, $2 count.
publish_n() {
	local i ways=(ctl http sql)
	for ((i = 0; i < $2; i++)); do
		publish "${ways[i % 3]}" "$1-$i"
	done
}

# The loop that goes on while the log is replaced; plain SQL waits
# while $tmp/replacing exists (see the top), everything while
# $tmp/paused does (a file moved over the log, see replace_log).
publisher_loop() { # $1 prefix
	local i=0 ways=(ctl http sql) w
	while [ ! -e "$tmp/stop-pub" ]; do
		if [ -e "$tmp/paused" ]; then
			sleep 0.05
			continue
		fi
		w=${ways[i % 3]}
		if [ "$w" = sql ] && [ -e "$tmp/replacing" ]; then
			w=ctl
		fi
		publish "$w" "$1-$i"
		i=$((i + 1))
		sleep 0.05
	done
}

# --- subscribers ---------------------------------------------------------------

sse_start() { # $1 file, rest: curl arguments
	local f=$1
	shift
	curl -sN -o "$tmp/$f" -D "$tmp/$f.hdr" "$@" \
	    "$(e2e_url push-stream)?channel=$ch&format=sse" &
	bgs+=($!)
	eval "pid_${f//[.-]/_}=$!"
}
sse_ready() { # $1 file
	local i
	for ((i = 0; i < WAIT * 10; i++)); do
		grep -q '^event: stream' "$tmp/$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
sse_stop() { # $1 file
	local p
	p=$(eval "echo \$pid_${1//[.-]/_}")
	kill "$p" 2>/dev/null
	wait "$p" 2>/dev/null
}
sse_last_id() { # $1 file
	sed -n 's/^id: //p' "$tmp/$1" | tail -n 1
}

# Wait until every subscriber has every successful publish, each once,
# and at least $1 resets; then print the counts.
wait_all() { # $1 resets, $2 description
	local i subs
	subs=("s1:sse:$tmp/s1" "s2:sse:$s2files:$tmp/s2.excused"
	    "p1:poll:$tmp/p1")
	for ((i = 0; i < WAIT * 2; i++)); do
		python3 "$tmp/relog.py" check "$tmp/published" "$1" 0 \
		    "${subs[@]}" && break
		sleep 0.5
	done
	if python3 "$tmp/relog.py" check "$tmp/published" "$1" 1 \
	    "${subs[@]}" 2>"$tmp/check.out"; then
		ok "$kind: $2: every successful publish reached s1, s2 and p1 once"
	else
		nok "$kind: $2: every successful publish reached s1, s2 and p1 once"
	fi
	sed "s/^/# $kind: /" "$tmp/check.out"
}

counts() { # print the publish outcomes so far
	local w
	for w in ctl http sql; do
		printf '# %s: %s: %s ok, %s failed (111/5xx), %s other\n' \
		    "$kind" "$w" \
		    "$(grep -c "^$w	.*	ok\$" "$tmp/published")" \
		    "$(grep -c "^$w	.*	fail\$" "$tmp/published")" \
		    "$(grep -c "^$w	.*	other" "$tmp/published")"
	done
}

# One replacement: $1 rm|mv, $2 (rm only) init|publish.
replace_log() {
	local f
	sse_stop "s2.$s2n"
	: >"$tmp/replacing"
	publisher_loop "$1$2-during" &
	bgs+=($!)
	lpid=$!
	sleep 0.3
	nrep=$((nrep + 1))
	case $1 in
	rm)
		# When the replacement began, for p1 (see relog.py check).
		date +%s.%N >"$tmp/replaced.$nrep"
		rm -f "$PUSHCGI_DB" "$PUSHCGI_DB-wal" "$PUSHCGI_DB-shm" \
		    "$PUSHCGI_DB-bell"
		[ "$2" = init ] && as_user env PUSHCGI_DB="$PUSHCGI_DB" \
		    "$PUSHCTL" init >/dev/null
		;;
	mv)
		# As the README says: a closed fresh log, moved over the
		# path alone; the running responders remove the old log's
		# -wal and -shm.  No other program may open the log in that
		# moment (SQLite would read the old WAL into the new file):
		# the loop holds its publishes for it.
		rm -f "$tmp/fresh/push.db"*
		as_user env PUSHCGI_DB="$tmp/fresh/push.db" "$PUSHCTL" init \
		    >/dev/null
		: >"$tmp/paused"
		sleep 0.2
		date +%s.%N >"$tmp/replaced.$nrep"
		mv "$tmp/fresh/push.db" "$PUSHCGI_DB"
		sleep 0.5
		rm -f "$tmp/paused" "$tmp/fresh/push.db"*
		;;
	esac
	sleep 0.5
	rm -f "$tmp/replacing"
	sleep 0.3
	: >"$tmp/stop-pub"
	wait "$lpid"
	rm -f "$tmp/stop-pub"
	# What the loop published into the old log after s2 left cannot
	# reach s2: that log is gone.  The rest is in the new one.
	sql_as "SELECT CAST(data AS TEXT) FROM messages" >"$tmp/inlog"
	awk -F '\t' -v p="$1$2-during-" 'index($2, p) == 1 && $3 == "ok" {print $2}' \
	    "$tmp/published" | grep -vxF -f "$tmp/inlog" >"$tmp/old.$nrep"
	cat "$tmp/old.$nrep" >>"$tmp/s2.excused"
	# s2 comes back with the old log's last id it saw.
	f=s2.$((++s2n))
	sse_start "$f" -H "Last-Event-ID: $(sse_last_id "s2.$((s2n - 1))")"
	s2files="$s2files,$tmp/$f"
	sse_ready "$f" || nok "$kind: s2 reconnected"
	publish_n "$1$2-after" "$NAFTER"
}

# --- the kinds -------------------------------------------------------------------

kinds=${RELOG_KINDS:-$(e2e_kinds)}
port=$BASEPORT
for kind in $kinds; do
	port=$(e2e_free_port "$port") || { nok "$kind: no free port"; continue; }
	rm -rf "$tmp/log"/* "$tmp"/s1* "$tmp"/s2* "$tmp/p1" "$tmp/published" \
	    "$tmp"/replaced.* "$tmp"/old.*
	nrep=0
	# mod_fcgid holds a request until a responder process is free, and
	# starts one for it when none is: a poll sent before a replacement
	# may reach a process started after it (see relog.py received).
	RELOG_QUEUED=0
	[ "$kind" = apache-fcgid ] && RELOG_QUEUED=1
	export RELOG_QUEUED
	: >"$tmp/published"
	: >"$tmp/s2.excused"
	"$PUSHCTL" init >/dev/null || { nok "$kind: pushctl init"; continue; }
	if ! e2e_start "$kind" "$port" >"$tmp/start.log" 2>&1; then
		nok "$kind: server starts"
		sed 's/^/# /' "$tmp/start.log"
		continue
	fi
	port=$((port + 1))
	ch="relog-$kind"
	sse_start s1
	s2n=0
	sse_start s2.0
	s2files="$tmp/s2.0"
	if ! sse_ready s1 || ! sse_ready s2.0; then
		nok "$kind: streams start"
		e2e_log | tail -n 20 | sed 's/^/# /'
		e2e_stop >/dev/null 2>&1
		continue
	fi
	# p1 starts from the log's end before the first publish.  Read it
	# here, not in the background command's arguments: those are
	# expanded in the background child, which then races publish_n
	# below, and under load its since= could already count old-0.
	since=$(sqlite3 -cmd ".timeout 5000" "$PUSHCGI_DB" "SELECT \
	    coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'messages'")
	if [ -z "$since" ]; then
		nok "$kind: the log's last id"
		e2e_stop >/dev/null 2>&1
		continue
	fi
	python3 "$tmp/relog.py" poll "$(e2e_url push-poll)" "$ch" "$since" \
	    "$tmp/p1" "$tmp/stop-poll" "$tmp/paused" &
	bgs+=($!)
	ppid=$!
	publish_n old "$NOLD"
	wait_all 0 "before any replacement"

	replace_log rm init
	wait_all 1 "log removed, pushctl init"
	# Again, now with the old log far shorter than the s2 cursor:
	# the next publish makes the new log.
	publish_n old2 "$NOLD"
	wait_all 1 "more messages in the new log"
	replace_log rm publish
	wait_all 2 "log removed, made by the next publish"
	publish_n old3 "$NOLD"
	wait_all 2 "more messages in the second new log"
	replace_log mv ""
	wait_all 3 "a fresh log moved over the path"
	counts
	if grep -q '	other' "$tmp/published"; then
		nok "$kind: every failed publish got exit 111 or a 5xx"
		grep '	other' "$tmp/published" | head -n 5 | sed 's/^/# /'
	else
		ok "$kind: every failed publish got exit 111 or a 5xx"
	fi
	: >"$tmp/stop-poll"
	sse_stop s1
	sse_stop "s2.$s2n"
	kill "$ppid" 2>/dev/null
	wait "$ppid" 2>/dev/null
	rm -f "$tmp/stop-poll"
	if grep -q 'E30[0-9]\|E31[0-9]' <(e2e_log); then
		grep 'E30[0-9]\|E31[0-9]' <(e2e_log) | head -n 5 | sed 's/^/# /'
	fi
	e2e_stop >/dev/null 2>&1
done
[ $fails -eq 0 ]
