"""Exact nearest neighbours and word analogies by blocked matrix products.

Memory is bounded whatever the index size: queries go in blocks, the index in
row blocks (an mmap'd vecdir larger than RAM works), and only the best k per
query are kept between blocks. Ties are broken by the lower row number, so
results are deterministic and equal a brute-force sort."""
from __future__ import annotations

import numpy as np

from vecpipe.core.errors import UsageError

METRICS = ("cosine", "dot", "euclidean")


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """float32 rows scaled to unit length; all-zero rows stay zero."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1, norms)


def _merge_topk(best_s, best_i, s, i, k):
    """Merge candidate scores/ids into the running best k (per row), ties by id."""
    if best_s is None:
        cand_s, cand_i = s, i
    else:
        cand_s = np.concatenate([best_s, s], axis=1)
        cand_i = np.concatenate([best_i, i], axis=1)
    if cand_s.shape[1] > k:
        part = np.argpartition(-cand_s, k - 1, axis=1)[:, :k]
        kth = np.take_along_axis(cand_s, part, axis=1).min(axis=1, keepdims=True)
        # argpartition picks arbitrarily among equal scores at the k-th place:
        # keep everything tied with the k-th and let the final sort decide by id
        tied = cand_s >= kth
        if (tied.sum(axis=1) > k).any():
            order = np.lexsort((cand_i, -cand_s), axis=1)[:, :k]
            return np.take_along_axis(cand_s, order, axis=1), np.take_along_axis(cand_i, order, axis=1)
        cand_s = np.take_along_axis(cand_s, part, axis=1)
        cand_i = np.take_along_axis(cand_i, part, axis=1)
    return cand_s, cand_i


_GROUP = 32  # columns per group for the candidate filter of _block_topk


def finish_topk(best_s, best_i, min_score=None):
    """Merged candidates -> the answer: ties by lower row, rows never ranked
    (-inf) and scores under min_score as -1 / -inf. One rule for the
    single-matrix and the sharded search, so their answers are the same."""
    order = np.lexsort((best_i, -best_s), axis=1)
    best_s = np.take_along_axis(best_s, order, axis=1)
    best_i = np.take_along_axis(best_i, order, axis=1)
    best_i = np.where(np.isneginf(best_s), -1, best_i)
    if min_score is not None:
        best_i = np.where(best_s < min_score, -1, best_i)
        best_s = np.where(best_s < min_score, -np.inf, best_s)
    return best_s, best_i


def _unrank_nonfinite(s: np.ndarray, rows=None) -> None:
    """NaN and +inf scores (from NaN/Inf in a vector, or overflow) become -inf
    in place, so they are never ranked ahead of real scores."""
    part = s if rows is None else s[rows]
    bad = np.isnan(part) | np.isposinf(part)
    if bad.any():
        part[bad] = -np.inf
        if rows is not None:
            s[rows] = part


def _sorted_topk(s: np.ndarray, cols: np.ndarray, take: int):
    """Best `take` of each row by (-score, id): a partition, then a sort of
    the few left (a full sort only for rows with ties at the cut)."""
    n = s.shape[1]
    if n > take:
        part = np.argpartition(s, n - take, axis=1)[:, n - take :]
        top_s = np.take_along_axis(s, part, axis=1)
        top_c = np.take_along_axis(cols, part, axis=1)
        tied = np.flatnonzero((s >= top_s.min(axis=1, keepdims=True)).sum(axis=1) > take)
        if len(tied):
            order = np.lexsort((cols[tied], -s[tied]), axis=1)[:, :take]
            top_s[tied] = np.take_along_axis(s[tied], order, axis=1)
            top_c[tied] = np.take_along_axis(cols[tied], order, axis=1)
        s, cols = top_s, top_c
    order = np.lexsort((cols, -s), axis=1)
    return np.take_along_axis(s, order, axis=1), np.take_along_axis(cols, order, axis=1)


def _block_topk(s: np.ndarray, start: int, take: int):
    """The best `take` columns of each row of a score block, as (scores, ids),
    best first, equal scores by lower id (exactly what a full sort gives).

    Selecting from every column would cost as much as the matrix product.
    Columns are dealt into 32 groups of n/32 (column j in group j mod n/32)
    whose maxima take one vectorised pass; an answer can only lie in the
    `take` groups with the largest maxima, so only those 32*take columns are
    sorted. Rows where group maxima tie at the cut take the full sort."""
    rows, n = s.shape
    ng = n // _GROUP
    all_cols = None
    if n <= take or ng < 2 * take:
        _unrank_nonfinite(s)
        all_cols = np.broadcast_to(np.arange(n, dtype=np.int64), s.shape)
        sc, cc = _sorted_topk(s, all_cols, take)
        return sc, cc + start
    main = ng * _GROUP
    gmax = s[:, :main].reshape(rows, _GROUP, ng).max(axis=1)
    # a group maximum is NaN or +inf when a score in its group is: clean those rows only (free otherwise)
    dirty = np.flatnonzero((np.isnan(gmax) | np.isposinf(gmax)).any(axis=1))
    if len(dirty):
        _unrank_nonfinite(s, dirty)
        gmax[dirty] = s[dirty, :main].reshape(len(dirty), _GROUP, ng).max(axis=1)
    if main < n:
        _unrank_nonfinite(s[:, main:])
    part = np.argpartition(gmax, ng - take, axis=1)[:, ng - take :]
    cut = np.take_along_axis(gmax, part, axis=1).min(axis=1, keepdims=True)
    cols = (part[:, :, None] + ng * np.arange(_GROUP)).reshape(rows, -1)
    if main < n:  # columns that do not fill a group are always candidates
        cols = np.concatenate([cols, np.broadcast_to(np.arange(main, n), (rows, n - main))], axis=1)
    sc, cc = _sorted_topk(np.take_along_axis(s, cols, axis=1), cols, take)
    tied = np.flatnonzero((gmax >= cut).sum(axis=1) > take)
    if len(tied):
        all_cols = np.broadcast_to(np.arange(n, dtype=np.int64), (len(tied), n))
        sc[tied], cc[tied] = _sorted_topk(s[tied], all_cols, take)
    return sc, cc + start


def _faiss_or_none():
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def _faiss_block_topk(faiss, qb: np.ndarray, block: np.ndarray, start: int, take: int, excluded):
    """_block_topk's answer for inner products, with faiss's exact knn doing the
    product and the selection (multi-threaded). faiss is asked for one more than
    needed: where that one ties the last kept (the choice among equal scores
    would be faiss's), and where a score is +inf, the row is redone by numpy."""
    n = block.shape[0]
    extra = max((len(r) for r in excluded if r), default=0) if excluded is not None else 0
    want = min(take + 1 + extra, n)
    d, i = faiss.knn(qb, block, want, metric=faiss.METRIC_INNER_PRODUCT)
    d[i < 0] = -np.inf
    if extra:
        for r, rows in enumerate(excluded):
            if rows:
                d[r, np.isin(i[r], np.asarray(rows) - start)] = -np.inf
    order = np.lexsort((i, -d), axis=1)
    d, i = np.take_along_axis(d, order, axis=1), np.take_along_axis(i, order, axis=1)
    redo = np.isposinf(d).any(axis=1)
    if want < n:
        redo |= (d[:, take - 1] == d[:, take]) & ~np.isneginf(d[:, take - 1])
    d, i = d[:, :take], i[:, :take] + start
    for r in np.flatnonzero(redo):
        s = qb[r : r + 1] @ block.T
        for row in (excluded[r] or ()) if excluded is not None else ():
            if start <= row < start + n:
                s[0, row - start] = -np.inf
        d[r], i[r] = (a[0] for a in _block_topk(s, start, take))
    return d, i


def topk(queries: np.ndarray, index, k: int, *, metric: str = "cosine", exclude=None,
         query_block: int = 1024, index_block: int = 16384, min_score: float | None = None,
         index_normalized: bool = False, engine: str = "numpy"):
    """Top-k rows of `index` for each query: (scores, ids), best first.

    metric: cosine (default), dot, or euclidean (score = -distance).
    exclude: for each query, a sequence of index rows never to return (the query
    word itself, the question words of an analogy), or None.
    engine: numpy (BLAS product + vectorised selection), or faiss (faiss's
    exact knn for cosine and dot, when installed; the same ids and tie order,
    scores from faiss's own product, equal to numpy's within float32 rounding).
    Rows with fewer than k candidates are padded with id -1 and score -inf."""
    if metric not in METRICS:
        raise UsageError(f"--metric must be one of {', '.join(METRICS)}")
    if k < 1:
        raise UsageError("-k must be >= 1")
    q = np.asarray(queries, dtype=np.float32)
    if q.ndim == 1:
        q = q[None, :]
    n_index = index.shape[0]
    if q.shape[1] != index.shape[1]:
        raise UsageError(f"queries have {q.shape[1]} dimensions, the index {index.shape[1]}")
    if metric == "cosine":
        q = normalize_rows(q)
    faiss = _faiss_or_none() if engine == "faiss" and metric != "euclidean" else None
    if faiss is not None:
        q = np.ascontiguousarray(q)
        query_block = max(query_block, 4096)  # faiss's own query block for its BLAS path
        if (metric == "dot" or index_normalized) and np.asarray(index[:0]).dtype == np.float32:
            # no copy to make (an mmap stays an mmap): one call over the whole index
            index_block = max(index_block, n_index)
    out_s = np.full((len(q), k), -np.inf, dtype=np.float32)
    out_i = np.full((len(q), k), -1, dtype=np.int64)
    for qs in range(0, len(q), query_block):
        qb = q[qs : qs + query_block]
        best_s = best_i = None
        for start in range(0, n_index, index_block):
            block = np.asarray(index[start : start + index_block], dtype=np.float32)
            if metric == "cosine" and not index_normalized:
                block = normalize_rows(block)
            if faiss is not None:
                excluded = exclude[qs : qs + query_block] if exclude is not None else None
                s_sel, i_sel = _faiss_block_topk(faiss, qb, np.ascontiguousarray(block), start,
                                                 min(k, len(block)), excluded)
                best_s, best_i = _merge_topk(best_s, best_i, s_sel, i_sel, k)
                continue
            s = qb @ block.T
            if metric == "euclidean":
                with np.errstate(invalid="ignore", over="ignore"):  # NaN/Inf rows are never ranked (_block_topk)
                    s = -np.sqrt(np.maximum((qb * qb).sum(1)[:, None] - 2 * s + (block * block).sum(1)[None, :], 0))
            if exclude is not None:
                for r, rows in enumerate(exclude[qs : qs + query_block]):
                    for row in rows or ():
                        if start <= row < start + len(block):
                            s[r, row - start] = -np.inf
            s_sel, i_sel = _block_topk(s, start, min(k, s.shape[1]))
            best_s, best_i = _merge_topk(best_s, best_i, s_sel, i_sel, k)
        if best_s is None:  # an index of no rows (an empty input's encode): padding only
            continue
        best_s, best_i = finish_topk(best_s, best_i, min_score)
        out_s[qs : qs + len(qb), : best_s.shape[1]] = best_s
        out_i[qs : qs + len(qb), : best_i.shape[1]] = best_i
    return out_s, out_i


def analogy(matrix, a, b, c, *, k: int = 1, method: str = "add", restrict: int | None = None,
            query_block: int = 1024, index_block: int = 16384):
    """Answer 'a is to b as c is to ?' for arrays of row ids, vectorised over
    questions and blocked over the vocabulary (memory stays bounded).

    add: 3CosAdd, the ranking of gensim's most_similar(positive=[b, c],
    negative=[a]); the score is gensim's (cosine to the normalised b+c-a).
    mul: 3CosMul, gensim's most_similar_cosmul: cosines shifted to [0, 1],
    b*c / (a + 1e-6).
    The question words are never answers (gensim, the Chinese-Word-Vectors
    toolkit). `restrict` searches only the first N rows (gensim's
    restrict_vocab). Returns (scores, ids) of shape (questions, k), best first."""
    if method not in ("add", "mul"):
        raise UsageError("analogy method must be add (3CosAdd) or mul (3CosMul)")
    n = matrix.shape[0] if restrict is None else min(restrict, matrix.shape[0])
    a, b, c = (np.asarray(v, dtype=np.int64).reshape(-1) for v in (a, b, c))
    out_s = np.full((len(a), k), -np.inf, dtype=np.float32)
    out_i = np.full((len(a), k), -1, dtype=np.int64)
    for qs in range(0, len(a), query_block):
        qa, qb, qc = a[qs : qs + query_block], b[qs : qs + query_block], c[qs : qs + query_block]
        va, vb, vc = (normalize_rows(np.asarray(matrix[q])) for q in (qa, qb, qc))
        if method == "add":
            target = normalize_rows(vb + vc - va)
        best_s = best_i = None
        for start in range(0, n, index_block):
            block = normalize_rows(np.asarray(matrix[start : min(n, start + index_block)]))
            if method == "add":
                s = target @ block.T
            else:
                # ((1+b)/2 * (1+c)/2) / ((1+a)/2 + 1e-6), rewritten in place: fewer passes, no temporaries
                s = vb @ block.T
                s += 1
                t = vc @ block.T
                t += 1
                s *= t
                np.matmul(va, block.T, out=t)
                t += 1
                t *= 2
                t += 4e-6
                s /= t
            for q in (qa, qb, qc):
                hit = (q >= start) & (q < start + len(block))
                s[np.flatnonzero(hit), q[hit] - start] = -np.inf
            s_sel, i_sel = _block_topk(s, start, min(k, s.shape[1]))
            best_s, best_i = _merge_topk(best_s, best_i, s_sel, i_sel, k)
        order = np.lexsort((best_i, -best_s), axis=1)
        width = best_s.shape[1]
        out_s[qs : qs + len(qa), :width] = np.take_along_axis(best_s, order, axis=1)
        out_i[qs : qs + len(qa), :width] = np.take_along_axis(best_i, order, axis=1)
    out_i[np.isneginf(out_s)] = -1  # k beyond the candidates: the question words (-inf) are never answers
    return out_s, out_i
