#!/usr/bin/env bash
# DLNA Browse of a container of 10,000 songs, 100 per page, every page
# walked as a TV does: Glow against minidlna in the same run, in a network
# namespace of its own (neither server's SSDP reaches a real network).
#
#   benches/dlna.sh          # needs root, minidlna, python3 (apt-get install minidlna python3)
#
# Both index the same folder first (the time is not counted); then each walk
# (one curl process, every page in turn, a new connection per request since
# minidlna closes every connection) is timed RUNS times, alternating servers,
# without and then with a SortCriteria.
# Prints the medians and the ratio Glow / minidlna (lower is better).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${GLOW_BENCH_NETNS:-}" ]; then
  [ "$(id -u)" = 0 ] || { echo "benches/dlna.sh needs root (for its own network namespace)"; exit 1; }
  exec env GLOW_BENCH_NETNS=1 unshare --net -- "$0" "$@"
fi
ip link set lo up
ip link set lo multicast on
ip route add 239.0.0.0/8 dev lo 2>/dev/null || true

ENTRIES=${ENTRIES:-10000}
RUNS=${RUNS:-7}
PAGE=${PAGE:-100}
GLOW_PORT=${GLOW_PORT:-18581}
MINI_PORT=${MINI_PORT:-18590}
for tool in minidlnad python3 curl; do
  command -v "$tool" >/dev/null || { echo "benches/dlna.sh needs $tool (apt-get install minidlna python3 curl)"; exit 1; }
done
[ -x target/release/glow ] || cargo build --release
GLOW=$PWD/target/release/glow

work=$(mktemp -d /var/tmp/glow-dlnabench.XXXXXX)
chmod 755 "$work"
cleanup() {
  [ -n "${glow_pid:-}" ] && kill "$glow_pid" 2>/dev/null || true
  [ -f "$work/minidlna.pid" ] && kill "$(cat "$work/minidlna.pid")" 2>/dev/null || true
  [ -n "${mini_pid:-}" ] && kill "$mini_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# 10,000 tiny songs: four silent MPEG-1 Layer III frames each (128 kbit/s,
# 44.1 kHz: 417 bytes a frame), which both servers parse as MP3.
mkdir -p "$work/media/big"
python3 - "$work/media/big" "$ENTRIES" <<'PY'
import os, sys
frame = b"\xff\xfb\x90\x00" + bytes(413)
dest, n = sys.argv[1], int(sys.argv[2])
for i in range(1, n + 1):
    with open(os.path.join(dest, f"track{i:05d}.mp3"), "wb") as f:
        f.write(frame * 4)
PY

cat > "$work/minidlna.conf" <<CONF
media_dir=A,$work/media
port=$MINI_PORT
db_dir=$work/minidlna-db
log_dir=$work/minidlna-log
log_level=general,artwork,database,inotify,scanner,metadata,http,ssdp,tivo=warn
friendly_name=minidlna-bench
inotify=no
network_interface=lo
CONF
minidlnad -f "$work/minidlna.conf" -P "$work/minidlna.pid" -R -S &
mini_pid=$!
GLOW_ADMIN_PASSWORD=bench-password-1 GLOW_LOG=info "$GLOW" serve "$work/media" --data-dir "$work/glow-data" \
  --http "127.0.0.1:$GLOW_PORT" --dlna "127.0.0.1:$((GLOW_PORT + 1))" --no-sftp > "$work/glow.log" 2>&1 &
glow_pid=$!

G_URL="http://127.0.0.1:$((GLOW_PORT + 1))/dlna/cds/control"
M_URL="http://127.0.0.1:$MINI_PORT/ctl/ContentDir"
until grep -q 'media indexed' "$work/glow.log"; do
  kill -0 "$glow_pid" 2>/dev/null || { echo "glow stopped:"; tail -5 "$work/glow.log"; exit 1; }
  sleep 0.5
done
# minidlna scans in a child process: wait until the folder is complete.
until python3 benches/dlna_browse.py "$M_URL" "Music/Folders/big" "$ENTRIES" 1000 >/dev/null 2>&1; do
  kill -0 "$mini_pid" 2>/dev/null || { echo "minidlna stopped:"; cat "$work"/minidlna-log/* 2>/dev/null | tail -5; exit 1; }
  sleep 1
done
sleep 2

# One curl run walks every page (a new connection per request: minidlna
# closes each one anyway); the same requests and headers for both servers.
walk_config() { # URL ID SORT > config
  local start
  for start in $(seq 0 "$PAGE" $((ENTRIES - 1))); do
    [ "$start" = 0 ] || echo next
    local body="<?xml version=\"1.0\" encoding=\"utf-8\"?><s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body><u:Browse xmlns:u=\"urn:schemas-upnp-org:service:ContentDirectory:1\"><ObjectID>$2</ObjectID><BrowseFlag>BrowseDirectChildren</BrowseFlag><Filter>*</Filter><StartingIndex>$start</StartingIndex><RequestedCount>$PAGE</RequestedCount><SortCriteria>$3</SortCriteria></u:Browse></s:Body></s:Envelope>"
    printf 'url = "%s"\ndata-binary = "%s"\nheader = "Content-Type: text/xml; charset=utf-8"\nheader = "SOAPACTION: \\"urn:schemas-upnp-org:service:ContentDirectory:1#Browse\\""\nheader = "Connection: close"\noutput = "/dev/null"\n' "$1" "${body//\"/\\\"}"
  done
}
timed() { local t0 t1; t0=$(date +%s.%N); curl -s -K "$1"; t1=$(date +%s.%N); python3 -c "print(f'{$t1 - $t0:.4f}')"; }
median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

g_id=$(python3 benches/dlna_browse.py "$G_URL" "media/big" "$ENTRIES" "$PAGE")
m_id=$(python3 benches/dlna_browse.py "$M_URL" "Music/Folders/big" "$ENTRIES" "$PAGE")
for sort in "" "+dc:title"; do
  # Both give every page in full (checked once, with the sort too).
  python3 benches/dlna_browse.py "$G_URL" "media/big" "$ENTRIES" "$PAGE" "$sort" >/dev/null
  python3 benches/dlna_browse.py "$M_URL" "Music/Folders/big" "$ENTRIES" "$PAGE" "$sort" >/dev/null
  walk_config "$G_URL" "$g_id" "$sort" > "$work/g.cfg"
  walk_config "$M_URL" "$m_id" "$sort" > "$work/m.cfg"
  : > "$work/g.txt"; : > "$work/m.txt"
  for _ in $(seq 1 "$RUNS"); do
    timed "$work/g.cfg" >> "$work/g.txt"
    timed "$work/m.cfg" >> "$work/m.txt"
  done
  g=$(median < "$work/g.txt"); m=$(median < "$work/m.txt")
  echo "Browse of $ENTRIES items, $PAGE per page, SortCriteria '${sort}': glow ${g}s, minidlna ${m}s, ratio $(python3 -c "print(f'{$g / $m:.2f}x')")"
done
rss=$(awk '/VmHWM/ {print $2}' "/proc/$glow_pid/status")
echo "glow peak RSS: $((rss / 1024)) MiB"
