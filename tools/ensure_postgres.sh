#!/usr/bin/env bash
# Makes sure Debian's PostgreSQL server is installed for the identity ledgers' tests (tests/ledger), which
# start a private cluster of their own (tools/postgres.py) on a free port and never touch the system's
# cluster. Called by `make test` before pytest; harmless to run again. Where the server cannot be
# installed (no apt, not root and no password-less sudo, no package mirror) it says so, and the first
# test (tests/test_preflight.py) fails naming that cause, outside the code.
set -uo pipefail

have_server() { compgen -G "/usr/lib/postgresql/1[4-8]/bin/postgres" >/dev/null; }

if have_server; then
  echo "ensure_postgres: $(ls -d /usr/lib/postgresql/1[4-8]/bin/postgres | tail -1) is installed"
  exit 0
fi

give_up() {
  echo "ensure_postgres: $1; tests/ledger cannot run" >&2
  exit 0
}

command -v apt-get >/dev/null 2>&1 || give_up "no apt-get on this machine to install postgresql"
if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  give_up "installing postgresql needs root (or password-less sudo)"
fi

install() {
  # the package's own cluster is not needed (the tests make theirs): it is created but never started here
  DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -q --no-install-recommends postgresql >/dev/null
}

echo "ensure_postgres: installing the Debian postgresql package"
install || { "${as_root[@]}" apt-get update -q >/dev/null && install; } || give_up "apt-get could not install postgresql"
have_server || give_up "postgresql was installed but no server 14 to 18 is under /usr/lib/postgresql"
echo "ensure_postgres: $(ls -d /usr/lib/postgresql/1[4-8]/bin/postgres | tail -1) installed"
