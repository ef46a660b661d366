#!/usr/bin/env bash
# The growth benchmark of issue 18: one member each, real etcd (Debian's etcd-server) and
# meshkv, the same ../shared/bench-etcd client writing new keys (256-byte values) at 64 clients
# in back-to-back rounds, so each round starts where the store was left. After every round it
# records throughput, p99/max latency, the key count and the server's resident memory.
#
#   bench/growth.sh            # ROUNDS=5 ROUND_S=30 CLIENTS=64 VALUE=256 MESHKV_FLAGS=...
#
# Writes results/growth-<time>.jsonl and prints a markdown table. Stops every process it
# started, by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
ROUNDS="${ROUNDS:-5}" ROUND_S="${ROUND_S:-30}" CLIENTS="${CLIENTS:-64}" VALUE="${VALUE:-256}"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/meshkv-growth.XXXXXX")
export BENCH_DIR="$WORK/etcd"
OUT="$ROOT/results/growth-$(date +%Y%m%d-%H%M%S).jsonl"
mkdir -p "$ROOT/results"
cp -r "$ROOT/../shared/bench-etcd" "$WORK/harness"
(cd "$WORK/harness" && npm ci --no-audit --no-fund --silent)

MESHKV_PID=""
cleanup() {
  [[ -n "$MESHKV_PID" ]] && kill "$MESHKV_PID" 2>/dev/null || true
  (cd "$WORK/harness" && ./stop-etcd.sh >/dev/null 2>&1) || true
  # The data dirs hold hundreds of MB by the end; the results are in $OUT.
  rm -rf "$WORK"
}
trap cleanup EXIT

# rounds LABEL ENDPOINT PID
rounds() {
  local label=$1 ep=$2 pid=$3
  for r in $(seq 1 "$ROUNDS"); do
    local line
    line=$(cd "$WORK/harness" && node bench.mjs --endpoints "$ep" --workload put --clients "$CLIENTS" --duration "$ROUND_S" \
      --warmup 1 --value-size "$VALUE" --server-pids "$pid" --label "$label-r$r" | tail -1)
    local keys rss
    keys=$(ETCDCTL_API=3 etcdctl --endpoints="$ep" --command-timeout=60s get bench/ --prefix --limit=1 -w json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).count??0))')
    rss=$(ps -o rss= -p "$pid" | tr -d ' ')
    echo "$line" | node -e '
      let s=""; process.stdin.on("data",d=>s+=d).on("end",()=>{ const d=JSON.parse(s);
        d.round=+process.argv[1]; d.keys=+process.argv[2]; d.rss_mb_now=+process.argv[3]/1024; d.system_label=process.argv[4];
        console.log(JSON.stringify(d)); })' "$r" "$keys" "$rss" "$label" >> "$OUT"
    tail -1 "$OUT" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const d=JSON.parse(s);console.log(`${d.system_label} round ${d.round}: ${Math.round(d.ops_per_s)} ops/s, p99 ${d.lat_ms.p99} ms, max ${d.lat_ms.max} ms, ${d.keys} keys, RSS ${Math.round(d.rss_mb_now)} MB`)})'
  done
}

echo "== real etcd, 1 member"
(cd "$WORK/harness" && ./start-etcd.sh 1 >/dev/null)
rounds etcd "$(cat "$BENCH_DIR/endpoints")" "$(cat "$BENCH_DIR/pids")"
(cd "$WORK/harness" && ./stop-etcd.sh >/dev/null)

echo "== meshkv, 1 member"
# shellcheck disable=SC2086
node "$ROOT/bin/meshkv.mjs" --name a --data-dir "$WORK/meshkv-a" --listen-client-urls http://127.0.0.1:24791 \
  --initial-cluster a=http://127.0.0.1:24801 ${MESHKV_FLAGS:-} >"$WORK/meshkv-a.log" 2>&1 &
MESHKV_PID=$!
for _ in $(seq 1 100); do
  if ETCDCTL_API=3 etcdctl --endpoints=127.0.0.1:24791 get x >/dev/null 2>&1; then break; fi
  sleep 0.2
done
rounds meshkv 127.0.0.1:24791 "$MESHKV_PID"
kill "$MESHKV_PID"; wait "$MESHKV_PID" 2>/dev/null || true; MESHKV_PID=""
du -sh "$WORK/meshkv-a" "$WORK/meshkv-a/backend" | sed 's/^/meshkv data: /'

node -e '
  const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map((l) => JSON.parse(l));
  const by = (s) => rows.filter((d) => d.system_label === s);
  const e = by("etcd"), m = by("meshkv");
  const cell = (d) => d ? [Math.round(d.ops_per_s).toLocaleString("en"), `${d.lat_ms.p99} / ${Math.round(d.lat_ms.max)}`, `${(d.keys/1e3).toFixed(0)}k, ${Math.round(d.rss_mb_now)} MB, ${Math.round(d.rss_mb_now*2**20/Math.max(1,d.keys))} B/key`] : ["", "", ""];
  console.log("| round | etcd ops/s | etcd p99 / max ms | etcd keys, RSS, per key | meshkv ops/s | meshkv p99 / max ms | meshkv keys, RSS, per key |");
  console.log("|---|---:|---|---|---:|---|---|");
  for (let i = 0; i < Math.max(e.length, m.length); i++) console.log(`| ${i + 1} | ${[...cell(e[i]), ...cell(m[i])].join(" | ")} |`);
' "$OUT"
echo "results: $OUT"
