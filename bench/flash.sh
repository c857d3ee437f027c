#!/usr/bin/env bash
# Flash benchmark: bty against the peer commands, measured in the same run.
#
#   sudo bench/flash.sh [--runs N] [--work DIR] [--only a|b]
#
# Builds release binaries, generates two images and their .zst/.xz/.qcow2 forms:
#   (a) 1 GiB raw: 25 % random data in 4 MiB runs, zeros elsewhere
#   (b) 2 GiB ext4 filesystem populated by mkfs.ext4 -d from /usr/share
# and writes each onto a regular file and onto a loop device (backed by a file on the same
# disk) with bty and with the peers: dd bs=4M conv=fsync, zstd -dc | dd, xz -dc | dd, and
# qemu-img convert -n -O raw followed by sync (qemu-img does not flush by itself; bty's time
# includes its own fsync). Prints medians of N runs (default 3), the ratio bty/peer (below 1
# means bty is faster) and bty's peak RSS. A last row per image writes the .zst onto tmpfs and
# compares with `zstd -dc > /dev/null` (the decode limit), leaving the disk out. Sources stay in the page cache (warm); dirty pages
# are flushed before every run so no run pays for the previous one.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=3
work=/var/tmp/bty-bench
only=""
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) runs=$2; shift 2 ;;
        --work) work=$2; shift 2 ;;
        --only) only=$2; shift 2 ;;
        *) echo "usage: $0 [--runs N] [--work DIR] [--only a|b]" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "bench/flash.sh needs root (loop devices)" >&2; exit 2; }
for c in zstd xz qemu-img mkfs.ext4 losetup /usr/bin/time; do
    command -v "$c" >/dev/null || { echo "missing $c (apt-get install zstd xz-utils qemu-utils e2fsprogs time)" >&2; exit 2; }
done

cargo build --release -q -p bty
BTY=$PWD/target/release/bty
mkdir -p "$work"
cd "$work"

make_images() {
    if [ ! -f a.raw ]; then
        echo "generating (a) 1 GiB raw, 25 % random in 4 MiB runs" >&2
        truncate -s 1G a.raw
        # Every fourth 4 MiB run is random data.
        for i in $(seq 0 4 255); do
            head -c 4M /dev/urandom | dd of=a.raw bs=4M seek="$i" conv=notrunc status=none
        done
    fi
    if [ ! -f b.raw ]; then
        echo "generating (b) 2 GiB ext4 from /usr/share" >&2
        truncate -s 2G b.raw
        mkfs.ext4 -q -F -d /usr/share b.raw
    fi
    for img in a b; do
        [ -f $img.raw.zst ] || zstd -q -T0 -3 $img.raw -o $img.raw.zst
        [ -f $img.raw.xz ] || xz -k -T0 -3 -c $img.raw > $img.raw.xz
        [ -f $img.qcow2 ] || qemu-img convert -f raw -O qcow2 $img.raw $img.qcow2
    done
}

# median of numbers on stdin
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# measure LABEL PREP CMD: run CMD $runs times (PREP before each, untimed); prints "median maxrss_kb"
measure() {
    local prep=$2 cmd=$3 times="" rss=0
    for _ in $(seq "$runs"); do
        eval "$prep"
        sync
        /usr/bin/time -f "%e %M" -o time.out bash -c "$cmd" >/dev/null 2>run.err || {
            echo "FAILED: $cmd" >&2; cat run.err >&2; exit 1; }
        read -r t m < time.out
        times="$times $t"
        [ "$m" -gt "$rss" ] && rss=$m
    done
    echo "$(echo $times | tr ' ' '\n' | median) $rss"
}

row() { # image form target bty_result peer_label peer_result
    local bt=${4% *} rss=${4#* } pt=${6% *}
    local ratio
    ratio=$(awk -v a="$bt" -v b="$pt" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
    printf "| %-3s | %-5s | %-6s | %7.2f s | %-28s | %7.2f s | %5s | %4d MiB |\n" \
        "$1" "$2" "$3" "$bt" "$5" "$pt" "$ratio" $((rss / 1024))
}

make_images
loopfile=$work/loop.backing
truncate -s 2100M "$loopfile"
loopdev=$(losetup --find --show "$loopfile")
trap 'losetup -d "$loopdev"' EXIT

echo
echo "bty $($BTY --version | cut -d' ' -f2), $(nproc) cores, runs=$runs, $(date -u +%F)"
echo
echo "| img | form  | target | bty       | peer                         | peer      | bty/peer | bty RSS |"
echo "|-----|-------|--------|-----------|------------------------------|-----------|-------|---------|"
for img in a b; do
    [ -n "$only" ] && [ "$only" != "$img" ] && continue
    size=$(stat -c %s $img.raw)
    for tgt in file loop; do
        if [ $tgt = file ]; then
            out=$work/out.img; prep="rm -f $out"; qprep="rm -f $out; truncate -s $size $out"; sync_peer="sync -f $out"
        else
            out=$loopdev; prep=":"; qprep=":"; sync_peer="sync $out"
        fi
        qemu=$(measure q "$qprep" "qemu-img convert -n -f raw -O raw $img.raw $out && $sync_peer")
        for form in raw zst xz qcow2; do
            case $form in
                raw) src=$img.raw; peer="dd bs=4M conv=fsync"; pcmd="dd if=$src of=$out bs=4M conv=fsync status=none" ;;
                zst) src=$img.raw.zst; peer="zstd -dc | dd"; pcmd="zstd -dc $src | dd of=$out bs=4M iflag=fullblock conv=fsync status=none" ;;
                xz) src=$img.raw.xz; peer="xz -dc | dd"; pcmd="xz -dc -T0 $src | dd of=$out bs=4M iflag=fullblock conv=fsync status=none" ;;
                qcow2) src=$img.qcow2; peer="qemu-img convert + sync"; pcmd="qemu-img convert -n -f qcow2 -O raw $src $out && $sync_peer" ;;
            esac
            b=$(measure bty "$prep" "$BTY flash $src $out --yes")
            if [ $form = qcow2 ]; then p=$(measure p "$qprep" "$pcmd"); else p=$(measure p "$prep" "$pcmd"); fi
            row $img $form $tgt "$b" "$peer" "$p"
            if [ $form = raw ] || [ $form = zst ]; then
                row $img $form $tgt "$b" "qemu-img convert (raw) + sync" "$qemu"
            fi
        done
    done
    # Without a disk: onto tmpfs, against the decoder alone. This isolates bty's pipeline
    # (decode, hash, zero detection, write) from the disk's write bandwidth.
    dl=$(measure d ":" "zstd -dc $img.raw.zst > /dev/null")
    shm=/dev/shm/bty-bench-out.img
    b=$(measure bty "rm -f $shm" "$BTY flash $img.raw.zst $shm --yes")
    rm -f $shm
    row $img zst tmpfs "$b" "decode limit: zstd -dc >/dev/null" "$dl"
done
