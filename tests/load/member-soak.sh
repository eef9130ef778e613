#!/usr/bin/env bash
# The misbehaving-member soak (docs/security.md, "Measured"): a release
# node on SQLite pinned to core 0 with its default limits serves the phone
# workload (the load tool on core 1, spread over USERS supervisors so each
# stays under the default per-user limit) while one signed-in caregiver, `dana`,
# whom `fay` put on a plan, syncs under ever-new device ids, sends sync
# messages with million-hash Bloom filters and with million-operation
# changes, and holds STREAMS change-feed streams open. The load tool
# samples the node's memory and descriptors and the sizes of its database,
# WAL and log.
#   [SECS=300] [RATE=1000] [USERS=128] [STREAMS=256] [ATTACKS=devices,bloom,ops,streams] [ATTACKER_NICE=n] tests/load/member-soak.sh
# ATTACKS=none: the same workload with no attacker, the baseline.
# Build first: cargo build --release -p wrapsync-server -p wrapsync-client -p wrapsync-tests --bins
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${SECS:-300} rate=${RATE:-1000} streams=${STREAMS:-256} users=${USERS:-128} port=18622
attacks=${ATTACKS:-devices,bloom,ops,streams}
root=/tmp/wrapsync-load/member
rm -rf "$root"
DEFAULT_LIMITS=1 USERS=$users LOG=info tests/load/node.sh member 0 "$port"
WRAPSYNC_PASSWORD=danapassword1 target/release/wrapsync user add --config "$root/node.toml" \
  --username dana --role caregiver >/dev/null
pid=$(cat "$root/pid")
trap 'kill "$pid" 2>/dev/null || true' EXIT
abuser=""
if [ "$attacks" != none ]; then
  /usr/bin/time -f "%U s user, %S s system" -o "$root/abuser-cpu" \
    ${ATTACKER_NICE:+nice -n "$ATTACKER_NICE"} target/release/wrapsync-abuse \
    --url "http://127.0.0.1:$port" --secs "$secs" \
    --member dana:danapassword1 --lead fay:loadpassword1 --streams "$streams" \
    --attacks "$attacks" > "$root/abuse.json" &
  abuser=$!
fi
taskset -c 1 target/release/wrapsync-load --url "http://127.0.0.1:$port" \
  --username phone --users "$users" --password loadpassword1 \
  --scenario phone --plans 100 --rate "$rate" --duration "$secs" --warmup 10 --connections 32 \
  --sample-pid "$pid" --sample-every 10 \
  --sample-file "$root/data/node.db" --sample-file "$root/data/node.db-wal" --sample-file "$root/err.log"
if [ -n "$abuser" ]; then
  wait "$abuser"
  echo "abuse: $(cat "$root/abuse.json")"
fi
# Where the machine's two cores went: the node's own CPU time, and the
# attacker's (which, on this machine, it takes from the node and the load
# tool; a real attacker brings its own).
echo "node cpu: $(awk '{printf "%.1f s", ($14 + $15) / 100}' "/proc/$pid/stat")"
if [ -n "$abuser" ]; then echo "attacker cpu: $(cat "$root/abuser-cpu" 2>/dev/null)"; fi
echo "sync states: $(sqlite3 "$root/data/node.db" 'select count(*), sum(length(state)) from sync_states' 2>/dev/null || echo 'sqlite3 not installed')"
