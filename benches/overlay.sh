#!/usr/bin/env bash
# The overlay: how long two fresh nodes on a LAN take to find each other
# and to be joined, and, across NATs, which pairs of NAT types reach a
# direct path.
#
#   benches/overlay.sh            # needs root (network namespaces), iproute2, nftables
#
# Two network namespaces joined by a veth pair (multicast routed on it),
# one `glow serve` in each with a fresh data dir; the time from starting
# both to each listing the other as nearby in `glow node list`, then the
# time from `glow node join CODE` to each listing the other as a member
# with a link, in RUNS rounds, and each node's resident memory once idle
# with the overlay on and joined. Then the NAT matrix (tests/nat.rs,
# `bench_direct_path_matrix`: router namespaces doing full-cone,
# masquerade and fully-random NAT, a public member relaying).
# No peer here: Syncthing needs its device ids pasted by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-5}
if [ -z "${GLOW:-}" ]; then
  cargo build --release
  GLOW=$PWD/target/release/glow
fi
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
joins=()
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
  code=$(ip netns exec $A "$GLOW" --data-dir "$work/a" node invite | awk '/glow node join/ && !/GLOW:/ { print $4; exit }')
  start=$(now)
  ip netns exec $B "$GLOW" --data-dir "$work/b" node join "$code" > /dev/null
  until ip netns exec $A "$GLOW" --data-dir "$work/a" node list 2>/dev/null | grep -q '^member .* b .* ms$' &&
        ip netns exec $B "$GLOW" --data-dir "$work/b" node list 2>/dev/null | grep -q '^member .* a .* ms$'; do
    sleep 0.05
  done
  t=$(awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')
  joins+=("$t")
  echo "round $round: joined and linked both ways $t s after \`glow node join\`"
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
median() { sort -g | awk '{ v[NR] = $1 } END { print ((NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
echo "median time to discovery: $(printf '%s\n' "${times[@]}" | median) s (${#times[@]} rounds, includes start-up and the CLI polling)"
echo "median time from join to linked both ways: $(printf '%s\n' "${joins[@]}" | median) s"
echo
echo "== NAT pairs (tests/nat.rs: bench_direct_path_matrix)"
cargo test --test integration -- --ignored bench_direct_path_matrix --nocapture 2>/dev/null | sed -n '/^NAT pair/,/^$/p'
echo
echo "== relayed against direct (tests/nat.rs: bench_relayed_against_direct_sync)"
cargo test --test integration -- --ignored bench_relayed_against_direct_sync --nocapture 2>/dev/null | sed -n '/^64 MiB/,/^relayed/p'
