"""Training throughput: vecpipe train-w2v against gensim Word2Vec called directly,
with the same parameters on the same corpus, side by side in one run.

Corpora (from the shared data folder; override with --data or $VECPIPE_DATA):
  people's daily  peoples-daily-199801/199801.seg.txt, pre-segmented (--tokenize space)
  novels          the four files in classical-novels-zh/, raw text (--tokenize char)

Each measurement is a fresh process. The timed span is the same on both sides:
vocabulary scan + training (`Word2Vec(corpus_file=...)` for gensim; vecpipe's
`train()`, which for the novels also reads the raw files and writes its
tokenized copy; gensim gets a char-tokenized copy made beforehand, untimed).
words/s = corpus tokens x epochs / seconds. Runs alternate gensim, vecpipe,
gensim, ... and the median of --repeat runs is reported, with the ratio
vecpipe / gensim (bar: >= 0.95), in wall time and in CPU time (user + system,
all threads): on a machine shared with other work the CPU-time ratio is the
steadier measure of vecpipe's overhead, the wall time shows the scaling. Then one end-to-end `vecpipe train-w2v`
process (start-up, reading, training, writing the vecdir) per setting.

    python benchmarks/bench_train.py                       # the recipe: 300d, 5 epochs, workers 1 and 2
    python benchmarks/bench_train.py --epochs 1 --repeat 3 # quicker
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = Path(os.environ.get("VECPIPE_DATA", REPO.parent / "shared" / "data"))

# CPU seconds (all threads) as well as wall seconds: on a shared machine the
# CPU time of the same work is far steadier than the wall time.
CLOCKS = """
import json, resource, sys, time
def clocks():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter(), r.ru_utime + r.ru_stime
"""

GENSIM = CLOCKS + """
from gensim.models import Word2Vec
params = json.loads(sys.argv[2])
t, c = clocks()
m = Word2Vec(corpus_file=sys.argv[1], **params)
t2, c2 = clocks()
print(json.dumps({"seconds": t2 - t, "cpu": c2 - c, "tokens": m.corpus_total_words, "vocab": len(m.wv)}))
"""

VECPIPE = CLOCKS + """
from gensim.models import Word2Vec  # imported before the clock starts, as on the gensim side
from vecpipe.core.train.job import train
from vecpipe.core.train.options import TrainOptions
opts = TrainOptions(**json.loads(sys.argv[2]))
t, c = clocks()
r = train(json.loads(sys.argv[1]), opts)
t2, c2 = clocks()
print(json.dumps({"seconds": t2 - t, "cpu": c2 - c, "tokens": r.tokens, "vocab": len(r.vectors)}))
"""


def run_py(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def fmt_runs(runs, key) -> str:
    return ", ".join("%.2f" % r[key] for r in runs)


def char_tokenized_copy(files: list[Path], dest: Path) -> None:
    """What a user would hand gensim for character vectors: one token per character."""
    with open(dest, "w", encoding="utf-8") as out:
        for f in files:
            for line in open(f, encoding="utf-8"):
                chars = [c for c in line if not c.isspace()]
                if chars:
                    out.write(" ".join(chars) + "\n")


def bench(label, gensim_corpus, vecpipe_inputs, tokenize, args, workers):
    opts = dict(dim=args.dim, window=5, sample=1e-5, min_count=10, epochs=args.epochs, negative=5,
                workers=workers, seed=1, tokenize=tokenize)
    from vecpipe.core.train.options import TrainOptions, gensim_params

    params = gensim_params(TrainOptions(**opts), workers)
    g_runs, v_runs = [], []
    for _ in range(args.repeat):
        g_runs.append(run_py(GENSIM, str(gensim_corpus), json.dumps(params)))
        v_runs.append(run_py(VECPIPE, json.dumps([str(p) for p in vecpipe_inputs]), json.dumps(opts)))
    tokens = v_runs[0]["tokens"]
    if g_runs[0]["tokens"] != tokens or g_runs[0]["vocab"] != v_runs[0]["vocab"]:
        print(f"  note: gensim saw {g_runs[0]['tokens']} tokens / {g_runs[0]['vocab']} words, "
              f"vecpipe {tokens} / {v_runs[0]['vocab']}")
    g = statistics.median(r["seconds"] for r in g_runs)
    v = statistics.median(r["seconds"] for r in v_runs)
    gc = statistics.median(r["cpu"] for r in g_runs)
    vc = statistics.median(r["cpu"] for r in v_runs)
    g_wps, v_wps = tokens * args.epochs / g, tokens * args.epochs / v
    print(f"{label:16s} workers {workers}: gensim {g_wps / 1e3:5.0f}k words/s ({g:5.2f} s)  "
          f"vecpipe {v_wps / 1e3:5.0f}k words/s ({v:5.2f} s)  ratio {v_wps / g_wps:.3f}  |  "
          f"CPU s: gensim {gc:5.2f}  vecpipe {vc:5.2f}  ratio {gc / vc:.3f}")
    print(f"{'':16s}   wall runs  gensim: {fmt_runs(g_runs, 'seconds')}  vecpipe: {fmt_runs(v_runs, 'seconds')}")
    print(f"{'':16s}   CPU  runs  gensim: {fmt_runs(g_runs, 'cpu')}  vecpipe: {fmt_runs(v_runs, 'cpu')}")
    if args.end_to_end:
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [str(Path(sys.executable).with_name("vecpipe")), "-q", "train-w2v", *map(str, vecpipe_inputs),
                   "--tokenize", tokenize, "--dim", str(args.dim), "--epochs", str(args.epochs),
                   "--workers", str(workers), "-o", os.path.join(tmp, "out.vecdir")]
            t = time.perf_counter()
            subprocess.run(cmd, check=True)
            wall = time.perf_counter() - t
        print(f"{'':16s}            end to end `vecpipe train-w2v ... -o out.vecdir`: {wall:.2f} s "
              f"({tokens * args.epochs / wall / 1e3:.0f}k words/s incl. start-up and writing)")
    return v_wps / g_wps, gc / vc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--dim", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3, help="runs per tool and setting (median reported)")
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    ap.add_argument("--corpus", choices=["all", "peoples-daily", "novels"], default="all")
    ap.add_argument("--no-end-to-end", dest="end_to_end", action="store_false")
    args = ap.parse_args()

    pd = args.data / "peoples-daily-199801" / "199801.seg.txt"
    novels = sorted((args.data / "classical-novels-zh").glob("*.txt"))
    import gensim

    print(f"gensim {gensim.__version__}, {os.cpu_count()} cores; {args.dim}d, {args.epochs} epochs, window 5, "
          f"sample 1e-5, min count 10, 5 negatives; median of {args.repeat} runs")
    ratios = []
    workers = [int(w) for w in args.workers.split(",")]
    if args.corpus in ("all", "peoples-daily"):
        if not pd.is_file():
            raise SystemExit(f"{pd} not found (set --data or VECPIPE_DATA)")
        for w in workers:
            ratios.append(bench("people's daily", pd, [pd], "space", args, w))
    if args.corpus in ("all", "novels"):
        if len(novels) != 4:
            raise SystemExit(f"expected the four novels in {args.data / 'classical-novels-zh'}")
        with tempfile.TemporaryDirectory() as tmp:
            chars = Path(tmp) / "novels.chars.txt"
            char_tokenized_copy(novels, chars)
            for w in workers:
                ratios.append(bench("novels (char)", chars, novels, "char", args, w))
    print(f"lowest ratio vecpipe/gensim: wall {min(r[0] for r in ratios):.3f}, "
          f"CPU time {min(r[1] for r in ratios):.3f} (bar: >= 0.95)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
