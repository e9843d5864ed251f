#!/usr/bin/env bash
# Prepare the GPU benchmark on a CPU machine with internet, from any folder of
# a checkout (the main one or a worktree); works in that checkout's root:
#   .whl/      vecpipe's own wheel + orjson for CPython 3.12, manylinux x86-64
#              (the device image has torch, transformers, sentence-transformers,
#              numpy, click, tqdm, scipy, but not orjson; encode/knn need no
#              polars or gensim)
#   .gpudata/  the four data files the benchmark reads (LCQMC test, STS-B train,
#              CMRC2018 corpus, bert-base-chinese vocab), from $VECPIPE_DATA
#              (default ../shared/data)
# Both are listed in .git/info/exclude, so they travel only when named in carry.
# Then, on the device machine: bash benchmarks/gpu_run.sh (see there).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && PY=${PYTHON:-.venv/bin/python}
DATA=${VECPIPE_DATA:-../shared/data}
ORJSON=${ORJSON_VERSION:-3.11.5}

exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
for p in /.whl/ /.gpudata/; do
    grep -qxF "$p" "$exclude" 2>/dev/null || echo "$p" >> "$exclude"
done

rm -rf .whl .gpudata
mkdir -p .whl .gpudata/LCQMC .gpudata/STS-B-zh .gpudata/CMRC2018-retrieval .gpudata/bert-base-chinese
cp "$DATA/LCQMC/test.txt" .gpudata/LCQMC/
cp "$DATA/STS-B-zh/STS-B.train.data" .gpudata/STS-B-zh/
cp "$DATA/CMRC2018-retrieval/corpus.tsv" .gpudata/CMRC2018-retrieval/
cp "$DATA/bert-base-chinese/vocab.txt" .gpudata/bert-base-chinese/
chmod -R u+w .gpudata

# vecpipe itself, pure Python; the build folders go to a temp dir, not the checkout
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
cp -r pyproject.toml README.md vecpipe cli core "$build/"
"$PY" -m pip wheel -q --no-deps "$build" -w .whl
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl "orjson==$ORJSON"
ls -la .whl .gpudata/*
du -sh .whl .gpudata
git status --short --ignored .whl .gpudata | head -3
