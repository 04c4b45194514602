#!/usr/bin/env bash
# WebDAV PROPFIND Depth 1 on a folder of 10,000 entries: Glow against
# apache2 with mod_dav (the reference implementation), in the same run.
#
#   benches/webdav.sh          # needs apache2 and curl (apt-get install apache2 curl)
#
# Both use HTTP Basic auth (apache with a bcrypt htpasswd entry checked once
# per request, Glow with its credential cache). Prints the median latency of
# each and the ratio, plus Glow's peak memory: the multistatus should stream.
set -euo pipefail
cd "$(dirname "$0")/.."

ENTRIES=${ENTRIES:-10000}
RUNS=${RUNS:-15}
GLOW_PORT=${GLOW_PORT:-18491}
APACHE_PORT=${APACHE_PORT:-18492}
PW=bench-password-1
for tool in apache2 curl htpasswd; do
  command -v "$tool" >/dev/null || { echo "benches/webdav.sh needs $tool (apt-get install apache2 apache2-utils curl)"; exit 1; }
done
[ -x target/release/glow ] || cargo build --release
GLOW=$PWD/target/release/glow

work=$(mktemp -d /var/tmp/glow-davbench.XXXXXX)
chmod 755 "$work"
cleanup() {
  [ -n "${glow_pid:-}" ] && kill "$glow_pid" 2>/dev/null || true
  [ -f "$work/httpd.pid" ] && kill "$(cat "$work/httpd.pid")" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/www/many" "$work/apache"
for i in $(seq -f '%05g' 1 "$ENTRIES"); do : > "$work/www/many/f$i.txt"; done
chmod -R a+rwX "$work/www"
htpasswd -bcB "$work/htpasswd" admin "$PW" 2>/dev/null

M=/usr/lib/apache2/modules
cat > "$work/httpd.conf" <<CONF
ServerRoot $work/apache
PidFile $work/httpd.pid
Listen 127.0.0.1:$APACHE_PORT
ServerName localhost
ErrorLog $work/apache/error.log
LoadModule mpm_event_module $M/mod_mpm_event.so
LoadModule authz_core_module $M/mod_authz_core.so
LoadModule authn_core_module $M/mod_authn_core.so
LoadModule authn_file_module $M/mod_authn_file.so
LoadModule authz_user_module $M/mod_authz_user.so
LoadModule auth_basic_module $M/mod_auth_basic.so
LoadModule dav_module $M/mod_dav.so
LoadModule dav_fs_module $M/mod_dav_fs.so
DavLockDB $work/apache/davlock
User www-data
Group www-data
DocumentRoot $work/www
<Directory $work/www>
  Dav On
  AuthType Basic
  AuthName "bench"
  AuthUserFile $work/htpasswd
  Require valid-user
</Directory>
CONF
apache2 -f "$work/httpd.conf" -k start
GLOW_ADMIN_PASSWORD=$PW GLOW_LOG=info "$GLOW" serve "$work/www" --data-dir "$work/glow-data" \
  --http "127.0.0.1:$GLOW_PORT" > "$work/glow.log" 2>&1 &
glow_pid=$!
until curl -s -o /dev/null "http://127.0.0.1:$GLOW_PORT/healthz" && curl -s -o /dev/null "http://127.0.0.1:$APACHE_PORT/"; do sleep 0.5; done
# Measure only once the first scan has indexed the folder (it runs in the
# background after start-up and would otherwise share the CPU with the bench).
until grep -q 'folder indexed' "$work/glow.log"; do sleep 0.5; done

# Prints "total first_byte" in seconds.
propfind() { curl -s -o "$work/out.xml" -u "admin:$PW" -X PROPFIND -H 'Depth: 1' -w '%{time_total} %{time_starttransfer}\n' "$1"; }
count() { grep -o '<[A-Za-z]*:response[ >]' "$work/out.xml" | wc -l; }
median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

g_url="http://127.0.0.1:$GLOW_PORT/dav/www/many/"
a_url="http://127.0.0.1:$APACHE_PORT/many/"
propfind "$g_url" >/dev/null; g_n=$(count)
propfind "$a_url" >/dev/null; a_n=$(count)
[ "$g_n" -eq $((ENTRIES + 1)) ] || { echo "Glow answered $g_n responses, not $((ENTRIES + 1))"; exit 1; }
[ "$a_n" -eq $((ENTRIES + 1)) ] || { echo "apache answered $a_n responses, not $((ENTRIES + 1))"; exit 1; }

: > "$work/g.txt"; : > "$work/a.txt"
for _ in $(seq "$RUNS"); do   # paired: one of each per round
  propfind "$g_url" >> "$work/g.txt"
  propfind "$a_url" >> "$work/a.txt"
done
g=$(cut -d' ' -f1 "$work/g.txt" | median); g1=$(cut -d' ' -f2 "$work/g.txt" | median)
a=$(cut -d' ' -f1 "$work/a.txt" | median); a1=$(cut -d' ' -f2 "$work/a.txt" | median)
rss=$(awk '/VmHWM/ {print $2}' "/proc/$glow_pid/status")
echo
printf 'PROPFIND Depth 1, %s entries, median of %s\n' "$ENTRIES" "$RUNS"
printf '  glow   %8.1f ms (first byte %.1f ms)\n' "$(awk -v x="$g" 'BEGIN { print x * 1000 }')" "$(awk -v x="$g1" 'BEGIN { print x * 1000 }')"
printf '  apache %8.1f ms (first byte %.1f ms)\n' "$(awk -v x="$a" 'BEGIN { print x * 1000 }')" "$(awk -v x="$a1" 'BEGIN { print x * 1000 }')"
printf '  latency ratio glow/apache: %.2fx (goal <= 0.5x)\n' "$(awk -v g="$g" -v a="$a" 'BEGIN { print g / a }')"
printf '  first byte glow: %.1f ms (goal <= 5 ms)\n' "$(awk -v x="$g1" 'BEGIN { print x * 1000 }')"
printf '  glow peak RSS: %d MiB\n' "$((rss / 1024))"
