#!/usr/bin/env bash
# A first start on a real-sized library: `glow serve DIR` on a fresh data dir
# with 31,000 files (10,000 MP3s of about 100 KB in 100 albums, 21,000 small
# documents of about 8 KB in 210 folders; 1.2 GB in all).
#
#   benches/library.sh                         # needs curl
#   GLOW_FLAGS=--no-dlna benches/library.sh    # without the TV front
#
# Prints the time until the catalog is complete (the start-up scan's
# "folder indexed"), the disk the data dir uses for copies once they are
# made, the log lines printed, and the resident memory once the node is
# idle (with the DLNA front on, as `glow serve` runs by default, the media
# index of the 10,000 songs is built ahead for TVs and stays in memory).
# No peer here: these are the numbers a person meets on day one.
set -euo pipefail
cd "$(dirname "$0")/.."

ALBUMS=${ALBUMS:-100}
SONGS=${SONGS:-100}
DOCS_DIRS=${DOCS_DIRS:-210}
DOCS=${DOCS:-100}
GLOW_PORT=${GLOW_PORT:-18495}

[ -x target/release/glow ] || cargo build --release
GLOW=$PWD/target/release/glow

work=$(mktemp -d /var/tmp/glow-library.XXXXXX)
cleanup() {
  [ -n "${glow_pid:-}" ] && kill "$glow_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "making the library in $work/Library"
lib=$work/Library
python3 - "$lib" "$ALBUMS" "$SONGS" "$DOCS_DIRS" "$DOCS" <<'PY'
import os, sys
lib, albums, songs, docs_dirs, docs = sys.argv[1], *map(int, sys.argv[2:])
mp3 = open("tests/media/long.mp3", "rb").read()
for a in range(albums):
    d = os.path.join(lib, "Music", f"Album {a:03}")
    os.makedirs(d)
    for s in range(songs):
        with open(os.path.join(d, f"{s:02} Song {s}.mp3"), "wb") as f:
            f.write(mp3)
            f.write(os.urandom(100_000 - len(mp3)))  # distinct content
for n in range(docs_dirs):
    d = os.path.join(lib, "Documents", f"project-{n:03}")
    os.makedirs(d)
    for i in range(docs):
        with open(os.path.join(d, f"notes-{i:03}.txt"), "wb") as f:
            f.write(os.urandom(4_000).hex().encode())
PY
total=$(du -sb "$lib" | cut -f1)
files=$(find "$lib" -type f | wc -l)
echo "$files files, $((total / 1000000)) MB"

start=$(date +%s.%N)
GLOW_ADMIN_PASSWORD=bench-password-1 "$GLOW" serve "$lib" --data-dir "$work/data" \
  --http "127.0.0.1:$GLOW_PORT" --no-sftp ${GLOW_FLAGS:---dlna 127.0.0.1:0} > "$work/glow.log" 2>&1 &
glow_pid=$!
until grep -q 'folder indexed' "$work/glow.log"; do
  kill -0 "$glow_pid" 2>/dev/null || { cat "$work/glow.log"; exit 1; }
  sleep 0.1
done
indexed=$(date +%s.%N)
# Copies are made after the scan; wait until the blob store stops growing.
prev=-1
while :; do
  sleep 2
  now=$(du -sb "$work/data/blobs" 2>/dev/null | cut -f1 || echo 0)
  [ "$now" = "$prev" ] && break
  prev=$now
done
# Idle: the catalog's extra connections close after a minute unused.
sleep "${IDLE_WAIT:-70}"
rss=$(awk '/VmRSS/ {print $2}' "/proc/$glow_pid/status")
[ -n "${LIBRARY_DEBUG:-}" ] && { grep -E 'Rss|Anon|Shared|Private' "/proc/$glow_pid/smaps_rollup"; pmap -x "$glow_pid" | sort -k3 -n | tail -8; }
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$glow_pid/status")
lines=$(wc -l < "$work/glow.log")
warns=$(grep -c ' WARN ' "$work/glow.log" || true)
echo
printf 'first start to a complete catalog: %.1f s\n' "$(awk -v a="$start" -v b="$indexed" 'BEGIN { print b - a }')"
printf 'copies in the data dir:            %d MB of %d MB served (%s)\n' "$((prev / 1000000))" "$((total / 1000000))" \
  "$(GLOW_LOG=error "$GLOW" --data-dir "$work/data" folder list | grep '^copies on this node')"
printf 'log:                               %d lines, %d warnings\n' "$lines" "$warns"
printf 'resident memory when idle:         %d MiB (peak %d MiB)\n' "$((rss / 1024))" "$((hwm / 1024))"
