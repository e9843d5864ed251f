"""What a training run returns: the vectors, the context vectors, the counts
and timings, and the meta.json that records how the vectors were made."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vecpipe import __version__
from vecpipe.core.errors import UsageError
from vecpipe.core.train.corpus import Source
from vecpipe.core.train.options import GENSIM_MODELS, TrainOptions, gensim_params
from vecpipe.core.vectors.wordvectors import WordVectors


@dataclass
class TrainResult:
    vectors: WordVectors
    contexts: WordVectors | None
    opts: TrainOptions
    workers: int
    tokens: int
    lines: int
    seconds: dict
    sources: list[Source]
    corpus_mode: str
    model: object = None  # the gensim model (word2vec / fasttext), when there is one
    extra: dict = field(default_factory=dict)

    @property
    def vocab_size(self) -> int:
        return len(self.vectors)

    @property
    def words_per_second(self) -> float:
        """Corpus tokens times epochs, per second of training (gensim's 'raw words')."""
        epochs = self.opts.epochs if self.opts.model in GENSIM_MODELS else 1
        secs = self.seconds.get("train") or 1e-9
        return self.tokens * epochs / secs

    def vector(self, word: str) -> np.ndarray:
        """The vector of `word`; fastText builds one for an unseen word from its
        character n-grams, the other models cannot."""
        idx = self.vectors.index.get(word)
        if idx is not None:
            row = self.vectors.vectors[idx]
            return row.toarray().ravel() if hasattr(row, "toarray") else np.asarray(row)
        if self.opts.model == "fasttext" and self.model is not None:
            return np.asarray(self.model.wv[word])
        raise UsageError(
            f"{word!r} is not in the vocabulary of this {self.opts.model} model, which has no vector for "
            "unseen words; only --model fasttext builds them (from character n-grams)"
        )

    def meta(self) -> dict:
        import numpy

        libs = {"numpy": numpy.__version__}
        if self.opts.model in GENSIM_MODELS:
            import gensim

            libs["gensim"] = gensim.__version__
        else:
            import scipy

            libs["scipy"] = scipy.__version__
        training = {
            "model": self.opts.model,
            "params": self.opts.params(),
            "seed": self.opts.seed,
            "workers": self.workers,
            "reproducible": self.workers == 1 or self.opts.model == "ppmi",
            "tokenize": self.opts.tokenize,
            "unicode_errors": self.opts.unicode_errors,
            "corpus": [s.info() for s in self.sources],
            "corpus_mode": self.corpus_mode,
            "tokens": self.tokens,
            "lines": self.lines,
            "vocab_size": self.vocab_size,
            "row_order": "descending corpus frequency (ties: later first occurrence first, as gensim)",
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "words_per_second": round(self.words_per_second),
            **self.extra,
        }
        if self.opts.model in GENSIM_MODELS:
            training["gensim_params"] = gensim_params(self.opts, self.workers)
        return {
            "normalized": False,
            "made_by": {"tool": f"vecpipe {__version__}", "command": "train-w2v", "libraries": libs},
            "training": training,
        }

    def summary(self) -> str:
        secs = self.seconds
        if self.opts.model == "ppmi":
            m = self.vectors.vectors
            shape = f"{len(self.vectors):,} words x {self.vectors.dim:,} {'dims (SVD)' if self.opts.svd else 'contexts'}"
            nnz = "" if self.opts.svd else f" ({self.extra.get('nonzeros', getattr(m, 'nnz', 0)):,} non-zero)"
            return (f"ppmi: {shape}{nnz} from {self.tokens:,} tokens in {secs['total']:.1f} s "
                    f"({self.tokens / max(secs['total'], 1e-9):,.0f} tokens/s)")
        return (f"{self.opts.model}: vocabulary {len(self.vectors):,} words x {self.vectors.dim}, "
                f"{self.tokens:,} tokens x {self.opts.epochs} epochs, trained in {secs['train']:.1f} s "
                f"({self.words_per_second:,.0f} words/s, {self.workers} worker{'s' if self.workers != 1 else ''}); "
                f"total {secs['total']:.1f} s")
