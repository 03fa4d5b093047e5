# virtio_lab — everything a clone needs: `make lab` and `make test`.
# Targets are idempotent: the venv and each set of extras install once, and again
# only when pyproject.toml changes.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
ARGS   ?=
PYTEST_ARGS ?=
# Jupyter refuses to run as root unless told (containers, CI, Binder-like sandboxes run as root)
ROOT_OK := $(if $(filter 0,$(shell id -u)),--allow-root,)

LAB_STAMP  := $(VENV)/.installed-lab
TEST_STAMP := $(VENV)/.installed-test

.PHONY: fuzz lab test bench app guest-kit guest-captures qemu-kit qemu-facts fidelity binder-check clean help

help:
	@echo "make lab        open JupyterLab on notebooks/00-start.ipynb (ARGS=--no-browser for headless)"
	@echo "make app        serve the explorer as an app with Voila (notebooks/app.ipynb, no code shown)"
	@echo "make test       run the whole suite: unit tests, notebooks (nbval), browser and QEMU checks"
	@echo "make bench      run the benchmarks and print the budget table"
	@echo "make fuzz       the fuzz suite of make test, FUZZ_SCALE (50) times deeper, fresh inputs"
	@echo "make fidelity   compare the emulation with every real-QEMU case in tests/data"
	@echo "make binder-check  build Binder's environment from binder/ alone and run the notebooks in it"
	@echo "make lite       build the JupyterLite site into _site/ (the course in the browser, no server)"
	@echo "make lite-test  run every notebook of _site/ in Chromium, offline (builds it first)"
	@echo "make lite-serve serve _site/ on http://127.0.0.1:8000/ (open lab/index.html)"
	@echo "make bench-browser  kernel start and widget step latency in Chromium (JupyterLite and JupyterLab)"
	@echo "make guest-kit  build the real Linux guest used by crosscheck --guest"
	@echo "make qemu-kit   fetch Debian's QEMU 5.2 and 10.0 (unpacked, not installed) for crosscheck --qemu"
	@echo "make qemu-facts re-capture each release's -device TYPE,help, -machine help and refusals"
	@echo "make clean      remove the venv and caches"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(LAB_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[lab]'
	@touch $@

$(TEST_STAMP): pyproject.toml $(LAB_STAMP)
	$(BIN)/python -m pip install --quiet -e '.[lab,test]'
	@touch $@

lab: $(LAB_STAMP)
	$(BIN)/jupyter lab notebooks/00-start.ipynb $(ROOT_OK) $(ARGS)

# Voila renders the notebook as an app: outputs only, one kernel per visitor.
app: $(LAB_STAMP)
	$(BIN)/voila notebooks/app.ipynb $(ARGS)

# pytest exits 5 when it collected nothing: say so, but do not fail on it.
test: $(TEST_STAMP)
	@$(BIN)/python -m pytest $(PYTEST_ARGS) || { rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests"; else exit $$rc; fi; }

bench: $(TEST_STAMP)
	$(BIN)/python benchmarks/run.py

# The fuzz suite of make test (tests/test_fuzz.py), FUZZ_SCALE times deeper and with fresh
# inputs each run; the inputs tried per target land in .fuzz-report.json (about 10 minutes).
FUZZ_SCALE ?= 50
fuzz: $(TEST_STAMP)
	VIRTIO_LAB_FUZZ_SCALE=$(FUZZ_SCALE) VIRTIO_LAB_FUZZ_REPORT=.fuzz-report.json \
	  $(BIN)/python -m pytest -q -o addopts= -p no:cacheprovider tests/test_fuzz.py
	@$(BIN)/python -c "import json; r = json.load(open('.fuzz-report.json')); \
	  print('make fuzz:', sum(r.values()), 'inputs:', ', '.join(f'{k} {v}' for k, v in r.items()))"

# A real Linux guest (Debian's 6.1 cloud kernel + busybox) for crosscheck --guest;
# stdlib only, into the ignored .guest-kit/ (needs apt-get download and qemu-system-x86).
guest-kit:
	$(PYTHON) -m virtio_lab.live.guest_kit build .guest-kit

# Debian's QEMU 5.2 and 10.0 beside the system's 7.2: a private apt configuration per release
# (the system's apt sources and packages are untouched), unpacked into the ignored .qemu-kit/.
qemu-kit:
	$(PYTHON) -m virtio_lab.live.qemu_kit build .qemu-kit
	$(PYTHON) -m virtio_lab.live.qemu_facts check

# What each release says about itself, as the data virtio_lab reads (data/qemu-X.Y/, tests/data).
qemu-facts: qemu-kit
	$(PYTHON) -m virtio_lab.live.qemu_facts capture

guest-captures: guest-kit
	$(PYTHON) -m virtio_lab.live.guest regen --out tests/data/guest --jobs 2

fidelity: $(LAB_STAMP)
	$(BIN)/python -m pytest -q -o addopts= tests/test_fidelity.py

# Binder's environment, proved: a fresh venv from binder/runtime.txt's Python,
# binder/requirements.txt and binder/postBuild only (what repo2docker runs), then pytest and
# nbval (not part of the Binder image) run every course notebook in it, with its own kernel.
BINDER_VENV   ?= /tmp/virtio_lab-binder
BINDER_PYTHON ?= python$(patsubst python-%,%,$(shell cat binder/runtime.txt 2>/dev/null))

binder-check:
	rm -rf $(BINDER_VENV)
	$(BINDER_PYTHON) -m venv $(BINDER_VENV)
	$(BINDER_VENV)/bin/python -m pip install --quiet -r binder/requirements.txt
	PATH="$(BINDER_VENV)/bin:$$PATH" bash binder/postBuild
	$(BINDER_VENV)/bin/python -m pip install --quiet pytest==9.2.0 nbval==0.11.0
	cd /tmp && $(BINDER_VENV)/bin/python -c "import virtio_lab; print('binder-check: virtio_lab', virtio_lab.__version__, 'from', virtio_lab.__file__)"
	cd notebooks && $(BINDER_VENV)/bin/python -m pytest -q -p no:cacheprovider -o addopts= --nbval-lax \
	  --nbval-current-env --nbval-sanitize-with ../tests/nbval_sanitize.cfg [0-9][0-9]-*.ipynb

# The JupyterLite site: the course running in the browser (Pyodide), static files, no server.
# Its own venv: `jupyter lite build` bundles the front-end extensions of the env it runs in, and
# the [lite] pins (lite/constraints.txt freezes the rest) must not meet the [lab] ones. Pyodide's
# core files come from npm (lite/package-lock.json). lite/build.py builds from scratch every time
# (an incremental build was seen to drop the local pyodideUrl) and verifies the result.
SITE        ?= _site
LITE_VENV   := .venv-lite
LITE_STAMP  := $(LITE_VENV)/.installed-lite
NPM_STAMP   := lite/node_modules/.package-lock.json
LITE_ARGS   ?=
LITE_TEST_ARGS ?=

$(LITE_STAMP): pyproject.toml lite/constraints.txt
	$(PYTHON) -m venv $(LITE_VENV)
	$(LITE_VENV)/bin/python -m pip install --quiet -c lite/constraints.txt -e '.[lite]'
	@touch $@

$(NPM_STAMP): lite/package.json lite/package-lock.json
	cd lite && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error

lite: $(LITE_STAMP) $(NPM_STAMP)
	$(LITE_VENV)/bin/python lite/build.py --out $(SITE) $(LITE_ARGS)

# Chromium, every host but 127.0.0.1 unreachable: every notebook and the app, Run All, then the
# checked outputs against the committed ones and a ▶ on every explorer (tests/lite/run_lite.py).
lite-test: lite $(TEST_STAMP)
	$(BIN)/python tests/lite/run_lite.py $(SITE) $(LITE_TEST_ARGS)

lite-serve:
	@test -f $(SITE)/index.html || { echo "make lite-serve: no $(SITE)/ yet: run make lite"; exit 2; }
	$(PYTHON) -m http.server --directory $(SITE) --bind 127.0.0.1 8000

bench-browser: lite $(TEST_STAMP)
	$(BIN)/python benchmarks/in_chromium.py $(SITE) $(ARGS)

clean:
	rm -rf $(VENV) $(LITE_VENV) $(SITE) lite/node_modules .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
