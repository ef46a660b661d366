#!/usr/bin/env bash
# Side-by-side: a 3-member real etcd (Debian's etcd-server) and a 3-member meshkv cluster on
# this machine, measured by ../shared/bench-etcd with the same client, in interleaved rounds
# (etcd, meshkv, etcd, meshkv, …) so both sides see the same load from the rest of the machine.
#
#   bench/compare-etcd.sh        # env: ROUNDS (3), ONLY, DURATION (6), WARMUP (2), MODE (h2), PORT_BASE
#
# PORT_BASE (unset: etcd on 23791..3 and 23801..3, meshkv on 24791..3 and 24801..3) moves every
# port, so that two runs can share the machine: etcd's client ports to PORT_BASE+1..3 and peer
# ports to PORT_BASE+11..13, meshkv's to PORT_BASE+21..23 and PORT_BASE+31..33.
#
# Each round starts both clusters from empty data directories. Prints uptime's load average
# before each side's run, then one row per workload with the median and the min–max spread over
# the rounds (bench/compare-summary.mjs). Writes results/compare-<time>.jsonl. Stops every
# process it started, by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
ROUNDS="${ROUNDS:-3}"
# bin/meshkv.mjs runs the compiled dist/.
npm run build --silent
HARNESS_SRC="$ROOT/../shared/bench-etcd"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/meshkv-compare.XXXXXX")
export BENCH_DIR="$WORK/etcd"
# REPEAT=0: run-suite's own repeats are replaced by the rounds here.
export DURATION="${DURATION:-6}" WARMUP="${WARMUP:-2}" REPEAT=0
export ONLY="${ONLY:-put-c1 put-c64 get-lin-c64 get-ser-c64 txn-cas-c16 watch100-w1}"
OUT="$ROOT/results/compare-$(date +%Y%m%d-%H%M%S).jsonl"
mkdir -p "$ROOT/results"

cp -r "$HARNESS_SRC" "$WORK/harness"
ETCD_CLIENT_BASE=23790 ETCD_PEER_BASE=23800 MESHKV_CLIENT_BASE=24790 MESHKV_PEER_BASE=24800
if [[ -n "${PORT_BASE:-}" ]]; then
  ETCD_CLIENT_BASE=$PORT_BASE ETCD_PEER_BASE=$((PORT_BASE + 10)) MESHKV_CLIENT_BASE=$((PORT_BASE + 20)) MESHKV_PEER_BASE=$((PORT_BASE + 30))
  # The harness's start-etcd.sh has its ports fixed; this run's copy gets these.
  sed -i -e "s/^CLIENT_BASE=.*/CLIENT_BASE=$ETCD_CLIENT_BASE/" -e "s/^PEER_BASE=.*/PEER_BASE=$ETCD_PEER_BASE/" "$WORK/harness/start-etcd.sh"
  grep -q "^CLIENT_BASE=$ETCD_CLIENT_BASE\$" "$WORK/harness/start-etcd.sh" || { echo "could not move the harness's etcd ports" >&2; exit 2; }
fi
(cd "$WORK/harness" && npm ci --no-audit --no-fund --silent)

MESHKV_PIDS=()
stop_meshkv() {
  for pid in "${MESHKV_PIDS[@]:-}"; do [[ -n "$pid" ]] && kill "$pid" 2>/dev/null || true; done
  for pid in "${MESHKV_PIDS[@]:-}"; do
    [[ -z "$pid" ]] && continue
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
  MESHKV_PIDS=()
}
cleanup() {
  stop_meshkv
  (cd "$WORK/harness" && ./stop-etcd.sh >/dev/null 2>&1) || true
}
trap cleanup EXIT

load() { echo "   load average: $(cut -d' ' -f1-3 /proc/loadavg)"; }

run_etcd() {  # run_etcd ROUND
  echo "== round $1: real etcd, 3 members"; load
  (cd "$WORK/harness" && ./start-etcd.sh 3 >/dev/null)
  local eps; eps=$(cat "$BENCH_DIR/endpoints")
  (cd "$WORK/harness" && LABEL=etcd3 ./run-suite.sh "$eps" "$OUT")
  (cd "$WORK/harness" && ./stop-etcd.sh >/dev/null)
}

run_meshkv() {  # run_meshkv ROUND
  echo "== round $1: meshkv, 3 members"; load
  local p=$MESHKV_PEER_BASE
  local cluster=a=http://127.0.0.1:$((p + 1)),b=http://127.0.0.1:$((p + 2)),c=http://127.0.0.1:$((p + 3))
  # The members admit each other with one shared admission secret.
  export MESHKV_ADMISSION_SECRET=compare-etcd-admission-secret
  local i=0 name
  for name in a b c; do
    i=$((i + 1))
    node "$ROOT/bin/meshkv.mjs" --name "$name" --data-dir "$WORK/meshkv-$1-$name" \
      --listen-client-urls "http://127.0.0.1:$((MESHKV_CLIENT_BASE + i))" --initial-cluster "$cluster" \
      >"$WORK/meshkv-$1-$name.log" 2>&1 &
    MESHKV_PIDS+=("$!")
  done
  local c=$MESHKV_CLIENT_BASE
  local meps=127.0.0.1:$((c + 1)),127.0.0.1:$((c + 2)),127.0.0.1:$((c + 3))
  for _ in $(seq 1 100); do
    if ETCDCTL_API=3 etcdctl --endpoints="$meps" endpoint status 2>/dev/null | grep -q true; then break; fi
    sleep 0.2
  done
  (cd "$WORK/harness" && LABEL=meshkv3 SERVER_PIDS=$(IFS=,; echo "${MESHKV_PIDS[*]}") ./run-suite.sh "$meps" "$OUT")
  stop_meshkv
}

for round in $(seq 1 "$ROUNDS"); do
  run_etcd "$round"
  run_meshkv "$round"
done

node "$ROOT/bench/compare-summary.mjs" "$OUT"
echo "results: $OUT"
