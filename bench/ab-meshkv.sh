#!/usr/bin/env bash
# A/B: two builds of meshkv, each as a fresh 3-member cluster, measured interleaved (A, B, A, B…)
# by ../shared/bench-etcd's run-suite.sh so both see the same machine load.
#
#   bench/ab-meshkv.sh A_ROOT B_ROOT [ROUNDS]   # two checkouts, each with its dist/ built
#   ONLY="put-c64 watch100-w1" DURATION=6 bench/ab-meshkv.sh /tmp/main . 3
#   A_ARGS="--http2-server node" B_ARGS="--http2-server meshkv" bench/ab-meshkv.sh . .   # one build, two flag sets
#
# A checkout of another commit, for A: mkdir /tmp/main && git archive main | tar -x -C /tmp/main &&
# ln -s "$PWD/node_modules" /tmp/main/ && (cd /tmp/main && npm run build).
# PORT_BASE (25790) moves the client ports to PORT_BASE+1..3 and the peer ports to PORT_BASE+11..13,
# so that two helpers can run this script at once.
# Runs are labelled "a" and "b". Prints `uptime`'s load average before each run, writes
# results/ab-<time>.jsonl and the harness summary. Stops every process it started, by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
A=$(cd "${1:?usage: $0 A_ROOT B_ROOT [ROUNDS]}" && pwd)
B=$(cd "${2:?usage: $0 A_ROOT B_ROOT [ROUNDS]}" && pwd)
ROUNDS="${3:-2}"
for root in "$A" "$B"; do [[ -d "$root/dist" ]] || { echo "$root/dist is not built (npm run build)" >&2; exit 2; }; done
WORK=$(mktemp -d "${TMPDIR:-/tmp}/meshkv-ab.XXXXXX")
export DURATION="${DURATION:-6}" WARMUP="${WARMUP:-2}" REPEAT=0
export ONLY="${ONLY:-put-c1 put-c64 get-lin-c64 txn-cas-c16 watch100-w1}"
OUT="$ROOT/results/ab-$(date +%Y%m%d-%H%M%S).jsonl"
mkdir -p "$ROOT/results"
source bench/lib/harness.sh
trap 'stop; rm -rf "$WORK"' EXIT
install_harness "$WORK/harness"
export MESHKV_ADMISSION_SECRET=ab-meshkv-admission-secret
PORT_BASE="${PORT_BASE:-25790}"
CLUSTER=a=http://127.0.0.1:$((PORT_BASE + 11)),b=http://127.0.0.1:$((PORT_BASE + 12)),c=http://127.0.0.1:$((PORT_BASE + 13))
EPS=127.0.0.1:$((PORT_BASE + 1)),127.0.0.1:$((PORT_BASE + 2)),127.0.0.1:$((PORT_BASE + 3))

run_side() {  # run_side LABEL ROOT EXTRA_ARGS
  local label="$1" root="$2" i=0 run="$WORK/$1-$RANDOM"
  local -a extra
  read -r -a extra <<<"$3"
  for name in a b c; do
    i=$((i + 1))
    node "$root/bin/meshkv.mjs" --name "$name" --data-dir "$run/$name" \
      --listen-client-urls "http://127.0.0.1:$((PORT_BASE + i))" --initial-cluster "$CLUSTER" "${extra[@]}" >"$run-$name.log" 2>&1 &
    PIDS+=("$!")
  done
  for _ in $(seq 1 100); do
    if ETCDCTL_API=3 etcdctl --endpoints="$EPS" endpoint status 2>/dev/null | grep -q true; then break; fi
    sleep 0.2
  done
  echo "== $label ($root) load average: $(uptime | sed 's/.*load average: //')"
  (cd "$WORK/harness" && LABEL="$label" SERVER_PIDS=$(IFS=,; echo "${PIDS[*]}") ./run-suite.sh "$EPS" "$OUT")
  stop
  rm -rf "$run"
}

for r in $(seq 1 "$ROUNDS"); do
  run_side a "$A" "${A_ARGS:-}"
  run_side b "$B" "${B_ARGS:-}"
done
node -e 'for (const l of require("fs").readFileSync(process.argv[1], "utf8").split("\n")) { try { const d = JSON.parse(l); if (!d.meta) console.log(l); } catch {} }' "$OUT" > "$OUT.runs"
node "$WORK/harness/summarize.mjs" "$OUT.runs" || true
echo "results: $OUT"
rm -rf "$WORK"
