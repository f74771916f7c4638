#!/usr/bin/env bash
# Starts, stops and inspects a local three-node cluster on 127.0.0.1.
#   scripts/cluster.sh up      build schedulerd, start three nodes, print addresses and the admin token
#   scripts/cluster.sh status  show each node's state as the cluster-admin API reports it
#   scripts/cluster.sh down    stop the nodes (SIGTERM, then wait)
# Data, logs and the token live under $CLUSTER_DIR (default ./.cluster).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir=${CLUSTER_DIR:-$root/.cluster}
bin=$dir/schedulerd
http_ports=(8081 8082 8083)
raft_ports=(9081 9082 9083)

join_list() {
  local IFS=,
  local addrs=()
  for p in "${http_ports[@]}"; do addrs+=("127.0.0.1:$p"); done
  echo "${addrs[*]}"
}

wait_ready() {
  local port=$1 deadline=$((SECONDS + 30))
  until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do
    if ((SECONDS > deadline)); then
      echo "node on port $port not ready after 30s; see $dir/node*.log" >&2
      return 1
    fi
    sleep 0.2
  done
}

up() {
  mkdir -p "$dir"
  echo "building schedulerd..."
  (cd "$root" && go build -o "$bin" ./cmd/schedulerd)
  if [[ ! -s $dir/admin-token ]]; then
    head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/admin-token"
    chmod 600 "$dir/admin-token"
  fi
  local join
  join=$(join_list)
  for i in 0 1 2; do
    local id=node$((i + 1))
    if [[ -f $dir/$id.pid ]] && kill -0 "$(cat "$dir/$id.pid")" 2>/dev/null; then
      echo "$id already running (pid $(cat "$dir/$id.pid"))"
      continue
    fi
    "$bin" -node-id "$id" -data-dir "$dir/$id" \
      -http-addr "127.0.0.1:${http_ports[$i]}" -raft-addr "127.0.0.1:${raft_ports[$i]}" \
      -bootstrap-expect 3 -join "$join" -admin-token-file "$dir/admin-token" \
      >>"$dir/$id.log" 2>&1 &
    echo $! >"$dir/$id.pid"
    echo "started $id (pid $!): http 127.0.0.1:${http_ports[$i]}, raft 127.0.0.1:${raft_ports[$i]}, log $dir/$id.log"
  done
  for p in "${http_ports[@]}"; do wait_ready "$p"; done
  # The first leader creates the admin user right after the election.
  local deadline=$((SECONDS + 30))
  until curl -sf -H "Authorization: Token $(cat "$dir/admin-token")" "http://127.0.0.1:${http_ports[0]}/api/v1/" >/dev/null 2>&1; do
    if ((SECONDS > deadline)); then
      echo "the admin token is not accepted after 30s; see $dir/node*.log" >&2
      return 1
    fi
    sleep 0.2
  done
  echo
  echo "cluster ready. API on any node: http://127.0.0.1:${http_ports[0]}/api/v1/ (or :${http_ports[1]}, :${http_ports[2]})"
  echo "admin token: $(cat "$dir/admin-token")"
  echo "try: curl -H \"Authorization: Token \$(cat $dir/admin-token)\" http://127.0.0.1:${http_ports[0]}/api/v1/cluster/"
}

status() {
  local token
  token=$(cat "$dir/admin-token" 2>/dev/null || true)
  for i in 0 1 2; do
    local id=node$((i + 1)) port=${http_ports[$i]}
    printf '%s: ' "$id"
    if [[ -f $dir/$id.pid ]] && kill -0 "$(cat "$dir/$id.pid")" 2>/dev/null; then
      curl -s -H "Authorization: Token $token" "http://127.0.0.1:$port/api/v1/cluster/" || printf 'not answering'
      echo
    else
      echo "not running"
    fi
  done
}

down() {
  for i in 0 1 2; do
    local id=node$((i + 1))
    [[ -f $dir/$id.pid ]] || continue
    local pid
    pid=$(cat "$dir/$id.pid")
    if kill "$pid" 2>/dev/null; then
      local deadline=$((SECONDS + 15))
      while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS > deadline)); then
          echo "$id did not stop in 15s; killing" >&2
          kill -9 "$pid" 2>/dev/null || true
          break
        fi
        sleep 0.1
      done
      echo "stopped $id"
    fi
    rm -f "$dir/$id.pid"
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
