"""nbgrader settings for students: what the Validate button shows when a test fails.

nbgrader's dialog shows a failing test cell's whole source and then its whole traceback, so
the line that explains the failure (a checker's diagnosis) ends up below the fold. While
Validate runs, this file's hook shortens both: the test cell to its docstring (only when the
cell is unchanged, and with its checksum updated to match, so that Validate still reports
edited test cells) and the traceback to the error itself. Grading is not affected: the hook
acts only while nbgrader validates.

The course's nbgrader_config.py loads this file; ``kit.py release`` ships it as the student
bundle's nbgrader_config.py. It uses only nbgrader, so it works wherever Validate does.
"""

import os

c = get_config()  # noqa: F821  (provided by nbgrader when it loads this file)

MAX_SOURCE_LINES = 4


def short_test_source(source):
    """A test cell's source cut to its docstring (or first lines), with a note saying so."""
    lines = source.strip().splitlines()
    keep = lines[:MAX_SOURCE_LINES]
    quote = lines[0][:3] if lines and lines[0][:3] in ('"""', "'''") else None
    if quote:  # the docstring, however long its first lines are
        end = next((i for i, line in enumerate(lines) if quote in line[(3 if i == 0 else 0):]),
                   None)
        keep = lines[:end + 1] if end is not None else keep
    if len(keep) >= len(lines):
        return source
    return "\n".join([*keep, f"# ... {len(lines) - len(keep)} more lines: the test's code is in "
                      "this cell of the notebook"])


def show_the_diagnosis(cell=None, cell_index=None, execute_reply=None, **_):
    """nbclient's on_cell_error hook: while validating, a failed test cell keeps only its
    docstring and its error (type and message)."""
    if os.environ.get("NBGRADER_EXECUTION") != "validate":
        return
    from nbgrader.utils import compute_checksum, is_grade, is_solution

    if cell is None or not is_grade(cell) or is_solution(cell):
        return
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            message = str(output.get("evalue", "")).rstrip()
            output["traceback"] = [f"{output.get('ename', 'Error')}: {message}"]
    meta = cell.metadata.nbgrader
    if meta.get("checksum") and meta["checksum"] == compute_checksum(cell):
        cell.source = short_test_source(cell.source)
        meta["checksum"] = compute_checksum(cell)


c.Execute.on_cell_error = show_the_diagnosis
