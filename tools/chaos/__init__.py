"""Chaos and bad input on the one-deployment-per-member stack: the harness behind ``tests/chaos`` and
``bench/bench_chaos.py``.

``MemberStack`` starts what ``make up`` starts (``tools.stack.up_members``: Azurite with one account per
member, the Azure emulator with each member's identity, vault and subscription, each member's settings
file, the founders' genesis ceremony) in a folder of its own and on free ports, then runs the hosts
itself so it can kill and restart them: one deployment per member (bank-a..bank-d) and a second
deployment of bank-b (``bank-b-standby``) on bank-b's own storage, which competes for bank-b's
coordinator lease. Every host instance runs with:
- every queue message delivered twice (``FUNCHOST_DELIVER_TWICE``, the local host's testing facility:
  ``after`` on some instances, ``during`` on others);
- its clock off by some seconds (``CONSORTIUM_CLOCK_SKEW_SECONDS``, read only by ``SystemClock``);
- a 20 s receive invisibility (``FUNCHOST_RECEIVE_VISIBILITY_SECONDS``) instead of 10 minutes, so a
  message whose instance was killed comes back within a trial;
- 15 s timer listener locks (a host.json ``singleton`` section), so a killed instance's timers move on.

A trial (``run_trial``, on a stack of its own: the members are fixed identities and a trial ends with
some of them out of the chain) plays the consortium's story: the founders bank-a and bank-b join,
bank-c joins by their vote, bank-d by a split decision of three, load swings on bank-a's own scale set
(scale ticks), bank-a and bank-b rotate their keys (a ``rotate`` version of the chain for the
governance key), bank-c leaves and bank-a removes bank-d with bank-b's approval; meanwhile a monkey
kills deployments with SIGKILL at random moments, restarts Azurite once on the same ports and data,
and sends 429 (with Retry-After), 5xx and latency storms from the emulator, for the trial's length and
until the story's last step was posted and had ``FAULTS_AFTER_LAST_STEP`` seconds of faults to go
through. Then the faults stop, the
killed deployments come back, and the invariants are read back from each member's OWN storage, vault
and subscription (never from the harness's notes): every member's verified chain is a prefix of one
chain (no two documents of one version anywhere, and no deployment reporting a fork), every message
posted ended (a final status, a rejection or a poison record), each member's vault and subscription
hold only its own keys and scale set, capacities within bounds, a member out of the chain drained with
its keys disabled, no 403 in any host's log (the app never tries another member's resources, nor signs
with a key it disabled), no host crash. An ``Observer`` samples the chains, records and coordinator
leases during the trial, so a fork later repaired is still seen, and each violation carries the
history that names its cause (issue 19): the deliveries and dequeue counts the hosts logged, the
versions of the member's record, the holders of its coordinator lease, the chain versions seen, and
the kills.

Bad input (``queue_corpus``, ``HTTP_CASES``, ``CLI_CASES``) goes through each member's queues (each
refused once with its reason, recorded in that member's own storage; nothing poisoned; the founders'
good requests posted alongside still complete), the HTTP port of every deployment (always an answer,
the host keeps serving) and the ``consortium`` command line (exit 2 and a one-line reason naming the
field or rule); ``changed_nothing`` checks that each member's chain, record, vault and subscription
are as they were.

The package, by role: ``deployments`` (the stack and its host instances, reading a member's own
storage), ``monkey`` (the faults), ``observer`` (what is sampled while a trial runs), ``trial`` (the
story, the accounting of every message and the invariants), ``bad_input`` (the queue, HTTP and command
line corpora) and ``figures`` (what the bench reports).
"""

from __future__ import annotations

from tools.chaos.bad_input import (
    CLI_CASES,
    HTTP_CASES,
    BadInputResult,
    changed_between,
    expected_reason,
    good_message,
    queue_corpus,
    run_cli_cases,
    run_http_cases,
    run_queue_corpus,
    start_founders,
)
from tools.chaos.deployments import MEMBERS, QUEUE_MODELS, MemberStack
from tools.chaos.figures import Figures, run_all, run_bad_input, run_trials, trial_seeds
from tools.chaos.monkey import Monkey
from tools.chaos.observer import Observer
from tools.chaos.trial import STEPS, Trial, TrialResult, invariants, run_trial

__all__ = [
    "CLI_CASES",
    "HTTP_CASES",
    "MEMBERS",
    "QUEUE_MODELS",
    "STEPS",
    "BadInputResult",
    "Figures",
    "MemberStack",
    "Monkey",
    "Observer",
    "Trial",
    "TrialResult",
    "changed_between",
    "expected_reason",
    "good_message",
    "invariants",
    "queue_corpus",
    "run_all",
    "run_bad_input",
    "run_cli_cases",
    "run_http_cases",
    "run_queue_corpus",
    "run_trial",
    "run_trials",
    "start_founders",
    "trial_seeds",
]
