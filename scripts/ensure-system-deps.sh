#!/usr/bin/env bash
# System packages the test suite needs beyond the virtual environment:
#   openssh-server: the SSH transport is tested against a real sshd on loopback;
#   chromium: the pages are tested in a real browser (Playwright drives /usr/bin/chromium; without
#             it those tests skip, saying so, so a non-root run goes on without it).
# Installs them with apt when running as root (CI, the dev machines); otherwise says what to install.
set -euo pipefail
missing=()
optional=()
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
[ -x /usr/bin/chromium ] || optional+=(chromium)
if [ ${#missing[@]} -eq 0 ] && [ ${#optional[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  echo "installing ${missing[*]} ${optional[*]} (needed by the tests)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" "${optional[@]}" >/dev/null
  exit 0
fi
if [ ${#optional[@]} -gt 0 ]; then
  echo "Chromium is missing (sudo apt-get install chromium): the browser tests will be skipped." >&2
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "The tests need these system packages: ${missing[*]}. Install them (e.g. sudo apt-get install ${missing[*]}) and re-run." >&2
  exit 1
fi
