#!/usr/bin/env bash
# Makes sure Debian's Chromium is installed for the dashboard browser test (tests/e2e/test_dashboard.py),
# which drives it headless through playwright-core from the npm lockfile. Called by `make test` before
# pytest; harmless to run again. It never fails the build: where Chromium cannot be installed
# (no apt, not root and no password-less sudo, no network) it says so, and the browser test skips
# with that reason instead of failing the suite.
set -uo pipefail

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

if [ -x "$CHROMIUM" ]; then
  echo "ensure_chromium: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM") is installed"
  exit 0
fi

skip() {
  echo "ensure_chromium: $1; the dashboard browser test will be skipped" >&2
  exit 0
}

command -v apt-get >/dev/null 2>&1 || skip "no apt-get on this machine to install chromium"
if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  skip "installing chromium needs root (or password-less sudo)"
fi

install() {
  DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -q chromium >/dev/null
}

echo "ensure_chromium: installing the Debian chromium package"
# A clean machine may have no package lists yet: fetch them once if the first attempt fails.
install || { "${as_root[@]}" apt-get update -q >/dev/null && install; } || skip "apt-get could not install chromium"
[ -x "$CHROMIUM" ] || skip "chromium was installed but $CHROMIUM is missing"
echo "ensure_chromium: $("$CHROMIUM" --version 2>/dev/null) installed"
