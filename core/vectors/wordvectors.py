"""Words and their vectors (WordVectors), the format names, what a reader
tolerated (ReadStats), and the float32 finiteness checks every reader and
writer applies: NaN, infinity and numbers too large for float32 are bad input."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from vecpipe.core.errors import DataError, UsageError
from vecpipe.core.io.records import OnError

FORMATS = ("word2vec", "glove", "word2vec-bin", "sparse", "jsonl", "vecdir", "parquet")
ALIASES = {"fasttext": "word2vec", "vec": "word2vec", "txt": "word2vec", "text": "word2vec", "bin": "word2vec-bin", "ppmi": "sparse"}
F32_LIMIT = 3.4028235677973366e38  # a float whose magnitude reaches this rounds to infinity in float32


def canonical_format(name: str) -> str:
    key = name.lower()
    key = ALIASES.get(key, key)
    if key not in FORMATS:
        raise UsageError(f"unknown format {name!r}; choose one of: {', '.join(FORMATS + tuple(ALIASES))}")
    return key


@dataclass
class WordVectors:
    """Words and their vectors, row i belonging to words[i].

    `vectors` is a 2-D numpy array (possibly a read-only mmap) or a scipy CSR
    matrix for sparse (PPMI) vectors."""

    words: list[str]
    vectors: object
    meta: dict = field(default_factory=dict)
    counts: np.ndarray | None = None  # corpus frequency per word, when known (counts.npy in a vecdir)
    _index: dict | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.words)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def is_sparse(self) -> bool:
        return not isinstance(self.vectors, np.ndarray)

    @property
    def index(self) -> dict[str, int]:
        if self._index is None:
            # first occurrence wins, like every reader here
            idx: dict[str, int] = {}
            for i, w in enumerate(self.words):
                idx.setdefault(w, i)
            self._index = idx
        return self._index

    def dense(self) -> np.ndarray:
        return self.vectors if isinstance(self.vectors, np.ndarray) else self.vectors.toarray()

    def take(self, rows) -> "WordVectors":
        rows = np.asarray(rows, dtype=np.int64)
        words = [self.words[i] for i in rows]
        counts = None if self.counts is None else np.asarray(self.counts)[rows]
        return WordVectors(words, self.vectors[rows], dict(self.meta), counts)


@dataclass
class ReadStats:
    """What a reader had to tolerate; reported by the caller."""

    skipped: int = 0
    spaced_words: int = 0
    duplicates: int = 0


def describe_nonfinite(values) -> str | None:
    """What makes a row unusable as float32 ('NaN', 'infinity', or '1e+39, which
    float32 turns into infinity'), or None when every value is a finite float32."""
    for v in values:
        v = float(v)
        if not -F32_LIMIT < v < F32_LIMIT:
            return "NaN" if math.isnan(v) else "infinity" if math.isinf(v) else f"{v!r}, which float32 turns into infinity"
    return None


def nonfinite_rows(vectors) -> np.ndarray:
    """Indices of the rows holding NaN or infinity (dense, mmap or sparse),
    scanned block by block so a huge mmap needs little memory."""
    if not isinstance(vectors, np.ndarray):
        vectors = vectors.tocsr()
        bad = np.flatnonzero(~_fits_float32(np.asarray(vectors.data)))
        return np.unique(np.searchsorted(vectors.indptr, bad, side="right") - 1) if len(bad) else bad
    if vectors.ndim != 2 or vectors.dtype.kind != "f":
        return np.empty(0, dtype=np.int64)
    step = max(1, (1 << 24) // max(1, vectors.shape[1]))
    parts = [start + np.flatnonzero(~_fits_float32(vectors[start : start + step]).all(axis=1))
             for start in range(0, len(vectors), step)]
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)


def _fits_float32(values: np.ndarray) -> np.ndarray:
    return np.isfinite(values) if values.dtype.itemsize <= 4 else np.abs(values) < F32_LIMIT


def _row_values(vectors, i: int) -> np.ndarray:
    row = vectors[i]
    return np.asarray(row.toarray()).ravel() if not isinstance(row, np.ndarray) else row


def finite_rows(vectors, policy: OnError, where) -> np.ndarray | None:
    """Report each non-finite row through the policy (`where(i)` names row i);
    return the rows to keep, or None when all are finite."""
    bad = nonfinite_rows(vectors)
    if not len(bad):
        return None
    for i in bad:
        policy(f"{where(int(i))} holds {describe_nonfinite(_row_values(vectors, int(i)))}", None)
    return np.setdiff1d(np.arange(vectors.shape[0]), bad)


def check_vocab_words(words: Iterable[str], fmt: str) -> None:
    """Files of one word per line (and the text formats) cannot hold an empty word or a line break."""
    for i, w in enumerate(words):
        if not w or "\n" in w or "\r" in w:
            raise DataError(f"word {i + 1} ({w!r}) is empty or holds a line break; {fmt} cannot store it")


def check_finite(wv: WordVectors) -> None:
    """Writers refuse NaN and infinity: no reader of vecpipe's would take them back."""
    bad = nonfinite_rows(wv.vectors)
    if len(bad):
        i = int(bad[0])
        raise DataError(f"row {i + 1} (word {wv.words[i]!r}) holds {describe_nonfinite(_row_values(wv.vectors, i))}; "
                        "refusing to write vectors that are not finite")


def row_blocks(wv: WordVectors, size: int = 10000):
    """(words, dense float32 rows) in blocks, for the writers: bounded memory on sparse or mmap input."""
    for start in range(0, len(wv), size):
        block = wv.vectors[start : start + size]
        if not isinstance(block, np.ndarray):
            block = block.toarray()
        yield wv.words[start : start + size], np.asarray(block, dtype=np.float32)
