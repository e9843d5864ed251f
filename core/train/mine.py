"""`vecpipe mine`: hard negatives for `vecpipe finetune`.

Queries with their positives and a corpus are encoded with vecpipe's encode
core (each distinct text once) and searched with vecpipe's knn core (faiss or
numpy on CPU, torch on a GPU); no Python loop per query. The negatives of a
query come from the rank window [lo, hi) of its hits, counted from 0 like
FlagEmbedding's hn_mine `range_for_sampling` (10-100: the 11th to the 100th
hit). A candidate is never the query itself, nor one of its positives (the
same text, or a corpus record whose id the qrels name). Margins drop
candidates that score too close to the positive (likely false negatives),
as sentence-transformers' mine_hard_negatives defines them: absolute
(score + margin > positive score) and relative (score > positive - |positive|
x margin), against the query's lowest-scoring positive."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vecpipe.core.errors import DataError, UsageError
from vecpipe.core.io.inputs import display_name, open_input, read_numbered_records
from vecpipe.core.io.records import OnError
from vecpipe.core.train.finetune_data import ANCHOR_NAMES, POSITIVE_NAMES

log = logging.getLogger("vecpipe")

POSITIVE_ID_NAMES = ("pos_id", "positive_id", "text_pos_id", "pos_ids", "positive_ids", "corpus_id", "corpus-id")


@dataclass
class MineOptions:
    lo: int = 10
    hi: int = 100
    negatives: int = 7
    seed: int = 42
    sample: str = "random"  # random (FlagEmbedding) | top (the best-ranked candidates)
    margin: float | None = None  # absolute
    relative_margin: float | None = None
    query_prompt: str | None = None
    corpus_prompt: str | None = None
    text_field: str = "text"
    id_field: str = "id"
    on_error: str = "stop"
    unicode_errors: str = "strict"


@dataclass
class Queries:
    texts: list = field(default_factory=list)
    positives: list = field(default_factory=list)  # list of lists of texts
    positive_ids: list = field(default_factory=list)  # list of lists of corpus ids (may be empty)
    records: list = field(default_factory=list)  # the fields passed through (id)


def parse_range(text: str) -> tuple[int, int]:
    try:
        lo, hi = (int(x) for x in text.split("-"))
    except ValueError:
        raise UsageError(f"--range {text}: expected LO-HI, e.g. 10-100") from None
    if lo < 0 or hi <= lo:
        raise UsageError(f"--range {text}: expected 0 <= LO < HI")
    return lo, hi


def _texts(value):
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    return None


def _ids(value):
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def read_queries(path, opts: MineOptions) -> tuple[Queries, int]:
    """JSONL queries: text (or query/anchor/question) + text_pos (or positive/
    pos, a string or a list), optional positive ids (pos_id ...) and id."""
    name = display_name(path)
    bad = OnError(opts.on_error)
    q = Queries()
    with open_input(path) as fh:
        numbered = read_numbered_records(fh, name, unicode_errors=opts.unicode_errors, on_bad=bad)
        for n, rec in numbered:
            fq = next((f for f in ANCHOR_NAMES if f in rec), None)
            fp = next((f for f in POSITIVE_NAMES if f in rec), None)
            fi = next((f for f in POSITIVE_ID_NAMES if f in rec), None)
            text = rec.get(fq) if fq else None
            pos = _texts(rec.get(fp)) if fp else None
            if not isinstance(text, str) or pos is None:
                bad(DataError('expected a query ("text", "query", ...) and its positive ("text_pos", "positive", '
                              '"pos": a string or a list of strings)', name, n))
                continue
            q.texts.append(text)
            q.positives.append(pos)
            q.positive_ids.append(_ids(rec.get(fi)) if fi else [])
            q.records.append({opts.id_field: rec[opts.id_field]} if opts.id_field in rec else {})
    if not q.texts:
        raise DataError("no queries with positives found", name)
    return q, bad.count


def read_corpus(path, opts: MineOptions) -> tuple[list, list, int]:
    """Texts and ids (None without one) of a JSONL corpus ("text" or
    --text-field; "id"/"_id"; a title is joined as BEIR does) or a text file."""
    name = display_name(path)
    bad = OnError(opts.on_error)
    texts, ids = [], []
    with open_input(path) as fh:
        for n, rec in read_numbered_records(fh, name, text_field=opts.text_field, unicode_errors=opts.unicode_errors,
                                            on_bad=bad):
            text = rec.get(opts.text_field)
            if not isinstance(text, str):
                bad(DataError(f'"{opts.text_field}" must be a string', name, n))
                continue
            title = rec.get("title")
            texts.append(f"{title} {text}".strip() if isinstance(title, str) and title else text)
            key = rec.get(opts.id_field, rec.get("_id"))
            ids.append(None if key is None else str(key))
    if not texts:
        raise DataError("no corpus texts found", name)
    return texts, ids, bad.count


def read_retrieval_folder(folder, opts: MineOptions) -> tuple[Queries, list, list]:
    """An `eval retrieval` folder: queries, corpus, and the qrels' relevant
    documents as positives (by id)."""
    from vecpipe.core.eval.retrieval import find_retrieval_files, read_qrels, read_texts_by_id

    f = find_retrieval_files(folder)
    queries = read_texts_by_id(f["queries"], on_error=opts.on_error, unicode_errors=opts.unicode_errors)
    corpus = read_texts_by_id(f["corpus"], on_error=opts.on_error, unicode_errors=opts.unicode_errors)
    qrels, _ = read_qrels(f["qrels"], on_error=opts.on_error, unicode_errors=opts.unicode_errors)
    q = Queries()
    for qid, rels in qrels.items():
        pos_ids = [d for d, r in rels.items() if r > 0 and d in corpus]
        if qid not in queries or not pos_ids:
            continue
        q.texts.append(queries[qid])
        q.positives.append([corpus[d] for d in pos_ids])
        q.positive_ids.append(pos_ids)
        q.records.append({opts.id_field: qid})
    if not q.texts:
        raise DataError("no judged query with a relevant document in the corpus", str(f["qrels"]))
    return q, list(corpus.values()), list(corpus)


def mine(encoder, queries: Queries, corpus_texts: list, corpus_ids: list, opts: MineOptions, *, device: str = "cpu"):
    """Yield one triplet record per (query, positive): text, text_pos and
    text_neg (a list, best-ranked first), plus the query's id. Returns the
    counts and timings through the generator's `stats` (see MineStats)."""
    stats = MineStats()
    if opts.negatives < 1:
        raise UsageError("--negatives must be >= 1")
    from vecpipe.core.eval.common import encode_all

    t0 = time.perf_counter()
    # the corpus, deduplicated by text: the index rows; positives not in it are encoded for their scores
    pos_texts = [p for ps in queries.positives for p in ps]
    cv, crow = encode_all(encoder, list(corpus_texts) + pos_texts, prompt=opts.corpus_prompt, desc="corpus")
    n_docs = int(crow[: len(corpus_texts)].max()) + 1 if corpus_texts else 0
    qv, qrow = encode_all(encoder, queries.texts, prompt=opts.query_prompt, desc="queries")
    qv = qv[qrow]
    stats.seconds["encode"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    hi = min(opts.hi, n_docs)
    scores, rows = _search(cv[:n_docs], qv, hi, device)
    stats.seconds["search"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    window_s, window_r = scores[:, opts.lo : hi], rows[:, opts.lo : hi]
    bad = _excluded(window_r, queries, corpus_texts, corpus_ids, crow, n_docs)
    stats.excluded_positives = int(bad.sum())
    if opts.margin is not None or opts.relative_margin is not None:
        ends = np.cumsum([len(p) for p in queries.positives])
        pv = cv[crow[len(corpus_texts):]]
        pos_scores = np.einsum("ij,ij->i", np.repeat(qv, np.diff(np.r_[0, ends]), axis=0), pv)
        floor = np.minimum.reduceat(pos_scores, np.r_[0, ends[:-1]])[:, None]  # the lowest positive per query
        too_close = np.zeros_like(bad)
        if opts.margin is not None:
            too_close |= window_s + opts.margin > floor
        if opts.relative_margin is not None:
            too_close |= window_s > floor - np.abs(floor) * opts.relative_margin
        stats.margin_dropped = int((too_close & ~bad).sum())
        bad |= too_close
    bad |= window_r < 0
    picked = _sample(bad, opts)
    stats.seconds["sample"] = time.perf_counter() - t0
    stats.queries = len(queries.texts)
    return _records(queries, picked, window_r, cv, crow, corpus_texts, n_docs, stats, opts)


def _search(index_vectors, qv, k, device):
    """Top-k corpus rows by cosine for every query, through vecpipe's knn core."""
    from vecpipe.core.search.index import Index
    from vecpipe.core.search.knn import KnnOptions, search

    index = Index(index_vectors, list(range(len(index_vectors))), "the corpus")
    return search(index, qv, KnnOptions(k=max(k, 1), metric="cosine", device=device))


def _excluded(window_r, queries: Queries, corpus_texts, corpus_ids, crow, n_docs) -> np.ndarray:
    """Candidates that are the query itself or one of its positives, compared
    as texts (the deduplicated rows) and by the corpus ids the positives name."""
    text_row = {}
    for i, t in enumerate(corpus_texts):
        text_row.setdefault(t, int(crow[i]))
    id_row = {}
    for i, key in enumerate(corpus_ids):
        if key is not None:
            id_row.setdefault(key, int(crow[i]))
    own = [[text_row.get(q, -1)] + [text_row.get(p, -1) for p in ps] + [id_row.get(k, -1) for k in ids]
           for q, ps, ids in zip(queries.texts, queries.positives, queries.positive_ids)]
    width = max(len(o) for o in own)
    forbidden = np.full((len(own), width), -2, dtype=np.int64)
    for i, o in enumerate(own):
        forbidden[i, : len(o)] = [r if r >= 0 else -2 for r in o]
    return (window_r[:, :, None] == forbidden[:, None, :]).any(axis=2)


def _sample(bad: np.ndarray, opts: MineOptions) -> np.ndarray:
    """Window positions of the negatives of each query, in rank order, -1
    padded: the first allowed ones (top) or a uniform sample of them (random)."""
    if opts.sample == "top":
        keys = np.broadcast_to(np.arange(bad.shape[1], dtype=np.float64), bad.shape).copy()
    else:
        keys = np.random.default_rng(opts.seed).random(bad.shape)
    keys[bad] = np.inf
    chosen = np.argsort(keys, axis=1, kind="stable")[:, : opts.negatives]
    ok = ~np.take_along_axis(bad, chosen, axis=1)
    chosen = np.where(ok, chosen, np.iinfo(np.int64).max)
    chosen.sort(axis=1)
    return np.where(chosen == np.iinfo(np.int64).max, -1, chosen)


@dataclass
class MineStats:
    queries: int = 0
    written: int = 0
    short: int = 0  # queries with fewer negatives than asked
    empty: int = 0  # queries with none (not written)
    excluded_positives: int = 0
    margin_dropped: int = 0
    seconds: dict = field(default_factory=dict)


class _Records:
    """The output records (an iterable) and, once consumed, the stats."""

    def __init__(self, gen, stats):
        self._gen, self.stats = gen, stats

    def __iter__(self):
        return self._gen


def _records(queries, picked, window_r, cv, crow, corpus_texts, n_docs, stats, opts):
    distinct = {}
    for i, t in enumerate(corpus_texts):
        distinct.setdefault(int(crow[i]), t)

    def gen():
        for j, text in enumerate(queries.texts):
            pos = picked[j][picked[j] >= 0]
            if len(pos) < opts.negatives:
                stats.short += 1
            if not len(pos):
                stats.empty += 1
                continue
            negs = [distinct[int(r)] for r in window_r[j, pos]]
            for p in queries.positives[j]:
                stats.written += 1
                yield {**queries.records[j], "text": text, "text_pos": p, "text_neg": negs}

    return _Records(gen(), stats)


def is_retrieval_folder(path) -> bool:
    return path not in (None, "-") and Path(path).is_dir()
