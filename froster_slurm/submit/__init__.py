"""Submission (login node): render the job scripts and queue the jobs of a run.

``pipeline`` chains crawl -> rank -> archive -> finalize (and plans the crawl shards),
``stages`` renders one stage's script and sbatch options, ``render`` and ``overrides`` fill the
templates and apply site overrides, ``preflight`` checks a run before anything is queued.  The
rank job also uses ``pipeline``'s dispatch (it queues the archive array): a one-way import.
"""
