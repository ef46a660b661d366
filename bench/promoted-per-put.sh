#!/usr/bin/env bash
# Bytes promoted to V8's old generation per put, and by whom (issues 16 and 18: the 1-member p99
# at small store sizes is set by how often the old generation fills up). One member of ROOT's
# build, empty store, ../shared/bench-etcd's put load (64 clients, 256-byte values, new keys)
# for SECONDS; the member runs with --trace-gc-nvp and the round's scavenges' `promoted=` are
# summed and divided by the puts. SAMPLE=1 also samples what no scavenge freed
# (bench/alloc-sample.mjs with ALLOC_SURVIVORS=1) into $OUT_DIR/survivors.heapprofile, for
# bench/survivor-kinds.mjs. RATE caps the puts/s (promotion depends on the put rate: compare builds
# at the same RATE, interleaved).
#   RATE=600 SAMPLE=1 PORT_BASE=28790 bench/promoted-per-put.sh /tmp/base-checkout base 20
# Prints one JSON line: puts/s, p50/p99/max ms, server µs/put, RSS, scavenges, mark-compacts,
# promoted bytes per put, load average.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD=${1:?build root} NAME=${2:?name} DUR=${3:-20} PB=${PORT_BASE:-28790}
OUT_DIR=${OUT_DIR:-$ROOT/results/promoted-$NAME-$(date +%Y%m%d-%H%M%S)}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/meshkv-promoted.XXXXXX")
mkdir -p "$OUT_DIR"
source bench/lib/harness.sh
trap 'stop; rm -rf "$WORK"' EXIT
install_harness "$WORK/harness"
export MESHKV_ADMISSION_SECRET=promoted-per-put-admission-secret
ep=127.0.0.1:$((PB + 1))
ALLOC_OUT=$OUT_DIR/survivors.heapprofile ALLOC_SURVIVORS=1 ALLOC_FROM_S=3 node --trace-gc-nvp ${SAMPLE:+--import "$ROOT/bench/alloc-sample.mjs"} \
  "$BUILD/bin/meshkv.mjs" --name m --data-dir "$WORK/data" --listen-client-urls "http://$ep" \
  --initial-cluster "m=http://127.0.0.1:$((PB + 2))" >"$OUT_DIR/member.log" 2>&1 </dev/null &
PID=$!
PIDS+=("$PID")
for _ in $(seq 1 300); do
  kill -0 "$PID" 2>/dev/null || { tail -3 "$OUT_DIR/member.log"; exit 1; }
  ETCDCTL_API=3 etcdctl --endpoints="$ep" --dial-timeout=1s get x >/dev/null 2>&1 && break
  sleep 0.1
done
sleep 3
from=$(wc -l <"$OUT_DIR/member.log")
(cd "$WORK/harness" && node bench.mjs --endpoints "$ep" --workload put --clients 64 --duration "$DUR" --warmup 1 --value-size 256 \
  ${RATE:+--rate "$RATE"} --server-pids "$PID" --label "$NAME" | tail -1) >"$OUT_DIR/bench.json"
to=$(wc -l <"$OUT_DIR/member.log")
stop
sed -n "$((from + 1)),${to}p" "$OUT_DIR/member.log" >"$OUT_DIR/round.log"
node -e '
const fs = require("fs"); const [dir, name] = process.argv.slice(1);
const b = JSON.parse(fs.readFileSync(dir + "/bench.json", "utf8"));
let promoted = 0, scavenges = 0, markCompacts = 0;
for (const line of fs.readFileSync(dir + "/round.log", "utf8").split("\n")) {
  const gc = / gc=(\w+)/.exec(line); if (!gc) continue;
  if (gc[1] === "s") { scavenges++; promoted += Number(/ promoted=(\d+)/.exec(line)?.[1] ?? 0); }
  else if (gc[1] === "mc" || gc[1] === "mmc") markCompacts++;
}
console.log(JSON.stringify({ name, ops: b.ops, ops_s: b.ops_per_s, p50: b.lat_ms.p50, p99: b.lat_ms.p99, max: b.lat_ms.max,
  us_put: Math.round(b.server.cpu_us_per_op), rss_mb: b.server.rss_mb_max[0], scavenges, mark_compacts: markCompacts,
  promoted_per_put: Math.round(promoted / b.ops), load: fs.readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ") }));
' "$OUT_DIR" "$NAME"
