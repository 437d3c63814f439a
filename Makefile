# Two commands do everything on a fresh machine with Python 3.11 and pip:
#   make demo   - create .venv if missing, train/evaluate/save a small classifier on the committed sample, predict,
#                 and run every shipped model on sample photos (runs/demo/zoo/index.html)
#   make test   - create .venv if missing, run the test suite
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_ZOO := weights/demo
DEMO_WEIGHTS := $(DEMO_ZOO)/demo_grocery_sample.safetensors

.PHONY: demo test venv clean

$(BIN)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]' -c constraints.txt
	touch $@

venv: $(BIN)/.installed

demo: venv
	HF_HUB_OFFLINE=1 $(BIN)/python tools/train.py --config configs/classification/demo.yaml \
		--zoo-name demo_grocery_sample --zoo-dir $(DEMO_ZOO)
	HF_HUB_OFFLINE=1 $(BIN)/python tools/eval.py --model $(DEMO_WEIGHTS) --data data/grocery_sample/val.txt \
		--out runs/demo/eval
	HF_HUB_OFFLINE=1 $(BIN)/python tools/predict.py --model $(DEMO_WEIGHTS) --topk 3 \
		--images data/grocery_sample/val/Packages/Juice data/grocery_sample/val/Fruit/Banana
	HF_HUB_OFFLINE=1 $(BIN)/python tools/zoo_demo.py --out runs/demo/zoo
	@echo "open runs/demo/zoo/index.html to see the shipped classifier, detector and brand recogniser at work"

test: venv
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

clean:
	rm -rf runs $(DEMO_ZOO)
