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
    # The storm and wrk's first contacts come from one address: lift bty-web's limits on
    # unknown clients (a hostile-LAN guard) so the path itself is measured. Upstream ignores them.
    BTY_SERVER_HOST=127.0.0.1 BTY_SERVER_PORT=$PORT BTY_PATHS_STATE_DIR="$BENCH_DIR/$name" BTY_LOG=warn \
        BTY_LIMITS_DISCOVER_PER_MINUTE=100000000 BTY_LIMITS_MAX_DISCOVERED=100000000 \
        "$@" >"$BENCH_DIR/$name.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && return 0; sleep 0.2; done
    echo "$name did not start; see $BENCH_DIR/$name.log" >&2; return 1
}

# wrk's latency percentile line ("50%", "99%") in ms
pct() { awk -v q="$1" '$1==q {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}'; }

# measure NAME → "rps p50 p99 storm_ok storm_err storm_p50 storm_p99 storm_max storm_wall fc_rps fc_p99"
measure() {
    local base="http://127.0.0.1:$PORT" jar="$BENCH_DIR/$1.cookies"
    curl -s -c "$jar" -o /dev/null -d password=bty-lab "$base/ui/login"
    curl -s -b "$jar" -o /dev/null -X PUT -H 'content-type: application/json' \
        -d '{"boot_mode": "ipxe-exit"}' "$base/machines/52:54:00:00:00:01"
    local out rps p50 p99 storm fc fc_rps fc_p99
    out=$(wrk -t2 -c32 -d10s --latency "$base/pxe/52:54:00:00:00:01")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(pct 50% <<<"$out"); p99=$(pct 99% <<<"$out")
    awk '/Non-2xx|Socket errors/ {print "  '"$1"' wrk: " $0}' <<<"$out" >&2
    storm=$(python3 bench/storm.py "$base" 1000 64)
    fc=$(wrk -t2 -c64 -d5s --latency -s bench/first-contact.lua "$base")
    fc_rps=$(awk '/Requests\/sec/ {print $2}' <<<"$fc"); fc_p99=$(pct 99% <<<"$fc")
    awk '/Non-2xx|Socket errors/ {print "  '"$1"' first contacts: " $0}' <<<"$fc" >&2
    echo "$rps $p50 $p99 $storm $fc_rps $fc_p99"
}

start bty "$BIN" || exit 1
read -r B_RPS B_P50 B_P99 B_OK B_ERR B_P50S B_P99S B_MAXS B_WALL B_FC B_FC99 <<<"$(measure bty)"

U_RPS=""
if [ $UPSTREAM = 1 ]; then
    if [ ! -x "$BENCH_DIR/venv/bin/bty-web" ]; then
        python3 -m venv "$BENCH_DIR/venv" && "$BENCH_DIR/venv/bin/pip" install -q "bty-lab[web]==0.47.0" || true
    fi
    if [ -x "$BENCH_DIR/venv/bin/bty-web" ]; then
        if start upstream "$BENCH_DIR/venv/bin/bty-web"; then
            read -r U_RPS U_P50 U_P99 U_OK U_ERR U_P50S U_P99S U_MAXS U_WALL U_FC U_FC99 <<<"$(measure upstream)"
        fi
    else
        echo "upstream bty-web 0.47.0 could not be installed; bty only" >&2
    fi
fi

ratio() { python3 -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(f'{a/b:.1f}x' if a and b else '-')" "$1" "$2"; }
printf '\n%-40s %12s %14s %8s\n' "measure (2 cores, loopback)" "bty-web" "upstream 0.47" "ratio"
row() { # label bty upstream ratio
    if [ -n "$U_RPS" ]; then printf '%-40s %12s %14s %8s\n' "$1" "$2" "$3" "$4"; else printf '%-40s %12s\n' "$1" "$2"; fi
}
r() { [ -n "$U_RPS" ] && ratio "$@" || true; }
row "/pxe/{mac} known, req/s (wrk -c32 10s)" "$B_RPS" "$U_RPS" "$(r "$B_RPS" "$U_RPS")"
row "/pxe/{mac} known, p50 ms" "$B_P50" "${U_P50:-}" "$(r "${U_P50:-0}" "$B_P50")"
row "/pxe/{mac} known, p99 ms" "$B_P99" "${U_P99:-}" "$(r "${U_P99:-0}" "$B_P99")"
row "storm: answered of 1000 (64 at once)" "$B_OK" "${U_OK:-}" ""
row "storm: p50 ms" "$B_P50S" "${U_P50S:-}" "$(r "${U_P50S:-0}" "$B_P50S")"
row "storm: p99 ms" "$B_P99S" "${U_P99S:-}" "$(r "${U_P99S:-0}" "$B_P99S")"
row "storm: wall s" "$B_WALL" "${U_WALL:-}" "$(r "${U_WALL:-0}" "$B_WALL")"
row "first contacts/s (wrk -c64 5s, new MACs)" "$B_FC" "${U_FC:-}" "$(r "$B_FC" "${U_FC:-0}")"
row "first contacts p99 ms" "$B_FC99" "${U_FC99:-}" "$(r "${U_FC99:-0}" "$B_FC99")"
