#!/usr/bin/env bash
# The growth benchmark of issues 18 and 16: one member each of real etcd (Debian's etcd-server)
# and meshkv, both running for the whole run, measured side by side at growing store sizes.
# At each stage (a key count):
#   1. fill: both stores get the stage's keys as Txn requests of 128 puts of 256-byte values
#      (what `etcdctl txn` sends), etcd first, then meshkv: over the harness's HTTP/2 client
#      (bench/txn-fill.mjs), or with FILL=etcdctl one etcdctl process per txn
#      (bench/etcdctl-fill.mjs, ~700 keys/s on this machine under load);
#   2. at rest: 10 s idle, then each server's RSS split into anonymous and file-backed memory
#      (/proc/PID/smaps_rollup; both map their database file, bbolt and LMDB);
#   3. load: one round of ROUND_S seconds of the ../shared/bench-etcd h2 client writing new keys
#      at CLIENTS clients, etcd then meshkv: throughput, p99/max latency, memory right after,
#      and meshkv's GC pauses during the round (the member runs under --trace-gc).
# Then restart: each server is stopped (SIGTERM) and started again on its data, timed from the
# spawn to the first served read.
#
#   bench/growth.sh     # STAGES="0 500000 1000000 1500000 2000000" ROUND_S=30 CLIENTS=64 VALUE=256 FILL=txn
#
# Writes results/growth-<time>.jsonl (and the member's log with its GC trace beside it) and
# prints markdown tables. Stops every process it started, by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
STAGES="${STAGES:-0 500000 1000000 1500000 2000000}" ROUND_S="${ROUND_S:-30}" CLIENTS="${CLIENTS:-64}" VALUE="${VALUE:-256}" FILL="${FILL:-txn}"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/meshkv-growth.XXXXXX")
OUT="$ROOT/results/growth-$(date +%Y%m%d-%H%M%S).jsonl"
mkdir -p "$ROOT/results"
cp -r "$ROOT/../shared/bench-etcd" "$WORK/harness"
(cd "$WORK/harness" && npm ci --no-audit --no-fund --silent)
export ETCDCTL_API=3
ETCD_EP=127.0.0.1:24781 MESHKV_EP=127.0.0.1:24791
ETCD_PID="" MESHKV_PID=""

cleanup() {
  [[ -n "$ETCD_PID" ]] && kill "$ETCD_PID" 2>/dev/null || true
  [[ -n "$MESHKV_PID" ]] && kill "$MESHKV_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  # The data dirs hold about a GB by the end; the results are in $OUT.
  rm -rf "$WORK"
}
trap cleanup EXIT

start_etcd() {
  etcd --name e --data-dir "$WORK/etcd" --listen-client-urls "http://$ETCD_EP" --advertise-client-urls "http://$ETCD_EP" \
    --listen-peer-urls http://127.0.0.1:24782 --initial-advertise-peer-urls http://127.0.0.1:24782 \
    --initial-cluster e=http://127.0.0.1:24782 >>"$WORK/etcd.log" 2>&1 </dev/null &
  ETCD_PID=$!
}
start_meshkv() {
  # --trace-gc: every collection's pause goes to the log, read back per round.
  node --trace-gc "$ROOT/bin/meshkv.mjs" --name a --data-dir "$WORK/meshkv" --listen-client-urls "http://$MESHKV_EP" \
    --initial-cluster a=http://127.0.0.1:24792 ${MESHKV_FLAGS:-} >>"$WORK/meshkv.log" 2>&1 </dev/null &
  MESHKV_PID=$!
}
# Waits for the first served read; prints the seconds since $1 (date +%s%N at spawn).
first_read() {
  local since=$1 ep=$2
  for _ in $(seq 1 6000); do
    if etcdctl --endpoints="$ep" --dial-timeout=1s --command-timeout=2s get bench/ --prefix --limit=1 --keys-only >/dev/null 2>&1; then
      echo "scale=2; ($(date +%s%N) - $since) / 1000000000" | bc
      return
    fi
    sleep 0.05
  done
  echo "no read served after 300 s at $ep" >&2
  exit 1
}
keys() {
  etcdctl --endpoints="$1" --command-timeout=120s get bench/ --prefix --limit=1 --keys-only -w json |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).count??0))'
}
# RSS, anonymous and file-backed memory of a PID, in KiB, as a JSON fragment.
memory() {
  awk '/^Rss:/{r=$2}/^Anonymous:/{a=$2}END{printf "\"rss_kib\":%d,\"anon_kib\":%d,\"file_kib\":%d", r, a, r-a}' "/proc/$1/smaps_rollup"
}
record() { echo "{$1,\"load_avg\":\"$(cut -d' ' -f1-3 /proc/loadavg)\",\"at\":\"$(date -u +%FT%TZ)\"}" >>"$OUT"; tail -1 "$OUT"; }

round() {
  local label=$1 ep=$2 pid=$3 stage=$4 gc_from=0 line gc
  [[ "$label" == meshkv ]] && gc_from=$(wc -l <"$WORK/meshkv.log")
  line=$(cd "$WORK/harness" && node bench.mjs --endpoints "$ep" --workload put --clients "$CLIENTS" --duration "$ROUND_S" \
    --warmup 1 --value-size "$VALUE" --server-pids "$pid" --label "$label-$stage" | tail -1)
  gc='"gc_pause_ms_max":null,"gc_pause_ms_total":null'
  if [[ "$label" == meshkv ]]; then
    gc=$(tail -n +"$((gc_from + 1))" "$WORK/meshkv.log" | grep -oE '(Scavenge|Mark-Compact)[^,]*, [0-9.]+' | awk '{p=$NF+0; t+=p; if(p>m)m=p; if($1=="Mark-Compact"){n++; if(p>mc)mc=p}}
      END{printf "\"gc_pause_ms_max\":%.0f,\"gc_pause_ms_total\":%.0f,\"mark_compacts\":%d,\"mark_compact_ms_max\":%.0f", m, t, n, mc}')
    # The V8 heap after the round's last full collection: live MB (committed MB).
    gc+=$(grep -oE 'Mark-Compact [0-9.]+ \([0-9.]+\) -> [0-9.]+ \([0-9.]+\)' "$WORK/meshkv.log" | tail -1 | tr -d '()' |
      awk '{printf ",\"heap_live_mb\":%s,\"heap_committed_mb\":%s", $5, $6}')
  fi
  record "\"kind\":\"load\",\"system\":\"$label\",\"stage\":$stage,\"keys\":$(keys "$ep"),$(memory "$pid"),$gc,\"bench\":$line"
}

start_etcd
start_meshkv
first_read "$(date +%s%N)" "$ETCD_EP" >/dev/null
first_read "$(date +%s%N)" "$MESHKV_EP" >/dev/null
filled=0
for stage in $STAGES; do
  if ((stage > filled)); then
    echo "== fill to $stage keys: etcd, then meshkv"
    for ep in "$ETCD_EP" "$MESHKV_EP"; do
      if [[ "$FILL" == etcdctl ]]; then node bench/etcdctl-fill.mjs "$ep" "$filled" "$stage" bench/fill/ "$VALUE"
      else node bench/txn-fill.mjs "$WORK/harness" "$ep" "$filled" "$stage" bench/fill/ "$VALUE"; fi
    done
    filled=$stage
  fi
  sleep 10
  record "\"kind\":\"rest\",\"system\":\"etcd\",\"stage\":$stage,\"keys\":$(keys "$ETCD_EP"),$(memory "$ETCD_PID")"
  record "\"kind\":\"rest\",\"system\":\"meshkv\",\"stage\":$stage,\"keys\":$(keys "$MESHKV_EP"),$(memory "$MESHKV_PID")"
  echo "== load at $stage"
  round etcd "$ETCD_EP" "$ETCD_PID" "$stage"
  round meshkv "$MESHKV_EP" "$MESHKV_PID" "$stage"
done

echo "== restart"
kill "$ETCD_PID"; wait "$ETCD_PID" 2>/dev/null || true
t0=$(date +%s%N); start_etcd; s=$(first_read "$t0" "$ETCD_EP")
record "\"kind\":\"restart\",\"system\":\"etcd\",\"keys\":$(keys "$ETCD_EP"),\"first_read_s\":$s,$(memory "$ETCD_PID")"
kill "$MESHKV_PID"; wait "$MESHKV_PID" 2>/dev/null || true
t0=$(date +%s%N); start_meshkv; s=$(first_read "$t0" "$MESHKV_EP")
record "\"kind\":\"restart\",\"system\":\"meshkv\",\"keys\":$(keys "$MESHKV_EP"),\"first_read_s\":$s,$(memory "$MESHKV_PID")"
du -sh "$WORK/etcd" "$WORK/meshkv" | sed 's/^/data: /'
cp "$WORK/meshkv.log" "${OUT%.jsonl}-meshkv.log"

node "$ROOT/bench/growth-table.mjs" "$OUT"
echo "results: $OUT"
