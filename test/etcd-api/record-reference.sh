#!/bin/sh
# Prints what real etcd 3.4 answers to the commands the etcd-api tests run, so the expected
# outputs in etcdctl.test.ts and gateway.test.ts can be re-checked by eye. Needs /usr/bin/etcd
# and /usr/bin/etcdctl; uses ports 23790/23800 and a temporary data dir; stops etcd by its pid.
set -eu
dir=$(mktemp -d)
/usr/bin/etcd --name ref --data-dir "$dir/data" \
  --listen-client-urls http://127.0.0.1:23790 --advertise-client-urls http://127.0.0.1:23790 \
  --listen-peer-urls http://127.0.0.1:23800 --initial-advertise-peer-urls http://127.0.0.1:23800 \
  --initial-cluster ref=http://127.0.0.1:23800 >"$dir/etcd.log" 2>&1 &
pid=$!
trap 'kill "$pid"; wait "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
sleep 2
export ETCDCTL_API=3
ctl() { echo "\$ etcdctl $*"; /usr/bin/etcdctl --endpoints=127.0.0.1:23790 "$@" 2>&1 | grep -v '^{"level"' || true; }
ctl put foo bar
ctl put foo bar2 --prev-kv
ctl get foo
ctl get foo -w json
ctl put foo/a 1
ctl put foo/b 2
ctl get foo --prefix
ctl get foo --prefix --keys-only
ctl del foo/a
ctl del foo --prefix --prev-kv
ctl del nothing
ctl put '' x
ctl get foo --rev=100000
echo '$ etcdctl txn'
printf 'mod("t") = "0"\n\nput t yes\n\nget t\n\n' | /usr/bin/etcdctl --endpoints=127.0.0.1:23790 txn
printf 'mod("t") = "0"\n\nput t yes\n\nget t\n\n' | /usr/bin/etcdctl --endpoints=127.0.0.1:23790 txn
lease=$(/usr/bin/etcdctl --endpoints=127.0.0.1:23790 lease grant 100 | awk '{print $2}')
ctl put --lease="$lease" lk v
ctl lease keep-alive --once "$lease"
ctl lease timetolive "$lease" --keys
ctl lease list
ctl lease revoke "$lease"
ctl lease revoke "$lease"
ctl lease keep-alive --once "$lease"
ctl lease timetolive "$lease"
ctl endpoint status
ctl member list
ctl alarm list
ctl defrag
gw() { echo "POST $1 $2"; curl -s -X POST "http://127.0.0.1:23790$1" -d "$2"; echo; }
gw /v3/kv/put '{"key":"Zm9v","value":"YmFy"}'
gw /v3/kv/range '{"key":"Zm9v"}'
gw /v3/kv/range '{"key":""}'
gw /v3/kv/deleterange '{"key":"Zm9v","prev_kv":true}'
gw /v3/kv/txn '{"compare":[{"key":"Zm9v","target":"VERSION","result":"EQUAL","version":"0"}],"success":[{"request_put":{"key":"Zm9v","value":"YmFy"}}]}'
gw /v3/lease/revoke '{"ID":"1"}'
gw /v3/maintenance/status '{}'
curl -s http://127.0.0.1:23790/health; echo
