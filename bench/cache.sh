#!/bin/bash
# bty-web's image cache against its peers, on 127.0.0.1, in one run:
#   1. CLIENTS clients pull one uncached image through bty-web's cache, versus straight from
#      the origin (Debian's nginx): origin bytes and aggregate throughput;
#   2. CLIENTS clients pull the cached image from bty-web, versus from nginx serving the same
#      file (sendfile): aggregate throughput;
#   and bty-web's peak RSS after each phase (it must not grow with the image).
#
# Usage: bench/cache.sh [SIZE_MIB=1024] [CLIENTS=16]
# Needs curl, python3 and nginx (when nginx is not installed and we are root, Debian's package
# is downloaded and unpacked into the scratch folder, not installed). Builds bty-web --release.
set -euo pipefail

SIZE_MIB=${1:-1024}
CLIENTS=${2:-16}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/bty-cache-bench.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }

NGINX=$(command -v nginx || true)
if [ -z "$NGINX" ]; then
    if [ "$(id -u)" != 0 ]; then echo "nginx is needed (apt-get install nginx, as root)" >&2; exit 2; fi
    (cd "$WORK" && apt-get download -q nginx >/dev/null 2>&1 && dpkg-deb -x nginx_*.deb nginx-root)
    NGINX="$WORK/nginx-root/usr/sbin/nginx"
fi

echo "building bty-web (release)..." >&2
(cd "$ROOT" && cargo build --release -q -p bty-web)
BTY_WEB="${CARGO_TARGET_DIR:-$ROOT/target}/release/bty-web"

mkdir -p "$WORK/www" "$WORK/state" "$WORK/nginx/logs"
echo "making a ${SIZE_MIB} MiB image..." >&2
head -c $((SIZE_MIB << 20)) /dev/urandom > "$WORK/www/image.img"
SHA=$(sha256sum "$WORK/www/image.img" | cut -d' ' -f1)
BYTES=$((SIZE_MIB << 20))

ORIGIN_PORT=$(free_port)
PEER_PORT=$(free_port)
# Workers read what bty-web wrote into its private state folder: run them as this user.
USER_LINE=""
[ "$(id -u)" = 0 ] && USER_LINE="user root;"
cat > "$WORK/nginx/nginx.conf" <<EOF
$USER_LINE
worker_processes 2;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log;
events { worker_connections 256; }
http {
    sendfile on;
    tcp_nopush on;
    access_log off;
    log_format bytes '\$bytes_sent';
    client_body_temp_path $WORK/nginx/tmp;
    proxy_temp_path $WORK/nginx/tmp;
    fastcgi_temp_path $WORK/nginx/tmp;
    uwsgi_temp_path $WORK/nginx/tmp;
    scgi_temp_path $WORK/nginx/tmp;
    server {
        listen 127.0.0.1:$ORIGIN_PORT;
        access_log $WORK/nginx/logs/origin.log bytes;
        root $WORK/www;
    }
    server {
        listen 127.0.0.1:$PEER_PORT;
        root $WORK/state/cache;
    }
}
EOF
mkdir -p "$WORK/nginx/tmp"
"$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf"
sleep 0.3

BTY_SERVER_HOST=127.0.0.1 BTY_SERVER_PORT=0 BTY_PATHS_STATE_DIR="$WORK/state" BTY_LOG=warn \
    "$BTY_WEB" --config "$WORK/none.toml" 2> "$WORK/bty-web.log" &
WEB_PID=$!
PIDS+=("$WEB_PID")
for _ in $(seq 100); do grep -q 'serving on' "$WORK/bty-web.log" && break; sleep 0.1; done
BASE=$(grep -o 'serving on http://[0-9.:]*' "$WORK/bty-web.log" | head -1 | sed 's/serving on //')
[ -n "$BASE" ] || { cat "$WORK/bty-web.log"; exit 1; }
hwm() { awk '/VmHWM/ {print $2}' "/proc/$WEB_PID/status"; }
JAR="$WORK/cookies"
curl -s -o /dev/null -c "$JAR" -d password=bty-lab "$BASE/ui/login"
curl -s -f -o /dev/null -b "$JAR" -H 'content-type: application/json' \
    -d "{\"image_url\": \"http://127.0.0.1:$ORIGIN_PORT/image.img\", \"sha256\": \"$SHA\"}" \
    "$BASE/catalog/entries"
HWM0=$(hwm)

origin_bytes() { awk '{s += $1} END {print s + 0}' "$WORK/nginx/logs/origin.log"; }

# CLIENTS parallel downloads of URL; prints the wall seconds; fails on a short transfer.
pull() {
    local url=$1 t0 t1 i
    t0=$(now)
    for i in $(seq "$CLIENTS"); do
        curl -s -o /dev/null -w '%{size_download}\n' "$url" > "$WORK/got.$i" &
    done
    wait
    t1=$(now)
    for i in $(seq "$CLIENTS"); do
        [ "$(cat "$WORK/got.$i")" = "$BYTES" ] || {
            echo "client $i got $(cat "$WORK/got.$i") bytes; the answer now: $(curl -s -r 0-200 "$url" | head -c 300)" >&2
            exit 1
        }
    done
    awk "BEGIN {print $t1 - $t0}"
}

BLOB="$BASE/cache/sha256/$SHA/image.img"
echo "cold, through the cache..." >&2
: > "$WORK/nginx/logs/origin.log"
T_COLD_CACHE=$(pull "$BLOB")
O_COLD_CACHE=$(origin_bytes)
HWM1=$(hwm)
echo "cold, straight from the origin..." >&2
: > "$WORK/nginx/logs/origin.log"
"$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -s reopen
sleep 0.2
T_COLD_ORIGIN=$(pull "http://127.0.0.1:$ORIGIN_PORT/image.img")
O_COLD_ORIGIN=$(origin_bytes)
[ "$(sha256sum < "$WORK/state/cache/sha256/$SHA" | cut -d' ' -f1)" = "$SHA" ] || { echo "the cached blob is wrong" >&2; exit 1; }
echo "cached, from bty-web..." >&2
T_HIT=$(pull "$BLOB")
HWM2=$(hwm)
echo "cached, from nginx (sendfile, the same file)..." >&2
T_NGINX=$(pull "http://127.0.0.1:$PEER_PORT/sha256/$SHA")

gib() { awk "BEGIN {print $CLIENTS * $BYTES / 1073741824 / $1}"; }
ratio() { awk "BEGIN {print $1 / $2}"; }
printf '\nbty-web image cache, %s clients, %s MiB image, %s (%s cores)\n\n' "$CLIENTS" "$SIZE_MIB" "$(date -u +%F)" "$(nproc)"
printf '| case | wall s | aggregate GiB/s | origin bytes (× image) |\n|---|---|---|---|\n'
printf '| cold, through bty-web cache | %.2f | %.2f | %.3f |\n' "$T_COLD_CACHE" "$(gib "$T_COLD_CACHE")" "$(ratio "$O_COLD_CACHE" "$BYTES")"
printf '| cold, straight from origin (nginx) | %.2f | %.2f | %.3f |\n' "$T_COLD_ORIGIN" "$(gib "$T_COLD_ORIGIN")" "$(ratio "$O_COLD_ORIGIN" "$BYTES")"
printf '| cached, bty-web | %.2f | %.2f | — |\n' "$T_HIT" "$(gib "$T_HIT")"
printf '| cached, nginx sendfile (same file) | %.2f | %.2f | — |\n' "$T_NGINX" "$(gib "$T_NGINX")"
printf '\ncached throughput, bty-web / nginx: %.2f×\n' "$(ratio "$T_NGINX" "$T_HIT")"
printf 'origin bytes through the cache / straight: %.3f×\n' "$(ratio "$O_COLD_CACHE" "$O_COLD_ORIGIN")"
printf 'bty-web peak RSS: %s KiB before, %s KiB after the cold phase, %s KiB after the cached phase\n' "$HWM0" "$HWM1" "$HWM2"
