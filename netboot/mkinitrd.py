#!/usr/bin/env python3
"""Pack bty's netboot initrd: pick kernel modules (with their dependencies, in load order) from
an unpacked linux-image package, and write a directory tree as a gzip'd newc cpio archive.

usage: mkinitrd.py modules KMODDIR NAME...      print module paths (relative), deps first
       mkinitrd.py pack TREE OUT.initrd         write TREE as a gzip'd newc cpio
"""
import gzip
import os
import re
import stat
import sys


def norm(name):
    return name.replace("-", "_")


def index(kmoddir):
    """module name -> path relative to kmoddir"""
    out = {}
    for root, _, files in os.walk(os.path.join(kmoddir, "kernel")):
        for f in files:
            if f.endswith(".ko"):
                out[norm(f[:-3])] = os.path.relpath(os.path.join(root, f), kmoddir)
    return out


def depends(path):
    data = open(path, "rb").read()
    m = re.search(rb"\x00depends=([^\x00]*)\x00", data)
    if not m or not m.group(1):
        return []
    return [norm(d.decode()) for d in m.group(1).split(b",") if d]


def closure(kmoddir, names):
    idx = index(kmoddir)
    builtin = set()
    try:
        for line in open(os.path.join(kmoddir, "modules.builtin")):
            builtin.add(norm(os.path.basename(line.strip())[:-3]))
    except OSError:
        pass
    order, seen = [], set()

    def visit(n, chain):
        n = norm(n)
        if n in seen or n in builtin:
            return
        if n not in idx:
            raise SystemExit(f"module {n} not found (needed by {' > '.join(chain) or 'the list'})")
        seen.add(n)
        for d in depends(os.path.join(kmoddir, idx[n])):
            visit(d, chain + [n])
        order.append(idx[n])

    for n in names:
        visit(n, [])
    return order


def pack(tree, out):
    entries = []
    for root, dirs, files in os.walk(tree):
        dirs.sort()
        for name in sorted(dirs) + sorted(files):
            entries.append(os.path.join(root, name))
    ino = 1
    with gzip.open(out, "wb", compresslevel=9) as z:
        def emit(name, st_mode, data, nlink=1, mtime=0):
            nonlocal ino
            name_b = name.encode() + b"\x00"
            hdr = "070701" + "".join(
                f"{v:08X}"
                for v in (ino, st_mode, 0, 0, nlink, mtime, len(data), 0, 0, 0, 0, len(name_b), 0)
            )
            ino += 1
            z.write(hdr.encode() + name_b)
            z.write(b"\x00" * ((4 - (110 + len(name_b)) % 4) % 4))
            z.write(data)
            z.write(b"\x00" * ((4 - len(data) % 4) % 4))

        for path in entries:
            rel = os.path.relpath(path, tree)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                emit(rel, st.st_mode, os.readlink(path).encode())
            elif stat.S_ISDIR(st.st_mode):
                emit(rel, st.st_mode, b"", nlink=2)
            elif stat.S_ISREG(st.st_mode):
                emit(rel, st.st_mode, open(path, "rb").read())
        emit("TRAILER!!!", 0, b"")


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "modules":
        for p in closure(sys.argv[2], sys.argv[3:]):
            print(p)
    elif len(sys.argv) == 4 and sys.argv[1] == "pack":
        pack(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit(__doc__)
