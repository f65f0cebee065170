# The README's two commands: `make report` (install, then the main job) and `make test`.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL ?= 3
# DVC never reports usage anywhere (also off in .dvc/config).
export DVC_NO_ANALYTICS ?= 1

CORES ?= 2

.PHONY: install report test test-fast bench fuzz clean emulated-up emulated-down report-aarch64

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
	$(PY) bench/compilers.py
	$(PY) bench/ssh_tunnel.py

# Structure-aware fuzzing of the inference server (a subprocess, 127.0.0.1 only): prints frames by type and
# outcome, deaths, hangs and memory growth; fails on any death or hang (bench/fuzz.py --help for options).
fuzz: install
	$(PY) bench/fuzz.py --frames 100000

# The emulated aarch64 board (docs/emulated-board.md): an arm64 Debian under qemu-user behind a chroot sshd on
# loopback; `report-aarch64` brings it up, runs config/examples/aarch64-emulated.yaml, checks the outputs
# against the host's runs, and takes it down again.
emulated-up: install
	$(PY) -m edge_ai_lib.boards.emulated up
emulated-down:
	$(PY) -m edge_ai_lib.boards.emulated down
report-aarch64: install
	$(PY) -m edge_ai_lib.boards.emulated up && { $(VENV)/bin/snakemake --cores $(CORES) --configfile=config/examples/aarch64-emulated.yaml -- results/report.html && $(PY) -m edge_ai_lib.scenarios.output_agreement --results results/benchmarks/; status=$$?; $(PY) -m edge_ai_lib.boards.emulated down; exit $$status; }
