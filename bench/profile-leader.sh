#!/usr/bin/env bash
# CPU profile of a 3-member meshkv cluster's leader under the compare-etcd workloads.
#
#   bench/profile-leader.sh [put-c64 put-c1 txn-cas-c16 …]   # env: DURATION (10), WARMUP (2)
#
# PORT_BASE (24790) moves the client ports to PORT_BASE+1..3 and the peer ports to PORT_BASE+11..13,
# so that two helpers can run it at once. FOLLOWERS=1 prints the followers' shares too (CPU per
# put is summed over all three members).
#
# For each workload: starts three members as bench/compare-etcd.sh does, each under
# `node --cpu-prof`, loads them with ../shared/bench-etcd's bench.mjs (all three endpoints, as
# the comparison does), stops them with SIGINT so V8 writes the profiles, and prints the
# leader's CPU shares by where the sampled code lives (bench/cpu-profile-shares.mjs). Leaves
# the profiles in a temporary directory it names. Stops every process it started, by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
WORKLOADS=("$@")
[[ ${#WORKLOADS[@]} -gt 0 ]] || WORKLOADS=(put-c64 put-c1 txn-cas-c16)
DURATION="${DURATION:-10}" WARMUP="${WARMUP:-2}" PORT_BASE="${PORT_BASE:-24790}"
npm run build --silent
HARNESS_SRC="$ROOT/../shared/bench-etcd"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/meshkv-profile.XXXXXX")
cp -r "$HARNESS_SRC" "$WORK/harness"
(cd "$WORK/harness" && npm ci --no-audit --no-fund --silent)
export MESHKV_ADMISSION_SECRET=profile-leader-admission-secret

PIDS=()
stop_members() {
  for pid in "${PIDS[@]:-}"; do [[ -n "$pid" ]] && kill -INT "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]:-}"; do
    [[ -z "$pid" ]] && continue
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
  PIDS=()
}
trap stop_members EXIT

for w in "${WORKLOADS[@]}"; do
  case "$w" in
    put-c1) args=(--workload put --clients 1) ;;
    put-c64) args=(--workload put --clients 64) ;;
    txn-cas-c16) args=(--workload txn-cas --clients 16) ;;
    get-lin-c64) args=(--workload get-linearizable --clients 64) ;;
    # One connection carries all 100 watch streams and the writer, to the first endpoint.
    watch100-w1) args=(--workload watch-fanout --watchers 100 --clients 1) ;;
    *) echo "unknown workload $w" >&2; exit 2 ;;
  esac
  dir="$WORK/$w"
  mkdir -p "$dir"
  cluster=a=http://127.0.0.1:$((PORT_BASE + 11)),b=http://127.0.0.1:$((PORT_BASE + 12)),c=http://127.0.0.1:$((PORT_BASE + 13))
  i=0
  for name in a b c; do
    i=$((i + 1))
    node --cpu-prof --cpu-prof-dir="$dir/prof-$name" "$ROOT/bin/meshkv.mjs" --name "$name" \
      --data-dir "$dir/data-$name" --listen-client-urls "http://127.0.0.1:$((PORT_BASE + i))" \
      --initial-cluster "$cluster" >"$dir/$name.log" 2>&1 &
    PIDS+=("$!")
  done
  leader=""
  for _ in $(seq 1 100); do
    for i in 1 2 3; do
      if ETCDCTL_API=3 etcdctl --endpoints="127.0.0.1:$((PORT_BASE + i))" endpoint status 2>/dev/null | grep -q ', true, false,'; then
        leader=$i
      fi
    done
    [[ -n "$leader" ]] && break
    sleep 0.2
  done
  [[ -n "$leader" ]] || { echo "no leader after 20 s" >&2; exit 1; }
  echo "== $w (leader: member $(echo a b c | cut -d' ' -f"$leader"); load average: $(cut -d' ' -f1-3 /proc/loadavg))"
  (cd "$WORK/harness" && node bench.mjs --endpoints "127.0.0.1:$((PORT_BASE + 1)),127.0.0.1:$((PORT_BASE + 2)),127.0.0.1:$((PORT_BASE + 3))" \
    --duration "$DURATION" --warmup "$WARMUP" --mode h2 --value-size 256 \
    --server-pids "$(IFS=,; echo "${PIDS[*]}")" "${args[@]}" | grep '^#')
  stop_members
  # The load's seconds only, not the startup before them.
  node "$ROOT/bench/cpu-profile-shares.mjs" "$dir/prof-$(echo a b c | cut -d' ' -f"$leader")"/*.cpuprofile --last "$((DURATION + WARMUP))"
  if [[ -n "${FOLLOWERS:-}" ]]; then
    for i in 1 2 3; do
      [[ "$i" == "$leader" ]] && continue
      echo "-- follower $(echo a b c | cut -d' ' -f"$i")"
      node "$ROOT/bench/cpu-profile-shares.mjs" "$dir/prof-$(echo a b c | cut -d' ' -f"$i")"/*.cpuprofile --last "$((DURATION + WARMUP))"
    done
  fi
done
echo "profiles: $WORK"
