#!/usr/bin/env bash
# Builds Argo Workflows' workflow-controller and argoexec from the Go module
# github.com/argoproj/argo-workflows/v3 (pinned below, verified by the Go checksum database)
# into a version-keyed cache outside the repo, and renders its cluster install (CRDs, RBAC,
# controller) from the module's own manifests/. No release binary or image is downloaded. `go install` refuses
# the module (its go.mod has a replace directive), so its source is copied out of the module
# cache and built with its own go.mod and go.sum. A second run only checks the versions.
#
#   bash scripts/argo-tools.sh                 build what is missing, print the cache dir
#   bash scripts/argo-tools.sh --print-dir     print the cache dir only (builds nothing)
#
# The cache dir holds bin/workflow-controller, bin/argoexec and manifests/install.yaml.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ARGO_VERSION=$(sed -nE 's/^ARGO_VERSION=([^[:space:]#]+).*/\1/p' "$ROOT/tools/argo/versions.env")
MODULE=github.com/argoproj/argo-workflows/v3
CACHE=${STEPWISE_CACHE:-$HOME/.cache/stepwise}
PREFIX=$CACHE/argo-$ARGO_VERSION
BIN=$PREFIX/bin

die() {
  echo "argo-tools: $*" >&2
  exit 1
}
[ -n "$ARGO_VERSION" ] || die "ARGO_VERSION is missing from tools/argo/versions.env"

if [ "${1:-}" = "--print-dir" ]; then
  echo "$PREFIX"
  exit 0
fi

is_built() { # name: the binary reports the pinned version
  local out
  [ -x "$BIN/$1" ] || return 1
  out=$("$BIN/$1" version 2>/dev/null) || return 1
  [[ $out == *"$ARGO_VERSION"* ]]
}

if is_built workflow-controller && is_built argoexec &&
  [ -s "$PREFIX/manifests/install.yaml" ]; then
  echo "==> argo tools up to date ($ARGO_VERSION)"
  echo "$PREFIX"
  exit 0
fi

export GOTOOLCHAIN=local CGO_ENABLED=0
export GOFLAGS="-mod=readonly -buildvcs=false"
command -v go >/dev/null 2>&1 || die "Go is not installed (or not on PATH)"
mkdir -p "$BIN" "$PREFIX/manifests"
exec 9>"$PREFIX/.lock"
flock 9

# --- source: the module zip, verified against the checksum database ------------------
src=$PREFIX/src
if [ ! -f "$src/go.mod" ]; then
  echo "==> downloading $MODULE@$ARGO_VERSION"
  dir=$(cd "$PREFIX" && GOFLAGS= go mod download -json "$MODULE@$ARGO_VERSION" |
    sed -nE 's/^\s*"Dir": "(.*)",?$/\1/p')
  [ -d "$dir" ] || die "go mod download $MODULE@$ARGO_VERSION gave no source directory"
  rm -rf "$src.tmp"
  cp -r "$dir" "$src.tmp"
  chmod -R u+w "$src.tmp"
  mv "$src.tmp" "$src"
fi
# The module zip of v3.7.3 lacks workflow/executor/osspecific/signal_linux.go (argoexec then
# fails with "undefined: Setpgid"); its darwin twin is plain POSIX: use it for Linux too.
osspecific=$src/workflow/executor/osspecific
if [ ! -f "$osspecific/signal_linux.go" ] && [ -f "$osspecific/signal_darwin.go" ]; then
  cp "$osspecific/signal_darwin.go" "$osspecific/signal_linux.go"
fi
need_go=$(sed -nE 's/^go ([0-9.]+)$/\1/p' "$src/go.mod")
have_go=$(go env GOVERSION | sed -E 's/^go//; s/[^0-9.].*$//')
[ "$(printf '%s\n%s\n' "$need_go" "$have_go" | sort -V | head -1)" = "$need_go" ] ||
  die "Go $have_go is too old: Argo $ARGO_VERSION needs Go >= $need_go"

# --- binaries: the ldflags of Argo's Makefile -----------------------------------------
build_date=$(sed -nE 's/.*"Time":"([^"]+)".*/\1/p' "$(go env GOMODCACHE)/cache/download/$MODULE/@v/$ARGO_VERSION.info" 2>/dev/null || true)
ldflags="-s -w -X $MODULE.version=$ARGO_VERSION -X $MODULE.gitTag=$ARGO_VERSION"
ldflags+=" -X $MODULE.gitTreeState=clean -X $MODULE.buildDate=${build_date:-1970-01-01T00:00:00Z}"
for name in workflow-controller argoexec; do
  is_built "$name" && continue
  echo "==> building $name ($MODULE/cmd/$name $ARGO_VERSION) - about 5-10 min cold on 2 cores"
  t0=$(date +%s)
  (cd "$src" && go build -trimpath -pgo=off -ldflags "$ldflags" -o "$BIN/.$name.tmp" "./cmd/$name") ||
    die "building $name failed (see the Go errors above)"
  mv -f "$BIN/.$name.tmp" "$BIN/$name"
  is_built "$name" || die "$BIN/$name was built but '$name version' does not report $ARGO_VERSION"
  echo "    $name built in $(($(date +%s) - t0))s"
done

# --- manifests: Argo's cluster install (CRDs, RBAC, controller), from the module's kustomization ---
KUBECTL=$(bash "$ROOT/scripts/k8s-tools.sh" --print-bin-dir)/kubectl
[ -x "$KUBECTL" ] || die "kubectl is missing: run 'bash scripts/k8s-tools.sh' first"
"$KUBECTL" kustomize "$src/manifests/cluster-install" >"$PREFIX/manifests/install.yaml.tmp"
mv -f "$PREFIX/manifests/install.yaml.tmp" "$PREFIX/manifests/install.yaml"
echo "==> argo tools ready ($ARGO_VERSION)"
echo "$PREFIX"
