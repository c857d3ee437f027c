#!/usr/bin/env bash
# PXE hot path of bty-web: wrk on /pxe/{mac} of a known machine (32 connections, 10 s), and a
# boot storm (1,000 distinct MACs, 64 concurrent first contacts). With upstream bty-web 0.47
# from PyPI in a venv (made on first use under $BENCH_DIR, skipped with --no-upstream or when
# pip cannot install it), the same runs against it and the table shows the ratios.
#
# usage: bench/pxe.sh [--no-upstream]        (needs wrk, curl, python3; builds --release)
set -euo pipefail
cd "$(dirname "$0")/.."
UPSTREAM=1
[ "${1:-}" = "--no-upstream" ] && UPSTREAM=0
BENCH_DIR=${BENCH_DIR:-/tmp/bty-bench-pxe}
mkdir -p "$BENCH_DIR"
for t in wrk curl python3; do command -v $t >/dev/null || { echo "need $t (apt-get install $t)" >&2; exit 2; }; done

cargo build --release -q -p bty-web
BIN="${CARGO_TARGET_DIR:-target}/release/bty-web"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# start NAME CMD… → sets PORT; state in $BENCH_DIR/NAME
start() {
    local name=$1; shift
    PORT=$(free_port)
    rm -rf "$BENCH_DIR/$name"; mkdir -p "$BENCH_DIR/$name"
    BTY_SERVER_HOST=127.0.0.1 BTY_SERVER_PORT=$PORT BTY_PATHS_STATE_DIR="$BENCH_DIR/$name" BTY_LOG=warn \
        "$@" >"$BENCH_DIR/$name.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && return 0; sleep 0.2; done
    echo "$name did not start; see $BENCH_DIR/$name.log" >&2; exit 1
}

# measure NAME → "rps p99_ms storm_ok storm_err storm_p99_ms"
measure() {
    local base="http://127.0.0.1:$PORT" jar="$BENCH_DIR/$1.cookies"
    curl -s -c "$jar" -o /dev/null -d password=bty-lab "$base/ui/login"
    curl -s -b "$jar" -o /dev/null -X PUT -H 'content-type: application/json' \
        -d '{"boot_mode": "ipxe-exit"}' "$base/machines/52:54:00:00:00:01"
    local out rps p99 storm
    out=$(wrk -t2 -c32 -d10s --latency "$base/pxe/52:54:00:00:00:01")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' <<<"$out")
    local errs
    errs=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out")
    [ -n "$errs" ] && echo "  $1 wrk: $errs" >&2
    storm=$(python3 bench/storm.py "$base" 1000 64)
    echo "$rps $p99 $storm"
}

start bty "$BIN"
read -r B_RPS B_P99 B_OK B_ERR B_P50S B_P99S B_MAXS B_WALL <<<"$(measure bty)"

U_RPS=""
if [ $UPSTREAM = 1 ]; then
    if [ ! -x "$BENCH_DIR/venv/bin/bty-web" ]; then
        python3 -m venv "$BENCH_DIR/venv" && "$BENCH_DIR/venv/bin/pip" install -q bty-lab==0.47.0 || true
    fi
    if [ -x "$BENCH_DIR/venv/bin/bty-web" ]; then
        start upstream "$BENCH_DIR/venv/bin/bty-web"
        read -r U_RPS U_P99 U_OK U_ERR U_P50S U_P99S U_MAXS U_WALL <<<"$(measure upstream)"
    else
        echo "upstream bty-web 0.47.0 could not be installed; bty only" >&2
    fi
fi

ratio() { python3 -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(f'{a/b:.1f}x' if b else '-')" "$1" "$2"; }
printf '\n%-34s %14s %14s %8s\n' "measure (2 cores, loopback)" "bty-web" "upstream 0.47" "ratio"
if [ -n "$U_RPS" ]; then
    printf '%-34s %14s %14s %8s\n' "/pxe/{mac} req/s (wrk -c32 10s)" "$B_RPS" "$U_RPS" "$(ratio "$B_RPS" "$U_RPS")"
    printf '%-34s %14s %14s %8s\n' "/pxe/{mac} p99 ms" "$B_P99" "$U_P99" "$(ratio "$U_P99" "$B_P99")"
    printf '%-34s %14s %14s %8s\n' "storm: answered of 1000" "$B_OK" "$U_OK" ""
    printf '%-34s %14s %14s %8s\n' "storm: p99 ms (64 concurrent)" "$B_P99S" "$U_P99S" "$(ratio "$U_P99S" "$B_P99S")"
    printf '%-34s %14s %14s %8s\n' "storm: wall s" "$B_WALL" "$U_WALL" "$(ratio "$U_WALL" "$B_WALL")"
else
    printf '%-34s %14s\n' "/pxe/{mac} req/s (wrk -c32 10s)" "$B_RPS"
    printf '%-34s %14s\n' "/pxe/{mac} p99 ms" "$B_P99"
    printf '%-34s %14s\n' "storm: answered of 1000" "$B_OK"
    printf '%-34s %14s\n' "storm: p99 ms (64 concurrent)" "$B_P99S"
fi
