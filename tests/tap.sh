# Test output for the shell tests that source this file: one line per
# assertion, "ok - NAME" or "not ok - NAME"; each failure counts in $fails
# (the sourcing script sets fails=0 and exits non-zero when it is not).
ok() { echo "ok - $1"; }
nok() { echo "not ok - $1"; fails=$((fails + 1)); }
check() { # $1 description, rest: command that must succeed
	local d=$1
	shift
	if "$@"; then ok "$d"; else nok "$d"; fi
}
