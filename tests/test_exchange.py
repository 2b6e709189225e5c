"""nbgrader's exchange end to end, without JupyterHub: a real exchange folder and five students who
are five Unix users (their names come from a private /etc/passwd, which is how nbgrader tells
students apart: by the user running it).

The instructor releases the fixture lab; each student fetches it, works and submits (through
the code behind JupyterLab's Assignments tab, all students at once): a correct,
a partial and a blank notebook, one student submits twice (blank, then correct), one submits a
correct notebook after the due date. ``kit.py collect --exchange`` takes each student's latest
submission, ``kit.py grade`` grades them with nbgrader's "zero" late penalty, ``kit.py feedback``
writes the pages and ``nbgrader release_feedback`` puts them in the exchange. Each student fetches
their own page, and cannot list the exchange's inbound or feedback folders or read another
student's files.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import nbformat
import pytest
from servers import as_user, can_switch_users
from submission_factory import read_release, with_solution

from instructor.__main__ import main as kit
from labs import ROOT, make_course, nbgrader

pytestmark = pytest.mark.slow
FIXTURE = Path(__file__).parent / "fixtures" / "fixture_lab.ipynb"
LAB = "fixture"
COURSE = "backprop"
FIRST_UID = 61001
PYTHON = (sys.base_prefix, sys.prefix, str(ROOT))  # what a student's process must reach
WORK = {"alice": ["correct"], "bob": ["partial"], "carol": ["blank"],
        "dave": ["blank", "correct"], "erin": ["correct"]}  # erin hands in after the due date
ON_TIME, LATE = ["alice", "bob", "carol", "dave"], "erin"
CORRECT = 'def add(a, b):\n    """Return a + b."""\n    return a + b'
PARTIAL = "def add(a, b):\n    return int(a) + int(b)"  # the hidden test adds 2.5 and 0.5


def free_uids(count: int) -> list[int]:
    import pwd
    uids, uid = [], FIRST_UID
    while len(uids) < count:
        try:
            pwd.getpwuid(uid)
        except KeyError:
            uids.append(uid)
        uid += 1
    return uids


class Exchange:
    """The exchange folder, the students' homes and identities, and the way to act as each."""

    def __init__(self, folder: Path, course: Path):
        self.folder, self.course = folder, course
        self.root = folder / "exchange"
        self.root.mkdir()
        self.root.chmod(0o777)  # as nbgrader's docs ask: every user may create files in it
        self.uids = dict(zip(WORK, free_uids(len(WORK))))
        etc = folder / "etc"
        etc.mkdir()
        passwd = Path("/etc/passwd").read_text().rstrip("\n").splitlines()
        group = Path("/etc/group").read_text().rstrip("\n").splitlines()
        for name, uid in self.uids.items():
            home = self.home(name)
            home.mkdir(parents=True)
            os.chown(home, uid, uid)
            home.chmod(0o700)
            passwd.append(f"{name}:x:{uid}:{uid}:{name}:{home}:/bin/sh")
            group.append(f"{name}:x:{uid}:")
        for name in self.uids:  # what a hub's image puts in /etc/jupyter for every student
            config = self.home(name) / ".jupyter" / "nbgrader_config.py"
            config.parent.mkdir()
            config.write_text(f'c = get_config()\nc.CourseDirectory.course_id = "{COURSE}"\n'
                              f'c.Exchange.root = "{self.root}"\n')
            for path in (config.parent, config):
                os.chown(path, self.uids[name], self.uids[name])
        self.passwd, self.group = etc / "passwd", etc / "group"
        self.passwd.write_text("\n".join(passwd) + "\n")
        self.group.write_text("\n".join(group) + "\n")
        for path in (self.passwd, self.group):
            path.chmod(0o644)

    def home(self, name: str) -> Path:
        return self.folder / "home" / name

    def run(self, name: str, argv: list[str], *, stdin: str | None = None,
            check: bool = True) -> subprocess.CompletedProcess:
        """``argv`` as student ``name``, in their home, with their environment."""
        env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(self.home(name)),
               "USER": name, "LOGNAME": name, "LANG": "C.UTF-8"}
        command = as_user(argv, passwd=self.passwd, group=self.group, uid=self.uids[name],
                          stash=self.folder / "stash", reach=PYTHON)
        result = subprocess.run(command, cwd=self.home(name), env=env, input=stdin,
                                capture_output=True, text=True, timeout=300)
        if check and result.returncode != 0:
            raise AssertionError(f"{name}: {' '.join(argv)} failed ({result.returncode}):\n"
                                 f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
        return result

    def act(self, name: str, steps: list[list[str]]) -> subprocess.Popen:
        """Start student ``name`` doing ``steps`` (see :data:`STUDENT`) in one process."""
        env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(self.home(name)),
               "USER": name, "LOGNAME": name, "LANG": "C.UTF-8"}
        command = as_user([sys.executable, "-c", STUDENT, COURSE, LAB], passwd=self.passwd,
                          group=self.group, uid=self.uids[name], stash=self.folder / "stash",
                          reach=PYTHON)
        process = subprocess.Popen(command, cwd=self.home(name), env=env, stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        process.stdin.write(json.dumps(steps))
        process.stdin.close()
        return process

    def together(self, plan: dict[str, list[list[str]]]) -> None:
        """The students of ``plan`` each do their steps, all at the same time."""
        running = {name: self.act(name, steps) for name, steps in plan.items()}
        for name, process in running.items():
            output = process.stdout.read()
            assert process.wait(timeout=600) == 0, f"{name}:\n{output[-3000:]}"

    def can_read(self, name: str, path: Path, *, listing: bool = False) -> bool:
        action = "os.listdir(p)" if listing else "open(p).read()"
        probe = self.run(name, [sys.executable, "-c", f"import os, sys\np = sys.argv[1]\n"
                                f"try:\n    {action}\nexcept PermissionError:\n    sys.exit(3)",
                                str(path)], check=False)
        assert probe.returncode in (0, 3), probe.stderr
        return probe.returncode == 0


# A student at work, through the code behind JupyterLab's Assignments tab (nbgrader's
# assignment_list server extension): steps on stdin, e.g. [["fetch"], ["write", "<notebook>"],
# ["submit"], ["fetch_feedback"]]; each submission a second after the one before.
STUDENT = """
import json, pathlib, sys, time
from nbgrader.server_extensions.assignment_list.handlers import AssignmentList
course, lab = sys.argv[1:]
tab = AssignmentList()
tab.root_dir = str(pathlib.Path.cwd())
for step in json.loads(sys.stdin.read()):
    if step[0] == "write":
        pathlib.Path(lab, lab + ".ipynb").write_text(step[1])
        continue
    action = {"fetch": tab.fetch_assignment, "submit": tab.submit_assignment,
              "fetch_feedback": tab.fetch_feedback}[step[0]]
    reply = action(course, lab)
    if not reply["success"]:
        sys.exit(f"{step[0]} failed: {reply['value']}")
    if step[0] == "submit":
        time.sleep(1.1)
"""


def _skip_reason() -> str | None:
    return can_switch_users()


@pytest.fixture(scope="module")
def term(tmp_path_factory):
    """The whole term: release, fetch, work, submit, collect, grade, feedback, release_feedback."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    folder = Path(tempfile.mkdtemp(prefix="kit-exchange-"))
    folder.chmod(0o755)
    try:
        course = make_course(tmp_path_factory.mktemp("exchange") / "course", {LAB: FIXTURE})
        with open(course / "nbgrader_config.py", "a") as config:
            config.write(f'\nc.CourseDirectory.course_id = "{COURSE}"\n'
                         f'c.Exchange.root = "{folder / "exchange"}"\n'
                         'c.LateSubmissionPlugin.penalty_method = "zero"\n')
        exchange = Exchange(folder, course)
        assert kit(["release", LAB, "--no-bundle", "--course-dir", str(course)]) == 0
        nbgrader("release_assignment", LAB, "--force", cwd=course)
        release = read_release(course, LAB)
        versions = {"correct": with_solution(release, CORRECT, "add"),
                    "partial": with_solution(release, PARTIAL, "add"), "blank": release}
        versions = {k: nbformat.writes(v) for k, v in versions.items()}
        db_url = f"sqlite:///{course / 'gradebook.db'}"

        def hand_in(name: str) -> list[list[str]]:
            return [step for version in WORK[name]
                    for step in (["write", versions[version]], ["submit"])]

        exchange.together({name: [["fetch"], *hand_in(name)] for name in ON_TIME}
                          | {LATE: [["fetch"]]})
        now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f UTC")
        nbgrader("db", "assignment", "add", LAB, f"--duedate={now}", "--db", db_url, cwd=course)
        time.sleep(1.1)
        exchange.together({LATE: hand_in(LATE)})

        assert kit(["collect", LAB, "--exchange", "--course-dir", str(course)]) == 0
        assert kit(["grade", LAB, "--course-dir", str(course), "--workers", "2", "--quiet"]) == 0
        assert kit(["feedback", LAB, "--course-dir", str(course)]) == 0
        nbgrader("release_feedback", LAB, cwd=course)
        exchange.together({name: [["fetch_feedback"]] for name in WORK})
        yield exchange, versions
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_collect_takes_each_students_latest_submission(term):
    """Student ids are the users nbgrader saw; dave's second (correct) notebook replaced his
    first (blank) one."""
    exchange, versions = term
    submitted = exchange.course / "submitted"
    assert sorted(p.name for p in submitted.iterdir()) == sorted(WORK)
    for name, handed_in in WORK.items():
        text = (submitted / name / LAB / f"{LAB}.ipynb").read_text()
        assert text == versions[handed_in[-1]], name
        assert (submitted / name / LAB / "timestamp.txt").exists()


def test_grades_and_the_late_penalty(term):
    """grades.csv: full marks, some, none, dave's latest, and erin's correct but late notebook
    scored, then zeroed by the late penalty."""
    exchange, _ = term
    assert kit(["export", "--course-dir", str(exchange.course)]) == 0
    rows = {r["student_id"]: r for r in csv.DictReader((exchange.course / "grades.csv").open())}
    got = {s: (float(r["raw_score"]), float(r["late_submission_penalty"] or 0), float(r["score"]))
           for s, r in rows.items()}
    assert got == {"alice": (3.0, 0.0, 3.0), "bob": (2.0, 0.0, 2.0), "carol": (0.0, 0.0, 0.0),
                   "dave": (3.0, 0.0, 3.0), "erin": (3.0, 3.0, 0.0)}


def test_each_student_fetches_their_own_feedback(term):
    exchange, _ = term
    pages = {}
    for name in WORK:
        fetched = sorted((exchange.home(name) / LAB / "feedback").glob(f"*/{LAB}.html"))
        assert len(fetched) == 1, (name, fetched)  # dave: only for the submission graded
        pages[name] = fetched[0].read_bytes()
        assert pages[name] == (exchange.course / "feedback" / name / LAB / f"{LAB}.html").read_bytes()
    assert len({pages[name] for name in ("alice", "bob", "carol")}) == 3  # different work


def test_students_cannot_read_each_others_work_or_feedback(term):
    """nbgrader's exchange keeps inbound/ and feedback/ unlistable (a page's name is a hash of a
    secret only its student holds); homes are private."""
    exchange, _ = term
    released = exchange.root / COURSE / "feedback"
    assert len(list(released.glob("*.html"))) == len(WORK)
    for folder in (released, exchange.root / COURSE / "inbound"):
        assert not exchange.can_read("bob", folder, listing=True)
    assert exchange.can_read("bob", exchange.root / COURSE / "outbound" / LAB, listing=True)
    alice_page = next((exchange.home("alice") / LAB / "feedback").glob(f"*/{LAB}.html"))
    assert exchange.can_read("alice", alice_page)
    assert not exchange.can_read("bob", alice_page)
    cache = exchange.home("alice") / ".local" / "share" / "jupyter" / "nbgrader_cache"
    assert cache.is_dir() and not exchange.can_read("bob", cache, listing=True)
    secrets = {p.read_text() for p in
               exchange.course.glob(f"submitted/*/{LAB}/submission_secret.txt")}
    assert len(secrets) == len(WORK)  # one secret per student, each only in their own cache
