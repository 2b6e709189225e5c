"""``python3 kit.py grade LAB``: autograde a class's submissions (the engine: :mod:`instructor.grading`)."""

from __future__ import annotations

import argparse
import os

from ..course import Course
from ..grading.limits import Limits
from ..grading.run import grade
from ..words import outcome_line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("lab")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="parallel workers (default: the CPU count)")
    parser.add_argument("--students", help="comma-separated student ids to (re)grade "
                        "(default: every submission not graded yet, or changed since)")
    parser.add_argument("--force", action="store_true", help="regrade every submission")
    parser.add_argument("--cell-timeout", type=int, default=120, help="seconds per cell (default 120)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per submission (default 900)")
    parser.add_argument("--memory-mb", type=int, default=4096, help="kernel memory limit (default 4096)")
    parser.add_argument("--no-sandbox", action="store_true",
                        help="grade WITHOUT bubblewrap (students' code can then reach all your "
                             "files); the summary marks every submission graded this way")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                        help="grade on the Dask cluster of this scheduler (one task per "
                             "submission; --workers does not apply) instead of this machine")


def run(course: Course, args: argparse.Namespace) -> None:
    students = None if args.students is None else [s for s in args.students.split(",") if s]
    limits = Limits(cell_timeout=args.cell_timeout, submission_timeout=args.timeout,
                    memory_mb=args.memory_mb)
    if args.scheduler:
        from ..grading.distributed import grade_on_cluster
        outcomes = grade_on_cluster(course, args.lab, args.scheduler, students=students,
                                    limits=limits, sandbox=not args.no_sandbox, force=args.force,
                                    progress=not args.quiet)
    else:
        outcomes = grade(course, args.lab, students=students, workers=args.workers,
                         limits=limits, sandbox=not args.no_sandbox, force=args.force,
                         progress=not args.quiet)
    if not outcomes:
        print(f"nothing to grade for {args.lab}: every submission is graded and recorded "
              "(--force regrades all, --students a,b some)")
    for outcome in outcomes:
        print(outcome_line(outcome))
