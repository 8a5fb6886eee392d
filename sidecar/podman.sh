#!/usr/bin/env bash
# podman as this project runs it on a build machine without a container engine daemon.
# The one place that knows these settings: `make image` (sidecar/build-image.sh), the
# container tests (tests/image/) and the image benchmark all run podman through here.
#
#   sidecar/podman.sh images          any podman subcommand and its arguments
#
# * Storage: the vfs driver (no overlay or fuse needed), in a store of this checkout's
#   own (.image/containers), so it never mixes with another podman store on the
#   machine; `make clean-image` removes it.
# * Runtime runc and the cgroupfs manager: crun refuses hybrid cgroup hierarchies, and
#   there may be no systemd to manage cgroups. Events go to a file (no journald needed).
# * Limits: podman's default open-files and process limits can exceed the caller's hard
#   limits, and then runc cannot start the container. `run`, `create` and `build` get
#   explicit --ulimit values within the caller's hard limits.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
store=$(dirname "$here")/.image/containers
# Run state lives on tmpfs, keyed by the store, so that a reboot clears it (podman
# expects that) and two checkouts never share it; the short path keeps socket paths
# under the kernel's 108-byte limit.
runroot=/run/agentos-secrets-podman-$(printf '%s' "$store" | cksum | cut -d' ' -f1)

limit() {  # limit HARD CAP: the smaller of the caller's hard limit and CAP
    if [ "$1" = unlimited ] || [ "$1" -gt "$2" ]; then echo "$2"; else echo "$1"; fi
}
nofile=$(limit "$(ulimit -Hn)" 65536)
nproc=$(limit "$(ulimit -Hu)" 4096)

global=(
    --root "$store" --runroot "$runroot" --tmpdir "$runroot/libpod"
    --storage-driver vfs --runtime runc --cgroup-manager cgroupfs --events-backend file
)
if [ $# -gt 0 ]; then
    case "$1" in
        run | create | build)
            sub=$1
            shift
            exec podman "${global[@]}" "$sub" \
                --ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc" "$@"
            ;;
    esac
fi
exec podman "${global[@]}" "$@"
