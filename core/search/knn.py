"""`vecpipe knn`: an index (vecdir, .npy + ids, JSONL with vectors, or a saved
faiss index) and queries (words, texts, or vectors) -> neighbours per query.
The job: search dispatch (faiss, GPU, exact CPU), queries -> output records."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import numpy as np

from vecpipe.core.errors import DataError, UsageError
from vecpipe.core.io.inputs import display_name
from vecpipe.core.io.progress import progress
from vecpipe.core.search.faiss import faiss_search
from vecpipe.core.search.gpu import search_on_device
from vecpipe.core.search.index import Index
from vecpipe.core.search.queries import read_query_stream, read_triples
from vecpipe.core.search.sharded import ShardedVectors, ray_searcher, sharded_topk
from vecpipe.core.search.topk import analogy, topk

log = logging.getLogger("vecpipe")


@dataclass
class KnnOptions:
    k: int = 10
    metric: str = "cosine"
    min_score: float | None = None
    exclude_self: bool = False
    text_field: str = "text"
    id_field: str = "id"
    vector_field: str = "vector"
    query_block: int = 4096  # queries read and searched at a time (faiss's own block; torch takes 1024 at a time)
    device: str = "cpu"
    nprobe: int | None = None
    engine: str = "auto"  # exact CPU search: faiss's exact knn when installed (auto), else numpy
    prompt: str | None = None
    shard_engine: str = "local"  # a sharded index: its shards searched here (local) or by Ray tasks (ray)
    ray_address: str = "auto"


@dataclass
class KnnStats:
    queries: int = 0
    oov: int = 0
    oov_examples: list = field(default_factory=list)


def search(index: Index, queries: np.ndarray, opts: KnnOptions, exclude=None):
    """(scores, rows) for a block of query vectors, by faiss, torch or numpy."""
    if index.faiss is not None:
        return faiss_search(index, queries, opts, exclude)
    if opts.device not in ("cpu", "auto", None) and opts.device.startswith(("cuda", "mps")) \
            and not isinstance(index.vectors, ShardedVectors):
        if opts.metric != "euclidean":
            return search_on_device(index, queries, opts, exclude)
    engine = "faiss" if opts.engine == "auto" and opts.metric != "euclidean" and _have_faiss() else "numpy"
    if isinstance(index.vectors, ShardedVectors):
        if opts.shard_engine == "ray" and getattr(index, "searcher", None) is None:
            index.searcher = ray_searcher(opts.ray_address)
        # numpy's BLAS product per shard: faiss's exact knn rounds a row's score differently with the shard's
        # size, and a duplicate row in another shard would no longer tie with it
        return sharded_topk(queries, index.vectors, opts.k, metric=opts.metric, exclude=exclude, min_score=opts.min_score,
                            engine="numpy", searcher=getattr(index, "searcher", None))
    return topk(queries, index.vectors, opts.k, metric=opts.metric, exclude=exclude, min_score=opts.min_score,
                engine=engine)


def _have_faiss() -> bool:
    from importlib.util import find_spec

    return find_spec("faiss") is not None


# ---------------------------------------------------------------- queries -> records


def neighbor_lists(index: Index, scores, rows) -> list[list[dict]]:
    ids = index.ids
    return [[{"id": ids[r], "score": s} for s, r in zip(srow, rrow) if r >= 0] for srow, rrow in zip(scores, rows)]


def answer_block(kind, payload, records, index: Index, opts: KnnOptions, encoder=None, stats: KnnStats | None = None,
                 word_mode: bool = False, *, first: int = 0, source: str = "the queries"):
    """Output records (input fields + neighbors) for one block of queries;
    `first` is the block's position in the query stream, `source` its name."""
    from vecpipe.core.encode.pipeline import EncodeOptions, encode_texts

    stats = stats or KnnStats()
    exclude = None
    out = [dict(r) for r in records]
    if kind == "vectors":
        vectors = np.asarray(payload, dtype=np.float32)
        _check_dims(vectors, index, source)
        if opts.exclude_self:
            exclude = _self_rows(index, records, opts, vectors=vectors, first=first, source=source)
        valid = np.ones(len(out), dtype=bool)
    elif word_mode:
        rows = [index.row_of(w) for w in payload]
        valid = np.array([r is not None for r in rows])
        for rec, word, ok in zip(out, payload, valid):
            rec.setdefault(opts.text_field, word)
            if not ok:
                stats.oov += 1
                if len(stats.oov_examples) < 5:
                    stats.oov_examples.append(word)
        present = [r for r in rows if r is not None]
        vectors = np.asarray(index.vectors[np.asarray(present, dtype=np.int64)], dtype=np.float32) if present \
            else np.empty((0, index.vectors.shape[1]), np.float32)
        exclude = [[r] for r in present]  # a word is not its own neighbour (gensim, fastText nn)
    else:
        if encoder is None:
            raise UsageError("the queries are texts: give -m MODEL to encode them (or pass vectors)")
        vectors = encode_texts(encoder, list(payload), EncodeOptions(prompt=opts.prompt))
        _check_dims(vectors, index, f"the model {encoder.name}")
        valid = np.ones(len(out), dtype=bool)
        for rec, text in zip(out, payload):
            rec.setdefault(opts.text_field, text)
        if opts.exclude_self:
            exclude = _self_rows(index, records, opts, texts=payload)
    stats.queries += len(out)
    if len(vectors):
        scores, rows = search(index, vectors, opts, exclude)
        lists = neighbor_lists(index, scores, rows)
    else:
        lists = []
    it = iter(lists)
    for rec, ok in zip(out, valid):
        if ok:
            rec["neighbors"] = next(it)
        else:
            rec["neighbors"] = None
            rec["error"] = "not in the vocabulary"
    return out


def _check_dims(vectors: np.ndarray, index: Index, source: str) -> None:
    if vectors.ndim == 2 and vectors.shape[1] != index.dim:
        raise DataError(f"{source}: the queries have {vectors.shape[1]} dimensions, "
                        f"the index {index.source} has {index.dim}")


def _self_rows(index: Index, records, opts: KnnOptions, *, vectors=None, texts=None, first: int = 0,
               source: str = "the queries") -> list[list[int]]:
    """For --exclude-self, the index rows that are each query itself, by
    identity, never by distance: the rows carrying the query record's id
    (--id-field); else, for a text query, the rows whose id is the text; else,
    for vectors, the index row at the query's position in the stream (the
    queries are the index's own rows), checked to hold the same vector."""
    out = []
    positional = []
    for j, rec in enumerate(records):
        if opts.id_field in rec:
            out.append(index.rows_of_id(rec[opts.id_field]))
        elif texts is not None:
            out.append(index.rows_of_id(texts[j]))
        else:
            out.append([first + j])
            positional.append(j)
    if positional:
        pos = np.asarray(positional)
        rows = first + pos
        inside = rows < index.vectors.shape[0]
        same = np.zeros(len(pos), dtype=bool)
        if inside.any():
            mine = np.asarray(index.vectors[rows[inside]], dtype=np.float32)
            same[inside] = np.isclose(mine, vectors[pos[inside]], rtol=1e-3, atol=1e-6).all(axis=1)
        if not same.all():
            bad = int(rows[np.argmin(same)])
            raise UsageError(f"--exclude-self: query {bad} of {source} is not row {bad} of the index {index.source}; "
                             f'queries without an "{opts.id_field}" must be the index\'s own rows, in order')
    return out


def answer_analogies(triples, index: Index, opts: KnnOptions, method: str, stats: KnnStats):
    out = []
    known, idx = [], []
    for t in triples:
        rec = {"analogy": list(t)}
        rows = [index.row_of(w) for w in t]
        if len(t) != 3:
            raise UsageError(f"an analogy takes three words (a b c: a is to b as c is to ?), got {len(t)}: {' '.join(t)}")
        if any(r is None for r in rows):
            missing = [w for w, r in zip(t, rows) if r is None]
            rec["neighbors"] = None
            rec["error"] = "not in the vocabulary: " + " ".join(missing)
            stats.oov += 1
            if len(stats.oov_examples) < 5:
                stats.oov_examples.append(missing[0])
        else:
            known.append(rec)
            idx.append(rows)
        out.append(rec)
    if idx:
        a, b, c = np.asarray(idx).T
        scores, rows = analogy(index.vectors, a, b, c, k=opts.k, method=method)
        if opts.min_score is not None:  # as topk drops them for plain queries
            rows = np.where(scores >= opts.min_score, rows, -1)
        for rec, lst in zip(known, neighbor_lists(index, scores, rows)):
            rec["neighbors"] = lst
    stats.queries += len(out)
    return out


def run_knn(args: list[str], src, index: Index | None, encoder, opts: KnnOptions, *, analogy_method: str | None = None):
    """Yield one output record per query: from the command-line words/texts
    `args`, else from the stream `src` (texts, JSONL, or vectors)."""
    stats = KnnStats()
    word_mode = False
    if opts.shard_engine == "ray" and (index is None or not isinstance(index.vectors, ShardedVectors)):
        raise UsageError("--engine ray searches a sharded --index (a folder or glob of shards)")
    if index is None:
        if encoder is None or encoder.word_vectors is None:
            raise UsageError("give --index (a vecdir, .npy or JSONL with vectors), or -m a word-vector model to search its words")
        wv = encoder.word_vectors
        index = Index(wv.vectors, wv.words, encoder.name, lookup=wv.index)
        word_mode = True
    if opts.k > index.vectors.shape[0]:  # no more neighbours than rows: -k 1000000000 must not pad a billion columns
        opts = replace(opts, k=max(1, index.vectors.shape[0]))
    if analogy_method:
        if args:
            blocks = [[tuple(args)]] if len(args) == 3 else None
            if blocks is None:
                raise UsageError("--analogy takes three words: a b c (a is to b as c is to ?)")
        else:
            blocks = read_triples(src)
        with progress(unit=" queries", desc="knn", disable=bool(args)) as bar:
            for triples in blocks:
                out = answer_analogies(triples, index, opts, analogy_method, stats)
                bar.update(len(out))
                yield from out
    elif args:
        yield from answer_block("texts", args, [{} for _ in args], index, opts, encoder, stats, word_mode)
    else:
        source = display_name(src)
        with progress(unit=" queries", desc="knn") as bar:  # a stream may take minutes
            for kind, payload, records, first in read_query_stream(src, opts):
                out = answer_block(kind, payload, records, index, opts, encoder, stats, word_mode and kind == "texts",
                                   first=first, source=source)
                bar.update(len(out))
                yield from out
    if stats.oov:
        log.warning("%d of %d queries not in the vocabulary (e.g. %s)", stats.oov, stats.queries,
                    ", ".join(stats.oov_examples) or "-")
