"""Create ``local.settings.json`` from the sample, or add settings the sample gained since.

Values already in ``local.settings.json`` are never changed (they may be the developer's own); only
missing keys are added, and each addition is named, so a `git pull` that adds a setting does not
leave the local host failing on an undefined ``%SETTING%``. One exception, also named: a JSON setting
whose sample gained fields (``SCALE_SET_TEMPLATE``) is replaced by the sample's when it lacks one of
them, since the app refuses a template without every field.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: JSON object settings whose fields the app requires all of.
STRUCTURED = ("SCALE_SET_TEMPLATE",)


def stale(current: str, sample: str) -> bool:
    """Whether ``current`` (a JSON object setting) lacks a field the sample's value has."""
    try:
        have, want = json.loads(current), json.loads(sample)
    except json.JSONDecodeError:
        return False  # the developer's own value; the app says what is wrong with it
    return isinstance(have, dict) and isinstance(want, dict) and not set(want) <= set(have)


def sync(sample: Path = ROOT / "local.settings.sample.json", target: Path = ROOT / "local.settings.json") -> list[str]:
    wanted = json.loads(sample.read_text())
    if not target.exists():
        target.write_text(json.dumps(wanted, indent=2) + "\n")
        print(f"created {target.name} from {sample.name}")
        return list(wanted["Values"])
    current = json.loads(target.read_text())
    values = current.setdefault("Values", {})
    added = [key for key in wanted["Values"] if key not in values]
    for key in added:
        values[key] = wanted["Values"][key]
    renewed = [k for k in STRUCTURED if k in values and k in wanted["Values"] and stale(values[k], wanted["Values"][k])]
    for key in renewed:
        values[key] = wanted["Values"][key]
    if added or renewed:
        target.write_text(json.dumps(current, indent=2) + "\n")
    if added:
        print(f"added to {target.name}: {', '.join(added)}")
    if renewed:
        print(f"replaced in {target.name} (the sample's has fields it lacked): {', '.join(renewed)}")
    return added + renewed


if __name__ == "__main__":
    sync()
    sys.exit(0)
