# Shell functions for the bench scripts that time a server against etcdctl (sourced by
# bench/growth.sh and bench/restart.sh).

# Waits for the first served read; prints the seconds since $1 (date +%s%N at spawn).
first_read() {
  local since=$1 ep=$2
  for _ in $(seq 1 6000); do
    if etcdctl --endpoints="$ep" --dial-timeout=1s --command-timeout=2s get bench/ --prefix --limit=1 --keys-only >/dev/null 2>&1; then
      echo "scale=2; ($(date +%s%N) - $since) / 1000000000" | bc
      return
    fi
    sleep 0.05
  done
  echo "no read served after 300 s at $ep" >&2
  exit 1
}
keys() {
  etcdctl --endpoints="$1" --command-timeout=120s get bench/ --prefix --limit=1 --keys-only -w json |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).count??0))'
}
