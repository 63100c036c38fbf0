"""The interactive picker (Textual).

Importing this package does not import Textual: ``pick.state`` and ``pick.access`` are plain
Python, and only ``pick.app`` (imported by the CLI after the terminal check) pulls in the UI.
"""
