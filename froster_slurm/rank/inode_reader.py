"""The fast reader: DuckDB parses the raw crawl files itself, in parallel, and reads no names
but the directories'.

Why: DuckDB cannot take pwalk's raw bytes as text (see ``rank_feed``), so the path reader
re-encodes every byte in feeder processes and DuckDB reads each feed with one thread.  But
DuckDB only checks the UTF-8 of the text columns a query uses.  So:

1. ``lvl1i`` -- DuckDB reads the raw files directly (parallel within a file) using only the
   number columns it needs and ``st_mode``, and groups file rows by their folder's identity
   ``(st_dev, parent-inode)``: integer keys, no path is parsed or hashed.  Directory rows are
   only counted here.
2. ``names_p<i>`` -- meanwhile ``grep`` keeps the lines not ending in ``,-1,0`` (the
   directory rows; files end ``pw_fcount -1, pw_dirsum 0``) and a feeder re-encodes them
   (``rank_feed``, kind ``dirs``): only the directories' names travel, about 5% of the bytes.
3. File groups join their directory on ``(st_dev, inode)``, and the directory rows of the
   names pass become their own groups: the result has lvl1's shape (``rank_sql``), so
   everything after it is shared with the path reader.

A file belongs to the folder whose inode is its parent-inode on the same device -- pwalk's
own model (and the builtin crawler's: both take the parent-inode from the directory's lstat).
The path reader instead takes a file's folder from its path.  The two agree on every crawl the
checks below accept; when one fails, ``rank`` reads the crawl again with the path reader, so
the fast reader only ever makes a correct answer faster:

- rows read == lines in the files (minus headers): no name holds a newline, so every line is
  one row -- grep's lines are whole rows, and DuckDB's parallel split found every row once;
- rows the names pass parsed == lines grep kept, so the names pass holds every directory row
  (none ends in ``,-1,0``) and nothing else made up from parts of lines; its count of them
  equals the scan's;
- every directory ``(st_dev, inode)`` appears once;
- every file's ``(st_dev, parent-inode)`` is a directory of the crawl (no orphans: the path
  reader keeps orphans under their path-derived folder, which only it knows);
- no directory gets more rows by parent-inode than its ``pw_fcount`` entries (pwalk counts
  each entry it lists; fewer rows is normal -- an unreadable subdirectory gets none): a crawl
  whose parent-inodes do not match its paths is read by path instead.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass

from .inputs import CSV, CrawlFile
from .sql import GROUP_SUMS, group_kind_sql, read_csv_sql, sql_str

# The scan reads st_mode ("0100644") as a number: 100644 // 10000 is the file type's three
# leading octal digits, what rank_sql.IS_COUNTED compares as text (4% faster: no string per
# row).  pwalk prints %07o, and a mode never needs more digits.
SCAN_TYPES = {"st_mode": "UINTEGER"}
SCAN_MDEV, SCAN_MINO = group_kind_sql("st_mode // 10000 IN (10, 12)")


def ineligible(files: Sequence[CrawlFile]) -> str:
    """Why the fast reader cannot read these inputs ('' when it can)."""
    if any(f.kind != CSV for f in files):
        return "not all inputs are plain CSV files"
    if all(f.empty for f in files):
        return "no rows"
    for tool in ("grep", "wc"):
        if shutil.which(tool) is None:
            return f"{tool} not found"
    for f in files:
        try:
            f.path.decode("utf-8")
        except UnicodeDecodeError:
            return "an input's path is not UTF-8 (DuckDB opens files by UTF-8 name)"
    return ""


def raw_relation(files: Sequence[CrawlFile], buffer_size: int) -> str:
    """Every row of the raw files (with and without header), for DuckDB to read directly."""
    parts = []
    for header in (True, False):
        paths = [os.fsdecode(f.path) for f in files
                 if not f.empty and (f.data_start > 0) == header]
        if paths:
            source = "[" + ", ".join(sql_str(p) for p in paths) + "]"
            parts.append(f"SELECT * FROM {read_csv_sql(source, header, buffer_size, SCAN_TYPES)}")
    return " UNION ALL ".join(parts)


def lvl1i_sql(relation: str) -> str:
    """Step 1: the one parallel scan, file groups keyed by (fdev, fino, mdev, mino): the
    folder's (st_dev, inode), then the kind as in lvl1.  Every directory row falls in ONE
    group, (NULL, NULL, NULL, 0), which only counts them: the names pass has their figures."""
    return f"""
CREATE OR REPLACE TABLE lvl1i AS
SELECT fdev, fino, mdev, mino, {GROUP_SUMS}
FROM (
  SELECT CASE WHEN pw_fcount < 0 THEN st_dev END AS fdev,
    CASE WHEN pw_fcount < 0 THEN parent_inode END AS fino,
    {SCAN_MDEV} AS mdev, {SCAN_MINO} AS mino, st_size, st_blocks, st_mtime, st_atime
  FROM ({relation}))
GROUP BY fdev, fino, mdev, mino
"""


def names_sql(part: int, relation: str) -> str:
    """Step 2, one per feed: the rows grep kept, with the directory rows' owner and depth
    (the scan leaves those columns out: fewer to parse), names exact (the Latin-1 view)."""
    return (f"CREATE OR REPLACE TABLE names_p{part} AS "
            f"SELECT st_dev, inode, parent_inode, pw_fcount, filename, uid, gid, depth "
            f"FROM ({relation})")


def names_view_sql(parts: int) -> str:
    return ("CREATE OR REPLACE TEMP VIEW names AS "
            + " UNION ALL ".join(f"SELECT * FROM names_p{i}" for i in range(parts)))


CHECK_SQL = """
WITH nm AS (SELECT st_dev, inode, parent_inode, pw_fcount FROM names WHERE pw_fcount >= 0),
-- rows naming each directory as their parent: files by parent-inode, subdirectories too
files_in AS (SELECT fdev, fino, sum(n) AS n FROM lvl1i WHERE fdev IS NOT NULL
             GROUP BY fdev, fino),
dirs_in AS (SELECT st_dev, parent_inode, count(*) AS n FROM nm GROUP BY st_dev, parent_inode),
-- one row per directory and per group of files, matched where they meet
per AS (
  SELECT nm.inode IS NULL AS orphan,
    coalesce(f.n, 0) + coalesce(s.n, 0) > coalesce(nm.pw_fcount, 0) AS overfull
  FROM files_in f FULL JOIN nm ON f.fdev = nm.st_dev AND f.fino = nm.inode
  LEFT JOIN dirs_in s ON s.st_dev = nm.st_dev AND s.parent_inode = nm.inode
)
SELECT rows_read, names_read, dirs, named, named_distinct, orphans, overfull
FROM (SELECT coalesce(sum(n), 0) AS rows_read,
        coalesce(sum(n) FILTER (fdev IS NULL), 0) AS dirs FROM lvl1i),
     (SELECT count(*) AS names_read FROM names),
     (SELECT count(*) AS named, count(DISTINCT (st_dev, inode)) AS named_distinct FROM nm),
     (SELECT count(*) FILTER (orphan) AS orphans,
        count(*) FILTER (overfull AND NOT orphan) AS overfull FROM per)
"""

# Step 3: lvl1's shape (rank_sql.lvl1_select), each group named by its folder's path; the
# directory rows' groups come from the names pass.
JOIN_SQL = """
CREATE OR REPLACE TABLE lvl1_p0 AS
WITH dirs AS (SELECT * FROM names WHERE pw_fcount >= 0)
SELECT d.filename AS folder, l.mdev, l.mino, l.n, l.s, l.blk, l.mtim, l.atim, d.uid, d.gid,
  d.depth
FROM lvl1i l JOIN dirs d ON d.st_dev = l.fdev AND d.inode = l.fino
UNION ALL
SELECT filename, NULL, 0, 1, 0, 0, NULL, NULL, uid, gid, depth FROM dirs
"""

CLEANUP_SQL = "DROP VIEW IF EXISTS names; DROP TABLE IF EXISTS lvl1i"


@dataclass(frozen=True)
class Tally:
    """The counts the checks compare (CHECK_SQL plus the feeders' line counts)."""

    lines: int          # data lines of the raw files (headers excluded)
    fed: int            # lines grep kept and the feeders passed on
    rows_read: int
    names_read: int
    dirs: int
    named: int
    named_distinct: int
    orphans: int
    overfull: int

    def refusal(self) -> str:
        """Why the fast reader's result cannot be used ('' when it can)."""
        if self.rows_read != self.lines:
            return (f"{self.lines - self.rows_read:,} more lines than rows: names hold newlines")
        if self.names_read != self.fed:
            return "the directory rows grep kept did not parse one row per line"
        if self.named != self.dirs:
            return "the directory rows grep kept are not all the directory rows"
        if self.named_distinct != self.named:
            return (f"{self.named - self.named_distinct:,} directories share a (st_dev, inode) "
                    "with another")
        if self.orphans:
            return (f"{self.orphans:,} groups of files whose parent-inode is not a directory "
                    "of the crawl")
        if self.overfull:
            return (f"{self.overfull:,} directories would hold more entries by parent-inode "
                    "than their pw_fcount: parent-inode cannot be trusted in this crawl")
        return ""
