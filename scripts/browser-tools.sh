#!/usr/bin/env bash
# Installs the browser the dashboard's tests drive: headless Chromium and its chromedriver
# from Debian's archive (a browser build downloaded by a test tool does not work on these
# machines; Debian's is signed, cached by apt and the version its users get). apt-get update
# runs only when something is missing, so a machine that has both returns at once.
#
#   sudo bash scripts/browser-tools.sh     # a no-op when both are installed
set -euo pipefail

packages=(chromium chromium-driver)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "browser-tools: the dashboard's browser tests need ${missing[*]}: run 'sudo bash scripts/browser-tools.sh'" >&2
  exit 1
fi
echo "==> installing ${missing[*]} (apt-get)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
