"""matplotlib's font cache for the grading kernels.

A kernel whose matplotlib finds no font cache spends a second or more building one; each kernel
gets a copy of a cache built before it starts. The grader builds that cache once per machine and
matplotlib version, in its own cache folder, with a matplotlib imported in a process of its own
(the grader does not import matplotlib), and each run copies it from there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

from ..environment import tool_env


def write_font_cache(folder: Path) -> None:
    """matplotlib's font cache (``fontlist-*.json``), written into ``folder`` by a matplotlib
    imported in a process of its own (the grader does not import matplotlib)."""
    subprocess.run([sys.executable, "-c", "import matplotlib.font_manager"],
                   env=tool_env(MPLCONFIGDIR=str(folder)), capture_output=True, timeout=300)


def shared_font_cache(cache_home: Path | None = None) -> Path | None:
    """The folder holding this machine's font cache for the installed matplotlib, under
    ``cache_home`` (default ``$XDG_CACHE_HOME`` or ``~/.cache``), built now if it is not there
    yet (several graders may build it at once: each builds its own, the first to finish is
    kept). None when matplotlib is not installed or the folder cannot be made or written."""
    try:
        version = metadata.version("matplotlib")
    except metadata.PackageNotFoundError:
        return None
    try:
        if cache_home is None:
            cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        folder = Path(cache_home) / "backprop-lab-kit" / f"matplotlib-{version}"
        if any(folder.glob("fontlist-*.json")):
            return folder
        folder.parent.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=f"{folder.name}-", dir=folder.parent))
    except (OSError, RuntimeError):  # no home, or a folder this user cannot write
        return None
    try:
        write_font_cache(building)
        if not any(building.glob("fontlist-*.json")):
            return None
        try:
            building.rename(folder)  # atomic; another grader's finished folder wins
        except OSError:
            pass
        return folder if any(folder.glob("fontlist-*.json")) else None
    finally:
        shutil.rmtree(building, ignore_errors=True)
