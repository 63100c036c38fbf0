"""``froster-slurm report``: one self-contained HTML page of where the space is, how old it is,
who owns it, and what archiving the folders that pass the rules would free and cost.

``source`` reads a crawl (through rank's reader) or a hotspots file, ``model`` turns the rows
into the folder tree and the page's data, ``plan`` applies selection's rules and cost code,
``charts`` draws the static SVG bar charts and ``page`` puts it all in one file.
``summary`` is the run's summary.html, written by the finalize job; the rest runs on the login
node.
"""
