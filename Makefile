# svhn-tfx: `make demo` runs the pipeline end to end and queries the served model;
# `make test` runs the test suite. Both create .venv (Python 3.10) from the pinned set.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
BIN := $(VENV)/bin
# Python 3.10 is required (TFX 1.16); find it even behind an unset pyenv shim.
PYTHON310 ?= $(shell for p in python3.10 $$HOME/.pyenv/versions/3.10*/bin/python3.10 /usr/bin/python3.10; do \
	$$p -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null && { command -v $$p || echo $$p; } && break; done)

export SVHN_TFX_ROOT ?= $(CURDIR)/artifacts
# The TFX CLI keeps its pipeline registry here (it would otherwise use $HOME/tfx/local).
export LOCAL_HOME ?= $(SVHN_TFX_ROOT)/tfx-cli
# Not for a person reading the demo: TensorFlow's CUDA registration errors on a machine without
# a GPU (kept where /dev/nvidiactl is) and Google libraries' Python-version FutureWarnings,
# which the TFX CLI's own process prints before any project code runs.
export TF_CPP_MIN_LOG_LEVEL ?= $(if $(wildcard /dev/nvidiactl),2,3)
export PYTHONWARNINGS ?= ignore::FutureWarning
PIPELINE_NAME ?= svhn-tfx
DATA := $(SVHN_TFX_ROOT)/data

.PHONY: help venv demo data pipeline serve-demo test bench bench-quick beam-portable pretrain lock clean

help:
	@echo "make demo   generate data, run the TFX pipeline (tfx CLI, local engine), serve and query the model"
	@echo "make test   run the test suite"
	@echo "make bench  run the product benchmarks (about an hour; the ablations only by name, see README); results in bench/RESULTS.md"
	@echo "make bench-quick  a smoke run of every benchmark at tiny sizes (12-25 minutes)"
	@echo "make pretrain  remake pretrained/ (the weights make demo warm-starts from), generated data only"
	@echo "make clean  remove $(SVHN_TFX_ROOT) (pipeline outputs, MLMD, pushed models)"

venv: $(VENV)/.installed

$(VENV)/.installed: setup.py constraints.txt
	@test -n "$(PYTHON310)" || { echo "error: python3.10 not found (TFX 1.16 needs Python 3.10)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON310) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check "uv==$$(sed -n 's/^uv==//p' constraints.txt)"
	$(BIN)/uv pip install --python $(BIN)/python -c constraints.txt -e '.[dev]'
	touch $@

data: venv
	@# generated again only when the generator, count or seed changed (its fingerprint file)
	$(BIN)/svhn-tfx-data synthetic --out "$(DATA)" --reuse \
		--train $${SVHN_TFX_DEMO_TRAIN:-20000} --eval $${SVHN_TFX_DEMO_EVAL:-2000}
	@# SVHN_TFX_REAL_DIR: a folder of the user's labelled real crops (<0-9|none>/*.png), added
	@# as the eval split "real" and reported on its own (written once; rm -r $(DATA)/real to redo)
	@if [ -n "$$SVHN_TFX_REAL_DIR" ] && [ ! -d "$(DATA)/real" ]; then \
		$(BIN)/svhn-tfx-data folder "$$SVHN_TFX_REAL_DIR" --out "$(DATA)" --split real; \
	fi

pipeline: data
	@if [ -d "$(LOCAL_HOME)/$(PIPELINE_NAME)" ]; then \
		$(BIN)/tfx pipeline update --engine local --pipeline_path pipeline/local_runner.py; \
	else \
		$(BIN)/tfx pipeline create --engine local --pipeline_path pipeline/local_runner.py; \
	fi
	$(BIN)/tfx run create --engine local --pipeline_name $(PIPELINE_NAME)

serve-demo: venv
	$(BIN)/svhn-tfx-demo

demo: pipeline serve-demo

pretrain: venv
	$(BIN)/python -m svhn_tfx.pipeline.pretrain_runner

test: venv
	$(BIN)/python -m pytest

bench: venv
	$(BIN)/python -m bench.run $(BENCH_ARGS)

bench-quick: venv
	$(BIN)/python -m bench.run --quick $(BENCH_ARGS)

# The Beam components on Beam's portable runner (job server + SDK worker processes), checked
# against the DirectRunner: the local stand-in for Flink/Spark (see the README).
beam-portable: venv
	$(BIN)/python -m bench.run --only portable $(BENCH_ARGS)

lock: venv
	{ echo "# Exact pins for Python 3.10 + TFX 1.16.0 (make lock). Beam 2.74 needs dill added."; \
	  $(BIN)/uv pip freeze --python $(BIN)/python | grep -v '^-e'; } > constraints.txt

clean:
	rm -rf "$(SVHN_TFX_ROOT)"
