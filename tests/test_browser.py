"""The kit as students and instructors meet it: JupyterLab started by ``kit.py lab`` (a student
server) and ``kit.py lab --instructor`` (an instructor server) on one copy of the course, driven
in one headless Chromium the way a person clicks.

Students: only their tools (Validate; no Formgrader, course list or Create Assignment); for each
lab the student notebook opens from the file browser with its nbgrader cells locked or editable
as they should be, and the solution runs top to bottom through Run All with no error and its
plots shown as images; on a lab of one function (quick to run twice), Validate fails the
student notebook and passes the solution; for Lab 3 with a wrong backward, Validate runs the
whole lab and its dialog shows the checker's diagnosis without scrolling at 1280x800.
(Validate's outcome on every lab's notebooks is checked without a browser, by the grader in
test_grading_labs.py.)
Instructors: the Nbgrader menu with Formgrader, which lists the labs without an exchange warning
and whose "Generate Feedback" button writes the kit's cleaned page (no hidden test, answers not
graded yet said so, math as MathML). Screenshots go to artifacts/browser/ ($KIT_ARTIFACTS): what
each page first shows; with KIT_SCREENSHOTS=all, each solution after Run All a window at a time,
top to bottom, for reading through (a minute of the run).

Needs Debian's chromium and Python Playwright; without them these tests skip, unless
KIT_REQUIRE_BROWSER=1 (CI), where that is a failure. All work happens on copies in a temporary
folder: the repository's notebooks are never opened by the servers. The servers, the course and
the browser are shared by all tests (session fixtures); each test opens what it needs and closes
it, so the tests pass in any order."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import nbformat
import pytest
from browser_support import (
    CHROMIUM_FLAGS,
    FIGURE_AS_TEXT,
    INSTRUCTOR_COPY,
    PLOTTING,
    JupyterServer,
    LabPage,
    artifacts_dir,
    build_course,
    digest_files,
    find_chromium,
    unavailable_reason,
)
from submission_factory import filled, with_solution

from instructor.__main__ import main as kit
from instructor.commands.authoring import markdown, notebook
from labs import NOTEBOOKS, ROOT, SOLUTIONS, discover_labs, nbgrader

FIXTURE = ROOT / "tests" / "fixtures" / "fixture_lab.ipynb"
# The kit's labs; while there are none yet, the fixture lab keeps the machinery under test.
LABS = discover_labs() or ["fixture_lab"]
RUN_ALL_TIMEOUT_S = 240     # a lab's Run All (the labs aim for well under 20 s)
VALIDATE_TIMEOUT_S = 300    # nbgrader validate runs the notebook again, server-side
MIN_PLOT_WIDTH_PX = 320     # a plot narrower than this on a laptop screen is hard to read
VIEWPORT = {"width": 1280, "height": 800}  # a laptop screen
FEEDBACK_LAB = "feedback_lab"  # graded for the Formgrader tests: math, a hidden test, an answer
BUGGY_LAB = "lab3_backprop_mlp"  # Validate with a wrong backward
# Validate's button on a blank notebook and on a solution: the fixture lab, released into the
# course next to the kit's labs (a real lab's Validate is BUGGY_LAB's)
VALIDATE_LAB = "fixture_lab"
# windows of each solution to screenshot after Run All (every one with KIT_SCREENSHOTS=all)
SOLUTION_SCREENSHOTS = 60 if os.environ.get("KIT_SCREENSHOTS") == "all" else 1

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _repository_state() -> tuple[dict[str, str], bool]:
    """sha256 of the repository files the course is copied from, and whether a gradebook exists."""
    files = [ROOT / "nbgrader_config.py", FIXTURE, *(SOLUTIONS / lab for lab in LABS),
             *(NOTEBOOKS / lab for lab in LABS)]
    return digest_files(files), (ROOT / "gradebook.db").exists()


@pytest.fixture(scope="session")
def repo_state():
    """The repository's state before anything runs."""
    return _repository_state()


@pytest.fixture(scope="session")
def course(repo_state):
    """A temporary course: copies of nbgrader_config.py and of every lab's folders, and the
    fixture lab (:data:`VALIDATE_LAB`) released into it."""
    with tempfile.TemporaryDirectory(prefix="kit-browser-") as tmp:
        root = Path(tmp) / "course"
        fixture = Path(tmp) / "fixture"
        (fixture / "solutions" / VALIDATE_LAB).mkdir(parents=True)
        (fixture / "solutions" / VALIDATE_LAB / f"{VALIDATE_LAB}.ipynb").write_bytes(FIXTURE.read_bytes())
        (fixture / "nbgrader_config.py").write_bytes((ROOT / "nbgrader_config.py").read_bytes())
        nbgrader("generate_assignment", VALIDATE_LAB, "--force", cwd=fixture)
        folders = {lab: (SOLUTIONS / lab, NOTEBOOKS / lab) for lab in LABS}
        folders[VALIDATE_LAB] = (fixture / "solutions" / VALIDATE_LAB, fixture / "notebooks" / VALIDATE_LAB)
        yield build_course(root, folders)


@pytest.fixture(scope="session")
def server(course):
    """The student server: ``kit.py lab``, rooted at the course's notebooks/."""
    with JupyterServer(course, course.parent / "state") as running:
        yield running


@pytest.fixture(scope="session")
def instructor_server(course):
    """The instructor server: ``kit.py lab --instructor``, rooted at the course."""
    with JupyterServer(course, course.parent / "state-instructor", instructor=True) as running:
        yield running


@pytest.fixture(scope="session")
def browser(course):
    """One headless Chromium (fresh profile) for all browser tests."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="kit-chromium-") as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=find_chromium(), headless=True, args=list(CHROMIUM_FLAGS),
            viewport=VIEWPORT)
        try:
            yield context
        finally:
            context.close()


def _lab_page(browser, server) -> LabPage:
    page = browser.new_page()
    page.set_default_timeout(30_000)
    lab = LabPage(page, server)
    lab.open_lab()
    return lab


@pytest.fixture(scope="session")
def lab_page(browser, server):
    """The student's JupyterLab tab."""
    yield _lab_page(browser, server)


@pytest.fixture(scope="session")
def instructor_page(browser, instructor_server):
    """The instructor's JupyterLab tab."""
    yield _lab_page(browser, instructor_server)


@pytest.fixture(scope="session")
def feedback_lab(course):
    """A lab graded in the course for Formgrader: the fixture lab with math, two submissions
    (alice answered the written question, bob did not and fails the hidden test), graded by
    nbgrader, and the pages ``kit.py feedback`` wrote for them (student -> bytes)."""
    cells = nbformat.read(FIXTURE, as_version=4).cells
    cells.insert(1, markdown("Math: $\\frac{\\partial \\ell}{\\partial w}$", "math"))
    nb = notebook(cells)
    source = course / "solutions" / FEEDBACK_LAB / f"{FEEDBACK_LAB}.ipynb"
    source.parent.mkdir(parents=True)
    nbformat.write(nb, source)
    nbgrader("generate_assignment", FEEDBACK_LAB, "--force", cwd=course)
    release = nbformat.read(course / "notebooks" / FEEDBACK_LAB / f"{FEEDBACK_LAB}.ipynb", as_version=4)
    correct = with_solution(release, 'def add(a, b):\n    """Return a + b."""\n    return a + b', "add")
    submissions = {"alice": with_solution(correct, "Because $a + b = b + a$.", "why"),
                   "bob": with_solution(release, "def add(a, b):\n    return int(a) + int(b)", "add")}
    for student, submission in submissions.items():
        target = course / "submitted" / student / FEEDBACK_LAB / f"{FEEDBACK_LAB}.ipynb"
        target.parent.mkdir(parents=True)
        nbformat.write(submission, target)
    nbgrader("autograde", FEEDBACK_LAB, "--force", cwd=course)
    assert kit(["feedback", FEEDBACK_LAB, "--course-dir", str(course)]) == 0
    pages = {s: (course / "feedback" / s / FEEDBACK_LAB / f"{FEEDBACK_LAB}.html").read_bytes()
             for s in submissions}
    shutil.rmtree(course / "feedback")
    return pages


def _n_cells(path: Path) -> int:
    return len(json.loads(path.read_text())["cells"])


def _nbgrader_meta(path: Path) -> list[dict]:
    return [c["metadata"].get("nbgrader", {}) for c in json.loads(path.read_text())["cells"]]


@pytest.fixture(scope="session", autouse=True)
def browser_required():
    """Skip (or, with KIT_REQUIRE_BROWSER=1, fail) before any server starts."""
    reason = unavailable_reason()
    if reason:
        if os.environ.get("KIT_REQUIRE_BROWSER") == "1":
            pytest.fail(f"KIT_REQUIRE_BROWSER=1 but the browser tests cannot run: {reason}", pytrace=False)
        pytest.skip(reason)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("lab", LABS)
def test_student_notebook_opens_with_nbgrader_cells_locked(lab, course, lab_page):
    """From the file browser: the blank student notebook shows every cell, read-only exactly
    where nbgrader locked it, and typing into a locked cell changes nothing."""
    path = course / "notebooks" / lab / f"{lab}.ipynb"
    assert path.exists(), f"{lab}: no student notebook notebooks/{lab}/{lab}.ipynb; run `python3 kit.py release`"
    panel = lab_page.open_notebook(f"{lab}/{lab}.ipynb", _n_cells(path))
    cells = lab_page.cells(panel)
    meta = _nbgrader_meta(path)
    assert len(cells) == len(meta), f"{lab}: JupyterLab shows {len(cells)} cells, the file has {len(meta)}"
    wrong = [(i, m.get("grade_id"), "locked" if m.get("locked") else "editable", "read-only" if c["readonly"] else "editable")
             for i, (c, m) in enumerate(zip(cells, meta))
             if m and c["readonly"] is not None and c["readonly"] != bool(m.get("locked"))]
    assert not wrong, f"{lab}: cells whose lock state differs from nbgrader's (index, id, wanted, shown): {wrong}"
    solution_cells = [i for i, m in enumerate(meta) if m.get("solution") and cells[i]["kind"] == "code"]
    assert solution_cells, f"{lab}: the student notebook has no code cell to fill in"
    lab_page.page.screenshot(path=str(artifacts_dir() / f"{lab}.png"))  # what a student first sees
    locked = next((i for i, m in enumerate(meta) if m.get("locked") and cells[i]["kind"] == "code"), None)
    assert locked is not None, f"{lab}: the student notebook has no locked code cell (no tests?)"
    editor = panel.locator(".jp-Cell").nth(locked).locator(".cm-content")
    editor.click()
    lab_page.page.keyboard.press("Control+End")  # CodeMirror renders only the lines in view:
    before = editor.inner_text()                 # compare the same view before and after
    lab_page.page.keyboard.type("x = 1  # typed by a student")
    assert editor.inner_text() == before, f"{lab}: typing changed locked cell {meta[locked]['grade_id']}"
    lab_page.close_current_tab()


def _validate_in_browser(course: Path, lab_page, relative: str) -> tuple[str, str]:
    """Open ``notebooks/<relative>`` from the file browser, press Validate, close it: the
    dialog's kind and text."""
    panel = lab_page.open_notebook(relative, _n_cells(course / "notebooks" / relative))
    kind, text = lab_page.validate(panel, timeout=VALIDATE_TIMEOUT_S * 1000)
    lab_page.close_current_tab()
    return kind, text


@pytest.mark.timeout(600)
def test_validate_fails_the_blank_student_notebook(course, lab_page):
    """Validate on the untouched student notebook: the dialog says it failed, naming the cell
    that raised NotImplementedError."""
    kind, text = _validate_in_browser(course, lab_page, f"{VALIDATE_LAB}/{VALIDATE_LAB}.ipynb")
    assert kind == "failed", f"Validate on the blank notebook gave {kind!r}, expected failed:\n{text[:2000]}"
    assert "The following cell failed" in text and "NotImplementedError" in text, text[:2000]


@pytest.mark.timeout(600)
def test_validate_passes_the_solution(course, lab_page):
    """Validate on the solution: the dialog reports success."""
    kind, text = _validate_in_browser(
        course, lab_page, f"{INSTRUCTOR_COPY}/{VALIDATE_LAB}/{VALIDATE_LAB}.ipynb")
    assert kind == "success", f"Validate on the solution gave {kind!r}:\n{text[:3000]}"
    assert "Success! Your notebook passes all the tests." in text


@pytest.mark.timeout(900)
@pytest.mark.parametrize("lab", LABS)
def test_solution_runs_all_with_plots(lab, course, lab_page):
    """The solution, opened from the file browser and run with Run > Run All: the kernel goes
    idle with every code cell run, no error or warning shows, and each plotting cell shows a
    rendered image (not a '<Figure ...>' line)."""
    path = course / "notebooks" / INSTRUCTOR_COPY / lab / f"{lab}.ipynb"
    panel = lab_page.open_notebook(f"{INSTRUCTOR_COPY}/{lab}/{lab}.ipynb", _n_cells(path))
    seconds = lab_page.run_all(panel, timeout=RUN_ALL_TIMEOUT_S * 1000)
    lab_page.screenshot_pages(panel, artifacts_dir(), f"{lab}-solution",
                              max_pages=SOLUTION_SCREENSHOTS)
    cells = lab_page.cells(panel)
    sources = [("".join(c["source"]), c["cell_type"]) for c in json.loads(path.read_text())["cells"]]
    unrun = [i for i, c in enumerate(cells) if c["kind"] == "code" and sources[i][0].strip()
             and not any(ch.isdigit() for ch in c["prompt"])]
    errors = [(i, e[-800:]) for i, c in enumerate(cells) for e in c["errors"]]
    assert not errors, f"{lab}: cells show errors after Run All: {errors}"
    assert not unrun, (f"{lab}: code cells not run after Run All ({seconds:.0f} s): {unrun}\n"
                       f"dialog: {lab_page.dialog_text()!r}\nserver log:\n{lab_page.server.log()[-3000:]}")
    warnings = [(i, s[-400:]) for i, c in enumerate(cells) for s in c["stderr"] if "warn" in s.lower()]
    assert not warnings, f"{lab}: warnings a student sees: {warnings}"
    as_text = [i for i, c in enumerate(cells) if FIGURE_AS_TEXT.search(c["output"])]
    assert not as_text, f"{lab}: cells print a figure's repr instead of (or besides) showing it: {as_text}"
    plotting = [i for i, (source, kind) in enumerate(sources) if kind == "code" and PLOTTING.search(source)]
    missing = [i for i in plotting if not any(img["natural"] > 0 for img in cells[i]["images"])]
    assert not missing, f"{lab}: plotting cells without a rendered image: {missing}"
    small = [(i, img["shown"]) for i, c in enumerate(cells) for img in c["images"] if img["shown"] < MIN_PLOT_WIDTH_PX]
    assert not small, f"{lab}: images narrower than {MIN_PLOT_WIDTH_PX} px on screen (cell, px): {small}"
    lab_page.close_current_tab()


def _is_subset_listing(listed: list[str]) -> bool:
    return set(LABS) <= set(listed) <= set(LABS) | {FEEDBACK_LAB, VALIDATE_LAB}


@pytest.mark.timeout(300)
def test_student_mode_shows_only_what_students_use(course, lab_page):
    """``kit.py lab``: no Nbgrader menu (Formgrader, Course List, Create Assignment), no "Create
    Assignment" side panel, no Formgrader on the server; the Validate button is there."""
    menus = lab_page.menu_bar()
    assert "Nbgrader" not in menus, f"students see the Nbgrader menu: {menus}"
    tabs = lab_page.sidebar_tabs()
    assert not [t for t in tabs if "assignment" in t.lower()], f"side bar tabs: {tabs}"
    path = course / "notebooks" / VALIDATE_LAB / f"{VALIDATE_LAB}.ipynb"
    panel = lab_page.open_notebook(f"{VALIDATE_LAB}/{VALIDATE_LAB}.ipynb", _n_cells(path))
    assert panel.locator(".validate-button").count() == 1, "no Validate button"
    lab_page.page.screenshot(path=str(artifacts_dir() / "student-mode.png"))
    lab_page.close_current_tab()
    for path in ("formgrader", "formgrader/api/assignments", "courses"):
        with pytest.raises(OSError, match="404|403"):
            lab_page.server.fetch(path)


@pytest.mark.timeout(600)
def test_validate_dialog_shows_the_diagnosis_without_scrolling(course, lab_page):
    """Lab 3 answered in full with a backward that forgot to divide by the batch size: Validate's
    dialog shows the gradient checker's diagnosis ("likely: ...") on screen at 1280x800 without
    scrolling, and each failed cell's table once."""
    if BUGGY_LAB not in LABS:
        pytest.skip(f"no {BUGGY_LAB} in this kit")
    release = nbformat.read(course / "notebooks" / BUGGY_LAB / f"{BUGGY_LAB}.ipynb", as_version=4)
    source = nbformat.read(course / "solutions" / BUGGY_LAB / f"{BUGGY_LAB}.ipynb", as_version=4)
    buggy = filled(release, source)
    for cell in buggy.cells:
        if cell.cell_type == "markdown" and cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = "My answer, in my own words."  # every written answer given
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "backward":
            assert " / B" in cell.source, "the lab's backward changed: update this test's bug"
            cell.source = cell.source.replace(" / B", "")
    name = f"{BUGGY_LAB}_buggy_backward.ipynb"
    nbformat.write(buggy, course / "notebooks" / BUGGY_LAB / name)
    panel = lab_page.open_notebook(f"{BUGGY_LAB}/{name}", len(buggy.cells))
    shot = artifacts_dir() / "validate-buggy-backward.png"
    kind, text, box = lab_page.validate_and_locate(panel, "likely:", screenshot=shot,
                                                   timeout=VALIDATE_TIMEOUT_S * 1000)
    lab_page.close_current_tab()
    assert kind == "failed", f"Validate gave {kind!r}:\n{text[:3000]}"
    flowing = " ".join(text.split())  # the table wraps its hints
    assert "likely:" in flowing and "divide it by the batch" in flowing, text[:3000]
    assert "top" in box, f"the diagnosis is not in the dialog: {box}\n{text[:3000]}"
    assert box["bodyScroll"] == 0
    assert 0 <= box["bodyTop"] <= box["top"] and box["bottom"] <= min(box["bodyBottom"],
                                                                       box["window"]), (
        f"the diagnosis is drawn at y={box['top']:.0f}..{box['bottom']:.0f}, below the visible "
        f"part of the dialog (ends at {box['bodyBottom']:.0f}, window {box['window']}): {shot}")
    header = "backward() step by step against autograd: FAILED"
    failed_cells = text.split("The following cell failed:")[1:]
    assert sum(header in cell for cell in failed_cells) >= 1, text[:3000]
    assert all(cell.count(header) <= 1 for cell in failed_cells), text[:3000]  # once per cell


@pytest.mark.timeout(300)
def test_instructor_mode_has_formgrader_without_exchange_warnings(instructor_page):
    """``kit.py lab --instructor`` in a plain local course: the Nbgrader menu has Formgrader, the
    course list and Create Assignment; Formgrader lists the labs without an exchange or course
    warning, and the server log has no "Unwritable directory"."""
    commands = instructor_page.menu_commands("Nbgrader")
    for wanted in ("nbgrader:open-formgrader", "nbgrader:open-course-list",
                   "nbgrader:open-create-assignment", "nbgrader:open-assignment-list"):
        assert wanted in commands, f"Nbgrader menu: {commands}"
    listed = instructor_page.open_formgrader()
    assert _is_subset_listing(listed), f"Formgrader lists {listed}, the kit has {LABS}"
    frame = instructor_page.formgrader()
    warnings = frame.locator("#warning-exchange, #warning-course-id, #warning-windows")
    assert warnings.count() == 0, warnings.all_inner_texts()
    instructor_page.page.screenshot(path=str(artifacts_dir() / "formgrader.png"))
    assert "Unwritable directory" not in instructor_page.server.log()
    instructor_page.close_current_tab()


@pytest.mark.timeout(600)
def test_formgrader_generate_feedback_writes_the_kits_cleaned_page(course, instructor_page,
                                                                   feedback_lab):
    """Formgrader's "Generate Feedback" button writes exactly the page ``kit.py feedback``
    writes: no hidden test, the results section, "not graded yet" for alice's written answer
    (a person has not graded it), math as MathML. Formgrader itself shows math as MathML."""
    instructor_page.open_formgrader()
    message = instructor_page.generate_feedback_in_formgrader(FEEDBACK_LAB, timeout=240_000)
    assert "Successfully generated feedback" in message, message[-3000:]
    instructor_page.close_current_tab()
    pages = {s: course / "feedback" / s / FEEDBACK_LAB / f"{FEEDBACK_LAB}.html" for s in feedback_lab}
    for student, kit_page in feedback_lab.items():
        assert pages[student].read_bytes() == kit_page, f"{student}: Formgrader's page differs"
        text = pages[student].read_text()
        assert "add(2.5, 0.5)" not in text and "Autograder results" in text
        assert "<math" in text and "\\frac" not in text[text.find("<body"):]
    alice = re.sub(r"<[^>]+>", " ", pages["alice"].read_text())
    assert "not graded yet" in alice and "Score: 0.0 / 1.0" not in alice
    page = instructor_page.page
    page.goto(pages["alice"].as_uri())
    page.screenshot(path=str(artifacts_dir() / "feedback-page.png"), full_page=True)
    notebooks = json.loads(instructor_page.server.fetch(
        f"formgrader/api/submitted_notebooks/{FEEDBACK_LAB}/{FEEDBACK_LAB}"))
    alice = next(n["id"] for n in notebooks if n["student"] == "alice")
    view = instructor_page.server.fetch(f"formgrader/submissions/{alice}/").decode()
    assert "<math" in view and "$\\frac" not in view, "Formgrader's grading view shows raw TeX"


def test_repository_files_untouched(repo_state, course):
    """The server only ever saw copies: the repository's lab files are byte for byte unchanged,
    no gradebook appeared in the repository, and Formgrader kept its gradebook in the copy."""
    (before, had_gradebook), (after, has_gradebook) = repo_state, _repository_state()
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"the browser tests changed repository files: {changed}"
    assert has_gradebook == had_gradebook, "a gradebook.db appeared in the repository root"
