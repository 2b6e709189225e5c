"""The lock that keeps graders sharing a gradebook from recording into it while one of them seeds
it.

``nbgrader generate_assignment`` seeds a gradebook with the assignment, its notebooks and cells.
When a notebook has no submission yet, it removes the notebook and creates it again, cell by
cell, each in a transaction of its own: a submission recorded meanwhile would be created with
the grades of only the cells that exist so far. So a grader seeds under :func:`seeding` (alone)
and records under :func:`recording` (shared with the other recorders): a PostgreSQL advisory
lock, a ``flock`` on a file next to a SQLite gradebook.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path

#: The key of the PostgreSQL advisory lock, the same in every process (a signed 64-bit number).
SEEDING_KEY = int.from_bytes(hashlib.sha256(b"backprop-lab-kit seeds the gradebook").digest()[:8],
                             "big", signed=True)


def seeding(db_url: str) -> contextlib.AbstractContextManager[None]:
    """Hold the seeding lock of the gradebook at ``db_url`` alone for the block: one grader seeds
    while no other seeds or records. Raises ``RuntimeError`` naming the gradebook when it cannot
    be reached."""
    return _lock(db_url, shared=False)


def recording(db_url: str) -> contextlib.AbstractContextManager[None]:
    """Hold the seeding lock of the gradebook at ``db_url`` shared for the block: any number of
    graders record at once, none while one seeds. A failure to connect is raised as it came
    (an ``OperationalError``, which :func:`.gradebook.retrying` retries)."""
    return _lock(db_url, shared=True)


@contextlib.contextmanager
def _lock(db_url: str, *, shared: bool) -> Iterator[None]:
    """The seeding lock: a session-level advisory lock on PostgreSQL, a ``flock`` next to a
    SQLite file, nothing for other databases; ``shared`` or exclusive."""
    sqlite = "sqlite:///"
    if db_url.startswith("postgresql"):
        from sqlalchemy import create_engine, text
        from sqlalchemy.exc import OperationalError
        from sqlalchemy.pool import NullPool
        kind = "_shared" if shared else ""
        key = {"key": SEEDING_KEY}
        engine = create_engine(db_url, poolclass=NullPool)
        try:
            try:
                connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            except OperationalError as error:
                if shared:
                    raise
                from .gradebook import printable
                raise RuntimeError(f"--db: cannot connect to the gradebook {printable(db_url)}: "
                                   f"{str(error.orig).strip()}") from None
            with connection:
                connection.execute(text(f"SELECT pg_advisory_lock{kind}(:key)"), key)
                try:
                    yield
                finally:
                    connection.execute(text(f"SELECT pg_advisory_unlock{kind}(:key)"), key)
        finally:
            engine.dispose()
    elif db_url.startswith(sqlite) and ":memory:" not in db_url:
        import fcntl
        lock = Path(db_url[len(sqlite):] + ".kit-lock")
        lock.parent.mkdir(parents=True, exist_ok=True)
        with open(lock, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    else:
        yield
