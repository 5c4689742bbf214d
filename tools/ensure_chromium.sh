#!/usr/bin/env bash
# Debian's Chromium for the dashboard browser test (tests/e2e/test_dashboard.py), which drives it headless
# through playwright-core from the npm lockfile; where it cannot be installed, that test skips saying why.
exec bash "$(dirname "$0")/ensure_debian_package.sh" chromium chromium "${CHROMIUM:-/usr/bin/chromium}" \
  "the dashboard browser test will be skipped"
