#!/usr/bin/env bash
# Side-by-side: a 3-member real etcd (Debian's etcd-server) and a 3-member meshkv cluster on
# this machine, measured in one run by ../shared/bench-etcd with the same client.
#
#   bench/compare-etcd.sh                 # ONLY=... DURATION=... as run-suite.sh takes them
#
# Writes results/compare-<time>.jsonl and prints the summary table. Stops every process it
# started, by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
# bin/meshkv.mjs runs the compiled dist/.
npm run build --silent
HARNESS_SRC="$ROOT/../shared/bench-etcd"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/meshkv-compare.XXXXXX")
export BENCH_DIR="$WORK/etcd"
export DURATION="${DURATION:-6}" WARMUP="${WARMUP:-2}" REPEAT="${REPEAT:-0}"
export ONLY="${ONLY:-put-c1 put-c64 get-lin-c64 get-ser-c64 txn-cas-c16 watch100-w1}"
OUT="$ROOT/results/compare-$(date +%Y%m%d-%H%M%S).jsonl"
mkdir -p "$ROOT/results"

cp -r "$HARNESS_SRC" "$WORK/harness"
(cd "$WORK/harness" && npm ci --no-audit --no-fund --silent)

MESHKV_PIDS=()
cleanup() {
  for pid in "${MESHKV_PIDS[@]:-}"; do [[ -n "$pid" ]] && kill "$pid" 2>/dev/null || true; done
  (cd "$WORK/harness" && ./stop-etcd.sh >/dev/null 2>&1) || true
}
trap cleanup EXIT

echo "== real etcd, 3 members"
(cd "$WORK/harness" && ./start-etcd.sh 3 >/dev/null)
EPS=$(cat "$BENCH_DIR/endpoints")
(cd "$WORK/harness" && LABEL=etcd3 ./run-suite.sh "$EPS" "$OUT")
(cd "$WORK/harness" && ./stop-etcd.sh >/dev/null)

echo "== meshkv, 3 members"
CLUSTER=a=http://127.0.0.1:24801,b=http://127.0.0.1:24802,c=http://127.0.0.1:24803
# The members admit each other with one shared admission secret.
export MESHKV_ADMISSION_SECRET=compare-etcd-admission-secret
i=0
for name in a b c; do
  i=$((i + 1))
  node "$ROOT/bin/meshkv.mjs" --name "$name" --data-dir "$WORK/meshkv-$name" \
    --listen-client-urls "http://127.0.0.1:2479$i" --initial-cluster "$CLUSTER" >"$WORK/meshkv-$name.log" 2>&1 &
  MESHKV_PIDS+=("$!")
done
MEPS=127.0.0.1:24791,127.0.0.1:24792,127.0.0.1:24793
for _ in $(seq 1 100); do
  if ETCDCTL_API=3 etcdctl --endpoints="$MEPS" endpoint status 2>/dev/null | grep -q true; then break; fi
  sleep 0.2
done
(cd "$WORK/harness" && LABEL=meshkv3 SERVER_PIDS=$(IFS=,; echo "${MESHKV_PIDS[*]}") ./run-suite.sh "$MEPS" "$OUT")

# summarize.mjs cannot read run-suite's meta line for meshkv: etcdctl's `endpoint status` with
# http:// endpoints fails against meshkv (see docs/etcd-api.md), which leaves it malformed.
node -e 'for (const l of require("fs").readFileSync(process.argv[1], "utf8").split("\n")) { try { const d = JSON.parse(l); if (!d.meta) console.log(l); } catch {} }' "$OUT" > "$OUT.runs"
node "$WORK/harness/summarize.mjs" --headline "$OUT.runs" || true
echo "results: $OUT"

