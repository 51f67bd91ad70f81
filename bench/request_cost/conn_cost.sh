#!/bin/bash
# The per-connection path behind nginx: what one request costs a kaiser worker when each request
# is a new unix-socket connection carrying one uwsgi packet (as nginx's `uwsgi_pass` sends it,
# see syscalls.py), answered and closed.
#   - user-space instructions per request, counted by callgrind: the worker's total for 2,200
#     connections minus its total for 200, over 2,000 (start-up and exit cancel out);
#   - system calls per request, `strace -c -f` on master and worker (worker pinned to CPU 0,
#     the client on CPU 1) over 4,000 connections from CONNS concurrent clients (default 1:
#     one connection at a time, as one nginx worker with one client would send them;
#     PAUSE_MS=N waits N ms before each, so that every connection finds the worker idle).
# One worker of one thread (`--socket PATH --processes 1 --threads 1`), tests/apps/hello.py.
#   bench/request_cost/conn_cost.sh [BINARY] [hello|flask] [instructions|syscalls|both]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$(realpath "${1:-$ROOT/target/release/kaiser}")
APP=${2:-hello}
WHAT=${3:-both}
CONNS=${CONNS:-1}
VENV=${VENV:-$ROOT/target/bench-venv}
CLIENT=$(dirname "$0")/syscalls.py
if [ "$APP" = hello ]; then F=$ROOT/tests/apps/hello.py; P=/; else F=$ROOT/tests/apps/flask_app/app.py; P=/json; fi
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT

worker_ir() {  # N -> the worker's instruction total after N connections
    local n=$1 out=$SCRATCH/$1 leader best=0 ir
    mkdir -p "$out"
    (cd "$(dirname "$F")" && exec setsid valgrind --tool=callgrind --callgrind-out-file="$out/cg.%p" \
        "$BIN" --socket "$out/sock" --wsgi-file "$F" --master --processes 1 --threads 1 \
        --home "$VENV" --disable-logging >"$out/log" 2>&1) &
    leader=$!
    python3 "$CLIENT" --wait "$out/sock" "$P" 60
    python3 "$CLIENT" --send "$out/sock" "$P" "$n"
    kill -INT "$leader"
    wait "$leader" || true
    kill -KILL -- "-$leader" 2>/dev/null || true
    for f in "$out"/cg.*; do
        [ "${f##*.}" = "$leader" ] && continue  # the master
        ir=$(awk '/^summary:/ {print $2; exit}' "$f")
        if [ "${ir:-0}" -gt "$best" ]; then best=$ir; cp "$f" "$SCRATCH/worker.$n.out"; fi
    done
    echo "$best"
}

if [ "$WHAT" != syscalls ]; then
    a=$(worker_ir 200)
    b=$(worker_ir 2200)
    echo "$APP over a new uwsgi connection each: $(( (b - a) / 2000 )) instructions per request (user space, callgrind)"
    # KEEP=DIR keeps the worker's profile for callgrind_annotate.
    [ -n "${KEEP:-}" ] && cp "$SCRATCH"/worker.*.out "$KEEP"/
fi

if [ "$WHAT" != instructions ]; then
    sock=$SCRATCH/strace.sock
    (cd "$(dirname "$F")" && exec setsid taskset -c 0 "$BIN" --socket "$sock" --wsgi-file "$F" \
        --master --processes 1 --threads 1 --home "$VENV" --disable-logging --listen 1024 >/dev/null 2>&1) &
    leader=$!
    python3 "$CLIENT" --wait "$sock" "$P" 60
    taskset -c 1 python3 "$CLIENT" --strace "$sock" "$P" "$leader" 4000 "$CONNS"
    kill -INT "$leader"
    wait "$leader" || true
    kill -KILL -- "-$leader" 2>/dev/null || true
fi
