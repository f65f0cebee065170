# The README's two commands: `make report` (install, then the main job) and `make test`.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL ?= 3

CORES ?= 2

.PHONY: install report test test-fast bench fuzz clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt requirements-nodeps.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24" "setuptools>=68" wheel
	$(PY) -m pip install --quiet -c constraints.txt -e ".[all,test]"
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

# Main job: every configured run (config/config.yaml) and the HTML report, results/report.html.
report: install
	$(VENV)/bin/snakemake --cores $(CORES) results/report.html

test: install
	$(PY) -m pytest -ra

test-fast: install
	$(PY) -m pytest -ra -m "not slow"

clean:
	rm -rf results build .pytest_cache .hypothesis

# Benchmarks of the protocol and the board timing: fidelity, upload, and the session's two paths against the
# floor measured in the same run (prints tables with targets met/missed, writes results/bench/*.json).
bench: install
	$(PY) bench/run_bench.py
	$(PY) bench/session_paths.py
	$(PY) bench/upload.py

# Structure-aware fuzzing of the inference server (a subprocess, 127.0.0.1 only): prints frames by type and
# outcome, deaths, hangs and memory growth; fails on any death or hang (bench/fuzz.py --help for options).
fuzz: install
	$(PY) bench/fuzz.py --frames 100000
