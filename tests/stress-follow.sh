#!/usr/bin/env bash
# The wake-up module (lib/bell.c) under real concurrency, with processes.
#
# 1. Delivery: 200 follower processes follow four channels while four
#    publishers write 500 messages each at the same time: three through
#    the library (pushcgi_publish, which rings the bell) and one with plain
#    SQL INSERTs from the sqlite3 shell (or, without the shell, from a C
#    program using raw SQL), which nobody announces.  Every follower must
#    receive every message exactly once and in id order.
# 2. Gatekeeper deaths: 1000 idle followers; the processes holding the
#    gate are SIGKILLed, several times: the keeper alone (its spare takes
#    over) and keeper and spare together (the herd elects a new keeper).
#    Nobody may stall (one publish afterwards reaches every survivor) and
#    nobody may spin (their total CPU time over a few seconds after each
#    kill stays under 5% of one core: a bound about behaviour, a spinning
#    waiter burns a whole core).
# 3. Hub followers (follower -H: one thread on the bell with no time
#    bound, heartbeats as poll() timeouts, as the responders wait): their
#    frequent heartbeats never move the gatekeeper role (the same keeper
#    throughout a few seconds); killing the keeper hands the role on and
#    one publish still reaches every survivor.
#
# Environment: top_builddir (where tests/follower is), STRESS_SCALE
# (percent of the follower counts above, default 100; for heavy builds).
# Prints "ok - ..." / "not ok - ..." lines; exits non-zero on any failure.
# shellcheck disable=SC2016  # wait_for evaluates single-quoted code
set -u
B=${top_builddir:-.}
FOL="$B/tests/follower"
SCALE=${STRESS_SCALE:-100}
NF=$((200 * SCALE / 100))       # followers in part 1
NIDLE=$((1000 * SCALE / 100))   # followers in part 2
NPUB=500                        # messages per publisher
KILLS=4                         # rounds of killing in part 2
WINDOW=3                        # seconds of CPU accounting after a kill
CPU_PCT=5                       # bound: % of one core, all followers
DEADLINE=240                    # any follower gives up after this (s)
[ "$NF" -ge 1 ] || NF=1
[ "$NIDLE" -ge 1 ] || NIDLE=1

fails=0
. "$(dirname "$0")/tap.sh" || exit 99
# is CONDITION-STATUS "ok message" "not ok message"
is() { if [ "$1" -eq 0 ]; then ok "$2"; else nok "$3"; fi; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/stress-follow.XXXXXX") || exit 99
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ -x "$FOL" ] || { echo "not ok - $FOL is not built"; exit 1; }
# Keep every message (the default retention would prune before slow
# followers read); everything else at its default.
cat >"$tmp/conf" <<EOF
retain_count = 0
EOF
export PUSHCGI_CONF="$tmp/conf"
unset PUSHCGI_DB

now() { date +%s; }

# Wait (at most $2 seconds) until command $1 (a string, evaluated each
# time: single-quote it) succeeds.
wait_for() {
	local end=$(($(now) + $2))
	until eval "$1"; do
		[ "$(now)" -lt "$end" ] || return 1
		sleep 0.05
	done
}

# The keeper of log $1's current gate (empty if none); with "all", the
# keeper and the spare, whichever exist.
keeper() {
	local k s
	read -r k s < <("$FOL" keeper "$1" 2>/dev/null)
	[ "${k:-0}" != 0 ] && echo "$k"
	[ "${2:-}" = all ] && [ "${s:-0}" != 0 ] && echo "$s"
	return 0
}

# Total CPU nanoseconds used so far by the pids given.
cpu_ns() {
	local p files=()
	for p in "$@"; do files+=("/proc/$p/schedstat"); done
	cat "${files[@]}" 2>/dev/null | awk '{ s += $1 } END { printf "%.0f\n", s }'
}

# Followers ready, from the header of results file $1.
ready_count() { od -An -t d8 -N 8 "$1" | tr -d ' '; }

# Wait for each pid in "$@" (each is bounded by its own deadline); set
# bad to the number of exit statuses other than 0.
reap() {
	local p st
	bad=0
	for p in "$@"; do
		wait "$p"
		st=$?
		[ "$st" -eq 0 ] && continue
		bad=$((bad + 1))
		[ "$bad" -gt 3 ] && continue
		if [ "$st" -gt 128 ]; then
			# This test only ever sends SIGKILL, to gatekeepers.
			echo "# pid $p was killed by signal $((st - 128))"
		else
			echo "# pid $p exited with status $st"
		fi
	done
}

### Part 1: delivery #####################################################
db="$tmp/log.db"
"$FOL" sum "$db" a >/dev/null || { nok "create the log"; exit 1; }
total=$((4 * NPUB))
fpids=()
for i in $(seq 1 "$NF"); do
	"$FOL" follow -n "$total" -t "$DEADLINE" -w 5000 -o "$tmp/f.$i" \
	    "$db" a,b,c,d &
	fpids+=($!)
	pids+=($!)
done
# Let most of them reach their wait (not needed for correctness).
wait_for '[ -n "$(keeper "$db")" ]' 60 || true
sleep 1

if command -v sqlite3 >/dev/null 2>&1; then
	sqlpub="sqlite3 shell"
	( for i in $(seq 1 "$NPUB"); do
		echo "INSERT INTO messages(channel, data) VALUES('d', '$i');"
		[ $((i % 5)) -eq 0 ] && sleep 0.005
	  done ) | sqlite3 -batch -cmd '.timeout 10000' "$db" >/dev/null \
	    2>"$tmp/pub.d" &
else
	sqlpub="raw SQL from C (no sqlite3 shell)"
	"$FOL" publish -s -n "$NPUB" -g 2000 "$db" d >/dev/null \
	    2>"$tmp/pub.d" &
fi
ppids=($!)
pids+=($!)
for c in a b c; do
	"$FOL" publish -n "$NPUB" -g 2000 "$db" "$c" >/dev/null \
	    2>"$tmp/pub.$c" &
	ppids+=($!)
	pids+=($!)
done
reap "${ppids[@]}"
# What a failed publisher said, for the failure's one line.
said=$(for c in a b c d; do
	[ -s "$tmp/pub.$c" ] && printf '%s: %s; ' "$c" "$(head -n 2 \
	    "$tmp/pub.$c" | tr '\n' ' ')"
done)
is "$bad" "4 publishers ($sqlpub for one) wrote $total messages" \
    "$bad publisher(s) failed (${said:-nothing on stderr})"
expect=$("$FOL" sum "$db" a,b,c,d)
[ "$expect" = "count=$total sum=$((total * (total + 1) / 2))" ]
is $? "the log holds ids 1..$total" "the log holds: $expect"
reap "${fpids[@]}"
is "$bad" "all $NF followers finished" \
    "$bad of $NF followers failed or timed out"
wrong=0
for i in $(seq 1 "$NF"); do
	got=$(cat "$tmp/f.$i" 2>/dev/null)
	case "$got" in
	"$expect order=ok gap=0 last=$total") ;;
	*) wrong=$((wrong + 1))
	   [ "$wrong" -le 3 ] && echo "# follower $i: ${got:-no output}" ;;
	esac
done
is "$wrong" "every follower got all $total messages exactly once, in id order" \
    "$wrong of $NF followers did not get exactly the log, in order"

### Part 2: killing gatekeepers ###########################################
db2="$tmp/idle.db"
res="$tmp/idle.res"
"$FOL" sum "$db2" idle >/dev/null || { nok "create the second log"; exit 1; }
truncate -s $(((8 + NIDLE) * 8)) "$res"
ipids=()
for i in $(seq 0 $((NIDLE - 1))); do
	# No heartbeat inside the test: its wave of timeouts is what the
	# benchmark measures, here it would blur "nobody spins".
	"$FOL" follow -n 1 -t "$DEADLINE" -w $((DEADLINE * 1000)) \
	    -R "$res" -i "$i" -m 1 -o "$tmp/k.$i" "$db2" idle &
	ipids+=($!)
	pids+=($!)
done
if wait_for '[ "$(ready_count "$res")" -ge "$NIDLE" ]' 120; then
	ok "$NIDLE idle followers started"
else
	nok "only $(ready_count "$res") of $NIDLE followers started"
fi
wait_for '[ -n "$(keeper "$db2")" ]' 30 || nok "no gatekeeper appeared"
sleep 1
killed=()
for round in $(seq 1 "$KILLS"); do
	# Odd rounds: the keeper alone.  Even rounds: every gatekeeper.
	if [ $((round % 2)) -eq 1 ]; then
		victims=$(keeper "$db2")
		what="keeper"
	else
		victims=$(keeper "$db2" all)
		what="every gatekeeper"
	fi
	if [ -z "$victims" ]; then
		nok "kill $round: no gatekeeper to kill"
		continue
	fi
	for k in $victims; do  # word splitting wanted: a list of pids
		disown "$k" 2>/dev/null  # no "Killed" job report from the shell
		kill -KILL "$k" 2>/dev/null
		killed+=("$k")
	done
	live=()
	for p in "${ipids[@]}"; do
		case " ${killed[*]} " in *" $p "*) ;; *) live+=("$p") ;; esac
	done
	c0=$(cpu_ns "${live[@]}")
	names=${victims//$'\n'/ }
	wait_for 'n=$(keeper "$db2"); [ -n "$n" ] && ! grep -qx "$n" <<<"$victims"' 30
	is $? "kill $round: $what killed ($names), another took over" \
	    "kill $round: no new keeper after killing $names"
	sleep 1   # the herd's re-election settles within BELL_REQUEUE_MS
	c1=$(cpu_ns "${live[@]}")
	sleep "$WINDOW"
	c2=$(cpu_ns "${live[@]}")
	pct=$(awk -v d=$((c2 - c1)) -v w="$WINDOW" \
	    'BEGIN { printf "%.2f", d / (w * 1e7) }')
	echo "# kill $round: takeover cost $(((c1 - c0) / 1000000)) ms CPU" \
	    "in total; then $pct% of one core over ${WINDOW} s"
	if awk -v p="$pct" -v m="$CPU_PCT" 'BEGIN { exit !(p < m) }'; then
		ok "kill $round: the followers are idle again (under $CPU_PCT% of a core)"
	else
		nok "kill $round: the followers use $pct% of a core: someone spins"
	fi
done
"$FOL" publish -n 1 -g 0 "$db2" idle >/dev/null || nok "publish after kills"
alive=()
for p in "${ipids[@]}"; do
	case " ${killed[*]} " in *" $p "*) ;; *) alive+=("$p") ;; esac
done
reap "${alive[@]}"
is "$bad" "one publish reached all ${#alive[@]} surviving followers" \
    "$bad of ${#alive[@]} surviving followers stalled"

### Part 3: hub followers ################################################
NHUB=50
HB_MS=200                       # their heartbeat: many in the window below
db3="$tmp/hub.db"
res3="$tmp/hub.res"
"$FOL" sum "$db3" hub >/dev/null || { nok "create the third log"; exit 1; }
truncate -s $(((8 + NHUB) * 8)) "$res3"
hpids=()
for i in $(seq 0 $((NHUB - 1))); do
	"$FOL" follow -H -n 1 -t "$DEADLINE" -w "$HB_MS" \
	    -R "$res3" -i "$i" -m 1 -o "$tmp/h.$i" "$db3" hub &
	hpids+=($!)
	pids+=($!)
done
wait_for '[ "$(ready_count "$res3")" -ge "$NHUB" ]' 60 ||
	nok "only $(ready_count "$res3") of $NHUB hub followers started"
wait_for '[ -n "$(keeper "$db3")" ]' 30 || nok "no hub gatekeeper appeared"
sleep 1
k0=$(keeper "$db3")
moved=""
for i in $(seq 1 12); do  # 3 s: 15 heartbeats of every follower
	sleep 0.25
	k=$(keeper "$db3")
	[ "$k" = "$k0" ] || moved="$moved $k"
done
is "$([ -n "$k0" ] && [ -z "$moved" ]; echo $?)" \
    "hub followers: keeper $k0 kept the role through 15 heartbeats each" \
    "hub followers: the keeper role moved from '$k0' to:$moved"
disown "$k0" 2>/dev/null
kill -KILL "$k0" 2>/dev/null
wait_for 'n=$(keeper "$db3"); [ -n "$n" ] && [ "$n" != "$k0" ]' 30
is $? "hub followers: keeper $k0 killed, another took over" \
    "hub followers: no new keeper after killing $k0"
"$FOL" publish -n 1 -g 0 "$db3" hub >/dev/null || nok "publish to hub followers"
alive=()
for p in "${hpids[@]}"; do [ "$p" = "$k0" ] || alive+=("$p"); done
reap "${alive[@]}"
is "$bad" "one publish reached all ${#alive[@]} surviving hub followers" \
    "$bad of ${#alive[@]} surviving hub followers stalled"

[ "$fails" -eq 0 ] && echo "# all passed" || echo "# $fails failed"
[ "$fails" -eq 0 ]
