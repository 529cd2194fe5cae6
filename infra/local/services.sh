#!/usr/bin/env bash
# Start RabbitMQ and Redis on this machine if they are not already answering, and
# wait until both do. Idempotent: running it again with both up changes nothing.
# On a fresh Debian machine it installs them with apt-get first.
#
#   infra/local/services.sh          # ensure both are up
#
# Environment: SCALE0_SERVICES_TIMEOUT (seconds to wait for each, default 120).
set -euo pipefail

timeout_s=${SCALE0_SERVICES_TIMEOUT:-120}
sudo_cmd=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null; then sudo_cmd=(sudo); else
    echo "services.sh: not root and no sudo; start RabbitMQ and Redis yourself" >&2
  fi
fi

log() { echo "services.sh: $*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() { # name, check command...
  local name=$1; shift
  local deadline=$((SECONDS + timeout_s))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      log "$name did not answer within ${timeout_s}s"; return 1
    fi
    sleep 1
  done
  log "$name is up"
}

apt_updated=0
install() { # packages...
  if [ $apt_updated = 0 ]; then
    log "installing $* with apt-get"
    "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping | grep -q PONG; }

if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
  install redis-server redis-tools
fi
# With an append-only file (fsync every second): the queue worker's done records must
# survive a restart of Redis, or a request redelivered after it is answered twice.
if ! redis_up; then
  log "starting Redis"
  "${sudo_cmd[@]}" mkdir -p /var/lib/redis /var/log/redis
  "${sudo_cmd[@]}" redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 \
    --save "" --appendonly yes --appendfsync everysec --dir /var/lib/redis \
    --logfile /var/log/redis/ci.log
fi
wait_for Redis redis_up
if [ "$(redis-cli -h 127.0.0.1 -p 6379 config get appendonly | tail -n 1)" = no ]; then
  log "Redis was started without an append-only file: turning it on"
  redis-cli -h 127.0.0.1 -p 6379 config set appendonly yes >/dev/null
fi

if ! command -v rabbitmq-server >/dev/null; then
  install rabbitmq-server
fi
if ! port_open 5672; then
  log "starting RabbitMQ (about 15 s)"
  # A stale node (crashed, port closed) blocks a second start: stop it quietly first.
  "${sudo_cmd[@]}" rabbitmqctl -q stop >/dev/null 2>&1 || true
  "${sudo_cmd[@]}" rabbitmq-server -detached
  "${sudo_cmd[@]}" rabbitmqctl -q --timeout "$timeout_s" await_startup || true
fi
wait_for RabbitMQ port_open 5672
