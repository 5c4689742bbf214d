"""What the consortium service remembers between ticks in process memory (never needed for correctness)."""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.decisions import chain
from shared.decisions import consortium as rules


@dataclass
class Follow:
    """Each part keeps its own fields here; one object, so a new process is one ``Follow()``."""

    trusted: list[chain.Trusted] = field(default_factory=list)
    peer_etags: dict[str, str] = field(default_factory=dict)
    heads: dict[str, rules.Head] = field(default_factory=dict)
    refused: set[str] = field(default_factory=set)
    #: When (the service clock's timestamp) a tick last saw the conversation move: another member's head
    #: changed or a version was adopted. Fast following lasts only while that is recent.
    moved_at: float = float("-inf")
    #: What this member's head says now (its record and final signature), as ``publish_head`` last built it.
    says: rules.Says = field(default_factory=rules.Says)
