#!/usr/bin/env bash
# What blocks a member's event loop under put load on a large store (issue 18: "no pause over
# 100 ms; profile GC and snapshot work separately"). One meshkv member (dist/, `npm run build`
# first) runs under --cpu-prof, --trace-gc and bench/loop-stalls.mjs; it is filled with KEYS
# keys (Txn requests of 128 puts of VALUE-byte values, bench/txn-fill.mjs), then the
# ../shared/bench-etcd h2 client writes new keys at CLIENTS clients for ROUND_S seconds. The
# member is stopped (SIGTERM, which writes the profile) and bench/pauses-analyze.mjs splits the
# stalls of the load round into GC and JavaScript, with the functions that ran.
#
#   bench/pauses.sh        # KEYS=1000000 ROUND_S=30 CLIENTS=64 VALUE=256 MESHKV_FLAGS=
#
# Stops every process it started, by PID; keeps the profile and log in results/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
KEYS="${KEYS:-1000000}" ROUND_S="${ROUND_S:-30}" CLIENTS="${CLIENTS:-64}" VALUE="${VALUE:-256}"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/meshkv-pauses.XXXXXX")
OUT="$ROOT/results/pauses-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$ROOT/results"
cp -r "$ROOT/../shared/bench-etcd" "$WORK/harness"
(cd "$WORK/harness" && npm ci --no-audit --no-fund --silent)
EP=127.0.0.1:24891
PID=""
cleanup() {
  [[ -n "$PID" ]] && kill "$PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

node --trace-gc --cpu-prof --cpu-prof-dir="$WORK/prof" --import "$ROOT/bench/loop-stalls.mjs" "$ROOT/bin/meshkv.mjs" \
  --name a --data-dir "$WORK/meshkv" --listen-client-urls "http://$EP" --initial-cluster a=http://127.0.0.1:24892 ${MESHKV_FLAGS:-} \
  >>"$WORK/meshkv.log" 2>&1 </dev/null &
PID=$!
for _ in $(seq 1 600); do
  ETCDCTL_API=3 etcdctl --endpoints="$EP" --dial-timeout=1s get x >/dev/null 2>&1 && break
  sleep 0.1
done
echo "== fill $KEYS keys ($(cut -d' ' -f1-3 /proc/loadavg))"
node bench/txn-fill.mjs "$WORK/harness" "$EP" 0 "$KEYS" bench/fill/ "$VALUE"
sleep 5
FROM_US=$(node -e 'console.log(Number(process.hrtime.bigint() / 1000n))')
GC_FROM=$(wc -l <"$WORK/meshkv.log")
echo "== load: $CLIENTS clients, $ROUND_S s ($(cut -d' ' -f1-3 /proc/loadavg))"
(cd "$WORK/harness" && node bench.mjs --endpoints "$EP" --workload put --clients "$CLIENTS" --duration "$ROUND_S" \
  --warmup 1 --value-size "$VALUE" --server-pids "$PID" --label "meshkv-$KEYS" | tail -1) | tee "$OUT-bench.json"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
kill -TERM "$PID"; wait "$PID" 2>/dev/null || true
PID=""
cp "$WORK/meshkv.log" "$OUT-meshkv.log"
cp "$WORK"/prof/*.cpuprofile "$OUT.cpuprofile"
echo "load started at $FROM_US us (hrtime), log line $GC_FROM" | tee "$OUT-analysis.txt"
# GC pauses of the load round as --trace-gc reports them (wall time: a collection that waits
# for a CPU counts the wait).
tail -n +"$((GC_FROM + 1))" "$OUT-meshkv.log" | grep -oE '(Scavenge|Mark-Compact)[^,]*, [0-9.]+' |
  awk '{p=$NF+0; n++; t+=p; if(p>m)m=p; if(p>100)o++; if($1=="Mark-Compact"){c++; if(p>cm)cm=p}}
    END{printf "GC in the load round (--trace-gc): %d pauses, %.0f ms in all, longest %.0f ms, %d over 100 ms; %d full (longest %.0f ms)\n", n, t, m, o, c, cm}' |
  tee -a "$OUT-analysis.txt"
node bench/pauses-analyze.mjs "$OUT.cpuprofile" "$OUT-meshkv.log" "$FROM_US" | tee -a "$OUT-analysis.txt"
echo "results: $OUT-*"
