#!/usr/bin/env bash
# Run the whole GPU benchmark on the device machine, from the repo root, after
# benchmarks/gpu_prepare.sh made .whl/ and .gpudata/ (carry both):
#   bash benchmarks/gpu_run.sh
# Installs the wheels into /tmp/site, then benchmarks/gpu_bench.py runs every
# anchor and vecpipe measurement in its own process under a time bound
# (BUDGET_S, default 320 s: no task starts or runs past it; the benchmark is
# killed at TIME_LIMIT, 345 s). Device call: timeout_s=360, carry .whl and .gpudata.
# Writes $OUT/gpu_results.json, $OUT/gpu_run.log, $OUT/gpu_summary.txt, $OUT/gpu_env.txt.
# A CPU check of the plumbing: SMOKE=1 DEVICE=cpu OUT=/tmp/out bash benchmarks/gpu_run.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
case $PY in */*) PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")" ;; esac  # absolute, venv links kept
OUT=${OUT:-$PWD/.gpuout}
mkdir -p "$OUT"
if [ "${SKIP_WHEELS:-0}" != 1 ]; then
    ls .whl/*.whl >/dev/null || { echo "no .whl/: run benchmarks/gpu_prepare.sh and carry .whl" >&2; exit 66; }
    site=${SITE:-/tmp/site}
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" ${WHEELS:-.whl/*.whl} || exit 69
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export VECPIPE_DATA=${VECPIPE_DATA:-$PWD/.gpudata}
[ -f "$VECPIPE_DATA/LCQMC/test.txt" ] || { echo "no data in $VECPIPE_DATA: run benchmarks/gpu_prepare.sh and carry .gpudata" >&2; exit 66; }
{
    date -u
    nvidia-smi 2>&1 || true
    (cd /tmp && "$PY" -c "import sys, torch, transformers, sentence_transformers, numpy, orjson, vecpipe
print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'transformers', transformers.__version__,
      'sentence-transformers', sentence_transformers.__version__, 'numpy', numpy.__version__, 'orjson', orjson.__version__,
      'vecpipe', vecpipe.__version__, vecpipe.__file__)")
} > "$OUT/gpu_env.txt" 2>&1
cat "$OUT/gpu_env.txt"
smoke=()
[ "${SMOKE:-0}" = 1 ] && smoke=(--smoke)
timeout -k 5 "${TIME_LIMIT:-345}" "$PY" benchmarks/gpu_bench.py --out "$OUT" --device "${DEVICE:-cuda}" \
    --budget-s "${BUDGET_S:-320}" ${smoke[@]+"${smoke[@]}"}
