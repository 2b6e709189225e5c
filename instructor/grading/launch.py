"""``python -m instructor.grading.launch SPEC``: start one grading kernel under its limits.

``SPEC`` is JSON: ``{"argv": [...], "limits": {...}, "cgroup": NAME or null}``, where ``argv``
is the kernel's command line (bwrap's, or the bare kernel's with ``--no-sandbox``). The launcher
sets the limits on itself (:func:`~instructor.grading.confinement.apply_limits`), adds the seccomp
filter to a bwrap command line, and replaces itself with the command: the kernel inherits
limits it cannot raise.
"""

from __future__ import annotations

import json
import os
import sys

from .confinement import apply_limits, no_new_processes_filter


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        sys.exit(f"usage: python -m instructor.grading.launch SPEC (got {argv})")
    spec = json.loads(argv[0])
    command = list(spec["argv"])
    applied = apply_limits(**spec["limits"], cgroup=spec.get("cgroup"))
    print(f"kit-launch: tasks {applied['tasks']}", file=sys.stderr, flush=True)
    if os.path.basename(command[0]) == "bwrap":
        fd = no_new_processes_filter()
        split = command.index("--")
        options = (["--seccomp", str(fd)] if fd is not None else []) + command[1:split]
        command = [command[0], "--args", str(_args_file(options)), *command[split:]]
    os.execv(command[0], command)


def _args_file(options: list[str]) -> int:
    """bwrap's options in a file descriptor (``--args FD``), so that no process, inside the
    sandbox or out, shows them (they name the grader's folders) in its command line; the
    kernel's own command follows ``--`` as usual."""
    fd = os.memfd_create("kit-bwrap-args", 0)
    os.write(fd, b"".join(option.encode() + b"\0" for option in options))
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


if __name__ == "__main__":
    main(sys.argv[1:])
