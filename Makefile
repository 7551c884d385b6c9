# Two entry points on a fresh machine: `make demo` and `make test`.
# Each sets up ./.venv on its own: torch's CPU build first (a bare `torch`
# requirement would pull a multi-GB CUDA build), then the package.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint venv clean

# The lmms extra (the lmms-eval plug-in's tests) pulls torchvision. torch is named again so that pip
# picks the torchvision of this torch rather than upgrading torch (to a CUDA build) for the newest
# one. PyPI's torchvision is built against the CUDA torch: next to the CPU build its import fails,
# and transformers, which imports torchvision whenever it is installed, fails with it. Neither
# lmms-eval's core nor our model uses it, so it is removed where it cannot load (README: lmms-eval).
# timm (which lmms-eval also requires) then fails to import, and accelerate's CLI imports timm
# whenever it is installed: `accelerate launch` would fail, so timm goes the same way.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev,ui,lmms]' torch==2.13.0
	$(PY) -c "import torchvision" 2>/dev/null || $(PY) -m pip uninstall --quiet -y torchvision
	$(PY) -c "import timm" 2>/dev/null || $(PY) -m pip uninstall --quiet -y timm
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/salmonn-o1 demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -n 2 --dist loadfile

clean:
	rm -rf $(VENV)
