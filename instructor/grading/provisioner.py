"""A jupyter_client kernel provisioner that adopts a kernel the grader started in advance.

nbgrader's ``Execute`` starts its kernel through jupyter_client; the grading kernelspec names
this provisioner (entry point ``kit-prestarted``), so instead of launching a process it takes the
sandboxed kernel the grader started ahead of time (:mod:`.kernels`), described in the
environment variable ``KIT_KERNEL`` (its process id, how to connect, its working folder). Before
handing it over, the submission's files (the lab's data files, anything the student handed in
besides the notebook) are copied into the kernel's working folder. The grader, which started the
kernel, is the one that kills it in the end; this provisioner only signals its process group.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
from pathlib import Path
from typing import Any

from jupyter_client.provisioning.provisioner_base import KernelProvisionerBase

ENV_VAR = "KIT_KERNEL"


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, not yet reaped by its parent, counts as ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def copy_inputs(source: Path, work: Path) -> None:
    """The files next to the notebook (not notebooks, not links) into the kernel's folder."""
    for path in source.rglob("*"):
        if path.is_symlink() or not path.is_file() or path.suffix == ".ipynb":
            continue
        target = work / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)


class PrestartedKernelProvisioner(KernelProvisionerBase):
    """Adopts the kernel described by ``KIT_KERNEL`` (once: a second notebook fails clearly)."""

    pid: int | None = None

    @property
    def has_process(self) -> bool:
        return self.pid is not None

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        spec = os.environ.pop(ENV_VAR, None)
        if spec is None:
            raise RuntimeError("no prepared grading kernel is left for this notebook: the kit "
                               "grades one notebook per lab")
        kernel = json.loads(spec)
        self.pid = int(kernel["pid"])
        self.connection_info = dict(kernel["connection"])
        self.connection_info["key"] = str(self.connection_info["key"]).encode()  # as jupyter keeps it
        if kwargs.get("cwd"):
            copy_inputs(Path(kwargs["cwd"]), Path(kernel["work"]))
        kwargs["cmd"] = ["prestarted-kernel"]
        kwargs.pop("env", None)
        return kwargs

    async def launch_kernel(self, cmd: list[str], **kwargs: Any):
        return self.connection_info

    async def poll(self) -> int | None:
        return None if self.pid is not None and alive(self.pid) else 0

    async def wait(self) -> int | None:
        while self.pid is not None and alive(self.pid):
            await asyncio.sleep(0.05)
        return 0

    async def send_signal(self, signum: int) -> None:
        if self.pid is not None:
            try:
                os.killpg(self.pid, signum)
            except (ProcessLookupError, PermissionError):
                pass

    async def kill(self, restart: bool = False) -> None:
        await self.send_signal(signal.SIGKILL)

    async def terminate(self, restart: bool = False) -> None:
        await self.send_signal(signal.SIGTERM)

    async def cleanup(self, restart: bool = False) -> None:
        pass

    async def get_provisioner_info(self) -> dict[str, Any]:
        info = await super().get_provisioner_info()
        info["pid"] = self.pid
        return info

    async def load_provisioner_info(self, provisioner_info: dict) -> None:
        await super().load_provisioner_info(provisioner_info)
        self.pid = provisioner_info.get("pid")
