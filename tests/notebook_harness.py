"""Run a lab's cells in this process, the way the grader replays them, without a kernel.

A lab notebook is split into its *context* (the locked code cells that are not test cells:
setup, test helpers, data), its *solution cells* (the graded functions) and its *test cells*.
:func:`run_tests` executes the context in a fresh namespace, then the solution cells (or a
submission's replacements for some of them), then each test cell, and reports a verdict per
test cell. :func:`replay_verdicts` does what docs/authoring.md ("Test cells the grader can
replay") promises the grader will do: run each test cell once with every call to a graded
function (or to a helper marked ``runs_student_code``) recorded, then again in a fresh context
where those calls are answered from the record, and return both verdicts.

This is a model of the grader's contract for the labs' own tests, not the grader itself.
"""

from __future__ import annotations

import ast
import builtins
import copy
import re
import symtable
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import torch

from lab_utils.testing import is_student_code_helper

SOLUTION_REGION = re.compile(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", re.S)


def nbgrader_meta(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def is_test_cell(cell) -> bool:
    meta = nbgrader_meta(cell)
    return cell.cell_type == "code" and bool(meta.get("grade")) and not meta.get("solution")


def is_solution_cell(cell) -> bool:
    return cell.cell_type == "code" and bool(nbgrader_meta(cell).get("solution"))


def is_context_cell(cell) -> bool:
    meta = nbgrader_meta(cell)
    return (cell.cell_type == "code" and bool(meta.get("locked")) and not meta.get("grade")
            and not meta.get("solution"))


def top_level_names(source: str) -> list[str]:
    """Names a cell binds at module level (functions, classes, assignments)."""
    names = []
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
    return names


def referenced_globals(source: str) -> set[str]:
    """Names a cell reads from its module namespace (at any depth) without binding them at
    its top level."""
    table = symtable.symtable(source, "<cell>", "exec")
    bound = {s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported()}
    used: set[str] = set()

    def visit(scope):
        for symbol in scope.get_symbols():
            if not symbol.is_referenced():
                continue
            if scope.get_type() == "module" or symbol.is_global():
                used.add(symbol.get_name())
        for child in scope.get_children():
            visit(child)

    visit(table)
    return used - bound


@dataclass
class Lab:
    """A solution notebook, split as the grader splits it."""

    path: Path
    cells: list = field(init=False)

    def __post_init__(self):
        self.cells = nbformat.read(self.path, as_version=4).cells

    @property
    def context(self) -> list[str]:
        return [c.source for c in self.cells if is_context_cell(c)]

    @property
    def solutions(self) -> dict[str, str]:
        """grade_id -> source of each solution code cell."""
        return {nbgrader_meta(c)["grade_id"]: c.source for c in self.cells if is_solution_cell(c)}

    @property
    def tests(self) -> dict[str, str]:
        return {nbgrader_meta(c)["grade_id"]: c.source for c in self.cells if is_test_cell(c)}

    @property
    def graded_names(self) -> set[str]:
        return {name for source in self.solutions.values() for name in top_level_names(source)}

    def blank_solutions(self) -> dict[str, str]:
        """What nbgrader leaves of each solution cell in the student version."""
        return {grade_id: SOLUTION_REGION.sub("raise NotImplementedError()\n", source)
                for grade_id, source in self.solutions.items()}


def run_context(lab: Lab) -> dict:
    namespace: dict = {"__name__": "__main__"}
    for source in lab.context:
        exec(compile(source, "<context>", "exec"), namespace)
    return namespace


def _with_solutions(lab: Lab, replacements: dict[str, str] | None, blank: bool) -> dict:
    namespace = run_context(lab)
    sources = lab.blank_solutions() if blank else lab.solutions
    sources.update(replacements or {})
    for grade_id, source in sources.items():
        exec(compile(source, f"<{grade_id}>", "exec"), namespace)
    return namespace


def verdict(source: str, namespace: dict, name: str) -> str:
    """'passed', or the name of the exception the test cell raised, then ': ' and its text."""
    try:
        exec(compile(source, f"<{name}>", "exec"), namespace)
    except Exception as error:  # noqa: BLE001 - a test cell's failure is data here
        return f"{type(error).__name__}: {error}"
    return "passed"


def run_tests(lab: Lab, replacements: dict[str, str] | None = None, *, blank: bool = False,
              only: set[str] | None = None) -> dict[str, str]:
    """grade_id -> verdict of each test cell, all run in one namespace, in order."""
    namespace = _with_solutions(lab, replacements, blank)
    return {grade_id: verdict(source, namespace, grade_id)
            for grade_id, source in lab.tests.items() if only is None or grade_id in only}


# ------------------------------------------------------------------ the replay model

PLAIN_SCALARS = (type(None), bool, int, float, str, torch.dtype, torch.device)


def is_plain(value) -> bool:
    """Plain data in the sense of docs/authoring.md."""
    if isinstance(value, PLAIN_SCALARS) or isinstance(value, torch.Tensor):
        return True
    if isinstance(value, (list, tuple)):
        return all(is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(is_plain(k) and is_plain(v) for k, v in value.items())
    return False


def _snapshot(value):
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    return copy.deepcopy(value)


class _Calls:
    """The record of one test cell's calls, per function name, outermost calls only."""

    def __init__(self):
        self.log: dict[str, list] = {}
        self.depth = 0
        self.not_plain: list[str] = []


class Recorder:
    """Stands for a graded function (or a marked helper) in the kernel run: passes calls
    through and records what outermost calls returned or raised, and how they changed their
    dict and list arguments."""

    def __init__(self, name, function, calls: _Calls):
        self._name, self._function, self._calls = name, function, calls

    def __getattr__(self, attribute):  # fib_cached.cache_info and the like
        return getattr(self._function, attribute)

    def __call__(self, *args, **kwargs):
        calls = self._calls
        if calls.depth:
            return self._function(*args, **kwargs)
        calls.depth += 1
        try:
            result = self._function(*args, **kwargs)
        except Exception as error:
            entry = ("raise", type(error), error.args, self._mutations(args, kwargs))
            calls.log.setdefault(self._name, []).append(entry)
            raise
        finally:
            calls.depth -= 1
        if not is_plain(result):
            calls.not_plain.append(f"{self._name} returned {type(result).__name__}")
        entry = ("return", _snapshot(result), None, self._mutations(args, kwargs))
        calls.log.setdefault(self._name, []).append(entry)
        return result

    @staticmethod
    def _mutations(args, kwargs):
        changed = {}
        for key, value in [*enumerate(args), *kwargs.items()]:
            if isinstance(value, (dict, list)) and is_plain(value):
                changed[key] = _snapshot(value)
        return changed


class Replayer:
    """Stands for a graded function (or a marked helper) in the grader's run: answers each call
    with the next recorded one, applying the recorded changes to dict and list arguments."""

    def __init__(self, name, entries):
        self._name, self._entries = name, list(entries)

    def __call__(self, *args, **kwargs):
        if not self._entries:
            raise LookupError(f"replay: {self._name} called more often than in the kernel")
        kind, value, error_args, changed = self._entries.pop(0)
        for key, state in changed.items():
            target = args[key] if isinstance(key, int) else kwargs[key]
            if isinstance(target, dict):
                target.clear()
                target.update(_snapshot(state))
            elif isinstance(target, list):
                target[:] = _snapshot(state)
        if kind == "raise":
            raise value(*error_args)
        return _snapshot(value)


def _marked_helpers(namespace: dict) -> list[str]:
    return [name for name, value in namespace.items() if is_student_code_helper(value)]


def replay_verdicts(lab: Lab, replacements: dict[str, str] | None = None, *,
                    blank: bool = False) -> dict[str, tuple[str, str, list[str]]]:
    """grade_id -> (verdict in the kernel, verdict when replayed, non-plain results) for each
    test cell. The kernel run uses one namespace for the whole notebook, as a kernel does;
    each replay starts from a fresh context."""
    kernel = _with_solutions(lab, replacements, blank)
    graded = lab.graded_names
    originals = {name: kernel[name] for name in graded | set(_marked_helpers(kernel))
                 if name in kernel}
    results = {}
    for grade_id, source in lab.tests.items():
        calls = _Calls()
        for name, function in originals.items():
            kernel[name] = Recorder(name, function, calls)
        in_kernel = verdict(source, kernel, grade_id)
        for name, function in originals.items():
            kernel[name] = function
        grader = run_context(lab)
        for name in originals:
            grader[name] = Replayer(name, calls.log.get(name, []))
        replayed = verdict(source, grader, grade_id)
        results[grade_id] = (in_kernel, replayed, calls.not_plain)
    return results


def same_verdict(a: str, b: str) -> bool:
    """Both passed, or both failed with the same kind of exception."""
    return a.split(":", 1)[0] == b.split(":", 1)[0]


def builtin_names() -> set[str]:
    return set(dir(builtins))
