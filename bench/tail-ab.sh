#!/usr/bin/env bash
# A/B rounds of the put load for issue 18's p99 and pauses: several one-member meshkv variants
# (a build and node flags each) run side by side, are filled to KEYS keys, then take ROUNDS
# rounds of the ../shared/bench-etcd h2 put load each, the variants' order rotating every round
# so that every variant sees the same mix of machine load. Per round: ops/s, p50/p99/max,
# server CPU µs per put, the GC pauses of the round (--trace-gc), what a Ready cost (WAL save
# with its fdatasync, apply: from the member's /metrics, bench/ready-split.mjs) and the load average.
#
#   VARIANTS="base=/tmp/base-checkout new=. semi64=.:--max-semi-space-size=64 b20=.::--backend-batch-interval=20ms" bench/tail-ab.sh
#   # KEYS=0 ROUNDS=3 ROUND_S=20 CLIENTS=64 VALUE=256 MESHKV_FLAGS= PORT_BASE=24990
#
# Variant i listens for clients on PORT_BASE+1+2i and for peers on PORT_BASE+2+2i.
#
# A variant is NAME=ROOT[:NODE_FLAGS[:MEMBER_FLAGS]] (ROOT: a checkout whose dist/ is built; flags
# separated by commas; MESHKV_FLAGS go to every member). Writes results/tail-ab-<time>.jsonl and prints one line per round; stops every
# process it started, by PID. Each variant's log is kept beside the results (results/tail-ab-<time>-NAME.log).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
source bench/lib/gc-pauses.sh
VARIANTS="${VARIANTS:?VARIANTS=\"name=root[:flags] ...\"}"
PORT_BASE="${PORT_BASE:-24990}"
KEYS="${KEYS:-0}" ROUNDS="${ROUNDS:-3}" ROUND_S="${ROUND_S:-20}" CLIENTS="${CLIENTS:-64}" VALUE="${VALUE:-256}"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/meshkv-tail-ab.XXXXXX")
OUT="$ROOT/results/tail-ab-$(date +%Y%m%d-%H%M%S).jsonl"
mkdir -p "$ROOT/results"
cp -r "$ROOT/../shared/bench-etcd" "$WORK/harness"
(cd "$WORK/harness" && npm ci --no-audit --no-fund --silent)
export MESHKV_ADMISSION_SECRET=tail-ab-admission-secret
NAMES=() PIDS=() EPS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

i=0
for v in $VARIANTS; do
  name=${v%%=*} spec=${v#*=}
  IFS=: read -r dir flags member_flags <<<"$spec"
  ep=127.0.0.1:$((PORT_BASE + 1 + 2 * i))
  # shellcheck disable=SC2086
  node --trace-gc ${flags//,/ } "$dir/bin/meshkv.mjs" --name "$name" --data-dir "$WORK/$name" --listen-client-urls "http://$ep" \
    --initial-cluster "$name=http://127.0.0.1:$((PORT_BASE + 2 + 2 * i))" ${member_flags//,/ } ${MESHKV_FLAGS:-} >>"$WORK/$name.log" 2>&1 </dev/null &
  PIDS+=($!) NAMES+=("$name") EPS+=("$ep")
  i=$((i + 1))
done
for ep in "${EPS[@]}"; do
  for _ in $(seq 1 600); do
    ETCDCTL_API=3 etcdctl --endpoints="$ep" --dial-timeout=1s get x >/dev/null 2>&1 && break
    sleep 0.1
  done
done
if ((KEYS > 0)); then
  for ep in "${EPS[@]}"; do node bench/txn-fill.mjs "$WORK/harness" "$ep" 0 "$KEYS" bench/fill/ "$VALUE"; done
  sleep 5
fi
n=${#NAMES[@]}
for ((r = 0; r < ROUNDS; r++)); do
  for ((k = 0; k < n; k++)); do
    j=$(((k + r) % n))
    name=${NAMES[$j]} log="$WORK/${NAMES[$j]}.log"
    from=$(wc -l <"$log")
    curl -s "http://${EPS[$j]}/metrics" >"$WORK/metrics-before"
    line=$(cd "$WORK/harness" && node bench.mjs --endpoints "${EPS[$j]}" --workload put --clients "$CLIENTS" --duration "$ROUND_S" \
      --warmup 1 --value-size "$VALUE" --server-pids "${PIDS[$j]}" --label "$name" | tail -1)
    gc=$(tail -n +"$((from + 1))" "$log" | gc_pauses | awk '{p=$NF+0; t+=p; if(p>m)m=p; if($1=="Mark-Compact"){c++; if(p>cm)cm=p} else s++}
      END{printf "\"gc_ms_max\":%.0f,\"gc_ms_total\":%.0f,\"scavenges\":%d,\"mark_compacts\":%d,\"mark_compact_ms_max\":%.0f", m, t, s, c, cm}')
    curl -s "http://${EPS[$j]}/metrics" >"$WORK/metrics-after"
    ready=$(node bench/ready-split.mjs "$WORK/metrics-before" "$WORK/metrics-after")
    echo "{\"variant\":\"$name\",\"round\":$r,\"keys_before\":$KEYS,$gc,$ready,\"load_avg\":\"$(cut -d' ' -f1-3 /proc/loadavg)\",\"bench\":$line}" >>"$OUT"
    tail -1 "$OUT" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s),b=j.bench;
      console.log(`${j.variant.padEnd(10)} r${j.round} ${Math.round(b.ops_per_s)} ops/s p50 ${b.lat_ms.p50} p99 ${b.lat_ms.p99} max ${b.lat_ms.max} ms, ${Math.round(b.server.cpu_us_per_op)} µs/put, rss ${b.server.rss_mb_max} MB, GC max ${j.gc_ms_max} total ${j.gc_ms_total} ms (${j.scavenges} scav, ${j.mark_compacts} MC max ${j.mark_compact_ms_max}), WAL sync ${j.wal_sync.count} mean ${j.wal_sync.mean_ms} p99<=${j.wal_sync.p99_ms_le} ms, apply mean ${j.apply.mean_ms} p99<=${j.apply.p99_ms_le} ms, snapshots ${j.snapshot.count} mean ${j.snapshot.mean_ms} p99<=${j.snapshot.p99_ms_le} ms, load ${j.load_avg}`)})'
  done
done
# Each variant's log (its GC trace: with --trace-gc-nvp, bench/gc-phases.mjs reads it) beside the results.
for name in "${NAMES[@]}"; do cp "$WORK/$name.log" "${OUT%.jsonl}-$name.log"; done
echo "results: $OUT"
