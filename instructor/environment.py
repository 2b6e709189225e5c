"""The one place for the environments the kit starts processes in.

- :func:`tool_env`: nbgrader, jupyter and nbval as the tests, the benchmarks and the commands
  run them (the caller's environment, this interpreter's ``bin`` first, the kit importable).
- :data:`LAB_SETTINGS` and :data:`THREAD_SETTINGS`: what every grading kernel (and every test or
  benchmark that stands for one) computes with: the CPU, a non-interactive matplotlib, one
  torch/BLAS thread per kernel.
- :func:`kernel_env`: the whole environment of a grading kernel. It is built from nothing, not
  from the grader's environment, so it carries no path of the course or of the grader.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

KIT_ROOT = Path(__file__).resolve().parent.parent

LAB_SETTINGS = {"LAB_DEVICE": "cpu", "MPLBACKEND": "Agg"}
THREAD_SETTINGS = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def tool_env(**extra: str) -> dict[str, str]:
    """Environment for nbgrader/jupyter subprocesses: this interpreter's ``bin`` first on PATH
    (nbgrader runs ``alembic`` from PATH), the kit importable, :data:`LAB_SETTINGS`."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(KIT_ROOT), env.get("PYTHONPATH")) if p)
    env.update(LAB_SETTINGS)
    env.update(extra)
    return env


def kernel_env(*, home: str, python_bin: str, pythonpath: str) -> dict[str, str]:
    """The complete environment of a grading kernel, as seen from inside its sandbox: ``home``
    its private home, ``python_bin`` the folder of its interpreter, ``pythonpath`` where the
    kernel-side package is."""
    return {
        "PATH": os.pathsep.join([python_bin, "/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": home,
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "PYTHONPATH": pythonpath,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "IPYTHONDIR": f"{home}/.ipython",
        "MPLCONFIGDIR": f"{home}/.matplotlib",
        **LAB_SETTINGS,
        **THREAD_SETTINGS,
    }
