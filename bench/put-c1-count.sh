#!/usr/bin/env bash
# A fresh member's first puts against its later ones, builds (and node flags) interleaved: for
# each round and each variant, a fresh 3-member meshkv cluster, one client on the leader for PUTS
# puts, the members' CPU per put in windows of STEP puts (bench/put-c1-count.mjs).
#
#   bench/put-c1-count.sh ROUNDS VARIANT...   # VARIANT: ROOT or ROOT@NODE_FLAGS (flags space-separated)
#   env: PUTS (1500), STEP (250), PORT_BASE (25790; meshkv listens on PORT_BASE+21..23, peers +31..33),
#        KEEP (a directory: each run's member logs and, as PUT_LOG, its per-put log are kept there,
#        <n>-a.log … and <n>-puts.log; with TREE@--import=…/bench/event-trace.mjs for bench/put-c1-p99.mjs)
#
# e.g. bench/put-c1-count.sh 2 /tmp/base . '.@--no-lazy-feedback-allocation'
# Data directories are fresh each time; every process started here is stopped by its PID.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
ROUNDS="$1"; shift
PUTS="${PUTS:-1500}" STEP="${STEP:-250}" PORT_BASE="${PORT_BASE:-25790}"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/meshkv-put-c1-count.XXXXXX")
source bench/lib/harness.sh
trap 'stop; rm -rf "$WORK"' EXIT
install_harness "$WORK/harness"
[[ -n "${KEEP:-}" ]] && mkdir -p "$KEEP"
export MESHKV_ADMISSION_SECRET=put-c1-count-admission-secret
base=$((PORT_BASE + 20))
eps=http://127.0.0.1:$((base + 1)),http://127.0.0.1:$((base + 2)),http://127.0.0.1:$((base + 3))
cluster=a=http://127.0.0.1:$((PORT_BASE + 31)),b=http://127.0.0.1:$((PORT_BASE + 32)),c=http://127.0.0.1:$((PORT_BASE + 33))
n=0
for r in $(seq 1 "$ROUNDS"); do
  for variant in "$@"; do
    tree="${variant%%@*}" flags=""
    [[ $variant == *@* ]] && flags="${variant#*@}"
    [[ -d "$tree/dist" ]] || { echo "$tree/dist is not built (npm run build)" >&2; exit 2; }
    n=$((n + 1)) i=0
    t0=$(date +%s%N)
    for name in a b c; do
      i=$((i + 1))
      # shellcheck disable=SC2086 # flags are words
      node $flags "$tree/bin/meshkv.mjs" --name "$name" --data-dir "$WORK/$n-$name" \
        --listen-client-urls "http://127.0.0.1:$((base + i))" --initial-cluster "$cluster" >"$WORK/$n-$name.log" 2>&1 &
      PIDS+=("$!")
    done
    for _ in $(seq 1 300); do
      for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || { echo "a member exited:" >&2; cat "$WORK/$n"-*.log >&2; exit 1; }; done
      if ETCDCTL_API=3 etcdctl --endpoints="$eps" endpoint status 2>/dev/null | grep -q true; then break; fi
      sleep 0.2
    done
    ready_ms=$((($(date +%s%N) - t0) / 1000000))
    ep=$(ETCDCTL_API=3 etcdctl --endpoints="$eps" endpoint status | awk -F', ' '$5=="true" {print $1; exit}')
    leader=$((${ep##*:} - base - 1))
    pids="${PIDS[$leader]}"
    for j in 0 1 2; do [[ $j != "$leader" ]] && pids="$pids,${PIDS[$j]}"; done
    rss=$(for pid in "${PIDS[@]}"; do awk '/VmRSS/ {printf "%d ", $2 / 1024}' "/proc/$pid/status"; done)
    echo "== round $r: $tree ${flags:+($flags) }leader ${ep#http://}, a leader after ${ready_ms} ms, RSS ${rss}MB, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    PUT_LOG="${KEEP:+$KEEP/$n-puts.log}" node bench/put-c1-count.mjs "$WORK/harness" "${ep#http://}" "$PUTS" "$pids" "$STEP"
    stop
    if [[ -n "${KEEP:-}" ]]; then
      for name in a b c; do cp "$WORK/$n-$name.log" "$KEEP/$n-$name.log"; done
      echo "  kept: $KEEP/$n-{a,b,c}.log, $KEEP/$n-puts.log (leader ${ep#http://})"
    fi
  done
done
