"""Tools for the labs' own test cells (students may read them; nothing here solves a lab).

When a lab is graded, each test cell runs twice: once in the student's kernel, and once more in
the grader's own process, where the student's functions are not run again: each call a test cell
made to one of them is answered with the value it returned in the kernel (recorded there). A
test helper that itself calls student code and returns plain data (numbers, strings, tensors,
and lists, tuples or dicts of them) is marked with :func:`runs_student_code`, so that the grader
replays the helper's result as a whole instead of re-running it (see docs/authoring.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

Function = TypeVar("Function", bound=Callable)

MARK = "__runs_student_code__"


def runs_student_code(function: Function) -> Function:
    """Mark ``function``, a test helper that calls the student's code, as one unit for grading:
    its return value (plain data only) is recorded in the kernel and replayed by the grader.

    Use it for helpers whose calls into student code return objects the grader cannot record
    (instances of a class the student wrote, generators, functions); the helper turns them into
    numbers. Returns ``function`` itself, unchanged apart from the mark.
    """
    if not callable(function):
        raise TypeError(f"function: expected a function to mark, got {type(function).__name__}")
    setattr(function, MARK, True)
    return function


def is_student_code_helper(function: object) -> bool:
    """True for a function marked with :func:`runs_student_code`."""
    return callable(function) and getattr(function, MARK, False) is True
