"""`froster-slurm retry RUN`: resubmit the folders of a run that are not archived yet."""

from __future__ import annotations

from ..run.rundir import open_run
from ..submit.pipeline import retry_run
from .app import app, get_config, print_submitted
from .options import DryRunOpt, RunArg, StorageClassOpt, ToOpt


@app.command("retry")
def retry(
    run: RunArg,
    dry_run: DryRunOpt = False,
    to: ToOpt = None,
    storage_class: StorageClassOpt = None,
) -> None:
    """Resubmit only the folders of RUN that are not archived yet (they resume); with --to or
    --storage-class they go into a new run with those settings."""
    cfg = get_config()
    print_submitted(retry_run(open_run(cfg, run), cfg, dry_run=dry_run, remote=to,
                              storage_class=storage_class))
