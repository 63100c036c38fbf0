"""The rank SQL: crawl rows -> one row per folder, in a few streaming DuckDB statements.

Representation: a path is a VARCHAR whose characters are its bytes (U+0000-U+00FF, the Latin-1
view; see ``rank_feed``), so string functions work on bytes one character each and
``value.encode("latin-1")`` in Python gives the exact bytes back.  Folder comparisons, grouping
and ordering are therefore byte comparisons.

The plan, chosen so only aggregates are ever held (DuckDB spills them to its temp directory
when they outgrow the memory limit; no statement keeps file rows):

1. ``lvl1`` -- ONE pass over the crawl, grouped by (folder, hard-link key); ``rank_load``
   has two readers that produce it (the fast one names a file's folder by its parent-inode,
   the path reader by its path up to the last ``/``; a directory row is its own folder).
   Files with st_nlink > 1 keep their (st_dev, inode) in the key, so each inode is counted
   once per folder; every other file of a folder lands in one group.
2. ``fdirect`` -- per folder: the directory row's uid/gid/depth and the direct figures.
3. ``ftotal`` -- subtree figures: each folder's own sums are added to every ancestor found from
   the path (prefixes ending before a ``/``; summed per parent first), hard-linked inodes once
   per (ancestor, inode).
4. ``folders`` -- one row per directory row, direct and subtree figures side by side.

Which files count: regular files and symlinks (st_mode 010xxxx / 012xxxx), not directories,
devices, FIFOs or sockets.  pw_dirsum and pw_fcount are ignored: they include subdirectories.
"""

from __future__ import annotations

from collections.abc import Sequence

# (pwalk column, our name, DuckDB type).  Numbers pwalk prints with %ld are signed.
CRAWL_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("inode", "inode", "UBIGINT"), ("parent-inode", "parent_inode", "UBIGINT"),
    ("directory-depth", "depth", "BIGINT"), ("filename", "filename", "VARCHAR"),
    ("fileExtension", "extension", "VARCHAR"), ("UID", "uid", "BIGINT"),
    ("GID", "gid", "BIGINT"), ("st_size", "st_size", "BIGINT"), ("st_dev", "st_dev", "BIGINT"),
    ("st_blocks", "st_blocks", "BIGINT"), ("st_nlink", "st_nlink", "BIGINT"),
    ("st_mode", "st_mode", "VARCHAR"), ("st_atime", "st_atime", "BIGINT"),
    ("st_mtime", "st_mtime", "BIGINT"), ("st_ctime", "st_ctime", "BIGINT"),
    ("pw_fcount", "pw_fcount", "BIGINT"), ("pw_dirsum", "pw_dirsum", "BIGINT"),
)
NAMES = [c[1] for c in CRAWL_COLUMNS]
AGE_DAYS = (30, 90, 365, 730, 1825)
PARQUET_KEY = "froster_slurm.filename"
PARQUET_VALUE = "latin-1"

# fs_parent: the path up to its last '/' ('/' for '/name', NULL without any '/').  DuckDB's
# parse_dirpath does exactly that except it gives '' for '/name'; tests compare the macro with
# Python's rfind on random byte strings.  fs_ancestors: every prefix ending before a '/', the
# path itself, and '/' for an absolute path -- each folder that can contain it -- of at least
# ``minlen`` characters (the path itself always): a crawl's folders are no shorter than its
# root, so ranking passes the shortest folder's length and skips the prefixes above the root
# (40% fewer ancestors on a crawl of /bench/lab, and fewer characters tested).  csv_field:
# one text field as Python's csv module writes it with QUOTE_MINIMAL (quoted when it holds a
# comma, a quote, CR or LF; quotes doubled), for LISTED_LINES_SQL.
MACROS = r"""
CREATE OR REPLACE TEMP MACRO fs_parent(p) AS
  coalesce(nullif(parse_dirpath(p, 'forward_slash'), ''),
           CASE WHEN starts_with(p, '/') THEN '/' END);
CREATE OR REPLACE TEMP MACRO csv_field(s) AS
  CASE WHEN contains(s, ',') OR contains(s, '"') OR contains(s, chr(10)) OR contains(s, chr(13))
       THEN '"' || replace(s, '"', '""') || '"' ELSE s END;
CREATE OR REPLACE TEMP MACRO fs_ancestors(p, minlen) AS
  list_transform(list_filter(range(greatest(2, minlen + 1), length(p) + 1),
                             lambda i: p[i] = '/'),
                 lambda i: left(p, i - 1))
  || [p]
  -- '/' unless too short, the prefixes above already hold it ('//x') or p is '/' itself
  || CASE WHEN minlen <= 1 AND starts_with(p, '/') AND p <> '/' AND NOT starts_with(p, '//')
          THEN ['/'] ELSE [] END;
"""


def sql_str(text: str) -> str:
    """A SQL string literal (single quotes doubled)."""
    return "'" + text.replace("'", "''") + "'"


def _columns_struct(types: dict[str, str] | None = None) -> str:
    types = types or {}
    return "{" + ", ".join(f"{sql_str(name)}: {sql_str(types.get(name, typ))}"
                           for _, name, typ in CRAWL_COLUMNS) + "}"


def read_csv_sql(source: str, header: bool, buffer_size: int,
                 types: dict[str, str] | None = None) -> str:
    """One strict ``read_csv`` of pwalk rows; ``source`` is a SQL string or list literal.

    Nothing is sniffed: columns and types are given, quotes are pwalk's (``"`` doubled), a
    newline ends a row only outside quotes, and strict mode makes a malformed row an error
    instead of a skipped or padded one; no value is read as NULL (``nullstr`` is a byte no
    number or path can be), so an empty number is an error too.  ``buffer_size`` is DuckDB's
    read buffer per stream (16 MiB parses ~15% faster than 4 MiB; less under small limits).
    ``types`` overrides column types by name.
    """
    return (
        f"read_csv({source}, encoding = 'utf-8', "
        f"header = {'true' if header else 'false'}, columns = {_columns_struct(types)}, "
        "auto_detect = false, "
        "delim = ',', quote = '\"', escape = '\"', new_line = '\\n', strict_mode = true, "
        # an empty field is an error, not a NULL: pwalk never writes one
        "nullstr = '\x01', allow_quoted_nulls = false, "
        f"buffer_size = {int(buffer_size)}, "
        "null_padding = false, ignore_errors = false)")


def crawl_relation(fifos: Sequence[str], parquets: Sequence[str],
                   buffer_size: int = 16 << 20) -> str:
    """SELECT of every crawl row: the fed CSV streams (UTF-8, no header) and Parquet files.

    One ``read_csv`` per stream, joined by UNION ALL: DuckDB then scans the streams in parallel
    (a list of files in one ``read_csv`` is read one FIFO at a time).
    """
    parts = [f"SELECT {', '.join(NAMES)} FROM {read_csv_sql(sql_str(f), False, buffer_size)}"
             for f in fifos]
    if parquets:
        files = "[" + ", ".join(sql_str(f) for f in parquets) + "]"
        casts = ", ".join(f"CAST({n} AS {t}) AS {n}" for _, n, t in CRAWL_COLUMNS)
        parts.append(f"SELECT {casts} FROM read_parquet({files})")
    return " UNION ALL ".join(parts)


# The group kinds of a crawl row, as (mdev, mino) -- see lvl1_select.  Shared by both readers.
def group_kind_sql(is_counted: str) -> tuple[str, str]:
    """The (mdev, mino) expressions, given the test for a counted file (regular or symlink)."""
    return (f"CASE WHEN pw_fcount < 0 AND st_nlink > 1 AND {is_counted} THEN st_dev END",
            f"CASE WHEN pw_fcount >= 0 THEN 0 WHEN NOT {is_counted} THEN 1 "
            "WHEN st_nlink > 1 THEN inode END")


IS_COUNTED = "left(st_mode, 3) IN ('010', '012')"  # st_mode as pwalk's 7 octal digits
MDEV_SQL, MINO_SQL = group_kind_sql(IS_COUNTED)
# What lvl1 keeps per group (plus the owner and depth, only ever used from a directory row's
# group); the readers differ in how they name a group's folder.
GROUP_SUMS = """count(*) AS n, sum(st_size) AS s, sum(st_blocks) AS blk,
  max(st_mtime) AS mtim, max(st_atime) AS atim"""


def lvl1_select(relation: str) -> str:
    """Statement 1 of the plan (module docstring): the one scan of the crawl, run once per
    feed stream in parallel; ``lvl1`` is the union of those parts, so one key can have a
    row in several parts (every later use adds them up, or groups hard links again).

    The group key says what a group holds, so no aggregate needs a FILTER (the scan is the hot
    loop: every per-row expression costs 10^8 evaluations on a big crawl):
    ``(folder, NULL, NULL)`` files with one link; ``(folder, st_dev, inode)`` a hard-linked
    inode; ``(folder, NULL, 0)`` the directory row itself; ``(folder, NULL, 1)`` devices, FIFOs,
    sockets.  Inode numbers 0/1 cannot clash: a hard-linked group always has st_dev set.
    """
    return f"""
SELECT folder, mdev, mino, {GROUP_SUMS},
  any_value(uid) AS uid, any_value(gid) AS gid, any_value(depth) AS depth
FROM (
  SELECT
    -- fs_parent inlined: parse_dirpath once per row, '/' only for the rare '/name'
    CASE WHEN pw_fcount >= 0 THEN filename WHEN pd <> '' THEN pd
         WHEN starts_with(filename, '/') THEN '/' END AS folder,
    {MDEV_SQL} AS mdev, {MINO_SQL} AS mino,
    uid, gid, depth, st_size, st_blocks, st_mtime, st_atime
  FROM (SELECT *, parse_dirpath(filename, 'forward_slash') AS pd FROM ({relation})))
GROUP BY folder, mdev, mino
"""


# Group kinds of lvl1 (see lvl1_select).
DIR_G = "(mdev IS NULL AND mino = 0)"
SINGLE_G = "(mdev IS NULL AND mino IS NULL)"
MULTI_G = "(mdev IS NOT NULL)"
FILES_G = f"({SINGLE_G} OR {MULTI_G})"

_FOLDERS_SQL = f"""
CREATE OR REPLACE TEMP TABLE fdirect AS
WITH g AS (
  -- a hard-linked inode's group can sit in several lvl1 parts: one row per inode first
  SELECT folder, mdev, mino, sum(n) AS n, sum(s) AS s, sum(blk) AS blk, max(mtim) AS mtim,
    max(atim) AS atim, any_value(uid) AS uid, any_value(gid) AS gid, any_value(depth) AS depth
  FROM lvl1 WHERE {MULTI_G} GROUP BY folder, mdev, mino
  UNION ALL
  SELECT folder, mdev, mino, n, s, blk, mtim, atim, uid, gid, depth
  FROM lvl1 WHERE NOT {MULTI_G}
)
SELECT folder,
  coalesce(sum(n) FILTER {DIR_G}, 0) AS ndir,
  any_value(uid) FILTER {DIR_G} AS uid, any_value(gid) FILTER {DIR_G} AS gid,
  any_value(depth) FILTER {DIR_G} AS depth,
  coalesce(sum(CASE WHEN {MULTI_G} THEN s // n WHEN {SINGLE_G} THEN s END), 0) AS bytes,
  coalesce(sum(CASE WHEN {MULTI_G} THEN 1 WHEN {SINGLE_G} THEN n END), 0) AS files,
  coalesce(sum(CASE WHEN {MULTI_G} THEN blk // n WHEN {SINGLE_G} THEN blk END), 0) AS blk,
  max(mtim) FILTER {FILES_G} AS mtim, max(atim) FILTER {FILES_G} AS atim
FROM g WHERE folder IS NOT NULL
GROUP BY folder;

CREATE OR REPLACE TEMP TABLE ftotal AS
WITH single AS (
  -- a group counts in its folder and in every ancestor of it, i.e. in the ancestors-or-self
  -- of its folder's parent: summed per parent first, most folders being leaves, so the
  -- ancestors are listed once per parent instead of once per folder (2x faster)
  SELECT folder AS anc, s AS b, n AS f, blk, mtim, atim
  FROM lvl1 WHERE {SINGLE_G} AND folder IS NOT NULL
  UNION ALL
  SELECT unnest(fs_ancestors(p, @@MINLEN@@)) AS anc, b, f, blk, mtim, atim
  FROM (SELECT fs_parent(folder) AS p, sum(s) AS b, sum(n) AS f, sum(blk) AS blk,
          max(mtim) AS mtim, max(atim) AS atim
        FROM lvl1 WHERE {SINGLE_G} AND folder IS NOT NULL GROUP BY p)
  WHERE p IS NOT NULL
), multi AS (
  SELECT anc, max(b) AS b, 1 AS f, max(blk) AS blk, max(mtim) AS mtim, max(atim) AS atim
  FROM (SELECT unnest(fs_ancestors(folder, @@MINLEN@@)) AS anc, mdev, mino, s // n AS b,
               blk // n AS blk, mtim, atim
        FROM lvl1 WHERE {MULTI_G} AND folder IS NOT NULL)
  GROUP BY anc, mdev, mino
)
SELECT anc AS folder, sum(b) AS b, sum(f) AS f, sum(blk) AS blk, max(mtim) AS mtim,
  max(atim) AS atim
FROM (SELECT * FROM single UNION ALL SELECT * FROM multi)
GROUP BY anc;

CREATE OR REPLACE TEMP TABLE folders AS
-- BIGINT, not the HUGEINT sums give: 4x faster to hand to Python, and 8 EiB is enough
SELECT d.folder, d.bytes::BIGINT AS bytes, d.files::BIGINT AS files,
  (d.blk * 512)::BIGINT AS alloc, coalesce(d.mtim, 0) AS mtim, coalesce(d.atim, 0) AS atim,
  coalesce(t.b, 0)::BIGINT AS tbytes, coalesce(t.f, 0)::BIGINT AS tfiles,
  (coalesce(t.blk, 0) * 512)::BIGINT AS talloc,
  coalesce(t.mtim, 0) AS tmtim, coalesce(t.atim, 0) AS tatim,
  d.uid, d.gid, d.depth
FROM fdirect d LEFT JOIN ftotal t ON t.folder = d.folder
WHERE d.ndir > 0;
"""

# The shortest directory row's path: no folder of the crawl is shorter (see fs_ancestors).
MIN_FOLDER_LENGTH_SQL = f"SELECT coalesce(min(length(folder)), 1) FROM lvl1 WHERE {DIR_G}"


def folders_sql(min_length: int) -> str:
    """The statements building ``fdirect``, ``ftotal`` and ``folders`` (see the module
    docstring); ``min_length`` is the result of MIN_FOLDER_LENGTH_SQL."""
    return _FOLDERS_SQL.replace("@@MINLEN@@", str(max(1, int(min_length))))


CHECKS_SQL = """
SELECT
  (SELECT count(*) FROM fdirect WHERE ndir > 1) AS dup_folders,
  (SELECT any_value(folder) FROM fdirect WHERE ndir > 1) AS dup_example,
  (SELECT coalesce(sum(files), 0) FROM fdirect WHERE ndir = 0) AS orphan_files,
  (SELECT count(*) FROM fdirect WHERE ndir = 0 AND files > 0) AS orphan_folders,
  -- a folder at depth d sits below d + 1 others (the root row is -1): with fewer directory
  -- rows in the whole crawl, or below -1, the row cannot be real (pwalk writes such garbage
  -- when a path overflows its PATH_MAX buffer)
  (SELECT count(*) FROM fdirect, (SELECT count(*) AS n FROM fdirect WHERE ndir > 0) t
   WHERE ndir > 0 AND (depth < -1 OR depth + 2 > t.n)) AS impossible,
  (SELECT arg_max(folder, abs(depth)) FROM fdirect, (SELECT count(*) AS n FROM fdirect
   WHERE ndir > 0) t WHERE ndir > 0 AND (depth < -1 OR depth + 2 > t.n)) AS impossible_example,
  (SELECT max(abs(depth)) FROM fdirect, (SELECT count(*) AS n FROM fdirect
   WHERE ndir > 0) t WHERE ndir > 0 AND (depth < -1 OR depth + 2 > t.n)) AS impossible_depth
"""


def summary_sql(now: int) -> str:
    """Crawl-wide totals; a hard-linked inode counts once over the whole crawl.

    The "not accessed" figures are per folder (from ``fdirect``, orphan folders included):
    the bytes of folders whose files were all last read or written before the cut-off, i.e.
    what archiving whole folders could free.  A file hard-linked into two such folders counts
    in each.
    """
    olds = ", ".join(f"coalesce(sum(bytes) FILTER (greatest(mtim, atim) < {now - d * 86400}), 0)"
                     for d in AGE_DAYS)
    return f"""
WITH single AS (
  SELECT coalesce(sum(n), 0) AS files, coalesce(sum(s), 0) AS bytes, coalesce(sum(blk), 0) AS blk
  FROM lvl1 WHERE {SINGLE_G}
), multi AS (
  SELECT count(*) AS files, coalesce(sum(b), 0) AS bytes, coalesce(sum(blk), 0) AS blk
  FROM (SELECT max(s // n) AS b, max(blk // n) AS blk FROM lvl1 WHERE {MULTI_G}
        GROUP BY mdev, mino)
), counts AS (
  SELECT sum(n) AS nrows, coalesce(sum(n) FILTER {DIR_G}, 0) AS ndir FROM lvl1
), old AS (
  SELECT coalesce(sum(bytes), 0) AS folder_bytes, {olds} FROM fdirect WHERE files > 0
)
SELECT * FROM counts, single, multi, old
"""


def scope_columns(by: str) -> dict[str, str]:
    """Column expressions of the scope ``by`` ranks on: direct files, or the whole subtree."""
    if by == "total":
        return {"size": "tbytes", "alloc": "talloc", "mt": "tmtim", "at": "tatim",
                "avg": "coalesce(tbytes // nullif(tfiles, 0), 0)"}
    return {"size": "bytes", "alloc": "alloc", "mt": "mtim", "at": "atim",
            "avg": "coalesce(bytes // nullif(files, 0), 0)"}


def listed_sql(by: str, min_size: int, min_avg: int, newest_before: int | None,
               owner_uid: int | None, top: int | None) -> str:
    """Statement for the ``listed`` table: filtered, ordered, limited hotspots rows."""
    c = scope_columns(by)
    where = [f"{c['size']} >= {int(min_size)}", f"{c['avg']} >= {int(min_avg)}"]
    if newest_before is not None:
        where.append(f"greatest({c['mt']}, {c['at']}) <= {int(newest_before)}")
    if owner_uid is not None:
        where.append(f"uid = {int(owner_uid)}")
    # the order matters only to cut at --top; readers of ``listed`` sort again
    limit = (f"ORDER BY {c['size']} DESC, folder LIMIT {int(top)}" if top is not None else "")
    return f"""
CREATE OR REPLACE TABLE listed AS
SELECT folder, bytes, files, tbytes, tfiles, {c['alloc']} AS alloc, {c['avg']}::BIGINT AS avg,
  {c['mt']} AS newest_mtime, {c['at']} AS newest_atime, uid, gid, depth, {c['size']} AS size
FROM folders
WHERE {' AND '.join(where)}
{limit}
"""


# owner/group names come from Python (pwd/grp) as small tables, joined here so the rows reach
# the hotspots writer ready to write
NAMES_SQL = """
CREATE OR REPLACE TEMP TABLE {table} AS
SELECT unnest($1::BIGINT[]) AS id, unnest($2::VARCHAR[]) AS name
"""

_LISTED_FROM = """
FROM listed l LEFT JOIN user_names u ON u.id = l.uid LEFT JOIN group_names g ON g.id = l.gid
ORDER BY l.size DESC, l.folder
"""

LISTED_ROWS_SQL = """
SELECT l.folder, l.bytes, l.files, l.tbytes, l.tfiles, l.alloc, l.avg, l.newest_mtime,
  l.newest_atime, coalesce(u.name, l.uid::VARCHAR), coalesce(g.name, l.gid::VARCHAR), l.depth
""" + _LISTED_FROM

# The same rows as finished hotspots CSV lines (hotspots.COLUMNS order), built by DuckDB's
# threads instead of Python's csv module: 3x faster for 10^6 folders.  Byte-identical to
# hotspots.write_hotspots (tests compare them on random names).
_LISTED_LINE = """
concat_ws(',', csv_field(l.folder), l.bytes, l.files, l.tbytes, l.tfiles, l.alloc,
  l.avg, l.newest_mtime, l.newest_atime, csv_field(coalesce(u.name, l.uid::VARCHAR)),
  csv_field(coalesce(g.name, l.gid::VARCHAR)), l.depth)"""
LISTED_LINES_SQL = f"SELECT {_LISTED_LINE} || chr(10)" + _LISTED_FROM


def listed_copy_sql(dest: str) -> str:
    """The same lines (without their newline) written by DuckDB itself into ``dest``, one per
    row, as they are: no quoting or escaping (one column; NUL as the unused delimiter, since no
    path holds one).  DuckDB writes text as UTF-8, so the file holds each line's Latin-1 view
    in UTF-8, which ``hotspots.write_hotspots_from_view`` turns back into the exact bytes.
    Needs ``preserve_insertion_order`` on, or the ORDER BY is not kept."""
    return (f"COPY (SELECT {_LISTED_LINE} AS line {_LISTED_FROM}) TO {sql_str(dest)} "
            "(FORMAT csv, HEADER false, QUOTE '', ESCAPE '', DELIMITER chr(0))")


LISTED_COUNT_SQL = "SELECT count(*), coalesce(sum(size), 0)::BIGINT FROM listed"

# Size of the listed folders, a listed folder inside another listed one not counted again
# (for --by total; direct sizes never overlap).  With '/' mapped to chr(0), the smallest
# character, a folder's descendants are exactly the keys between its key and key || chr(1)
# (the root '/' -- key chr(0) -- holds every key starting with chr(0)): a folder is nested
# when an earlier key's reach passes it.  One sort and a running max, in DuckDB's threads.
LISTED_OUTER_SIZE_SQL = """
SELECT coalesce(sum(size), 0)::BIGINT FROM (
  SELECT k, size,
    max(CASE WHEN k = chr(0) THEN chr(1) ELSE k || chr(1) END)
      OVER (ORDER BY k ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS reach
  FROM (SELECT replace(folder, '/', chr(0)) AS k, size FROM listed))
WHERE reach IS NULL OR reach <= k
"""
