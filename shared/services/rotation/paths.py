"""Where key rotation keeps its state and takes its requests, all in this member's own storage."""

from __future__ import annotations

#: The last run and the recent key actions (the status view's ``rotation`` part).
STATE_PATH = "rotation/state.json"
#: What the keys document last published said (its seq and fingerprint), in the member's own state.
PUBLISHED_PATH = "rotation/keys-document.json"
#: Where `consortium rotate-keys` posts, in this member's own storage: {"request_id", "force"?}.
REQUESTS = "key-rotation-requests"


def request_report_path(request_id: str) -> str:
    """What the coordinator did for a rotation request; ``runs`` counts the deliveries it took."""
    return f"rotation/requests/{request_id}.json"
