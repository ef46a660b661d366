#!/usr/bin/env bash
# A one-client put (and the watch fan-out row) through the leader and through a follower, real
# etcd 3.4.23 and meshkv interleaved on fresh 3-member clusters (etcd, meshkv, etcd, …), with
# ../shared/bench-etcd's bench.mjs and each member's CPU (--server-pids, in member order a,b,c).
#
#   bench/follow-paths.sh [ROUNDS]   # env: PORT_BASE (30790), ONLY_SIDE (etcd|meshkv), ROOT_B (a second meshkv build to run as side "meshkvB")
#
# Per cluster: first a cold put-c1 (the row's --warmup 2 --duration 6) against the follower
# (odd rounds) or the leader (even rounds), then warm runs (--warmup 4 --duration 8) against
# the leader and a follower in alternating order, then watch-fanout (100 watchers, 1 writer,
# --warmup 2 --duration 6) against each. The target's role and the load average go in each
# JSON line's label; results/follow-<time>.jsonl; bench/follow-summary.mjs prints the table.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
ROUNDS="${1:-3}"
PORT_BASE="${PORT_BASE:-30790}"
[[ -d dist ]] || { echo "dist/ is not built (npm run build)" >&2; exit 2; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/meshkv-follow-paths.XXXXXX")
OUT="$ROOT/results/follow-$(date +%Y%m%d-%H%M%S).jsonl"
mkdir -p "$ROOT/results"
source bench/lib/harness.sh
trap 'stop; rm -rf "$WORK"' EXIT
install_harness "$WORK/harness"

bench() {  # bench SIDE ROUND KIND ROLE ENDPOINT args...
  local side="$1" round="$2" kind="$3" role="$4" ep="$5"; shift 5
  local load; load=$(cut -d' ' -f1 /proc/loadavg)
  (cd "$WORK/harness" && node bench.mjs --endpoints "$ep" --mode h2 --value-size 256 \
    --label "$side/$round/$kind/$role/load=$load" --server-pids "$(IFS=,; echo "${PIDS[*]}")" --out "$OUT" "$@" | grep '^#')
  sleep 1
}

measure() {  # measure SIDE ROUND CLIENT_BASE
  local side="$1" round="$2" base="$3"
  local eps=http://127.0.0.1:$((base + 1)),http://127.0.0.1:$((base + 2)),http://127.0.0.1:$((base + 3))
  for _ in $(seq 1 150); do
    if ETCDCTL_API=3 etcdctl --endpoints="$eps" endpoint status 2>/dev/null | grep -q true; then break; fi
    sleep 0.2
  done
  local st; st=$(ETCDCTL_API=3 etcdctl --endpoints="$eps" endpoint status)
  local leader follower
  leader=$(awk -F', ' '$5=="true" {print $1; exit}' <<<"$st"); leader=${leader#http://}
  follower=$(awk -F', ' '$5=="false" {print $1; exit}' <<<"$st"); follower=${follower#http://}
  echo "== round $round: $side, leader $leader, follower $follower, load average $(cut -d' ' -f1-3 /proc/loadavg)"
  local first=follower firstEp=$follower second=leader secondEp=$leader
  if (( round % 2 == 0 )); then first=leader firstEp=$leader second=follower secondEp=$follower; fi
  bench "$side" "$round" cold-put "$first" "$firstEp" --workload put --clients 1 --warmup 2 --duration 6
  bench "$side" "$round" put "$first" "$firstEp" --workload put --clients 1 --warmup 4 --duration 8
  bench "$side" "$round" put "$second" "$secondEp" --workload put --clients 1 --warmup 4 --duration 8
  bench "$side" "$round" watch "$first" "$firstEp" --workload watch-fanout --watchers 100 --clients 1 --warmup 2 --duration 6
  bench "$side" "$round" watch "$second" "$secondEp" --workload watch-fanout --watchers 100 --clients 1 --warmup 2 --duration 6
  stop
}

run_meshkv() {  # run_meshkv SIDE ROUND BUILD_ROOT
  export MESHKV_ADMISSION_SECRET=follow-paths-admission-secret
  start_meshkv3 "$WORK/$1-$2" "$3"
  measure "$1" "$2" "$((PORT_BASE + 20))"
}

for r in $(seq 1 "$ROUNDS"); do
  if [[ "${ONLY_SIDE:-etcd}" == etcd ]]; then
    start_etcd3 "$WORK/etcd-$r" "follow-paths-$r-$$"
    measure etcd "$r" "$PORT_BASE"
  fi
  if [[ "${ONLY_SIDE:-meshkv}" == meshkv ]]; then run_meshkv meshkv "$r" "$ROOT"; fi
  if [[ -n "${ROOT_B:-}" ]]; then run_meshkv meshkvB "$r" "$ROOT_B"; fi
done
echo "results: $OUT"
