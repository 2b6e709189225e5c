"""Static checks of a submission's source, run in the grader's own process.

- :func:`rules_of`: graded name -> its rules, declared per solution cell of the SOURCE
  notebook (``metadata["kit"] = {"rules": ["by_hand"]}``; vocabulary in
  :data:`~.vocabulary.RULES` and docs/authoring.md), never read from the submission.
- :func:`check_rules`: a :class:`Violation` for every construct that breaks a rule, in the
  submitted definition(s) of a ruled name or in any notebook function or class they reach
  (by name, transitively; a class counts with all its methods; every definition of a name
  counts). Violations decide scores; their ``code`` is :data:`FORBIDDEN`,
  :data:`MISSING_AUTOGRAD` or :data:`UNVERIFIABLE`.
- :func:`scan`: a :class:`Flag` for anything suspicious anywhere in the student's cells
  (exiting the kernel, patching libraries, code from strings, the interpreter's or the grader's
  internals, shell escapes, the network, paths outside the submission). Flags are for review
  and never change a score; code that follows the lab's rules carries none.
- :func:`review`: both, reading the notebooks once; :func:`describe`: one sentence for either.

Both read only the two notebooks (as nbformat or ``json.load`` gives them): the student's
cells are every code cell of the submission except the locked cells of the source, which
nbgrader restores before running anything; those locked cells (read from the source) tell what
names mean (``import torch.nn.functional as F``) but are never checked.

How ``.grad`` and ``.backward`` count under ``by_hand``: anything that resolves to torch
(``torch.Tensor.backward(loss)``, ``torch.autograd.backward``) always counts; the attribute on
an object of unknown type (``loss.backward()``, ``p.grad``) counts as autograd unless a class
of the lab's own SOURCE notebook defines an attribute of that name (Lab 4's ``Value`` has
``grad`` and ``backward``), in which case it is taken to be that engine's. The source decides,
not the submission, so a student cannot whitelist ``.backward`` by defining a class.

Every prohibitive rule (``by_hand``, ``own_softmax``, ``no_torch``) also forbids the ways
around any rule: code run elsewhere (threads, processes, executors), code from strings, the
interpreter's and the grader's internals, modules the checker cannot read. Code that could
redefine a ruled function unseen (``exec`` of a computed string, ``%run``, writes through
``globals()``, a cell too large to read) makes every ruled function unverifiable.

Where each concern lives, in the order a check runs (each module imports only those above it):

- :mod:`.vocabulary`: the rules, the families, qualified names and how tables match them.
- The catalogues, tables of qualified names: :mod:`.escapes` (the ways around any rule),
  :mod:`.forbidden` (what each rule forbids of its own), :mod:`.suspicious` (what the scan
  reports).
- Reading: :mod:`.syntax` (small readings of the syntax tree), :mod:`.cells` (which cells are
  the student's), :mod:`.code_strings` (code run from literal strings), :mod:`.parsing`
  (cells into :class:`~.parsing.Unit`\\ s as IPython runs them), :mod:`.declared` (the rules
  the source declares).
- Understanding: :mod:`.scopes` (what each node binds), :mod:`.bindings` (the first walk:
  global names and the definitions that own code), :mod:`.qualify` (what a name means through
  aliases), :mod:`.facts` (the second walk: what each piece of code touches), :mod:`.reach`
  (following calls from a ruled function).
- Judging: :mod:`.analysis` (the notebooks read once), :mod:`.violations` (facts against
  rules), :mod:`.flags` (the scan), :mod:`.sentences` (words for people).

How to extend it (and add the case to tests/test_rules.py or tests/by_hand_catalogue.py):

- Forbid one more library construct: add its qualified name, or a prefix, to the rule's table
  in :mod:`.forbidden` (to :mod:`.escapes` for every prohibitive rule). Aliases, imports and
  ``getattr`` with literal names are resolved already.
- Report one more suspicious construct: add it to a table of :mod:`.suspicious`.
- Notice a kind of code the walks do not yet see: a new way to bind a name is a handler in
  :mod:`.scopes`; a new kind of construct is a fact kind in :mod:`.facts`, judged in
  ``_judgement`` of :mod:`.violations` (rules) and of :mod:`.flags` (scan).
- Add a rule: list it in ``RULES`` (and ``PROHIBITIVE`` if it forbids) in :mod:`.vocabulary`,
  give it a table and a family function in :mod:`.forbidden` (``_OWN_FAMILIES``), words in
  :mod:`.sentences` and a row in docs/authoring.md. A rule that asks for something (like
  ``uses_autograd``) gets its own check in :mod:`.violations`.

Importing this package imports the standard library only (IPython when a cell needs it).
"""

from __future__ import annotations

from collections.abc import Mapping

from .analysis import Analysis
from .cells import notebook_cells
from .declared import rules_of
from .flags import Flag, flags
from .sentences import describe
from .violations import FORBIDDEN, MISSING_AUTOGRAD, UNVERIFIABLE, Violation, violations

__all__ = ["rules_of", "check_rules", "scan", "review", "describe", "Violation", "Flag",
           "FORBIDDEN", "MISSING_AUTOGRAD", "UNVERIFIABLE"]


def check_rules(source_nb: Mapping, submitted_nb: Mapping) -> list[Violation]:
    """Every construct of the submission that breaks a rule of the source (see the package's
    docstring), sorted by function, cell and line."""
    ruled = rules_of(source_nb)
    if not ruled:
        notebook_cells(submitted_nb, "submitted_nb")
        return []
    return violations(Analysis(source_nb, submitted_nb), ruled)


def scan(source_nb: Mapping, submitted_nb: Mapping) -> list[Flag]:
    """Everything suspicious in the student's cells of the submission, sorted by cell and line."""
    return flags(Analysis(source_nb, submitted_nb))


def review(source_nb: Mapping, submitted_nb: Mapping) -> tuple[list[Violation], list[Flag]]:
    """``(check_rules(...), scan(...))``, reading the notebooks once."""
    analysis = Analysis(source_nb, submitted_nb)
    return violations(analysis, rules_of(source_nb)), flags(analysis)
