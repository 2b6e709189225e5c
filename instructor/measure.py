"""``python -m instructor.measure [--copies N]``: seconds per submission, for every lab, with plain
serial ``nbgrader autograde`` and with the kit's grader at 1 and 2 workers (same submissions:
``N`` copies each of a correct, a blank and a partial one, in throw-away courses).

Prints a Markdown table; nothing is asserted (speed depends on the machine and its load).
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from .course import Course, run_nbgrader
from .grade import Limits, grade

MARKER = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?", re.M)


def submissions(release, source) -> dict[str, object]:
    """correct, blank and partial versions of a released notebook."""
    solved = {c.metadata["nbgrader"]["grade_id"]: MARKER.sub("", c.source) for c in source.cells
              if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")}
    first = next(iter(solved), None)

    def fill(ids):
        nb = copy.deepcopy(release)
        for cell in nb.cells:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            if cell.cell_type == "code" and grade_id in ids:
                cell.source = solved[grade_id]
        return nb
    return {"correct": fill(set(solved)), "blank": fill(set()), "partial": fill({first})}


def make_course(root: Path, lab: str, copies: int) -> Path:
    kit = Course.open()
    root.mkdir(parents=True)
    shutil.copy(kit.root / "nbgrader_config.py", root / "nbgrader_config.py")
    shutil.copytree(kit.solutions / lab, root / "solutions" / lab)
    run_nbgrader("generate_assignment", lab, "--force", cwd=root)
    release = nbformat.read(root / "notebooks" / lab / f"{lab}.ipynb", as_version=4)
    source = nbformat.read(root / "solutions" / lab / f"{lab}.ipynb", as_version=4)
    for kind, nb in submissions(release, source).items():
        for i in range(copies):
            folder = root / "submitted" / f"{kind}{i}" / lab
            folder.mkdir(parents=True)
            nbformat.write(nb, folder / f"{lab}.ipynb")
    return root


def measure(lab: str, copies: int) -> dict[str, float]:
    n = 3 * copies
    seconds = {}
    with tempfile.TemporaryDirectory(prefix="kit-measure-") as scratch:
        root = make_course(Path(scratch) / "serial", lab, copies)
        start = time.perf_counter()
        run_nbgrader("autograde", lab, "--force", cwd=root)
        seconds["nbgrader autograde (serial)"] = (time.perf_counter() - start) / n
        for workers in (1, 2):
            root = make_course(Path(scratch) / f"kit{workers}", lab, copies)
            start = time.perf_counter()
            grade(Course.open(root), lab, workers=workers, limits=Limits(), progress=False)
            seconds[f"kit grade, {workers} worker{'s' * (workers > 1)}"] = (
                time.perf_counter() - start) / n
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=2, help="copies of each kind (default 2)")
    parser.add_argument("labs", nargs="*", help="labs (default: all)")
    args = parser.parse_args(argv)
    if args.copies < 1:
        parser.error(f"--copies: expected a positive integer, got {args.copies}")
    labs = args.labs or Course.open().labs()
    os.environ.setdefault("LAB_DEVICE", "cpu")
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start; "
          f"{3 * args.copies} submissions per lab\n")
    rows = {lab: measure(lab, args.copies) for lab in labs}
    columns = list(next(iter(rows.values())))
    print("| lab | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for lab, seconds in rows.items():
        print(f"| {lab} | " + " | ".join(f"{seconds[c]:.1f} s" for c in columns) + " |")
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
