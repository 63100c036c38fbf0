"""Generate a synthetic pwalk CSV for the rank benchmark, with the facts needed to check it.

Why synthetic: a 10-million-row crawl of a real file system takes far longer than the benchmark
and is not reproducible.  The tree is deterministic (same arguments, same bytes), shaped like a
lab share (users / projects / runs, 19 entries per run folder), and carries what breaks naive
readers: Latin-1 folder and file names (not UTF-8), UTF-8 names whose bytes include 0x80-0x9F
(``数据``, ``€``), a ``"`` and a comma in names, symlinks, and hard links whose two paths sit in
different folders.

Beside ``OUT`` it writes ``OUT.facts.json``: the row, folder and file counts, the byte total
(hard links once), and every non-ASCII folder's exact bytes (hex), so the benchmark can count
what each reader lost or garbled without trusting the reader under test.

Speed: rows are built as Latin-1 ``str`` (one char per byte) and encoded once per chunk; the
users are shared among one process per core, whose parts are then concatenated.
Usage: ``gen_pwalk.py OUT.csv [--rows N]``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
from pathlib import Path

HEADER = ('inode,parent-inode,directory-depth,"filename","fileExtension",UID,GID,st_size,'
          'st_dev,st_blocks,st_nlink,"st_mode",st_atime,st_mtime,st_ctime,pw_fcount,pw_dirsum\n')
NOW = 1_790_000_000          # fixed "crawl time" so the file is reproducible
DAY = 86400
DEV = 2049
FILES_PER_RUN = 19
USERS = 50
PROJECTS = 100
ROOT = "/bench/lab"
ROOT_INO = 1000


def _q(name: str) -> str:
    """pwalk's quoting: the field is always quoted and an inner quote is doubled."""
    return '"' + name.replace('"', '""') + '"'


def _utf8(text: str) -> str:
    """UTF-8 bytes of ``text`` as a Latin-1 str (one char per byte), like pwalk writes them."""
    return text.encode().decode("latin-1")


def run_name(n: int) -> str:
    """Leaf folder name; a few are not plain ASCII (Latin-1 str: one char per byte)."""
    if n % 1009 == 7:
        return f"r{n}_donn\xe9es"                 # Latin-1 byte 0xE9: not UTF-8
    if n % 1013 == 5:
        return f"r{n}_" + _utf8("café")           # UTF-8 C3 A9
    if n % 1021 == 9:
        return f"r{n}_" + _utf8("数据")            # UTF-8 with bytes 0x95 0x8D (C1 range)
    if n % 1019 == 3:
        return f'r{n}_q"x,y'                      # quote and comma
    return f"r{n}"


def file_name(n: int, i: int) -> str:
    if i == 3 and n % 7 == 0:
        return f"f{i}_\xfc\xdf.dat"                # Latin-1 file name
    if i == 5 and n % 13 == 0:
        return f"f{i}_" + _utf8("€") + ".dat"     # E2 82 AC
    if i == 4 and n % 11 == 0:
        return f'f{i}_a,"b".dat'
    return f"f{i}.dat"


def _layout(rows: int) -> int:
    """Runs per project for about ``rows`` rows."""
    return max(1, round(rows / (USERS * PROJECTS * (FILES_PER_RUN + 1))))


def _user_inodes(rpp: int) -> int:
    return 1 + PROJECTS * (1 + rpp * (1 + FILES_PER_RUN))


def gen_users(args: tuple[int, int, int, str]) -> dict:
    """Write users [u0, u1) to ``part``; returns their facts."""
    u0, u1, rpp, part = args
    facts = {"rows": 0, "folders": 0, "files": 0, "bytes": 0, "special_folders_hex": []}
    link: tuple[int, int, int] | None = None
    buf: list[str] = []
    with open(part, "wb") as f:
        for u in range(u0, u1):
            ino = ROOT_INO + u * _user_inodes(rpp)
            uino = ino = ino + 1
            upath, uid = f"{ROOT}/u{u}", 1000 + u
            for p in range(PROJECTS):
                ppath = f"{upath}/p{p}"
                pino = ino = ino + 1
                for r in range(rpp):
                    n = (u * PROJECTS + p) * rpp + r
                    name = run_name(n)
                    rpath = f"{ppath}/{name}"
                    rino = ino = ino + 1
                    if not name.isascii() or '"' in name:
                        facts["special_folders_hex"].append(rpath.encode("latin-1").hex())
                    base_t = NOW - (n * 7919 % (6 * 365)) * DAY
                    dirsum = 0
                    for i in range(FILES_PER_RUN):
                        fi = ino = ino + 1
                        size = (fi * 2654435761) % 8_000_000 + 1
                        t = base_t - i * 3600
                        fpath = _q(rpath + "/" + file_name(n, i))
                        last = i == FILES_PER_RUN - 1
                        facts["rows"] += 1
                        if i == FILES_PER_RUN - 2 and n % 50 == 1:
                            buf.append(f'{fi},{rino},3,{_q(rpath + "/link")},"",{uid},{uid},6,'
                                       f'{DEV},0,1,"0120777",{t},{t},{t},-1,0\n')
                            size = 6
                        elif last and n % 50 == 2 and link is not None:
                            # second path of the previous run's hard-linked file: same inode,
                            # other folder; counted once overall
                            li, lsize, lt = link
                            link = None
                            buf.append(f'{li},{rino},3,{fpath},"dat",{uid},{uid},{lsize},{DEV},'
                                       f'{(lsize + 4095) // 4096 * 8},2,"0100644",{lt},{lt},'
                                       f'{lt},-1,0\n')
                            dirsum += lsize
                            continue
                        else:
                            nlink = 1
                            if last and n % 50 == 1:
                                nlink = 2
                                link = (fi, size, t)
                            buf.append(f'{fi},{rino},3,{fpath},"dat",{uid},{uid},{size},{DEV},'
                                       f'{(size + 4095) // 4096 * 8},{nlink},"0100644",{t},{t},'
                                       f'{t},-1,0\n')
                        dirsum += size
                        facts["bytes"] += size
                        facts["files"] += 1
                    buf.append(f'{rino},{pino},2,{_q(rpath)},"",{uid},{uid},4096,{DEV},8,2,'
                               f'"0040755",{base_t},{base_t},{base_t},{FILES_PER_RUN},'
                               f'{dirsum}\n')
                    facts["rows"] += 1
                    facts["folders"] += 1
                    if len(buf) > 100_000:
                        f.write("".join(buf).encode("latin-1"))
                        buf.clear()
                buf.append(f'{pino},{uino},1,{_q(ppath)},"",{uid},{uid},4096,{DEV},8,{rpp + 2},'
                           f'"0040755",{NOW},{NOW},{NOW},{rpp},{rpp * 4096}\n')
                facts["rows"] += 1
                facts["folders"] += 1
            buf.append(f'{uino},{ROOT_INO},0,{_q(upath)},"",{uid},{uid},4096,{DEV},8,'
                       f'{PROJECTS + 2},"0040755",{NOW},{NOW},{NOW},{PROJECTS},'
                       f'{PROJECTS * 4096}\n')
            facts["rows"] += 1
            facts["folders"] += 1
        f.write("".join(buf).encode("latin-1"))
    return facts


def generate(out: Path, rows: int, workers: int = 0) -> dict:
    """Write the CSV (header first, like ``pwalk --header``) and its facts file."""
    rpp = _layout(rows)
    workers = workers or os.cpu_count() or 1
    step = -(-USERS // workers)
    jobs = [(u, min(USERS, u + step), rpp, f"{out}.part{k}")
            for k, u in enumerate(range(0, USERS, step))]
    with multiprocessing.get_context("fork").Pool(len(jobs)) as pool:
        parts = pool.map(gen_users, jobs)
    facts = {"rows": 1, "folders": 1, "files": 0, "bytes": 0, "special_folders_hex": []}
    for part in parts:
        for key in ("rows", "folders", "files", "bytes"):
            facts[key] += part[key]
        facts["special_folders_hex"] += part["special_folders_hex"]
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(HEADER.encode())
        f.flush()
        for *_, part in jobs:
            with open(part, "rb") as src:
                left = os.fstat(src.fileno()).st_size
                while left > 0:  # in-kernel copy, no trip through Python
                    left -= os.copy_file_range(src.fileno(), f.fileno(), left)
            os.unlink(part)
        f.write(f'{ROOT_INO},0,-1,{_q(ROOT)},"",0,0,4096,{DEV},8,{USERS + 2},"0040755",'
                f'{NOW},{NOW},{NOW},{USERS},{USERS * 4096}\n'.encode())
    os.replace(tmp, out)
    facts["now"] = NOW
    facts["size"] = out.stat().st_size
    out.with_name(out.name + ".facts.json").write_text(json.dumps(facts))
    return facts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--rows", type=int, default=10_000_000)
    a = ap.parse_args(argv)
    facts = generate(a.out, a.rows)
    print(f"{a.out}: {facts['rows']:,} rows, {facts['folders']:,} folders", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
