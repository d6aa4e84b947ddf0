#!/usr/bin/env bash
# The manual pages: each renders without a single groff warning, and each
# lists exactly what the program accepts: pushctl's options against
# pushctl --help, the responders' query parameters against their
# allow-lists in the source, the configuration keys against lib/conf.c.
# Prints "ok - ..." / "not ok - ..." lines; exits non-zero on any failure.
set -u
S=${top_srcdir:-.}
B=${top_builddir:-.}
man="$S/man"
fails=0
. "$S/tests/tap.sh" || exit 99
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

command -v groff >/dev/null || { nok "groff is installed (tests/deps.sh DEPS_BUILD)"; exit 1; }

PAGES="pushctl.1 pushcgi.3 pushcgi.conf.5 pushcgi.7 push-stream.8 push-poll.8 push-publish.8"

# 1. Every page renders cleanly: as make check asks (-z), and to a terminal,
# where line breaking adds its own warnings.
for p in $PAGES; do
	if [ ! -f "$man/$p" ]; then
		nok "man/$p exists"
		continue
	fi
	groff -ww -mandoc -z "$man/$p" >"$tmp/err" 2>&1
	rc=$?
	groff -ww -mandoc -Tutf8 "$man/$p" 2>>"$tmp/err" >"$tmp/out"
	rc=$((rc + $?))
	if [ $rc -eq 0 ] && [ ! -s "$tmp/err" ] && [ -s "$tmp/out" ]; then
		ok "man/$p renders with no groff warning"
	else
		nok "man/$p renders with no groff warning"
		sed 's/^/# /' "$tmp/err"
	fi
done

# Compare two lists, one word a line, both ways.  $1 what, $2 list A
# (named $3), $4 list B (named $5).
same_words() {
	local what=$1 a=$2 an=$3 b=$4 bn=$5 w
	if [ ! -s "$a" ] || [ ! -s "$b" ]; then
		nok "$what: found in both $an and $bn"
		return
	fi
	for w in $(sort -u "$a"); do
		if grep -qxF -- "$w" "$b"; then
			ok "$what $w: in $an and $bn"
		else
			nok "$what $w: in $an but not in $bn"
		fi
	done
	for w in $(sort -u "$b"); do
		grep -qxF -- "$w" "$a" || nok "$what $w: in $bn but not in $an"
	done
}

# 2. pushctl: the options of --help and of the page.  In --help an option
# is a word starting with - or --; in mdoc it is the argument of Fl.
"$B/pushctl" --help >"$tmp/help" || nok "pushctl --help exits 0"
grep -oE '(^|[^A-Za-z0-9_$-])--?[A-Za-z][A-Za-z-]*' "$tmp/help" |
	sed -E 's/^[^-]+//' | sort -u >"$tmp/help.opts"
grep -oE '(^|[ .])Fl -?[A-Za-z][A-Za-z-]*' "$man/pushctl.1" |
	sed -E 's/^.*Fl /-/' | sort -u >"$tmp/man.opts"
same_words "pushctl option" "$tmp/help.opts" "pushctl --help" \
	"$tmp/man.opts" "pushctl(1)"

# ... and the commands: "  NAME " lines of --help, ".It Cm NAME" of the page.
sed -nE 's/^  ([a-z]+)( |$).*/\1/p' "$tmp/help" | sort -u >"$tmp/help.cmds"
sed -nE 's/^\.It Cm ([a-z]+)( .*)?$/\1/p' "$man/pushctl.1" | sort -u >"$tmp/man.cmds"
same_words "pushctl command" "$tmp/help.cmds" "pushctl --help" \
	"$tmp/man.cmds" "pushctl(1)"

# 3. The responders: the query parameters each accepts (its allow-list in
# the source: push-publish's NULL-terminated array of strings; the one
# table of stream and poll parameters, { "NAME", S | P }, S for streams, P
# for polls) and ".It Cm NAME=" items.
allow_list() { # $1 file, $2 array name
	sed -n "/$2\\[\\] = {/,/};/p" "$1" | grep -oE '"[a-z_]+"' | tr -d '"' |
		sort -u
}
transport_allow() { # $1 S or P
	sed -n '/transport_allow\[TRANSPORT_PARAMS\] = {/,/};/p' \
	    "$S/lib/transport.c" | grep -oE '\{ "[a-z_]+", [SP |]+\}' |
		grep -E "[ |]$1[ |}]" | sed -E 's/^\{ "([a-z_]+)".*/\1/' | sort -u
}
params_of_page() { # $1 page
	sed -nE 's/^\.It Cm ([a-z_]+)= Ns .*/\1/p' "$1" | sort -u
}
transport_allow S >"$tmp/src.stream"
transport_allow P >"$tmp/src.poll"
allow_list "$S/src/push-publish.c" publish_params >"$tmp/src.publish"
for r in stream poll publish; do
	params_of_page "$man/push-$r.8" >"$tmp/man.$r"
	same_words "push-$r parameter" "$tmp/src.$r" "the source" \
		"$tmp/man.$r" "push-$r(8)"
done

# 4. The configuration keys: lib/conf.c's table and ".It Cm KEY Ns =".
sed -n '/conf_keys\[\] = {/,/};/p' "$S/lib/conf.c" |
	grep -oE '\{ "[a-z_]+"' | tr -d '{" ' | sort -u >"$tmp/src.keys"
sed -nE 's/^\.It Cm ([a-z_]+) Ns = Ns .*/\1/p' "$man/pushcgi.conf.5" |
	sort -u >"$tmp/man.keys"
same_words "config key" "$tmp/src.keys" "lib/conf.c" "$tmp/man.keys" \
	"pushcgi.conf(5)"

# 5. The pages are installed: Makefile.am lists each.
for p in $PAGES; do
	check "Makefile.am installs man/$p" grep -qE "man/$p( |\$)" "$S/Makefile.am"
done
[ $fails -eq 0 ]
