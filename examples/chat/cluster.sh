#!/usr/bin/env bash
# The chat as a cluster on one machine: Redis, three duplex-chat nodes joined through it
# (--backplane redis://…), and nginx in front of them, all on 127.0.0.1.
#
#   examples/chat/cluster.sh [--chat build/examples/duplex-chat] [--port 8080] [--seconds 600]
#
# Open http://127.0.0.1:8080/ in two browser windows, join the same room: nginx (least_conn) puts the
# windows on different nodes, and the messages still reach both. Each node's log line says which port
# it is on; kill one (kill <pid> from the list printed below) and its members reconnect through nginx.
#
# Runs for --seconds (default 600) or until Ctrl-C, then ends exactly the processes it started (by PID)
# and removes its temporary folder. Needs Debian's redis-server and nginx (scripts/setup.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/../.."

chat=build/examples/duplex-chat
port=8080
seconds=600
while [ $# -gt 0 ]; do
  case "$1" in
    --chat) chat=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    *) echo "usage: $0 [--chat PATH] [--port PORT] [--seconds N]" >&2; exit 2 ;;
  esac
done
for program in "$chat" /usr/bin/redis-server /usr/sbin/nginx; do
  [ -x "$program" ] || { echo "cluster.sh: $program is missing (build duplex-chat; scripts/setup.sh installs redis-server and nginx)" >&2; exit 1; }
done

# Free ports on 127.0.0.1 for Redis and the nodes, from the kernel.
free_port() { /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
in_use "$port" && { echo "cluster.sh: port $port is in use; pick another with --port" >&2; exit 1; }

work=$(mktemp -d /tmp/duplex-cluster.XXXXXX)
pids=()
stop() {
  trap - EXIT INT TERM
  echo "cluster.sh: stopping ${pids[*]:-nothing}"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap stop EXIT
trap 'exit 130' INT TERM

wait_for_port() {
  for _ in $(seq 100); do in_use "$1" && return 0; sleep 0.05; done
  echo "cluster.sh: nothing listens on $1; see $work" >&2
  return 1
}

password=$(openssl rand -hex 12)
redis_port=$(free_port)
/usr/bin/redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --requirepass "$password" \
  --logfile "$work/redis.log" --dir "$work" &
pids+=($!)
wait_for_port "$redis_port"
echo "cluster.sh: redis-server pid ${pids[-1]} on 127.0.0.1:$redis_port (log $work/redis.log)"

upstreams=""
for n in 1 2 3; do
  node_port=$(free_port)
  "$chat" --urls "http://127.0.0.1:$node_port" --backplane "redis://:$password@127.0.0.1:$redis_port" \
    > >(sed -u "s/^/node $n: /") 2>&1 &
  pids+=($!)
  wait_for_port "$node_port"
  echo "cluster.sh: node $n pid ${pids[-1]} on 127.0.0.1:$node_port"
  upstreams+="        server 127.0.0.1:$node_port max_fails=1 fail_timeout=5s;"$'\n'
done

mkdir -p "$work/nginx"
cat > "$work/nginx/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $work/nginx/body; proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi; uwsgi_temp_path $work/nginx/uwsgi; scgi_temp_path $work/nginx/scgi;
    map \$http_upgrade \$connection_upgrade { default upgrade; '' close; }
    upstream duplex {
        least_conn;
$upstreams    }
    server {
        listen 127.0.0.1:$port;
        location / {
            proxy_pass http://duplex;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection \$connection_upgrade;
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            # Longer than duplex's keep-alive interval (2 min by default): nginx closes a tunnel that
            # stays silent this long, and the keep-alive ping is what breaks the silence.
            proxy_read_timeout 150s;
            proxy_send_timeout 150s;
        }
    }
}
CONF
/usr/sbin/nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' &
pids+=($!)
wait_for_port "$port"
echo "cluster.sh: nginx pid ${pids[-1]} on http://127.0.0.1:$port/ — open it in two browsers; stopping in $seconds s or on Ctrl-C"
sleep "$seconds" &
sleeper=$!
pids+=("$sleeper")
wait "$sleeper" || true
