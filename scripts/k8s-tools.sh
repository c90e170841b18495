#!/usr/bin/env bash
# Builds the test control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, helm) and the test node's Go binaries (kubelet, kube-proxy,
# CoreDNS) from the Go wrapper modules under tools/ into a
# version-keyed cache outside the repo. No release binaries are downloaded: only Go
# modules, pinned by the committed go.sum files. Binaries already built at the right
# version are skipped, so a warm run takes well under a second and needs no Go at all.
#
#   bash scripts/k8s-tools.sh                  build what is missing, print the bin dir
#   bash scripts/k8s-tools.sh --print-bin-dir  print the bin dir only (builds nothing)
#   bash scripts/k8s-tools.sh --print-replaces derive tools/k8s/go.mod's replace block
#                                              from k8s.io/kubernetes' own go.mod (for bumps)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS=$ROOT/tools

die() {
  echo "k8s-tools: $*" >&2
  exit 1
}

# tools/versions.env is shared with harness/tools.py: plain KEY=VALUE lines.
read_version() {
  local value
  value=$(sed -nE "s/^$1=([^[:space:]#]+).*/\1/p" "$TOOLS/versions.env")
  [ -n "$value" ] || die "$1 is missing from tools/versions.env"
  echo "$value"
}
KUBE_VERSION=$(read_version KUBE_VERSION)
ETCD_VERSION=$(read_version ETCD_VERSION)
HELM_VERSION=$(read_version HELM_VERSION)
COREDNS_VERSION=$(read_version COREDNS_VERSION)

CACHE=${STEPWISE_CACHE:-$HOME/.cache/stepwise}
PREFIX=$CACHE/k8s-$KUBE_VERSION
BIN=$PREFIX/bin

if [ "${1:-}" = "--print-bin-dir" ]; then
  echo "$BIN"
  exit 0
fi

# --- Go toolchain (only needed when something must be built) ---------------------
# GOTOOLCHAIN=local: use the installed Go and never fetch another toolchain.
export GOTOOLCHAIN=local CGO_ENABLED=0
export GOFLAGS="-mod=readonly -buildvcs=false"

check_go() {
  local need_go have_go
  need_go=$(sed -nE 's/^go ([0-9.]+)$/\1/p' "$TOOLS/k8s/go.mod" "$TOOLS/etcd/go.mod" \
    "$TOOLS/helm/go.mod" "$TOOLS/coredns/go.mod" | sort -V | tail -1)
  command -v go >/dev/null 2>&1 || die "Go is not installed (or not on PATH).
  The test control plane is compiled from Go modules: install Go >= $need_go
  (https://go.dev/dl/ or your distribution's golang package) and retry."
  have_go=$(go env GOVERSION | sed -E 's/^go//; s/[^0-9.].*$//')
  if [ "$(printf '%s\n%s\n' "$need_go" "$have_go" | sort -V | head -1)" != "$need_go" ]; then
    die "Go $have_go is too old: tools/*/go.mod need Go >= $need_go. Install a newer Go and retry."
  fi
}

# --- consistency of tools/k8s/go.mod with versions.env ----------------------------
staging=v0.${KUBE_VERSION#v1.}
grep -qE "^(require)?\s*k8s\.io/kubernetes $KUBE_VERSION( |\$)" "$TOOLS/k8s/go.mod" ||
  die "tools/k8s/go.mod does not require k8s.io/kubernetes $KUBE_VERSION (tools/versions.env)"
if grep -E '^\s+k8s\.io/[a-z0-9-]+ => k8s\.io/[a-z0-9-]+ v' "$TOOLS/k8s/go.mod" |
  grep -vqE " $staging\$"; then
  die "tools/k8s/go.mod has replace lines not at $staging; regenerate them with --print-replaces"
fi
grep -qE "^(require)?\s*go\.etcd\.io/etcd/server/v3 $ETCD_VERSION( |\$)" "$TOOLS/etcd/go.mod" ||
  die "tools/etcd/go.mod does not require etcd $ETCD_VERSION (tools/versions.env)"
grep -qE "^(require)?\s*helm\.sh/helm/v3 $HELM_VERSION( |\$)" "$TOOLS/helm/go.mod" ||
  die "tools/helm/go.mod does not require helm $HELM_VERSION (tools/versions.env)"
grep -qE "^(require)?\s*github\.com/coredns/coredns $COREDNS_VERSION( |\$)" "$TOOLS/coredns/go.mod" ||
  die "tools/coredns/go.mod does not require CoreDNS $COREDNS_VERSION (tools/versions.env)"

if [ "${1:-}" = "--print-replaces" ]; then
  check_go
  # Every staging module Kubernetes replaces with ./staging/src/k8s.io/NAME becomes
  # k8s.io/NAME v0.X.Y in a wrapper; the proxy does not serve their v0.0.0 requires.
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  gomod=$(cd "$tmp" && GOFLAGS= go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" |
    sed -nE 's/^\s*"GoMod": "(.*)",?$/\1/p')
  echo "replace ("
  sed -nE "s#^\s*(k8s\.io/[a-z0-9-]+) => \./staging/src/k8s\.io/[a-z0-9-]+\s*\$#\t\1 => \1 $staging#p" \
    "$gomod"
  echo ")"
  exit 0
fi

# --- what is missing? ------------------------------------------------------------
minor=${KUBE_VERSION#v1.}
minor=${minor%%.*}

# name | module dir | package | version command | expected substring | ldflags | tags
targets=(
  "etcd|etcd|go.etcd.io/etcd/server/v3|--version|etcd Version: ${ETCD_VERSION#v}|etcd|"
  "kube-apiserver|k8s|k8s.io/kubernetes/cmd/kube-apiserver|--version|Kubernetes $KUBE_VERSION|kube|selinux,notest"
  "kube-controller-manager|k8s|k8s.io/kubernetes/cmd/kube-controller-manager|--version|Kubernetes $KUBE_VERSION|kube|selinux,notest"
  "kube-scheduler|k8s|k8s.io/kubernetes/cmd/kube-scheduler|--version|Kubernetes $KUBE_VERSION|kube|selinux,notest"
  "kubectl|k8s|k8s.io/kubernetes/cmd/kubectl|version --client|Client Version: $KUBE_VERSION|kube|selinux,notest"
  "helm|helm|helm.sh/helm/v3/cmd/helm|version --short|$HELM_VERSION|helm|"
  "kubelet|k8s|k8s.io/kubernetes/cmd/kubelet|--version|Kubernetes $KUBE_VERSION|kube|selinux,notest"
  "kube-proxy|k8s|k8s.io/kubernetes/cmd/kube-proxy|--version|Kubernetes $KUBE_VERSION|kube|selinux,notest"
  "coredns|coredns|stepwise.local/tools/coredns|-version|CoreDNS-${COREDNS_VERSION#v}|plain|"
)

fmt_secs() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

is_built() { # name, version args, expected substring
  [ -x "$BIN/$1" ] || return 1
  local out
  # Captured, not piped into grep -q: with pipefail, an early grep exit SIGPIPEs the tool.
  # shellcheck disable=SC2086 # the version command is deliberately word-split
  out=$("$BIN/$1" $2 2>/dev/null) || return 1
  [[ $out == *"$3"* ]]
}

missing() {
  local t name vcmd expect
  for t in "${targets[@]}"; do
    IFS='|' read -r name _ _ vcmd expect _ _ <<<"$t"
    is_built "$name" "$vcmd" "$expect" || echo "$name"
  done
}

if [ -z "$(missing)" ]; then
  echo "==> k8s tools up to date ($KUBE_VERSION, etcd $ETCD_VERSION, helm $HELM_VERSION)"
  echo "$BIN"
  exit 0
fi

# --- build -------------------------------------------------------------------------
check_go
mkdir -p "$BIN"
# Two concurrent `make test` runs must not build the same binaries twice.
exec 9>"$PREFIX/.lock"
if command -v flock >/dev/null 2>&1 && ! flock -n 9; then
  echo "==> another k8s-tools build holds $PREFIX/.lock; waiting for it"
  flock 9
fi

# The module's commit time is a reproducible build date.
build_date=$(cd "$TOOLS/k8s" && go list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' \
  k8s.io/kubernetes 2>/dev/null || echo 1970-01-01T00:00:00Z)
# Without these, /version says v0.0.0-master and helm's kubeVersion checks fail.
kube_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kube_ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  kube_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done
etcd_ldflags="-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_VERSION"
helm_ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
helm_ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
helm_ldflags+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1"
helm_ldflags+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor"

started=$(date +%s)
built=0
n=0
for t in "${targets[@]}"; do
  IFS='|' read -r name dir pkg vcmd expect flavour tags <<<"$t"
  n=$((n + 1))
  if is_built "$name" "$vcmd" "$expect"; then
    continue
  fi
  case $flavour in
    kube) ldflags=$kube_ldflags ;;
    etcd) ldflags=$etcd_ldflags ;;
    helm) ldflags=$helm_ldflags ;;
    plain) ldflags="-s -w" ;;
  esac
  echo "==> [$n/${#targets[@]}] building $name ($pkg) - a cold build of all nine takes 12-20 min on 2 cores"
  t0=$(date +%s)
  # One build at a time: each already uses every core, and memory peaks at the link.
  (cd "$TOOLS/$dir" &&
    go build -trimpath -pgo=off ${tags:+-tags "$tags"} -ldflags "$ldflags" \
      -o "$BIN/.$name.tmp" "$pkg") ||
    die "building $name failed (see the Go errors above)"
  mv -f "$BIN/.$name.tmp" "$BIN/$name"
  is_built "$name" "$vcmd" "$expect" ||
    die "$BIN/$name was built but '$name $vcmd' does not report '$expect'"
  echo "    $name built in $(fmt_secs $(($(date +%s) - t0)))"
  built=$((built + 1))
done

if [ "$built" -gt 0 ]; then
  echo "==> built $built binaries in $(fmt_secs $(($(date +%s) - started))) ($(du -sh "$BIN" | cut -f1))"
else
  echo "==> k8s tools up to date ($KUBE_VERSION, etcd $ETCD_VERSION, helm $HELM_VERSION)"
fi
echo "$BIN"
