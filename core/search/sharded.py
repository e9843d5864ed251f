"""A sharded index: a folder of shards (the output of a sharded encode, with
its manifest.json; or .npy files, each with NAME.ids.jsonl beside it or not),
or a glob of them, searched exactly shard by shard and merged.

Rows are numbered across shards in shard order (the manifest's, else name
order), so the answer is the single-matrix answer of the shards stacked:
each shard goes through topk (the one exact search), its best k are shifted
to global rows and merged by topk's own merge, whose tie rule (equal scores:
the lower row first) is the single-matrix one. One shard is in memory at a
time (an .npy shard is memory-mapped), so memory stays flat whatever the
index size. With --engine ray each shard is searched by a Ray task."""
from __future__ import annotations

import glob
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from vecpipe.core.errors import DataError, NoInputError
from vecpipe.core.io.npy import load_npy
from vecpipe.core.search.topk import _merge_topk, finish_topk, topk

log = logging.getLogger("vecpipe")


@dataclass
class Shard:
    path: str
    kind: str  # npy | parquet
    rows: int
    offset: int
    vector_field: str = "vector"

    def load(self) -> np.ndarray:
        if self.kind == "npy":
            return load_npy(self.path, mmap=True)
        from vecpipe.core.encode.shards import pyarrow

        pa = pyarrow()
        column = pa.parquet.read_table(self.path, columns=[self.vector_field]).column(0).combine_chunks()
        if not pa.types.is_fixed_size_list(column.type):
            raise DataError(f'column "{self.vector_field}" is not a fixed-size list of numbers', self.path)
        return column.flatten().to_numpy(zero_copy_only=False).reshape(len(column), column.type.list_size)


class ShardedVectors:
    """The shards' rows as one (rows, dim) matrix for the few row look-ups
    knn makes (--exclude-self checks); searches go shard by shard."""

    def __init__(self, shards: list[Shard], dim: int, dtype):
        self.shards, self.dim, self.dtype = shards, dim, np.dtype(dtype)
        self.shape = (sum(s.rows for s in shards), dim)
        self.ends = np.cumsum([s.rows for s in shards])

    def __getitem__(self, rows):
        if np.ndim(rows) == 0 and not isinstance(rows, slice):
            return self[[int(rows)]][0]
        rows = np.arange(self.shape[0])[rows] if isinstance(rows, slice) else np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), self.dim), self.dtype)
        where = np.searchsorted(self.ends, rows, side="right")
        for j in np.unique(where):
            hit = where == j
            shard = self.shards[j]
            out[hit] = np.asarray(shard.load()[rows[hit] - shard.offset])
        return out


def is_sharded_index(path) -> bool:
    p = Path(path)
    return (p.is_dir() and ((p / "manifest.json").is_file() or any(p.glob("*.npy")) or any(p.glob("*.parquet")))) or \
        (not p.exists() and glob.has_magic(str(path)))


def load_sharded_index(path, *, id_field: str = "id", vector_field: str = "vector"):
    """The Index of a folder or glob of shards: every shard's shape and dtype
    checked alike, NaN/Inf refused (naming shard and row), ids gathered (the
    id column or ids file; a row without one is known by its global row)."""
    from vecpipe.core.encode.manifest import read_manifest
    from vecpipe.core.search.index import Index, check_finite

    p = Path(path)
    manifest = read_manifest(p) if p.is_dir() else None
    if manifest is not None:
        files = [p / name for entry in manifest["shards"].values() for name in entry["outputs"]
                 if name.endswith((".npy", ".parquet"))]
    elif p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix in (".npy", ".parquet") and not f.name.startswith("."))
    else:
        files = sorted(Path(f) for f in glob.glob(str(path)) if f.endswith((".npy", ".parquet")))
    if not files:
        raise NoInputError(f"{path}: no index shards (*.npy or *.parquet)")
    shards, ids, dim, dtype = [], [], None, None
    for f in files:
        kind = "npy" if f.suffix == ".npy" else "parquet"
        shard = Shard(str(f), kind, 0, sum(s.rows for s in shards), vector_field)
        x = shard.load()
        if x.ndim != 2:
            raise DataError(f"expected a 2-D array, got shape {x.shape}", f)
        if dim is None:
            dim, dtype = x.shape[1], x.dtype
        elif (x.shape[1], x.dtype) != (dim, dtype):
            raise DataError(f"{x.shape[1]} columns of {x.dtype}; the first shard has {dim} of {dtype}", f)
        check_finite(x, str(f))
        shard.rows = x.shape[0]
        ids.extend(_shard_ids(f, kind, shard, id_field))
        shards.append(shard)
    return Index(ShardedVectors(shards, dim, dtype), ids, str(path))


def _shard_ids(f: Path, kind: str, shard: Shard, id_field: str) -> list:
    if kind == "parquet":
        from vecpipe.core.encode.shards import pyarrow

        names = pyarrow().parquet.read_schema(f).names
        # the id column, else the words of a word-vector table (convert's word + vector), as a JSONL index's
        column = next((c for c in (id_field, "word") if c in names), None)
        values = pyarrow().parquet.read_table(f, columns=[column]).column(0).to_pylist() \
            if column else [None] * shard.rows
    else:
        side = f.with_name(f.stem + ".ids.jsonl")
        values = [orjson.loads(line).get("id") for line in side.read_bytes().splitlines() if line.strip()] \
            if side.is_file() else [None] * shard.rows
        if len(values) != shard.rows:
            raise DataError(f"{len(values)} ids for the {shard.rows} rows of {f}", side)
    return [shard.offset + i if v is None else v for i, v in enumerate(values)]


def sharded_topk(queries, vectors: ShardedVectors, k: int, *, metric: str = "cosine", exclude=None,
                 min_score: float | None = None, engine: str = "numpy", searcher=None):
    """topk over every shard, merged: the single-matrix answer, ties included.
    `searcher(shard, queries, k, metric, exclude, engine)` searches one shard
    elsewhere (Ray); by default here."""
    q = np.asarray(queries, dtype=np.float32)
    best_s = best_i = None
    tasks = []
    for shard in vectors.shards:
        local = None
        if exclude is not None:
            local = [[r - shard.offset for r in rows or () if shard.offset <= r < shard.offset + shard.rows]
                     for rows in exclude]
        tasks.append((shard, local))
    if searcher is None:
        results = (search_shard(shard, q, k, metric, local, engine) for shard, local in tasks)
    else:
        results = searcher(tasks, q, k, metric, engine)
    for shard, (s, i) in zip(vectors.shards, results):
        i = np.where(i >= 0, i + shard.offset, -1)
        best_s, best_i = _merge_topk(best_s, best_i, s, i, k)
    best_s, best_i = finish_topk(best_s, best_i, min_score)
    width = min(k, best_s.shape[1])
    out_s = np.full((len(q), k), -np.inf, dtype=np.float32)
    out_i = np.full((len(q), k), -1, dtype=np.int64)
    out_s[:, :width], out_i[:, :width] = best_s[:, :width], best_i[:, :width]
    return out_s, out_i


def search_shard(shard: Shard, q, k: int, metric: str, exclude, engine: str):
    """One shard's best k, by the one exact search (rows local to the shard),
    their scores recomputed pair by pair in float64: a matrix product rounds a
    row's score differently with the shard's size (a one-row shard takes
    another BLAS path), and a duplicate row in another shard must tie exactly."""
    x = shard.load()
    s, i = topk(q, x, k, metric=metric, exclude=exclude, engine=engine)
    return rescore(q, x, s, i, metric), i


def rescore(q, x, s, rows, metric: str, *, chunk: int = 256) -> np.ndarray:
    """float32 of the float64 score of each (query, row) pair found (-1: none),
    `chunk` queries at a time (the candidates' rows are gathered in float64)."""
    out = s.copy()
    for start in range(0, len(q), chunk):
        r = rows[start : start + chunk]
        found = r >= 0
        if not found.any():
            continue
        cand = np.asarray(x[np.where(found, r, 0).reshape(-1)], dtype=np.float64).reshape(*r.shape, -1)
        qq = np.asarray(q[start : start + chunk], dtype=np.float64)
        if metric == "euclidean":
            d = cand - qq[:, None, :]
            score = -np.sqrt(np.einsum("qkd,qkd->qk", d, d))
        else:
            if metric == "cosine":
                qq = qq / np.where((n := np.linalg.norm(qq, axis=1, keepdims=True)) == 0, 1, n)
                cand = cand / np.where((n := np.linalg.norm(cand, axis=2, keepdims=True)) == 0, 1, n)
            score = np.einsum("qkd,qd->qk", cand, qq)
        out[start : start + chunk] = np.where(found, score.astype(np.float32), s[start : start + chunk])
    return out


def ray_searcher(address: str):
    """A searcher that maps the shards over Ray tasks (the query block is put
    in the object store once per block)."""
    import atexit

    from vecpipe.core.encode.ray_engine import connect, disconnect, import_ray

    ray = import_ray()
    atexit.register(disconnect, ray, connect(ray, address))  # leave (or stop) the cluster when the search is over
    remote = ray.remote(search_shard)

    def searcher(tasks, q, k, metric, engine):
        q_ref = ray.put(q)
        return ray.get([remote.remote(shard, q_ref, k, metric, local, engine) for shard, local in tasks])

    return searcher


def build_sharded_faiss(index, spec: str, metric: str, *, sample: int = 100_000):
    """One faiss index for all shards: trained on an even sample of rows
    across the shards, then filled shard by shard (memory: the sample and
    one shard, besides the faiss index itself)."""
    from vecpipe.core.search.faiss import _faiss, _faiss_message
    from vecpipe.core.errors import UsageError
    from vecpipe.core.search.topk import normalize_rows

    faiss = _faiss()
    vectors: ShardedVectors = index.vectors
    prep = (lambda x: normalize_rows(x)) if metric == "cosine" else (lambda x: np.ascontiguousarray(x, dtype=np.float32))
    measure = faiss.METRIC_L2 if metric == "euclidean" else faiss.METRIC_INNER_PRODUCT
    try:
        fi = faiss.index_factory(vectors.dim, spec, measure)
    except RuntimeError as exc:
        raise UsageError(f'--faiss "{spec}": not a faiss factory string faiss can build ({_faiss_message(exc)})') from None
    n = vectors.shape[0]
    try:
        if not fi.is_trained:
            step = max(1, n // sample)
            fi.train(prep(vectors[np.arange(0, n, step)[:sample]]))
        for shard in vectors.shards:
            fi.add(prep(shard.load()))
    except RuntimeError as exc:
        raise UsageError(f'--faiss "{spec}" cannot be built from the {n} rows of {index.source}: {_faiss_message(exc)}') from None
    index.faiss = fi
    index.faiss_meta = {"metric": metric, "dim": int(vectors.dim), "rows": int(n), "normalized": metric == "cosine",
                        "factory": spec, "trained_on": min(n, sample)}
    return fi
