#!/usr/bin/env bash
# The installed archive, lib/libpushcgi.a, is the public C API alone: it
# defines every function pushcgi.h declares and no other global symbol
# (a program that links it meets none of the internal modules' names:
# mlog_, bell_, conf_...), and it leaves none of those undefined (the
# modules the API needs are inside it).  Reads the archive with nm ($NM,
# as configure found it).  Prints "ok - ..." / "not ok - ..." lines;
# exits non-zero on any failure.
set -u
S=${top_srcdir:-.}
B=${top_builddir:-.}
NM=${NM:-nm}
fails=0
. "$S/tests/tap.sh" || exit 99
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

a="$B/lib/libpushcgi.a"
if [ ! -f "$a" ]; then
	nok "lib/libpushcgi.a is built"
	exit 1
fi
# Defined global symbols ("VALUE TYPE NAME"); undefined ones ("U NAME").
if ! $NM -g --defined-only "$a" >"$tmp/def" 2>"$tmp/err" ||
    ! $NM -u "$a" >"$tmp/undef" 2>>"$tmp/err"; then
	nok "$NM reads lib/libpushcgi.a"
	sed 's/^/# /' "$tmp/err"
	exit 1
fi
awk 'NF == 3 { print $3 }' "$tmp/def" | sort -u >"$tmp/exported"
awk 'NF == 2 && $1 == "U" { print $2 }' "$tmp/undef" | sort -u >"$tmp/needed"

grep -v '^pushcgi_' "$tmp/exported" >"$tmp/extra"
if [ -s "$tmp/extra" ]; then
	nok "lib/libpushcgi.a defines no global symbol outside pushcgi_*\
 ($(wc -l <"$tmp/extra") do)"
	sed 's/^/# exported: /' "$tmp/extra"
else
	ok "lib/libpushcgi.a defines no global symbol outside pushcgi_*\
 ($(paste -sd ' ' "$tmp/exported"))"
fi

# Every function the header declares (declarations start a line; the
# comments' examples are indented).
sed -n 's/^[a-z].*[ *]\(pushcgi_[a-z_]*\)(.*/\1/p' "$S/lib/pushcgi.h" |
    sort -u >"$tmp/declared"
if [ ! -s "$tmp/declared" ]; then
	nok "lib/pushcgi.h declares pushcgi_* functions"
fi
while read -r f; do
	check "lib/libpushcgi.a defines $f (pushcgi.h)" \
	    grep -qxF "$f" "$tmp/exported"
done <"$tmp/declared"

# No module of ours (a prefix per lib/ header) is left for the program
# to find: its definitions are inside, made local.
prefixes=$(for h in "$S"/lib/*.h; do
	h=${h##*/}
	printf '%s_\n' "${h%.h}"
done | paste -sd '|')
grep -E "^($prefixes)" "$tmp/needed" >"$tmp/missing"
if [ -s "$tmp/missing" ]; then
	nok "lib/libpushcgi.a needs no symbol of lib/'s modules from outside"
	sed 's/^/# undefined: /' "$tmp/missing"
else
	ok "lib/libpushcgi.a needs no symbol of lib/'s modules from outside\
 ($(wc -l <"$tmp/needed") undefined, none of them ours)"
fi
[ $fails -eq 0 ]
