"""Word vectors as a sentence encoder: the mean of the known words' vectors,
as text2vec's Word2Vec encoder does, vectorised."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from vecpipe.core.errors import DataError, UsageError, error_gist
from vecpipe.core.models.base import Encoded, Encoder, ModelSpec, register
from vecpipe.core.search.topk import normalize_rows
from vecpipe.core.vectors.readwrite import read_vectors
from vecpipe.core.vectors.wordvectors import WordVectors


@register("static")
class StaticEncoder(Encoder):
    """Mean of word vectors, as text2vec's Word2Vec encoder does, vectorised:
    texts -> token rows -> one gather and one reduceat per batch."""

    def __init__(self, wv: WordVectors, *, tokenize: str = "auto", oov: str = "skip",
                 normalize_words: bool = False, sif: float | None = None, name: str = ""):
        from vecpipe.core.models.segment import make_tokenizer

        if wv.is_sparse:
            raise UsageError("sparse (PPMI) vectors cannot be mean-pooled directly; make dense ones first: "
                             "vecpipe convert PPMI --svd 300 -o dense.vecdir")
        if oov not in ("skip", "char"):
            raise UsageError("--oov must be skip or char")
        self.wv = wv
        self.name = name
        self.index = wv.index
        self.tokenizer = make_tokenizer(tokenize, self.index)
        # the longest-match segmenter finds rows as it goes (one pass, no second lookup)
        self.fast_rows = getattr(self.tokenizer, "rows", None)
        self.oov = oov
        self.dim = wv.dim
        self.matrix = wv.vectors
        self.normalize_words = normalize_words
        self.weights = None
        if sif is not None:
            if wv.counts is None:
                raise UsageError("SIF weighting needs word counts (a vecdir with counts.npy, as train-w2v writes)")
            p = np.asarray(wv.counts, dtype=np.float64) / max(float(np.sum(wv.counts)), 1.0)
            self.weights = (sif / (sif + p)).astype(np.float32)  # a / (a + p(w)), Arora et al. 2017
        self.word_vectors = wv

    @classmethod
    def from_spec(cls, spec: ModelSpec, location) -> "StaticEncoder":
        return cls(_read_static(location), tokenize=spec.tokenize, oov=spec.oov,
                   normalize_words=spec.normalize_words, sif=spec.sif, name=spec.name)

    def token_rows(self, text: str) -> tuple[list[int], int]:
        """(rows of the known words, number of unknown tokens) for one text."""
        if self.fast_rows is not None:
            return self.fast_rows(text, self.oov == "char")
        rows = []
        unknown = 0
        index = self.index
        for tok in self.tokenizer(text):
            r = index.get(tok)
            if r is None and tok.lower() != tok:
                r = index.get(tok.lower())
            if r is not None:
                rows.append(r)
            elif self.oov == "char" and len(tok) > 1:
                chars = [index[c] for c in tok if c in index]
                rows.extend(chars)
                unknown += len(tok) - len(chars)
            else:
                unknown += 1
        return rows, unknown

    def encode_batch(self, texts: list[str], *, prompt: str | None = None, normalize: bool = False,
                     truncate_dim: int | None = None, budget=None) -> Encoded:
        """Mean word vectors (a prompt does not apply to word vectors)."""
        found = [self.token_rows(t) for t in texts]
        rows_per_text = [rows for rows, _ in found]
        counts = np.fromiter((len(r) for r in rows_per_text), dtype=np.int64, count=len(texts))
        counters = {"oov_tokens": sum(unknown for _, unknown in found), "empty_texts": int((counts == 0).sum())}
        out = self._mean(rows_per_text, counts)
        if truncate_dim:
            out = out[:, :truncate_dim]
        if normalize:
            out = normalize_rows(out)
        return Encoded(np.ascontiguousarray(out, dtype=np.float32), counters)

    def _mean(self, rows_per_text, counts) -> np.ndarray:
        out = np.zeros((len(rows_per_text), self.dim), dtype=np.float32)
        if counts.sum() == 0:
            return out
        flat = np.fromiter((r for rows in rows_per_text for r in rows), dtype=np.int64, count=int(counts.sum()))
        vecs = np.asarray(self.matrix[flat], dtype=np.float32)
        if self.normalize_words:
            vecs = normalize_rows(vecs)
        if self.weights is not None:
            w = self.weights[flat][:, None]
            vecs = vecs * w
        has = counts > 0
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])[has]
        sums = np.add.reduceat(vecs, starts, axis=0)
        denom = counts[has][:, None] if self.weights is None else np.add.reduceat(self.weights[flat], starts)[:, None]
        out[has] = sums / denom
        return out


def _read_static(location) -> WordVectors:
    """read_vectors, with a pickled file named in one line (65); a damaged vecdir
    is refused by the vecdir reader itself."""
    p = Path(location)
    if p.is_file():
        with open(p, "rb") as fh:
            head = fh.read(2)
        if len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
            raise DataError("a pickled file (a gensim .model or .kv?): vecpipe never unpickles model files; "
                            "save it with gensim's save_word2vec_format and use that file", location)
    try:
        return read_vectors(location)
    except (ValueError, EOFError) as exc:
        raise DataError(f"cannot read the vectors: {error_gist(exc)}", location) from None


def read_word_vectors(spec: str | None):
    """The WordVectors a spec names when it is a word-vector model (no
    tokenizer built, nothing heavy loaded), else None."""
    kind, location = ModelSpec(spec).resolve()
    return _read_static(location) if kind == StaticEncoder.kind else None
