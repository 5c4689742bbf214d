#!/usr/bin/env bash
# Debian's PostgreSQL server for the identity ledgers' tests (tests/ledger), which start a private cluster
# of their own (tools/postgres.py) on a free port and never touch the system's cluster; where it cannot
# be installed, the first test (tests/test_preflight.py) fails naming that cause, outside the code.
exec bash "$(dirname "$0")/ensure_debian_package.sh" postgres postgresql "/usr/lib/postgresql/1[4-8]/bin/postgres" \
  "tests/ledger cannot run"
