#!/usr/bin/env bash
# The overlay on a LAN: how long two fresh nodes take to find each other.
#
#   benches/overlay.sh            # needs root (network namespaces) and iproute2
#
# Two network namespaces joined by a veth pair (multicast routed on it),
# one `glow serve` in each with a fresh data dir; the time from starting
# both to each listing the other as nearby in `glow node list`, in RUNS
# rounds, and each node's resident memory once idle with the overlay on.
# No peer here: Syncthing needs its device ids pasted by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-5}
[ -x target/release/glow ] || cargo build --release
GLOW=$PWD/target/release/glow
work=$(mktemp -d /var/tmp/glow-overlay.XXXXXX)
A=glowbench$$a B=glowbench$$b
cleanup() {
  for ns in $A $B; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

ip netns add $A; ip netns add $B
ip link add gba netns $A type veth peer name gbb netns $B
ip -n $A addr add 10.79.0.1/24 dev gba; ip -n $B addr add 10.79.0.2/24 dev gbb
for ns in $A $B; do ip -n $ns link set lo up; done
ip -n $A link set gba up; ip -n $B link set gbb up
ip -n $A route add 224.0.0.0/4 dev gba; ip -n $B route add 224.0.0.0/4 dev gbb

now() { date +%s.%N; }
times=()
for round in $(seq "$RUNS"); do
  rm -rf "$work/a" "$work/b"
  start=$(now)
  ip netns exec $A env GLOW_ADMIN_PASSWORD=bench-password-1 GLOW_LOG=warn "$GLOW" --data-dir "$work/a" serve \
    --http 10.79.0.1:0 --no-sftp --no-dlna --name a > "$work/a.log" 2>&1 &
  ip netns exec $B env GLOW_ADMIN_PASSWORD=bench-password-1 GLOW_LOG=warn "$GLOW" --data-dir "$work/b" serve \
    --http 10.79.0.2:0 --no-sftp --no-dlna --name b > "$work/b.log" 2>&1 &
  until ip netns exec $A "$GLOW" --data-dir "$work/a" node list 2>/dev/null | grep -q '^nearby .* b ' &&
        ip netns exec $B "$GLOW" --data-dir "$work/b" node list 2>/dev/null | grep -q '^nearby .* a '; do
    sleep 0.05
  done
  t=$(awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')
  times+=("$t")
  echo "round $round: both nodes list each other after $t s"
  if [ "$round" = "$RUNS" ]; then
    sleep "${IDLE_WAIT:-70}"
    for ns in $A $B; do
      pid=$(ip netns pids "$ns" | head -1)
      echo "idle resident memory of the node in $ns (overlay on, no SFTP/DLNA): $(( $(awk '/VmRSS/ {print $2}' /proc/$pid/status) / 1024 )) MiB"
    done
  fi
  for ns in $A $B; do for pid in $(ip netns pids "$ns"); do kill "$pid"; done; done
  sleep 1
done
printf '%s\n' "${times[@]}" | sort -g | awk '{ v[NR] = $1 } END { print "median time to discovery: " ((NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) " s (" NR " rounds, includes start-up and the CLI polling)" }'
