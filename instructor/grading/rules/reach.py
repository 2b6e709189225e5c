"""Following calls from a ruled function: the definitions a rule covers.

A rule covers the student's definitions of the ruled name (:func:`roots`; every definition of
that name counts) and every definition of the notebook they use by name, transitively
(:func:`reach`): functions, classes with all their methods, module-level values, in the
student's cells or in the locked ones, but not another graded function that has the same rule
itself (it is judged by that rule on its own, so one mistake costs one function's points).
Aliases and imports are not followed: they are judged where they are used, by their
qualified name.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from .facts import Program
from .scopes import Definition


def roots(program: Program, function: str) -> list[Definition]:
    """The definitions of ``function`` in the student's cells."""
    found = []
    for binding in program.bindings.globals.get(function, ()):
        owner = binding.owner
        if owner is not None and not owner.unit.cell.locked and owner not in found:
            found.append(owner)
    return found


def targets(program: Program, name: str) -> list[Definition]:
    """The definitions a use of the global ``name`` reaches (aliases and imports are judged
    where they are used, not followed)."""
    reached = []
    for binding in program.bindings.globals.get(name, ()):
        if binding.owner is None or binding.kind == "import":
            continue
        if binding.kind == "value" and binding.value is not None and program.qualify(
                binding.value, binding.scope):
            continue
        reached.append(binding.owner)
    return reached


def reach(program: Program, function: str, starts: list[Definition],
          stop: frozenset[str] = frozenset()) -> Iterator[tuple[Definition, tuple[str, ...]]]:
    """(definition, chain) for every definition reached from ``starts``, nearest first, its
    facts listed; ``chain`` names the calls followed from ``function`` to it. Calls to the names
    in ``stop`` (other graded functions judged by the same rule on their own) are not
    followed."""
    queue = deque((start, (function,)) for start in starts)
    seen = {id(d) for d in starts}
    while queue:
        definition, chain = queue.popleft()
        program.facts(definition.unit)
        yield definition, chain
        for name, _ in definition.edges:
            if name in stop:
                continue
            for target in targets(program, name):
                if id(target) not in seen:
                    seen.add(id(target))
                    queue.append((target, chain + (name,)))
