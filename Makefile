# vecpipe: `make test` sets up .venv and runs the tests; `make demo` runs a real job.
# TORCH_SPEC picks the torch build: on a CPU-only machine use a CPU wheel,
# e.g. make test TORCH_SPEC='torch==2.13.0' (an unpinned torch may pull a multi-GB CUDA build).
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch
DATA ?= ../shared/data
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test test-all demo docs bench clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

test: install
	VECPIPE_DATA=$(DATA) $(BIN)/python -m pytest -q

test-all: install
	VECPIPE_DATA=$(DATA) $(BIN)/python -m pytest -q -m ''

# A real job on real data: a Chinese word-vector file to the native vecdir and back,
# checked against gensim's own reader.
demo: install
	@mkdir -p build
	$(BIN)/vecpipe convert $(DATA)/small-vectors/pku-morpheme-cbow.50d.txt -o build/pku.vecdir
	@cat build/pku.vecdir/meta.json
	$(BIN)/vecpipe convert build/pku.vecdir --to word2vec --limit 3 | cut -c1-80
	$(BIN)/vecpipe convert build/pku.vecdir --to jsonl --limit 2 | cut -c1-80
	$(BIN)/vecpipe convert build/pku.vecdir -o build/pku.bin
	$(BIN)/python -c "from gensim.models import KeyedVectors as K; kv = K.load_word2vec_format('build/pku.bin', binary=True); print('gensim reads build/pku.bin:', len(kv), 'words; nearest to 世界:', [w for w, _ in kv.most_similar('世界', topn=5)])"

docs: install
	$(BIN)/python -m vecpipe.cli.docs .

bench: install
	VECPIPE_DATA=$(DATA) $(BIN)/python benchmarks/bench_convert.py

clean:
	rm -rf build .pytest_cache
