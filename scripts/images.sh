#!/usr/bin/env bash
# Builds the test node's container images on this machine, with no registry and no Docker:
#   stepwise-base        Debian (mmdebstrap --variant=minbase) with python3: the FROM of all
#   stepwise             the repo's Dockerfile, BASE_IMAGE=stepwise-base, wheels built here
#   stepwise-examples    examples/Dockerfile on top of it
#   stepwise-e2e         tests/e2e/Dockerfile: the examples plus the e2e test workflow
#   stepwise-postgresql  tools/images/postgresql: Debian's PostgreSQL, the official image's env
#   stepwise-pause       tools/images/pause: the pod sandbox, a static C program
# Each image is tagged localhost/<name>:<hash of its inputs> and saved as a docker-archive
# under ${STEPWISE_CACHE:-~/.cache/stepwise}/images/; an archive that exists is not rebuilt,
# so a warm run only hashes files. The base follows the live Debian archive: its hash takes
# the month, so it is refreshed monthly (STEPWISE_REFRESH_BASE=1 forces it now).
#
#   sudo bash scripts/images.sh      build what is missing; print "NAME REF ARCHIVE" per image
#
# The stepwise image installs wheels built on the host (`pip wheel`, through the host's own
# trust store) with `pip install --no-index`: the build itself has no network and nothing of
# this machine (its proxy's CA) enters an image. Needs root, buildah and mmdebstrap
# (scripts/node-tools.sh installs them).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${STEPWISE_CACHE:-$HOME/.cache/stepwise}/images
SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
BASE_PACKAGES=python3,python3-venv,ca-certificates,passwd
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}

die() {
  echo "images: $*" >&2
  exit 1
}
say() { echo "==> $*" >&2; }

[ "$(id -u)" -eq 0 ] || die "building images needs root (buildah, mmdebstrap): run it with sudo"
for tool in buildah mmdebstrap gcc; do
  command -v "$tool" >/dev/null || die "$tool is missing: run 'sudo bash scripts/node-tools.sh'"
done
mkdir -p "$CACHE"
exec 8>"$CACHE/.lock"
flock 8

# hash_of WORDS... : 12 hex digits over the words and, for each word that is a path under the
# repo, the path and content of every file in it (caches and bytecode excluded).
hash_of() {
  local word
  for word in "$@"; do
    echo "$word"
    if [ -e "$ROOT/$word" ]; then
      (cd "$ROOT" && find "$word" -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 |
        sort -z | xargs -0 sha256sum)
    fi
  done | sha256sum | cut -c1-12
}

has_image() { buildah inspect --type image "$1" >/dev/null 2>&1; }

# save NAME REF: the docker-archive ctr imports (it keeps the tag); drop the older builds of
# NAME (archives and buildah images); print the result line.
save() {
  local archive=$CACHE/$1-${2##*:}.tar old
  buildah push --quiet "$2" "docker-archive:$archive.tmp:$2" >/dev/null
  mv -f "$archive.tmp" "$archive"
  for old in "$CACHE/$1"-????????????.tar; do
    [ "$old" = "$archive" ] || rm -f "$old"
  done
  for old in $(buildah images --noheading --format '{{.Name}}:{{.Tag}}'); do
    [[ $old == "localhost/$1:"* && $old != "$2" ]] && buildah rmi "$old" >/dev/null 2>&1
  done
  echo "$1 $2 $archive"
}

# built NAME REF: is the image's archive already cached?
built() {
  [ -s "$CACHE/$1-${2##*:}.tar" ] && echo "$1 $2 $CACHE/$1-${2##*:}.tar"
}

bud() { # REF CONTEXT DOCKERFILE BUD-ARGS...
  local ref=$1 context=$2 dockerfile=$3
  shift 3
  buildah bud --quiet --pull=never --layers=false -f "$dockerfile" -t "$ref" \
    "$@" "$context" >/dev/null
}

t0=$(date +%s)

# --- base ------------------------------------------------------------------------------------
month=$(date +%Y-%m)
[ "${STEPWISE_REFRESH_BASE:-0}" = 1 ] && month=$(date +%s)
base=localhost/stepwise-base:$(hash_of "$SUITE" "$BASE_PACKAGES" "$MIRROR" "$month")
rootfs=$CACHE/stepwise-base-${base##*:}.rootfs.tar
if ! has_image "$base"; then
  if [ ! -s "$rootfs" ]; then
    say "base image: mmdebstrap $SUITE ($BASE_PACKAGES)"
    rm -f "$CACHE"/stepwise-base-*.rootfs.tar
    mmdebstrap --quiet --variant=minbase --include="$BASE_PACKAGES" \
      --dpkgopt='path-exclude=/usr/share/{doc,man,locale}/*' \
      --aptopt='Acquire::Languages "none"' \
      "$SUITE" "$CACHE/.tmp.rootfs.tar" \
      "deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main" \
      "deb $SECURITY_MIRROR $SUITE-security main" </dev/null
    mv -f "$CACHE/.tmp.rootfs.tar" "$rootfs"
  fi
  c=$(buildah from --quiet scratch)
  buildah add --quiet "$c" "$rootfs" / >/dev/null
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --cmd /bin/bash "$c"
  buildah commit --quiet --rm "$c" "$base" >/dev/null
fi

# --- stepwise, examples, e2e -----------------------------------------------------------------
stepwise=localhost/stepwise:$(hash_of "${base##*:}" Dockerfile .dockerignore pyproject.toml README.md stepwise)
if ! built stepwise "$stepwise"; then
  say "stepwise image ($stepwise)"
  wheels=$CACHE/wheels-${stepwise##*:}
  if [ ! -d "$wheels" ]; then
    # The build backend too: the Dockerfile installs from source.
    "$PYTHON" -m pip wheel --quiet --wheel-dir "$wheels.tmp" "$ROOT[all]" pip hatchling
    rm -rf "$wheels" && mv "$wheels.tmp" "$wheels"
  fi
  bud "$stepwise" "$ROOT" "$ROOT/Dockerfile" --network=none --volume "$wheels:/wheels:ro" \
    --build-arg "BASE_IMAGE=$base" --build-arg PIP_NO_INDEX=1 --build-arg PIP_FIND_LINKS=/wheels
  save stepwise "$stepwise"
  rm -rf "$wheels"
fi

examples=localhost/stepwise-examples:$(hash_of "${stepwise##*:}" examples/Dockerfile examples/*.py)
if ! built stepwise-examples "$examples"; then
  say "examples image ($examples)"
  bud "$examples" "$ROOT/examples" "$ROOT/examples/Dockerfile" --network=none \
    --build-arg "STEPWISE_IMAGE=$stepwise"
  save stepwise-examples "$examples"
fi

e2e=localhost/stepwise-e2e:$(hash_of "${examples##*:}" tests/e2e/Dockerfile tests/e2e/workflows.py)
if ! built stepwise-e2e "$e2e"; then
  say "e2e workflow image ($e2e)"
  bud "$e2e" "$ROOT/tests/e2e" "$ROOT/tests/e2e/Dockerfile" --network=none \
    --build-arg "EXAMPLES_IMAGE=$examples"
  save stepwise-e2e "$e2e"
fi

# --- postgresql (apt inside the build: Debian's archive is plain HTTP, no CA involved) --------
postgresql=localhost/stepwise-postgresql:$(hash_of "${base##*:}" tools/images/postgresql)
if ! built stepwise-postgresql "$postgresql"; then
  say "postgresql image ($postgresql)"
  bud "$postgresql" "$ROOT/tools/images/postgresql" "$ROOT/tools/images/postgresql/Dockerfile" \
    --network=host --build-arg "BASE_IMAGE=$base"
  save stepwise-postgresql "$postgresql"
fi

# --- pause -----------------------------------------------------------------------------------
pause=localhost/stepwise-pause:$(hash_of tools/images/pause)
if ! built stepwise-pause "$pause"; then
  say "pause image ($pause)"
  tmp=$(mktemp -d)
  gcc -static -O2 -Wall -Wextra -Werror -o "$tmp/pause" "$ROOT/tools/images/pause/pause.c"
  c=$(buildah from --quiet scratch)
  buildah copy --quiet "$c" "$tmp/pause" /pause >/dev/null
  buildah config --entrypoint '["/pause"]' --cmd '' --user 65535:65535 "$c"
  buildah commit --quiet --rm "$c" "$pause" >/dev/null
  rm -rf "$tmp"
  save stepwise-pause "$pause"
fi

say "images ready in $(($(date +%s) - t0))s ($CACHE)"
