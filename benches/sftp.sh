#!/usr/bin/env bash
# SFTP throughput: a 1 GiB get and put over one stream, Glow against
# OpenSSH's sshd with its sftp-server, in the same run, with the same client
# (OpenSSH sftp), the same key and the same cipher.
#
#   benches/sftp.sh            # needs openssh-server and openssh-client
#   SIZE_MB=256 RUNS=5 benches/sftp.sh
#
# Prints the median time of each transfer and Glow's throughput as a ratio
# of OpenSSH's (goal >= 1.0x). Glow's put includes what OpenSSH does not do:
# the old content kept as a version, the new one hashed and (with the
# default `keep_copies`) copied into the version store; a second Glow row
# uses a folder added with --no-keep-copies to show that cost.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MB=${SIZE_MB:-1024}
RUNS=${RUNS:-3}
GLOW_PORT=${GLOW_PORT:-18522}
SSHD_PORT=${SSHD_PORT:-18523}
HTTP_PORT=${HTTP_PORT:-18524}
SFTP_SERVER=${SFTP_SERVER:-/usr/lib/openssh/sftp-server}
for tool in sftp ssh-keygen /usr/sbin/sshd "$SFTP_SERVER"; do
  command -v "$tool" >/dev/null || [ -x "$tool" ] || {
    echo "benches/sftp.sh needs $tool (apt-get install openssh-server openssh-client)"; exit 1; }
done
[ -x target/release/glow ] || cargo build --release
GLOW=$PWD/target/release/glow

work=$(mktemp -d /var/tmp/glow-sftpbench.XXXXXX)
cleanup() {
  [ -n "${glow_pid:-}" ] && kill "$glow_pid" 2>/dev/null || true
  [ -n "${sshd_pid:-}" ] && kill "$sshd_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/www/keep" "$work/www/nokeep" "$work/client"
ssh-keygen -q -t ed25519 -N '' -f "$work/id" -C bench
ssh-keygen -q -t ed25519 -N '' -f "$work/host_key"
head -c "$((SIZE_MB * 1024 * 1024))" /dev/urandom > "$work/client/data.bin"

# OpenSSH: sshd as the current user's server, sftp-server as its subsystem.
cp "$work/id.pub" "$work/authorized_keys"
cat > "$work/sshd_config" <<CONF
Port $SSHD_PORT
ListenAddress 127.0.0.1
HostKey $work/host_key
PidFile $work/sshd.pid
AuthorizedKeysFile $work/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
Subsystem sftp $SFTP_SERVER
CONF
mkdir -p /run/sshd
/usr/sbin/sshd -D -e -f "$work/sshd_config" 2> "$work/sshd.log" &
sshd_pid=$!

# Glow: the same directory tree as two folders (with and without copies).
export GLOW_DATA_DIR="$work/glow-data" GLOW_LOG=info GLOW_ADMIN_PASSWORD=bench-password-1
"$GLOW" serve "$work/www/keep" --http "127.0.0.1:$HTTP_PORT" --sftp "127.0.0.1:$GLOW_PORT" > "$work/glow.log" 2>&1 &
glow_pid=$!
until grep -q '^Ready' "$work/glow.log"; do sleep 0.2; done
"$GLOW" user key add admin "$work/id.pub" > /dev/null
"$GLOW" folder add nokeep "$work/www/nokeep" --no-keep-copies > /dev/null
sleep 1

OPTS=(-q -i "$work/id" -oIdentitiesOnly=yes -oBatchMode=yes -oStrictHostKeyChecking=no
      -oUserKnownHostsFile=/dev/null -oLogLevel=ERROR)
me=$(id -un)
# time_batch PORT USER CIPHER COMMAND: seconds for one batch command.
time_batch() {
  local port=$1 user=$2 cipher=$3 cmd=$4 start end
  echo "$cmd" > "$work/batch"
  start=$(date +%s.%N)
  (cd "$work/client" && sftp "${OPTS[@]}" -c "$cipher" -P "$port" -b "$work/batch" "$user@127.0.0.1" > /dev/null)
  end=$(date +%s.%N)
  awk -v s="$start" -v e="$end" 'BEGIN { print e - s }'
}
median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
runs() { for _ in $(seq "$RUNS"); do time_batch "$@"; done | median; }

printf '%-30s %-6s %9s %9s %9s %12s %12s\n' cipher op openssh glow glow-nocopy ratio ratio-nocopy
for cipher in aes128-gcm@openssh.com chacha20-poly1305@openssh.com; do
  # Put first (so that get has something to fetch), then get.
  o_put=$(runs "$SSHD_PORT" "$me" "$cipher" "put data.bin $work/www/keep/ossh.bin")
  g_put=$(runs "$GLOW_PORT" admin "$cipher" "put data.bin keep/glow.bin")
  n_put=$(runs "$GLOW_PORT" admin "$cipher" "put data.bin nokeep/glow.bin")
  o_get=$(runs "$SSHD_PORT" "$me" "$cipher" "get $work/www/keep/ossh.bin back.bin")
  g_get=$(runs "$GLOW_PORT" admin "$cipher" "get keep/glow.bin back.bin")
  n_get=$(runs "$GLOW_PORT" admin "$cipher" "get nokeep/glow.bin back.bin")
  cmp -s "$work/client/back.bin" "$work/client/data.bin" || { echo "Glow's get differs from the put"; exit 1; }
  for op in put get; do
    o=$(eval echo "\$o_$op"); g=$(eval echo "\$g_$op"); n=$(eval echo "\$n_$op")
    printf '%-30s %-6s %8.2fs %8.2fs %8.2fs %11.2fx %11.2fx\n' "$cipher" "$op" "$o" "$g" "$n" \
      "$(awk -v o="$o" -v g="$g" 'BEGIN { print o / g }')" \
      "$(awk -v o="$o" -v n="$n" 'BEGIN { print o / n }')"
  done
done
echo "(ratio = Glow's throughput / OpenSSH's; ${SIZE_MB} MiB, median of $RUNS)"
