"""The catalog of archived folders (``store``: DuckDB files, one per owner, locked while
written): appended by the finalize and restore jobs, read by ``catalog``, ``restore`` and
``purge`` on the login node.
"""
