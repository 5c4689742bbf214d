"""Forgeries tried against every honest member's deployment on the local stack, and how many were accepted.

Issue 15's "Bad input and attacks", each run by one dishonest party (writing only its own storage
account, calling with its own identity) against every other member's deployment, which ticks after it
(``tools/forgeries`` builds the stack, admits bank-c for real and runs them). Figures:

- ``forgeries_tried``: (forgery, honest deployment) pairs tried (goal: at least 100);
- ``forgeries_accepted``: pairs where the deployment's verified chain, its view of another member's
  decisions, its keys or its scale set changed because of the forgery (goal: 0);
- ``forgeries_unrecorded``: pairs refused without a recorded reason (goal: 0);
- ``forgeries_foreign_calls``: calls an honest deployment made to a key outside its own vault (goal: 0).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from tools import forgeries


def run() -> dict[str, Any]:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-forgeries-") as tmp, forgeries.local_stack(Path(tmp)) as stack:
        tally = forgeries.run_attacks(stack)
        foreign = list(stack.foreign)
    print(tally.table())
    for result in tally.accepted + tally.unrecorded:
        print(f"  !! {result}")
    for call in foreign:
        print(f"  !! foreign call: {call}")
    print(f"  {tally.tried} tried, {len(tally.accepted)} accepted, {len(tally.unrecorded)} refused without a record, "
          f"{len(foreign)} calls outside a deployment's own vault, in {time.monotonic() - started:.0f} s")  # fmt: skip
    return {
        "forgeries_tried": tally.tried,
        "forgeries_accepted": len(tally.accepted),
        "forgeries_unrecorded": len(tally.unrecorded),
        "forgeries_foreign_calls": len(foreign),
    }
