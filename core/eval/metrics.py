"""The numbers of the field, as the reference tools compute them.

- correlations: scipy.stats (spearmanr, pearsonr), as gensim's
  evaluate_word_pairs and text2vec's STS evaluation call them;
- retrieval: trec_eval's definitions (what pytrec_eval, BEIR and MTEB report):
  nDCG@k with linear gains and log2 discounts, MRR@k, MAP over the ranked
  list, Recall@k over every judged relevant document;
- classification: accuracy and macro-F1 (the mean of per-class F1, as
  scikit-learn's f1_score(average="macro")).

Pure functions of arrays and dicts; no I/O."""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np


# ---------------------------------------------------------------- correlations


def spearman(x, y) -> float:
    """Spearman's rank correlation (scipy.stats.spearmanr); nan when undefined."""
    import warnings

    from scipy import stats

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < 2:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a constant input: nan, said by the caller
        return float(stats.spearmanr(x, y)[0])


SCORE_DECIMALS = 6


def tied(scores) -> np.ndarray:
    """Model scores as they are ranked: rounded to SCORE_DECIMALS decimals, so
    that scores equal in exact arithmetic (an averaging model on a word-permuted
    sentence, a pair given twice) tie, instead of being ordered by float noise
    (which would move Spearman with the summation order)."""
    return np.round(np.asarray(scores, dtype=np.float64), SCORE_DECIMALS)


def pearson(x, y) -> float:
    """Pearson's correlation (scipy.stats.pearsonr); nan when undefined."""
    import warnings

    from scipy import stats

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < 2:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.pearsonr(x, y)[0])


# ---------------------------------------------------------------- analogies


def ratio(num: int | float, den: int | float) -> float:
    """num / den, 0.0 for an empty denominator (as the Chinese-Word-Vectors toolkit prints)."""
    return float(num) / den if den else 0.0


# ---------------------------------------------------------------- retrieval


def dcg(gains: Sequence[float]) -> float:
    return float(sum(g / math.log2(i + 2) for i, g in enumerate(gains)))


def query_retrieval_metrics(ranked: Sequence, rels: Mapping, *, ndcg_at=(10,), mrr_at=(10,), recall_at=(1, 10, 100)) -> dict:
    """The metrics of one query.

    ranked: document ids, best first (the run, as deep as it was retrieved).
    rels: document id -> graded relevance (> 0 relevant; 0 or less not).
    nDCG@k: sum of rel_i / log2(i + 1) over ranks i <= k, divided by the same
    sum over the ideal order of all judged documents (trec_eval's ndcg_cut).
    MRR@k: 1 / rank of the first relevant document within k, else 0.
    MAP: mean over the relevant documents of the precision at their rank
    (0 for those not retrieved): trec_eval's map over the run's depth.
    Recall@k: relevant documents in the first k / all relevant documents."""
    relevant = {d for d, r in rels.items() if r > 0}
    n_rel = len(relevant)
    out = {}
    ideal = sorted((r for r in rels.values() if r > 0), reverse=True)
    for k in ndcg_at:
        idcg = dcg(ideal[:k])
        got = dcg([max(rels.get(d, 0), 0) for d in ranked[:k]])
        out[f"ndcg@{k}"] = got / idcg if idcg > 0 else 0.0
    for k in mrr_at:
        rr = 0.0
        for i, d in enumerate(ranked[:k]):
            if d in relevant:
                rr = 1.0 / (i + 1)
                break
        out[f"mrr@{k}"] = rr
    hits, precisions = 0, 0.0
    for i, d in enumerate(ranked):
        if d in relevant:
            hits += 1
            precisions += hits / (i + 1)
    out["map"] = precisions / n_rel if n_rel else 0.0
    for k in recall_at:
        out[f"recall@{k}"] = (sum(1 for d in ranked[:k] if d in relevant) / n_rel) if n_rel else 0.0
    return out


def retrieval_metrics(run: Mapping[str, Sequence], qrels: Mapping[str, Mapping], **kw) -> dict:
    """Mean of query_retrieval_metrics over the queries of `run` (query id ->
    ranked document ids); every query of `run` must be in `qrels`."""
    per_query = [query_retrieval_metrics(run[q], qrels[q], **kw) for q in run]
    if not per_query:
        return {}
    return {name: float(np.mean([m[name] for m in per_query])) for name in per_query[0]}


# ---------------------------------------------------------------- classification


def accuracy(y_true, y_pred) -> float:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float((y_true == y_pred).mean()) if len(y_true) else 0.0


def macro_f1(y_true, y_pred, labels=None) -> float:
    """Mean F1 over the classes (those in y_true or y_pred, or `labels`); a
    class with no true and no predicted example scores 0, as in scikit-learn."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    classes = np.unique(np.concatenate([y_true, y_pred])) if labels is None else np.asarray(labels)
    scores = []
    for c in classes:
        tp = int(((y_true == c) & (y_pred == c)).sum())
        fp = int(((y_true != c) & (y_pred == c)).sum())
        fn = int(((y_true == c) & (y_pred != c)).sum())
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return float(np.mean(scores)) if scores else 0.0
