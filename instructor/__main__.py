"""``python -m instructor COMMAND`` (also ``python3 kit.py COMMAND``): the instructor workflow.

    release   [LAB ...] [--lab-utils-source SOURCE]   notebooks/ and the student bundle
    collect   LAB [--from DIR | --zip FILE [--regexp R] | --exchange]
    grade     LAB [--workers N | --scheduler tcp://HOST:PORT] [--students a,b] [--force]
              [--no-sandbox] [limits]
    feedback  LAB [--students a,b]          feedback/<student>/<lab>/*.html
    export    [--to grades.csv]             grades CSV and grading/summary.md

Every command takes ``--course-dir`` (default: the kit's root) and ``--db`` (default: the
``c.CourseDirectory.db_url`` of the course's ``nbgrader_config.py``, else its
``sqlite:///gradebook.db``; a PostgreSQL URL when several graders share one gradebook).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .course import Course


def _students(text: str | None) -> list[str] | None:
    return None if text is None else [s for s in text.split(",") if s]


def parser() -> argparse.ArgumentParser:
    from .commands import grade

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--course-dir", help="course root holding nbgrader_config.py (default: the kit)")
    common.add_argument("--db", help="gradebook URL (default: the db_url of the course's nbgrader_config.py, "
                        "else sqlite:///gradebook.db in the course)")
    top = argparse.ArgumentParser(prog="python3 kit.py", description="Backprop Lab Kit: instructor tools")
    sub = top.add_subparsers(dest="command", required=True)

    p = sub.add_parser("release", parents=[common], help="regenerate notebooks/ and build the student bundle")
    p.add_argument("labs", nargs="*", help="labs to regenerate (default: all)")
    p.add_argument("--no-bundle", action="store_true", help="only regenerate notebooks/")
    p.add_argument("--lab-utils-source", metavar="SOURCE",
                   help="where hosted notebooks (Colab, Kaggle) install lab_utils from: pip "
                        "arguments such as the student bundle's URL (default: nbgrader_config.py)")

    p = sub.add_parser("collect", parents=[common], help="bring submissions into submitted/")
    p.add_argument("lab")
    p.add_argument("--from", dest="source", type=Path, help="folder in nbgrader layout")
    p.add_argument("--zip", dest="archive", type=Path, help="zip exported by the LMS")
    p.add_argument("--regexp", help="named regexp (student_id, file_id) for LMS file names")
    p.add_argument("--exchange", action="store_true", help="nbgrader collect from the exchange")
    p.add_argument("--force", action="store_true", help="replace submissions already collected")

    grade.add_arguments(sub.add_parser("grade", parents=[common],
                                       help="autograde submissions in parallel, sandboxed"))

    p = sub.add_parser("feedback", parents=[common], help="per-student HTML feedback")
    p.add_argument("lab")
    p.add_argument("--students", help="comma-separated student ids (default: all graded)")

    p = sub.add_parser("export", parents=[common], help="grades CSV and the grading summary")
    p.add_argument("--to", type=Path, help="CSV file (default: grades.csv in the course)")
    return top


def main(argv: list[str] | None = None) -> int:
    from .grading.sandbox import SandboxUnavailable

    args = parser().parse_args(argv)
    try:
        course = Course.open(args.course_dir, args.db)
        if args.command == "release":
            from .commands.release import release
            bundle = release(course, args.labs or None, bundle=not args.no_bundle,
                             lab_utils_source=args.lab_utils_source)
            print("notebooks/ regenerated" + (f"; student bundle: {bundle} (+ .zip)" if bundle else ""))
        elif args.command == "collect":
            from .commands.collect import DEFAULT_REGEXP, collect_and_check, describe_check
            students, checks = collect_and_check(
                course, args.lab, source=args.source, archive=args.archive,
                regexp=args.regexp or DEFAULT_REGEXP, exchange=args.exchange, force=args.force)
            print(f"{len(students)} submissions of {args.lab} in {course.submitted}: "
                  + ", ".join(students))
            for check in checks:
                print(describe_check(check, args.lab))
            if any(c.problem for c in checks):
                print("fix the names above, then grade: those submissions would score 0")
        elif args.command == "grade":
            from .commands import grade
            grade.run(course, args)
        elif args.command == "feedback":
            from .commands.feedback import feedback
            pages = feedback(course, args.lab, _students(args.students))
            print(f"{len(pages)} feedback pages under {course.feedback}")
        elif args.command == "export":
            from .commands.export import export
            grades, summary = export(course, args.to)
            print(summary.read_text())
            print(f"grades: {grades}\nsummary: {summary}")
    except SandboxUnavailable as error:
        print(f"{args.command}: {error}", file=sys.stderr)
        return 3
    except (ValueError, RuntimeError) as error:
        print(f"{args.command}: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
