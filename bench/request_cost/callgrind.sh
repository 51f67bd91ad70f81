#!/bin/bash
# Instructions per request (user space) of one kaiser build, counted by callgrind: the worker's
# total for 2,200 keep-alive requests minus its total for 200, divided by 2,000 (the worker's
# start and stop cancel out). Load-independent: use it for before/after comparisons of the hot
# path on a busy machine. This VM has no hardware counters (`perf stat -e instructions` says
# "not supported"), hence valgrind.
#   bench/request_cost/callgrind.sh [BINARY] [hello|flask]
# KAISER_ARGS adds options to kaiser's command line, e.g. KAISER_ARGS=--py-hosted (valgrind
# follows the hosted master's exec into python3).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$(realpath "${1:-$ROOT/target/release/kaiser}")
APP=${2:-hello}
VENV=${VENV:-$ROOT/target/bench-venv}
if [ "$APP" = hello ]; then F=$ROOT/tests/apps/hello.py; P=/; else F=$ROOT/tests/apps/flask_app/app.py; P=/json; fi
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT

worker_ir() {  # N -> the worker's instruction total after N requests
    local n=$1 out=$SCRATCH/$1 port leader best=0 ir
    mkdir -p "$out"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    (cd "$(dirname "$F")" && exec setsid valgrind --tool=callgrind --trace-children=yes \
        --callgrind-out-file="$out/cg.%p" \
        "$BIN" --http-socket "127.0.0.1:$port" --wsgi-file "$F" --master --processes 1 --threads 1 \
        --home "$VENV" --disable-logging ${KAISER_ARGS:-} >"$out/log" 2>&1) &
    leader=$!
    python3 "$(dirname "$0")/syscalls.py" --wait "$port" "$P" 60
    python3 "$(dirname "$0")/syscalls.py" --send "$port" "$P" "$n"
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
a=$(worker_ir 200)
b=$(worker_ir 2200)
echo "$APP: $(( (b - a) / 2000 )) instructions per request (user space, callgrind)"
