#!/usr/bin/env bash
# The Debian package, built and used as an administrator would: build it
# with dpkg-buildpackage from a copy of the tree, check it with lintian,
# install it with dpkg, check the Apache snippets with apache2 -t and enable
# one with a2enconf, enable the lighttpd snippet with lighty-enable-mod
# and serve it from a throwaway lighttpd (its own config in a temporary
# folder, on a free 127.0.0.1 port, including the enabled snippet), stream
# SSE through /cgi-bin/push-stream while publishing with /usr/bin/pushctl
# and push-publish, then purge it and check that nothing of it is left.
#
#   top_srcdir=. bash tests/e2e/deb.sh
#
# Root only (it installs and purges packages on this machine): otherwise
# it says "not ok - needs root".  A pushcgi package installed before the
# test is left alone (not ok).  Bounded: the build gets 300 s, each wait
# a few seconds.  Prints "ok - ..." / "not ok - ..." lines.
set -u
S=$(cd "${top_srcdir:-.}" && pwd)
fails=0
. "$S/tests/tap.sh" || exit 99

if [ "$(id -u)" -ne 0 ]; then
	nok "needs root (installs and purges the package)"
	exit 1
fi
for c in dpkg-buildpackage lintian lighttpd lighty-enable-mod curl; do
	command -v "$c" >/dev/null || PATH=$PATH:/usr/sbin:/sbin
	command -v "$c" >/dev/null || { nok "$c is installed (tests/deps.sh)"; exit 1; }
done
if dpkg-query -W -f='${Status}' pushcgi 2>/dev/null | grep -q 'installed'; then
	nok "pushcgi is not installed before the test (left alone)"
	exit 1
fi

tmp=$(mktemp -d)
chmod 0755 "$tmp"
lpid=
spid=
installed=0
cleanup() {
	[ -n "$spid" ] && kill "$spid" 2>/dev/null
	[ -n "$lpid" ] && kill "$lpid" 2>/dev/null && wait "$lpid" 2>/dev/null
	if [ $installed -eq 1 ]; then
		dpkg --purge pushcgi libpushcgi-dev >/dev/null 2>&1
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

# 1. Build from a copy: dpkg-buildpackage writes its results to ../.
mkdir -p "$tmp/b/pushcgi"
if git -C "$S" rev-parse --git-dir >/dev/null 2>&1; then
	(cd "$S" && git ls-files -co --exclude-standard -z |
		xargs -0 tar -cf - --no-recursion) | tar -xf - -C "$tmp/b/pushcgi"
else
	tar -C "$S" --exclude='./_build*' -cf - . | tar -xf - -C "$tmp/b/pushcgi"
fi
t0=$SECONDS
(cd "$tmp/b/pushcgi" && DEB_BUILD_OPTIONS=parallel=2 timeout 300 \
    nice dpkg-buildpackage -us -uc -b) >"$tmp/build.log" 2>&1
rc=$?
if [ $rc -eq 0 ]; then
	ok "dpkg-buildpackage -us -uc -b builds the packages ($((SECONDS - t0)) s)"
else
	nok "dpkg-buildpackage -us -uc -b builds the packages (exit $rc)"
	tail -n 30 "$tmp/build.log" | sed 's/^/# /'
	exit 1
fi
deb=$(ls "$tmp"/b/pushcgi_*.deb | head -1)
dev=$(ls "$tmp"/b/libpushcgi-dev_*.deb | head -1)
check "the build made pushcgi and libpushcgi-dev" test -f "$deb" -a -f "$dev"

# 2. lintian: no error.
lintian "$tmp"/b/pushcgi_*.changes >"$tmp/lintian" 2>&1
sed 's/^/# lintian: /' "$tmp/lintian"
check "lintian reports no error" bash -c "! grep -q '^E:' '$tmp/lintian'"

# 3. What goes where, before installing.
dpkg -c "$deb" | awk '{ print $NF }' | sed 's|^\./|/|' >"$tmp/deb.list"
for f in /usr/bin/pushctl /usr/lib/cgi-bin/push-stream \
    /usr/lib/cgi-bin/push-poll /usr/lib/cgi-bin/push-publish \
    /etc/pushcgi.conf /etc/apache2/conf-available/pushcgi-cgi.conf \
    /etc/apache2/conf-available/pushcgi-fcgid.conf \
    /etc/lighttpd/conf-available/90-pushcgi.conf \
    /usr/share/bash-completion/completions/pushctl \
    /usr/share/man/man1/pushctl.1.gz /usr/share/man/man5/pushcgi.conf.5.gz \
    /usr/share/man/man7/pushcgi.7.gz /usr/share/man/man8/push-stream.8.gz \
    /usr/share/man/man8/push-poll.8.gz /usr/share/man/man8/push-publish.8.gz \
    /lib/systemd/system/push-stream.socket \
    /lib/systemd/system/push-stream.service \
    /lib/systemd/system/push-poll.socket /lib/systemd/system/push-poll.service \
    /lib/systemd/system/push-publish.socket \
    /lib/systemd/system/push-publish.service; do
	check "pushcgi ships $f" grep -qxF "$f" "$tmp/deb.list"
done
check "the units run the responders from /usr/lib/cgi-bin on /var/lib/pushcgi" \
    bash -c "dpkg --fsys-tarfile '$deb' | tar -xOf - ./lib/systemd/system/push-stream.service | grep -q '/usr/lib/cgi-bin/push-stream' &&
	dpkg --fsys-tarfile '$deb' | tar -xOf - ./lib/systemd/system/push-stream.service | grep -q '/var/lib/pushcgi'"
check "pushcgi does not ship /var/lib/pushcgi (postinst makes it)" \
    bash -c "! grep -q '^/var/lib/pushcgi' '$tmp/deb.list'"
dpkg -c "$dev" | awk '{ print $NF }' | sed 's|^\./|/|' >"$tmp/dev.list"
for f in /usr/include/pushcgi.h /usr/share/man/man3/pushcgi.3.gz; do
	check "libpushcgi-dev ships $f" grep -qxF "$f" "$tmp/dev.list"
done
check "libpushcgi-dev ships libpushcgi.a and pushcgi.pc" bash -c \
    "grep -q '/libpushcgi\\.a\$' '$tmp/dev.list' && grep -q '/pkgconfig/pushcgi\\.pc\$' '$tmp/dev.list'"

# 4. Install, as dpkg does it (apt-get -f for a missing dependency).
existed_var=0
[ -e /var/lib/pushcgi ] && existed_var=1
installed=1
if ! dpkg -i "$deb" "$dev" >"$tmp/dpkg.log" 2>&1; then
	DEBIAN_FRONTEND=noninteractive apt-get install -f -y -qq \
	    >>"$tmp/dpkg.log" 2>&1
fi
check "dpkg installs both packages" bash -c \
    "dpkg-query -W -f='\${Status}\n' pushcgi libpushcgi-dev | grep -c 'install ok installed' | grep -qx 2"
dpkg -L pushcgi libpushcgi-dev | sort -u >"$tmp/installed.list"
check "/etc/pushcgi.conf is a conffile" bash -c \
    "dpkg-query -W -f='\${Conffiles}\n' pushcgi | grep -q '^ /etc/pushcgi.conf '"
check "postinst made /var/lib/pushcgi, owned by www-data" \
    [ "$(stat -c %U:%G 2>/dev/null /var/lib/pushcgi)" = www-data:www-data ]
check "pushctl is /usr/bin/pushctl" [ "$(command -v pushctl)" = /usr/bin/pushctl ]
check "pushctl's built-in log is /var/lib/pushcgi/pushcgi.db" bash -c \
    "env -u PUSHCGI_DB -u PUSHCGI_CONF pushctl --help | grep -q '/var/lib/pushcgi/pushcgi.db'"
check "the installed pushctl(1) renders with no warning" bash -c \
    "zcat /usr/share/man/man1/pushctl.1.gz | groff -ww -mandoc -z 2>&1 | { ! grep -q .; }"
cat >"$tmp/temps.c" <<'EOF'
#include <stdio.h>
#include <pushcgi.h>
int
main(int argc, char **argv)
{
	char err[256];
	struct pushcgi *p = pushcgi_open(argv[1], err, sizeof err);
	int64_t id;

	if (p == NULL || argc < 2 ||
	    pushcgi_publish(p, "temps", NULL, NULL, "21.5", 4, &id) != 0)
		return 1;
	printf("%lld\n", (long long)id);
	pushcgi_close(p);
	return 0;
}
EOF
check "a program builds against libpushcgi-dev with pkg-config" bash -c \
    "cc -o '$tmp/temps' '$tmp/temps.c' \$(pkg-config --cflags --libs pushcgi)"
check "  ...and publishes through the C API" bash -c \
    "[ \"\$('$tmp/temps' '$tmp/c.db')\" = 1 ] && [ \"\$(pushctl --db '$tmp/c.db' tail --raw -n 1 temps)\" = 21.5 ]"

# The Apache snippets: each passes apache2 -t in a minimal server of its
# own with the modules it is for (when Apache and mod_fcgid are here).
M=/usr/lib/apache2/modules
for v in cgi:cgid fcgid:fcgid; do
	snip=/etc/apache2/conf-available/pushcgi-${v%%:*}.conf mod=${v#*:}
	if ! command -v apache2 >/dev/null || [ ! -f "$M/mod_$mod.so" ]; then
		echo "# not run (needs apache2 and mod_$mod): apache2 -t on $snip"
		continue
	fi
	cat >"$tmp/apache-$mod.conf" <<EOF
ServerRoot "$tmp"
DefaultRuntimeDir "$tmp"
PidFile "$tmp/apache.pid"
ErrorLog "$tmp/apache-error.log"
LoadModule mpm_event_module $M/mod_mpm_event.so
LoadModule authz_core_module $M/mod_authz_core.so
LoadModule alias_module $M/mod_alias.so
LoadModule env_module $M/mod_env.so
LoadModule ${mod}_module $M/mod_$mod.so
Listen 127.0.0.1:$((20000 + RANDOM % 30000))
ServerName 127.0.0.1
ScriptAlias /cgi-bin/ /usr/lib/cgi-bin/
Include $snip
EOF
	check "apache2 -t accepts $snip (a2enconf pushcgi-${v%%:*})" \
	    bash -c "apache2 -t -f '$tmp/apache-$mod.conf' >/dev/null 2>&1"
done
a2en=0
if command -v a2enconf >/dev/null && [ -d /etc/apache2/conf-enabled ]; then
	a2enconf -q pushcgi-cgi >/dev/null 2>&1
	check "a2enconf pushcgi-cgi enables the snippet" \
	    test -L /etc/apache2/conf-enabled/pushcgi-cgi.conf
	a2en=1
fi

# 5. A throwaway lighttpd that includes the snippet lighty-enable-mod
# enabled, with publishing opened by a token in the installed config.
printf 'publish_token = deb-test-token\n' >>/etc/pushcgi.conf
lighty-enable-mod pushcgi >"$tmp/enable.log" 2>&1
check "lighty-enable-mod pushcgi enables the snippet" \
    test -L /etc/lighttpd/conf-enabled/90-pushcgi.conf -a \
    -e /etc/lighttpd/conf-enabled/90-pushcgi.conf
made_run=0
if [ ! -d /run/lighttpd ]; then
	install -d -o www-data -g www-data /run/lighttpd && made_run=1
fi
port=$((20000 + RANDOM % 30000))
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
	port=$((port + 1))
done
mkdir -p "$tmp/www"
install -d -o www-data -g www-data "$tmp/log"  # lighttpd opens it as www-data
cat >"$tmp/lighttpd.conf" <<EOF
server.document-root = "$tmp/www"
server.bind = "127.0.0.1"
server.port = $port
server.username = "www-data"
server.groupname = "www-data"
server.errorlog = "$tmp/log/error.log"
include "/etc/lighttpd/conf-enabled/90-pushcgi.conf"
EOF
check "lighttpd accepts the config with the snippet" \
    lighttpd -tt -f "$tmp/lighttpd.conf"
lighttpd -D -f "$tmp/lighttpd.conf" >"$tmp/lighttpd.out" 2>&1 &
lpid=$!
for i in $(seq 50); do
	(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
	sleep 0.1
done
url="http://127.0.0.1:$port/cgi-bin"
curl -sN --max-time 20 "$url/push-stream?channel=debtest&format=sse" \
    >"$tmp/sse" 2>/dev/null &
spid=$!
for i in $(seq 100); do
	grep -q '^event: stream' "$tmp/sse" 2>/dev/null && break
	sleep 0.1
done
check "an SSE stream opens through /cgi-bin/push-stream" grep -q '^event: stream' "$tmp/sse"
grep -q '^event: stream' "$tmp/sse" ||
	sed 's/^/# lighttpd: /' "$tmp/log/error.log" "$tmp/lighttpd.out" 2>/dev/null
check "the stream's responder made the log, as www-data" \
    [ "$(stat -c %U 2>/dev/null /var/lib/pushcgi/pushcgi.db)" = www-data ]
check "/usr/bin/pushctl publishes (as root, to www-data's log)" \
    bash -c "pushctl send -q debtest from-pushctl"
code=$(curl -s -o "$tmp/pub" -w '%{http_code}' --max-time 10 \
    -H 'Authorization: Bearer deb-test-token' -H 'Content-Type: text/plain' \
    --data-binary from-push-publish "$url/push-publish?channel=debtest")
check "push-publish publishes with the configured token (201)" [ "$code" = 201 ]
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 \
    --data-binary x "$url/push-publish?channel=debtest")
check "push-publish refuses without a token (403)" [ "$code" = 403 ]
for i in $(seq 100); do
	grep -q '^data: from-push-publish' "$tmp/sse" && break
	sleep 0.1
done
check "the stream got pushctl's message" grep -q '^data: from-pushctl$' "$tmp/sse"
check "the stream got push-publish's message" grep -q '^data: from-push-publish$' "$tmp/sse"
curl -s --max-time 10 "$url/push-poll?channel=debtest&since=0&timeout=0" >"$tmp/poll"
check "push-poll answers with both messages" bash -c \
    "grep -q '\"data\":\"from-pushctl\"' '$tmp/poll' && grep -q '\"data\":\"from-push-publish\"' '$tmp/poll'"
check "root's publish left the bell file to www-data" \
    [ "$(stat -c %U 2>/dev/null /var/lib/pushcgi/pushcgi.db-bell)" = www-data ]
kill "$spid" 2>/dev/null
wait "$spid" 2>/dev/null
spid=
kill "$lpid"
wait "$lpid" 2>/dev/null
lpid=
# The responders' sockets are lighttpd's, not the package's.
rm -f /run/lighttpd/push-stream.sock-* /run/lighttpd/push-poll.sock-* \
    /run/lighttpd/push-publish.sock-*
[ $made_run -eq 1 ] && rm -rf /run/lighttpd

# 6. Purge: nothing of the package is left but what it shares with others.
dpkg --purge pushcgi libpushcgi-dev >"$tmp/purge.log" 2>&1
check "dpkg --purge removes both packages" bash -c \
    "! dpkg-query -W -f='\${Status}\n' pushcgi libpushcgi-dev 2>/dev/null | grep -q 'installed\|config-files'"
installed=0
left=0
while IFS= read -r f; do
	[ -e "$f" ] || [ -L "$f" ] || continue
	# /lib and the like on a merged-/usr system: the system's links.
	[ -L "$f" ] && [ -d "$f" ] && [ "${f%/*}" = "" ] && continue
	if [ -d "$f" ] && [ ! -L "$f" ]; then
		# A folder may stay when it is not empty or another package
		# owns it.
		[ -n "$(ls -A "$f")" ] && continue
		dpkg -S "$f" >/dev/null 2>&1 && continue
	fi
	echo "# left after purge: $f"
	left=$((left + 1))
done <"$tmp/installed.list"
check "nothing dpkg -L listed is left after purge" [ $left -eq 0 ]
check "purge removed /etc/pushcgi.conf (changed by the test)" test ! -e /etc/pushcgi.conf
if [ $existed_var -eq 0 ]; then
	check "purge removed /var/lib/pushcgi and the log" test ! -e /var/lib/pushcgi
fi
check "purge removed the lighttpd snippet's link in conf-enabled" \
    test ! -L /etc/lighttpd/conf-enabled/90-pushcgi.conf
[ $a2en -eq 1 ] && check "purge removed the Apache snippet's link in conf-enabled" \
    test ! -L /etc/apache2/conf-enabled/pushcgi-cgi.conf
[ $fails -eq 0 ]
