# Sourced by bench scripts that run ../shared/bench-etcd's load harness against clusters they start.

# Copies the harness to $1 and installs its dependencies there.
install_harness() {
  cp -r "$ROOT/../shared/bench-etcd" "$1"
  (cd "$1" && npm ci --no-audit --no-fund --silent)
}

# Every process the script started goes in PIDS; stop ends them by PID and waits for them.
PIDS=()
stop() {
  for pid in "${PIDS[@]:-}"; do [[ -n "$pid" ]] && kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]:-}"; do [[ -n "$pid" ]] && wait "$pid" 2>/dev/null || true; done
  PIDS=()
}

# Three real etcd members: client ports PORT_BASE+1..3, peer ports PORT_BASE+11..13; data dirs and
# logs at $1-a, $1-b, $1-c; $2 is the cluster token. The PIDs go in PIDS.
start_etcd3() {
  local cluster=a=http://127.0.0.1:$((PORT_BASE + 11)),b=http://127.0.0.1:$((PORT_BASE + 12)),c=http://127.0.0.1:$((PORT_BASE + 13))
  local i=0 name
  for name in a b c; do
    i=$((i + 1))
    etcd --name "$name" --data-dir "$1-$name" \
      --listen-client-urls "http://127.0.0.1:$((PORT_BASE + i))" --advertise-client-urls "http://127.0.0.1:$((PORT_BASE + i))" \
      --listen-peer-urls "http://127.0.0.1:$((PORT_BASE + 10 + i))" --initial-advertise-peer-urls "http://127.0.0.1:$((PORT_BASE + 10 + i))" \
      --initial-cluster "$cluster" --initial-cluster-token "$2" --initial-cluster-state new >"$1-$name.log" 2>&1 &
    PIDS+=("$!")
  done
}

# Three meshkv members of the build at $2: client ports PORT_BASE+21..23, peer ports
# PORT_BASE+31..33; data dirs and logs at $1-a, $1-b, $1-c. The PIDs go in PIDS.
start_meshkv3() {
  local cluster=a=http://127.0.0.1:$((PORT_BASE + 31)),b=http://127.0.0.1:$((PORT_BASE + 32)),c=http://127.0.0.1:$((PORT_BASE + 33))
  local i=0 name
  for name in a b c; do
    i=$((i + 1))
    node "$2/bin/meshkv.mjs" --name "$name" --data-dir "$1-$name" \
      --listen-client-urls "http://127.0.0.1:$((PORT_BASE + 20 + i))" --initial-cluster "$cluster" >"$1-$name.log" 2>&1 &
    PIDS+=("$!")
  done
}
