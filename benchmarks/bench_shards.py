"""Sharded indexes and shard-sized memory, each measurement a fresh process,
alternating, medians.

1. knn: the same rows as one .npy (+ ids) and as 8 .npy shards (+ ids files);
   `vecpipe knn` over each, whole processes, queries/s; the answer compared
   (bar: sharded >= 0.8x single-matrix).
2. Memory per worker, flat with the shard count: peak RSS of `vecpipe encode`
   (local engine: the per-shard function a Ray worker runs) over 2 and over 8
   shards of the same size, builtin:zh-classic; and of `vecpipe knn` over 2
   and 8 index shards of the same size (bar: 8/2 within 1.2x).

    python benchmarks/bench_shards.py [--repeat 3] [--rows 400000] [--dim 384] [--queries 2000]
"""
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

from _common import PEAK_RSS
from bench_ray import make_shards

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "shards"
RESULTS = HERE / "results"


# the child reports its own VmHWM: a forked child's ru_maxrss starts from its parent's high-water mark
CHILD = PEAK_RSS + (
    "import os, sys\nfrom vecpipe.cli.main import main\ntry:\n    rc = main(sys.argv[1:])\nfinally:\n"
    "    open(os.environ['VP_PEAK_RSS'], 'w').write(str(peak_rss()))\nsys.exit(rc)\n")


def run(args) -> tuple[float, int]:
    """(seconds, peak RSS in bytes) of one fresh `vecpipe` process."""
    peak = OUT / "peak-rss.txt"
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, "-q", *map(str, args)], stdout=subprocess.DEVNULL,
                          env={**os.environ, "VP_PEAK_RSS": str(peak)})
    if proc.returncode:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(map(str, args))}")
    return time.perf_counter() - t, int(peak.read_text())


def write_index(rows: int, dim: int, shards: int, folder: Path, seed=0):
    """Unit-ish random rows with some duplicated across shards; one .npy + ids, and shards + ids files."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, dim)).astype(np.float32)
    x[rows // 2 : rows // 2 + 1000] = x[:1000]  # exact duplicates in another shard: ties
    ids = [f"d{i}" for i in range(rows)]
    np.save(folder / "all.npy", x)
    (folder / "all.ids").write_text("\n".join(ids) + "\n")
    sharded = folder / f"shards-{shards}"
    sharded.mkdir(exist_ok=True)
    for j, part in enumerate(np.array_split(np.arange(rows), shards)):
        np.save(sharded / f"s{j:03d}.npy", x[part])
        (sharded / f"s{j:03d}.ids.jsonl").write_bytes(b"".join(orjson.dumps({"id": ids[i]}) + b"\n" for i in part))
    return x, sharded


def bench_knn(args) -> dict:
    folder = OUT / f"knn-{args.rows}x{args.dim}"
    x, sharded = write_index(args.rows, args.dim, 8, folder)
    rng = np.random.default_rng(1)
    q = np.concatenate([x[: args.queries // 2], rng.standard_normal((args.queries - args.queries // 2, args.dim))]).astype(np.float32)
    np.save(folder / "q.npy", q)
    single_args = ["knn", "--index", folder / "all.npy", "--ids", folder / "all.ids", "--queries", folder / "q.npy", "-k", "10"]
    shard_args = ["knn", "--index", sharded, "--queries", folder / "q.npy", "-k", "10"]
    times = {"single": [], "sharded": []}
    for _ in range(args.repeat):
        times["single"].append(run([*single_args, "-o", folder / "single.jsonl"])[0])
        times["sharded"].append(run([*shard_args, "-o", folder / "sharded.jsonl"])[0])
    a = [orjson.loads(line) for line in (folder / "single.jsonl").read_bytes().splitlines()]
    b = [orjson.loads(line) for line in (folder / "sharded.jsonl").read_bytes().splitlines()]
    same_ids = sum(1 for r, s in zip(a, b) if [h["id"] for h in r["neighbors"]] == [h["id"] for h in s["neighbors"]])
    max_diff = max(abs(h["score"] - g["score"]) for r, s in zip(a, b) for h, g in zip(r["neighbors"], s["neighbors"]))
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["single"] / med["sharded"]
    print(f"knn, {args.rows:,} x {args.dim} float32, {args.queries} queries, k=10, whole processes, median of {args.repeat}:")
    for k in times:
        print(f"  {k:8s} {args.queries / med[k]:8.0f} queries/s  {med[k]:6.2f} s   runs: {', '.join(f'{t:.2f}' for t in times[k])}")
    print(f"  sharded (8 shards) / single: {ratio:.2f}x (bar: >= 0.8x); same neighbours for {same_ids}/{len(a)} queries, "
          f"max |score difference| {max_diff:.1e}")
    return {"times": times, "ratio": ratio, "same_ids": same_ids, "queries": len(a), "max_score_diff": max_diff}


def bench_memory(args) -> dict:
    out = {}
    per_shard = args.mem_per_shard
    for n in (2, 8):
        src = make_shards(OUT / f"mem-in-{n}x{per_shard}", n, per_shard)
        rss = []
        for _ in range(args.repeat):
            target = OUT / f"mem-out-{n}"
            import shutil

            shutil.rmtree(target, ignore_errors=True)
            rss.append(run(["encode", "-m", "builtin:zh-classic", src, "-o", target])[1])
        out[f"encode_{n}"] = statistics.median(rss)
    folder = OUT / "mem-knn"
    for n in (2, 8):
        _, sharded = write_index(n * args.mem_index_rows, args.dim, n, folder / str(n), seed=n)
        np.save(folder / "q.npy", np.random.default_rng(2).standard_normal((200, args.dim)).astype(np.float32))
        out[f"knn_{n}"] = statistics.median(run(["knn", "--index", sharded, "--queries", folder / "q.npy", "-o", folder / "o.jsonl"])[1]
                                             for _ in range(args.repeat))
    print(f"memory, peak RSS (median of {args.repeat}):")
    print(f"  encode, {per_shard:,} texts a shard:  2 shards {out['encode_2'] / 1e6:6.0f} MB, 8 shards {out['encode_8'] / 1e6:6.0f} MB: "
          f"{out['encode_8'] / out['encode_2']:.2f}x (bar: <= 1.2x)")
    print(f"  knn, {args.mem_index_rows:,} x {args.dim} a shard: 2 shards {out['knn_2'] / 1e6:6.0f} MB, "
          f"8 shards {out['knn_8'] / 1e6:6.0f} MB: "
          f"{out['knn_8'] / out['knn_2']:.2f}x (bar: <= 1.2x)")
    return out


def bench_parquet_bytes(args) -> dict:
    """Bytes per row of the vector column in a Parquet shard vecpipe wrote, 768
    dimensions, each precision (20,000 LCQMC texts, a 768-d static model of
    random character vectors: float mantissas look random, as real ones do)."""
    import pyarrow.parquet as pq

    from bench_ray import lcqmc_like
    from vecpipe.core.vectors.readwrite import write_vectors
    from vecpipe.core.vectors.wordvectors import WordVectors

    folder = OUT / "pqsize"
    texts = lcqmc_like(20_000, seed=0)
    chars = sorted({c for t in texts for c in t})
    model = folder / "v768.vecdir"
    if not model.exists():
        write_vectors(WordVectors(chars, np.random.default_rng(0).standard_normal((len(chars), 768)).astype(np.float32)), model, "vecdir")
    src = folder / "in"
    src.mkdir(parents=True, exist_ok=True)
    (src / "part-0.jsonl").write_bytes(b"".join(orjson.dumps({"text": t}) + b"\n" for t in texts))
    out = {}
    print("Parquet, 768 dimensions, bytes per row of the vector column (20,000 rows):")
    for precision, raw in (("float32", 3072), ("float16", 1536), ("int8", 768), ("binary", 96)):
        target = folder / f"out-{precision}"
        import shutil

        shutil.rmtree(target, ignore_errors=True)
        run(["encode", "-m", model, "--tokenize", "char", src, "-o", target, "--precision", precision])
        md = pq.ParquetFile(target / "part-0.parquet").metadata
        per_row = sum(md.row_group(g).column(i).total_compressed_size for g in range(md.num_row_groups)
                      for i in range(md.num_columns) if md.row_group(g).column(i).path_in_schema.startswith("vector")) / md.num_rows
        out[precision] = {"raw": raw, "measured": per_row, "per_100M_GB": per_row * 1e8 / 1e9}
        print(f"  {precision:8s} raw {raw:5d} B, written {per_row:8.1f} B/row: {per_row * 1e8 / 1e9:6.1f} GB per 100M vectors")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rows", type=int, default=400_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--mem-per-shard", type=int, default=50_000)
    ap.add_argument("--mem-index-rows", type=int, default=100_000)
    ap.add_argument("--skip", nargs="*", default=[], choices=["knn", "memory", "parquet"])
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    report = {"started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "args": vars(args)}
    if "knn" not in args.skip:
        report["knn"] = bench_knn(args)
    if "memory" not in args.skip:
        report["memory"] = bench_memory(args)
    if "parquet" not in args.skip:
        report["parquet_bytes"] = bench_parquet_bytes(args)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"shards-{time.strftime('%Y-%m-%d-%H%M', time.gmtime())}.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
