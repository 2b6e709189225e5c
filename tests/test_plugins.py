"""What nbgrader_config.py plugs into nbgrader (instructor/plugins/, nbgrader_student_config.py)
and kit.py's JupyterLab modes, each on its own, in-process and fast: the end-to-end runs are in
test_feedback_export.py, test_release.py, test_collect.py and test_browser.py."""

from __future__ import annotations

import copy
import json
import os
import runpy
import subprocess
import sys

import nbformat
import pytest
from nbgrader.utils import compute_checksum
from traitlets.config import PyFileConfigLoader

import kit
from instructor.commands.authoring import code, markdown, notebook, solution, written_answer
from instructor.commands.authoring import tests as graded_test
from instructor.commands.release import student_pyproject
from instructor.grading.outcome import Finding, Outcome
from instructor.plugins import feedback, mathml, release
from labs import ROOT

# ----------------------------------------------------------------------------- configuration


def _course_config():
    return PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()


def test_config_pipeline_is_nbgraders_own_plus_the_kits_two_steps():
    """generate_assignment runs exactly nbgrader's default steps, in order, with the marker
    stripping before the first checksum and the install cell last (a newer nbgrader whose
    defaults changed fails here, not silently)."""
    from nbgrader.converters import GenerateAssignment

    default = [f"nbgrader.preprocessors.{p.__name__}" for p in GenerateAssignment().preprocessors]
    configured = list(_course_config().GenerateAssignment.preprocessors)
    assert configured == release.PIPELINE
    kit_steps = [p for p in configured if p.startswith("instructor.")]
    assert [p for p in configured if p not in kit_steps] == default
    assert configured.index("instructor.plugins.release.StripTestMarkers") < \
        configured.index("nbgrader.preprocessors.ComputeChecksums")
    assert configured[-1] == "instructor.plugins.release.AddInstallCell"


def test_config_names_only_importable_plugins():
    config = _course_config()
    from traitlets.utils.importstring import import_item

    for name in [*config.GenerateAssignment.preprocessors, *config.GenerateFeedback.preprocessors,
                 config.GenerateFeedback.exporter_class, config.ExportApp.plugin_class,
                 *config.HTMLExporter.filters.values()]:
        assert import_item(name) is not None, name
    assert callable(config.Execute.on_cell_error)  # from nbgrader_student_config.py


# ----------------------------------------------------------------------------- release


def test_strip_test_markers_removes_only_marker_lines_of_code_cells():
    nb = notebook([code("# NBVAL_CHECK_OUTPUT\nprint(1)  # NBVAL_CHECK_OUTPUT stays: not alone"),
                   code("x = 1\n  #  NBVAL_IGNORE_OUTPUT  \ny = 2"),
                   markdown("Lines with `# NBVAL_CHECK_OUTPUT` are compared.")])
    strip = release.StripTestMarkers()
    for i, cell in enumerate(nb.cells):
        strip.preprocess_cell(cell, {}, i)
    assert nb.cells[0].source == "print(1)  # NBVAL_CHECK_OUTPUT stays: not alone"
    assert nb.cells[1].source == "x = 1\ny = 2"
    assert nb.cells[2].source == "Lines with `# NBVAL_CHECK_OUTPUT` are compared."


def test_install_cell_goes_first_once_with_a_fixed_id_and_only_where_lab_utils_is_used():
    uses = notebook([code("import lab_utils"), code("x = 1")])
    add = release.AddInstallCell(source="https://example.edu/backprop-lab-kit-student.zip")
    once, _ = add.preprocess(copy.deepcopy(uses), {})
    twice, _ = add.preprocess(copy.deepcopy(once), {})
    assert [c.get("id") for c in once.cells][0] == release.INSTALL_CELL_ID
    assert len(once.cells) == 3 and twice == once
    assert 'LAB_UTILS_SOURCE = "https://example.edu/backprop-lab-kit-student.zip"' in \
        once.cells[0].source
    nbformat.validate(once)
    plain = notebook([code("x = 1")])
    assert add.preprocess(copy.deepcopy(plain), {})[0] == plain


def test_install_cell_code_is_short_valid_python_and_quotes_the_source():
    for source in ["", 'https://x.edu/a b.zip --extra "quoted arg"']:
        text = release.install_cell_source(source)
        compile(text, "install cell", "exec")
        assert f"LAB_UTILS_SOURCE = {json.dumps(source)}" in text
    assert max(len(line) for line in release.install_cell_source("").splitlines()) <= 95
    with pytest.raises(ValueError):
        release.install_cell_source('"unbalanced')


def test_install_cell_without_source_or_bundle_says_what_to_upload(tmp_path):
    """Where lab_utils is missing, no source was set and no bundle zip was uploaded, the cell
    stops with the file to upload (run by a Python that cannot import lab_utils)."""
    script = tmp_path / "cell.py"
    script.write_text(release.install_cell_source(""))
    result = subprocess.run([sys.executable, "-I", "-S", str(script)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "upload backprop-lab-kit-student.zip" in result.stderr, result.stderr[-2000:]


def test_student_pyproject_keeps_jupyter_tools_in_the_lab_extra():
    project = {"name": "kit", "version": "1", "description": "d", "requires-python": ">=3.10",
               "dependencies": ["torch>=2.2", "jupyterlab>=4.2,<5", "nbgrader>=0.9.4,<0.10",
                                "latex2mathml>=3.77", "notebook>=7.2,<8", "tqdm>=4.66"]}
    text = student_pyproject(project)
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    parsed = tomllib.loads(text)["project"]
    assert parsed["dependencies"] == ["torch>=2.2", "tqdm>=4.66"]
    assert parsed["optional-dependencies"]["lab"] == ["jupyterlab>=4.2,<5",
                                                      "nbgrader>=0.9.4,<0.10", "notebook>=7.2,<8"]


# ----------------------------------------------------------------------------- math


def test_markdown_math_becomes_mathml_and_code_stays_code():
    render = mathml.markdown2html
    html = render({}, "Loss $\\ell = -\\log \\hat y$ and\n\n$$\\frac{\\partial \\ell}{\\partial W}$$\n\n"
                      "`$HOME` is not math.")
    assert html.count("<math") == 2 and 'display="block"' in html
    assert "$HOME" in html and "\\frac" not in html


def test_unreadable_tex_is_shown_as_code_not_an_error():
    assert "<code" in mathml.tex_to_mathml("\\frac{", display=False)


# ----------------------------------------------------------------------------- feedback


def _graded_notebook():
    nb = notebook([
        solution("def f(x):\n    return x", "f"),
        graded_test('"""f works."""\nassert f(1) == 1\n### BEGIN HIDDEN TESTS\nassert f(12345) == 12345'
              "\n### END HIDDEN TESTS", "test_visible", points=2),
        graded_test('"""f by hand."""\nassert f(2) == 2', "test_rule", points=1),
        graded_test('"""f on its own."""\nassert f(3) == 3', "test_replay", points=1),
        written_answer("Why?\n\nBecause.", "why", points=1),
    ])
    out = nbformat.v4.new_output
    nb.cells[1].outputs = [out("error", ename="AssertionError", evalue="",
                               traceback=["\x1b[31mAssertionError\x1b[0m",
                                          "---> 4 assert f(12345) == 12345"]),
                           out("stream", name="stdout", text="ran: assert f(12345) == 12345\nok\n")]
    nb.cells[2].outputs = [out("error", ename="RuleBroken", evalue="f uses .backward() (line 2)",
                               traceback=["RuleBroken: f uses .backward() (line 2)"])]
    nb.cells[3].outputs = [out("error", ename="GraderCheckFailed", evalue="f(3) gave 4",
                               traceback=["GraderCheckFailed: f(3) gave 4"])]
    for cell in nb.cells[1:4]:
        cell.execution_count = 1
    return nb


def test_clean_notebook_hides_hidden_tests_and_explains_every_error():
    outcome = Outcome("s", "lab", problems=[Finding("cells_reordered", {
        "notebook": "lab.ipynb", "order": ["test_rule", "test_visible"]})])
    nb = feedback.clean_notebook(_graded_notebook(), outcome, {"why": 1.0}, ["collected note"])
    text = json.dumps(nb)
    assert "12345" not in text and "BEGIN HIDDEN" not in text
    assert feedback.HIDDEN_NOTE in nb.cells[2].source
    summary = nb.cells[0].source
    assert "**test_visible** (2 points): failed: a check did not hold (a hidden test" in summary
    assert "breaks" not in summary and "must follow a rule and does not: f uses .backward()" \
        in summary
    assert "failed when the grader ran it again on its own" in summary and "f(3) gave 4" in summary
    assert "**why** (1 point, written answer): not graded yet" in summary
    assert "reordered" in summary and "collected note" in summary
    assert nb.cells[-1].metadata.nbgrader["kit_not_graded_yet"] is True
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert [o["traceback"] for o in errors] == [
        ["AssertionError: "], ["RuleBroken: f uses .backward() (line 2)"],
        ["GraderCheckFailed: f(3) gave 4"]]


def test_clean_notebook_graded_answer_is_not_marked_pending():
    nb = feedback.clean_notebook(_graded_notebook(), None, {}, [])
    assert "**why** (1 point, written answer): graded by a person" in nb.cells[0].source
    assert "kit_not_graded_yet" not in nb.cells[-1].metadata.nbgrader


# ----------------------------------------------------------------------------- Validate


@pytest.fixture()
def student_config():
    return runpy.run_path(str(ROOT / "nbgrader_student_config.py"),
                          init_globals={"get_config": lambda: __import__("traitlets").config
                                        .Config()})


def _failed_graded_test(source: str):
    cell = graded_test(source, "test_long", points=1)
    cell.metadata.nbgrader["checksum"] = compute_checksum(cell)
    cell.outputs = [nbformat.v4.new_output(
        "error", ename="AssertionError", evalue="\nthe diagnosis",
        traceback=["\x1b[31m---\x1b[0m", "frame 1", "frame 2", "AssertionError: the diagnosis"])]
    return cell


LONG_TEST = '"""What the test checks,\nover two lines."""\n' + "x = 1\n" * 30 + "assert False"


def test_validate_hook_shortens_an_unchanged_failing_test_and_keeps_its_checksum_valid(
        student_config, monkeypatch):
    monkeypatch.setenv("NBGRADER_EXECUTION", "validate")
    cell = _failed_graded_test(LONG_TEST)
    student_config["show_the_diagnosis"](cell=cell, cell_index=0, execute_reply={})
    assert cell.source.splitlines()[:2] == ['"""What the test checks,', 'over two lines."""']
    assert "31 more lines" in cell.source and len(cell.source.splitlines()) == 3
    assert cell.outputs[0]["traceback"] == ["AssertionError: \nthe diagnosis"]
    assert cell.metadata.nbgrader["checksum"] == compute_checksum(cell)


def test_validate_hook_leaves_an_edited_test_for_validate_to_report(student_config, monkeypatch):
    monkeypatch.setenv("NBGRADER_EXECUTION", "validate")
    cell = _failed_graded_test(LONG_TEST)
    cell.source += "\n# edited by the student"
    stored = cell.metadata.nbgrader["checksum"]
    student_config["show_the_diagnosis"](cell=cell, cell_index=0, execute_reply={})
    assert cell.source.endswith("# edited by the student")
    assert cell.metadata.nbgrader["checksum"] == stored != compute_checksum(cell)


def test_validate_hook_does_nothing_while_grading(student_config, monkeypatch):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    cell = _failed_graded_test(LONG_TEST)
    before = copy.deepcopy(cell)
    student_config["show_the_diagnosis"](cell=cell, cell_index=0, execute_reply={})
    assert cell == before


# ----------------------------------------------------------------------------- kit.py lab modes


def test_student_mode_switches_off_instructor_tools_and_the_exchange_without_one():
    config = kit.lab_config(instructor=False, exchange=False)
    disabled = config["labconfig/page_config.json"]["disabledExtensions"]
    assert set(disabled) == {"@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:course-list",
                             "@jupyter/nbgrader:create-assignment",
                             "@jupyter/nbgrader:assignment-list", "@jupyter/nbgrader:menu"}
    servers = config["jupyter_server_config.json"]["ServerApp"]["jpserver_extensions"]
    assert servers == {"nbgrader.server_extensions.formgrader": False,
                       "nbgrader.server_extensions.course_list": False,
                       "nbgrader.server_extensions.assignment_list": False}


def test_student_mode_keeps_the_assignment_list_with_an_exchange():
    config = kit.lab_config(instructor=False, exchange=True)
    disabled = config["labconfig/page_config.json"]["disabledExtensions"]
    assert "@jupyter/nbgrader:assignment-list" not in disabled
    assert "@jupyter/nbgrader:menu" not in disabled and "@jupyter/nbgrader:formgrader" in disabled


def test_instructor_mode_gets_a_local_exchange_only_without_one():
    assert kit.lab_config(instructor=True, exchange=True) == {}
    local = kit.lab_config(instructor=True, exchange=False)
    assert local == {"nbgrader_config.json": {"Exchange": {"root": str(kit.ROOT / "exchange")}}}


def test_the_plugin_ids_exist_in_the_installed_nbgrader_extension():
    """The ids kit.py switches off are nbgrader's real plugin and extension ids."""
    import nbgrader

    static = os.path.join(os.path.dirname(nbgrader.__file__), "labextension", "static")
    bundled = "".join(open(os.path.join(static, f), errors="ignore").read()
                      for f in os.listdir(static) if f.endswith(".js"))
    for plugin in kit.INSTRUCTOR_PLUGINS + kit.EXCHANGE_PLUGINS:
        assert f'"{plugin}"' in bundled or plugin.split(":")[1] in bundled, plugin
    for module in kit.INSTRUCTOR_SERVER_EXTENSIONS + kit.EXCHANGE_SERVER_EXTENSIONS:
        __import__(module)


def test_exchange_probe_reads_nbgraders_configuration(tmp_path, monkeypatch):
    folder = tmp_path / "exchange"
    (tmp_path / "nbgrader_config.py").write_text(f"c = get_config()\nc.Exchange.root = {str(folder)!r}\n")
    monkeypatch.setattr(kit, "ROOT", tmp_path)
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path / "user"))
    assert kit.exchange_ready(sys.executable) is False
    folder.mkdir()
    assert kit.exchange_ready(sys.executable) is True


def test_failure_page_for_a_misnamed_notebook_says_what_happened_and_what_to_do():
    from instructor.commands.feedback import failure_page

    outcome = Outcome("bob", "lab1", status="failed", problems=[Finding(
        "notebook_missing", {"notebook": "lab1.ipynb", "found": ["my work.ipynb"]})])
    page = failure_page("bob", "lab1", outcome)
    assert "We received my work.ipynb but no notebook named lab1.ipynb" in page
    assert "Rename your notebook to lab1.ipynb" in page
    assert "Restart" not in page  # running the notebook again would not help
    crashed = Outcome("eve", "lab1", status="failed", problems=[Finding("kernel_died", {})])
    assert "Restart Kernel and Run All" in failure_page("eve", "lab1", crashed)
