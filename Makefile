# Two entry points for a fresh machine with only Python 3.11+ and pip: `make demo`, `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CORE := domain routing eta evaluation telematics notify store jobs api lastmile bench

.PHONY: demo test lint bench-matrix bench-solomon bench-scale bench-ingest bench-scale-out bench-soak bench-eta clean

$(VENV)/.runtime: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.dev: pyproject.toml $(VENV)/.runtime
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(VENV)/.runtime
	$(VENV)/bin/lastmile demo

test: $(VENV)/.dev
	$(PY) -m pytest

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy $(CORE)
	$(VENV)/bin/lint-imports --no-cache

bench-matrix: $(VENV)/.dev
	$(PY) -m bench.matrix --osm ../shared/data/osm/columbus.osm.pbf --n 1000

bench-solomon: $(VENV)/.dev
	$(PY) -m bench.solomon --time-limit 10

bench-scale: $(VENV)/.dev
	$(PY) -m bench.scale --osm ../shared/data/osm/columbus.osm.pbf

bench-ingest: $(VENV)/.dev
	$(PY) -m bench.ingest --vehicles 50 --seconds 10 --rate 2000

# Needs PostgreSQL (database lastmile_scale, created if missing) and an MQTT 5 broker.
bench-scale-out: $(VENV)/.dev
	$(PY) -m bench.scale_out --workers 1,2 --vehicles 5000 --seconds 20 --rate 1500 --order sticky
	$(PY) -m bench.scale_out --workers 1,2 --vehicles 5000 --seconds 20 --rate 600 --order shuffled

# 20 minutes at 2,000 fixes/s: memory and lag over time (RELIABILITY.md).
bench-soak: $(VENV)/.dev
	$(PY) -m bench.soak --seconds 1200 --rate 2000

bench-eta: $(VENV)/.dev
	$(PY) -m bench.eta_accuracy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
