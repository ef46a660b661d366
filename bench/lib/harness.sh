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
