# Sourced by the scripts that install Debian packages with apt (node-tools.sh, browser-tools.sh):
# one way to install what is missing. apt-get update runs only when something is missing, so a
# machine that has everything returns at once, without the network and without root.
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib/apt.sh"
#   apt_install_missing "the test node needs" containerd runc

# apt_install_missing NEEDS PACKAGE...: installs the PACKAGEs that are not installed. Without
# root it installs nothing and fails with one line: "<script>: NEEDS <missing>: run 'sudo ...'".
apt_install_missing() {
  local needs=$1 package
  shift
  local missing=()
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
      missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "$(basename "$0" .sh): $needs ${missing[*]}: run 'sudo bash $0'" >&2
    return 1
  fi
  echo "==> installing ${missing[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}
