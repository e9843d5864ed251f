"""Exact knn on the CPU against a bare faiss IndexFlatIP script and gensim
most_similar, each in its own fresh process, alternating, medians; and sim with
a static model against a per-pair gensim `similarity` loop.

    python benchmarks/bench_knn.py [--rows 200000] [--dim 300] [--queries 10000] [--repeat 5]

Every run is a new Python process (OpenBLAS's and faiss's OpenMP thread pools
in one process fight over the cores and fake the ratio). Two figures:
- whole process: start, load the index and the queries from .npy, search,
  write JSONL (`vecpipe knn --metric dot` against a faiss script doing the
  same with orjson);
- search only: the timed search call inside a process (vecpipe's core.search
  topk, faiss IndexFlatIP.search, gensim most_similar per query).
The index rows are unit length, so dot = cosine for all three.

Bars: whole process >= 0.9x faiss (ratio = faiss time / vecpipe time),
>= 10x gensim most_similar per query; sim >= 3x the gensim loop; peak RSS of
`vecpipe knn` over an mmap'd index bounded by the index plus a fixed working set.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _common import PEAK_RSS

OUT = Path(__file__).resolve().parent / "out"
K = 10

# Each child prints one JSON line: {"search": seconds, "n": queries searched, ...}.
FAISS = """
import sys, time, json
import numpy as np, faiss, orjson
x = np.load(sys.argv[1]); q = np.load(sys.argv[2]); k = int(sys.argv[4])
fi = faiss.IndexFlatIP(x.shape[1]); fi.add(x)
t = time.perf_counter(); D, I = fi.search(q, k); t = time.perf_counter() - t
with open(sys.argv[3], "wb") as f:
    for i, (d, r) in enumerate(zip(D, I)):
        f.write(orjson.dumps({"row": i, "neighbors": [{"id": int(a), "score": float(b)} for a, b in zip(r, d)]}) + b"\\n")
print(json.dumps({"search": t, "n": len(q), "threads": faiss.omp_get_max_threads()}))
"""

VECPIPE_CLI = PEAK_RSS + """
import sys, json
from vecpipe.cli.main import main
rc = main(["-q", "knn", "--index", sys.argv[1], "--queries", sys.argv[2], "-o", sys.argv[3], "-k", sys.argv[4],
           "--metric", "dot"])
print(json.dumps({"rss": peak_rss()}))
sys.exit(rc)
"""

VECPIPE_SEARCH = """
import sys, time, json
import numpy as np
from vecpipe.core.search.index import load_index
from vecpipe.core.search.knn import KnnOptions, search
index = load_index(sys.argv[1]); q = np.load(sys.argv[2]); k = int(sys.argv[4])
t = time.perf_counter(); search(index, q, KnnOptions(k=k, metric="dot")); t = time.perf_counter() - t
print(json.dumps({"search": t, "n": len(q)}))
"""

GENSIM = """
import sys, time, json
import numpy as np
from gensim.models import KeyedVectors
x = np.load(sys.argv[1]); q = np.load(sys.argv[2]); k = int(sys.argv[4]); n = int(sys.argv[5])
kv = KeyedVectors(x.shape[1]); kv.add_vectors([f"w{i}" for i in range(len(x))], x); kv.fill_norms()
t = time.perf_counter()
for i in range(n):
    kv.most_similar(positive=[q[i]], topn=k)
t = time.perf_counter() - t
print(json.dumps({"search": t, "n": n}))
"""


def run_child(code: str, *argv) -> tuple[float, dict]:
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, *map(str, argv)], capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode:
        raise SystemExit(f"child failed ({proc.returncode}):\n{proc.stderr}")
    return wall, json.loads(proc.stdout.strip().splitlines()[-1])


def make_data(rows: int, dim: int, queries: int) -> tuple[Path, Path]:
    xp, qp = OUT / f"knn-index-{rows}x{dim}.npy", OUT / f"knn-queries-{queries}x{dim}.npy"
    if not (xp.exists() and qp.exists()):
        rng = np.random.default_rng(0)
        x = rng.standard_normal((rows, dim)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        q = x[rng.choice(rows, queries, replace=False)] + 0.05 * rng.standard_normal((queries, dim)).astype(np.float32)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        np.save(xp, x)
        np.save(qp, q)
    return xp, qp


def same_answers(a: Path, b: Path) -> float:
    """Share of (query, rank) places where two JSONL outputs name the same id."""
    same = total = 0
    with open(a, "rb") as fa, open(b, "rb") as fb:
        for la, lb in zip(fa, fb):
            ia = [h["id"] for h in json.loads(la)["neighbors"]]
            ib = [h["id"] for h in json.loads(lb)["neighbors"]]
            same += sum(x == y for x, y in zip(ia, ib))
            total += len(ia)
    return same / max(total, 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--dim", type=int, default=300)
    ap.add_argument("--queries", type=int, default=10_000)
    ap.add_argument("--gensim-queries", type=int, default=200, help="gensim answers one query per call: time this many")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-sim", action="store_true", help="Skip the sim benchmark.")
    ap.add_argument("--whole-only", action="store_true", help="Only the whole processes of vecpipe and faiss.")
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    xp, qp = make_data(args.rows, args.dim, args.queries)
    print(f"index {args.rows} x {args.dim} float32 (unit rows), {args.queries} queries, k={K}; "
          f"fresh process per run, {args.repeat} rounds, alternating, medians")
    try:
        import faiss  # noqa: F401

        have_faiss = True
    except ImportError:
        have_faiss = False
        print("  faiss not installed (pip install faiss-cpu): no faiss anchor")
    runs = {"vecpipe": lambda: run_child(VECPIPE_CLI, xp, qp, OUT / "knn-vecpipe.jsonl", K),
            "vecpipe-search": lambda: run_child(VECPIPE_SEARCH, xp, qp, OUT / "knn-unused.jsonl", K),
            "gensim": lambda: run_child(GENSIM, xp, qp, OUT / "knn-unused.jsonl", K, args.gensim_queries)}
    if have_faiss:
        runs["faiss"] = lambda: run_child(FAISS, xp, qp, OUT / "knn-faiss.jsonl", K)
    if args.whole_only:
        runs = {n: f for n, f in runs.items() if n in ("vecpipe", "faiss")}
    wall = {name: [] for name in runs}
    search = {name: [] for name in runs}
    rss = []
    names = list(runs)
    for r in range(args.repeat):
        for name in names[r % len(names):] + names[: r % len(names)]:  # rotate who goes first
            w, info = runs[name]()
            wall[name].append(w)
            if "search" in info:
                search[name].append(info["n"] / info["search"])
            if "rss" in info:
                rss.append(info["rss"])
        print(f"  round {r + 1}: " + ", ".join(f"{n} {wall[n][-1]:.2f}s" for n in names), flush=True)
    med = {n: statistics.median(v) for n, v in wall.items()}
    rate = {n: statistics.median(v) for n, v in search.items() if v}
    print("whole process (load, search, JSONL out), median wall:")
    print(f"  vecpipe knn --metric dot     {med['vecpipe']:7.2f} s   {args.queries / med['vecpipe']:7.0f} queries/s")
    if have_faiss:
        print(f"  faiss IndexFlatIP script     {med['faiss']:7.2f} s   {args.queries / med['faiss']:7.0f} queries/s")
        paired = statistics.median(f / v for f, v in zip(wall["faiss"], wall["vecpipe"]))
        print(f"  ratio faiss time / vecpipe time {med['faiss'] / med['vecpipe']:.2f}x (bar >= 0.9x), "
              f"median of the per-round ratios {paired:.2f}x; "
              f"same ids at the same rank {same_answers(OUT / 'knn-vecpipe.jsonl', OUT / 'knn-faiss.jsonl'):.4f}")
    if args.whole_only:
        print(f"search only, median queries/s: faiss IndexFlatIP.search {rate.get('faiss', 0):.0f}")
        return 0
    print("search only, median queries/s:")
    print(f"  vecpipe search (core)        {rate['vecpipe-search']:7.0f}")
    if have_faiss:
        print(f"  faiss IndexFlatIP.search     {rate['faiss']:7.0f}   ratio vecpipe/faiss {rate['vecpipe-search'] / rate['faiss']:.2f}x")
    print(f"  gensim most_similar          {rate['gensim']:7.0f}   ratio vecpipe/gensim "
          f"{rate['vecpipe-search'] / rate['gensim']:.1f}x (bar >= 10x)")
    index_mb = args.rows * args.dim * 4 / 1e6
    peak = statistics.median(rss) / 1e6
    print(f"`vecpipe knn` peak RSS {peak:.0f} MB for a {index_mb:.0f} MB index (mmap) = index + {peak - index_mb:.0f} MB")
    if not args.no_sim:
        bench_sim(xp, args.repeat)
    return 0


SIM_VECPIPE = """
import sys, time, json
import numpy as np
from vecpipe.core.vectors.wordvectors import WordVectors
from vecpipe.core.models.static import StaticEncoder
from vecpipe.core.search.sim import SimStats, score_pairs
x = np.load(sys.argv[1]); words = [f"w{i}" for i in range(len(x))]
rng = np.random.default_rng(0)
pa = [words[i] for i in rng.integers(0, len(x), 50_000)]; pb = [words[i] for i in rng.integers(0, len(x), 50_000)]
enc = StaticEncoder(WordVectors(words, x), tokenize="space", name="bench")
t = time.perf_counter(); score_pairs(enc, pa, pb, "cosine", SimStats()); t = time.perf_counter() - t
print(json.dumps({"search": t, "n": len(pa)}))
"""

SIM_GENSIM = """
import sys, time, json
import numpy as np
from gensim.models import KeyedVectors
x = np.load(sys.argv[1]); words = [f"w{i}" for i in range(len(x))]
rng = np.random.default_rng(0)
pa = [words[i] for i in rng.integers(0, len(x), 20_000)]; pb = [words[i] for i in rng.integers(0, len(x), 20_000)]
kv = KeyedVectors(x.shape[1]); kv.add_vectors(words, x); kv.fill_norms()
t = time.perf_counter(); [kv.similarity(a, b) for a, b in zip(pa, pb)]; t = time.perf_counter() - t
print(json.dumps({"search": t, "n": len(pa)}))
"""


def bench_sim(xp: Path, repeat: int) -> None:
    """sim with a static model: pairs/s against gensim similarity per pair, fresh processes."""
    rates = {"vecpipe": [], "gensim": []}
    for _ in range(repeat):
        for name, code in (("vecpipe", SIM_VECPIPE), ("gensim", SIM_GENSIM)):
            _, info = run_child(code, xp)
            rates[name].append(info["n"] / info["search"])
    v, g = statistics.median(rates["vecpipe"]), statistics.median(rates["gensim"])
    print(f"sim, static, word pairs: vecpipe {v:,.0f} pairs/s, gensim similarity loop {g:,.0f} pairs/s, "
          f"ratio {v / g:.1f}x (bar >= 3x)")


if __name__ == "__main__":
    sys.exit(main())
