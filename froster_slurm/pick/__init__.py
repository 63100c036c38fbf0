"""Choosing the folders to archive: by rules (the rank job) or by hand (the Textual picker).

``selection`` applies the rules to hotspots.csv (the rank job uses it: job side),
``funnel`` says how many folders each rule kept, ``prefix_index`` answers "is this folder
inside a chosen one" fast.  The picker: ``pickstate``, ``rowstore`` (its rows in DuckDB) and
``access`` are plain Python, and only ``picker``, ``screens`` and ``table`` (imported by the
CLI after the terminal check) pull in Textual, so importing this package, or selection, never
imports Textual.
"""
