#!/bin/sh
# The failure sites: every number an error-log line can carry, where it is
# written and what it means, as the LOG tags in lib/*.c and src/*.c say.
#
#   tests/sites.sh [SRCDIR]          the table "NUMBER FILE:LINE message",
#                                    sorted by number (make sites)
#   tests/sites.sh --check [SRCDIR]  "ok"/"not ok" lines, non-zero exit when
#                                    a number is used twice, a site has no
#                                    tag (or a tag no site), a number lies
#                                    outside its file's range, a site is
#                                    not a literal at its call, or a site
#                                    number is hidden in a string (make
#                                    check, through tests/sites-check.sh)
#
# A site is a call of http_fail (its third argument), http_log or elog
# (the second) on an indented line, with the number as a literal on that
# line; site 0 is a notice (elog.h) and has no number.  Its tag is the
# line just above the call:
#
#	/* LOG: what went wrong */
#	return http_fail(r, 400, 104, "bad Content-Length");
#
# The ranges, one hundred per program or module (the one table of them;
# README "Error log and failure sites"):
RANGES='
lib/http.c          100 199
lib/hub.c           300 399
lib/serve.c         400 499
src/push-stream.c   500 599
src/push-poll.c     600 699
src/push-publish.c  700 799
lib/park.c          800 899
'
# Free for the first site of another module: 200s (bell), 900s
# (transport, page, auth, conf, valid, mlog, walbuf).  lib/fuzz.c
# is not scanned (it logs nothing); pushctl's messages to its user are
# not error-log lines.
set -u
check=0
if [ "${1:-}" = --check ]; then
	check=1
	shift
fi
S=${1:-${top_srcdir:-$(dirname "$0")/..}}
cd "$S" || exit 99

files=
for f in lib/*.c src/*.c; do
	[ "$f" = lib/fuzz.c ] && continue
	files="$files $f"
done

# One record per site ("S NUMBER FILE LINE TAG") and per problem
# ("P CHECK FILE:LINE: what"), CHECK naming the check it fails.
# shellcheck disable=SC2086
scan=$(awk -v ranges="$RANGES" '
BEGIN {
	n = split(ranges, r, "\n")
	for (i = 1; i <= n; i++) {
		if (split(r[i], f, " ") == 3) {
			lo[f[1]] = f[2]
			hi[f[1]] = f[3]
		}
	}
}
function problem(check, what) {
	problem_at(check, FNR, what)
}
function problem_at(check, n, what) {
	print "P " check " " FILENAME ":" n ": " what
}
FNR == 1 { prev = ""; pending = 0 }
{
	line = $0
	if (pending && !match(line, /(^|[^A-Za-z0-9_])(http_fail|http_log|elog)\(/))
		problem_at("tag", FNR - 1, "a LOG tag with no site below it")
	pending = 0
	if (line ~ /^[ \t]*\/\* LOG: .* \*\/[ \t]*$/) {
		pending = 1
		prev = line
		next
	}
	if (FILENAME != "lib/elog.c" &&
	    (line ~ /"[^"]*E[0-9][0-9][0-9]/ || line ~ /"[^"]*E%d/))
		problem("string", "a site number inside a string: " \
		    "give it to elog, http_log or http_fail")
	if (line ~ /^[ \t]/ &&
	    match(line, /(^|[^A-Za-z0-9_])(http_fail|http_log|elog)\(/)) {
		call = substr(line, RSTART, RLENGTH)
		rest = substr(line, RSTART + RLENGTH)
		skip = call ~ /http_fail\($/ ? 2 : 1
		nf = split(rest, arg, ",")
		site = nf > skip ? arg[skip + 1] : ""
		gsub(/^[ \t]+|[ \t]+$/, "", site)
		name = call
		sub(/^[^A-Za-z_]/, "", name)
		sub(/\($/, "", name)
		if (site !~ /^[0-9]+$/) {
			problem("literal", name " without a literal site " \
			    "number on its line")
		} else if (site + 0 != 0) {
			if (prev !~ /^[ \t]*\/\* LOG: .* \*\/[ \t]*$/)
				problem("tag", "site " site " has no LOG tag " \
				    "on the line above")
			tag = prev
			sub(/^[ \t]*\/\* LOG: /, "", tag)
			sub(/ \*\/[ \t]*$/, "", tag)
			if (!(FILENAME in lo))
				problem("range", "site " site ": " FILENAME \
				    " has no range in tests/sites.sh")
			else if (site + 0 < lo[FILENAME] + 0 ||
			    site + 0 > hi[FILENAME] + 0)
				problem("range", "site " site " outside " \
				    FILENAME "'"'"'s range " lo[FILENAME] "-" \
				    hi[FILENAME])
			print "S " site " " FILENAME " " FNR " " tag
		}
	}
	prev = line
}
' $files) || exit 99

table=$(printf '%s\n' "$scan" | sed -n 's/^S //p' | sort -n -k1,1 -k2,2 |
    awk '{ n = $1; w = $2 ":" $3; $1 = $2 = $3 = ""; sub(/^ +/, "");
	printf "%-5s %-24s %s\n", n, w, $0 }')

if [ $check -eq 0 ]; then
	printf '%s\n' "$table"
	exit 0
fi

twice=$(printf '%s\n' "$table" | awk '
	{ n = $1; where[n] = where[n] " " $2; count[n]++ }
	END { for (n in count) if (count[n] > 1)
		print "P twice site " n " used " count[n] " times:" where[n] }')
scan=$(printf '%s\n%s\n' "$scan" "$twice")
sites=$(printf '%s\n' "$table" | grep -c .)

fails=0
report() { # $1 check, $2 what it asserts
	out=$(printf '%s\n' "$scan" | sed -n "s/^P $1 //p")
	if [ -z "$out" ]; then
		echo "ok - $2"
	else
		echo "not ok - $2"
		printf '%s\n' "$out" | sed 's/^/#   /'
		fails=$((fails + 1))
	fi
}
report twice "failure sites: no number used twice ($sites sites)"
report tag "failure sites: each has its LOG tag on the line above"
report range "failure sites: each number in its file's range"
report literal "failure sites: each number a literal at its one call"
report string "failure sites: no site number inside a string"
[ $fails -eq 0 ]
