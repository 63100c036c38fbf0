"""Every option more than one command takes, declared once with one help text.

Why: the same flag used to be declared in three to six commands with help texts that had
drifted apart (``--to`` was "rclone remote or local path." in one and named the config default
in another).  A command takes the option by its type here (``to: ToOpt = None``);
tests/test_cli_options.py fails when two commands give one flag different help texts, except
the flags in ``PER_COMMAND``, whose meaning really is the command's own.

Only typer here: every command module imports this one, and ``froster-slurm --help`` must stay
fast (no config, no DuckDB, no Textual at import time).
"""

from __future__ import annotations

from typing import Annotated

import typer

# Flags that name a different thing per command; each command's help says what.
PER_COMMAND = {
    "-o": "the file each command writes (a crawl CSV, hotspots, a selection, a report)",
    "--output": "the file each command writes (a crawl CSV, hotspots, a selection, a report)",
    "--older-than": "a folder's age for the rank rules; a run's age for `runs prune`",
    "--to": "a destination remote for archiving; a local folder for `restore`",
    "--version": "print the version (froster-slurm); which archive version (`restore`)",
}

# --- where the data goes ----------------------------------------------------------------------
ToOpt = Annotated[str | None, typer.Option(
    "--to", metavar="REMOTE",
    help="Destination: an rclone remote (name:path) or a local path; default: config "
         "default_remote (retry: the run's own; another one makes a new run).")]
StorageClassOpt = Annotated[str | None, typer.Option(
    "--storage-class", metavar="CLASS",
    help="Storage class of the archive and of cost estimates, e.g. DEEP_ARCHIVE, GLACIER; "
         "default: config archive.storage_class (retry: the run's own; another one makes a "
         "new run).")]
RecursiveOpt = Annotated[bool | None, typer.Option(
    "--recursive/--no-recursive",
    help="Archive whole subtrees (a folder and one inside it cannot both be picked); "
         "default: config archive.recursive.")]

# --- how jobs run -----------------------------------------------------------------------------
BackendOpt = Annotated[str | None, typer.Option(
    "--backend", metavar="BACKEND",
    help="Where jobs run: auto (Slurm when sbatch is on PATH), slurm or local.")]
DryRunOpt = Annotated[bool, typer.Option(
    "--dry-run",
    help="Show what would be done (job scripts rendered, what would be freed or removed); "
         "submit, delete and remove nothing.")]
ThrottleOpt = Annotated[int | None, typer.Option(
    "--throttle", metavar="N",
    help="Archive tasks running at once (config archive.throttle).")]
SubmitOpt = Annotated[bool, typer.Option(
    "--submit",
    help="Submit the work as jobs (Slurm, or the local backend): crawl the shards as an "
         "array; pick: the confirmed selection to the archive stage.")]
ShardsOpt = Annotated[int | None, typer.Option(
    "--shards", min=1, metavar="N",
    help="Split the crawl into N balanced shards (top-level subtrees): array tasks when "
         "submitted, one after another here otherwise.")]

# --- output -----------------------------------------------------------------------------------
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]
ForceOpt = Annotated[bool, typer.Option(
    "--force",
    help="Overwrite existing files (restore: those that differ from the archive, never "
         "folders).")]
RunArg = Annotated[str, typer.Argument(help="Run id (or a unique prefix, or 'last').")]

# --- the rank rules (rank, select, report, submit) ------------------------------------------
MinSizeOpt = Annotated[str | None, typer.Option(
    "--min-size", metavar="SIZE",
    help="Rule: smallest folder to keep, e.g. 500GiB, 2TB; default: config rank.min_size "
         "(select: no minimum).")]
MinAvgSizeOpt = Annotated[str | None, typer.Option(
    "--min-avg-size", metavar="SIZE",
    help="Rule: smallest average file size; default: config rank.min_avg_size.")]
OlderThanOpt = Annotated[str | None, typer.Option(
    "--older-than", metavar="AGE",
    help="Rule: only folders unused (newest mtime and atime) for this long, e.g. 180d, 2y; "
         "default: config rank.older_than (select: any age).")]
TopOpt = Annotated[int | None, typer.Option(
    "--top", metavar="N", min=1, help="Rule: keep at most N folders, largest first.")]
_OWNER_HELP = ("Rule: only folders owned by USER (a name or uid; select and report take it "
               "more than once).")
OwnerOpt = Annotated[str | None, typer.Option("--owner", metavar="USER", help=_OWNER_HELP)]
OwnersOpt = Annotated[list[str] | None, typer.Option("--owner", metavar="USER",
                                                     help=_OWNER_HELP)]
ByOpt = Annotated[str | None, typer.Option(
    "--by", metavar="direct|total",
    help="Rule: rank and filter on the folder's own files (direct) or its whole subtree "
         "(total); default: config rank.by.")]

# --- config files -----------------------------------------------------------------------------
SiteOpt = Annotated[bool, typer.Option(
    "--site", help="The site file ($FROSTER_SLURM_SITE_CONFIG or "
                   "/etc/froster-slurm/config.toml), for admins.")]
