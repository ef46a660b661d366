#!/bin/sh
# Prints what a three-member etcd 3.4 cluster answers to the etcdctl commands of
# acceptance.test.ts; its output is kept in acceptance.reference.txt (re-run to re-check:
# `sh test/cluster/record-acceptance.sh > test/cluster/acceptance.reference.txt`). Needs
# /usr/bin/etcd and /usr/bin/etcdctl; uses ports 24790-24792 and 24800-24802 and a temporary
# data dir; stops every process it started by its pid.
set -eu
dir=$(mktemp -d)
servers=""
pids=""
# etcdctl clients first (a lock or elect client whose servers are gone never exits), then etcd.
cleanup() {
  for p in $pids; do kill -9 "$p" 2>/dev/null || true; done
  for p in $servers; do kill "$p" 2>/dev/null || true; done
  for p in $servers; do while kill -0 "$p" 2>/dev/null; do sleep 0.2; done; done
  rm -rf "$dir"
}
trap cleanup EXIT
cluster=a=http://127.0.0.1:24800,b=http://127.0.0.1:24801,c=http://127.0.0.1:24802
i=0
for n in a b c; do
  /usr/bin/etcd --name $n --data-dir "$dir/$n" \
    --listen-client-urls http://127.0.0.1:2479$i --advertise-client-urls http://127.0.0.1:2479$i \
    --listen-peer-urls http://127.0.0.1:2480$i --initial-advertise-peer-urls http://127.0.0.1:2480$i \
    --initial-cluster $cluster >"$dir/$n.log" 2>&1 &
  servers="$servers $!"
  i=$((i + 1))
done
sleep 4
export ETCDCTL_API=3
all=127.0.0.1:24790,127.0.0.1:24791,127.0.0.1:24792
# The test runs these on a member that is not the leader; etcd answers alike on any member.
f=127.0.0.1:24792
ctl() { ep=$1; shift; echo "\$ etcdctl --endpoints=$ep $*"; /usr/bin/etcdctl --endpoints="$ep" "$@" 2>&1 | grep -v '^{"level"' || true; }
bg() { out=$1; shift; /usr/bin/etcdctl "$@" >"$dir/$out" 2>&1 & echo $!; }
ctl $all member list
ctl $all endpoint status
for k in a b c d; do ctl $all put r/$k v$k; done
ctl $f get r/a
ctl $f get r/b r/d
ctl $f get r/ --prefix --limit 2 --keys-only
ctl $f get r/c --from-key --print-value-only
ctl $f get r/ --prefix --sort-by=KEY --order=DESCEND --print-value-only
ctl $f get r/a --consistency=s
for run in 1 2; do
  echo "\$ etcdctl --endpoints=$f txn  (run $run)"
  printf 'mod("t") = "0"\n\nput t yes\n\nget t\n\n' | /usr/bin/etcdctl --endpoints=$f txn
done
w=$(bg watch.out --endpoints=127.0.0.1:24792 watch w/ --prefix --prev-kv); pids="$pids $w"
sleep 1
ctl 127.0.0.1:24790 put w/1 a
ctl 127.0.0.1:24790 put w/1 b
ctl 127.0.0.1:24790 del w/1
sleep 1
echo '$ etcdctl --endpoints=127.0.0.1:24792 watch w/ --prefix --prev-kv  (output)'
cat "$dir/watch.out"
lease=$(/usr/bin/etcdctl --endpoints=$f lease grant 60 | awk '{print $2}')
echo "(lease grant 60 -> $lease)"
ctl $f put --lease="$lease" leased v
ctl $f lease keep-alive --once "$lease"
ctl $all lease timetolive "$lease" --keys
ctl $f lease revoke "$lease"
ctl $f get leased
ctl $f lease revoke "$lease"
ctl $all lock acc-lock echo held
l1=$(bg lock1.out --endpoints=127.0.0.1:24790 lock acc-lock); pids="$pids $l1"
sleep 1
l2=$(bg lock2.out --endpoints=127.0.0.1:24791 lock acc-lock); pids="$pids $l2"
sleep 1.5
echo '(first holder, second holder while the first holds the lock)'; cat "$dir/lock1.out"; echo ---; cat "$dir/lock2.out"; echo ---
kill "$l1"; sleep 1
echo '(second holder after the first exits)'; cat "$dir/lock2.out"
e1=$(bg e1.out --endpoints=127.0.0.1:24790 elect acc-el p1); pids="$pids $e1"
sleep 1
obs=$(bg obs.out --endpoints=127.0.0.1:24792 elect -l acc-el); pids="$pids $obs"
e2=$(bg e2.out --endpoints=127.0.0.1:24791 elect acc-el p2); pids="$pids $e2"
sleep 1.5
echo '(elect p1, observer, elect p2 while p1 leads)'; cat "$dir/e1.out"; echo ---; cat "$dir/obs.out"; echo ---; cat "$dir/e2.out"; echo ---
kill "$e1"; sleep 1.5
echo '(after p1 exits: observer, p2)'; cat "$dir/obs.out"; echo ---; cat "$dir/e2.out"
ctl $f snapshot save "$dir/follower.db" | sed "s|$dir|DIR|"
ctl $f snapshot status "$dir/follower.db" | sed "s|$dir|DIR|"
