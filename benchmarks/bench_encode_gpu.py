"""GPU throughput of vecpipe's transformer encoder against sentence-transformers.

A BERT-base-shaped model (12 layers, 768 hidden) with random weights and the
bert-base-chinese vocabulary (speed does not depend on the weights), three
workloads from the shared data: short (LCQMC, ~10 chars), medium (STS-B,
~19 chars), long (CMRC2018 paragraphs, ~510 chars, max length 512).

Anchors, same run: SentenceTransformer.encode with its defaults (fp32, batch 32)
and the best fp16 call over batch sizes 32..512. Bars: vecpipe >= 2.5x the
first and >= 1.2x the second. Prints texts/s and tokens/s.

    python benchmarks/bench_encode_gpu.py [--n 20000] [--device cuda]

Needs torch with CUDA, sentence-transformers, numpy and orjson (vecpipe's
import of its stream module); gensim is not needed.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("VECPIPE_DATA", HERE.parent.parent / "shared" / "data"))


def build_model(folder: Path, layers: int = 12, hidden: int = 768, heads: int = 12) -> str:
    """BERT-base shape by default (gpu_bench.py --smoke builds a tiny one)."""
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel, BertTokenizerFast

    vocab = DATA / "bert-base-chinese" / "vocab.txt"
    tok = BertTokenizerFast(vocab_file=str(vocab), do_lower_case=False, tokenize_chinese_chars=True)
    config = BertConfig(vocab_size=tok.vocab_size, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                        intermediate_size=4 * hidden, max_position_embeddings=512)
    bert_dir = folder / "bert"
    BertModel(config).save_pretrained(bert_dir)
    tok.save_pretrained(bert_dir)
    word = models.Transformer(str(bert_dir), max_seq_length=512)
    pool = models.Pooling(word.get_word_embedding_dimension(), "mean")
    st_dir = folder / "st"
    SentenceTransformer(modules=[word, pool]).save(str(st_dir))
    return str(st_dir)


def workloads(n: int) -> dict[str, list[str]]:
    lcqmc = [s for line in (DATA / "LCQMC" / "test.txt").read_text(encoding="utf-8").splitlines() for s in line.split("\t")[:2]]
    sts = [s for line in (DATA / "STS-B-zh" / "STS-B.train.data").read_text(encoding="utf-8").splitlines() for s in line.split("\t")[:2]]
    paras = [line.split("\t", 1)[1] for line in (DATA / "CMRC2018-retrieval" / "corpus.tsv").read_text(encoding="utf-8").splitlines()]
    def take(xs, k):
        return (xs * (k // len(xs) + 1))[:k]
    return {"short": take(lcqmc, n), "medium": take(sts, n), "long": take(paras, max(n // 10, 2000))}


def rate(fn, texts, sync):
    fn(texts[:256])  # warm-up (kernels, allocator)
    sync()
    t = time.perf_counter()
    fn(texts)
    sync()
    return len(texts) / (time.perf_counter() - t)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000, help="texts per short/medium workload (long: n/10)")
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()
    import torch
    from sentence_transformers import SentenceTransformer

    from vecpipe.core.models.transformer import TransformerEncoder

    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    with tempfile.TemporaryDirectory() as tmp:
        path = build_model(Path(tmp))
        st32 = SentenceTransformer(path, device=args.device)
        st16 = SentenceTransformer(path, device=args.device, model_kwargs={"torch_dtype": torch.float16})
        ours = TransformerEncoder(path, device=args.device)
        print(f"device: {torch.cuda.get_device_name() if args.device.startswith('cuda') else args.device}; "
              f"torch {torch.__version__}")
        for name, texts in workloads(args.n).items():
            st32.max_seq_length = st16.max_seq_length = 512
            tokens = int(ours.token_lengths(texts).sum())
            base = rate(lambda t: st32.encode(t, batch_size=32), texts, sync)
            best16, best_bs = 0.0, None
            for bs in (32, 64, 128, 256, 512):
                r = rate(lambda t, bs=bs: st16.encode(t, batch_size=bs), texts, sync)
                if r > best16:
                    best16, best_bs = r, bs
            mine = rate(lambda t: ours.encode(t), texts, sync)
            per_tok = tokens / len(texts)
            print(f"{name:6s} ({len(texts)} texts, {per_tok:.0f} tokens each): "
                  f"ST fp32 bs32 {base:8.0f}/s | ST fp16 best (bs {best_bs}) {best16:8.0f}/s | "
                  f"vecpipe {mine:8.0f} texts/s = {mine * per_tok:,.0f} tokens/s | "
                  f"{mine / base:.2f}x (bar 2.5x), {mine / best16:.2f}x (bar 1.2x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
