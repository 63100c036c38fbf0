"""Build the demo tree for `make demo`: a small lab share with old and new projects.

Sizes are kept small (a few MiB) so the demo runs in seconds; mtimes and atimes are set in the
past so the age rules have something to find. One folder has a name that is not UTF-8.
"""

from __future__ import annotations

import os
import sys
import time

DAY = 86400


def write(path: bytes, size: int, age_days: int, seed: int) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    block = (bytes([seed % 251]) * 4096)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            f.write(block[: min(left, len(block))])
            left -= len(block)
    t = time.time() - age_days * DAY
    os.utime(path, (t, t))


def main(root: str) -> None:
    r = os.fsencode(root)
    projects = [
        (b"2019-imaging/raw", 4, 3 * 1024 * 1024, 2000),
        (b"2019-imaging/small-tiles", 300, 8 * 1024, 1900),
        (b"2021-sequencing/fastq", 3, 2 * 1024 * 1024, 900),
        (b"2021-sequencing/caf\xe9-latin1", 2, 1536 * 1024, 800),
        (b"2024-current/analysis", 5, 1024 * 1024, 3),
    ]
    n = 0
    for rel, count, size, age in projects:
        for i in range(count):
            write(os.path.join(r, rel, b"part-%03d.dat" % i), size, age, n)
            n += 1
    link = os.path.join(r, b"2019-imaging/raw/latest")
    if not os.path.lexists(link):
        os.symlink(b"part-000.dat", link)
    old = time.time() - 2000 * DAY
    os.utime(link, (old, old), follow_symlinks=False)
    print(f"demo tree: {n} files under {root}")


if __name__ == "__main__":
    main(sys.argv[1])
