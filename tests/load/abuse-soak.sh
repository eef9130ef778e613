#!/usr/bin/env bash
# The abuse soak (docs/security.md, "Measured"): a release node on SQLite
# pinned to core 0 with its default limits (but the per-user rate, which
# the load tool's one user needs: see node.sh) serves the phone workload (the
# load tool on core 1) while `wrapsync-abuse` floods it with oversized
# logins and headers, guesses `dana`'s password from four addresses and
# holds declared 30 MB bodies open. The load tool samples the node's memory
# and descriptors and the sizes of its database, WAL and log.
#   [SECS=300] [RATE=1000] tests/load/abuse-soak.sh
# Build first: cargo build --release -p wrapsync-server -p wrapsync-client -p wrapsync-tests --bins
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${SECS:-300} rate=${RATE:-1000} port=18621
root=/tmp/wrapsync-load/abuse
rm -rf "$root"
DEFAULT_LIMITS=1 LOG=info tests/load/node.sh abuse 0 "$port"
WRAPSYNC_PASSWORD=danapassword1 target/release/wrapsync user add --config "$root/node.toml" \
  --username dana --role caregiver >/dev/null
pid=$(cat "$root/pid")
trap 'kill "$pid" 2>/dev/null || true' EXIT
target/release/wrapsync-abuse --url "http://127.0.0.1:$port" --secs "$secs" --username dana \
  > "$root/abuse.json" &
abuser=$!
taskset -c 1 target/release/wrapsync-load --url "http://127.0.0.1:$port" --username fay --password loadpassword1 \
  --scenario phone --plans 100 --rate "$rate" --duration "$secs" --warmup 10 --connections 32 \
  --sample-pid "$pid" --sample-every 10 \
  --sample-file "$root/data/node.db" --sample-file "$root/data/node.db-wal" --sample-file "$root/err.log"
wait "$abuser"
echo "abuse: $(cat "$root/abuse.json")"
