"""What the chaos bench reports: bad input on one fresh stack, then one trial per seed on a fresh stack
each, summed into figures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tools.chaos.bad_input import (
    CLI_CASES,
    BadInputResult,
    queue_corpus,
    run_cli_cases,
    run_http_cases,
    run_queue_corpus,
    start_founders,
)
from tools.chaos.deployments import MemberStack
from tools.chaos.trial import TrialResult, run_trial


@dataclass
class Figures:
    trials: list[TrialResult] = field(default_factory=list)
    bad: dict[str, BadInputResult] = field(default_factory=dict)
    host_crashes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, float]:
        return {
            "chaos_trials": len(self.trials),
            "chaos_violations": sum(len(t.violations) for t in self.trials),
            "bad_inputs_tried": sum(r.tried for r in self.bad.values()),
            "bad_inputs_lost": sum(
                len(r.lost) + len(r.wrong_reason) + len(r.poisoned) + len(r.changed) for r in self.bad.values()
            ),
            "host_crashes": len(self.host_crashes),
        }


def run_bad_input(work: Path, *, generated: int = 160, seed: int = 20240, cli_cases: int | None = None) -> Figures:
    """The bad-input corpus on a fresh stack whose founders joined: queues, HTTP, the command line."""
    figures = Figures()
    bad_stack = MemberStack(work).start()
    try:
        start_founders(bad_stack)
        figures.bad["queues"] = run_queue_corpus(bad_stack, queue_corpus(generated, seed))
        figures.bad["http"] = run_http_cases(bad_stack)
        figures.bad["cli"] = run_cli_cases(bad_stack, CLI_CASES[:cli_cases])
        figures.host_crashes += bad_stack.host_crashes()
    finally:
        bad_stack.stop()
    return figures


def run_trials(
    work: Path, *, seeds: Iterable[int], chaos_seconds: float, say: Callable[[str], None] = print
) -> Figures:
    """One trial per seed, each on a fresh stack under ``work``."""
    figures = Figures()
    for number, seed in enumerate(seeds):
        trial_stack = MemberStack(work / f"trial-{number}").start()
        try:
            result = run_trial(trial_stack, number, seed=seed, chaos_seconds=chaos_seconds)
            figures.host_crashes += trial_stack.host_crashes()
        finally:
            trial_stack.stop()
        figures.trials.append(result)
        say("  " + result.summary())
        for violation in result.violations:
            say(f"    violation: {violation}")
            for line in result.histories.get(violation, []):
                say(f"      {line}")
        for error in result.harness_errors:
            say(f"    harness error (not counted as a violation): {error}")
    return figures


def run_all(work: Path, *, seeds: Iterable[int], chaos_seconds: float, generated: int = 160) -> Figures:
    """Bad input on one fresh stack, then one chaos trial per seed on a fresh stack each: what the bench reports."""
    figures = run_bad_input(work / "bad-input", generated=generated)
    trials = run_trials(work, seeds=seeds, chaos_seconds=chaos_seconds)
    figures.trials = trials.trials
    figures.host_crashes += trials.host_crashes
    return figures


def trial_seeds(first: int, count: int) -> list[int]:
    return [first * 1000 + n for n in range(count)]
