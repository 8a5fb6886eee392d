#!/usr/bin/env bash
# Build sidecar/Dockerfile with podman on a machine that can reach package registries but
# no image registry (`make image` runs this; so do the container tests).
#
#   sidecar/build-image.sh        builds (or reuses) the stand-in base and the wheelhouse,
#                                 then the image; prints the image's name on the last line
#
# 1. The stand-in base. python:3.11-slim-bookworm cannot be pulled here, so mmdebstrap
#    builds a Debian bookworm root file system with Debian's python3 and python3-venv,
#    imported as localhost/agentos-secrets-python-standin and passed to the Dockerfile's
#    PYTHON_IMAGE build argument. It follows the official image where the Dockerfile
#    depends on it: `python` on PATH, no standard-library bytecode (the official image
#    deletes every *.pyc; Debian compiles them at install, so they are removed here and
#    the Dockerfile's own compile step is what the tests see), ca-certificates, LANG.
#    It differs in what sidecar/README.md lists under "What the stand-in does not prove".
#    Cached as .image/standin-KEY.tar, KEY a checksum of its recipe below.
# 2. The wheelhouse. Wheels for the packages the Dockerfile installs, and for the
#    package's build backend, downloaded on this host with its own pip configuration
#    into .image/wheelhouse-KEY (KEY: a checksum of the requirements and the target).
# 3. The image: `podman build --network none` with the wheelhouse as the build context
#    `wheelhouse` and PIP_NO_INDEX=1, so the build is offline and cannot pass by
#    reaching an index. Without these two options (a plain `docker build`), pip uses its
#    index as usual.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
podman=sidecar/podman.sh
cache=$root/.image
image=ghcr.io/nexixai/agentos-secrets-sidecar:0.1.0
python=${PYTHON:-python3}  # its pip downloads the wheels (make image passes the venv's)

say() { printf 'build-image: %s\n' "$*" >&2; }

missing=()
for tool in podman runc mmdebstrap; do
    command -v "$tool" > /dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "missing: ${missing[*]} (Debian: apt-get install podman runc mmdebstrap)"
    exit 3
fi
if [ "$(id -u)" != 0 ]; then
    say "needs root (mmdebstrap and podman with the vfs store run as root here)"
    exit 3
fi
mkdir -p "$cache"

# -- 1. the stand-in base -------------------------------------------------------------------
suite=bookworm
arch=$(dpkg --print-architecture)
standin_recipe=(
    --variant=essential --format=tar
    --include=python3,python3-venv,python-is-python3,ca-certificates
    # The build machines' mirror serves a dated snapshot.
    --aptopt='Acquire::Check-Valid-Until "false"'
    # Documentation, manuals and translations, as the slim images leave them out.
    --dpkgopt='path-exclude=/usr/share/doc/*'
    --dpkgopt='path-include=/usr/share/doc/*/copyright'
    --dpkgopt='path-exclude=/usr/share/man/*'
    --dpkgopt='path-exclude=/usr/share/info/*'
    --dpkgopt='path-exclude=/usr/share/locale/*'
    # As the official image: no standard-library bytecode, no test packages.
    --customize-hook='find "$1/usr/lib/python3.11" -depth -name __pycache__ -exec rm -rf {} +'
    --customize-hook='rm -rf "$1/usr/lib/python3.11/test" "$1/var/lib/apt/lists"/* "$1/var/cache/apt"/*'
    "$suite"
    -  # the output: a tar stream on stdout
    "deb http://deb.debian.org/debian $suite main"
    "deb http://deb.debian.org/debian $suite-updates main"
    "deb http://deb.debian.org/debian-security $suite-security main"
)
standin_key=$(printf '%s\n' "$arch" "${standin_recipe[@]}" | cksum | cut -d' ' -f1)
standin_tar=$cache/standin-$standin_key.tar
standin=localhost/agentos-secrets-python-standin:3.11-$suite-$standin_key
if [ ! -s "$standin_tar" ]; then
    say "building the stand-in base with mmdebstrap (about a minute; cached as $standin_tar)"
    mmdebstrap --quiet "${standin_recipe[@]}" > "$cache/standin.tar.tmp"
    mv "$cache/standin.tar.tmp" "$standin_tar"
    find "$cache" -maxdepth 1 -name 'standin-*.tar' ! -path "$standin_tar" -delete  # stale recipes
fi
if ! "$podman" image exists "$standin"; then
    say "importing $standin"
    "$podman" import --quiet \
        --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
        "$standin_tar" "$standin" > /dev/null
    # Stand-ins of older recipes: vfs keeps a full copy of each.
    "$podman" images --format '{{.Repository}}:{{.Tag}}' \
        | grep '^localhost/agentos-secrets-python-standin:' | grep -v -x "$standin" \
        | xargs -r "$podman" rmi --force > /dev/null || true
fi

# -- 2. the wheelhouse ----------------------------------------------------------------------
# The requirements are read from the Dockerfile (the one list), plus the build backend.
mapfile -t requirements < <(grep -o '"[a-z-]*>=[0-9.]*"' sidecar/Dockerfile | tr -d '"')
mapfile -t backend < <(sed -n 's/^requires = \[\(.*\)\]$/\1/p' pyproject.toml | tr -d '" ' | tr ',' '\n')
platforms=(--platform "manylinux2014_$(uname -m)" --platform "manylinux_2_28_$(uname -m)")
wheel_key=$(printf '%s\n' "${requirements[@]}" "${backend[@]}" "${platforms[@]}" 3.11 | cksum | cut -d' ' -f1)
wheelhouse=$cache/wheelhouse-$wheel_key
if [ ! -f "$wheelhouse/.complete" ]; then
    say "downloading wheels: ${requirements[*]} ${backend[*]}"
    rm -rf "$wheelhouse"
    "$python" -m pip download --quiet --disable-pip-version-check --no-cache-dir \
        --only-binary=:all: --implementation cp --python-version 3.11 "${platforms[@]}" \
        --dest "$wheelhouse" "${requirements[@]}" "${backend[@]}"
    touch "$wheelhouse/.complete"
fi

# -- 3. the image ---------------------------------------------------------------------------
# Rebuilt when an input changed: what the allow-list in sidecar/Dockerfile.dockerignore
# admits to the context, the Dockerfile, the base and the wheelhouse. (podman's own layer
# cache would also skip every step, but setting up and removing vfs copies of each stage
# takes about a minute here.)
inputs_key=$(
    {
        printf '%s\n' "$standin" "$wheel_key" "$image"
        find sidecar/Dockerfile sidecar/Dockerfile.dockerignore sidecar/healthcheck.py \
            pyproject.toml README.md agentos_secrets -type f \
            ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha256sum
    } | sha256sum | cut -c1-16
)
stamp=$cache/image.built
built_id=$("$podman" image inspect --format '{{.Id}}' "$image" 2> /dev/null || true)
if [ -n "$built_id" ] && [ "$(cat "$stamp" 2> /dev/null)" = "$inputs_key $built_id" ]; then
    say "$image is up to date (inputs $inputs_key)"
    echo "$image"
    exit 0
fi
say "building $image from sidecar/Dockerfile on $standin"
rm -f "$stamp"
# --format docker keeps the HEALTHCHECK (the OCI format has no such field). --layers=false
# commits one layer per stage instead of one per instruction: with vfs every layer is a
# full copy of the tree, and this build takes a minute instead of four.
"$podman" build --quiet --layers=false --format docker --network none \
    --build-arg "PYTHON_IMAGE=$standin" --build-arg PIP_NO_INDEX=1 \
    --build-context "wheelhouse=$wheelhouse" \
    --ignorefile sidecar/Dockerfile.dockerignore \
    -f sidecar/Dockerfile -t "$image" . > /dev/null
# The previous build's image and stage, now untagged: vfs keeps full copies of each.
"$podman" image prune --force > /dev/null
echo "$inputs_key $("$podman" image inspect --format '{{.Id}}' "$image")" > "$stamp"
echo "$image"
