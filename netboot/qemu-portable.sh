#!/usr/bin/env bash
# Unpack Debian's QEMU (qemu-system-x86 with its modules, SeaBIOS, the iPXE option ROMs, OVMF
# and the libraries qemu needs) into DIR without installing it — installing qemu-system-x86 on
# a machine with backported qemu-utils would replace qemu-img. Prints nothing; run
# DIR/run-qemu ARGS… afterwards. Needs apt-get (with lists: apt-get update) and dpkg-deb.
#
# usage: netboot/qemu-portable.sh DIR
set -euo pipefail
DIR=${1:?usage: $0 DIR}
[ -x "$DIR/run-qemu" ] && exit 0
mkdir -p "$DIR/debs" "$DIR/root"
cd "$DIR/debs"
apt-get download -q qemu-system-x86 qemu-system-common qemu-system-data seabios ipxe-qemu ovmf \
    libcapstone4 libfdt1 libpmem1 librdmacm1 libibverbs1 libslirp0 libvdeplug2 libndctl6 \
    libdaxctl1 libnl-3-200 libnl-route-3-200 >/dev/null 2>&1
for d in *.deb; do dpkg-deb -x "$d" "$DIR/root"; done
R="$DIR/root"
cat >"$DIR/run-qemu" <<RUN
#!/bin/sh
export LD_LIBRARY_PATH="$R/usr/lib/x86_64-linux-gnu:$R/lib/x86_64-linux-gnu"
export QEMU_MODULE_DIR="$R/usr/lib/x86_64-linux-gnu/qemu"
exec "$R/usr/bin/qemu-system-x86_64" -L "$R/usr/share/qemu" -L "$R/usr/share/seabios" -L "$R/usr/lib/ipxe/qemu" "\$@"
RUN
chmod +x "$DIR/run-qemu"
"$DIR/run-qemu" --version >/dev/null
