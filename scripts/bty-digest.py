#!/usr/bin/env python3
"""Print the sha256-tree-v1 digest bty reports for a raw image (file or device), streaming.

Usage: bty-digest.py IMAGE [LENGTH]   (LENGTH: digest only the first LENGTH bytes, e.g. of a disk)
See the README's "Image digest" section for the definition.
"""
import hashlib
import sys

LEAF, LEAVES_PER_BLOCK = 64 * 1024, 16


def digest(path, length=None):
    blocks, leaves, total = hashlib.sha256(), [], 0
    with open(path, "rb") as f:
        while length is None or total < length:
            want = LEAF if length is None else min(LEAF, length - total)
            leaf = f.read(want)
            if not leaf:
                break
            total += len(leaf)
            leaves.append(hashlib.sha256(leaf).digest())
            if len(leaves) == LEAVES_PER_BLOCK:
                blocks.update(hashlib.sha256(b"".join(leaves)).digest())
                leaves = []
    if leaves:
        blocks.update(hashlib.sha256(b"".join(leaves)).digest())
    return hashlib.sha256(b"bty-image-digest-v1" + total.to_bytes(8, "big") + blocks.digest()).hexdigest()


if __name__ == "__main__":
    print(digest(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else None))
