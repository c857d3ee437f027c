#!/bin/sh
# Print the path of a Python venv holding upstream's bty-lab[all]==VERSION from PyPI, made once
# under ${BTY_UPSTREAM_CACHE:-/var/cache/bty-upstream} (outside the clone, so CI reruns on the
# same machine reuse it) with Debian's python3 and python3-venv. Usage: venv.sh VERSION
set -eu
v=${1:?usage: venv.sh VERSION}
root=${BTY_UPSTREAM_CACHE:-/var/cache/bty-upstream}
dir=$root/bty-lab-$v
mkdir -p "$root"
exec 9>"$root/.lock"
flock 9
if [ ! -f "$dir/.complete" ]; then
    rm -rf "$dir"
    py=/usr/bin/python3
    [ -x "$py" ] || py=python3
    "$py" -m venv "$dir" >&2
    "$dir/bin/pip" install -q --disable-pip-version-check "bty-lab[all]==$v" >&2
    "$dir/bin/bty" --version >&2
    touch "$dir/.complete"
fi
echo "$dir"
