# vecpipe: `make test` sets up .venv, lints and runs the tests; `make demo` runs a real job.
# TORCH_SPEC picks the torch release; TORCH_INDEX the package index it comes from.
# On Linux the public index (PyPI) serves torch built for CUDA (GBs of GPU
# libraries); a CPU-only machine wants PyTorch's own CPU index:
#   make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
# Where a local index already serves a CPU build (as on this project's CI
# machines), pinning that release is enough: make test TORCH_SPEC='torch==2.13.0'.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch
TORCH_INDEX ?=
DATA ?= ../shared/data
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install lint test test-all demo readme-check docs bench clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

# ruff: pyflakes, pycodestyle, bugbear, and no heavy library imported at module
# level (the rules are in pyproject.toml)
lint: install
	$(BIN)/ruff check .

test: lint
	VECPIPE_DATA=$(DATA) $(BIN)/python -m pytest -q

test-all: install
	VECPIPE_DATA=$(DATA) $(BIN)/python -m pytest -q -m ''

# The main job, offline: the embedded demo model (builtin:zh-classic, trained by
# vecpipe itself on four public-domain classical novels) through knn, an
# analogy, encode + knn over sentences, and sim.
VP = $(BIN)/vecpipe
demo: install
	@mkdir -p build
	@echo "== nearest words to three characters' names"
	$(VP) knn -m builtin:zh-classic 悟空 黛玉 孔明 -k 5 --flat
	@echo "== 宝玉 is to 袭人 (his maid) as 黛玉 is to ?"
	$(VP) knn -m builtin:zh-classic --analogy 宝玉 袭人 黛玉 -k 3 --flat
	@echo "== sentences to vectors (.npy), then the nearest sentence to each question"
	printf '孙悟空大闹天宫\n林黛玉独自葬花\n诸葛亮草船借箭\n武松在景阳冈上打虎\n宋江带领众好汉上梁山\n' > build/demo-sentences.txt
	$(VP) encode -m builtin:zh-classic build/demo-sentences.txt -o build/demo.npy
	$(VP) knn -m builtin:zh-classic --index build/demo.npy --ids build/demo-sentences.txt -k 1 --flat 孔明用计借箭 黛玉伤心落泪 行者与妖精斗法
	@echo "== similarity of word pairs"
	printf '悟空\t行者\n黛玉\t宝钗\n孔明\t宋江\n' | $(VP) sim -m builtin:zh-classic
	@echo "== the model as word2vec text, for any other tool"
	$(VP) convert core/builtin/zh-classic --to word2vec --limit 3 | cut -c1-60

readme-check: install
	VECPIPE_DATA=$(DATA) $(BIN)/python -m pytest -q tests/test_readme.py

docs: install
	$(BIN)/python -m vecpipe.cli.docs .

bench: install
	VECPIPE_DATA=$(DATA) $(BIN)/python benchmarks/bench_convert.py
	VECPIPE_DATA=$(DATA) $(BIN)/python benchmarks/bench_encode.py
	VECPIPE_DATA=$(DATA) $(BIN)/python benchmarks/bench_knn.py
	VECPIPE_DATA=$(DATA) $(BIN)/python benchmarks/bench_train.py
	VECPIPE_DATA=$(DATA) $(BIN)/python benchmarks/bench_eval.py

clean:
	rm -rf build .pytest_cache
