"""Labs 1 and 2 as the instructors asked for them: every graded test can be replayed by the
grader, correct solutions in other styles (float32 ones included) pass, wrong ones fail with
messages that show the difference, by-hand functions cannot lean on autograd, and each lab
carries its hints, rubrics, rules and a points table that adds up.

The behavioural tests run the notebooks' cells in this process (``notebook_harness``), without a
kernel; ``test_labs.py`` runs the same notebooks through nbgrader and nbval."""

from __future__ import annotations

import ast
import re
import sys
import time

import pytest
from notebook_harness import (
    SOLUTION_REGION,
    Lab,
    builtin_names,
    is_context_cell,
    is_plain,
    is_solution_cell,
    nbgrader_meta,
    referenced_globals,
    replay_verdicts,
    run_context,
    run_tests,
    same_verdict,
    top_level_names,
)
from submissions_1_2 import ALTERNATIVES, CHEATS, MISTAKES

from labs import solution_path

LAB1, LAB2 = "lab1_chain_rule", "lab2_dynamic_programming"
LABS = [LAB1, LAB2]
lab_param = pytest.mark.parametrize("lab", LABS)

BY_HAND = {
    LAB1: {"d_tanh", "d_sigmoid", "d_exp", "d_log", "d_square", "central_difference",
           "chain_derivative", "chain_jacobian", "path_sum_derivative", "reuse_derivative",
           "reverse_derivative", "affine_jacobians"},
    LAB2: {"adjoints_tab", "adjoints_memo", "adjoints_all_paths"},
}


@pytest.fixture(autouse=True)
def _recursion_limit_restored():
    """Submissions may change the recursion limit; the next test starts from the usual one."""
    limit = sys.getrecursionlimit()
    yield
    sys.setrecursionlimit(limit)


def load(lab: str) -> Lab:
    return Lab(solution_path(lab))


def solution_cells_by_function(lab: Lab) -> dict[str, object]:
    return {name: cell for cell in lab.cells if is_solution_cell(cell)
            for name in top_level_names(cell.source)}


# ------------------------------------------------------------------ structure


@lab_param
def test_by_hand_functions_declare_the_rule(lab):
    """The functions that must be written by hand carry "kit": {"rules": ["by_hand"]} in their
    solution cell's metadata, and no other solution cell claims a rule."""
    cells = solution_cells_by_function(load(lab))
    missing = sorted(name for name in BY_HAND[lab] if name not in cells)
    assert not missing, f"{lab}: no solution cell defines {missing}"
    wrong = {name: cell.metadata.get("kit") for name, cell in cells.items()
             if (cell.metadata.get("kit") == {"rules": ["by_hand"]}) != (name in BY_HAND[lab])}
    assert not wrong, f"{lab}: rules differ from the by-hand list: {wrong}"


@lab_param
def test_every_graded_function_has_a_collapsible_hint_below_it(lab):
    """The cell after each solution code cell is a markdown <details> hint, one or two levels
    deep, that gives no code block."""
    cells = load(lab).cells
    for i, cell in enumerate(cells):
        if not is_solution_cell(cell):
            continue
        name = top_level_names(cell.source)[0]
        below = cells[i + 1]
        text = below.source
        assert below.cell_type == "markdown" and text.startswith("<details>"), (
            f"{lab}: no hint right below {name}")
        depth = text.count("<details>")
        assert 1 <= depth <= 2 and depth == text.count("</details>"), (name, depth)
        assert text.count("<summary>") == depth and "```" not in text, name


@lab_param
def test_written_questions_sit_in_locked_cells_with_separate_answers_and_rubrics(lab):
    """Each manually graded answer cell follows a locked markdown cell asking the question; the
    answer cell holds nothing but the solution region, which gives a model answer and a rubric
    whose points match the cell's."""
    cells = load(lab).cells
    answers = [i for i, c in enumerate(cells) if c.cell_type == "markdown"
               and nbgrader_meta(c).get("grade") and nbgrader_meta(c).get("solution")]
    assert answers, f"{lab} has no written question"
    for i in answers:
        answer, question = cells[i], cells[i - 1]
        grade_id = nbgrader_meta(answer)["grade_id"]
        meta = nbgrader_meta(question)
        assert question.cell_type == "markdown" and meta.get("locked") and not meta.get("grade"), (
            f"{grade_id}: the cell before the answer is not a locked markdown question")
        points = nbgrader_meta(answer)["points"]
        assert re.search(rf"\*\*(Reflection|Question) \({points:g} points?\)\.\*\*",
                         question.source), f"{grade_id}: the question does not state its points"
        outside = SOLUTION_REGION.sub("", answer.source).strip()
        assert outside == "", f"{grade_id}: the answer cell holds more than its solution: {outside!r}"
        inside = SOLUTION_REGION.search(answer.source).group(1)
        assert "**Model answer.**" in inside, grade_id
        assert f"**Rubric ({points:g} point" in inside, f"{grade_id}: no rubric for {points} points"


def _points_by_part(lab: Lab) -> dict[str, float]:
    part, points = None, {}
    for cell in lab.cells:
        if cell.cell_type == "markdown":
            heading = re.match(r"## Part (\d+)", cell.source)
            if heading:
                part = heading.group(1)
        meta = nbgrader_meta(cell)
        if meta.get("grade"):
            points[part] = points.get(part, 0) + meta["points"]
    return points


@lab_param
def test_the_points_table_adds_up(lab):
    """The introduction's table gives each part the points of its graded cells, and the total."""
    nb = load(lab)
    intro = nb.cells[0].source
    rows = [line.split("|")[1:-1] for line in intro.splitlines() if line.startswith("| ")]
    header = [h.strip() for h in rows[0]]
    points_column = header.index("Points")
    table: dict[str, float] = {}
    total = None
    for row in rows[1:]:
        first, value = row[0].strip(), row[points_column].strip()
        if "**Total**" in row[1] or "**Total**" in first:
            total = float(re.search(r"\d+", value).group())
        elif first.isdigit():
            table[first] = table.get(first, 0) + float(value)
    actual = _points_by_part(nb)
    assert table == actual, f"{lab}: the table says {table}, the cells give {actual}"
    assert total == sum(actual.values()), f"{lab}: total {total}, cells {sum(actual.values())}"


@lab_param
def test_core_parts_fit_two_hours_and_optional_parts_come_last(lab):
    """The table gives a time per part; the parts not marked optional add up to two hours at
    most, and every optional part comes after all core parts."""
    intro = load(lab).cells[0].source
    rows = [line.split("|")[1:-1] for line in intro.splitlines() if line.startswith("| ")]
    header = [h.strip() for h in rows[0]]
    parts = [row for row in rows[1:] if row[0].strip().isdigit()]
    core_minutes = sum(int(re.search(r"(\d+) min", row[header.index("Time")]).group(1))
                       for row in parts if "ptional" not in row[1])
    assert core_minutes <= 120, f"{lab}: the core takes {core_minutes} min"
    optional = ["ptional" in row[1] for row in parts]
    assert optional == sorted(optional), f"{lab}: an optional part comes before a core part"


@lab_param
def test_labs_run_on_the_cpu_and_draw_seeded_numbers(lab):
    """No code cell picks or uses a device (so no float64 tensor can land on an MPS device), and
    every torch random draw takes a seeded generator."""
    for cell in load(lab).cells:
        if cell.cell_type != "code":
            continue
        tree = ast.parse(cell.source)
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword):
                assert node.arg != "device", f"{lab}: a cell passes device=: {cell.source[:80]}"
            if isinstance(node, (ast.Name, ast.Attribute)):
                name = node.id if isinstance(node, ast.Name) else node.attr
                assert name not in {"get_device", "cuda", "mps", "set_default_device"}, name
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in {"rand", "randn", "randint", "randperm", "normal"}):
                assert any(k.arg == "generator" for k in node.keywords), (
                    f"{lab}: an unseeded draw in {cell.source[:80]!r}")


@lab_param
def test_locked_context_cells_are_cheap_plot_free_and_never_call_graded_functions(lab):
    """The locked code cells that are not tests run without the graded functions, in well
    under a second, without plotting, and give the same values twice."""
    nb = load(lab)
    for cell in nb.cells:
        if is_context_cell(cell):
            assert not re.search(r"\bplt\b|\bplot_\w+\(|matplotlib", cell.source), (
                f"{lab}: a locked context cell plots: {cell.source[:80]}")
    run_context(nb)  # imports paid once
    start = time.perf_counter()
    first = run_context(nb)
    seconds = time.perf_counter() - start
    assert seconds < 0.5, f"{lab}: the context cells take {seconds:.2f} s"
    assert not nb.graded_names & set(first), "a context cell binds a graded function's name"
    second = run_context(nb)
    plain = {k: v for k, v in first.items() if is_plain(v) and not k.startswith("__")}
    assert repr(plain) == repr({k: second[k] for k in plain}), f"{lab}: context not deterministic"


@lab_param
def test_test_cells_open_with_a_docstring_define_nothing_and_use_only_allowed_names(lab):
    """Every test cell starts with a docstring, defines no function or class, and reads only
    names bound by the locked context cells, the graded functions and builtins."""
    nb = load(lab)
    allowed = set(run_context(nb)) | nb.graded_names | builtin_names()
    for grade_id, source in nb.tests.items():
        tree = ast.parse(source)
        first = tree.body[0]
        assert isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and \
            isinstance(first.value.value, str), f"{grade_id}: no docstring"
        defined = [n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
        assert not defined, f"{grade_id} defines {defined}: put helpers in the helpers cell"
        unknown = referenced_globals(source) - allowed
        assert not unknown, f"{grade_id} uses names no locked cell binds: {sorted(unknown)}"
        assert not isinstance(tree.body[-1], ast.Expr) or isinstance(tree.body[-1].value, ast.Call), (
            f"{grade_id} ends with an expression")


# ------------------------------------------------------------------ behaviour


def _assert_replayable(results, what):
    for grade_id, (in_kernel, replayed, not_plain) in results.items():
        assert same_verdict(in_kernel, replayed), (
            f"{what}, {grade_id}: the kernel says {in_kernel[:300]!r}, "
            f"the replay says {replayed[:300]!r}")
        assert not not_plain, f"{what}, {grade_id}: non-plain data crosses: {not_plain}"


@pytest.mark.slow
@lab_param
def test_solution_passes_and_blank_fails_every_test_cell_in_the_grader_replay_too(lab):
    """In the kernel and in the grader's replay alike, the solution passes every test cell and
    the blank student version fails every one; only plain data crosses the boundary."""
    nb = load(lab)
    solved = replay_verdicts(nb)
    _assert_replayable(solved, "solution")
    failed = {k: v[0] for k, v in solved.items() if v[0] != "passed"}
    assert not failed, failed
    blank = replay_verdicts(nb, blank=True)
    _assert_replayable(blank, "blank")
    passed = [k for k, v in blank.items() if v[0] == "passed"]
    assert not passed, f"blank notebook passes {passed}"


def _replacement(lab: Lab, sources: dict[str, str]) -> dict[str, str]:
    """grade_id -> source, for submitted function sources keyed by function name."""
    cells = solution_cells_by_function(lab)
    return {nbgrader_meta(cells[name])["grade_id"]: source for name, source in sources.items()}


def _tests_of(lab: Lab, names) -> set[str]:
    return {grade_id for grade_id, source in lab.tests.items()
            if any(re.search(rf"\b{name}\b", source) for name in names)}


@pytest.mark.slow
@pytest.mark.parametrize("lab, name", [(lab, name) for lab in LABS for name in ALTERNATIVES[lab]])
def test_correct_solutions_in_other_styles_pass(lab, name):
    """Correct solutions written differently (float32 arithmetic, other formulas, other
    loops) pass every test of the functions they replace, in the kernel and in the replay."""
    nb = load(lab)
    sources = ALTERNATIVES[lab][name]
    results = replay_verdicts(nb, _replacement(nb, sources))
    _assert_replayable(results, name)
    failed = {k: v[0][:400] for k, v in results.items() if v[0] != "passed"}
    assert not failed, failed


@pytest.mark.slow
@pytest.mark.parametrize("lab, name", [(lab, name) for lab in LABS for name in MISTAKES[lab]])
def test_wrong_solutions_fail_with_a_message_that_shows_the_difference(lab, name):
    """A solution with a typical mistake fails the tests it should (and those only), and the
    message says what was expected and what came, in digits that differ."""
    nb = load(lab)
    mistake = MISTAKES[lab][name]
    results = run_tests(nb, _replacement(nb, mistake["sources"]))
    failed = {k for k, v in results.items() if v != "passed"}
    assert failed == set(mistake["fails"]), (
        f"{name}: failed {sorted(failed)}, expected {sorted(mistake['fails'])}:\n"
        + "\n".join(f"{k}: {results[k][:300]}" for k in sorted(failed)))
    for grade_id in mistake["fails"]:
        message = results[grade_id]
        for pattern in mistake.get("message", []):
            assert re.search(pattern, message), f"{grade_id}: {pattern!r} not in {message!r}"
        numbers = mistake.get("differ")
        if numbers:
            found = re.search(numbers, message)
            assert found and found.group(1) != found.group(2), (
                f"{grade_id}: expected two different numbers in {message!r}")


@pytest.mark.slow
@pytest.mark.parametrize("lab, name", [(lab, name) for lab in LABS for name in CHEATS[lab]])
def test_by_hand_functions_that_use_autograd_fail(lab, name):
    """A by-hand function that gets its derivative from autograd (lab_utils' helper,
    torch.autograd, .backward()) fails its tests: autograd is switched off while it runs."""
    nb = load(lab)
    sources = CHEATS[lab][name]
    results = run_tests(nb, _replacement(nb, sources), only=_tests_of(nb, sources))
    assert results and all("used autograd" in v for v in results.values()), results
