# Two commands do everything on a fresh machine with Python 3.11 and pip:
#   make demo   - create .venv with what the demo needs, train/evaluate/save a small classifier on the committed
#                 sample, predict, and run every shipped model on sample photos (runs/demo/zoo/index.html)
#   make test   - add the test extras to .venv, run the test suite (make test-slow: the slow multi-process tests)
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_ZOO := weights/demo
DEMO_WEIGHTS := $(DEMO_ZOO)/demo_grocery_sample.safetensors

.PHONY: demo test test-slow lint venv clean

# the demo needs the library and the detector extra; the tests add their extras on top
$(BIN)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[detection]' -c constraints.txt
	touch $@

$(BIN)/.installed-test: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test]' -c constraints.txt
	touch $@

venv: $(BIN)/.installed

demo: venv
	HF_HUB_OFFLINE=1 $(BIN)/vision train --config configs/classification/demo.yaml \
		--zoo-name demo_grocery_sample --zoo-dir $(DEMO_ZOO) --trainer.default_root_dir runs/demo
	HF_HUB_OFFLINE=1 $(BIN)/vision eval --model $(DEMO_WEIGHTS) --data data/grocery_sample/val.txt \
		--out runs/demo/eval --no-progress
	HF_HUB_OFFLINE=1 $(BIN)/vision predict --model $(DEMO_WEIGHTS) --topk 3 --no-progress \
		--images data/grocery_sample/val/Packages/Juice data/grocery_sample/val/Fruit/Banana
	HF_HUB_OFFLINE=1 $(BIN)/python tools/zoo_demo.py --out runs/demo/zoo --trained $(DEMO_WEIGHTS) \
		--report runs/demo
	@echo "the vision command is in $(BIN): source $(BIN)/activate, then try: vision zoo"
	@echo "open runs/demo/zoo/index.html to see the shipped models and the one just trained at work"

# the suite (under 10 minutes on 2 cores), on pytest-xdist's workers, one per core (at most 4: each holds its own torch;
# a module's tests stay on one worker, so its module fixtures, a tritonserver among them, start once);
# test-slow: the multi-process fault-injection runs and the wheel build (marked slow, one at a time; .ci/run runs both)
TEST_WORKERS ?= auto
test: $(BIN)/.installed-test
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "not slow" -n $(TEST_WORKERS) --maxprocesses 4 --dist loadscope

test-slow: $(BIN)/.installed-test
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m slow

lint: $(BIN)/.installed-test
	$(BIN)/ruff check .

clean:
	rm -rf runs $(DEMO_ZOO)
