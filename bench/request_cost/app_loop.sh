#!/bin/bash
# Instructions per call of a WSGI app's own work, counted by callgrind in three places, to
# tell what the hosting interpreter costs the app from what the server does around it:
#   plain:  /usr/bin/python3 (the venv's) calling app(environ, start_response) in a loop;
#   kaiser: the same loop inside one request of kaiser's request thread (app_loop.py as the
#           WSGI app), i.e. the embedded libpython, on a request thread;
# each as the total for 2,200 calls minus the total for 200, over 2,000. Compare with
# callgrind.sh's per-request figure, which adds kaiser's own work around each call.
#   bench/request_cost/app_loop.sh [BINARY] [hello|flask]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$(realpath "${1:-$ROOT/target/release/kaiser}")
APP=${2:-flask}
VENV=${VENV:-$ROOT/target/bench-venv}
LOOP=$ROOT/bench/request_cost/app_loop.py
if [ "$APP" = hello ]; then F=$ROOT/tests/apps/hello.py; P=/; else F=$ROOT/tests/apps/flask_app/app.py; P=/json; fi
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT

plain_ir() {  # N -> the interpreter's instruction total for N calls
    valgrind --tool=callgrind --callgrind-out-file="$SCRATCH/plain.$1" \
        "$VENV/bin/python3" "$LOOP" "$F" "$P" "$1" >"$SCRATCH/plain.$1.log" 2>&1
    awk '/^summary:/ {print $2; exit}' "$SCRATCH/plain.$1"
}

kaiser_ir() {  # N -> the worker's instruction total for one request running N calls
    local n=$1 out=$SCRATCH/k$1 port leader best=0 ir
    mkdir -p "$out"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    (cd "$(dirname "$F")" && APP_LOOP_TARGET=$F exec setsid valgrind --tool=callgrind \
        --callgrind-out-file="$out/cg.%p" "$BIN" --http-socket "127.0.0.1:$port" \
        --wsgi-file "$LOOP" --master --processes 1 --threads 1 --home "$VENV" \
        --disable-logging >"$out/log" 2>&1) &
    leader=$!
    python3 "$(dirname "$0")/syscalls.py" --wait "$port" "/loop?n=1&path=$P" 60
    curl -sS --max-time 900 -o /dev/null "http://127.0.0.1:$port/loop?n=$n&path=$P"
    kill -INT "$leader"
    wait "$leader" || true
    kill -KILL -- "-$leader" 2>/dev/null || true
    for f in "$out"/cg.*; do
        [ "${f##*.}" = "$leader" ] && continue  # the master
        ir=$(awk '/^summary:/ {print $2; exit}' "$f")
        [ "${ir:-0}" -gt "$best" ] && best=$ir
    done
    echo "$best"
}
a=$(plain_ir 200); b=$(plain_ir 2200)
echo "$APP plain python3: $(( (b - a) / 2000 )) instructions per call"
a=$(kaiser_ir 200); b=$(kaiser_ir 2200)
echo "$APP in kaiser's request thread: $(( (b - a) / 2000 )) instructions per call"
