#!/usr/bin/env bash
# Build bty's netboot environment from Debian packages:
#   DIR/bty-netboot-x86_64.vmlinuz  the kernel of the linux-image-*-amd64 package that
#                                   linux-image-amd64 points at (or --kernel-package NAME)
#   DIR/bty-netboot-x86_64.initrd   busybox-static, drivers for common NICs and disks (with
#                                   their dependencies), the release `bty` and its libraries,
#                                   CA certificates, and an init that brings up the network with
#                                   DHCP and runs `bty agent` on the console
#
# usage: netboot/build.sh --out DIR [--kernel-package NAME] [--bty PATH]
# needs: apt-get (to download packages), dpkg-deb, python3, cargo (unless --bty)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="" KPKG="" BTY=""
while [ $# -gt 0 ]; do
    case "$1" in
        --out) OUT=$2; shift 2 ;;
        --kernel-package) KPKG=$2; shift 2 ;;
        --bty) BTY=$2; shift 2 ;;
        *) echo "usage: $0 --out DIR [--kernel-package NAME] [--bty PATH]" >&2; exit 2 ;;
    esac
done
[ -n "$OUT" ] || { echo "usage: $0 --out DIR [--kernel-package NAME] [--bty PATH]" >&2; exit 2; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# Disks and NICs, USB NICs (USB-C dongles are the only NIC of many small boxes; rndis_host,
# the BMC's virtual NIC, is left out and blacklisted), and USB keyboards for the wizard.
MODULES="virtio_pci virtio_net virtio_blk virtio_scsi e1000 e1000e igb ixgbe r8169 nvme ahci sd_mod usb-storage uas xhci-pci ehci-pci r8152 ax88179_178a cdc_ether cdc_ncm usbhid hid_generic hid"

if [ -z "$BTY" ]; then
    cargo build --release -q -p bty
    BTY="${CARGO_TARGET_DIR:-target}/release/bty"
fi
[ -x "$BTY" ] || { echo "no bty binary at $BTY" >&2; exit 2; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
if [ -z "$KPKG" ]; then
    KPKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
fi
echo "netboot: kernel package $KPKG"
(cd "$WORK" && apt-get download -q "$KPKG" busybox-static >/dev/null 2>&1) || {
    echo "apt-get download $KPKG busybox-static failed (run apt-get update?)" >&2; exit 1; }
dpkg-deb -x "$WORK"/linux-image-*.deb "$WORK/k"
dpkg-deb -x "$WORK"/busybox-static_*.deb "$WORK/bb"
KVER=$(ls "$WORK/k/lib/modules")
KMOD="$WORK/k/lib/modules/$KVER"

R="$WORK/root"
mkdir -p "$R"/{bin,sbin,etc,proc,sys,dev,run,tmp,lib/modules,usr/share/udhcpc,etc/ssl/certs}
cp "$WORK/bb/bin/busybox" "$R/bin/busybox"
for applet in $("$R/bin/busybox" --list); do
    [ -e "$R/bin/$applet" ] || ln -s busybox "$R/bin/$applet"
done
install -m 0755 netboot/init "$R/init"
install -m 0755 netboot/udhcpc.script "$R/etc/udhcpc.script"
: >"$R/etc/bty-modules"
for m in $(python3 netboot/mkinitrd.py modules "$KMOD" $MODULES); do
    mkdir -p "$R/lib/modules/$(dirname "$m")"
    cp "$KMOD/$m" "$R/lib/modules/$m"
    echo "$m" >>"$R/etc/bty-modules"
done
install -m 0755 "$BTY" "$R/bin/bty"
# Debug information is of no use at the console; it only makes the initrd bigger.
command -v strip >/dev/null && strip --strip-debug "$R/bin/bty"
# The shared libraries bty needs, and the dynamic loader, at their paths.
for lib in $(ldd "$BTY" | awk '/=>/ {print $3} /^\t\/lib/ {print $1}' | sort -u); do
    mkdir -p "$R$(dirname "$lib")"
    cp -L "$lib" "$R$lib"
done
[ -f /etc/ssl/certs/ca-certificates.crt ] && cp /etc/ssl/certs/ca-certificates.crt "$R/etc/ssl/certs/"
echo "root:x:0:0:root:/:/bin/sh" >"$R/etc/passwd"

cp "$WORK/k/boot/vmlinuz-$KVER" "$OUT/bty-netboot-x86_64.vmlinuz"
python3 netboot/mkinitrd.py pack "$R" "$OUT/bty-netboot-x86_64.initrd"
SIZE=$(stat -c %s "$OUT/bty-netboot-x86_64.initrd")
echo "netboot: $OUT/bty-netboot-x86_64.vmlinuz ($(stat -c %s "$OUT/bty-netboot-x86_64.vmlinuz") bytes, $KVER)"
echo "netboot: $OUT/bty-netboot-x86_64.initrd ($SIZE bytes, $(wc -l <"$R/etc/bty-modules") modules)"
if [ "$SIZE" -gt $((40 << 20)) ]; then
    echo "netboot: the initrd is over 40 MiB" >&2
    exit 1
fi
