"""Jobs that combine packages (data, augment, detectors): pictures and maps for people to check.

Each tool is a library function with plain arguments; its ``dfbench`` verb lives in
:mod:`src.cli`.
"""
