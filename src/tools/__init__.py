"""Jobs that combine packages (data, detectors, augment): PRLE map building, viewers.

A tool may import any library package; nothing below it imports a tool, and
argparse stays in ``src.cli``.
"""
