#!/usr/bin/env bash
# pushctl from the outside: every command, its output and its exit codes.
# Prints "ok - ..." / "not ok - ..." lines; exits non-zero on any failure.
set -u
B=${top_builddir:-.}
PUSHCTL="$B/pushctl"
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
export PUSHCGI_DB="$tmp/log.db" PUSHCGI_CONF=
fails=0
. "$(dirname "$0")/tap.sh" || exit 99
status_is() { # $1 expected exit code, rest: pushctl args
	local want=$1 got
	shift
	"$PUSHCTL" "$@" >"$tmp/out" 2>"$tmp/err"
	got=$?
	[ "$got" -eq "$want" ] || { echo "# pushctl $*: exit $got, want $want: $(cat "$tmp/err")"; return 1; }
}
one_line_error() { [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q '^pushctl: ' "$tmp/err"; }

check "--help prints usage and exits 0" status_is 0 --help
check "--help names every command" bash -c "for c in init send tail ls stat rm prune every token; do grep -q \"  \$c\" '$tmp/out' || exit 1; done"
check "--version" status_is 0 --version
check "no command is a usage error (100)" status_is 100
check "unknown command is a usage error (100)" status_is 100 frobnicate
check "reading a missing log is a system error (111)" status_is 111 ls
check "init creates the log" status_is 0 init
check "init is idempotent" status_is 0 init
check "send prints the new id" status_is 0 send news hello
check "first id is 1" grep -qx 1 "$tmp/out"
check "send from stdin" bash -c "printf 'two\nlines' | '$PUSHCTL' send news - >'$tmp/out'"
check "second id is 2" grep -qx 2 "$tmp/out"
check "send with type and event" status_is 0 send -t 'application/json' -e update news '{"a":1}'
check "invalid channel is refused (1)" status_is 1 send '.bad' x
check "invalid channel: one clear line" one_line_error
check "invalid type is refused (1)" status_is 1 send -t 'text/plain
X: y' news x
check "invalid event is refused (1)" status_is 1 send -e 'a b' news x
head -c $((1024 * 1024 + 1)) /dev/zero >"$tmp/big"
check "message over max_data is refused (1)" bash -c "'$PUSHCTL' send news - <'$tmp/big' 2>'$tmp/err'; [ \$? -eq 1 ]"
check "over max_data: the reason names the limit" grep -q 1048576 "$tmp/err"
check "refused sends changed nothing" bash -c "[ \$(sqlite3 '$PUSHCGI_DB' 'select count(*) from messages') -eq 3 ]"
check "tail prints the last messages" status_is 0 tail news
check "tail line format" bash -c "printf '1\tnews\t-\thello\n2\tnews\t-\ttwo\\\\nlines\n3\tnews\tupdate\t{\"a\":1}\n' | cmp -s - '$tmp/out'"
check "tail --since" status_is 0 tail --since 2 news
check "tail --since shows only later ids" bash -c "[ \$(cut -f1 '$tmp/out') = 3 ]"
check "tail of a channel that never was is refused (1)" status_is 1 tail nosuch
head -c 5000 /dev/urandom >"$tmp/bin"
"$PUSHCTL" send -q -t image/png img - <"$tmp/bin"
check "binary data round-trips byte-exact (send - / tail --raw)" bash -c "'$PUSHCTL' tail --raw -n 1 img | cmp -s - '$tmp/bin'"
check "ls lists channels" status_is 0 ls
check "ls shows news and img" bash -c "grep -q '^news ' '$tmp/out' && grep -q '^img ' '$tmp/out'"
check "stat of the log" status_is 0 stat
check "stat names the last id" grep -qx 'last_id: 4' "$tmp/out"
check "stat of a channel" status_is 0 stat news
check "stat shows retained" grep -qx 'retained: 3' "$tmp/out"
check "stat of an unknown channel is refused (1)" status_is 1 stat nosuch
check "plain SQL insert is a publish" sqlite3 "$PUSHCGI_DB" "INSERT INTO messages(channel, data) VALUES('news', 'from sql')"
check "tail shows the SQL insert with defaults" bash -c "'$PUSHCTL' tail -n 1 news | grep -qP '^5\tnews\t-\tfrom sql\$'"

# tail -f: a subscriber that sees new messages, SQL inserts included.
"$PUSHCTL" tail -f --since 5 --count 3 --timeout 20 news >"$tmp/follow" 2>&1 &
fpid=$!
for i in $(seq 50); do
	[ "$(sqlite3 "$PUSHCGI_DB" 'select count(*) from subscriptions')" = 1 ] && break
	sleep 0.1
done
check "tail -f registers as a subscriber" bash -c "'$PUSHCTL' stat news | grep -qx 'subscribers: 1'"
"$PUSHCTL" send -q news live1
sqlite3 "$PUSHCGI_DB" "INSERT INTO messages(channel, data) VALUES('news', 'live2')"
"$PUSHCTL" send -q other ignored
"$PUSHCTL" send -q news live3
wait $fpid
check "tail -f exits 0 after --count" test $? -eq 0
check "tail -f received the three messages in order" bash -c "[ \"\$(cut -f4 '$tmp/follow' | tr '\n' ' ')\" = 'live1 live2 live3 ' ]"
check "tail -f unregistered on exit" bash -c "[ \$(sqlite3 '$PUSHCGI_DB' 'select count(*) from subscriptions') -eq 0 ]"

# SIGTERM ends a follower cleanly and unregisters it.
"$PUSHCTL" tail -f news >/dev/null 2>&1 &
fpid=$!
# Signal it once it is registered (its handler is installed by then).
for i in $(seq 100); do
	[ "$(sqlite3 "$PUSHCGI_DB" 'select count(*) from subscriptions')" -ge 1 ] && break
	sleep 0.1
done
kill -TERM $fpid
wait $fpid
check "tail -f ends cleanly on SIGTERM" test $? -eq 0
check "SIGTERM'd follower unregistered" bash -c "[ \$(sqlite3 '$PUSHCGI_DB' 'select count(*) from subscriptions') -eq 0 ]"

# A reader that leaves while nothing is published ends the follower at
# its next heartbeat (1 s here), not at the next message; it unregisters.
printf 'heartbeat = 1\n' >"$tmp/hb.conf"
timeout 30 "$PUSHCTL" --conf "$tmp/hb.conf" tail -f -n 0 news 2>/dev/null | true
st=${PIPESTATUS[0]}
check "tail -f whose reader left ends by itself (exit 111, as on a failed write)" test "$st" -eq 111
check "that follower unregistered" bash -c "[ \$(sqlite3 '$PUSHCGI_DB' 'select count(*) from subscriptions') -eq 0 ]"

# every: a command's output published periodically.
check "every publishes a command's output" status_is 0 every --count 2 1 clock -- echo tick
check "every published twice" bash -c "[ \$('$PUSHCTL' tail clock | grep -c tick) -eq 2 ]"
check "every with a failing command is refused" status_is 1 every --count 1 1 clock -- /nonexistent/cmd
check "every needs --" status_is 100 every 1 clock echo tick

check "prune --keep 1 news" status_is 0 prune --keep 1 news
check "prune left one message" bash -c "'$PUSHCTL' stat news | grep -qx 'retained: 1'"
check "tail --since 0 after prune reports the gap" bash -c "'$PUSHCTL' tail --since 0 news | head -1 | grep -qP '^gap\t'"
check "rm removes a channel" status_is 0 rm news
check "rm of an unknown channel is refused (1)" status_is 1 rm news
"$PUSHCTL" send -q news again
check "ids are never reused after rm" bash -c "[ \$('$PUSHCTL' tail -n 1 news | cut -f1) -gt 9 ]"
check "bad --db directory is a system error (111)" status_is 111 --db /nonexistent/dir/x.db send a b

# token: subscriber tokens for private channels (lib/auth.h), checked
# against an HMAC-SHA256 computed here by Python's hmac module.
check "token without a subscriber_secret is refused (1)" status_is 1 token private.room
check "token without a secret: one clear line" one_line_error
printf 'subscriber_secret = cli-test-secret\nprivate_channel = private.\n' >"$tmp/sub.conf"
check "token needs a CHANNEL (100)" status_is 100 --conf "$tmp/sub.conf" token
check "token with too many arguments (100)" status_is 100 --conf "$tmp/sub.conf" token a 1 2
check "token with bad SECONDS (100)" status_is 100 --conf "$tmp/sub.conf" token private.room soon
check "token for an invalid channel is refused (1)" status_is 1 --conf "$tmp/sub.conf" token '.bad'
t0=$(date +%s)
check "token prints a token" status_is 0 --conf "$tmp/sub.conf" token private.room
t1=$(date +%s)
check "token format is EXPIRY.HEX64" grep -qxE '[0-9]{1,12}\.[0-9a-f]{64}' "$tmp/out"
check "token lasts an hour by default" bash -c "e=\$(cut -d. -f1 '$tmp/out'); [ \$e -ge $((t0 + 3600)) ] && [ \$e -le $((t1 + 3600)) ]"
mac_ok() { # $1 channel, token in $tmp/out
	python3 -c 'import hmac, hashlib, sys
e, m = open(sys.argv[2]).read().strip().split(".")
want = hmac.new(b"cli-test-secret", ("pushcgi-sub:%s:%s" % (sys.argv[1], e)).encode(), hashlib.sha256).hexdigest()
sys.exit(0 if hmac.compare_digest(m, want) else 1)' "$1" "$tmp/out"
}
check "token MAC is HMAC-SHA256 of the channel and expiry" mac_ok private.room
t0=$(date +%s)
check "token with SECONDS" status_is 0 --conf "$tmp/sub.conf" token private.room 60
t1=$(date +%s)
check "token lasts SECONDS" bash -c "e=\$(cut -d. -f1 '$tmp/out'); [ \$e -ge $((t0 + 60)) ] && [ \$e -le $((t1 + 60)) ]"
check "token MAC with SECONDS" mac_ok private.room
check "token for a public channel still prints, with a note" status_is 0 --conf "$tmp/sub.conf" token news
check "the note says the channel needs no token" grep -q 'needs no token' "$tmp/err"

# Root publishing to a log another user owns (an administrator's pushctl
# next to www-data's responders): the bell file it creates goes to the
# log's owner, with the log's mode, so that the owner can still use it.
if [ "$(id -u)" -eq 0 ] && id -u nobody >/dev/null 2>&1 &&
    command -v setpriv >/dev/null; then
	own="$tmp/owned"
	mkdir -m 0777 "$own" && chmod 0711 "$tmp"
	as_nobody() {
		setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups \
		    -- "$PUSHCTL" --db "$own/p.db" "$@" >/dev/null 2>"$tmp/err"
	}
	check "another user creates a log" as_nobody init
	rm -f "$own/p.db-bell"
	check "root publishes to it" status_is 0 --db "$own/p.db" send x hi
	check "the bell file root created belongs to the log's owner" \
	    [ "$(stat -c %U:%a "$own/p.db-bell")" = "$(stat -c %U:%a "$own/p.db")" ]
	check "the owner publishes after root did" as_nobody send x again
	# A log its user cannot write: a system error (111) with one line
	# that names the file and the cause; nothing is stored.
	chmod 0444 "$own/p.db"
	as_nobody send x read-only
	st=$?
	check "send to a read-only log exits 111" test "$st" -eq 111
	check "the read-only log: one line naming the file and the cause" \
	    bash -c "[ \$(wc -l <'$tmp/err') -eq 1 ] &&
	    grep -qF 'pushctl: appending a message: attempt to write a readonly database ($own/p.db: not writable by nobody; owner nobody, mode 0444)' '$tmp/err'" ||
	    sed 's/^/# /' "$tmp/err"
	check "the read-only log is unchanged" \
	    [ "$(sqlite3 "file:$own/p.db?mode=ro" 'select count(*) from messages')" = 2 ]
	chmod 0644 "$own/p.db"
	rm -f "$own/p.db-wal" "$own/p.db-shm"
	chmod 0555 "$own"
	as_nobody send x no-folder
	st=$?
	check "send with the log's folder read-only exits 111" test "$st" -eq 111
	check "the read-only folder: the line names the folder" \
	    grep -qF "(folder $own: not writable by nobody" "$tmp/err" ||
	    sed 's/^/# /' "$tmp/err"
	chmod 0777 "$own"
else
	echo "# not run (needs root and a user nobody): root's bell file goes to the log's owner"
fi
# GNU-style options: a command's options may follow its operands, and "--"
# ends them; every's COMMAND after its "--" is never parsed.
sql() { sqlite3 "$PUSHCGI_DB" "$1"; }
printf 'png bytes' >"$tmp/frame"
check "send CHANNEL -t TYPE - (options after the operands)" bash -c "'$PUSHCTL' send cam -t image/png - <'$tmp/frame' >'$tmp/out'"
check "  ...kept the type and read stdin" bash -c "[ \"\$(sqlite3 '$PUSHCGI_DB' \"select type || '|' || data from messages where id = \$(cat '$tmp/out')\")\" = 'image/png|png bytes' ]"
check "send CHANNEL DATA -e EVENT --type=TYPE" status_is 0 send cam hello -e frame --type=text/x-test
check "  ...kept the event and the type" bash -c "[ \"\$(sqlite3 '$PUSHCGI_DB' \"select event || '|' || type || '|' || data from messages where id = \$(cat '$tmp/out')\")\" = 'frame|text/x-test|hello' ]"
check "send CHANNEL -- -x sends \"-x\"" status_is 0 send cam -- -x
check "  ...the data is \"-x\"" bash -c "[ \"\$(sqlite3 '$PUSHCGI_DB' \"select data from messages where id = \$(cat '$tmp/out')\")\" = '-x' ]"
check "send -- -chan DATA: a channel starting with '-'" status_is 0 send -- -chan data
check "send CHANNEL -x is an unknown option (100)" status_is 100 send cam -x
check "  ...one line naming pushctl, the command and the option" bash -c "[ \$(wc -l <'$tmp/err') -eq 1 ] && grep -q '^pushctl: send: unknown option -x' '$tmp/err'"
check "send CHANNEL -t without its argument (100)" status_is 100 send cam -t
check "  ...says the option needs an argument" grep -q '^pushctl: send: option -t needs an argument' "$tmp/err"
check "tail CHANNEL -n 1 --raw (options after the operand)" status_is 0 tail cam -n 1 --raw
check "  ...printed the last message raw" bash -c "[ \"\$(cat '$tmp/out')\" = '-x' ]"
check "tail --bogus is an unknown option (100)" status_is 100 tail cam --bogus
check "  ...naming --bogus" grep -q '^pushctl: tail: unknown option --bogus' "$tmp/err"
check "prune CHANNEL --keep 1" status_is 0 prune cam --keep 1
check "  ...left one message" bash -c "'$PUSHCTL' stat cam | grep -qx 'retained: 1'"
check "every SECONDS CHANNEL --count 1 -- CMD (option between the operands)" status_is 0 every 1 tick --count 1 -- printf '%s' -t --count
check "  ...CMD's own options were passed on untouched" bash -c "[ \"\$(sqlite3 '$PUSHCGI_DB' \"select group_concat(data, '|') from messages where channel = 'tick'\")\" = '-t--count' ]"
check "every -e after the operands, CMD with an option named like every's" status_is 0 every 1 tick2 -e up --count 1 -- echo -e x
check "  ...published CMD's output with the event" bash -c "[ \"\$(sqlite3 '$PUSHCGI_DB' \"select event || '|' || data from messages where channel = 'tick2'\")\" = 'up|x' ]"
check "every without a COMMAND after -- (100)" status_is 100 every 1 tick --
check "every with an extra operand before -- (100)" status_is 100 every 1 tick extra -- echo x
check "ls -l is an unknown option (100)" status_is 100 ls -l
check "rm -- CHANNEL" status_is 0 rm -- tick2
check "stat CHANNEL --help prints the usage (0)" status_is 0 stat cam --help
check "  ...the usage text" grep -q '^usage: pushctl' "$tmp/out"
check "send --help prints the usage (0)" status_is 0 send --help
check "token CHANNEL -- SECONDS" status_is 0 --conf "$tmp/sub.conf" token private.room -- 60

# Bash completion (bash-completion/pushctl): commands, options, and the
# channel names of the log, asked of pushctl ls quietly.
S=${top_srcdir:-.}
complete_words() { # words of the command line, the last one being completed
	COMP_WORDS=("$@")
	COMP_CWORD=$(($# - 1))
	COMPREPLY=()
	_pushctl
	printf '%s\n' "${COMPREPLY[@]}" | sort >"$tmp/comp"
}
replies_are() { # the expected replies, sorted
	printf '%s\n' "$@" | sort | cmp -s - "$tmp/comp" ||
		{ echo "# got: $(tr '\n' ' ' <"$tmp/comp")"; return 1; }
}
"$PUSHCTL" send -q chan.a x
"$PUSHCTL" send -q chan.b x
"$PUSHCTL" --db "$tmp/other.db" send -q elsewhere x
if . "$S/bash-completion/pushctl"; then
	ok "the completion file loads in bash"
	complete_words "$PUSHCTL" ""
	check "completes every command" replies_are init send tail ls stat rm prune every token
	complete_words "$PUSHCTL" "s"
	check "completes a command's start" replies_are send stat
	complete_words "$PUSHCTL" --db "$tmp/other.db" t
	check "completes the command after --db PATH" replies_are tail token
	complete_words "$PUSHCTL" tail chan.
	check "completes channel names of the log (tail)" replies_are chan.a chan.b
	complete_words "$PUSHCTL" send -t text/plain chan.
	check "completes the channel after an option's argument (send)" replies_are chan.a chan.b
	complete_words "$PUSHCTL" send chan.a ""
	check "no channel for send's DATA" replies_are ""
	complete_words "$PUSHCTL" --db "$tmp/other.db" rm ""
	check "channel names of the log --db names" replies_are elsewhere
	complete_words "$PUSHCTL" --db "$tmp/nosuch.db" rm ""
	check "a log that is not there: no names, nothing printed" replies_are ""
	complete_words "$PUSHCTL" tail --f
	check "completes a command's options" replies_are --follow
	complete_words "$PUSHCTL" every 5 chan.
	check "every: the channel after SECONDS" replies_are chan.a chan.b
	complete_words "$PUSHCTL" every 5 chan.a -- ech
	check "every: a command after --" grep -qx echo "$tmp/comp"
	complete_words "$PUSHCTL" every 5 chan.a -- echo -
	check "every: no pushctl option after COMMAND" bash -c "! grep -q -- --count '$tmp/comp'"
	complete_words "$PUSHCTL" -
	check "completes the global options" replies_are --db --conf --help --version
	check "the completion is registered for pushctl" bash -c ". '$S/bash-completion/pushctl' && complete -p pushctl | grep -q _pushctl"
else
	nok "the completion file loads in bash"
fi

[ $fails -eq 0 ]
