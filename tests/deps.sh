# Sourced by the demo and the test runner: make sure Debian packages are
# installed.  As root they are installed with apt-get; otherwise the exact
# command to run is printed and the caller stops.
#
#   deps_need PACKAGE...     returns 0 when all are installed

deps_missing() {
	for p in "$@"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
			grep -q 'install ok installed' || printf '%s ' "$p"
	done
}

deps_need() {
	missing=$(deps_missing "$@")
	[ -z "$missing" ] && return 0
	if [ "$(id -u)" = 0 ]; then
		echo "installing: $missing" >&2
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq >&2 &&
			apt-get install -y -qq --no-install-recommends $missing >&2 ||
			{ echo "apt-get install failed" >&2; return 1; }
		# Debian enables the packaged servers at install time; the
		# tests start their own, on their own ports.
		for s in apache2 lighttpd nginx; do
			if [ -x /etc/init.d/$s ]; then
				/etc/init.d/$s stop >/dev/null 2>&1 || true
			fi
		done
		return 0
	fi
	echo "missing packages; run as root:" >&2
	echo "  apt-get install -y $missing" >&2
	return 1
}

# What building needs.
DEPS_BUILD="build-essential autoconf automake pkg-config libsqlite3-dev \
libfcgi-dev check nettle-dev libpq-dev sqlite3 curl procps groff"
# What the end-to-end, browser and memory tests need on top.
DEPS_TEST="lighttpd apache2 libapache2-mod-fcgid nginx libnginx-mod-nchan \
spawn-fcgi multiwatch systemd chromium valgrind python3 dpkg-dev debhelper lintian \
postgresql-15"
