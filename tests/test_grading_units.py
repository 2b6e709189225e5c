"""Fast checks of the grading engine's pieces, without kernels: limits, the course, submission
diagnosis as codes, the cell prologue, results.json, values crossing from kernel to grader, and
the replay of a test cell from records."""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import nbformat
import pytest
import torch
from gradebooks import record_while_another_grader_seeds, scratch_gradebook, seeded_gradebook

from instructor.course import Course, absolute_db_url
from instructor.grading import rules
from instructor.grading.diagnosis import inspect_submission, nbgrader_failure
from instructor.grading.kernel_side.encoding import (
    decode,
    encode,
    fingerprint,
    first_difference,
    from_text,
    to_text,
)
from instructor.grading.limits import Limits
from instructor.grading.outcome import Finding, Outcome, Status, load_results, save_results
from instructor.grading.preprocessors import PROLOGUE, PrepareCells, RestoreCells
from instructor.grading.stubs import Records, ReplayError, Stub, apply_changes, rebuild_error
from instructor.words import describe

FIXTURE = Path(__file__).parent / "fixtures" / "fixture_lab.ipynb"


@pytest.mark.parametrize("field, value", [("cell_timeout", 0), ("memory_mb", -1),
                                          ("submission_timeout", 1.5), ("file_mb", True),
                                          ("tasks", "many")])
def test_limits_reject_bad_values(field, value):
    with pytest.raises(ValueError, match=f"{field}: expected a positive integer, got {value!r}"):
        Limits(**{field: value})


def test_course_open_validates_its_arguments(tmp_path):
    with pytest.raises(ValueError, match="--course-dir: expected an existing folder"):
        Course.open(tmp_path / "nope")
    with pytest.raises(ValueError, match="no nbgrader_config.py"):
        Course.open(tmp_path)
    (tmp_path / "nbgrader_config.py").write_text("")
    with pytest.raises(ValueError, match="--db: expected a database URL"):
        Course.open(tmp_path, "gradebook.db")
    course = Course.open(tmp_path)
    assert course.db_url == f"sqlite:///{tmp_path.resolve() / 'gradebook.db'}"
    with pytest.raises(ValueError, match="lab: expected one of \\[\\]"):
        course.check_lab("lab1")
    assert absolute_db_url("postgresql://u@h/db", tmp_path) == "postgresql://u@h/db"


def _write(folder: Path, nb, name="fixture_lab.ipynb"):
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / name)


def test_inspect_submission_gives_a_code_per_structural_fault(tmp_path):
    source = nbformat.read(FIXTURE, as_version=4)
    _write(tmp_path / "ok", source)
    assert inspect_submission([FIXTURE], tmp_path / "ok") == []
    deleted = copy.deepcopy(source)
    deleted.cells = [c for c in deleted.cells if c.metadata.get("nbgrader", {}).get("grade_id")
                     != "test_add_hidden"]
    _write(tmp_path / "deleted", deleted)
    assert inspect_submission([FIXTURE], tmp_path / "deleted") == [
        Finding("cells_deleted", {"notebook": "fixture_lab.ipynb", "cells": ["test_add_hidden"]})]
    reordered = copy.deepcopy(source)
    reordered.cells.reverse()
    _write(tmp_path / "reordered", reordered)
    assert inspect_submission([FIXTURE], tmp_path / "reordered")[0].code == "cells_reordered"
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "fixture_lab.ipynb").write_text("{nope")
    assert inspect_submission([FIXTURE], tmp_path / "broken")[0].code == "not_a_notebook"
    _write(tmp_path / "renamed", source, "copy.ipynb")
    found = inspect_submission([FIXTURE], tmp_path / "renamed")
    assert found == [Finding("notebook_missing", {"notebook": "fixture_lab.ipynb",
                                                  "found": ["copy.ipynb"]})]
    assert "found copy.ipynb" in describe(found[0])


def test_nbgrader_failures_become_codes():
    assert nbgrader_failure("nbclient.exceptions.DeadKernelError: Kernel died").code == "kernel_died"
    assert nbgrader_failure("KeyError: 'grade_id'").code == "cells_duplicated"
    other = nbgrader_failure("line\nValueError: something odd\n")
    assert other == Finding("nbgrader_failed", {"detail": "ValueError: something odd"})


def test_prologue_goes_into_locked_cells_and_comes_out_again(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "solutions" / "fixture").mkdir(parents=True)
    nbformat.write(nbformat.read(FIXTURE, as_version=4),
                   tmp_path / "solutions" / "fixture" / "fixture.ipynb")
    nb = nbformat.read(FIXTURE, as_version=4)
    original = [c.source for c in nb.cells]
    resources = {"nbgrader": {"assignment": "fixture", "notebook": "fixture"}}
    prepared, _ = PrepareCells().preprocess(copy.deepcopy(nb), resources)
    lines = {c.metadata.get("nbgrader", {}).get("grade_id"): c.source.split("\n")[0]
             for c in prepared.cells if c.source.startswith(PROLOGUE)}
    assert lines == {"test_add_visible": f"{PROLOGUE}('test_add_visible', ('add',))",
                     "test_add_hidden": f"{PROLOGUE}('test_add_hidden', ('add',))"}
    restored, _ = RestoreCells().preprocess(prepared, resources)
    assert [c.source for c in restored.cells] == original


def test_results_round_trip_and_merge(tmp_path):
    first = Outcome("alice", "lab", status=Status.FAILED, score=1.0, max_score=3.0,
                    problems=[Finding("cell_timeout", {"notebook": "n", "cell": "c", "seconds": 5})])
    save_results(tmp_path, "lab", [first])
    save_results(tmp_path, "lab", [Outcome("bob", "lab", flags=[Finding("no_sandbox")])])
    loaded = load_results(tmp_path, "lab")
    assert loaded["alice"] == first and loaded["bob"].flags == [Finding("no_sandbox")]
    assert not list(tmp_path.glob("lab/*.tmp"))


def test_rule_findings_in_results_read_as_the_checkers_own_sentences(tmp_path):
    """A broken rule and a flag, stored as the grading run stores them (the violation's
    ``code`` as ``kind``, its chain as a list), read back in the rule checker's words."""
    violation = rules.Violation("backward", "by_hand", rules.FORBIDDEN, "A.grad",
                                "torch.autograd.grad", "autograd", "backward", 21, 4,
                                ("backward", "_grads_of"))
    flag = rules.Flag("exit", "sys.exit(0)", "sys.exit", None, 40, 2)
    stored = {("kind" if k == "code" else k): v for k, v in asdict(violation).items()}
    flag_params = {k: v for k, v in asdict(flag).items() if k != "code"}
    save_results(tmp_path, "lab", [Outcome("carol", "lab", violations=[
        Finding("rule_broken", stored)], flags=[Finding("exit", flag_params)])])
    loaded = load_results(tmp_path, "lab")["carol"]
    assert describe(loaded.violations[0]) == rules.describe(violation)
    assert "it calls `_grads_of`, and line 4 of cell `backward`" in rules.describe(violation)
    assert describe(loaded.flags[0]) == rules.describe(flag) == (
        "Line 2 of cell 41 exits the kernel: `sys.exit(0)` (`sys.exit`).")


def test_values_cross_as_plain_data_and_come_back(tmp_path):
    grad = torch.ones(2)
    leaf = torch.zeros(2, requires_grad=True)
    leaf.grad = grad
    value = {"W": torch.arange(6.0).reshape(2, 3), "n": 3, "ok": True, "name": "x",
             "shape": torch.Size([2, 3]), "dtype": torch.float64, "pair": (1.5, None),
             "leaf": leaf, 1: [torch.tensor(2)], "fib": 2 ** 300 + 1}
    torch.save(encode(value), tmp_path / "record.pt")  # as the grader reads it: nothing unpickled
    back = decode(torch.load(tmp_path / "record.pt", weights_only=True))
    assert back["W"].equal(value["W"]) and back["n"] == 3 and back["shape"] == torch.Size([2, 3])
    assert back["dtype"] is torch.float64 and back["pair"] == (1.5, None) and back[1][0] == 2
    assert back["leaf"].requires_grad and back["leaf"].grad.equal(grad)
    assert back["fib"] == 2 ** 300 + 1
    assert encode(object())["__kit__"] == "unrecordable"


def test_values_without_tensors_cross_as_text_and_come_back():
    """Records of a lab without torch are Python literals: every plain kind comes back, floats
    that are not finite too, and nothing in the text is ever run."""
    value = {"n": 3, 7: [1.5, (None, "s")], "odd": {1, 2}, "big": 2 ** 300 + 1, "c": 1 - 2j,
             "nan": math.nan, "inf": -math.inf, "bytes?": "b'nan'", "r": range(1, 9, 2)}
    entry = {"name": "f", "args": fingerprint(((value,), {})), "result": encode(value)}
    back = from_text(to_text(entry))
    assert first_difference(back["args"], entry["args"]) is None
    result = decode(back["result"])
    assert math.isnan(result.pop("nan")) and math.isnan(value.pop("nan"))
    assert result == value
    with pytest.raises(TypeError, match="Tensor cannot be written as text"):
        to_text({"result": torch.ones(1)})
    with pytest.raises(ValueError):
        from_text("__import__('os').system('touch /tmp/kit-pwned-by-text')")


def test_a_kernel_without_torch_records_as_text_and_the_grader_replays_it(tmp_path):
    """The recorder in a process whose lab never imports torch: torch stays out, the call is
    written as ``0.txt``, and the grader's stub answers the same call from it."""
    script = """
import json, sys
from instructor.grading.kernel_side import recorder
recorder.install()
def halve(xs):
    "Halves, and a nan."
    return [x / 2 for x in xs] + [float("nan")]
ns = {"halve": halve}
recorder.begin_test(ns, "test_halve", ["halve"])
ns["halve"]([2, 4])
recorder.end_test()
print(json.dumps("torch" in sys.modules))
"""
    run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                         text=True, env={"PYTHONPATH": str(Path(__file__).parent.parent)})
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) is False
    folder = tmp_path / ".kit-record" / "test_halve"
    assert sorted(p.name for p in folder.iterdir()) == ["0.txt"]
    answer = Stub("halve", Records(folder), set())([2, 4])
    assert answer[:2] == [1.0, 2.0] and math.isnan(answer[2])


def test_fingerprints_tell_other_inputs_apart():
    x = torch.linspace(0, 1, 5)
    assert first_difference(fingerprint((x, 2)), fingerprint((x.clone(), 2))) is None
    assert first_difference(fingerprint((x, 2)), fingerprint((torch.zeros(5), 2)))
    assert first_difference(fingerprint([x]), fingerprint([x.double()]))
    assert first_difference(fingerprint((math.inf, -math.inf)), fingerprint((math.inf, -math.inf))) is None
    assert first_difference(fingerprint((math.inf,)), fingerprint((-math.inf,)))


class _Records:
    def __init__(self, entries):
        self.entries = list(entries)

    def next(self, name):
        if not self.entries:
            raise ReplayError(f"no record of the call to {name}")
        return self.entries.pop(0)


def test_a_stub_answers_from_the_record_and_checks_its_inputs():
    x = torch.tensor([1.0, 2.0])
    entry = {"name": "double", "args": fingerprint(((x,), {})), "result": encode(x * 2),
             "changes": [], "rng": None}
    called = set()
    assert Stub("double", _Records([entry]), called)(x).equal(x * 2) and called == {"double"}
    with pytest.raises(ReplayError, match="other inputs"):
        Stub("double", _Records([entry]), called)(x + 1)
    with pytest.raises(ReplayError, match="no record"):
        Stub("double", _Records([]), called)(x)
    raised = dict(entry, raised={"type": "NotImplementedError", "builtin": "NotImplementedError",
                                 "message": ""})
    with pytest.raises(NotImplementedError):
        Stub("double", _Records([raised]), called)(x)


def test_changes_made_in_place_are_made_again():
    params = {"W": torch.zeros(2), "b": torch.zeros(1)}
    changes = [{"arg": 0, "dict": {"W": {"tensor": {"data": torch.ones(2), "requires_grad": False,
                                                    "grad": None}},
                                   "b": {"new": encode(torch.full((1,), 5.0))}}, "removed": []}]
    W = params["W"]
    apply_changes(changes, (params,), {})
    assert params["W"] is W and W.equal(torch.ones(2)) and params["b"].item() == 5.0


def test_errors_come_back_as_their_builtin_kind():
    error = rebuild_error({"type": "LinAlgError", "builtin": "RuntimeError", "message": "singular"})
    assert isinstance(error, RuntimeError) and type(error).__name__ == "LinAlgError"
    assert not isinstance(rebuild_error({"type": "KeyboardInterrupt", "builtin": "KeyboardInterrupt",
                                         "message": ""}), KeyboardInterrupt)


def test_the_graders_verdict_decides_nbgrader_s_score():
    """A failure added by the grader counts even when the cell also shows a value (which
    nbgrader would otherwise read as a partial or full score); a pass clears the kernel's
    errors."""
    from nbgrader.utils import determine_grade

    from instructor.grading.preprocessors import _fail, _pass
    cell = nbformat.v4.new_code_cell("report = check()")
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True, "points": 2,
                                 "grade_id": "t", "schema_version": 3}
    cell.outputs = [nbformat.v4.new_output("execute_result", data={"text/plain": "a report"},
                                           execution_count=1)]
    assert determine_grade(cell)[0] == 2
    _fail(cell, "RuleBroken", "tanh_backward must be written by hand")
    assert determine_grade(cell)[0] == 0
    _pass(cell)
    assert determine_grade(cell)[0] == 2


def test_a_submission_is_not_recorded_while_another_grader_seeds_the_gradebook(tmp_path):
    """SQLite: see :func:`gradebooks.record_while_another_grader_seeds`."""
    record_while_another_grader_seeds(f"sqlite:///{tmp_path / 'course.db'}", tmp_path / "scratch.db")


def test_recording_stays_quiet_while_other_threads_silence_their_own_warnings(tmp_path):
    """Grading threads silence warnings of their own (parsing student code) while the main thread
    records new submissions: nbgrader's session warning on a new submission never reaches the
    log, whatever the threads' timing."""
    import threading
    import warnings

    from sqlalchemy.exc import SAWarning

    from instructor.grading import gradebook

    lab, cells, students = "lab", ["test_a", "test_b"], [f"s{i}" for i in range(4)]
    course = seeded_gradebook(f"sqlite:///{tmp_path / 'course.db'}", lab, cells)
    scratch = scratch_gradebook(tmp_path / "scratch.db", lab, cells, students)
    stop = threading.Event()

    def parse_in_a_thread():  # what rules.syntax does around compile() in each grading thread
        while not stop.is_set():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SyntaxWarning)
                stop.wait(0.0005)

    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("default")
        thread = threading.Thread(target=parse_in_a_thread)
        thread.start()
        try:
            scores = [gradebook.record(course, scratch, lab, s).score for s in students]
        finally:
            stop.set()
            thread.join()
    assert scores == [2.0] * len(students)
    leaked = [str(w.message) for w in shown if issubclass(w.category, SAWarning)]
    assert not leaked, leaked[:3]
