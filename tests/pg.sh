#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests and the benchmark: a
# folder from mktemp, a free port on 127.0.0.1 and a socket in the folder,
# fsync off unless PG_FSYNC=on, removed at the end.  No service, no
# system cluster is touched.
#
# Sourced:
#   . tests/pg.sh
#   pg_have                 0 if the server binaries are installed
#   pg_up || exit           start one; sets PG_DIR and PG_URI (a database
#                           "pushcgi_test" owned by the cluster's user)
#   pg_down                 stop it and remove its folder
# Run, for a program that stops and starts the cluster it was given:
#   tests/pg.sh stop [DIR]  pg_ctl stop -m fast (DIR: default $PG_DIR)
#   tests/pg.sh start [DIR] start it again on the same port
#
# initdb refuses to run as root.  As root, the cluster runs as PG_USER
# (default nobody): the folder is chowned to it and every server command
# goes through runuser; the tests connect as that role over TCP.
# PG_BIN overrides the folder of the server binaries; PG_MAX_CONNECTIONS
# (default 50) the server's max_connections, read at every start (each
# FastCGI responder process holds 2 connections and at most 1 listener,
# each pushctl 1-2).
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_DB=pushcgi_test

pg_have() {
	[ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/pg_ctl" ]
}

# Run a server command as the cluster's user.
pg_as() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u "${PG_USER:-nobody}" -- "$@"
	else
		"$@"
	fi
}

pg_role() {
	if [ "$(id -u)" = 0 ]; then echo "${PG_USER:-nobody}"; else id -un; fi
}

pg_port_busy() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# pg_ctl start on the port in $1/port.
pg_start_dir() {
	local d=$1 port
	port=$(cat "$d/port") || return 1
	pg_as "$PG_BIN/pg_ctl" -D "$d/data" -l "$d/server.log" -w -t 60 \
	    -o "-p $port -k $d/sock -c listen_addresses=127.0.0.1 \
-c fsync=${PG_FSYNC:-off} -c max_connections=${PG_MAX_CONNECTIONS:-50}" start >/dev/null
}

pg_stop_dir() {
	pg_as "$PG_BIN/pg_ctl" -D "$1/data" -m fast -w stop >/dev/null
}

pg_up() {
	local tries port
	pg_have || { echo "no PostgreSQL server binaries in $PG_BIN" >&2; return 1; }
	PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/pushcgi-pg.XXXXXX") || return 1
	mkdir -p "$PG_DIR/sock" || return 1
	if [ "$(id -u)" = 0 ]; then
		chown -R "${PG_USER:-nobody}" "$PG_DIR" || return 1
	fi
	pg_as "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U "$(pg_role)" \
	    >"$PG_DIR/initdb.log" 2>&1 ||
		{ echo "initdb failed:" >&2; tail -5 "$PG_DIR/initdb.log" >&2; return 1; }
	# A random free port below the kernel's ephemeral range (where an
	# outgoing connection may hold it); another run may take it first:
	# try again.
	for tries in 1 2 3 4 5; do
		port=$((20000 + RANDOM % 12000))
		while pg_port_busy "$port"; do port=$((port + 1)); done
		echo "$port" >"$PG_DIR/port"
		pg_start_dir "$PG_DIR" 2>/dev/null && break
		port=
	done
	[ -n "$port" ] ||
		{ echo "the cluster did not start:" >&2; tail -5 "$PG_DIR/server.log" >&2; return 1; }
	pg_as "$PG_BIN/createdb" -h "$PG_DIR/sock" -p "$port" "$PG_DB" ||
		{ pg_down; return 1; }
	PG_URI="postgresql://$(pg_role)@127.0.0.1:$port/$PG_DB"
	export PG_DIR PG_URI
}

pg_down() {
	[ -n "${PG_DIR:-}" ] && [ -d "$PG_DIR" ] || return 0
	pg_stop_dir "$PG_DIR" 2>/dev/null
	rm -rf "$PG_DIR"
	PG_DIR=
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	case "${1:-}" in
	stop) pg_stop_dir "${2:-$PG_DIR}" ;;
	start) pg_start_dir "${2:-$PG_DIR}" ;;
	*) echo "usage: $0 stop|start DIR" >&2; exit 100 ;;
	esac
fi
