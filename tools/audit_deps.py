"""Audit the pinned requirements for known vulnerabilities with pip-audit, and never pass without auditing.

`make lint` runs it. It reads the pins, not the venv: requirements.txt is what Azure installs and
requirements-dev.txt what CI and developers add, both complete, so `--no-deps --disable-pip` audits
exactly them without building a throwaway venv. Both files are named: pip-audit does not follow the
`-r requirements.txt` inside requirements-dev.txt.

pip-audit exits 0 when its vulnerability service answered nothing (every dependency "not found on
PyPI and could not be audited"), which would read as a clean audit. So this reads its JSON report:

- a known vulnerability fails, naming the pin and the versions that fix it;
- a dependency that could not be audited while others were fails too (a pin missing from PyPI);
- no dependency audited at all means the service is unreachable from this machine (PyPI's per-release
  JSON API, /pypi/<name>/<version>/json): it says so loudly and fails, unless DEP_AUDIT_OFFLINE=warn
  is set, when it prints the same warning and passes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ("requirements.txt", "requirements-dev.txt")
PIP_AUDIT = Path(sys.executable).parent / "pip-audit"


def audit() -> tuple[int, dict[str, Any] | None, str]:
    """pip-audit's exit code, its JSON report (None when it printed none) and its stderr."""
    files = [arg for name in REQUIREMENTS for arg in ("-r", name)]
    cmd = [str(PIP_AUDIT), *files, "--no-deps", "--disable-pip", "--progress-spinner", "off", "-f", "json"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)  # argv built here  # nosec B603
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        report = None
    return done.returncode, report, done.stderr


def main() -> int:
    code, report, stderr = audit()
    if report is None:
        print(stderr[-3000:], file=sys.stderr)
        return offline(f"pip-audit exited with {code} and printed no report (its error is above)")
    deps = report.get("dependencies", [])
    if not deps:
        print(f"pip-audit: read no pinned dependency from {', '.join(REQUIREMENTS)}", file=sys.stderr)
        return 1
    vulnerable = [d for d in deps if d.get("vulns")]
    skipped = [d for d in deps if "skip_reason" in d]
    for dep in vulnerable:
        for vuln in dep["vulns"]:
            fixes = ", ".join(vuln.get("fix_versions") or []) or "no fixed release yet"
            print(f"pip-audit: {dep['name']}=={dep['version']} has {vuln['id']} (fixed in: {fixes})", file=sys.stderr)
    if vulnerable:
        return 1
    if deps and len(skipped) == len(deps):
        return offline(
            f"none of the {len(deps)} pinned dependencies could be audited ({skipped[0]['skip_reason']}):"
            " the vulnerability service (PyPI's /pypi/<name>/<version>/json) is unreachable from here"
        )
    for dep in skipped:
        print(f"pip-audit: not audited: {dep['skip_reason']}", file=sys.stderr)
    if skipped:
        return 1
    print(f"pip-audit: {len(deps)} pinned dependencies, no known vulnerabilities")
    return 0


def offline(why: str) -> int:
    fatal = os.environ.get("DEP_AUDIT_OFFLINE", "fail") != "warn"
    print(
        f"\n*** pip-audit: the dependencies were NOT audited: {why}.\n"
        + (
            "*** Failing rather than passing unaudited; DEP_AUDIT_OFFLINE=warn makes this a warning.\n"
            if fatal
            else "*** DEP_AUDIT_OFFLINE=warn: going on without the audit.\n"
        ),
        file=sys.stderr,
    )
    return 2 if fatal else 0


if __name__ == "__main__":
    sys.exit(main())
