#!/usr/bin/env bash
# Restart time of one member holding KEYS keys (issue 18): real etcd (Debian's etcd-server) and
# one or more meshkv builds, filled once and then restarted RUNS times, interleaved (etcd, then
# each meshkv build, then again) so every system sees the same machine load. A restart is timed
# from the spawn to the first served read (as bench/growth.sh), and the CPU time the server used
# until then is taken too; the load average is printed beside each figure.
#
#   bench/restart.sh    # KEYS=2000000 RUNS=3 VALUE=256 MESHKV_ROOTS="<this checkout>" DATA=<temp dir>
#
# MESHKV_ROOTS lists checkouts whose dist/ is built (`npm run build`), e.g. the base commit beside
# this branch; they must share the backend layout, since they restart on the same data. The first
# one fills. DATA names a directory that holds the filled data dirs: a second run with the same
# DATA skips the fills that completed (and DATA is kept); without DATA a temp dir is used and removed.
# Writes results/restart-<time>.jsonl. Stops every process it started, by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
. "$ROOT/bench/etcd-probes.sh"
KEYS="${KEYS:-2000000}" RUNS="${RUNS:-3}" VALUE="${VALUE:-256}" MESHKV_ROOTS="${MESHKV_ROOTS:-$ROOT}"
KEEP_DATA=1
if [[ -z "${DATA:-}" ]]; then DATA=$(mktemp -d "${TMPDIR:-/tmp}/meshkv-restart.XXXXXX"); KEEP_DATA=0; fi
mkdir -p "$DATA" "$ROOT/results"
OUT="$ROOT/results/restart-$(date +%Y%m%d-%H%M%S).jsonl"
export ETCDCTL_API=3
# Ports away from bench/growth.sh's, so both may run on one machine.
ETCD_EP=127.0.0.1:27481 ETCD_PEER=http://127.0.0.1:27482
MESHKV_EP=127.0.0.1:27491 MESHKV_PEER=http://127.0.0.1:27492
PID=""
cleanup() {
  [[ -n "$PID" ]] && kill "$PID" 2>/dev/null || true
  wait 2>/dev/null || true
  if [[ "$KEEP_DATA" == 0 ]]; then rm -rf "$DATA"; fi
}
trap cleanup EXIT

# Refuses to start a server on a port something else listens on: the first read would then time
# that other server, and the fill would write into it.
port_free() {  # port_free HOST:PORT...
  local ep
  for ep in "$@"; do
    if (exec 3<>"/dev/tcp/${ep%:*}/${ep##*:}") 2>/dev/null; then echo "port ${ep##*:} is in use: stop what listens there first" >&2; exit 1; fi
  done
}
start_etcd() {
  port_free "$ETCD_EP" "${ETCD_PEER#http://}"
  etcd --name e0 --data-dir "$DATA/etcd" --listen-client-urls "http://$ETCD_EP" --advertise-client-urls "http://$ETCD_EP" \
    --listen-peer-urls "$ETCD_PEER" --initial-advertise-peer-urls "$ETCD_PEER" \
    --initial-cluster "e0=$ETCD_PEER" >>"$DATA/etcd.log" 2>&1 </dev/null &
  PID=$!
}
start_meshkv() {  # start_meshkv CHECKOUT
  port_free "$MESHKV_EP" "${MESHKV_PEER#http://}"
  node "$1/bin/meshkv.mjs" --name a0 --data-dir "$DATA/meshkv" --listen-client-urls "http://$MESHKV_EP" \
    --initial-cluster "a0=$MESHKV_PEER" >>"$DATA/meshkv.log" 2>&1 </dev/null &
  PID=$!
}
stop() {
  kill "$PID"
  wait "$PID" 2>/dev/null || true
  PID=""
}
# CPU seconds (user + system) a process has used: on a machine shared with other work, a steadier
# figure for the restart's own cost than the wall time to the first read.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat"; }
record() { echo "{$1,\"load_avg\":\"$(cut -d' ' -f1-3 /proc/loadavg)\",\"at\":\"$(date -u +%FT%TZ)\"}" >>"$OUT"; tail -1 "$OUT"; }

read -r -a roots <<<"$MESHKV_ROOTS"
for system in etcd meshkv; do
  [[ -f "$DATA/$system.filled" ]] && continue
  [[ -d "$DATA/harness" ]] || { cp -r "$ROOT/../shared/bench-etcd" "$DATA/harness" && (cd "$DATA/harness" && npm ci --no-audit --no-fund --silent); }
  echo "== fill $system to $KEYS keys"
  if [[ "$system" == etcd ]]; then start_etcd; ep=$ETCD_EP; else start_meshkv "${roots[0]}"; ep=$MESHKV_EP; fi
  first_read "$(date +%s%N)" "$ep" >/dev/null
  node bench/txn-fill.mjs "$DATA/harness" "$ep" 0 "$KEYS" bench/fill/ "$VALUE"
  stop
  touch "$DATA/$system.filled"
done

for ((run = 1; run <= RUNS; run++)); do
  echo "== restart run $run"
  start_etcd
  s=$(first_read "$(date +%s%N)" "$ETCD_EP")
  cpu=$(cpu_s "$PID")
  record "\"kind\":\"restart\",\"system\":\"etcd\",\"run\":$run,\"keys\":$(keys "$ETCD_EP"),\"first_read_s\":$s,\"cpu_s\":$cpu"
  stop
  for checkout in "${roots[@]}"; do
    start_meshkv "$checkout"
    s=$(first_read "$(date +%s%N)" "$MESHKV_EP")
    cpu=$(cpu_s "$PID")
    record "\"kind\":\"restart\",\"system\":\"meshkv\",\"checkout\":\"$(git -C "$checkout" rev-parse --short HEAD 2>/dev/null || echo "$checkout")\",\"run\":$run,\"keys\":$(keys "$MESHKV_EP"),\"first_read_s\":$s,\"cpu_s\":$cpu"
    stop
  done
done
