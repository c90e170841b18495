#!/usr/bin/env bash
# Installs the browser the dashboard's tests drive: headless Chromium and its chromedriver
# from Debian's archive (a browser build downloaded by a test tool does not work on these
# machines; Debian's is signed, cached by apt and the version its users get). apt-get update
# runs only when something is missing, so a machine that has both returns at once.
#
#   sudo bash scripts/browser-tools.sh     # a no-op when both are installed
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib/apt.sh"
apt_install_missing "the dashboard's browser tests need" chromium chromium-driver
