#!/usr/bin/env bash
# A private Redis on a unix socket under var/ (no TCP port): broker, results and channel layer.
#   scripts/redis.sh start|stop|status
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
var="${KVMPANEL_VAR:-$root/var}"
sock="$var/redis.sock"
pidfile="$var/redis.pid"
mkdir -p "$var"

running() { redis-cli -s "$sock" ping >/dev/null 2>&1; }

case "${1:-status}" in
  start)
    if running; then exit 0; fi
    rm -f "$sock"
    redis-server --daemonize yes --port 0 --unixsocket "$sock" --unixsocketperm 700 \
      --save "" --appendonly no --dir "$var" --pidfile "$pidfile" --logfile "$var/redis.log"
    for _ in $(seq 50); do running && exit 0; sleep 0.1; done
    echo "redis did not start; see $var/redis.log" >&2; exit 1 ;;
  stop)
    if [ -f "$pidfile" ]; then kill "$(cat "$pidfile")" 2>/dev/null || true; rm -f "$pidfile"; fi ;;
  status)
    if running; then echo "redis up ($sock)"; else echo "redis down"; exit 3; fi ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
