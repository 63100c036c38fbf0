"""What a run is doing, shown on the login node: ``collect`` reads the run directory and the
scheduler into one status, ``live`` redraws it (``status --watch``), ``progress`` is the rate
and ETA arithmetic (jobs use it for their Comment too: it imports nothing heavy).
"""
