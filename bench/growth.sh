#!/usr/bin/env bash
# The growth benchmark of issues 18 and 16: one member (or MEMBERS=3: a cluster of three) each
# of real etcd (Debian's etcd-server) and meshkv, both running for the whole run, measured side
# by side at growing store sizes.
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
# With MEMBERS=3 the fill goes to the first member, the load to all three endpoints (as
# bench/compare-etcd.sh), memory is the largest member's RSS, GC figures cover the collections of
# all three meshkv members during the round, and only the first member restarts (the other two
# keep serving).
#
#   bench/growth.sh     # STAGES="0 500000 1000000 1500000 2000000" ROUND_S=30 CLIENTS=64 VALUE=256 FILL=txn MEMBERS=1 PORT_BASE TRACE= MESHKV_NODE_FLAGS=
#
# MESHKV_NODE_FLAGS (space-separated) go to node for every meshkv member, before the script:
# MESHKV_NODE_FLAGS=--trace-gc-nvp logs each collection's phases for bench/gc-phases.mjs.
#
# TRACE=1 names the slow puts (issue 18's "no pause over 100 ms"): the meshkv members and the
# load client run under bench/event-trace.mjs (GC pauses, event-loop stalls, every fsync and
# rename, in epoch ms), the client also logs every put slower than SLOW_OP_MS (default 20) with
# its start, and bench/slow-puts.mjs lines them up per meshkv round (the logs go to results/).
#
# PORT_BASE (unset: 24780) moves every port, so that runs of this and other scripts can share the
# machine: member i's etcd client and peer ports are PORT_BASE+1+2i and PORT_BASE+2+2i, meshkv's
# PORT_BASE+11+2i and PORT_BASE+12+2i.
#
# Writes results/growth-<time>.jsonl (and the member's log with its GC trace beside it) and
# prints markdown tables. Stops every process it started, by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
source bench/lib/gc-pauses.sh
. "$ROOT/bench/etcd-probes.sh"
STAGES="${STAGES:-0 500000 1000000 1500000 2000000}" ROUND_S="${ROUND_S:-30}" CLIENTS="${CLIENTS:-64}" VALUE="${VALUE:-256}" FILL="${FILL:-txn}"
MEMBERS="${MEMBERS:-1}"
[[ "$MEMBERS" == 1 || "$MEMBERS" == 3 ]] || { echo "MEMBERS must be 1 or 3, not $MEMBERS" >&2; exit 2; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/meshkv-growth.XXXXXX")
OUT="$ROOT/results/growth-$(date +%Y%m%d-%H%M%S).jsonl"
mkdir -p "$ROOT/results"
cp -r "$ROOT/../shared/bench-etcd" "$WORK/harness"
(cd "$WORK/harness" && npm ci --no-audit --no-fund --silent)
TRACE="${TRACE:-}" SLOW_OP_MS="${SLOW_OP_MS:-20}"
TRACE_IMPORT=()
if [[ -n "$TRACE" ]]; then
  TRACE_IMPORT=(--import "$ROOT/bench/event-trace.mjs")
  # One line per slow put from the harness's copy: its start (epoch ms) and latency.
  grep -q '      const t1 = performance.now();' "$WORK/harness/bench.mjs"
  sed -i "s|^      const t1 = performance.now();\$|&\n      if (t1 - t0 > $SLOW_OP_MS) process.stderr.write(\`slow-op \${(performance.timeOrigin + t0).toFixed(1)} \${(t1 - t0).toFixed(2)}\\\\n\`);|" "$WORK/harness/bench.mjs"
  grep -q 'slow-op' "$WORK/harness/bench.mjs"
fi
export ETCDCTL_API=3
PORT_BASE="${PORT_BASE:-24780}"
ETCD_PORT_BASE=$((PORT_BASE + 1)) MESHKV_PORT_BASE=$((PORT_BASE + 11))
# Member i: etcd's client port ETCD_PORT_BASE+2i, peer port one above; meshkv's likewise from MESHKV_PORT_BASE.
ETCD_EPS=() MESHKV_EPS=() ETCD_PIDS=() MESHKV_PIDS=() ETCD_CLUSTER="" MESHKV_CLUSTER=""
for ((i = 0; i < MEMBERS; i++)); do
  ETCD_EPS+=("127.0.0.1:$((ETCD_PORT_BASE + 2 * i))") MESHKV_EPS+=("127.0.0.1:$((MESHKV_PORT_BASE + 2 * i))")
  ETCD_CLUSTER+="${ETCD_CLUSTER:+,}e$i=http://127.0.0.1:$((ETCD_PORT_BASE + 1 + 2 * i))"
  MESHKV_CLUSTER+="${MESHKV_CLUSTER:+,}a$i=http://127.0.0.1:$((MESHKV_PORT_BASE + 1 + 2 * i))"
done
ETCD_EP=${ETCD_EPS[0]} MESHKV_EP=${MESHKV_EPS[0]}
ETCD_ALL=$(IFS=,; echo "${ETCD_EPS[*]}") MESHKV_ALL=$(IFS=,; echo "${MESHKV_EPS[*]}")
# The meshkv members admit each other with one shared admission secret.
export MESHKV_ADMISSION_SECRET=growth-admission-secret

cleanup() {
  for pid in "${ETCD_PIDS[@]}" "${MESHKV_PIDS[@]}"; do [[ -n "$pid" ]] && kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  # The data dirs hold about a GB by the end; the results are in $OUT.
  rm -rf "$WORK"
}
trap cleanup EXIT

start_etcd() {  # start_etcd MEMBER
  local ep=${ETCD_EPS[$1]} peer=http://127.0.0.1:$((ETCD_PORT_BASE + 1 + 2 * $1))
  etcd --name "e$1" --data-dir "$WORK/etcd$1" --listen-client-urls "http://$ep" --advertise-client-urls "http://$ep" \
    --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
    --initial-cluster "$ETCD_CLUSTER" >>"$WORK/etcd$1.log" 2>&1 </dev/null &
  ETCD_PIDS[$1]=$!
}
start_meshkv() {  # start_meshkv MEMBER
  # --trace-gc: every collection's pause goes to the log, read back per round.
  # shellcheck disable=SC2086
  node --trace-gc ${MESHKV_NODE_FLAGS:-} "${TRACE_IMPORT[@]}" "$ROOT/bin/meshkv.mjs" --name "a$1" --data-dir "$WORK/meshkv$1" --listen-client-urls "http://${MESHKV_EPS[$1]}" \
    --initial-cluster "$MESHKV_CLUSTER" ${MESHKV_FLAGS:-} >>"$WORK/meshkv$1.log" 2>&1 </dev/null &
  MESHKV_PIDS[$1]=$!
}
# RSS, anonymous and file-backed memory of the largest of the PIDs (by RSS), in KiB, as a JSON fragment.
memory() {
  local pid best=0 line out=""
  for pid in "$@"; do
    line=$(awk '/^Rss:/{r=$2}/^Anonymous:/{a=$2}END{printf "%d %d", r, a}' "/proc/$pid/smaps_rollup")
    if (( ${line% *} > best )); then best=${line% *}; out=$line; fi
  done
  echo "$out" | awk '{printf "\"rss_kib\":%d,\"anon_kib\":%d,\"file_kib\":%d", $1, $2, $1-$2}'
}
record() { echo "{$1,\"load_avg\":\"$(cut -d' ' -f1-3 /proc/loadavg)\",\"at\":\"$(date -u +%FT%TZ)\"}" >>"$OUT"; tail -1 "$OUT"; }

# The lines the meshkv members logged after the line counts in $1 (as `log_lines` prints them).
new_log_lines() {
  local i=0 from
  for from in $1; do tail -n +"$((from + 1))" "$WORK/meshkv$i.log"; i=$((i + 1)); done
}
log_lines() { local i; for ((i = 0; i < MEMBERS; i++)); do wc -l <"$WORK/meshkv$i.log"; done | tr '\n' ' '; }

round() {  # round LABEL ENDPOINTS PIDS(comma-separated) STAGE
  local label=$1 eps=$2 pids=$3 stage=$4 gc_from="" line gc
  [[ "$label" == meshkv ]] && gc_from=$(log_lines)
  local client_log=/dev/stderr
  [[ -n "$TRACE" ]] && client_log="$WORK/client-$label-$stage.log"
  line=$(cd "$WORK/harness" && TRACE_TAG=cevt node "${TRACE_IMPORT[@]}" bench.mjs --endpoints "$eps" --workload put --clients "$CLIENTS" --duration "$ROUND_S" \
    --warmup 1 --value-size "$VALUE" --server-pids "$pids" --label "$label-$stage" 2>>"$client_log" | tail -1)
  gc='"gc_pause_ms_max":null,"gc_pause_ms_total":null'
  if [[ "$label" == meshkv ]]; then
    gc=$(new_log_lines "$gc_from" | gc_pauses | awk '{p=$NF+0; t+=p; if(p>m)m=p; if($1=="Mark-Compact"){n++; if(p>mc)mc=p}}
      END{printf "\"gc_pause_ms_max\":%.0f,\"gc_pause_ms_total\":%.0f,\"mark_compacts\":%d,\"mark_compact_ms_max\":%.0f", m, t, n, mc}')
    # The V8 heap after the round's last full collection: live MB (committed MB); not in an nvp log.
    gc+=$(grep -oE 'Mark-Compact [0-9.]+ \([0-9.]+\) -> [0-9.]+ \([0-9.]+\)' "$WORK/meshkv0.log" | tail -1 | tr -d '()' |
      awk '{printf ",\"heap_live_mb\":%s,\"heap_committed_mb\":%s", $5, $6}' || true)
  fi
  record "\"kind\":\"load\",\"system\":\"$label\",\"stage\":$stage,\"members\":$MEMBERS,\"keys\":$(keys "${eps%%,*}"),$(memory ${pids//,/ }),$gc,\"bench\":$line"
}

for ((i = 0; i < MEMBERS; i++)); do start_etcd "$i"; start_meshkv "$i"; done
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
  record "\"kind\":\"rest\",\"system\":\"etcd\",\"stage\":$stage,\"members\":$MEMBERS,\"keys\":$(keys "$ETCD_EP"),$(memory "${ETCD_PIDS[@]}")"
  record "\"kind\":\"rest\",\"system\":\"meshkv\",\"stage\":$stage,\"members\":$MEMBERS,\"keys\":$(keys "$MESHKV_EP"),$(memory "${MESHKV_PIDS[@]}")"
  echo "== load at $stage"
  round etcd "$ETCD_ALL" "$(IFS=,; echo "${ETCD_PIDS[*]}")" "$stage"
  round meshkv "$MESHKV_ALL" "$(IFS=,; echo "${MESHKV_PIDS[*]}")" "$stage"
done

echo "== restart (member 0)"
kill "${ETCD_PIDS[0]}"; wait "${ETCD_PIDS[0]}" 2>/dev/null || true
t0=$(date +%s%N); start_etcd 0; s=$(first_read "$t0" "$ETCD_EP")
record "\"kind\":\"restart\",\"system\":\"etcd\",\"members\":$MEMBERS,\"keys\":$(keys "$ETCD_EP"),\"first_read_s\":$s,$(memory "${ETCD_PIDS[0]}")"
kill "${MESHKV_PIDS[0]}"; wait "${MESHKV_PIDS[0]}" 2>/dev/null || true
t0=$(date +%s%N); start_meshkv 0; s=$(first_read "$t0" "$MESHKV_EP")
record "\"kind\":\"restart\",\"system\":\"meshkv\",\"members\":$MEMBERS,\"keys\":$(keys "$MESHKV_EP"),\"first_read_s\":$s,$(memory "${MESHKV_PIDS[0]}")"
du -sh "$WORK"/etcd? "$WORK"/meshkv? | sed 's/^/data: /'
for ((i = 0; i < MEMBERS; i++)); do cp "$WORK/meshkv$i.log" "${OUT%.jsonl}-meshkv$i.log"; done
if [[ -n "$TRACE" ]]; then
  for f in "$WORK"/client-*.log; do cp "$f" "${OUT%.jsonl}-${f##*/}"; done
  for stage in $STAGES; do
    echo "== slow puts, meshkv at $stage"
    node "$ROOT/bench/slow-puts.mjs" "${OUT%.jsonl}-client-meshkv-$stage.log" "${OUT%.jsonl}"-meshkv?.log || true
  done
fi

node "$ROOT/bench/growth-table.mjs" "$OUT"
echo "results: $OUT"
