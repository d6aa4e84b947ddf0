#!/usr/bin/env bash
# The soak test: SSE clients that reconnect with Last-Event-ID through
# every server kind while everything around them is killed.
#
# For each server kind that tests/e2e/lib.sh can start, on a fresh log:
#
#   - 10 messages are published first; then SOAK_CLIENTS (100) SSE
#     clients of channels soak-a,soak-b (tests/e2e/soak sub, one process)
#     open their streams, half with since=0, half without a cursor (from
#     now on: their first "stream" event's id: line is their cursor).
#   - For SOAK_SECONDS (24) three publishers write: HTTP POSTs to
#     push-publish with the publish_token read from the config file
#     (tests/e2e/soak pub, ~20/s), `pushctl send` (~8/s; every fifth
#     message binary with a CR, delivered base64) and plain SQL from the
#     sqlite3 shell (~8/s; every fourth message two lines).  Each
#     records the ids of the publishes that were acknowledged (201 with
#     X-Push-Id, pushctl's printed id, last_insert_rowid()).
#   - Meanwhile every responder process of the server (push-stream,
#     push-publish, push-poll; never the web server itself) is SIGKILLed
#     every 2 s (rounds that a slow restart held up follow 1 s apart;
#     after the publishing time, more rounds 1 s apart, at most 8, while
#     a stream has been broken less than twice: one that waited out a
#     restart or a process slot under load may have been broken only
#     once), each publisher is SIGKILLed twice mid-run (and started
#     again), and the web server is restarted twice (e2e_restart, same
#     port).  mod_fcgid and lighttpd start their responders again
#     themselves, under CGI every stream is a process of its own; under
#     nginx and Apache with mod_proxy_fcgi the responders run as
#     tests/e2e/lib.sh starts them (E2E_FCGI): their supervisor must
#     start them again every time.
#   - Then the clients get the log's last id and have SOAK_DRAIN (20) s
#     to catch up.
#
# The log's final contents are the truth.  Checked per kind: every client
# holds every message after its start exactly once and in id order (lost,
# duplicated and reordered counted), with the data the log has; every
# acknowledged publish is in the log with its data; every client caught
# up; no gap was reported (retention is off) and the clients without a
# cursor started at the newest id; no stream went silent past the
# clients' heartbeat watchdog (2 * heartbeat + 2 s, as push.js; a request
# still waiting for its answer's headers after 10 s counts too, unless
# it waited across a restart: a stopping Apache holds new connections
# unanswered, and answers it has only begun without their first body
# bytes, until it is gone, ~10 s when mod_fcgid or mod_cgid has
# requests waiting; SOAK_TRACE=1 writes every client's steps to sub.log);
# and the faults did happen (responders killed, every
# stream broken at least twice, the restarts, the publisher kills).
# Each kind takes 30-60 s.
#
# Environment as for make check: top_builddir, top_srcdir.  SOAK_KINDS
# limits the kinds (default: all of e2e_kinds); SOAK_CLIENTS,
# SOAK_SECONDS, SOAK_DRAIN as above; SOAK_KEEP=1 keeps the folder with
# each kind's log, the clients' record (sub.out) and the publishers'.
# Prints "ok - ..." / "not ok - ..." lines and "#" lines with the counts,
# and exits non-zero on any failure.
set -u
B=$(cd "${top_builddir:-.}" && pwd)
S=$(cd "${top_srcdir:-$(dirname "$0")/../..}" && pwd)
. "$S/tests/e2e/lib.sh" || exit 99

PUSHCTL="$B/pushctl"
SOAK="$B/tests/e2e/soak"
BASEPORT=${SOAK_PORT:-$((20000 + RANDOM % 20000))}
NCLIENTS=${SOAK_CLIENTS:-100}
NNOW=$((NCLIENTS / 2))   # clients whose first stream has no cursor
PUB_S=${SOAK_SECONDS:-24}
DRAIN_S=${SOAK_DRAIN:-20}
HB=2                     # the clients' heartbeat= (their watchdog: 6 s)
NPRE=10                  # messages in the log before the clients come
KILL_MS=2000             # between two rounds of responder kills
MIN_BREAKS=2             # every stream is broken at least this often
EXTRA_ROUNDS=8           # rounds after the schedule, while one was not
# When, in thousandths of the publishing time, the web server restarts
# and each publisher is SIGKILLed (and started again at once).
RESTART_AT="330 700"
PUBKILL_AT="200:http 450:pushctl 580:sql 830:http 850:pushctl 870:sql"
CHA=soak-a
CHB=soak-b
TOKEN=soak-publish-token-$RANDOM$RANDOM

fails=0

tmp=$(mktemp -d "${TMPDIR:-/tmp}/soak-e2e.XXXXXX") || exit 99
chmod 0755 "$tmp"
pubs=()
subpid=
cleanup() {
	local p
	for p in "${pubs[@]}" $subpid; do
		kill -KILL $(descendants "$p") "$p" 2>/dev/null
	done
	wait 2>/dev/null
	e2e_stop >/dev/null 2>&1
	if [ "${SOAK_KEEP:-0}" = 1 ]; then
		echo "# kept $tmp"
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

for prog in "$PUSHCTL" "$SOAK" "$B/cgi-bin/push-stream" \
    "$B/cgi-bin/push-publish"; do
	[ -x "$prog" ] || { echo "not ok - $prog is not built"; exit 1; }
done
command -v sqlite3 >/dev/null || { echo "not ok - no sqlite3 shell"; exit 1; }
command -v python3 >/dev/null || { echo "not ok - no python3"; exit 1; }

now_ms() { date +%s%3N; }
sql() { sqlite3 -cmd ".timeout 5000" "$PUSHCGI_DB" "$@"; }

# Every descendant of process $1, one a line (deepest first).
descendants() {
	local c
	for c in $(pgrep -P "$1" 2>/dev/null); do
		descendants "$c"
		echo "$c"
	done
}

# SIGKILL every responder process of the running server (found through
# its sessions; the web server and spawn-fcgi's or multiwatch's
# supervisors are left alone).  Prints how many were killed.
kill_responders() {
	local pids
	# One ps for all (e2e_procs reads /proc a process at a time: too
	# slow for a round every 2 s among hundreds of CGI processes).
	pids=$(ps -e -o pid=,sid=,comm= | awk -v sids=" $E2E_SIDS " '
	    index(sids, " " $2 " ") && $3 ~ /^push-(stream|publish|poll)$/ {
		print $1 }')
	[ -n "$pids" ] && kill -KILL $pids 2>/dev/null
	echo $pids | wc -w
}

# The publishers.  Each generation G of a way writes the acknowledged
# publishes to $run/WAY.G.ok as "ID<TAB>SEQ" lines; its data is a
# function of (WAY, G, SEQ) that the check below recomputes.
pub_http() { # $1 generation, $2 seconds
	exec "$SOAK" pub -u "$(e2e_url push-publish)?channel=$CHA" \
	    -H "Authorization: Bearer $token" -g 50 -s "$2" \
	    -o "$run/http.$1.ok" -p "http $1" >/dev/null
}
pub_pushctl() { # $1 generation
	local seq=0 id
	while [ ! -e "$run/stop" ]; do
		seq=$((seq + 1))
		if [ $((seq % 5)) -eq 0 ]; then
			id=$(printf 'pushctl %s %s\r\n\377 tail' "$1" "$seq" |
			    "$PUSHCTL" send -t application/octet-stream "$CHB" -)
		else
			id=$("$PUSHCTL" send -e soak.ctl "$CHB" "pushctl $1 $seq")
		fi && echo "$id	$seq" >>"$run/pushctl.$1.ok"
		sleep 0.12
	done 2>/dev/null
}
pub_sql() { # $1 generation
	local seq=0 id ch data ev
	while [ ! -e "$run/stop" ]; do
		seq=$((seq + 1))
		ch=$CHA ev=NULL data="'sql $1 $seq'"
		[ $((seq % 2)) -eq 0 ] && ch=$CHB
		[ $((seq % 4)) -eq 0 ] &&
		    ev="'soak.sql'" data="'sql $1 $seq' || char(10) || 'second line'"
		id=$(sql "INSERT INTO messages(channel, event, data)
		    VALUES('$ch', $ev, $data); SELECT last_insert_rowid();") &&
		    [ -n "$id" ] && echo "$id	$seq" >>"$run/sql.$1.ok"
		sleep 0.12
	done 2>/dev/null
}
# Start publisher WAY (generation gen[WAY] + 1); its pid in pid[WAY].
declare -A gen pid
pub_start() { # $1 way, $2 seconds left (http)
	gen[$1]=$((${gen[$1]:-0} + 1))
	case $1 in
	http) pub_http "${gen[$1]}" "$2" & ;;
	pushctl) pub_pushctl "${gen[$1]}" & ;;
	sql) pub_sql "${gen[$1]}" & ;;
	esac
	pid[$1]=$!
	pubs+=("$!")
}
# SIGKILL publisher WAY with whatever it is running (pushctl, sqlite3).
pub_kill() { # $1 way
	local p=${pid[$1]}
	kill -KILL "$p" $(descendants "$p") 2>/dev/null
	wait "$p" 2>/dev/null
}

cat >"$tmp/check.py" <<'PY'
# Compare what the clients received with the log (the truth), and the
# acknowledged publishes with the log.  Prints "#" lines with the counts
# and "ok/not ok" lines; the counts as KEY=VALUE on the last line.
import glob, os, re, sqlite3, sys

kind, db, run, pre_last, target = sys.argv[1:6]
pre_last, target = int(pre_last), int(target)
chans = ("soak-a", "soak-b")

def fnv(b):
    h = 14695981039346656037
    for x in b:
        h = ((h ^ x) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h

con = sqlite3.connect(db, timeout=5)
log = {}
for i, ch, d in con.execute(
        "SELECT id, channel, CAST(data AS BLOB) FROM messages "
        "WHERE channel IN (?, ?) ORDER BY id", chans):
    log[i] = (ch, bytes(d))
ids = sorted(log)
hashes = {i: fnv(log[i][1]) for i in ids}

# The acknowledged publishes.
def expect(way, g, seq):
    if way == "http":
        return b"http %d %d" % (g, seq)
    if way == "pushctl":
        if seq % 5 == 0:
            return b"pushctl %d %d\r\n\xff tail" % (g, seq)
        return b"pushctl %d %d" % (g, seq)
    if seq % 4 == 0:
        return b"sql %d %d\nsecond line" % (g, seq)
    return b"sql %d %d" % (g, seq)

acked = {"http": 0, "pushctl": 0, "sql": 0}
ack_bad = []
for f in glob.glob(os.path.join(run, "*.ok")):
    way, g, _ = os.path.basename(f).split(".")
    for line in open(f):
        if not line.endswith("\n"):
            continue          # cut by the SIGKILL: not acknowledged
        i, seq = (int(x) for x in line.split("\t"))
        acked[way] += 1
        if i not in log or log[i][1] != expect(way, int(g), seq):
            ack_bad.append("%s %s/%d: id %d %s" % (way, g, seq, i,
                "data differs" if i in log else "not in the log"))
inlog = {"pre": 0, "http": 0, "pushctl": 0, "sql": 0}
for i in ids:
    w = log[i][1].split(b" ", 1)[0].decode("ascii", "replace")
    inlog[w if w in inlog else "pre"] += 1

# The clients.
clients = {}
for line in open(os.path.join(run, "sub.out")):
    f = line.split()
    if f[0] == "c":
        c = clients.setdefault(int(f[1]), {"m": [], "g": []})
        c.update((k, int(v)) for k, v in (x.split("=") for x in f[2:]))
    elif f[0] == "m":
        clients[int(f[1])]["m"].append((int(f[2]), int(f[3], 16)))
    elif f[0] == "g":
        clients[int(f[1])]["g"].append(int(f[2]))
    elif f[0] == "s":
        clients[int(f[1])].setdefault("s", []).append(f[2])

# The web server's restarts, [from, to] in ms after the clients started:
# a connection made while the old server stops may wait for an answer
# until it is gone (Apache with mod_fcgid takes up to 10 s to stop when
# requests wait for a responder to be spawned).
windows, began = [], None
for line in open(os.path.join(run, "events")):
    t, what = line.strip().split(":", 1)
    if what == "restart":
        began = int(t)
    elif what == "up-again" and began is not None:
        windows.append((began, int(t)))
        began = None
if began is not None:
    windows.append((began, 1 << 62))

def excused(stall):
    # "STATE@T/Q": silent from T - Q to T.  Only a wait for the answer's
    # first bytes across a restart is the web server's doing (its headers,
    # or, "answered", the first body bytes after them: a stopping Apache
    # holds both until it is gone); a stream that goes silent once its
    # body flows is a stall wherever it happens.
    m = re.match(r"(\w+)@(\d+)ms/(\d+)ms$", stall)
    if m is None or m.group(1) == "body":
        return False
    t, q = int(m.group(2)), int(m.group(3))
    return any(t - q <= b and t >= a for a, b in windows)

tot = dict(lost=0, dup=0, reordered=0, corrupt=0, phantom=0, gaps=0,
    stuck=0, badstart=0, stalls=0, restart_waits=0, conns=0, breaks=0, minbreaks=None)
evidence = []
for n in sorted(clients):
    c = clients[n]
    start = c["start"]
    seen, top = set(), -1
    lost = dup = reo = bad = phantom = 0
    for i, h in c["m"]:
        if i in seen:
            dup += 1
            if dup <= 3:
                evidence.append("client %d: id %d again" % (n, i))
            continue
        if i < top:
            reo += 1
            if reo <= 3:
                evidence.append("client %d: id %d after %d" % (n, i, top))
        seen.add(i)
        top = max(top, i)
        if i not in hashes or i <= start:
            phantom += 1
            evidence.append("client %d: id %d is not a message after its "
                "start %d" % (n, i, start))
        elif hashes[i] != h:
            bad += 1
            evidence.append("client %d: id %d data differs" % (n, i))
    want = [i for i in ids if i > start] if start >= 0 else ids
    missing = [i for i in want if i not in seen]
    lost = len(missing)
    if missing:
        evidence.append("client %d (start %d, last %d, %d connections): "
            "lost %d: %s" % (n, start, c["last"], c["conns"], lost,
            " ".join(map(str, missing[:20]))))
    if c["g"]:
        evidence.append("client %d: gaps %s" % (n, c["g"][:5]))
    waits = [x for x in c.get("s", []) if excused(x)]
    stalls = c["stalls"] - len(waits)
    if stalls > 0:
        evidence.append("client %d: stalls %s" % (n, " ".join(
            x for x in c.get("s", []) if not excused(x))))
    if c["last"] < target:
        tot["stuck"] += 1
        evidence.append("client %d: stuck at %d < %d (state %d, %d "
            "connections)" % (n, c["last"], target, c["state"],
            c["conns"]))
    want_start = pre_last if n < int(sys.argv[6]) else 0
    if start != want_start:
        tot["badstart"] += 1
        evidence.append("client %d: started at %d, not %d" %
            (n, start, want_start))
    for k, v in (("lost", lost), ("dup", dup), ("reordered", reo),
            ("corrupt", bad), ("phantom", phantom), ("gaps", len(c["g"])),
            ("stalls", stalls), ("restart_waits", len(waits)),
            ("conns", c["conns"]),
            ("breaks", c["breaks"])):
        tot[k] += v
    if tot["minbreaks"] is None or c["breaks"] < tot["minbreaks"]:
        tot["minbreaks"] = c["breaks"]

for e in evidence[:40]:
    print("# %s: %s" % (kind, e))
if len(evidence) > 40:
    print("# %s: ... %d more" % (kind, len(evidence) - 40))
for e in ack_bad[:10]:
    print("# %s: acknowledged but %s" % (kind, e))
print("# %s: %d messages in the log (%s), acknowledged: %s" % (kind,
    len(ids), ", ".join("%s %d" % kv for kv in inlog.items()),
    ", ".join("%s %d" % kv for kv in acked.items())))
print("R clients=%d messages=%d acked=%d ackbad=%d ways=%d %s" % (
    len(clients), len(ids), sum(acked.values()), len(ack_bad),
    sum(1 for v in acked.values() if v > 0),
    " ".join("%s=%s" % kv for kv in list(tot.items()) +
    [("in_" + k, v) for k, v in inlog.items()])))
PY

# One kind: the whole soak on a fresh log.  Prints ok/not ok lines.
run_kind() { # $1 kind, $2 port
	local kind=$1 port=$2 t0 t ev evs=() way rounds=0 killed=0 pkills=0
	local restarts=0 i r target code sub_line res fails0=$fails t_sub
	local last_kill
	run="$tmp/$kind"
	mkdir -p "$run" && chmod 0755 "$run"
	export PUSHCGI_DB="$run/push.db" PUSHCGI_CONF="$run/pushcgi.conf"
	printf 'publish_token = %s\nretain_count = 0\n' "$TOKEN" \
	    >"$PUSHCGI_CONF"
	chmod 0644 "$PUSHCGI_CONF"
	# The HTTP publisher takes its token from the config, as a site's
	# own publisher would.
	token=$(sed -n 's/^publish_token[[:space:]]*=[[:space:]]*//p' \
	    "$PUSHCGI_CONF" | head -n 1)
	"$PUSHCTL" init >/dev/null || { nok "$kind: pushctl init"; return; }
	for ((i = 1; i <= NPRE; i++)); do
		"$PUSHCTL" send "$([ $((i % 2)) -eq 0 ] && echo $CHB || echo $CHA)" \
		    "pre $i" >/dev/null
	done
	pre_last=$(sql "SELECT max(id) FROM messages")
	if ! e2e_start "$kind" "$port" >"$run/start.log" 2>&1; then
		nok "$kind: server starts"
		sed 's/^/# /' "$run/start.log"
		return
	fi
	"$SOAK" sub -u "$(e2e_url push-stream)?channel=$CHA,$CHB&format=sse&heartbeat=$HB" \
	    -n "$NCLIENTS" -q "$NNOW" -o "$run/sub.out" -r "$run/ready" \
	    -t "$run/target" -T "$DRAIN_S" -b "$run/breaks" \
	    >"$run/sub.log" 2>&1 &
	subpid=$!
	t_sub=$(now_ms)
	for ((i = 0; i < 300; i++)); do
		[ -e "$run/ready" ] && break
		kill -0 "$subpid" 2>/dev/null || break
		sleep 0.1
	done
	if [ ! -e "$run/ready" ]; then
		nok "$kind: $NCLIENTS clients have their streams"
		kill -KILL "$subpid" 2>/dev/null
		wait "$subpid" 2>/dev/null
		subpid=
		e2e_stop >/dev/null 2>&1
		return
	fi

	# The schedule: "MS:what" events, done in time order.
	for ((t = 1000; t < PUB_S * 1000; t += KILL_MS)); do
		evs+=("$t:kill")
	done
	for t in $RESTART_AT; do evs+=("$((t * PUB_S)):restart"); done
	for ev in $PUBKILL_AT; do
		evs+=("$((${ev%%:*} * PUB_S)):pub-${ev#*:}")
	done
	mapfile -t evs < <(printf '%s\n' "${evs[@]}" | sort -n)
	t0=$(now_ms)
	for way in http pushctl sql; do pub_start "$way" "$PUB_S"; done
	last_kill=0
	for ev in "${evs[@]}"; do
		while [ $(($(now_ms) - t0)) -lt "${ev%%:*}" ]; do sleep 0.05; done
		# Rounds of kills that a slow restart held up (Apache with
		# mod_fcgid or mod_cgid takes ~12 s) go out half a round apart,
		# not all at once: each is to find streams to break.
		if [ "${ev#*:}" = kill ]; then
			while [ $(($(now_ms) - last_kill)) -lt $((KILL_MS / 2)) ]; do
				sleep 0.05
			done
			last_kill=$(now_ms)
		fi
		echo "$(($(now_ms) - t_sub)):${ev#*:}" >>"$run/events"
		case ${ev#*:} in
		kill)
			r=$(kill_responders)
			rounds=$((rounds + 1))
			killed=$((killed + r)) ;;
		restart)
			if e2e_restart >>"$run/restart.log" 2>&1; then
				restarts=$((restarts + 1))
				echo "$(($(now_ms) - t_sub)):up-again" \
				    >>"$run/events"
			else
				nok "$kind: the web server restarts on port $port"
				sed 's/^/# /' "$run/restart.log" | tail -n 20
				break
			fi ;;
		pub-*)
			way=${ev#*:pub-}
			pub_kill "$way"
			pkills=$((pkills + 1))
			t=$(( (PUB_S * 1000 - ($(now_ms) - t0)) / 1000 ))
			[ "$t" -ge 1 ] && pub_start "$way" "$t" ;;
		esac
	done
	while [ $(($(now_ms) - t0)) -lt $((PUB_S * 1000)) ]; do sleep 0.1; done
	# A stream that spent the run waiting (for a restart, for a process
	# slot) may have been broken less than twice: more rounds, 1 s
	# apart, until every stream was (at most EXTRA_ROUNDS).
	for ((i = 0; i < EXTRA_ROUNDS; i++)); do
		[ "$(cat "$run/breaks" 2>/dev/null || echo 0)" -ge "$MIN_BREAKS" ] &&
			break
		while [ $(($(now_ms) - last_kill)) -lt $((KILL_MS / 2)) ]; do
			sleep 0.05
		done
		last_kill=$(now_ms)
		echo "$(($(now_ms) - t_sub)):kill-extra" >>"$run/events"
		r=$(kill_responders)
		rounds=$((rounds + 1))
		killed=$((killed + r))
	done
	: >"$run/stop"
	for way in http pushctl sql; do
		wait "${pid[$way]}" 2>/dev/null
	done
	pubs=()
	target=$(sql "SELECT max(id) FROM messages WHERE channel IN ('$CHA', '$CHB')")
	echo "$target" >"$run/target.new" && mv "$run/target.new" "$run/target"
	wait "$subpid"
	subpid=
	sub_line=$(grep '^sub ' "$run/sub.log")
	echo "# $kind: $sub_line"
	echo "# $kind: $rounds rounds of responder kills ($killed processes)," \
	    "$restarts restarts, $pkills publisher kills; done at (ms after" \
	    "the clients started):" $(grep -v ':kill$' "$run/events")
	python3 "$tmp/check.py" "$kind" "$PUSHCGI_DB" "$run" "$pre_last" \
	    "$target" "$NNOW" >"$run/check.out" 2>&1
	grep -v '^R ' "$run/check.out"
	res=$(sed -n 's/^R //p' "$run/check.out")
	if [ -z "$res" ]; then
		nok "$kind: the comparison ran"
		e2e_stop >/dev/null 2>&1
		return
	fi
	declare -A R=()
	for kv in $res; do R[${kv%%=*}]=${kv#*=}; done
	echo "# $kind: lost ${R[lost]}, duplicated ${R[dup]}," \
	    "reordered ${R[reordered]} (over ${R[clients]} clients," \
	    "${R[messages]} messages)"
	check "$kind: soak: ${R[clients]} clients hold every message of the log exactly once and in order (lost ${R[lost]}, duplicated ${R[dup]}, reordered ${R[reordered]})" \
	    [ "${R[clients]}" -eq "$NCLIENTS" -a "${R[lost]}" -eq 0 \
	    -a "${R[dup]}" -eq 0 -a "${R[reordered]}" -eq 0 \
	    -a "${R[messages]}" -gt "$NPRE" ]
	check "$kind: soak: every message received has the log's data (${R[corrupt]} differ, ${R[phantom]} not in the log)" \
	    [ "${R[corrupt]}" -eq 0 -a "${R[phantom]}" -eq 0 ]
	check "$kind: soak: every acknowledged publish is in the log with its data (${R[acked]} by ${R[ways]} ways, ${R[ackbad]} not)" \
	    [ "${R[ackbad]}" -eq 0 -a "${R[ways]}" -eq 3 ]
	check "$kind: soak: every client caught up with the log (${R[stuck]} stuck)" \
	    [ "${R[stuck]}" -eq 0 ]
	check "$kind: soak: no gap, and streams without a cursor started at the newest id (${R[gaps]} gaps, ${R[badstart]} wrong starts)" \
	    [ "${R[gaps]}" -eq 0 -a "${R[badstart]}" -eq 0 ]
	check "$kind: soak: no stream went silent past the clients' watchdog (${R[stalls]} stalls; ${R[restart_waits]} requests waited out a restart)" \
	    [ "${R[stalls]}" -eq 0 ]
	check "$kind: soak: the faults happened ($killed responders killed in $rounds rounds, every stream broken at least ${R[minbreaks]} times, $restarts restarts, $pkills publisher kills)" \
	    [ "$killed" -gt 0 -a "$restarts" -eq 2 -a "$pkills" -ge 3 \
	    -a "${R[minbreaks]}" -ge "$MIN_BREAKS" ]
	summary+=("$(printf "$SUMFMT" \
	    "$kind" "${R[clients]}" "${R[in_pre]}" "${R[in_http]}" \
	    "${R[in_pushctl]}" "${R[in_sql]}" "$killed" "$rounds" "$pkills" \
	    "$restarts" "${R[lost]}" "${R[dup]}" "${R[reordered]}" \
	    "$((fails - fails0))")")
	if [ "$fails" -gt "$fails0" ]; then
		echo "# $kind: the server's processes at the end:" \
		    $(ps -e -o sid=,comm= | awk -v sids=" $E2E_SIDS " '
		    index(sids, " " $1 " ") { n[$2]++ }
		    END { for (c in n) printf "%s %d, ", c, n[c] }')
		echo "# $kind: end of the error log:"
		e2e_log | tail -n 15 | sed 's/^/#   /'
	fi
	e2e_stop >/dev/null 2>&1
}

t_all=$SECONDS
# The table at the end: one line per kind (messages in the log by way).
SUMFMT='%-17s %7s %4s %4s %7s %4s %6s %6s %7s %7s %5s %4s %7s %6s'
summary=()
for kind in ${SOAK_KINDS:-$(e2e_kinds)}; do
	port=$(e2e_free_port "$BASEPORT") || { nok "$kind: a free port"; continue; }
	t_kind=$SECONDS
	run_kind "$kind" "$port"
	echo "# $kind: $((SECONDS - t_kind)) s"
done
echo "# soak: $((SECONDS - t_all)) s in all"
printf "# $SUMFMT\n" kind clients pre http pushctl sql killed rounds \
    pubkill restart lost dup reorder failed
printf '# %s\n' "${summary[@]}"

[ "$fails" -eq 0 ]
