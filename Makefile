# Quick start: `make demo` runs the orchestrated rotation demo (3 replicas, 0 rejected
# requests), `make test` runs the tests. `make demo-sidecar`: the single-pod sidecar demo.
# Each target creates .venv and installs what it needs when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: demo demo-sidecar test lint bench check-manifests checkov clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m examples.rotation_demo

demo-sidecar: $(STAMP)
	$(PY) -m examples.demo

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check .

check-manifests: $(STAMP)
	$(VENV)/bin/agentos-secrets check --no-env --profile dev --manifests deploy/k8s/overlays/local-dev
	$(VENV)/bin/agentos-secrets check --no-env --profile prod --manifests deploy/k8s/overlays/production

bench: $(STAMP)
	$(PY) -m benchmarks

# checkov on the rendered overlays and examples, from its own venv (its pins clash with
# ours); the checks kept on purpose are listed in deploy/k8s/checkov.sh and its README.
CHECKOV_VENV := .venv-checkov
$(CHECKOV_VENV)/bin/checkov:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet 'checkov>=3.2,<4'

checkov: $(STAMP) $(CHECKOV_VENV)/bin/checkov
	deploy/k8s/checkov.sh

# The sidecar's image from sidecar/Dockerfile, built with podman on a Debian stand-in for
# the Python base image, offline from a wheelhouse (sidecar/README.md, "The image").
# Needs root, podman, runc and mmdebstrap; caches in .image/ (the second build takes seconds).
.PHONY: image clean-image
image: $(STAMP)
	PYTHON=$(PY) sidecar/build-image.sh

clean-image:
	sidecar/podman.sh system reset --force > /dev/null 2>&1 || true
	rm -rf .image

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) .pytest_cache .ruff_cache build *.egg-info
