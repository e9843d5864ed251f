"""Reading word2vec text: vecpipe against gensim, side by side in one run.

Prints seconds (median of --repeat runs, each in a fresh process), the ratio,
peak RSS against the size of the float32 matrix, the time to open a vecdir,
and `vecpipe --help` start-up time.

    python benchmarks/bench_convert.py                 # 200,000 x 300, as in the issue
    python benchmarks/bench_convert.py --rows 20000    # quicker
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

READERS = {
    "vecpipe": "from vecpipe.core.vectors.readwrite import read_vectors as r; wv = r({path!r}); n = len(wv)",
    "gensim": "from gensim.models import KeyedVectors as K; kv = K.load_word2vec_format({path!r}); n = len(kv)",
}
TIMED = (
    PEAK_RSS + "import time, sys\n"
    "t = time.perf_counter()\n{body}\n"
    "print(time.perf_counter() - t, peak_rss(), n)"
)


def make_file(path: Path, rows: int, dim: int) -> None:
    """Random floats with 6 decimals and distinct CJK words, with an `N D` header."""
    rng = np.random.default_rng(0)
    tmp = path.with_suffix(".part")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(f"{rows} {dim}\n")
        for start in range(0, rows, 10000):
            m = min(10000, rows - start)
            x = rng.uniform(-1, 1, (m, dim))
            chars = rng.integers(0x4E00, 0x9FA5, (m, 3))
            lines = []
            for j in range(m):
                word = "".join(map(chr, chars[j, : 1 + (start + j) % 3])) + str(start + j)
                lines.append(word + " " + " ".join("%.6f" % v for v in x[j]))
            f.write("\n".join(lines) + "\n")
    tmp.rename(path)


def run_reader(name: str, path: Path) -> tuple[float, int]:
    code = TIMED.format(body=READERS[name].format(path=str(path)))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), int(out[1])


def median_time(cmd: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--dim", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=3, help="runs per reader (median reported)")
    args = ap.parse_args()

    OUT.mkdir(exist_ok=True)
    path = OUT / f"w2v-{args.rows}x{args.dim}.txt"
    if not path.exists():
        print(f"making {path} ...", file=sys.stderr)
        make_file(path, args.rows, args.dim)
    matrix_bytes = args.rows * args.dim * 4
    print(f"file: {path.name}, {path.stat().st_size / 1e6:.0f} MB; float32 matrix {matrix_bytes / 1e6:.0f} MB")

    results = {}
    for name in READERS:
        runs = [run_reader(name, path) for _ in range(args.repeat)]
        results[name] = (statistics.median(r[0] for r in runs), max(r[1] for r in runs))
        t, rss = results[name]
        print(f"read  {name:8s} {t:7.2f} s  (runs: {', '.join(f'{r[0]:.2f}' for r in runs)})  "
              f"peak RSS {rss / 1e6:5.0f} MB = {rss / matrix_bytes:.2f}x the matrix")
    ratio = results["gensim"][0] / results["vecpipe"][0]
    print(f"speed-up over gensim load_word2vec_format: {ratio:.1f}x (bar: >= 10x); "
          f"vecpipe peak RSS {results['vecpipe'][1] / matrix_bytes:.2f}x the matrix (bar: <= 2x)")

    vecdir = OUT / f"w2v-{args.rows}x{args.dim}.vecdir"
    if not vecdir.exists():
        subprocess.run([sys.executable, "-m", "vecpipe", "-q", "convert", str(path), "-o", str(vecdir)], check=True)
    from vecpipe.core.vectors.vecdir import open_vecdir

    opens = []
    for _ in range(7):
        t = time.perf_counter()
        wv = open_vecdir(vecdir)
        _ = wv.vectors[len(wv) // 2].sum()
        opens.append(time.perf_counter() - t)
    print(f"open vecdir ({len(wv)} x {wv.dim}, mmap): median {statistics.median(opens) * 1000:.1f} ms")

    exe = str(Path(sys.executable).with_name("vecpipe"))
    print(f"`vecpipe --help`: median {median_time([exe, '--help'], 7) * 1000:.0f} ms (bar: well under 300 ms)")
    print(f"`python -c pass`: median {median_time([sys.executable, '-c', 'pass'], 7) * 1000:.0f} ms (interpreter alone)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
