"""The limits each submission is graded under."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Wall-clock limits per cell and per submission (s), the kernel's memory (address space,
    MiB), the size of any file it writes (MiB), and how many tasks (processes and threads) it
    may run at once."""

    cell_timeout: int = 120
    submission_timeout: int = 900
    memory_mb: int = 4096
    file_mb: int = 256
    tasks: int = 256

    def __post_init__(self):
        for name in ("cell_timeout", "submission_timeout", "memory_mb", "file_mb", "tasks"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")

    @property
    def cpu_seconds(self) -> int:
        """CPU time of the kernel: the submission's wall-clock limit plus a margin."""
        return self.submission_timeout + 60
