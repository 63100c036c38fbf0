"""A synthetic hotspots file of N folders in one tree (the report's tests and benchmark).

Deterministic for a seed.  Each folder hangs under a random earlier one (shallow ones more
often), so the tree is deep in places and wide in others, like a lab's share; names include
hostile ones (``<script>``, quotes, bytes that are not UTF-8).  Sizes are log-normal, ages
spread over eight years, twenty owners in five groups.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from froster_slurm.rank.hotspots import Hotspot, write_hotspots

NOW = 1_780_000_000
HOSTILE = [b"<script>alert(1)</script>", b"it's \"quoted\" & <b>bold</b>", b"caf\xe9-latin1",
           b"<img src=x onerror=alert(2)>"]


def generate(n: int, seed: int = 1, root: bytes = b"/data/lab", now: int = NOW
             ) -> list[Hotspot]:
    rnd = random.Random(seed)
    paths = [root]
    parent = [-1]
    depth = [0]
    for i in range(1, n):
        # prefer recent folders (deep trees) half the time, shallow ones otherwise
        p = rnd.randrange(max(0, i - 50), i) if rnd.random() < 0.5 else int(
            (rnd.random() ** 3) * i)
        name = HOSTILE[i % len(HOSTILE)] + b"%d" % i if i % 997 == 1 else b"d%05d" % i
        paths.append(paths[p] + b"/" + name)
        parent.append(p)
        depth.append(depth[p] + 1)
    own = [int(rnd.lognormvariate(18, 3)) if rnd.random() < 0.8 else 0 for _ in range(n)]
    files = [0 if b == 0 else max(1, int(b / max(1, rnd.lognormvariate(15, 3)))) for b in own]
    mt = [0 if f == 0 else now - int(rnd.random() ** 0.7 * 8 * 365 * 86400) for f in files]
    at = [0 if f == 0 else min(now, m + int(rnd.random() * 400 * 86400)) for m, f in
          zip(mt, files, strict=True)]
    tb, tf = own[:], files[:]
    for i in range(n - 1, 0, -1):
        tb[parent[i]] += tb[i]
        tf[parent[i]] += tf[i]
    owners = [f"user{k:02d}" for k in range(20)]
    rows = []
    for i in range(n):
        o = owners[(i * 7 + depth[i]) % 20 if i % 3 else (i // 11) % 20]
        rows.append(Hotspot(paths[i], own[i], files[i], tb[i], tf[i], own[i] // 4096 * 4096,
                            own[i] // files[i] if files[i] else 0, mt[i], at[i], o,
                            f"lab{int(o[4:]) % 5}", depth[i] - 1))
    rows.sort(key=lambda h: h.bytes, reverse=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("folders", type=int)
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    write_hotspots(a.out, generate(a.folders, a.seed))


if __name__ == "__main__":
    main()
