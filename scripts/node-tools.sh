#!/usr/bin/env bash
# Installs what the test node runs on that Go does not build: containerd, runc, the CNI
# plugins, iptables and conntrack, and buildah + mmdebstrap for the images. They come from
# Debian's archive with apt: signed, cached by apt, ~25 s on a fresh machine, and the same
# versions Debian users get (containerd 1.6 on bookworm; kubelet 1.36 falls back for its
# missing RuntimeConfig call). Building containerd v2 from Go modules would take ~3 min more
# and buy nothing these tests use. The Go binaries (kubelet, kube-proxy, CoreDNS) come from
# scripts/k8s-tools.sh.
#
#   sudo bash scripts/node-tools.sh     # a no-op when everything is installed
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib/apt.sh"
apt_install_missing "the test node needs" \
  containerd runc containernetworking-plugins iptables conntrack buildah mmdebstrap
