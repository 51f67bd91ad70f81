#!/bin/bash
# System calls per request of kaiser (2 workers x 1 thread, pinned to CPU 0, the client on CPU 1),
# counted by strace -c -f over 4,000 keep-alive requests on 8 connections.
#   bench/request_cost/syscalls.sh [BINARY] [hello|flask]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$(realpath "${1:-$ROOT/target/release/kaiser}")
APP=${2:-hello}
VENV=${VENV:-$ROOT/target/bench-venv}
if [ "$APP" = hello ]; then F=$ROOT/tests/apps/hello.py; P=/; else F=$ROOT/tests/apps/flask_app/app.py; P=/json; fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
(cd "$(dirname "$F")" && exec setsid taskset -c 0 "$BIN" --http-socket "127.0.0.1:$port" --wsgi-file "$F" \
    --master --processes 2 --threads 1 --home "$VENV" --disable-logging --listen 1024 >/dev/null 2>&1) &
leader=$!
python3 "$(dirname "$0")/syscalls.py" --wait "$port" "$P" 60
taskset -c 1 python3 "$(dirname "$0")/syscalls.py" --strace "$port" "$P" "$leader" 4000
kill -INT "$leader"
wait "$leader" || true
kill -KILL -- "-$leader" 2>/dev/null || true
