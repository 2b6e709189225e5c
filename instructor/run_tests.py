"""``python3 kit.py test``: lint with ruff, then run the whole test suite with pytest.

The solution notebooks are run by nbval from ``tests/test_labs.py`` (``--nbval-lax``: cells
marked ``# NBVAL_CHECK_OUTPUT`` are compared with ``tests/expected_outputs/``). Extra
arguments go to pytest.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str]) -> int:
    os.chdir(ROOT)
    bin_dir = str(Path(sys.executable).parent)  # nbgrader runs `alembic` from PATH
    os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    os.environ.setdefault("LAB_DEVICE", "cpu")
    os.environ.setdefault("MPLBACKEND", "Agg")
    print("== ruff check", flush=True)
    lint = subprocess.run([sys.executable, "-m", "ruff", "check", "."])
    if lint.returncode != 0:
        print("ruff found problems (see above); fix them or run `ruff check --fix .`", flush=True)
        return lint.returncode
    print("== pytest", flush=True)
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *argv]
    return subprocess.run(command).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
