#!/usr/bin/env bash
# Makes sure a Debian package the tests need is installed: `ensure_debian_package.sh NAME PACKAGE GLOB
# WITHOUT`, where GLOB is a file the package provides (the newest match is reported) and WITHOUT says what
# happens without it. Called by `make test` (through ensure_chromium.sh and ensure_postgres.sh) before
# pytest; harmless to run again. It never fails the build: where the package cannot be installed (no apt,
# not root and no password-less sudo, no package mirror) it says so, and the tests that need it skip or
# fail naming that cause (the dashboard browser test skips; the preflight names a missing PostgreSQL).
set -uo pipefail

name="$1" package="$2" glob="$3" without="$4"

found() { compgen -G "$glob" | sort -V | tail -1; }

if [ -n "$(found)" ]; then
  echo "ensure_$name: $(found) is installed"
  exit 0
fi

give_up() {
  echo "ensure_$name: $1; $without" >&2
  exit 0
}

command -v apt-get >/dev/null 2>&1 || give_up "no apt-get on this machine to install $package"
if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  give_up "installing $package needs root (or password-less sudo)"
fi

install() {
  DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -q "$package" >/dev/null
}

echo "ensure_$name: installing the Debian $package package"
# A clean machine may have no package lists yet: fetch them once if the first attempt fails.
install || { "${as_root[@]}" apt-get update -q >/dev/null && install; } || give_up "apt-get could not install $package"
[ -n "$(found)" ] || give_up "$package was installed but nothing matches $glob"
echo "ensure_$name: $(found) installed"
