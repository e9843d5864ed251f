"""Exact knn on the CPU against faiss IndexFlatIP and gensim most_similar, and
sim with a static model against a per-pair gensim `similarity` loop.

    python benchmarks/bench_knn.py [--rows 200000] [--dim 300] [--queries 2000]

Bars (issue 5): >= 0.8x faiss IndexFlatIP, >= 10x gensim most_similar per
query, sim >= 3x the gensim loop; peak RSS of `vecpipe knn` over an mmap'd
index bounded by the index plus a fixed working set.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _common import PEAK_RSS

OUT = Path(__file__).resolve().parent / "out"


def median_rate(fn, n, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return n / statistics.median(times), times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--dim", type=int, default=300)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    from vecpipe.core.search import topk

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.rows, args.dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[rng.choice(args.rows, args.queries, replace=False)] + 0.05 * rng.standard_normal((args.queries, args.dim)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    k = 10
    print(f"index {args.rows} x {args.dim} float32 (normalised), {args.queries} queries, k={k}")

    ours_rate, _ = median_rate(lambda: topk(q, x, k, metric="dot"), len(q), args.repeat)
    _, ours_ids = topk(q, x, k, metric="dot")
    print(f"  vecpipe topk (numpy, blocked)     {ours_rate:10.0f} queries/s")
    try:
        import faiss

        fi = faiss.IndexFlatIP(args.dim)
        fi.add(x)
        f_rate, _ = median_rate(lambda: fi.search(q, k), len(q), args.repeat)
        _, f_ids = fi.search(q, k)
        agree = np.mean([len(set(a) & set(b)) / k for a, b in zip(ours_ids, f_ids)])
        print(f"  faiss IndexFlatIP ({faiss.omp_get_max_threads()} threads)    {f_rate:10.0f} queries/s   "
              f"ratio vecpipe/faiss {ours_rate / f_rate:.2f}x (bar >= 0.8x); same neighbours {agree:.4f}")
    except ImportError:
        print("  faiss not installed: pip install faiss-cpu")

    from gensim.models import KeyedVectors

    words = [f"w{i}" for i in range(args.rows)]
    kv = KeyedVectors(args.dim)
    kv.add_vectors(words, x)
    kv.fill_norms()
    n_g = min(200, len(q))
    g_rate, _ = median_rate(lambda: [kv.most_similar(positive=[q[i]], topn=k) for i in range(n_g)], n_g, args.repeat)
    print(f"  gensim most_similar per query     {g_rate:10.0f} queries/s   ratio vecpipe/gensim {ours_rate / g_rate:.1f}x (bar >= 10x)")

    # peak memory of the whole command over an mmap'd index
    np.save(OUT / "knn-index.npy", x)
    buf = OUT / "knn-queries.npy"
    np.save(buf, q)
    index_mb = x.nbytes / 1e6
    code = (PEAK_RSS + "import sys\nfrom vecpipe.cli.main import main\n"
            f"rc = main(['-q', 'knn', '--index', {str(OUT / 'knn-index.npy')!r}, '--queries', {str(buf)!r}, '-k', '10', '-o', '/dev/null'])\n"
            "print(peak_rss())\nsys.exit(rc)")
    rss = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()[-1])
    print(f"  `vecpipe knn` peak RSS {rss / 1e6:.0f} MB for a {index_mb:.0f} MB index (mmap) = index + {rss / 1e6 - index_mb:.0f} MB")

    # sim with a static model: pairs/s against gensim similarity per pair
    from vecpipe.core.formats import WordVectors
    from vecpipe.core.models import StaticEncoder
    from vecpipe.core.similarity import SimStats, score_pairs

    enc = StaticEncoder(WordVectors(words, x), tokenize="space", name="bench")
    pa = [words[i] for i in rng.integers(0, args.rows, 50_000)]
    pb = [words[i] for i in rng.integers(0, args.rows, 50_000)]
    s_rate, _ = median_rate(lambda: score_pairs(enc, pa, pb, "cosine", SimStats()), len(pa), args.repeat)
    n_loop = 20_000
    l_rate, _ = median_rate(lambda: [kv.similarity(a, b) for a, b in zip(pa[:n_loop], pb[:n_loop])], n_loop, args.repeat)
    print(f"sim, static, word pairs: vecpipe {s_rate:,.0f} pairs/s, gensim similarity loop {l_rate:,.0f} pairs/s, "
          f"ratio {s_rate / l_rate:.1f}x (bar >= 3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
