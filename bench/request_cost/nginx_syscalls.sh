#!/bin/bash
# System calls and context switches per request of kaiser's workers behind nginx, at full
# speed: counted by `perf stat` on the kernel's syscall tracepoints (a few % overhead, unlike
# strace, which slows every call enough to change which races are won, and so what is called).
# kaiser (2 workers x 1 thread, `--socket`) and nginx (bench/kbench's nginx_conf, 1 worker) share
# CPU 0, as in `bench/run --front-ends nginx --pinned-only`; wrk (64 connections) runs on CPU 1.
#   bench/request_cost/nginx_syscalls.sh [BINARY] [hello|flask] [SECONDS]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$(realpath "${1:-$ROOT/target/release/kaiser}")
APP=${2:-hello}
SECONDS_=${3:-5}
VENV=${VENV:-$ROOT/target/bench-venv}
NGINX=${NGINX:-/usr/sbin/nginx}
if [ "$APP" = hello ]; then F=$ROOT/tests/apps/hello.py; P=/; else F=$ROOT/tests/apps/flask_app/app.py; P=/json; fi
SCRATCH=$(mktemp -d)
leader=
nginx_pid=
cleanup() {
    [ -n "$nginx_pid" ] && kill -QUIT "$nginx_pid" 2>/dev/null || true
    if [ -n "$leader" ]; then kill -INT "$leader" 2>/dev/null || true; wait "$leader" 2>/dev/null || true; kill -KILL -- "-$leader" 2>/dev/null || true; fi
    [ -n "$nginx_pid" ] && wait "$nginx_pid" 2>/dev/null || true
    rm -rf "$SCRATCH"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sock=$SCRATCH/kaiser.sock
(cd "$(dirname "$F")" && exec setsid taskset -c 0 "$BIN" --socket "$sock" --wsgi-file "$F" --master \
    --processes 2 --threads 1 --home "$VENV" --disable-logging --listen 1024 >"$SCRATCH/kaiser.log" 2>&1) &
leader=$!
mkdir -p "$SCRATCH/nginx/logs"
(cd "$ROOT/bench" && python3 -c 'import sys; from kbench import servers; print(servers.nginx_conf(sys.argv[1], int(sys.argv[2]), sys.argv[3]))' \
    "$SCRATCH/nginx" "$port" "$sock") >"$SCRATCH/nginx/nginx.conf"
python3 "$(dirname "$0")/syscalls.py" --wait "$sock" "$P" 60
taskset -c 0 "$NGINX" -p "$SCRATCH/nginx" -c "$SCRATCH/nginx/nginx.conf" -e "$SCRATCH/nginx/error.log" &
nginx_pid=$!
python3 "$(dirname "$0")/syscalls.py" --wait "$port" "$P" 30
workers=$(pgrep -g "$leader" | grep -vx "$leader" | paste -sd,)
events=context-switches,task-clock
for call in accept4 read sendto writev close epoll_wait epoll_ctl clock_gettime sched_yield poll getpid; do
    events+=",syscalls:sys_enter_$call"
done
perf stat -x, -e "$events" -p "$workers" -o "$SCRATCH/perf" -- sleep "$((SECONDS_ + 1))" &
perf_pid=$!
sleep 0.5
taskset -c 1 wrk -t2 -c64 -d"${SECONDS_}s" "http://127.0.0.1:$port$P" >"$SCRATCH/wrk"
wait "$perf_pid"
requests=$(awk '/requests in/ {print $1}' "$SCRATCH/wrk")
grep -E "Requests/sec|Non-2xx|Socket errors" "$SCRATCH/wrk" || true
echo "$requests requests, kaiser workers (perf stat, per request):"
awk -F, -v n="$requests" '
    $3 == "task-clock" {printf "  %-16s %7.2f us/req (CPU)\n", "task-clock", $1 * 1000 / n}
    ($3 ~ /:/ || $3 == "context-switches") && $1 ~ /^[0-9]+$/ {
        name = $3; sub(/.*sys_enter_/, "", name); if ($3 ~ /sys_enter/) total += $1
        printf "  %-16s %7.3f/req\n", name, $1 / n
    }
    END {printf "  %-16s %7.3f/req\n", "total syscalls", total / n}' "$SCRATCH/perf"
