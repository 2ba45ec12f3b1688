# videozoo: `make demo` and `make test` each install first when needed.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= data/synthetic

.PHONY: install test demo lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q tests

demo: $(STAMP)
	$(BIN)/zoo synth --format otb --out $(DEMO_DIR)/otb --videos 8 --seed 0 --overwrite
	$(BIN)/zoo synth --format alov --out $(DEMO_DIR)/alov --videos 14 --seed 0 --overwrite
	$(BIN)/zoo synth --format ucf101 --out $(DEMO_DIR)/ucf101 --videos 140 --seed 0 --overwrite
	$(BIN)/zoo list
	$(BIN)/zoo benchmark otb --model identity_tracker --root $(DEMO_DIR)/otb --subset folders --out runs/benchmark/otb
	$(BIN)/zoo fit --config configs/demo_clip_tiny.yaml --data.init_args.root $(DEMO_DIR)/ucf101

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) runs data .pytest_cache
