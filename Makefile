# strotss-video developer commands. `make demo` and `make test` each run `make setup` first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# This torch/torchvision pair is served from local disk on the project's machines (offline);
# elsewhere pip downloads it. Override with e.g. `make setup TORCH_SPEC="torch torchvision"`.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
DEMO_DIR := out/demo

.PHONY: setup demo readme-image test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check $(TORCH_SPEC)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,ray]'
	touch $(STAMP)

setup: $(STAMP)
	$(PY) -m strotss_video weights

demo: setup
	$(PY) scripts/make_samples.py $(DEMO_DIR) --frames 24 > /dev/null
	$(PY) -m strotss_video $(DEMO_DIR)/clip.mp4 $(DEMO_DIR)/style.png $(DEMO_DIR)/stylized.mp4 \
		--preset preview --max-size 192 --overwrite --preview-sheet $(DEMO_DIR)/sheet.png \
		--stats $(DEMO_DIR)/stats.json
	@echo "demo result: $(DEMO_DIR)/stylized.mp4 and its contact sheet $(DEMO_DIR)/sheet.png"

# The README's picture: the first two rows of the demo's contact sheet, in 128 colours.
readme-image: demo
	$(PY) -c "from PIL import Image; im = Image.open('$(DEMO_DIR)/sheet.png').convert('RGB'); \
	w, h = im.size; im.crop((0, 0, w, h // 3)).quantize(colors=128, dither=Image.Dither.NONE) \
	.save('docs/images/demo.png', optimize=True)"

test: setup
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest -q

bench: setup
	$(PY) -m benchmarks.image --sizes 64 128 256 --iters 10 --repeats 3

clean:
	rm -rf $(VENV) out .pytest_cache
