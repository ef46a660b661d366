#!/usr/bin/env bash
# One-client puts through a follower (or the leader) of a fresh 3-member meshkv cluster, with
# every member's system calls: what each member does per put, in order, and when.
#
#   bench/follow-trace.sh ROOT OUT follower|leader    # env: PORT_BASE (30830), RATE (50)
#
# ROOT is a built meshkv tree (bin/meshkv.mjs). ../shared/bench-etcd's bench.mjs puts at RATE/s
# (256-byte values, one in flight) against the target for 12 s; from the fifth second `strace -f
# -ttt -T -yy` records each member for 3 s into OUT.<pid>; OUT.info names the target's and the
# leader's pids and client ports. bench/follow-trace-parse.mjs OUT reads them. strace slows every
# system call: read the order, the counts and the gaps between steps, not the absolute times.
# Every process started here is stopped by its PID.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD="$(cd "$1" && pwd)" OUT="$2" TARGET="$3"
PB="${PORT_BASE:-30830}" RATE="${RATE:-50}"
command -v strace >/dev/null || { echo "strace is not installed" >&2; exit 2; }
[[ -f "$BUILD/dist/index.js" || -d "$BUILD/dist" ]] || { echo "$BUILD/dist is not built (npm run build)" >&2; exit 2; }
ROOT=$(pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/meshkv-follow-trace.XXXXXX")
source bench/lib/harness.sh
trap 'stop; rm -rf "$WORK"' EXIT
install_harness "$WORK/harness"
export MESHKV_ADMISSION_SECRET=follow-trace-admission-secret
cluster=a=http://127.0.0.1:$((PB + 11)),b=http://127.0.0.1:$((PB + 12)),c=http://127.0.0.1:$((PB + 13))
i=0
for name in a b c; do
  i=$((i + 1))
  node "$BUILD/bin/meshkv.mjs" --name "$name" --data-dir "$WORK/$name" --listen-client-urls "http://127.0.0.1:$((PB + i))" \
    --initial-cluster "$cluster" >"$WORK/$name.log" 2>&1 &
  PIDS+=("$!")
done
eps=http://127.0.0.1:$((PB + 1)),http://127.0.0.1:$((PB + 2)),http://127.0.0.1:$((PB + 3))
for _ in $(seq 1 150); do
  if ETCDCTL_API=3 etcdctl --endpoints="$eps" endpoint status 2>/dev/null | grep -q true; then break; fi
  sleep 0.2
done
st=$(ETCDCTL_API=3 etcdctl --endpoints="$eps" endpoint status)
want=true; [[ $TARGET == follower ]] && want=false
ep=$(awk -F', ' -v w="$want" '$5==w {print $1; exit}' <<<"$st"); ep=${ep#http://}
lead=$(awk -F', ' '$5=="true" {print $1; exit}' <<<"$st"); lead=${lead#http://}
index_of() { echo $(( ${1##*:} - PB - 1 )); }
{
  echo "target_pid ${PIDS[$(index_of "$ep")]} target_port ${ep##*:} leader_pid ${PIDS[$(index_of "$lead")]} leader_port ${lead##*:}"
  echo "load $(cut -d' ' -f1-3 /proc/loadavg) build $BUILD"
} | tee "$OUT.info"
(cd "$WORK/harness" && node bench.mjs --endpoints "$ep" --workload put --clients 1 --rate "$RATE" --value-size 256 --duration 8 --warmup 4 | grep '^#') &
client=$!
sleep 5
tracers=()
for pid in "${PIDS[@]}"; do
  timeout 3 strace -f -ttt -T -yy -qq -e trace=read,write,writev,pwrite64,fdatasync,fsync,epoll_wait,epoll_pwait -o "$OUT.$pid" -p "$pid" &
  tracers+=("$!")
done
wait "$client"
for t in "${tracers[@]}"; do wait "$t" || true; done
