"""eval similarity: word pairs (wordsim-240, COS960) scored as gensim's
evaluate_word_pairs does (Spearman and Pearson over the pairs whose two words
are known)."""
from __future__ import annotations

import logging
import time

import numpy as np

from vecpipe.core.errors import DataError, UsageError
from vecpipe.core.eval import metrics as M
from vecpipe.core.eval.common import encode_all, number, word_lookup
from vecpipe.core.io.records import OnError
from vecpipe.core.io.inputs import display_name, iter_lines, open_input

log = logging.getLogger("vecpipe")


def read_word_pairs(path, *, score_column: int | None = None, on_error: str = "stop", unicode_errors: str = "strict"):
    """`w1 w2 score` lines (tab-separated, or whitespace when the line has no
    tab); `#` comments and blank lines skipped, a header line tolerated. Lines
    may carry more numbers after the two words (COS960: the mean, then each
    annotator's rating): the score is `score_column` (counted from 1; default
    3, the first after the words, which stderr says when there are more).
    Returns (pairs, bad line count)."""
    name = display_name(path)
    bad = OnError(on_error)
    if score_column is not None and score_column < 3:
        raise UsageError("--score-column counts from 1 and columns 1 and 2 are the words: give 3 or more")
    col = (score_column or 3) - 1
    pairs = []
    width = width_line = None  # the field count of the first pair (and its line): every line has as many
    first = True
    with open_input(path) as fh:
        for n, line in iter_lines(fh, name, unicode_errors=unicode_errors):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            parts = [p.strip() for p in line.split("\t")] if "\t" in line else line.split()
            parts = [p for p in parts if p != ""]
            if len(parts) <= col or (width is not None and len(parts) != width) or (width is None and len(parts) < 3):
                first = False
                want = f"{width} fields, as line {width_line}" if width is not None else \
                    f"at least {max(3, col + 1)} fields (word1 word2 score{' ...' if col > 2 else ''})"
                bad(DataError(f"expected {want}, got {len(parts)}", name, n))
                continue
            score = number(parts[col])
            if score is None:
                if not first:
                    bad(DataError(f"not a number: {parts[col]!r}" + (f" (column {col + 1})" if col != 2 else ""), name, n))
                first = False
                continue
            first = False
            if width is None:
                width, width_line = len(parts), n
                if width > 3 and score_column is None:
                    log.warning("%s: lines have %d fields; the score is column 3, the first after the two words "
                                "(choose another with --score-column N)", name, width)
            pairs.append((parts[0], parts[1], score))
    if not pairs:
        raise DataError("no word pairs found", name)
    return pairs, bad.count


def _cosines(wv, a, b) -> np.ndarray:
    """Cosine of rows a[i] and b[i]; sparse PPMI rows stay sparse (as the
    Chinese-Word-Vectors toolkit scores them: a dense row may have a million columns)."""
    if wv.is_sparse:
        va, vb = wv.vectors[a].astype(np.float64), wv.vectors[b].astype(np.float64)
        dot = np.asarray(va.multiply(vb).sum(axis=1)).ravel()
        na = np.sqrt(np.asarray(va.multiply(va).sum(axis=1)).ravel())
        nb = np.sqrt(np.asarray(vb.multiply(vb).sum(axis=1)).ravel())
    else:
        va = np.asarray(wv.vectors[a], dtype=np.float64)
        vb = np.asarray(wv.vectors[b], dtype=np.float64)
        dot, na, nb = (va * vb).sum(axis=1), np.linalg.norm(va, axis=1), np.linalg.norm(vb, axis=1)
    return dot / np.where(na * nb == 0, 1, na * nb)


def run_similarity(path, *, wv=None, encoder=None, restrict: int | None = None, case_insensitive: bool = False,
                   zero_unknown: bool = False, score_column: int | None = None, on_error: str = "stop",
                   unicode_errors: str = "strict") -> dict:
    """Spearman and Pearson between gold scores and cosine similarities.

    With word vectors (wv): pairs with an unknown word are skipped and counted
    (or scored 0 with zero_unknown, gensim's dummy4unknown). With an encoder
    (a transformer), each word is encoded as a text."""
    started = time.perf_counter()
    pairs, bad_lines = read_word_pairs(path, score_column=score_column, on_error=on_error, unicode_errors=unicode_errors)
    gold, model = [], []
    oov = 0
    if wv is not None:
        if restrict is not None and restrict < 1:
            raise UsageError("--restrict-vocab must be >= 1")
        _, row = word_lookup(wv, restrict, case_insensitive)
        rows = np.array([[row(a), row(b)] for a, b, _ in pairs], dtype=np.int64)
        ok = (rows >= 0).all(axis=1)
        oov = int((~ok).sum())
        sims = np.zeros(len(pairs), dtype=np.float64)
        if ok.any():
            sims[ok] = _cosines(wv, rows[ok, 0], rows[ok, 1])
        keep = np.ones(len(pairs), dtype=bool) if zero_unknown else ok
        gold = [p[2] for p, k in zip(pairs, keep) if k]
        model = sims[keep]
    else:
        x, r = encode_all(encoder, [w for a, b, _ in pairs for w in (a, b)], normalize=True, desc="words")
        v = x[r].reshape(len(pairs), 2, -1)
        model = (v[:, 0] * v[:, 1]).sum(axis=1).astype(np.float64)
        gold = [p[2] for p in pairs]
    if len(gold) < 2:
        raise DataError(f"only {len(gold)} pair(s) with known words: nothing to correlate", display_name(path))
    metrics = {"spearman": M.spearman(gold, M.tied(model)), "pearson": M.pearson(gold, model),
               "oov_ratio": M.ratio(oov, len(pairs))}
    counts = {"pairs": len(pairs), "used": len(gold), "oov": oov, "bad_lines": bad_lines}
    params = {"restrict_vocab": restrict, "case_insensitive": case_insensitive, "zero_unknown": zero_unknown,
              "score_column": score_column or 3, "rank_decimals": M.SCORE_DECIMALS}
    return {"metrics": metrics, "headline": ["spearman"], "counts": counts, "params": params,
            "seconds": time.perf_counter() - started}
