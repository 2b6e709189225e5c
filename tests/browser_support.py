"""The machinery behind tests/test_browser.py: a throw-away course, a JupyterLab server started
through ``kit.py lab``, and a headless Chromium driven by Playwright the way a person clicks.

Nothing here touches the repository's notebooks: the server's root is a temporary copy."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from labs import ROOT

CHROMIUM_FLAGS = ("--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run")
INSTRUCTOR_COPY = "instructor_copy"  # where the solution copies sit inside the server's root
# A cell whose source makes a plot must show it as an image.
PLOTTING = re.compile(r"\bplot_\w+\(|\bplt\.(?:plot|show|subplots|figure|imshow|scatter)\(")
FIGURE_AS_TEXT = re.compile(r"<Figure size \d+x\d+ with \d+ Axes>")
# JupyterLab settings a fresh student install would answer once: no news or update toasts.
LAB_SETTINGS = {"@jupyterlab/apputils-extension/notification.jupyterlab-settings":
                {"fetchNews": "false", "checkForUpdates": False}}


def find_chromium() -> str | None:
    """The system Chromium (Debian's package), or None."""
    return shutil.which("chromium") or ("/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None)


def unavailable_reason() -> str | None:
    """Why the browser tests cannot run here (None when they can)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as error:
        return f"Python Playwright is not installed ({error}); `pip install playwright`"
    if find_chromium() is None:
        return ("Chromium is not installed (no `chromium` on PATH, no /usr/bin/chromium); "
                "on Debian/Ubuntu run .ci/install-packages or `apt-get install chromium`")
    return None


def artifacts_dir() -> Path:
    """Where screenshots go: $KIT_ARTIFACTS/browser, else artifacts/browser in the repository."""
    folder = Path(os.environ.get("KIT_ARTIFACTS") or ROOT / "artifacts") / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def digest_files(paths: list[Path]) -> dict[str, str]:
    """sha256 of every file under the given files/folders, keyed by repository-relative path."""
    digests = {}
    for path in paths:
        for file in sorted([path] if path.is_file() else path.rglob("*")):
            if file.is_file():
                digests[str(file.relative_to(ROOT))] = hashlib.sha256(file.read_bytes()).hexdigest()
    return digests


def build_course(root: Path, labs: dict[str, tuple[Path, Path]]) -> Path:
    """A copy of the kit's course layout in ``root``: nbgrader's configuration
    (nbgrader_config.py and the students' part it loads), ``solutions/<lab>/`` and
    ``notebooks/<lab>/`` for each lab (given as ``lab -> (solution folder, student folder)``), and
    a second copy of each solution folder under ``notebooks/instructor_copy/`` so that the
    solution can be opened from the file browser of a server rooted at notebooks/."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("nbgrader_config.py", "nbgrader_student_config.py"):
        shutil.copy(ROOT / name, root / name)
    ignore = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__")
    for lab, (solution_dir, student_dir) in labs.items():
        for source, target in ((solution_dir, root / "solutions" / lab),
                               (student_dir, root / "notebooks" / lab),
                               (solution_dir, root / "notebooks" / INSTRUCTOR_COPY / lab)):
            if source.is_dir():  # a missing folder is reported by the test that needs it
                shutil.copytree(source, target, ignore=ignore)
    return root


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# kit.py's own `lab` command, run from the copy of the course. Only the environment step is
# replaced (the tests already run inside the kit's environment, and must never pip-install), and
# the folder where kit.py keeps its Jupyter settings is the server's state folder.
LAUNCHER = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import kit
kit.ROOT = Path(sys.argv[2])
kit.VENV = Path(sys.argv[3])
kit.ensure_environment = lambda: Path(sys.executable)
sys.exit(kit.main(sys.argv[4:]))
"""


class JupyterServer:
    """``python3 kit.py lab --no-browser`` on a free port of 127.0.0.1 with a random token, for the
    course copied to ``course``: in student mode (root ``course/notebooks``) or, with
    ``instructor``, ``kit.py lab --instructor`` (root ``course``). Use as a context manager: the
    whole process group is stopped on exit, always."""

    def __init__(self, course: Path, state: Path, *, instructor: bool = False,
                 startup_timeout: float = 120):
        self.course, self.state, self.startup_timeout = course, state, startup_timeout
        self.instructor = instructor
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = state / "jupyter-server.log"
        self.process: subprocess.Popen | None = None

    def environment(self) -> dict[str, str]:
        """The student's environment, with Jupyter's per-user state kept inside ``state``."""
        env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # inline plots, as a student gets
        env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
        env.setdefault("LAB_DEVICE", "cpu")
        settings = self.state / "lab-settings"
        for name, values in LAB_SETTINGS.items():
            (settings / name).parent.mkdir(parents=True, exist_ok=True)
            (settings / name).write_text(json.dumps(values))
        env.update(JUPYTERLAB_SETTINGS_DIR=str(settings),
                   JUPYTERLAB_WORKSPACES_DIR=str(self.state / "lab-workspaces"),
                   JUPYTER_CONFIG_DIR=str(self.state / "jupyter-config"),
                   JUPYTER_RUNTIME_DIR=str(self.state / "jupyter-runtime"),
                   IPYTHONDIR=str(self.state / "ipython"))
        return env

    def __enter__(self) -> JupyterServer:
        args = ["lab", "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
                f"--IdentityProvider.token={self.token}", *(["--instructor"] * self.instructor)]
        if hasattr(os, "geteuid") and os.geteuid() == 0:  # CI containers run as root
            args.append("--allow-root")
        self.state.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", LAUNCHER, str(ROOT), str(self.course), str(self.state),
                 *args],
                cwd=self.course, env=self.environment(), stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        try:
            self._wait_until_up()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _wait_until_up(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.process.returncode}:\n{self.log()[-3000:]}")
            try:
                self.api("GET", "api/status")
                return
            except OSError:
                time.sleep(0.3)
        raise TimeoutError(f"JupyterLab did not answer within {self.startup_timeout:.0f} s:\n{self.log()[-3000:]}")

    def api(self, method: str, path: str):
        """Call the server's REST API; returns the decoded JSON (or None)."""
        body = self.fetch(path, method=method)
        return json.loads(body) if body else None

    def fetch(self, path: str, *, method: str = "GET", timeout: float = 10) -> bytes:
        """The body of ``path`` on the server, as the logged-in user."""
        request = urllib.request.Request(f"{self.url}/{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read()

    def shutdown_kernels(self) -> None:
        for session in self.api("GET", "api/sessions"):
            self.api("DELETE", f"api/sessions/{session['id']}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        """Shut the kernels down, then stop the server's whole process group."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            self.shutdown_kernels()
        except OSError:
            pass
        group = os.getpgid(self.process.pid)
        for sig, grace in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            try:
                os.killpg(group, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(timeout=grace)
                return
            except subprocess.TimeoutExpired:
                continue


class LabPage:
    """One JupyterLab tab in the browser, with the steps a student takes."""

    # Outputs a student should never see after Run All.
    ERROR_OUTPUTS = ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']"
    STDERR_OUTPUTS = ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"

    def __init__(self, page, server: JupyterServer):
        self.page, self.server = page, server

    def open_lab(self) -> None:
        self.page.goto(f"{self.server.url}/lab?token={self.server.token}")
        self.page.locator(".jp-DirListing-item").first.wait_for(timeout=90_000)

    def _menu(self, menu: str, command: str) -> None:
        self.page.locator(".lm-MenuBar-item", has_text=re.compile(f"^{menu}$")).click()
        self.page.locator(f".lm-Menu-item[data-command='{command}']").click()

    def _dir_item(self, name: str):
        text = self.page.locator(".jp-DirListing-itemText", has_text=re.compile(f"^{re.escape(name)}$"))
        return self.page.locator(".jp-DirListing-item").filter(has=text)

    def _open_item(self, name: str, opened) -> None:
        """Open ``name`` from the file browser's listing, as a double-click on its item does, and
        wait until ``opened`` (a locator) is there. The event goes to the item as listed at that
        moment: the listing is drawn again whenever its poll finds a change, and a pointer's
        double-click, which waits for an item that stays put, can wait in vain on a busy machine.
        An event that reached a replaced item does nothing; it is sent again, three times at most."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        for attempt in range(1, 4):
            try:
                self._dir_item(name).dispatch_event("dblclick", timeout=30_000)
                opened.wait_for(timeout=20_000)
                return
            except PlaywrightTimeout:
                if opened.count():  # it opened after all, just late
                    return
                if attempt == 3:
                    raise

    def open_notebook(self, path: str, n_cells: int):
        """Walk the file browser from its root to ``path`` and open it; wait until all its
        cells are shown and its kernel is idle. Returns the notebook panel's locator."""
        self.page.locator(".jp-FileBrowser .jp-BreadCrumbs-home").click()
        *folders, name = path.split("/")
        for folder in folders:
            self._open_item(folder, self.page.locator(".jp-FileBrowser .jp-BreadCrumbs",
                                                      has_text=folder))
        self._open_item(name, self.page.locator(".lm-TabBar-tab.lm-mod-current", has_text=name))
        panel = self.page.locator(".jp-NotebookPanel:visible")
        panel.locator(".jp-Cell").nth(n_cells - 1).wait_for(timeout=60_000)
        self.wait_for_idle(panel, timeout=120_000)
        return panel

    def wait_for_idle(self, panel, *, timeout: float) -> None:
        """Until the kernel is idle and no cell shows [*], twice in a row 0.5 s apart."""
        self.page.wait_for_function(
            """panel => {
                const indicator = panel.querySelector('.jp-Notebook-ExecutionIndicator');
                const running = [...panel.querySelectorAll('.jp-InputPrompt')]
                    .some(p => p.textContent.includes('*'));
                const idle = indicator && indicator.dataset.status === 'idle' && !running;
                const now = Date.now();
                if (!idle) { panel.dataset.idleSince = ''; return false; }
                if (!panel.dataset.idleSince) { panel.dataset.idleSince = String(now); return false; }
                return now - Number(panel.dataset.idleSince) > 500;
            }""", arg=panel.element_handle(), timeout=timeout, polling=250)

    @staticmethod
    def cells(panel) -> list[dict]:
        """What each cell shows: its kind, whether its editor is read-only, its prompt, output
        text, error and stderr outputs, and the images in its outputs (natural and shown width)."""
        return panel.locator(".jp-Cell").evaluate_all(
            """cells => cells.map(cell => {
                const editor = cell.querySelector('.cm-content');
                // textContent, not innerText: cells scrolled out of view are not rendered
                const text = node => (node && node.textContent) || '';
                const outputs = sel => [...cell.querySelectorAll(sel)].map(text);
                return {
                    kind: cell.classList.contains('jp-CodeCell') ? 'code' : 'markdown',
                    readonly: editor ? editor.getAttribute('aria-readonly') === 'true' : null,
                    prompt: text(cell.querySelector('.jp-InputPrompt')),
                    output: text(cell.querySelector('.jp-OutputArea')),
                    errors: outputs(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']"),
                    stderr: outputs(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"),
                    images: [...cell.querySelectorAll('.jp-OutputArea-output img')].map(
                        img => ({natural: img.naturalWidth, shown: img.getBoundingClientRect().width})),
                };
            })""")

    def run_all(self, panel, *, timeout: float) -> float:
        """Run > Run All, then wait for the kernel; returns the seconds it took."""
        start = time.monotonic()
        self._menu("Run", "runmenu:run-all")
        self.page.wait_for_function(  # started: some prompt shows [*] or a number
            "panel => [...panel.querySelectorAll('.jp-InputPrompt')].some(p => /[*0-9]/.test(p.textContent))",
            arg=panel.element_handle(), timeout=30_000)
        self.wait_for_idle(panel, timeout=timeout)
        return time.monotonic() - start

    def validate(self, panel, *, timeout: float) -> tuple[str, str]:
        """Press nbgrader's Validate button; returns the verdict's kind (success, failed,
        changed, type-changed, passed or error) and the dialog's text, and closes the dialog."""
        panel.locator(".validate-button").click()
        dialog = self.page.locator(".jp-Dialog")
        dialog.wait_for(timeout=timeout)
        text = dialog.inner_text()
        message = dialog.locator("#validation-message")
        kind = "error"
        if message.count():
            classes = message.get_attribute("class") or ""
            kind = next((c.removeprefix("validation-") for c in classes.split()
                         if c.startswith("validation-")), "error")
        dialog.locator(".jp-Dialog-button").last.click()
        dialog.wait_for(state="detached")
        return kind, text

    def validate_and_locate(self, panel, needle: str, *, timeout: float,
                            screenshot: Path | None = None) -> tuple[str, str, dict]:
        """Press Validate and, with its dialog open as nbgrader shows it, find where the first
        occurrence of ``needle`` is drawn: its box, the window's height and the dialog body's
        box and scroll offset (nothing is scrolled). Returns (kind, text, geometry); closes the
        dialog (after ``screenshot``)."""
        panel.locator(".validate-button").click()
        dialog = self.page.locator(".jp-Dialog")
        dialog.wait_for(timeout=timeout)
        self.page.wait_for_timeout(300)  # the dialog's layout settles
        geometry = dialog.evaluate(
            """(dialog, needle) => {
                const walker = document.createTreeWalker(dialog, NodeFilter.SHOW_TEXT);
                let node, found = null;
                while ((node = walker.nextNode())) {
                    const at = node.textContent.indexOf(needle);
                    if (at >= 0) { found = [node, at]; break; }
                }
                const body = dialog.querySelector('.jp-Dialog-body');
                const box = body.getBoundingClientRect();
                const result = {window: window.innerHeight, bodyTop: box.top,
                                bodyBottom: box.bottom, bodyScroll: body.scrollTop};
                if (!found) return result;
                const range = document.createRange();
                range.setStart(found[0], found[1]);
                range.setEnd(found[0], found[1] + needle.length);
                const r = range.getBoundingClientRect();
                return {...result, top: r.top, bottom: r.bottom};
            }""", needle)
        if screenshot is not None:
            self.page.screenshot(path=str(screenshot))
        text = dialog.inner_text()
        message = dialog.locator("#validation-message")
        classes = (message.get_attribute("class") or "") if message.count() else ""
        kind = next((c.removeprefix("validation-") for c in classes.split()
                     if c.startswith("validation-")), "error")
        dialog.locator(".jp-Dialog-button").last.click()
        dialog.wait_for(state="detached")
        return kind, text, geometry

    def menu_bar(self) -> list[str]:
        """The labels of JupyterLab's menu bar."""
        return [t.strip() for t in self.page.locator(".lm-MenuBar-item").all_inner_texts()]

    def menu_commands(self, menu: str) -> list[str]:
        """The commands (data-command) of the visible items of menu ``menu``."""
        self.page.locator(".lm-MenuBar-item", has_text=re.compile(f"^{menu}$")).click()
        items = self.page.locator(".lm-Menu:visible .lm-Menu-item")
        items.first.wait_for()
        commands = [c for c in items.evaluate_all(
            "items => items.filter(i => !i.classList.contains('lm-mod-hidden') && "
            "i.offsetParent !== null).map(i => i.dataset.command)") if c]
        self.page.keyboard.press("Escape")
        return commands

    def sidebar_tabs(self) -> list[str]:
        """The side bars' tabs, each as its label and tooltip text."""
        return self.page.locator(".jp-SideBar .lm-TabBar-tab").evaluate_all(
            "tabs => tabs.map(t => `${t.textContent} ${t.title || ''} "
            "${t.getAttribute('data-id') || ''}`.trim())")

    def dialog_text(self) -> str:
        """The text of the dialogs open now (e.g. 'Kernel Restarting'), '' when none."""
        return "\n".join(self.page.locator(".jp-Dialog").all_inner_texts())

    def close_current_tab(self, timeout: float = 30) -> None:
        """Close the active tab, discarding unsaved changes (the files are copies anyway), and
        wait until it is gone. The "Save your work" dialog can take seconds to open on a busy
        machine (its code loads on first use): a click meant for the page while it opens lands
        on its backdrop, so nothing goes on until the tab has closed."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        tabs = self.page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab")
        before = tabs.count()
        self.page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current .lm-TabBar-tabCloseIcon").click()
        discard = self.page.locator(".jp-Dialog .jp-Dialog-button", has_text="Discard")
        deadline = time.monotonic() + timeout
        while tabs.count() >= before:
            if discard.count():
                try:
                    discard.first.click(timeout=2000)
                except PlaywrightTimeout:  # the dialog closed meanwhile
                    pass
            elif time.monotonic() > deadline:
                raise AssertionError(f"the tab did not close within {timeout:.0f} s; dialog: "
                                     f"{self.dialog_text()!r}")
            self.page.wait_for_timeout(100)
        self.server.shutdown_kernels()

    def screenshot_pages(self, panel, folder: Path, stem: str, *, max_pages: int = 60) -> list[Path]:
        """Screenshots of the whole notebook, a window's height at a time, top to bottom:
        ``folder/<stem>-01.png``, ``-02.png``, ... (older ones of that stem are removed)."""
        for old in folder.glob(f"{stem}-[0-9][0-9].png"):
            old.unlink()
        scroller = panel.locator(".jp-WindowedPanel-outer")
        scroller.evaluate("e => e.scrollTo(0, 0)")
        paths = []
        while len(paths) < max_pages:
            self.page.wait_for_timeout(200)  # cells scrolled into view render, heights settle
            paths.append(folder / f"{stem}-{len(paths) + 1:02d}.png")
            self.page.screenshot(path=str(paths[-1]))
            at_end = scroller.evaluate(
                "e => { const end = e.scrollTop + e.clientHeight >= e.scrollHeight - 2;"
                "       if (!end) e.scrollBy(0, e.clientHeight - 60); return end; }")
            if at_end:
                break
        return paths

    def open_formgrader(self) -> list[str]:
        """Nbgrader > Formgrader; returns the assignment names its table lists."""
        self._menu("Nbgrader", "nbgrader:open-formgrader")
        frame = self.formgrader()
        rows = frame.locator("table tbody tr")
        rows.first.wait_for(timeout=60_000)
        frame.get_by_text("Loading, please wait").wait_for(state="detached", timeout=60_000)
        rows.first.scroll_into_view_if_needed()
        return [r.strip() for r in rows.locator("td:first-child").all_inner_texts() if r.strip()]

    def formgrader(self):
        """Formgrader's frame (open it first with :meth:`open_formgrader`)."""
        return self.page.frame_locator("iframe[src*='formgrader']").first

    def generate_feedback_in_formgrader(self, lab: str, *, timeout: float) -> str:
        """Formgrader's "Generate Feedback" button of ``lab`` (Manage Assignments); waits for
        its result and returns the result dialog's text (then closes it)."""
        frame = self.formgrader()
        row = frame.locator("table tbody tr").filter(has=frame.locator("td:first-child",
                                                                          has_text=lab))
        row.locator(".generate-feedback a").click()
        modal = frame.locator("#success-modal, #error-modal").first
        modal.locator(".modal-footer button").wait_for(state="visible", timeout=timeout)
        text = modal.inner_text()
        modal.locator(".modal-footer button").click()
        modal.wait_for(state="detached")
        return text
