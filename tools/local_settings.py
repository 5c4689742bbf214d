"""Create ``local.settings.json`` from the sample, or add settings the sample gained since.

Values already in ``local.settings.json`` are never changed (they may be the developer's own); only
missing keys are added, and each addition is named, so a `git pull` that adds a setting does not
leave the local host failing on an undefined ``%SETTING%``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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
    if added:
        target.write_text(json.dumps(current, indent=2) + "\n")
        print(f"added to {target.name}: {', '.join(added)}")
    return added


if __name__ == "__main__":
    sync()
    sys.exit(0)
