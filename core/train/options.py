"""What a word-vector training run is asked for: the model, its
hyperparameters, and exactly what gensim is given.

The defaults are the Chinese-Word-Vectors recipe: window 5, dynamic window,
subsampling 1e-5, min count 10, 5 epochs, 5 negatives, 300 dimensions."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass

from vecpipe.core.errors import UsageError

MODELS = ("sgns", "cbow", "fasttext", "ppmi")
TOKENIZERS = ("space", "char", "jieba")  # of core.models.segment's; "auto" needs a vocabulary
GENSIM_MODELS = ("sgns", "cbow", "fasttext")


@dataclass
class TrainOptions:
    model: str = "sgns"
    dim: int = 300
    window: int = 5
    dynamic_window: bool = True
    sample: float = 1e-5
    min_count: int = 10
    epochs: int = 5
    negative: int = 5
    alpha: float = 0.025
    min_alpha: float = 0.0001
    workers: int | None = None  # None: all cores this process may use
    seed: int = 1
    tokenize: str = "space"
    unicode_errors: str = "strict"
    # fasttext
    min_n: int = 1
    max_n: int = 3
    bucket: int = 2_000_000
    # ppmi
    cds: float = 0.75
    shift: float = 1.0
    svd: int | None = None
    svd_eig: float = 0.5
    ngram_order: int = 1

    def resolved_workers(self) -> int:
        if self.workers:
            return self.workers
        try:
            return len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            return os.cpu_count() or 1

    def validate(self) -> None:
        if self.model not in MODELS:
            raise UsageError(f"unknown model {self.model!r}; choose one of: {', '.join(MODELS)}")
        if self.tokenize not in TOKENIZERS:
            raise UsageError(f"unknown tokenizer {self.tokenize!r}; choose one of: {', '.join(TOKENIZERS)}")
        if self.unicode_errors not in ("strict", "replace", "ignore"):
            raise UsageError("--unicode-errors must be strict, replace or ignore")
        for name in ("dim", "window", "min_count", "epochs", "negative", "min_n", "max_n", "bucket"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
        if self.min_n > self.max_n:
            raise UsageError("--min-n must not exceed --max-n")
        if self.sample < 0 or self.alpha <= 0 or self.min_alpha < 0:
            raise UsageError("--sample and --min-alpha must be >= 0 and --alpha > 0")
        if self.workers is not None and self.workers < 1:
            raise UsageError("--workers must be at least 1")
        if self.model == "ppmi":
            if self.cds <= 0 or self.shift <= 0:
                raise UsageError("--cds and --shift must be > 0")
            if self.svd is not None and self.svd < 1:
                raise UsageError("--svd must be at least 1")
            if self.ngram_order not in (1, 2):
                raise UsageError("--ngram-order must be 1 (word contexts) or 2 (words and bigrams)")
        elif self.svd is not None or self.ngram_order != 1:
            raise UsageError("--svd and --ngram-order apply to --model ppmi only")

    def params(self) -> dict:
        """The hyperparameters that apply to this model (recorded in meta.json)."""
        keys = ["dim", "window", "dynamic_window", "sample", "min_count"]
        if self.model in GENSIM_MODELS:
            keys += ["epochs", "negative", "alpha", "min_alpha"]
        if self.model == "fasttext":
            keys += ["min_n", "max_n", "bucket"]
        if self.model == "ppmi":
            keys = ["window", "dynamic_window", "sample", "min_count", "cds", "shift", "ngram_order", "svd"]
            if self.svd:
                keys += ["dim", "svd_eig"]
        d = asdict(self)
        out = {k: d[k] for k in keys}
        if self.model == "ppmi" and self.svd:
            out["dim"] = self.svd
        return out


def gensim_params(opts: TrainOptions, workers: int) -> dict:
    """Exactly the keyword arguments given to gensim's Word2Vec / FastText."""
    params = dict(
        vector_size=opts.dim,
        window=opts.window,
        shrink_windows=opts.dynamic_window,
        sample=opts.sample,
        min_count=opts.min_count,
        epochs=opts.epochs,
        negative=opts.negative,
        hs=0,
        ns_exponent=0.75,
        alpha=opts.alpha,
        min_alpha=opts.min_alpha,
        sg=0 if opts.model == "cbow" else 1,
        cbow_mean=1,
        seed=opts.seed,
        workers=workers,
        max_vocab_size=None,
        sorted_vocab=1,
    )
    if opts.model == "fasttext":
        params.update(min_n=opts.min_n, max_n=opts.max_n, bucket=opts.bucket)
    return params
