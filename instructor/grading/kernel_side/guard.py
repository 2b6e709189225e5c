"""The first line of defence inside a grading kernel: keeps the tests' tools as they were.

At kernel start :func:`install` records the builtins and puts an import hook in place that
records the functions of the modules the tests rely on (``torch``, ``numpy``, ``lab_utils``, ...)
and ``torch.Tensor``'s methods the moment each module is first imported. :func:`restore` puts
every recorded object back (and the modules into ``sys.modules``), resets IPython's exception
hooks, and re-binds the names that locked instructor cells defined in the notebook's namespace.
It runs before every cell (an IPython ``pre_run_cell`` hook) and, because a student can remove
that hook, also from the line the grader puts at the top of every locked cell
(:func:`kernel_side.locked_cell`). It also caps each cell's printed output.

This lives in the same process as the student's code, so it is advisory: the verdicts that count
are recomputed by the grader in its own process (docs/instructor.md says what each layer stops).
"""

from __future__ import annotations

import builtins
import sys
import types

GUARDED_MODULES = ("torch", "torch.testing", "torch.autograd", "torch.nn.functional", "numpy",
                   "numpy.testing", "math", "lab_utils", "lab_utils.checking", "lab_utils.mlp",
                   "lab_utils.diagnosis", "lab_utils.testing", "lab_utils.backward_steps",
                   "unittest")
OUTPUT_LIMIT = 200_000  # characters per cell, stdout and stderr together

_modules: dict[str, types.ModuleType] = {}
_attrs: dict[str, dict[str, object]] = {}   # module name -> its public callables and classes
_classes: dict[type, dict[str, object]] = {}  # class -> its own __dict__ entries
_builtins: dict[str, object] = {}
_protected: dict[str, object] = {}  # notebook names bound by locked cells
_state = {"locked": False, "before": {}, "printed": 0, "truncated": False, "ip": None}
#: Called at the end of every cell before the guard looks at what a locked cell bound (the
#: recorder puts the student's own functions back there first).
before_post_run: list = []


def _record(name: str, module: types.ModuleType) -> None:
    _modules[name] = module
    _attrs[name] = {k: v for k, v in vars(module).items()
                    if callable(v) or isinstance(v, types.ModuleType)}
    if name == "torch":
        for cls in (module.Tensor, module.nn.Module):
            _classes[cls] = dict(vars(cls))


class _RecordingLoader:
    """Wraps a guarded module's loader: records the module right after it first runs."""

    def __init__(self, loader, name: str):
        self._loader, self._name = loader, name

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        _record(self._name, module)

    def __getattr__(self, attr):
        return getattr(self._loader, attr)


class _Recorder:
    """A ``sys.meta_path`` finder that records guarded modules when they are first imported,
    before any student code can touch them."""

    def find_spec(self, name, path=None, target=None):
        if name not in _guarded or name in _modules:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _RecordingLoader(spec.loader, name)
                return spec
        return None


_recorder = _Recorder()
_guarded: set[str] = set()


def install(ip, modules: tuple[str, ...] = GUARDED_MODULES, output_limit: int = OUTPUT_LIMIT
            ) -> None:
    """Record the pristine objects and register the hooks on the IPython shell ``ip``.
    Guarded modules already imported are recorded now, the others when first imported."""
    _guarded.update(modules)
    for name in modules:
        if name in sys.modules:
            _record(name, sys.modules[name])
    sys.meta_path.insert(0, _recorder)
    _builtins.update(vars(builtins))
    _state["ip"] = ip
    _state["sys"] = {k: getattr(sys, k) for k in ("excepthook", "stdout", "stderr", "exit")}
    _install_output_cap(output_limit)
    ip.events.register("pre_run_cell", _pre_run_cell)
    ip.events.register("post_run_cell", _post_run_cell)


class GuardError(RuntimeError):
    """Raised in a locked cell when the grader's records were bypassed."""


def restore(names: bool = False) -> None:
    """Put back every recorded module, function, method and builtin (and, with ``names``, the
    notebook names that locked cells bound)."""
    if _recorder not in sys.meta_path:
        sys.meta_path.insert(0, _recorder)
    for name, module in _modules.items():
        sys.modules[name] = module
        current = vars(module)
        for key, value in _attrs[name].items():
            if current.get(key) is not value:
                setattr(module, key, value)
    for cls, pristine in _classes.items():
        for key in [k for k in vars(cls) if k not in pristine]:
            try:
                delattr(cls, key)
            except (AttributeError, TypeError):
                pass
        for key, value in pristine.items():
            if vars(cls).get(key) is not value:
                try:
                    setattr(cls, key, value)
                except (AttributeError, TypeError):
                    pass
    table = vars(builtins)
    for key, value in _builtins.items():
        if table.get(key) is not value:
            table[key] = value
    for key, value in _state.get("sys", {}).items():
        setattr(sys, key, value)
    ip = _state["ip"]
    if ip is not None:
        ip.custom_exceptions, ip.CustomTB = (), types.MethodType(_no_custom_tb, ip)
        vars(ip).pop("showtraceback", None)
        if "pre_run_cell" in ip.events.callbacks and _pre_run_cell not in ip.events.callbacks["pre_run_cell"]:
            ip.events.register("pre_run_cell", _pre_run_cell)
        if "post_run_cell" in ip.events.callbacks and _post_run_cell not in ip.events.callbacks["post_run_cell"]:
            ip.events.register("post_run_cell", _post_run_cell)
        user_ns = ip.user_ns
        for key, value in (_protected.items() if names else ()):
            if user_ns.get(key) is not value:
                user_ns[key] = value


def locked_cell() -> None:
    """Called from the first line of a locked cell: restore, then protect what the cell binds."""
    restore(names=True)
    unrecorded = sorted(n for n in _guarded if n in sys.modules and n not in _modules)
    if unrecorded:
        raise GuardError(f"{', '.join(unrecorded)} imported around the grader's import hook; "
                         "the tests cannot trust them")
    ip = _state["ip"]
    _state["locked"] = True
    _state["before"] = dict(ip.user_ns) if ip is not None else {}


def _no_custom_tb(self, *args, **kwargs):  # IPython's own default when no handler is set
    return None


def _pre_run_cell(*_args) -> None:
    _state["locked"], _state["printed"], _state["truncated"] = False, 0, False
    restore()


def _post_run_cell(*_args) -> None:
    for hook in before_post_run:
        hook()
    if not _state["locked"] or _state["ip"] is None:
        return
    before, user_ns = _state["before"], _state["ip"].user_ns
    for key, value in user_ns.items():
        if not key.startswith("_") and before.get(key, _protected) is not value:
            _protected[key] = value
    _state["locked"] = False


def _install_output_cap(limit: int) -> None:
    """Wrap stdout/stderr so that one cell prints at most ``limit`` characters."""
    for stream_name in ("stdout", "stderr"):
        stream = getattr(sys, stream_name)
        write = stream.write

        def capped(text, _write=write):
            if _state["truncated"]:
                return len(text)
            room = limit - _state["printed"]
            _state["printed"] += len(text)
            if len(text) <= room:
                return _write(text)
            _state["truncated"] = True
            _write(text[:max(room, 0)])
            _write(f"\n[output truncated by the grader after {limit} characters]\n")
            return len(text)

        try:
            stream.write = capped
        except AttributeError:
            pass
