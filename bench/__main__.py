"""`make bench`: run every benchmark module, print its table, merge the figures into latest.json.

Each ``bench/bench_*.py`` module has ``run() -> dict[str, float]``: it prints its own table and
returns its named figures. A figure that was not measured is left out, never written as zero.
``python -m bench NAME...`` runs only the named modules (``host``, ``autoscale``, ...), keeping the
other figures already in latest.json.
"""

from __future__ import annotations

import importlib
import json
import math
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "latest.json"


def discover(selected: list[str]) -> list[str]:
    names = sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    unknown = [s for s in selected if s not in names]
    if unknown:
        raise SystemExit(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(names)}")
    return selected or names


def main(argv: list[str]) -> int:
    selected = discover(argv)
    figures: dict[str, float] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    failed = []
    for name in selected:
        print(f"\n=== bench: {name} ===", flush=True)
        started = time.monotonic()
        try:
            module = importlib.import_module(f"bench.bench_{name}")
            produced = module.run()
        except Exception:
            traceback.print_exc()
            failed.append(name)
            continue
        for key, value in produced.items():
            if not isinstance(value, int | float) or (isinstance(value, float) and not math.isfinite(value)):
                raise SystemExit(f"bench {name}: figure {key}={value!r} is not a finite number")
        figures.update(produced)
        print(f"--- {name}: {len(produced)} figure(s) in {time.monotonic() - started:.1f} s")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(dict(sorted(figures.items())), indent=2) + "\n")
    print(f"\nwrote {RESULTS.relative_to(HERE.parent)} ({len(figures)} figures)")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
