#!/usr/bin/env bash
# etcd-format snapshots, meshkv beside a real etcd 3.4.23 in one run: both loaded with the same
# N keys (meshkv bench put, 256-byte values), then `etcdctl snapshot save` from each, twice,
# interleaved; then `meshkv snapshot restore` and `etcdctl snapshot restore` of both files.
#
#   N=100000 bench/snapshot-etcd.sh
#
# Prints each time with the load average before and after. Stops what it started, by PID.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
npm run build --silent
N=${N:-100000}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/meshkv-snapshot-bench.XXXXXX")
cd "$WORK"
export ETCDCTL_API=3
node "$ROOT/bin/meshkv.mjs" --name m --data-dir m.data --listen-client-urls http://127.0.0.1:24379 --browser-peers off 2> m.log & MP=$!
etcd --name e --data-dir e.data --listen-client-urls http://127.0.0.1:24380 --advertise-client-urls http://127.0.0.1:24380 \
  --listen-peer-urls http://127.0.0.1:24381 --initial-advertise-peer-urls http://127.0.0.1:24381 --initial-cluster e=http://127.0.0.1:24381 2> e.log & EP=$!
trap 'kill $MP $EP 2>/dev/null; wait $MP $EP 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 1 100); do
  etcdctl --endpoints=127.0.0.1:24379 endpoint health >/dev/null 2>&1 && etcdctl --endpoints=127.0.0.1:24380 endpoint health >/dev/null 2>&1 && break
  sleep 0.3
done
for port in 24379 24380; do
  node "$ROOT/bin/meshkv.mjs" bench put --endpoints=127.0.0.1:$port --clients=64 --conns=8 --total="$N" --key-space="$N" --val-size=256 >/dev/null
done
seconds() { local s; s=$(date +%s.%N); "$@" >/dev/null 2>&1 || echo "failed: $*" >&2; echo "$(date +%s.%N) - $s" | bc; }
echo "load: $(uptime)"
for round in 1 2; do
  for port in 24379 24380; do
    name=$([ $port = 24379 ] && echo meshkv || echo etcd)
    pid=$([ $port = 24379 ] && echo $MP || echo $EP)
    t=$(seconds etcdctl --endpoints=127.0.0.1:$port snapshot save $name.db)
    echo "snapshot save from $name (round $round): $t s, $(stat -c %s $name.db) bytes; server RSS $(ps -o rss= -p $pid) KiB"
  done
done
for name in meshkv etcd; do etcdctl snapshot status $name.db -w table; done
for name in meshkv etcd; do
  echo "meshkv snapshot restore of $name.db: $(seconds node "$ROOT/bin/meshkv.mjs" snapshot restore $name.db --data-dir restored-m-$name) s"
  echo "etcdctl snapshot restore of $name.db: $(seconds etcdctl snapshot restore $name.db --data-dir restored-e-$name) s"
done
echo "load: $(uptime)"
