#!/usr/bin/env bash
# HTTP file serving: Glow against nginx, in the same run, on this machine.
#
#   benches/http.sh            # needs nginx, wrk, curl (apt-get install nginx-light wrk curl)
#
# Serves one 1 GiB file and a folder of 1,000 small (4 KiB) files from both
# servers, with HTTP Basic auth on both (nginx with a {PLAIN} htpasswd, its
# cheapest check), and prints Glow/nginx ratios in paired rounds (median of
# RUNS): large-file throughput with curl, small-file requests per second and
# p99 latency with wrk.
# Machines here are shared and noisy: read the ratios, not the absolute numbers.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-5}
WRK_SECONDS=${WRK_SECONDS:-10}
WRK_CONNECTIONS=${WRK_CONNECTIONS:-64}
GLOW_PORT=${GLOW_PORT:-18481}
NGINX_PORT=${NGINX_PORT:-18482}
PW=bench-password-1

for tool in nginx wrk curl; do
  command -v "$tool" >/dev/null || { echo "benches/http.sh needs $tool (apt-get install nginx-light wrk curl)"; exit 1; }
done
[ -x target/release/glow ] || cargo build --release
GLOW=$PWD/target/release/glow

work=$(mktemp -d /var/tmp/glow-bench.XXXXXX)
chmod 755 "$work"   # nginx workers run as an unprivileged user
cleanup() {
  [ -n "${glow_pid:-}" ] && kill "$glow_pid" 2>/dev/null || true
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "preparing data in $work"
mkdir -p "$work/www/large" "$work/www/small"
head -c $((1 << 30)) /dev/urandom > "$work/www/large/big.bin"
for i in $(seq -f '%04g' 0 999); do head -c 4096 /dev/urandom > "$work/www/small/f$i.bin"; done
chmod -R a+rX "$work/www"

# --- nginx -------------------------------------------------------------
printf 'admin:{PLAIN}%s\n' "$PW" > "$work/htpasswd"
mkdir -p "$work/nginx-tmp"
cat > "$work/nginx.conf" <<CONF
worker_processes auto;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_requests 1000000;
  client_body_temp_path $work/nginx-tmp;
  proxy_temp_path $work/nginx-tmp;
  fastcgi_temp_path $work/nginx-tmp;
  uwsgi_temp_path $work/nginx-tmp;
  scgi_temp_path $work/nginx-tmp;
  types { application/octet-stream bin; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    root $work/www;
    auth_basic "bench";
    auth_basic_user_file $work/htpasswd;
  }
}
CONF
nginx -c "$work/nginx.conf" -p "$work"

# --- glow --------------------------------------------------------------
GLOW_ADMIN_PASSWORD=$PW GLOW_LOG=warn "$GLOW" serve "$work/www/large" "$work/www/small" \
  --data-dir "$work/glow-data" --http "127.0.0.1:$GLOW_PORT" > "$work/glow.log" 2>&1 &
glow_pid=$!
echo "waiting for Glow to index the folders (the first scan hashes 1 GiB)"
for folder in large small; do
  until GLOW_LOG=error "$GLOW" --data-dir "$work/glow-data" folder verify "admin/$folder" >/dev/null 2>&1; do sleep 1; done
done

glow_url() { echo "http://127.0.0.1:$GLOW_PORT/u/admin/$1"; }
nginx_url() { echo "http://127.0.0.1:$NGINX_PORT/$1"; }

# Both must answer 200 with the same bytes before anything is timed.
for u in "$(glow_url small/f0007.bin)" "$(nginx_url small/f0007.bin)" "$(glow_url large/big.bin)" "$(nginx_url large/big.bin)"; do
  code=$(curl -s -o /dev/null -r 0-0 -u "admin:$PW" -w '%{http_code}' "$u")
  [ "$code" = 206 ] || { echo "$u answered $code"; exit 1; }
done
cmp <(curl -s -u "admin:$PW" "$(glow_url small/f0007.bin)") <(curl -s -u "admin:$PW" "$(nginx_url small/f0007.bin)")

# --- paired rounds ---------------------------------------------------------
# Each round measures Glow and nginx back to back; the ratio of each round is
# kept and the median printed, so that a noisy neighbour hurts one round,
# not the result.
speed() { curl -s -o /dev/null -u "admin:$PW" -w '%{speed_download}' "$1"; }
auth=$(printf 'admin:%s' "$PW" | base64)
lua() {
  cat > "$work/$1.lua" <<LUA
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", string.format("$2/f%04d.bin", counter % 1000), { ["Authorization"] = "Basic $auth" })
end
LUA
}
lua glow "/u/admin/small"
lua nginx "/small"
# Prints "requests/s p99_ms".
rps() {
  local out
  out=$(wrk -t2 -c"$WRK_CONNECTIONS" -d"${WRK_SECONDS}s" --latency -s "$work/$1.lua" "$2")
  if grep -q 'Non-2xx' <<<"$out"; then echo "$1 answered errors under load:" >&2; echo "$out" >&2; exit 1; fi
  local r p
  r=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p=$(awk '$1 == "99%" { v = $2; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v) } else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 } print v }' <<<"$out")
  echo "$r $p"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
mib() { awk -v a="$1" 'BEGIN { printf "%.0f", a / 1048576 }'; }

rps glow "http://127.0.0.1:$GLOW_PORT" >/dev/null   # warm-up
large_ratios=() small_ratios=()
echo
printf '%-6s %22s %22s %30s\n' "round" "1 GiB (MiB/s g/n)" "4 KiB (req/s g/n)" "4 KiB p99 ms (glow/nginx)"
for round in $(seq "$RUNS"); do
  g_large=$(speed "$(glow_url large/big.bin)")
  n_large=$(speed "$(nginx_url large/big.bin)")
  read -r g_small g_p99 <<<"$(rps glow "http://127.0.0.1:$GLOW_PORT")"
  read -r n_small n_p99 <<<"$(rps nginx "http://127.0.0.1:$NGINX_PORT")"
  large_ratios+=("$(ratio "$g_large" "$n_large")")
  small_ratios+=("$(ratio "$g_small" "$n_small")")
  printf '%-6s %22s %22s %30s\n' "$round" "$(mib "$g_large")/$(mib "$n_large") = ${large_ratios[-1]}x" \
    "${g_small%.*}/${n_small%.*} = ${small_ratios[-1]}x" "$g_p99/$n_p99"
done
echo
echo "median of $RUNS paired rounds, Glow / nginx (wrk -t2 -c$WRK_CONNECTIONS, ${WRK_SECONDS}s; curl for 1 GiB):"
echo "  1 GiB file:        $(printf '%s\n' "${large_ratios[@]}" | median)x"
echo "  4 KiB files (rps): $(printf '%s\n' "${small_ratios[@]}" | median)x"
