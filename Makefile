# rtenhance: `make demo` sets everything up and runs the main job on a bundled clip; `make test` runs the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.rtenhance-setup

.PHONY: setup demo test test-all bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $(STAMP)

DEMO_IN := rtenhance/data/demo_noisy.wav
DEMO_OUT := demo-output/demo_enhanced.wav

demo: setup
	mkdir -p $(dir $(DEMO_OUT))
	$(PY) -m rtenhance run --input file:$(DEMO_IN) --output file:$(DEMO_OUT) --set stats.interval_s=2
	@echo "demo: the daemon enhanced $(DEMO_IN) in real time -> $(DEMO_OUT)"

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest -q -m "not slow"
	$(PY) -m pytest -q -m sanitizers

test-all: setup
	$(PY) -m ruff check .
	$(PY) -m pytest -q

bench: setup
	$(PY) bench/step_latency.py

clean:
	rm -rf $(VENV) build dist *.egg-info rtenhance/_native
