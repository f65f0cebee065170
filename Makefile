# The README's two commands: `make report` (install, then the main job) and `make test`.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL ?= 3

MODEL_KERAS := edge_ai_lib.modelwrappers.classification.tensorflow_digits.TensorFlowDigitsCNN
MODEL_TORCH := edge_ai_lib.modelwrappers.classification.pytorch_digits.PyTorchDigitsCNN
DATASET := edge_ai_lib.datasets.digits.DigitsDataset

.PHONY: install report test test-fast bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt requirements-nodeps.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24" "setuptools>=68" wheel
	$(PY) -m pip install --quiet -c constraints.txt -e ".[all,test]"
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

# Main job: train the default digits models and benchmark them on the host.
report: install
	$(PY) -m edge_ai_lib.scenarios.model_training $(MODEL_KERAS) $(DATASET) --logdir results/logs/keras \
		--dataset-root results/datasets/digits --model-path results/models/digits.keras \
		--batch-size 32 --learning-rate 0.001 --num-epochs 10
	$(PY) -m edge_ai_lib.scenarios.inference_performance $(MODEL_KERAS) $(DATASET) results/host digits-keras \
		--model-path results/models/digits.keras --dataset-root results/datasets/digits
	$(PY) -m edge_ai_lib.scenarios.model_training $(MODEL_TORCH) $(DATASET) --logdir results/logs/pytorch \
		--dataset-root results/datasets/digits --model-path results/models/digits.pt \
		--batch-size 32 --learning-rate 0.001 --num-epochs 10
	$(PY) -m edge_ai_lib.scenarios.inference_performance $(MODEL_TORCH) $(DATASET) results/host digits-pytorch \
		--model-path results/models/digits.pt --dataset-root results/datasets/digits

test: install
	$(PY) -m pytest -ra

test-fast: install
	$(PY) -m pytest -ra -m "not slow"

clean:
	rm -rf results build .pytest_cache .hypothesis

# Benchmarks of the protocol and the board timing (prints a table, writes results/bench/*.json).
bench: install
	$(PY) bench/run_bench.py
