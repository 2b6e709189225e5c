"""pytest configuration shared by the whole suite."""

import os

os.environ.setdefault("LAB_DEVICE", "cpu")
os.environ.setdefault("MPLBACKEND", "Agg")

collect_ignore_glob = ["fixtures/*"]
