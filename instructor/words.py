"""Sentences for people, made from the grader's codes (:class:`~instructor.grading.outcome.Finding`).

The grader and its modules pass codes with parameters to each other; this is the only place
that turns them into words (for the summary, the feedback and the ``grade`` command's output).
"""

from __future__ import annotations

from collections.abc import Callable

from .grading.outcome import Finding, Outcome, Status


def _names(items) -> str:
    return ", ".join(str(i) for i in items) if items else "none"


def _missing(p: dict) -> str:
    found = p.get("found") or []
    hint = (f" (found {_names(found)}: nbgrader grades only {p['notebook']}; rename it and "
            f"collect again)") if found else ""
    return f"notebook {p['notebook']} is missing{hint}; its tests score 0"


SENTENCES: dict[str, Callable[[dict], str]] = {
    "notebook_missing": _missing,
    "not_a_notebook": lambda p: (f"{p['notebook']} is not a valid notebook ({p.get('error', '')}); "
                                 "nothing in it could run"),
    "cells_deleted": lambda p: (f"{p['notebook']}: graded cells deleted or their metadata "
                                f"changed: {_names(p['cells'])} (restored from the source by "
                                "nbgrader)"),
    "cells_duplicated": lambda p: (f"{p['notebook']}: graded cells duplicated: "
                                   f"{_names(p['cells'])}; nbgrader cannot grade such a notebook "
                                   "(all its tests score 0): delete the copies and regrade"),
    "cells_reordered": lambda p: (f"{p['notebook']}: graded cells reordered "
                                  f"({_names(p['order'])}); cells run in the submitted order"),
    "kernel_died": lambda p: ("the kernel died (os._exit, a crash such as a segfault, a killed "
                              "process, or the memory limit); nbgrader stops such a notebook and "
                              "the tests it did not reach score 0"),
    "cell_timeout": lambda p: (f"{p['notebook']} [{p['cell']}] stopped at the per-cell time "
                               f"limit ({p['seconds']} s; an infinite loop?)"),
    "out_of_memory": lambda p: (f"{p['notebook']} [{p['cell']}] ran out of memory (kernel limit "
                                f"{p['limit_mb']} MiB)"),
    "output_truncated": lambda p: f"{p['notebook']} [{p['cell']}] printed too much; output truncated",
    "submission_timeout": lambda p: (f"stopped after {p['seconds']} s, the per-submission time "
                                     "limit; nothing of it was graded"),
    "nbgrader_failed": lambda p: f"nbgrader could not grade it: {p.get('detail') or 'unknown error'}",
    "nothing_recorded": lambda p: "nbgrader recorded nothing for this submission; all tests score 0",
    "grader_error": lambda p: f"the grader itself failed on this submission: {p.get('error', '')}",
    "gradebook_error": lambda p: (f"the gradebook did not take this result ({p.get('error', '')}); "
                                  "grade again to record it"),
    "verdicts_disagree": lambda p: (f"{p['notebook']} [{p['cell']}]: the test {p['kernel']} in the "
                                    f"student's kernel but {p['grader']} when the grader re-ran "
                                    f"it in its own process ({p.get('reason') or 'no reason given'}); "
                                    "the grader's verdict is the score"),
    "no_sandbox": lambda p: ("graded WITHOUT a sandbox (--no-sandbox): the student's code could "
                             "reach everything the grading user can"),
}


def describe(finding: Finding) -> str:
    """One sentence for ``finding``."""
    make = SENTENCES.get(finding.code)
    if make is None:
        return _rule_sentence(finding)
    try:
        return make(finding.params)
    except KeyError as missing:
        return f"{finding.code} ({', '.join(f'{k}={v}' for k, v in finding.params.items())}; " \
               f"missing {missing})"


def _rule_sentence(finding: Finding) -> str:
    """A by-hand rule broken, or something suspicious (the rule checker's own words)."""
    from .grading import rules

    params = dict(finding.params)
    try:
        if finding.code == "rule_broken":
            params["code"] = params.pop("kind")
            params["chain"] = tuple(params.get("chain", ()))
            return rules.describe(rules.Violation(**params))
        return rules.describe(rules.Flag(code=finding.code, **params))
    except (TypeError, KeyError):
        return f"{finding.code}: {', '.join(f'{k}={v}' for k, v in finding.params.items())}"


def outcome_line(outcome: Outcome) -> str:
    """The ``grade`` command's line for one submission."""
    notes = [describe(f) for f in outcome.problems + outcome.violations]
    notes += [f"flag: {describe(f)}" for f in outcome.flags]
    status = "" if outcome.status is Status.GRADED else f" {outcome.status.value}"
    text = f"{outcome.student:20s} {outcome.score:g}/{outcome.max_score:g}{status}"
    return text + (f" ({'; '.join(notes)})" if notes else "")
