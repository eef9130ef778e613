#!/usr/bin/env bash
# Starts a release node for load measurements (see docs/measurements.md):
#   [WORKERS=n] [CPU_QUOTA=cores] [LOG=level] [DEFAULT_LIMITS=1] [USERS=n] tests/load/node.sh NAME CPU PORT [DATABASE_URL]
# makes /tmp/wrapsync-load/NAME (config, data dir, user `fay`, password
# `loadpassword1`; with USERS=n also supervisors `phone1` … `phoneN`, same
# password, for `wrapsync-load --username phone --users n`, and the node's
# default per-user limit) unless it exists, starts `wrapsync node` pinned to CPU
# (a list such as 0,1 for both cores) with WORKERS HTTP workers (default
# one), and prints its pid and URL. Several names on one
# postgres:// URL are processes sharing one database.
set -euo pipefail
name=$1 cpu=$2 port=$3 database=${4:-}
root=/tmp/wrapsync-load/$name
bin=${WRAPSYNC_BIN:-$(dirname "$0")/../../target/release/wrapsync}
if [ ! -f "$root/node.toml" ]; then
  mkdir -p "$root/data"
  {
    echo 'node_id = "county-load"'
    echo "listen = \"127.0.0.1:$port\""
    echo "data_dir = \"$root/data\""
    echo 'jwt_secret = "load-test-secret-0123456789abcdef01234567"'
    echo 'access_token_ttl_secs = 7200'
    echo "workers = ${WORKERS:-1}"
    # The load tool drives `fay` at thousands of requests a second, far past
    # the per-user default (a person's scale), with DEFAULT_LIMITS too;
    # USERS spreads the load over people, who keep the default.
    if [ -z "${USERS:-}" ]; then
      echo 'rate_limit_per_user = { per_second = 25000, burst = 50000 }'
    fi
    # One address sends every login of the run (DEFAULT_LIMITS=1: the
    # node's own defaults, as the abuse soak wants).
    if [ -z "${DEFAULT_LIMITS:-}" ]; then
      echo 'rate_limit_login_per_ip = { per_second = 1000, burst = 1000 }'
    fi
    if [ -n "$database" ]; then echo "database_url = \"$database\""; fi
  } > "$root/node.toml"
  WRAPSYNC_PASSWORD=loadpassword1 "$bin" user add --config "$root/node.toml" \
    --username fay --role facilitator >/dev/null 2>&1 || true
  for i in $(seq "${USERS:-0}"); do
    WRAPSYNC_PASSWORD=loadpassword1 "$bin" user add --config "$root/node.toml" \
      --username "phone$i" --role supervisor >/dev/null 2>&1 || true
  done
fi
# CPU_QUOTA=0.5: the node gets at most half a core's time (a cgroup, in
# 10 ms periods so throttling stalls stay short), so the node, not the
# machine, is what runs out: how scale-out is measured on a machine with
# fewer cores than processes.
cgroup=""
if [ -n "${CPU_QUOTA:-}" ]; then
  quota=$(awk -v q="$CPU_QUOTA" 'BEGIN { printf "%d", q * 10000 }')
  if [ -d /sys/fs/cgroup/cpu ]; then
    cgroup=/sys/fs/cgroup/cpu/wrapsync-load-$name
    mkdir -p "$cgroup"
    echo 10000 > "$cgroup/cpu.cfs_period_us"
    echo "$quota" > "$cgroup/cpu.cfs_quota_us"
  else
    cgroup=/sys/fs/cgroup/wrapsync-load-$name
    mkdir -p "$cgroup"
    echo "$quota 10000" > "$cgroup/cpu.max"
  fi
fi
WRAPSYNC_LOG=${LOG:-warn} CGROUP=$cgroup taskset -c "$cpu" sh -c \
  '[ -z "$CGROUP" ] || echo $$ > "$CGROUP/cgroup.procs"; exec "$@"' node \
  "$bin" node --config "$root/node.toml" > "$root/out.log" 2> "$root/err.log" &
echo $! > "$root/pid"
for _ in $(seq 100); do
  grep -q listening "$root/out.log" 2>/dev/null && break
  sleep 0.1
done
echo "pid $(cat "$root/pid") url http://127.0.0.1:$port"
