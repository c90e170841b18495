#!/usr/bin/env bash
# Builds Argo Workflows' images on this machine, the way scripts/images.sh builds the
# project's: buildah, no registry, no Docker, on the project's own Debian base (the rootfs
# scripts/images.sh made with mmdebstrap):
#   argo-workflow-controller  the controller built by scripts/argo-tools.sh
#   argoexec                  Argo's executor (its init container copies it into each pod)
#   stepwise-base             the Debian base itself: the image of the benchmark's no-op steps
# Each is tagged localhost/<name>:<hash of its inputs> and saved as a docker-archive under
# ${STEPWISE_CACHE:-~/.cache/stepwise}/images/; an archive that exists is not rebuilt.
#
#   sudo bash scripts/argo-images.sh   build what is missing; print "NAME REF ARCHIVE" per image
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${STEPWISE_CACHE:-$HOME/.cache/stepwise}/images

die() {
  echo "argo-images: $*" >&2
  exit 1
}

[ "$(id -u)" -eq 0 ] || die "building images needs root (buildah): run it with sudo"
command -v buildah >/dev/null || die "buildah is missing: run 'sudo bash scripts/node-tools.sh'"
argo=$(bash "$ROOT/scripts/argo-tools.sh" | tail -1)
rootfs=$(ls -t "$CACHE"/stepwise-base-*.rootfs.tar 2>/dev/null | head -1 || true)
[ -n "$rootfs" ] || die "the Debian base is missing: run 'sudo bash scripts/images.sh' first"
mkdir -p "$CACHE"
exec 8>"$CACHE/.argo.lock"
flock 8

# key FILE... : 12 hex digits over the files' content.
key() { sha256sum "$@" | sha256sum | cut -c1-12; }

# build NAME BINARY|- ENTRYPOINT USER: the base plus the binary in /bin, saved as an archive.
build() {
  local name=$1 binary=$2 entrypoint=$3 user=$4 ref archive c
  if [ "$binary" = - ]; then
    ref=localhost/$name:$(key "$rootfs")
  else
    ref=localhost/$name:$(key "$rootfs" "$binary")
  fi
  archive=$CACHE/$name-${ref##*:}.tar
  if [ ! -s "$archive" ]; then
    echo "==> $name image ($ref)" >&2
    c=$(buildah from --quiet scratch)
    buildah add --quiet "$c" "$rootfs" / >/dev/null
    [ "$binary" = - ] || buildah copy --quiet "$c" "$binary" "/bin/${binary##*/}" >/dev/null
    buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      ${entrypoint:+--entrypoint "[\"$entrypoint\"]"} --cmd '' ${user:+--user "$user"} "$c"
    buildah commit --quiet --rm "$c" "$ref" >/dev/null
    buildah push --quiet "$ref" "docker-archive:$archive.tmp:$ref" >/dev/null
    mv -f "$archive.tmp" "$archive"
    buildah rmi "$ref" >/dev/null 2>&1 || true
    for old in "$CACHE/$name"-????????????.tar; do
      [ "$old" = "$archive" ] || rm -f "$old"
    done
  fi
  echo "$name $ref $archive"
}

# Argo's own images run the controller as uid 8737 (its Dockerfile); runAsNonRoot needs a
# numeric user in the image.
build argo-workflow-controller "$argo/bin/workflow-controller" /bin/workflow-controller 8737
build argoexec "$argo/bin/argoexec" /bin/argoexec 8737
build stepwise-base - "" ""
