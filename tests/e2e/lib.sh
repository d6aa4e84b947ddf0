# lib.sh: start and stop real web servers with the shipped configurations
# (conf/*) for the end-to-end tests.  Source it from bash:
#
#   . "$top_srcdir/tests/e2e/lib.sh"
#   export PUSHCGI_DB=/some/dir/push.db      # required
#   e2e_start nginx 18080 || exit 1          # or: e2e_start nginx (free port)
#   curl "$(e2e_url push-stream)?channel=x"
#   e2e_restart                              # same kind, same port
#   e2e_stop                                 # also run by an EXIT trap
#
# Functions:
#   e2e_kinds            the server kinds, one a line
#   e2e_start KIND [PORT]
#                        write KIND's config (conf/KIND.conf with its
#                        placeholders filled) into a fresh temporary
#                        folder, start the FastCGI servers it needs
#                        (one per responder, see E2E_FCGI) and the web
#                        server on 127.0.0.1:PORT, and wait until it
#                        answers.  On failure: prints why (with the end of
#                        the server's error log), cleans up, returns 1.
#   e2e_stop             stop the web server and every process it or we
#                        started (web server first, then the FastCGI
#                        servers, then any leftover of their sessions),
#                        and remove the folder (kept with E2E_KEEP=1).
#   e2e_restart          e2e_stop, then e2e_start with the same kind/port.
#   e2e_url [PROG]       http://127.0.0.1:PORT/cgi-bin/PROG (no PROG: the
#                        document root, http://127.0.0.1:PORT/)
#   e2e_free_port [BASE] a port nobody listens on, from BASE (18080) up
#   e2e_log              the web server's error log (diagnostics)
#   e2e_procs            pids of every process of the running server:
#                        its sessions (web server, its CGI children, the
#                        FastCGI servers), one a line
#   e2e_save NAME        keep the running server's state under NAME and
#                        clear it, so that another server can be started
#                        (two web hosts at once); e2e_use NAME makes NAME's
#                        server the current one again (e2e_url, e2e_stop...)
#   e2e_share_db         (root only) hand the log's folder and files to
#                        the server user again, e.g. after re-creating the
#                        log as root; e2e_start does it once
#
# Kinds (see each conf/KIND.conf for why every setting is there):
#   apache-cgi           Apache 2.4, mod_cgid: a process per request
#   apache-fcgid         Apache 2.4, mod_fcgid: it starts the responders
#   apache-proxy-fcgi    Apache 2.4, mod_proxy_fcgi to responders of ours
#   lighttpd-cgi         lighttpd, mod_cgi
#   lighttpd-fastcgi     lighttpd, mod_fastcgi: it starts the responders
#   nginx                nginx, fastcgi_pass to responders of ours
#
# Environment:
#   PUSHCGI_DB           the message log handed to the responders
#   PUSHCGI_CONF         their config file (optional; empty = default)
#   CGIBIN               folder served at /cgi-bin/ (default
#                        $top_builddir/cgi-bin)
#   DOCROOT              folder served at / (default $top_srcdir/www)
#   top_builddir, top_srcdir   as in make check (defaults: from this file)
#   E2E_USER             when run as root: the user the servers run as
#                        (default www-data, else nobody); Apache refuses
#                        to serve as root, and the others are run the same
#                        way so that every kind is tested as shipped
#   E2E_KEEP=1           keep the temporary folder (configs, logs)
#   E2E_START_WAIT       seconds to wait for a server (default 30)
#   E2E_STOP_WAIT        seconds a responder we started has to end on
#                        SIGTERM before it is killed (default 5; longer
#                        for one that writes a report as it ends, such as
#                        valgrind's)
#   E2E_FCGI             how nginx's and mod_proxy_fcgi's responders run:
#                        multiwatch (default: spawn-fcgi -- multiwatch -f 1
#                        -t 1000 -s INT -- RESPONDER, as the conf files say; a
#                        responder that dies is started again),
#                        spawn-fcgi (alone: one that dies stays dead),
#                        socket-activate (systemd-socket-activate, the
#                        socket handed over as systemd's units do)
#   E2E_WRAP             a command (words; the program by its full path:
#                        spawn-fcgi does not search PATH) that runs each
#                        of those responders, e.g. valgrind with its
#                        options (tests/valgrind.sh): spawn-fcgi ... --
#                        WRAP RESPONDER (multiwatch or spawn-fcgi ways)
#
# Servers get a clean environment (PATH only): whatever the responders see
# comes from the configuration, never from the test's own environment.
# One current server per shell; state is in E2E_* variables (see e2e_save).

E2E_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
E2E_SRCDIR=$(cd "${top_srcdir:-$E2E_LIB_DIR/../..}" && pwd)
E2E_BUILDDIR=$(cd "${top_builddir:-$E2E_SRCDIR}" && pwd)
E2E_RESPONDERS="push-stream push-poll push-publish"
E2E_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
E2E_KIND=
E2E_PORT=
E2E_DIR=
E2E_SIDS=            # session ids of everything started (web + FastCGI)
E2E_MASTER=          # the web server's main pid
E2E_PIDFILE=         # where the web server writes it
E2E_FCGI_WAY=        # E2E_FCGI at the start (for e2e_restart)

e2e_kinds() {
	printf '%s\n' apache-cgi apache-fcgid apache-proxy-fcgi \
	    lighttpd-cgi lighttpd-fastcgi nginx
}

# Print to stderr, prefixed.
e2e_say() { echo "e2e: $*" >&2; }

# A program from PATH or the sbin folders (not in a user's PATH).
e2e_which() {
	local d
	command -v "$1" 2>/dev/null && return 0
	for d in /usr/sbin /sbin /usr/local/sbin; do
		[ -x "$d/$1" ] && { echo "$d/$1"; return 0; }
	done
	return 1
}

# 0 if something accepts connections on 127.0.0.1:$1.
e2e_port_busy() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# A port from $1 on that nothing listens on.  The kernel's range for the
# local ports of outgoing connections is skipped: a client socket there
# (thousands, while a benchmark runs) shows no listener, yet makes a
# server's bind() fail.
e2e_free_port() {
	local p=${1:-18080} lo=65000 hi=65000
	read -r lo hi </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null
	while [ "$p" -lt 65000 ]; do
		if [ "$p" -ge "$lo" ] && [ "$p" -le "$hi" ]; then
			p=$((hi + 1))
			continue
		fi
		e2e_port_busy "$p" || { echo "$p"; return 0; }
		p=$((p + 1))
	done
	return 1
}

e2e_url() {
	if [ $# -gt 0 ] && [ -n "$1" ]; then
		echo "http://127.0.0.1:$E2E_PORT/cgi-bin/$1"
	else
		echo "http://127.0.0.1:$E2E_PORT/"
	fi
}

e2e_log() {
	[ -n "$E2E_DIR" ] && cat "$E2E_DIR"/error.log 2>/dev/null
}

# The user and group the servers run as.  Root: E2E_USER (www-data, else
# nobody); anyone else: themselves (the servers cannot switch anyway).
e2e_identity() {
	if [ "$(id -u)" -eq 0 ]; then
		E2E_RUN_USER=${E2E_USER:-}
		if [ -z "$E2E_RUN_USER" ]; then
			if id -u www-data >/dev/null 2>&1; then
				E2E_RUN_USER=www-data
			else
				E2E_RUN_USER=nobody
			fi
		fi
	else
		E2E_RUN_USER=$(id -un)
	fi
	E2E_RUN_GROUP=$(id -gn "$E2E_RUN_USER") || return 1
}

# Run a command as the server user (a check of what it may do).
e2e_as_user() {
	if [ "$(id -u)" -eq 0 ] && [ "$E2E_RUN_USER" != root ]; then
		setpriv --reuid="$E2E_RUN_USER" --regid="$E2E_RUN_GROUP" \
		    --clear-groups -- "$@"
	else
		"$@"
	fi
}

# As root: the server user must write the log and its folder (SQLite adds
# -wal and -shm files, the wake-up module a -bell file).  Hand over the
# folder and the files that exist, the bell file too (created now if
# need be).  A root publisher that creates one later gives it the log
# file's owner, as SQLite, running as root, does with -wal and -shm.
e2e_share_db() {
	local db=${PUSHCGI_DB:?PUSHCGI_DB is not set} d f
	[ "$(id -u)" -eq 0 ] || return 0
	[ -n "${E2E_RUN_USER:-}" ] || e2e_identity || return 1
	# A PostgreSQL URI names no file here: only the config must be
	# readable (its wake_dir is the caller's to hand over).
	case $db in
	postgres://* | postgresql://*)
		if [ -n "${PUSHCGI_CONF:-}" ] &&
		    ! e2e_as_user test -r "$PUSHCGI_CONF"; then
			e2e_say "$E2E_RUN_USER cannot read $PUSHCGI_CONF"
			return 1
		fi
		return 0 ;;
	esac
	d=$(dirname "$db")
	mkdir -p "$d" || return 1
	[ -e "$db-bell" ] || : >"$db-bell" || return 1
	# Hand over the folder only when it is a private one of ours (a
	# test's temporary folder), never a shared one such as /tmp.
	if ! e2e_as_user test -w "$d" -a -x "$d" && [ ! -k "$d" ] &&
	    [ "$(stat -c %u "$d")" = "$(id -u)" ] && [ "$d" != / ]; then
		chown "$E2E_RUN_USER:$E2E_RUN_GROUP" "$d" || return 1
	fi
	# -wal and -shm come and go with the log's connections: a publisher
	# that closes the log may remove one between the test and the chown.
	for f in "$db" "$db-wal" "$db-shm" "$db-bell"; do
		[ -e "$f" ] || continue
		chown "$E2E_RUN_USER:$E2E_RUN_GROUP" "$f" 2>/dev/null ||
		    [ ! -e "$f" ] ||
		    { e2e_say "cannot give $f to $E2E_RUN_USER"; return 1; }
	done
	if [ -n "${PUSHCGI_CONF:-}" ] && ! e2e_as_user test -r "$PUSHCGI_CONF"
	then
		e2e_say "$E2E_RUN_USER cannot read $PUSHCGI_CONF"
		return 1
	fi
	if ! e2e_as_user test -w "$d" -a -x "$d"; then
		e2e_say "$E2E_RUN_USER cannot write $d (a parent folder is" \
		    "private?): the responders could not use $db"
		return 1
	fi
}

# Escape a value for the right side of a sed s||| command.
e2e_sed_value() {
	printf '%s' "$1" | sed -e 's/[\\|&]/\\&/g'
}

# Fill the placeholders of template $1 into file $2.  Lines that name a
# responder missing from $CGIBIN are left out (a server that starts
# programs itself refuses to start when one is missing).
e2e_render() {
	local tpl=$1 out=$2 moddir="" r drop=()
	for r in $E2E_RESPONDERS; do
		[ -x "$CGIBIN/$r" ] || drop+=(-e "/$r/d")
	done
	[ -d /usr/lib/apache2/modules ] && moddir=/usr/lib/apache2/modules
	[ -z "$moddir" ] && [ -d /usr/lib64/httpd/modules ] &&
	    moddir=/usr/lib64/httpd/modules
	sed "${drop[@]}" \
	    -e "s|@PORT@|$E2E_PORT|g" \
	    -e "s|@CGIBIN@|$(e2e_sed_value "$CGIBIN")|g" \
	    -e "s|@DOCROOT@|$(e2e_sed_value "$DOCROOT")|g" \
	    -e "s|@RUNDIR@|$(e2e_sed_value "$E2E_DIR")|g" \
	    -e "s|@DB@|$(e2e_sed_value "$PUSHCGI_DB")|g" \
	    -e "s|@CONF@|$(e2e_sed_value "${PUSHCGI_CONF:-}")|g" \
	    -e "s|@USER@|$(e2e_sed_value "$E2E_RUN_USER")|g" \
	    -e "s|@GROUP@|$(e2e_sed_value "$E2E_RUN_GROUP")|g" \
	    -e "s|@APACHE_MODDIR@|$(e2e_sed_value "$moddir")|g" \
	    "$tpl" >"$out"
}

# Start one FastCGI server per responder in $CGIBIN, on unix sockets in
# the run folder, the way E2E_FCGI says (multiwatch: the command the conf
# files document).  Each is recorded in $E2E_DIR/RESPONDER.pid (for
# e2e_stop) and leads a session of its own (for e2e_procs).
e2e_spawn() {
	local r pid as=() sup=()
	case ${E2E_FCGI:-multiwatch} in
	multiwatch)
		# One child: a threaded responder serves all its clients
		# from one process.  -s INT: what multiwatch sends its child
		# when told to stop must be a clean stop of the responders
		# (SIGINT, or SIGHUP from Debian's multiwatch 1.0.0, which
		# numbers -s names wrongly; see conf/nginx.conf), not its
		# default SIGUSR1.  -t 1000: give up only on a responder
		# that dies within a second of its start (see the conf).
		sup=("$E2E_MULTIWATCH" -f 1 -t 1000 -s INT --) ;;
	spawn-fcgi) ;;
	socket-activate)
		for r in $E2E_RESPONDERS; do
			[ -x "$CGIBIN/$r" ] || continue
			e2e_activate "$r" || return 1
		done
		return 0 ;;
	*)
		e2e_say "E2E_FCGI: unknown way '$E2E_FCGI'"
		return 1 ;;
	esac
	if [ "$(id -u)" -eq 0 ]; then
		as=(-u "$E2E_RUN_USER" -g "$E2E_RUN_GROUP"
		    -U "$E2E_RUN_USER" -G "$E2E_RUN_GROUP")
	fi
	for r in $E2E_RESPONDERS; do
		[ -x "$CGIBIN/$r" ] || continue
		env -i PATH="$E2E_PATH" PUSHCGI_DB="$PUSHCGI_DB" \
		    PUSHCGI_CONF="${PUSHCGI_CONF:-}" \
		    "$E2E_SPAWN_FCGI" -s "$E2E_DIR/$r.sock" -M 0660 "${as[@]}" \
		    -P "$E2E_DIR/$r.pid" -- "${sup[@]}" ${E2E_WRAP:-} \
		    "$CGIBIN/$r" \
		    >>"$E2E_DIR/spawn.log" 2>&1 || {
			e2e_say "spawn-fcgi $r failed:"
			cat "$E2E_DIR/spawn.log" >&2
			return 1
		}
		pid=$(cat "$E2E_DIR/$r.pid" 2>/dev/null)
		[ -n "$pid" ] || { e2e_say "spawn-fcgi $r: no pid"; return 1; }
		E2E_SIDS="$E2E_SIDS $(e2e_sid "$pid")"
	done
}

# Start responder $1 the way systemd's socket activation does:
# systemd-socket-activate listens on its socket and, at the first
# connection, becomes the responder (same pid) with the socket as fd 3,
# LISTEN_FDS=1 and LISTEN_PID.  It cannot change users: as root it is
# started as the server user, so that the socket is that user's.
e2e_activate() {
	local r=$1 pid i as=()
	if [ "$(id -u)" -eq 0 ] && [ "$E2E_RUN_USER" != root ]; then
		as=(setpriv --reuid="$E2E_RUN_USER" --regid="$E2E_RUN_GROUP"
		    --clear-groups --)
	fi
	# Started from a subshell that ends at once, so that it is not a
	# job of the caller's shell (no "Killed" notice, init reaps it).
	# No job control there: setsid does not fork, so $! is the pid.
	(
		env -i PATH="$E2E_PATH" setsid "${as[@]}" \
		    "$E2E_SOCKET_ACTIVATE" -l "$E2E_DIR/$r.sock" \
		    -E PUSHCGI_DB="$PUSHCGI_DB" \
		    -E PUSHCGI_CONF="${PUSHCGI_CONF:-}" -- "$CGIBIN/$r" \
		    </dev/null >>"$E2E_DIR/spawn.log" 2>&1 &
		echo "$!" >"$E2E_DIR/$r.pid"
	)
	pid=$(cat "$E2E_DIR/$r.pid")
	for ((i = 0; i < 50; i++)); do
		[ -S "$E2E_DIR/$r.sock" ] && break
		e2e_alive "$pid" || break
		sleep 0.1
	done
	if [ ! -S "$E2E_DIR/$r.sock" ]; then
		e2e_say "systemd-socket-activate $r did not listen:"
		cat "$E2E_DIR/spawn.log" >&2
		return 1
	fi
	E2E_SIDS="$E2E_SIDS $(e2e_sid "$pid")"
}

# Session id of process $1 (field 6 of /proc/PID/stat, after the name).
e2e_sid() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	s=${s##*) }
	set -- $s
	echo "$4"
}

e2e_procs() {
	local p s sid
	[ -n "$E2E_SIDS" ] || return 0
	for p in /proc/[0-9]*; do
		p=${p#/proc/}
		s=$(cat "/proc/$p/stat" 2>/dev/null) || continue
		s=${s##*) }
		set -- $s
		# Zombies are gone already; only their parent can reap them.
		[ "$1" = Z ] && continue
		for sid in $E2E_SIDS; do
			[ "$4" = "$sid" ] && { echo "$p"; break; }
		done
	done
}

# ok, nok, check: the test output of the scripts that source this file.
. "$(dirname "${BASH_SOURCE[0]}")/../tap.sh" || return 99

e2e_start() {
	local kind=$1 port=${2:-} bin tpl i code
	[ -z "$E2E_DIR" ] || { e2e_say "a server is running: e2e_stop first";
	    return 1; }
	if ! e2e_kinds | grep -qx -- "$kind"; then
		e2e_say "unknown kind '$kind' (one of: $(e2e_kinds | tr '\n' ' '))"
		return 1
	fi
	: "${PUSHCGI_DB:?PUSHCGI_DB must name the message log}"
	# What the caller named (or the defaults), before any copy below.
	: "${E2E_CGIBIN_SRC:=${CGIBIN:-$E2E_BUILDDIR/cgi-bin}}"
	: "${E2E_DOCROOT_SRC:=${DOCROOT:-$E2E_SRCDIR/www}}"
	CGIBIN=$(cd "$E2E_CGIBIN_SRC" && pwd) || return 1
	DOCROOT=$(cd "$E2E_DOCROOT_SRC" && pwd) || return 1
	tpl="$E2E_SRCDIR/conf/$kind.conf"
	[ -f "$tpl" ] || { e2e_say "no $tpl"; return 1; }
	case $kind in
	apache-*) bin=$(e2e_which apache2 || e2e_which httpd) ;;
	lighttpd-*) bin=$(e2e_which lighttpd) ;;
	nginx) bin=$(e2e_which nginx) ;;
	esac
	[ -n "$bin" ] || { e2e_say "$kind: server program not installed";
	    return 1; }
	case $kind:${E2E_FCGI:-multiwatch} in
	apache-proxy-fcgi:socket-activate|nginx:socket-activate)
		E2E_SOCKET_ACTIVATE=$(e2e_which systemd-socket-activate) ||
		    { e2e_say "systemd-socket-activate is not installed"
		    return 1; } ;;
	apache-proxy-fcgi:*|nginx:*)
		E2E_SPAWN_FCGI=$(e2e_which spawn-fcgi) ||
		    { e2e_say "spawn-fcgi is not installed"; return 1; } ;;
	esac
	case $kind:${E2E_FCGI:-multiwatch} in
	apache-proxy-fcgi:multiwatch|nginx:multiwatch)
		E2E_MULTIWATCH=$(e2e_which multiwatch) ||
		    { e2e_say "multiwatch is not installed"; return 1; } ;;
	esac
	[ -n "$port" ] || port=$(e2e_free_port) || return 1
	if e2e_port_busy "$port"; then
		e2e_say "port $port is in use"
		return 1
	fi
	e2e_identity || return 1
	E2E_KIND=$kind
	E2E_PORT=$port
	E2E_FCGI_WAY=${E2E_FCGI:-multiwatch}
	E2E_SIDS=
	E2E_MASTER=
	E2E_DIR=$(mktemp -d "${TMPDIR:-/tmp}/pushcgi-e2e.XXXXXX") || return 1
	case $kind in
	apache-*) E2E_PIDFILE=$E2E_DIR/httpd.pid ;;
	lighttpd-*) E2E_PIDFILE=$E2E_DIR/lighttpd.pid ;;
	nginx) E2E_PIDFILE=$E2E_DIR/nginx.pid ;;
	esac
	# Stop whatever was started, whatever happens to the caller, unless
	# the caller has its own EXIT trap (which must call e2e_stop).
	[ -n "$(trap -p EXIT)" ] || trap e2e_stop EXIT
	[ -n "$(trap -p INT)" ] || trap 'exit 130' INT
	[ -n "$(trap -p TERM)" ] || trap 'exit 143' TERM

	if [ "$(id -u)" -eq 0 ]; then
		# The servers write sockets, temp files and (lighttpd, when it
		# restarts a FastCGI server) re-create sockets as that user.
		chmod 0755 "$E2E_DIR" &&
		    chown "$E2E_RUN_USER:$E2E_RUN_GROUP" "$E2E_DIR" &&
		    e2e_share_db || { e2e_stop; return 1; }
		# A tree under a private folder (a home, a mktemp -d) is out
		# of the server user's reach: serve copies from the run
		# folder then.
		if ! e2e_as_user test -r "$CGIBIN" -a -x "$CGIBIN"; then
			cp -a "$CGIBIN" "$E2E_DIR/cgi-bin" &&
			    chmod -R a+rX "$E2E_DIR/cgi-bin" ||
			    { e2e_stop; return 1; }
			CGIBIN=$E2E_DIR/cgi-bin
		fi
		if ! e2e_as_user test -r "$DOCROOT" -a -x "$DOCROOT"; then
			cp -a "$DOCROOT" "$E2E_DIR/www" &&
			    chmod -R a+rX "$E2E_DIR/www" ||
			    { e2e_stop; return 1; }
			DOCROOT=$E2E_DIR/www
		fi
	fi
	e2e_render "$tpl" "$E2E_DIR/$kind.conf" || { e2e_stop; return 1; }
	case $kind in
	apache-proxy-fcgi|nginx)
		e2e_spawn || { e2e_stop; return 1; } ;;
	esac

	# Each server detaches (daemon mode) and so leads a new session:
	# every process it starts is found again through that session.
	case $kind in
	apache-*)
		env -i PATH="$E2E_PATH" "$bin" -d "$E2E_DIR" \
		    -f "$E2E_DIR/$kind.conf" -k start \
		    >"$E2E_DIR/start.log" 2>&1 ;;
	lighttpd-*)
		env -i PATH="$E2E_PATH" "$bin" -f "$E2E_DIR/$kind.conf" \
		    >"$E2E_DIR/start.log" 2>&1 ;;
	nginx)
		env -i PATH="$E2E_PATH" "$bin" -p "$E2E_DIR" \
		    -c "$E2E_DIR/$kind.conf" -e "$E2E_DIR/error.log" \
		    >"$E2E_DIR/start.log" 2>&1 ;;
	esac
	code=$?
	for ((i = 0; i < ${E2E_START_WAIT:-30} * 10; i++)); do
		[ "$code" -eq 0 ] || break
		if [ -z "$E2E_MASTER" ]; then
			E2E_MASTER=$(cat "$E2E_PIDFILE" 2>/dev/null)
			[ -n "$E2E_MASTER" ] &&
			    E2E_SIDS="$(e2e_sid "$E2E_MASTER") $E2E_SIDS"
		fi
		if [ -n "$E2E_MASTER" ] &&
		    curl -s -o /dev/null --max-time 5 "$(e2e_url)"; then
			return 0
		fi
		if [ -n "$E2E_MASTER" ] && ! e2e_alive "$E2E_MASTER"; then
			break
		fi
		sleep 0.1
	done
	e2e_say "$kind did not start on port $port (exit $code)"
	sed 's/^/e2e:   /' "$E2E_DIR/start.log" >&2
	e2e_say "end of $E2E_DIR/error.log:"
	tail -n 30 "$E2E_DIR/error.log" 2>/dev/null | sed 's/^/e2e:   /' >&2
	e2e_stop
	return 1
}

# 0 if process $1 exists and is not a zombie (a zombie has ended; its
# parent, often init, reaps it when it gets round to it).
e2e_alive() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	s=${s##*) }
	[ "${s%% *}" != Z ]
}

# Signal the listed pids, wait up to $2 tenths of a second for all of
# them, then SIGKILL the rest.  $1: signal; rest after $2: pids.
e2e_end_pids() {
	local sig=$1 wait=$2 p i left
	shift 2
	[ $# -gt 0 ] || return 0
	kill "-$sig" "$@" 2>/dev/null
	for ((i = 0; i < wait; i++)); do
		left=0
		for p in "$@"; do
			e2e_alive "$p" && left=1
		done
		[ "$left" -eq 0 ] && return 0
		sleep 0.1
	done
	kill -KILL "$@" 2>/dev/null
	return 1
}

e2e_stop() {
	local r pid left
	[ -n "$E2E_DIR" ] || return 0
	# The web server first: no new requests, its children are ended by
	# it.  TERM is the fast stop of all three (a graceful one would wait
	# for the streams, which do not end by themselves).
	if [ -z "$E2E_MASTER" ]; then
		E2E_MASTER=$(cat "$E2E_PIDFILE" 2>/dev/null)
		[ -n "$E2E_MASTER" ] &&
		    E2E_SIDS="$(e2e_sid "$E2E_MASTER") $E2E_SIDS"
	fi
	if [ -n "$E2E_MASTER" ] && ! e2e_end_pids TERM 150 "$E2E_MASTER"
	then
		e2e_say "$E2E_KIND ($E2E_MASTER) did not stop: killed"
	fi
	# The FastCGI servers we started (multiwatch stops its child with
	# the -s signal and ends after it, restarting nothing).
	for r in $E2E_RESPONDERS; do
		pid=$(cat "$E2E_DIR/$r.pid" 2>/dev/null) || continue
		e2e_end_pids TERM $((${E2E_STOP_WAIT:-5} * 10)) "$pid" ||
		    e2e_say "$r ($pid) did not stop on SIGTERM: killed"
	done
	# Anything left in their sessions (CGI programs whose server died
	# first, processes that ignored the signal) is ours too.
	left=$(e2e_procs | tr '\n' ' ')
	if [ -n "$left" ]; then
		e2e_say "leftover processes after the stop: $left"
		e2e_end_pids TERM 30 $left
	fi
	if [ "${E2E_KEEP:-0}" = 1 ]; then
		e2e_say "kept $E2E_DIR"
	else
		rm -rf "$E2E_DIR"
	fi
	E2E_DIR=
	E2E_SIDS=
	E2E_MASTER=
}

e2e_restart() {
	local kind=$E2E_KIND port=$E2E_PORT way=$E2E_FCGI_WAY
	[ -n "$kind" ] || { e2e_say "nothing to restart"; return 1; }
	e2e_stop
	E2E_FCGI=$way e2e_start "$kind" "$port"
}

# The variables that make up a server's state, for e2e_save and e2e_use.
E2E_STATE="E2E_KIND E2E_PORT E2E_DIR E2E_SIDS E2E_MASTER E2E_PIDFILE
E2E_FCGI_WAY CGIBIN DOCROOT PUSHCGI_DB PUSHCGI_CONF"

e2e_save() {
	local v
	for v in $E2E_STATE; do
		eval "E2E_SAVED_${1}_$v=\${$v:-}"
	done
	E2E_DIR=
	E2E_SIDS=
	E2E_MASTER=
}

e2e_use() {
	local v
	for v in $E2E_STATE; do
		eval "$v=\${E2E_SAVED_${1}_$v:-}"
	done
}
