"""``python3 kit.py test``: lint with ruff, then run the whole test suite with pytest.

The solution notebooks are run by nbval (``--nbval-lax``: only cells marked
``# NBVAL_CHECK_OUTPUT`` have their output compared). Extra arguments go to pytest.
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
    targets = [] if any(not a.startswith("-") for a in argv) else ["tests", "solutions"]
    command = [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env",
               "-p", "no:cacheprovider", *targets, *argv]
    return subprocess.run(command).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
