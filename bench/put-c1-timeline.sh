#!/usr/bin/env bash
# One client's puts over time on a fresh 3-member cluster, real etcd 3.4.23 and meshkv
# interleaved (etcd, meshkv, etcd, meshkv, …): ops/s, latency and the members' CPU per put in
# windows of WINDOW_S seconds from FIRST_S seconds after the first put
# (bench/put-c1-timeline.mjs). The put-c1 row of bench/compare-etcd.sh measures seconds 2–8 of
# a fresh cluster; this shows whether those seconds run like the later ones on each side.
#
#   bench/put-c1-timeline.sh [ROUNDS]    # env: SECONDS_RUN (32), WINDOW_S (6), FIRST_S (2), TARGET (leader|follower), PORT_BASE (25790)
#
# etcd listens on PORT_BASE+1..3 (peers +11..13), meshkv on PORT_BASE+21..23 (peers +31..33).
# Data directories are fresh each round; every process started here is stopped by its PID.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
ROUNDS="${1:-2}"
RUN_S="${SECONDS_RUN:-32}" WINDOW_S="${WINDOW_S:-6}" FIRST_S="${FIRST_S:-2}" TARGET="${TARGET:-leader}"
PORT_BASE="${PORT_BASE:-25790}"
[[ -d dist ]] || { echo "dist/ is not built (npm run build)" >&2; exit 2; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/meshkv-put-c1-timeline.XXXXXX")
source bench/lib/harness.sh
trap 'stop; rm -rf "$WORK"' EXIT
install_harness "$WORK/harness"

measure() {  # measure LABEL CLIENT_BASE: find the target member, run the client against it
  local label="$1" base="$2"
  local eps=http://127.0.0.1:$((base + 1)),http://127.0.0.1:$((base + 2)),http://127.0.0.1:$((base + 3))
  for _ in $(seq 1 150); do
    if ETCDCTL_API=3 etcdctl --endpoints="$eps" endpoint status 2>/dev/null | grep -q true; then break; fi
    sleep 0.2
  done
  local want=true; [[ $TARGET == follower ]] && want=false
  local ep; ep=$(ETCDCTL_API=3 etcdctl --endpoints="$eps" endpoint status | awk -F', ' -v w="$want" '$5==w {print $1; exit}')
  echo "== $label, $TARGET ${ep#http://}, load average $(cut -d' ' -f1-3 /proc/loadavg)"
  node bench/put-c1-timeline.mjs "$WORK/harness" "${ep#http://}" "$RUN_S" "$(IFS=,; echo "${PIDS[*]}")" "$WINDOW_S" "$FIRST_S"
  stop
}

for r in $(seq 1 "$ROUNDS"); do
  start_etcd3 "$WORK/etcd-$r" "put-c1-timeline-$r-$$"
  measure "round $r: real etcd" "$PORT_BASE"

  export MESHKV_ADMISSION_SECRET=put-c1-timeline-admission-secret
  start_meshkv3 "$WORK/meshkv-$r" "$ROOT"
  measure "round $r: meshkv" "$((PORT_BASE + 20))"
done
