"""Chaos and bad input on the four member deployments: the figures of issues 10, 15 and 19.

The harness is ``tools/chaos`` (the same one ``tests/chaos`` runs): each stack is what ``make up``
starts (Azurite with an account per member, the emulator with each member's identity, vault and
subscription, the founders' ceremony) on free ports, with one deployment per member and a second one
of bank-b on bank-b's storage, every message delivered twice, clocks skewed by up to 37 s. First the
bad-input corpus on one stack (the queue corpus over the four members' queues, every HTTP case on
every deployment, every CLI case), then ten trials, each on a fresh stack with its own seed, of 60 s
of faults (kill -9 of deployments, one Azurite restart, 429/5xx/latency storms) during joins by vote,
decisions, a leave, a removal, scale ticks and rotations, each followed by the invariant checks on
each member's own storage, vault and subscription. The seeds are ``CHAOS_SEED * 1000 + trial``
(``CHAOS_SEED`` 10 unless the environment says otherwise: a bench knob, not an app setting). Next to
the figures, ``bench/results/chaos.json`` keeps the run: the seeds, each trial's summary and, for each
violation, the history that names its cause (the deliveries and dequeue counts the member's hosts
logged, the versions of its record, the holders of its coordinator lease, the chain versions it
stored, the kills). Figures:

- ``chaos_trials``: trials run (at least 10);
- ``chaos_violations``: invariant violations found in them (goal 0; a violation of a bug already
  pinned in ``tests/chaos/test_known_bugs.py`` counts too);
- ``bad_inputs_tried``: bad queue messages, HTTP requests and command lines sent;
- ``bad_inputs_lost``: those that left no rejection with the right reason, reached a poison queue,
  got a wrong or no answer, stopped a host, or changed something (goal 0);
- ``host_crashes``: host processes that exited without being killed, and listeners that died (goal 0).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from tools.chaos import run_all, trial_seeds

TRIALS = 10
CHAOS_SECONDS = 60.0
SEED = 10
HISTORY = Path(__file__).resolve().parent / "results" / "chaos.json"


def run() -> dict[str, float]:
    seed = int(os.environ.get("CHAOS_SEED", SEED))
    seeds = trial_seeds(seed, TRIALS)
    with tempfile.TemporaryDirectory() as tmp:
        figures = run_all(Path(tmp), seeds=seeds, chaos_seconds=CHAOS_SECONDS)
    result = figures.as_json()
    record = {
        "seed": seed, "seeds": seeds, "trials": TRIALS, "chaos_seconds": CHAOS_SECONDS, "figures": result,
        "summaries": [t.summary() for t in figures.trials],
        "violations": [{"trial": t.number, "seed": t.seed, "violation": v, "history": t.histories.get(v, [])}
                       for t in figures.trials for v in t.violations],
        "bad_inputs": {channel: {"tried": bad.tried, "lost": bad.lost, "wrong_reason": bad.wrong_reason,
                                 "poisoned": bad.poisoned, "changed": bad.changed}
                       for channel, bad in figures.bad.items()},
        "host_crashes": figures.host_crashes,
    }  # fmt: skip
    HISTORY.parent.mkdir(parents=True, exist_ok=True)
    HISTORY.write_text(json.dumps(record, indent=1) + "\n")
    print(f"seeds {seeds[0]}..{seeds[-1]}; the trials and each violation's history: {HISTORY.name}")
    print(f"{'figure':20} {'value':>6}  goal")
    for name, goal in (("chaos_trials", ">= 10"), ("chaos_violations", "0"), ("bad_inputs_tried", ">= 200"),
                       ("bad_inputs_lost", "0"), ("host_crashes", "0")):  # fmt: skip
        print(f"{name:20} {result[name]:6d}  {goal}")
    for channel, bad in figures.bad.items():
        print(f"  {channel}: {bad.tried} tried, {len(bad.lost)} lost, {len(bad.wrong_reason)} wrong answers, "
              f"{len(bad.poisoned)} poison queues grew, {len(bad.changed)} changes")  # fmt: skip
        for problem in [*bad.lost, *bad.wrong_reason, *bad.poisoned, *bad.changed][:10]:
            print(f"    {problem}")
    for crash in figures.host_crashes:
        print(f"  host crash: {crash}")
    return result
