"""Count-based word vectors: PPMI (+ SVD) through numpy and scipy.

The token ids stay in memory (4 bytes a token); co-occurrences are counted
with numpy, one window offset and one block of positions at a time."""
from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from vecpipe.core.errors import UsageError
from vecpipe.core.io.progress import progress
from vecpipe.core.train.corpus import Source, iter_token_lines, no_vocabulary, tokenizer_for, total_bytes
from vecpipe.core.train.options import TrainOptions
from vecpipe.core.vectors.wordvectors import WordVectors

NGRAM_JOIN = "@$"  # how ngram2vec names a bigram context: 'a@$b'
PPMI_BLOCK = 1 << 20  # token positions per counting step (pairs of one step: ~16 bytes x 2 x window each)


def _read_ids(inputs, opts: TrainOptions, sources: list[Source]):
    """One pass: token ids by first appearance, -1 between lines."""
    from array import array

    tokenizer = tokenizer_for(opts.tokenize)
    index: defaultdict = defaultdict(itertools.count().__next__)
    lookup = index.__getitem__
    buf = array("i")
    lines = 0
    with progress(total=total_bytes(inputs), unit="B", unit_scale=True, desc="reading") as bar:
        for n_lines, token_lists in iter_token_lines(inputs, tokenizer, opts.unicode_errors, sources, bar):
            lines += n_lines
            for toks in token_lists:
                buf.extend(map(lookup, toks))
                buf.append(-1)
    ids = np.frombuffer(buf, dtype=np.intc).astype(np.int32, copy=False) if len(buf) else np.empty(0, np.int32)
    return ids, list(index), lines


def _frequency_order(counts: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Indices of `keep` ordered by descending count; ties: the later first
    appearance first (gensim's sort_by_descending_frequency)."""
    return keep[np.lexsort((-keep, -counts[keep]))]


def _subsample_mask(ids: np.ndarray, counts: np.ndarray, threshold: float, rng) -> np.ndarray:
    """True where an occurrence is dropped: probability 1 - sqrt(t*N / count)
    for items seen more than t*N times (ngram2vec's and hyperwords' formula)."""
    p_drop = np.zeros(len(counts), dtype=np.float64)
    big = counts > threshold
    p_drop[big] = 1.0 - np.sqrt(threshold / counts[big])
    drop = np.zeros(len(ids), dtype=bool)
    for s in range(0, len(ids), PPMI_BLOCK):
        part = ids[s : s + PPMI_BLOCK]
        u = rng.random(len(part))
        valid = part >= 0
        drop[s : s + PPMI_BLOCK] = valid & (u < p_drop[np.where(valid, part, 0)])
    return drop


def cooccurrence_counts(kept: np.ndarray, bigram_ids: np.ndarray | None, n_words: int, n_bigrams: int,
                        window: int, dynamic: bool):
    """The (words x contexts) co-occurrence matrix, scipy CSR, float64.

    `kept`: word id per position, -1 between lines, -2 for an out-of-vocabulary
    or subsampled token (a placeholder: it keeps its place in the window).
    Context j of the word at position i, 1 <= |i-j| <= window, weighs 1, or
    (window - d + 1) / window at distance d with the dynamic window (the
    expectation of word2vec's random window shrinking). With `bigram_ids`
    (bigram id per position, for the pair (t[p], t[p+1]); < 0 for none), a word
    also has as contexts the bigrams inside its window that do not cover it
    (ngram2vec's uni->bi co-occurrence), weighted by the distance of their far end.
    Columns: the words, then the bigrams."""
    from scipy import sparse

    n = len(kept)
    seg = np.cumsum(kept == -1, dtype=np.int32)  # line number of each position
    n_ctx = n_words + n_bigrams
    total = sparse.csr_matrix((n_words, n_ctx), dtype=np.float64)

    def weight(dist: int) -> float:
        return (window - dist + 1) / window if dynamic else 1.0

    for s in range(0, n, PPMI_BLOCK):
        rows, cols, vals = [], [], []

        def add(centers, contexts, same_line, w, transpose=False, rows=rows, cols=cols, vals=vals):
            ok = (centers >= 0) & (contexts >= 0) & same_line
            r, c = centers[ok], contexts[ok]
            rows.append(r)
            cols.append(c)
            vals.append(np.full(len(r), w))
            if transpose:
                rows.append(c)
                cols.append(r)
                vals.append(np.full(len(r), w))

        for d in range(1, window + 1):
            # word pairs (i, i+d) for i in this block, counted both ways
            e = min(s + PPMI_BLOCK, n - d)
            if e > s:
                add(kept[s:e], kept[s + d : e + d], seg[s:e] == seg[s + d : e + d], weight(d), transpose=True)
        if bigram_ids is not None:
            for d in range(1, window):
                w = weight(d + 1)  # the bigram's far end is d+1 away
                # right: the bigram at i+d covers i+d, i+d+1
                e = min(s + PPMI_BLOCK, n - d - 1)
                if e > s:
                    right = bigram_ids[s + d : e + d]
                    add(kept[s:e], np.where(right >= 0, right + n_words, -1), seg[s:e] == seg[s + d + 1 : e + d + 1], w)
                # left: the bigram at i-1-d covers i-1-d, i-d (centres i >= d+1)
                lo = max(s, d + 1)
                e = min(s + PPMI_BLOCK, n)
                if e > lo:
                    left = bigram_ids[lo - 1 - d : e - 1 - d]
                    add(kept[lo:e], np.where(left >= 0, left + n_words, -1), seg[lo:e] == seg[lo - 1 - d : e - 1 - d], w)
        if rows:
            r = np.concatenate(rows)
            c = np.concatenate(cols)
            v = np.concatenate(vals)
            total = total + sparse.csr_matrix((v, (r, c)), shape=(n_words, n_ctx))
    total.sum_duplicates()
    return total


def ppmi_matrix(counts, cds: float = 0.75, shift: float = 1.0):
    """PPMI with context-distribution smoothing and an optional shift:

        PMI(w, c) = log( #(w,c) * sum_c' #(c')^cds / (#(w) * #(c)^cds) ) - log(shift)

    with #(w) and #(c) the row and column sums of the co-occurrence counts;
    negative values become 0 (and are not stored). Returns CSR float32."""
    from scipy import sparse

    m = sparse.csr_matrix(counts, dtype=np.float64)
    m.sum_duplicates()
    row = np.asarray(m.sum(axis=1)).ravel()
    col = np.asarray(m.sum(axis=0)).ravel()
    col_a = col**cds
    z = col_a.sum()
    r = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    with np.errstate(divide="ignore"):
        pmi = np.log(m.data) + np.log(z) - np.log(row[r]) - np.log(col_a[m.indices]) - np.log(shift)
    data = np.where(pmi > 0, pmi, 0.0).astype(np.float32)
    out = sparse.csr_matrix((data, m.indices.copy(), m.indptr.copy()), shape=m.shape)
    out.eliminate_zeros()
    return out


def svd_vectors(ppmi, dim: int, eig: float, seed: int):
    """Truncated SVD of the PPMI matrix, M ~ U S V^T. Word vectors U S^eig,
    context vectors V S^eig (eig 0.5 makes their dot products approximate M;
    Levy et al. 2015 found 0 or 0.5 better than 1). Components are ordered by
    decreasing singular value, each signed so its largest |entry| in U is positive."""
    from scipy.sparse.linalg import svds

    k_max = min(ppmi.shape) - 1
    if dim > k_max:
        raise UsageError(f"--svd {dim} must be below the smaller side of the PPMI matrix ({min(ppmi.shape)})")
    # a seeded start vector: the same vectors run to run (ARPACK's own start is random)
    v0 = np.random.default_rng(seed).uniform(-1.0, 1.0, min(ppmi.shape))
    u, s, vt = svds(ppmi.astype(np.float64), k=dim, v0=v0)
    order = np.argsort(-s, kind="stable")
    u, s, vt = u[:, order], s[order], vt[order]
    signs = np.sign(u[np.argmax(np.abs(u), axis=0), np.arange(dim)])
    signs[signs == 0] = 1
    u, vt = u * signs, vt * signs[:, None]
    scale = s**eig
    return (u * scale).astype(np.float32), (vt.T * scale).astype(np.float32), s


@dataclass
class PPMIVectors:
    """What train_ppmi returns."""

    vectors: WordVectors  # words x contexts (CSR), or words x --svd dims; with corpus counts
    contexts: WordVectors  # contexts x words (CSR), or contexts x --svd dims
    tokens: int
    lines: int
    sources: list[Source]
    details: dict  # for meta.json's "training"


def train_ppmi(inputs, opts: TrainOptions) -> PPMIVectors:
    """Read the corpus, count, weigh (and with --svd, factorize): rows in
    descending corpus frequency, as gensim orders them."""
    from scipy import sparse

    rng = np.random.default_rng(opts.seed)
    sources: list[Source] = []
    ids, types, lines = _read_ids(inputs, opts, sources)
    n_tokens = int((ids >= 0).sum())
    counts = np.bincount(ids[ids >= 0], minlength=len(types)).astype(np.int64)
    order = _frequency_order(counts, np.flatnonzero(counts >= opts.min_count))
    if not len(order):
        raise no_vocabulary(opts.min_count, n_tokens, sources)
    n_words = len(order)
    words = [types[i] for i in order]
    remap = np.full(len(types), -2, dtype=np.int32)
    remap[order] = np.arange(n_words, dtype=np.int32)
    wid = np.where(ids >= 0, remap[np.maximum(ids, 0)], -1).astype(np.int32)
    del ids
    word_counts = counts[order]
    threshold = opts.sample * n_tokens
    kept = wid.copy()
    if opts.sample > 0:
        kept[_subsample_mask(wid, word_counts.astype(np.float64), threshold, rng)] = -2

    bigram_ids = None
    bigram_names: list[str] = []
    if opts.ngram_order == 2:
        a, b = wid[:-1], wid[1:]
        both = (a >= 0) & (b >= 0)  # a bigram of rarer words is rarer than min_count anyway
        keys = np.full(len(a), -1, dtype=np.int64)
        keys[both] = a[both].astype(np.int64) * n_words + b[both]
        uniq, first, cnt = np.unique(keys[both], return_index=True, return_counts=True)
        keep = np.flatnonzero(cnt >= opts.min_count)
        bkeys, bcount, bfirst = uniq[keep], cnt[keep], first[keep]
        border = np.lexsort((-bfirst, -bcount))
        rank = np.empty(len(bkeys), dtype=np.int32)
        rank[border] = np.arange(len(bkeys), dtype=np.int32)
        bigram_ids = np.full(len(wid), -2, dtype=np.int32)
        if len(bkeys):
            pos = np.minimum(np.searchsorted(bkeys, keys), len(bkeys) - 1)
            found = both & (bkeys[pos] == keys)
            bigram_ids[:-1][found] = rank[pos[found]]
        if opts.sample > 0:
            bigram_ids[_subsample_mask(bigram_ids, bcount[border].astype(np.float64), threshold, rng)] = -2
        bigram_names = [
            f"{words[int(k) // n_words]}{NGRAM_JOIN}{words[int(k) % n_words]}" for k in bkeys[border]
        ]
    counts_m = cooccurrence_counts(kept, bigram_ids, n_words, len(bigram_names), opts.window, opts.dynamic_window)
    ppmi = ppmi_matrix(counts_m, opts.cds, opts.shift)
    details = {
        "contexts": n_words + len(bigram_names),
        "bigram_contexts": len(bigram_names),
        "nonzeros": int(ppmi.nnz),
        "columns": "the words in row order, then the bigram contexts ('a@$b')" if bigram_names else "the words in row order",
    }
    ctx_words = words + bigram_names
    if opts.svd:
        w, c, s = svd_vectors(ppmi, opts.svd, opts.svd_eig, opts.seed)
        details["svd"] = {"dim": opts.svd, "eig": opts.svd_eig, "top_singular_values": [round(float(x), 4) for x in s[:5]],
                          "weighting": f"U * S^{opts.svd_eig} (contexts: V * S^{opts.svd_eig})"}
    else:
        w, c = ppmi, sparse.csr_matrix(ppmi.T)
    return PPMIVectors(WordVectors(words, w, counts=word_counts), WordVectors(ctx_words, c), n_tokens, lines, sources,
                       details)
