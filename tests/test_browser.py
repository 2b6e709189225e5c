"""The kit as students meet it: JupyterLab started by ``kit.py lab``, driven in a headless
Chromium the way a person clicks. For each lab: the student notebook opens from the file browser
with its nbgrader cells locked or editable as they should be, and Validate fails it; the solution
runs top to bottom through Run All with no error, its plots show as images, and Validate passes
it. Formgrader lists the labs. A screenshot per lab goes to artifacts/browser/ ($KIT_ARTIFACTS).

Needs Debian's chromium and Python Playwright; without them these tests skip, unless
KIT_REQUIRE_BROWSER=1 (CI), where that is a failure. All work happens on copies in a temporary
folder: the repository's notebooks are never opened by the server."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

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

from labs import NOTEBOOKS, ROOT, SOLUTIONS, discover_labs, nbgrader

FIXTURE = ROOT / "tests" / "fixtures" / "fixture_lab.ipynb"
# The kit's labs; while there are none yet, the fixture lab keeps the machinery under test.
LABS = discover_labs() or ["fixture_lab"]
RUN_ALL_TIMEOUT_S = 240     # a lab's Run All (the labs aim for well under 20 s)
VALIDATE_TIMEOUT_S = 300    # nbgrader validate runs the notebook again, server-side
MIN_PLOT_WIDTH_PX = 320     # a plot narrower than this on a laptop screen is hard to read

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _repository_state() -> tuple[dict[str, str], bool]:
    """sha256 of the repository files the course is copied from, and whether a gradebook exists."""
    files = [ROOT / "nbgrader_config.py", FIXTURE, *(SOLUTIONS / lab for lab in LABS),
             *(NOTEBOOKS / lab for lab in LABS)]
    return digest_files(files), (ROOT / "gradebook.db").exists()


@pytest.fixture(scope="module")
def repo_state():
    """The repository's state before anything runs."""
    return _repository_state()


@pytest.fixture(scope="module")
def course(repo_state):
    """A temporary course: copies of nbgrader_config.py and of every lab's folders."""
    with tempfile.TemporaryDirectory(prefix="kit-browser-") as tmp:
        root = Path(tmp) / "course"
        if LABS == ["fixture_lab"]:
            source = Path(tmp) / "fixture" / "solutions" / "fixture_lab"
            source.mkdir(parents=True)
            (source / "fixture_lab.ipynb").write_bytes(FIXTURE.read_bytes())
            (source.parent.parent / "nbgrader_config.py").write_bytes((ROOT / "nbgrader_config.py").read_bytes())
            nbgrader("generate_assignment", "fixture_lab", "--force", cwd=source.parent.parent)
            folders = {"fixture_lab": (source, source.parent.parent / "notebooks" / "fixture_lab")}
        else:
            folders = {lab: (SOLUTIONS / lab, NOTEBOOKS / lab) for lab in LABS}
        yield build_course(root, folders)


@pytest.fixture(scope="module")
def server(course):
    with JupyterServer(course, course.parent / "state") as running:
        yield running


@pytest.fixture(scope="module")
def lab_page(server):
    """One Chromium (fresh profile) showing JupyterLab, shared by all tests of this module."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="kit-chromium-") as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=find_chromium(), headless=True, args=list(CHROMIUM_FLAGS),
            viewport={"width": 1280, "height": 900})
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.set_default_timeout(30_000)
            lab = LabPage(page, server)
            lab.open_lab()
            yield lab
        finally:
            context.close()


def _n_cells(path: Path) -> int:
    return len(json.loads(path.read_text())["cells"])


def _nbgrader_meta(path: Path) -> list[dict]:
    return [c["metadata"].get("nbgrader", {}) for c in json.loads(path.read_text())["cells"]]


@pytest.fixture(scope="module", autouse=True)
def browser_required():
    """Skip (or, with KIT_REQUIRE_BROWSER=1, fail) before any server starts."""
    reason = unavailable_reason()
    if reason:
        if os.environ.get("KIT_REQUIRE_BROWSER") == "1":
            pytest.fail(f"KIT_REQUIRE_BROWSER=1 but the browser tests cannot run: {reason}", pytrace=False)
        pytest.skip(reason)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("lab", LABS)
def test_student_notebook_opens_locked_and_fails_validate(lab, course, lab_page):
    """From the file browser: the blank student notebook shows every cell, read-only exactly
    where nbgrader locked it, typing into a locked cell changes nothing, and Validate fails."""
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

    kind, text = lab_page.validate(panel, timeout=VALIDATE_TIMEOUT_S * 1000)
    assert kind == "failed", f"{lab}: Validate on the blank notebook gave {kind!r}, expected failed:\n{text[:2000]}"
    assert "The following cell failed" in text and "NotImplementedError" in text, text[:2000]
    lab_page.close_current_tab()


@pytest.mark.timeout(900)
@pytest.mark.parametrize("lab", LABS)
def test_solution_runs_all_with_plots_and_passes_validate(lab, course, lab_page):
    """The solution, opened from the file browser and run with Run > Run All: the kernel goes
    idle with every code cell run, no error or warning shows, each plotting cell shows a
    rendered image (not a '<Figure ...>' line), and Validate reports success."""
    path = course / "notebooks" / INSTRUCTOR_COPY / lab / f"{lab}.ipynb"
    panel = lab_page.open_notebook(f"{INSTRUCTOR_COPY}/{lab}/{lab}.ipynb", _n_cells(path))
    seconds = lab_page.run_all(panel, timeout=RUN_ALL_TIMEOUT_S * 1000)
    lab_page.screenshot_pages(panel, artifacts_dir(), f"{lab}-solution")
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

    kind, text = lab_page.validate(panel, timeout=VALIDATE_TIMEOUT_S * 1000)
    assert kind == "success", f"{lab}: Validate on the solution gave {kind!r}:\n{text[:3000]}"
    assert "Success! Your notebook passes all the tests." in text
    lab_page.close_current_tab()


@pytest.mark.timeout(300)
def test_formgrader_lists_the_labs(lab_page):
    """Nbgrader > Formgrader opens and its assignment table lists every lab."""
    listed = lab_page.open_formgrader()
    assert sorted(listed) == sorted(LABS), f"Formgrader lists {listed}, the kit has {LABS}"
    lab_page.page.screenshot(path=str(artifacts_dir() / "formgrader.png"))


def test_repository_files_untouched(repo_state, course):
    """The server only ever saw copies: the repository's lab files are byte for byte unchanged,
    no gradebook appeared in the repository, and Formgrader kept its gradebook in the copy."""
    (before, had_gradebook), (after, has_gradebook) = repo_state, _repository_state()
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"the browser tests changed repository files: {changed}"
    assert has_gradebook == had_gradebook, "a gradebook.db appeared in the repository root"
    assert (course / "gradebook.db").exists(), "Formgrader made no gradebook in the course copy"
