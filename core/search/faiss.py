"""Approximate (or exact) search with faiss: build an index from a factory
string, save it with its metadata (PATH.meta.json: metric, dim, rows,
normalisation), load it back checked against the rows it answers for, search."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import orjson

from vecpipe.core.errors import DataError, NoInputError, UsageError
from vecpipe.core.search.topk import normalize_rows

if TYPE_CHECKING:
    from vecpipe.core.search.index import Index
    from vecpipe.core.search.knn import KnnOptions

log = logging.getLogger("vecpipe")


def _faiss():
    try:
        import faiss
    except ImportError:
        from vecpipe.core.errors import UnavailableError

        raise UnavailableError("faiss is not installed: pip install 'vecpipe[faiss]'") from None
    return faiss


def _faiss_message(exc: Exception) -> str:
    """faiss's own words without its C++ file, line and failed assertion."""
    import re

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return re.split(r"\.(?:cpp|h):\d+: (?:Error: '.*?' failed: )?", text)[-1]


def build_faiss(index: Index, spec: str, metric: str = "cosine"):
    """A faiss index from a factory string ("IVF4096,Flat", "HNSW32", "Flat"),
    inner product on normalised vectors for cosine. A string faiss cannot
    parse, or an index that cannot be trained on these rows, is a usage error."""
    from vecpipe.core.search.sharded import ShardedVectors, build_sharded_faiss

    if isinstance(index.vectors, ShardedVectors):  # trained on a sample, filled shard by shard
        return build_sharded_faiss(index, spec, metric)
    faiss = _faiss()
    x = normalize_rows(index.vectors) if metric == "cosine" else np.ascontiguousarray(index.vectors, dtype=np.float32)
    measure = faiss.METRIC_L2 if metric == "euclidean" else faiss.METRIC_INNER_PRODUCT
    try:
        fi = faiss.index_factory(x.shape[1], spec, measure)
    except RuntimeError as exc:
        raise UsageError(f'--faiss "{spec}": not a faiss factory string faiss can build ({_faiss_message(exc)}); '
                         'e.g. "Flat", "HNSW32", "IVF1024,Flat"') from None
    try:
        if not fi.is_trained:
            fi.train(x)
        fi.add(x)
    except RuntimeError as exc:
        raise UsageError(f'--faiss "{spec}" cannot be built from the {x.shape[0]} rows of {index.source}: '
                         f"{_faiss_message(exc)}") from None
    index.faiss = fi
    index.faiss_meta = {"metric": metric, "dim": int(x.shape[1]), "rows": int(x.shape[0]),
                        "normalized": metric == "cosine", "factory": spec}
    return fi


def faiss_meta_path(path) -> Path:
    """Where the metric, dim and normalisation of a saved faiss index are recorded."""
    return Path(str(path) + ".meta.json")


def load_faiss(index: Index, path, metric: str | None = None) -> str:
    """Attach a saved faiss index; returns the metric it answers for. `metric`
    (None: not given) must be the one it was built with (recorded beside it in
    PATH.meta.json; without that file, as far as faiss's own metric tells)."""
    faiss = _faiss()
    if not Path(path).is_file():
        raise NoInputError(f"{path}: no such faiss index")
    try:
        fi = faiss.read_index(str(path))
    except RuntimeError as exc:
        raise DataError(f"not a faiss index faiss can read ({_faiss_message(exc)})", path) from None
    meta_path = faiss_meta_path(path)
    meta = None
    if meta_path.is_file():
        try:
            meta = orjson.loads(meta_path.read_bytes())
            saved = meta["metric"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise DataError('invalid metadata (expected JSON with "metric")', meta_path) from None
    else:
        saved = "euclidean" if fi.metric_type == faiss.METRIC_L2 else None
        if saved is None and metric == "euclidean":
            saved = "cosine or dot"
    if metric is not None and saved is not None and metric != saved:
        raise UsageError(f"{path} was built for --metric {saved}, not {metric}: "
                         f"rebuild it with --faiss ... --metric {metric}, or search it with --metric {saved.split()[0]}")
    if saved is None:  # an inner-product index made elsewhere: cosine or dot, faiss cannot tell
        saved = metric or "cosine"
        log.warning("%s: no %s beside it; searching it as --metric %s", path, meta_path.name, saved)
    if fi.d != index.dim:
        raise DataError(f"holds {fi.d}-dimensional vectors, the index {index.source} {index.dim}-dimensional", path)
    if fi.ntotal != len(index.ids):
        raise DataError(f"holds {fi.ntotal} vectors but {index.source} has {len(index.ids)} rows (ids)", path)
    index.faiss = fi
    index.faiss_meta = meta or {"metric": saved, "dim": int(fi.d), "rows": int(fi.ntotal)}
    return saved


def save_faiss(index: Index, path) -> None:
    """The faiss index, and beside it PATH.meta.json: metric, dim, rows, normalisation."""
    from vecpipe.core.io.outputs import atomic_path

    faiss = _faiss()
    with atomic_path(faiss_meta_path(path)) as tmp:
        Path(tmp).write_bytes(orjson.dumps(index.faiss_meta, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))
    with atomic_path(path) as tmp:
        faiss.write_index(index.faiss, str(tmp))


def faiss_search(index: Index, queries, opts: KnnOptions, exclude=None):
    """faiss's answer in the shape of topk's; rows in `exclude` (per query) are
    left out: faiss is asked for as many more as the longest exclusion."""
    faiss = _faiss()
    q = normalize_rows(queries) if opts.metric == "cosine" else np.ascontiguousarray(queries, dtype=np.float32)
    if opts.nprobe:
        try:
            faiss.ParameterSpace().set_index_parameter(index.faiss, "nprobe", opts.nprobe)
        except RuntimeError as exc:
            raise UsageError(f"--nprobe: {_faiss_message(exc)} (it applies to IVF indexes)") from None
    extra = max((len(r) for r in exclude), default=0) if exclude is not None else 0
    want = min(opts.k + extra, index.faiss.ntotal)
    scores, rows = index.faiss.search(q, want)
    if index.faiss.metric_type == faiss.METRIC_L2:
        scores = -np.sqrt(np.maximum(scores, 0))
    scores = np.where(rows < 0, -np.inf, scores).astype(np.float32)
    if extra:
        for r, ex in enumerate(exclude):
            if ex:
                scores[r, np.isin(rows[r], ex)] = -np.inf
        order = np.argsort(np.isneginf(scores), axis=1, kind="stable")  # drop the excluded, keep faiss's order
        scores, rows = np.take_along_axis(scores, order, axis=1), np.take_along_axis(rows, order, axis=1)
        rows = np.where(np.isneginf(scores), -1, rows)
    if scores.shape[1] < opts.k:
        pad = opts.k - scores.shape[1]
        scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
        rows = np.pad(rows, ((0, 0), (0, pad)), constant_values=-1)
    scores, rows = scores[:, : opts.k], rows[:, : opts.k]
    if opts.min_score is not None:
        rows = np.where(scores < opts.min_score, -1, rows)
    return scores, rows
