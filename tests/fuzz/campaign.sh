#!/usr/bin/env bash
# A fuzzing campaign: each target in turn (one at a time, under nice),
# RUNS executions each, starting from the committed seed corpus.
#
#   tests/fuzz/campaign.sh BUILDDIR RUNS [TARGET...]
#
# BUILDDIR is a build tree where `make fuzz` has run.  Everything goes to
# BUILDDIR/fuzz-campaign/TARGET/: corpus/ (what libFuzzer found, to be
# merged back with `fuzz-TARGET -merge=1 SEEDS corpus/`), crash-* /
# leak-* / timeout-* files, and log.  Prints one line per target:
#   TARGET: N executions, N exec/s, N s, N new inputs, N findings
# and exits non-zero when a target left a finding.
set -u
[ $# -ge 2 ] || { echo "usage: $0 BUILDDIR RUNS [TARGET...]" >&2; exit 2; }
build=$(cd "$1" && pwd) || exit 2
runs=$2
shift 2
top=$(cd "$(dirname "$0")/../.." && pwd)
targets=${*:-query poll cursor auth valid conf control mixed sse script raw json}
status=0
for t in $targets; do
	bin=$build/tests/fuzz/fuzz-$t
	[ -x "$bin" ] || { echo "$t: no $bin (run make fuzz)" >&2; status=1; continue; }
	w=$build/fuzz-campaign/$t
	mkdir -p "$w/corpus"
	t0=$SECONDS
	nice -n 19 "$bin" -runs="$runs" -timeout=10 -rss_limit_mb=2048 \
	    -max_len="${FUZZ_MAX_LEN:-4096}" -print_final_stats=1 -artifact_prefix="$w/" \
	    "$w/corpus" "$top/tests/fuzz/corpus/$t" >"$w/log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$w/log")
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$w/log")
	found=$(find "$w" -maxdepth 1 -name 'crash-*' -o -maxdepth 1 \
	    -name 'leak-*' -o -maxdepth 1 -name 'timeout-*' -o -maxdepth 1 \
	    -name 'oom-*' | wc -l)
	echo "$t: ${execs:-0} executions, ${rate:-0} exec/s," \
	    "$((SECONDS - t0)) s, $(ls "$w/corpus" | wc -l) new inputs," \
	    "$found findings (exit $rc)"
	[ "$rc" -eq 0 ] && [ "$found" -eq 0 ] || status=1
done
exit $status
