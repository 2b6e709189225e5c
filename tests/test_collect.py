"""collect accepts nbgrader's layout (a folder) and an LMS zip (nbgrader's zip_collect), and
rejects bad input with a message naming the argument."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from submission_factory import build_course, read_release, read_source, standard_set

from instructor.__main__ import main as kit

pytestmark = pytest.mark.slow
FIXTURE = Path(__file__).parent / "fixtures" / "fixture_lab.ipynb"
LAB = "fixture"


@pytest.fixture()
def course(tmp_path):
    return build_course(tmp_path / "course", LAB, FIXTURE)


def _notebooks(root):
    subs = standard_set(read_release(root, LAB), read_source(root, LAB))
    import nbformat
    return {name: nbformat.writes(nb) for name, nb in subs.items()}


def test_collect_from_a_folder_in_nbgrader_layout(course, tmp_path):
    inbox = tmp_path / "inbox" / "submitted"
    for student, text in _notebooks(course).items():
        (inbox / student / LAB).mkdir(parents=True)
        (inbox / student / LAB / f"{LAB}.ipynb").write_text(text)
    assert kit(["collect", LAB, "--from", str(inbox.parent), "--course-dir", str(course)]) == 0
    got = sorted(p.parent.name for p in (course / "submitted").glob(f"*/{LAB}"))
    assert got == ["blank", "correct", "partial"]
    assert (course / "submitted" / "correct" / LAB / f"{LAB}.ipynb").read_text() == \
        _notebooks(course)["correct"]


def test_collect_from_an_lms_zip(course, tmp_path):
    """Canvas-style names `<student>_<n>_<n>_<file>` (with a resubmission suffix) are sorted
    into submitted/<student>/<lab>/<file>."""
    archive = tmp_path / "export.zip"
    notebooks = _notebooks(course)
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr(f"alice_1234_5678_{LAB}.ipynb", notebooks["correct"])
        z.writestr(f"bob_late_2345_6789_{LAB}-1.ipynb", notebooks["partial"])
    assert kit(["collect", LAB, "--zip", str(archive), "--course-dir", str(course)]) == 0
    assert (course / "submitted" / "alice" / LAB / f"{LAB}.ipynb").read_text() == notebooks["correct"]
    assert (course / "submitted" / "bob" / LAB / f"{LAB}.ipynb").read_text() == notebooks["partial"]


@pytest.mark.parametrize("args, message", [
    (["--from", "/no/such/folder"], "--from: expected a folder"),
    (["--zip", "/no/such.zip"], "--zip: expected a .zip file"),
    (["--zip", __file__], "--zip: expected a .zip file"),
])
def test_collect_rejects_bad_sources(course, capsys, args, message):
    assert kit(["collect", LAB, *args, "--course-dir", str(course)]) == 2
    assert message in capsys.readouterr().err


def test_collect_rejects_a_regexp_without_the_named_groups(course, tmp_path, capsys):
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("x.ipynb", "{}")
    assert kit(["collect", LAB, "--zip", str(archive), "--regexp", r"(\w+)",
                "--course-dir", str(course)]) == 2
    assert "named groups student_id and file_id" in capsys.readouterr().err


def test_commands_reject_a_course_without_config(tmp_path, capsys):
    assert kit(["export", "--course-dir", str(tmp_path)]) == 2
    assert "--course-dir: expected a course folder" in capsys.readouterr().err


def test_collect_renames_a_lone_misnamed_notebook_and_says_so(course, tmp_path, capsys):
    """An LMS zip where one student's only notebook has another name: collect takes it under
    the lab's name (the submission is then graded), says so, and keeps the old name for the
    student's feedback."""
    archive = tmp_path / "export.zip"
    notebooks = _notebooks(course)
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr(f"alice_1234_5678_{LAB}.ipynb", notebooks["correct"])
        z.writestr("bob_2345_6789_my work (1).ipynb", notebooks["partial"])
    assert kit(["collect", LAB, "--zip", str(archive), "--course-dir", str(course)]) == 0
    out = capsys.readouterr().out
    assert "bob: the only notebook was 'my work (1).ipynb'; renamed to fixture.ipynb" in out
    bob = course / "submitted" / "bob" / LAB
    assert sorted(p.name for p in bob.iterdir()) == [f"{LAB}.ipynb"]
    assert (bob / f"{LAB}.ipynb").read_text() == notebooks["partial"]
    record = json.loads((course / "grading" / LAB / "collect.json").read_text())
    assert record["bob"]["renamed_from"] == "my work (1).ipynb" and "alice" not in record

    from instructor.plugins.feedback import collect_notes
    assert "You handed in my work (1).ipynb" in collect_notes(course, LAB, "bob")[0]
    (bob / f"{LAB}.ipynb").write_text(notebooks["blank"])  # replaced since: no note
    assert collect_notes(course, LAB, "bob") == []


def test_collect_reports_what_to_rename_when_it_cannot_choose(course, tmp_path, capsys):
    inbox = tmp_path / "inbox"
    notebooks = _notebooks(course)
    for name in ("draft.ipynb", "final.ipynb"):
        (inbox / "carol" / LAB).mkdir(parents=True, exist_ok=True)
        (inbox / "carol" / LAB / name).write_text(notebooks["correct"])
    (inbox / "dave" / LAB).mkdir(parents=True)
    (inbox / "dave" / LAB / "notes.txt").write_text("I could not finish\n")
    assert kit(["collect", LAB, "--from", str(inbox), "--course-dir", str(course)]) == 0
    out = capsys.readouterr().out
    carol = course / "submitted" / "carol" / LAB
    assert (f"carol: no {LAB}.ipynb but 2 other notebooks (draft.ipynb, final.ipynb): rename "
            f"the one to grade (mv {carol / 'draft.ipynb'} {carol / (LAB + '.ipynb')} or mv "
            f"{carol / 'final.ipynb'} {carol / (LAB + '.ipynb')}) and move the others out of "
            "the folder, then grade") in out
    assert "dave: no notebook at all (found: notes.txt)" in out
    assert "fix the names above" in out
    assert sorted(p.name for p in carol.iterdir()) == ["draft.ipynb", "final.ipynb"]
