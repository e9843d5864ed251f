"""The index knn searches: a vecdir, an .npy (+ ids), or JSONL with vectors,
loaded and checked (NaN/Inf rows and id counts are refused, naming the row)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from vecpipe.core.errors import DataError, NoInputError, UsageError
from vecpipe.core.io.inputs import display_name, open_input, read_numbered_records
from vecpipe.core.io.npy import load_npy
from vecpipe.core.vectors.vecdir import is_vecdir, open_vecdir


@dataclass
class Index:
    vectors: object  # 2-D array or mmap
    ids: list
    source: str
    lookup: dict | None = None  # word -> row, for word indexes
    faiss: object = None
    faiss_meta: dict | None = None

    def on_device(self, device: str, metric: str):
        """The index on the GPU (gpu.device_copy), copied once and kept for
        every later block of queries."""
        key = (device, metric)
        if getattr(self, "_device_key", None) != key:
            from vecpipe.core.search.gpu import device_copy

            self._device_tensor = device_copy(self.vectors, device, metric)
            self._device_key = key
        return self._device_tensor

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def rows_of_id(self, key) -> list:
        """Every index row carrying this id (for --exclude-self)."""
        if getattr(self, "_id_rows", None) is None:
            self._id_rows = {}
            for i, v in enumerate(self.ids):
                self._id_rows.setdefault(v, []).append(i)
        try:
            return self._id_rows.get(key, [])
        except TypeError:  # an unhashable id (a JSON list) matches nothing
            return []

    def row_of(self, word):
        if self.lookup is None:
            self.lookup = {}
            for i, w in enumerate(self.ids):
                self.lookup.setdefault(w, i)
        return self.lookup.get(word)


def read_ids(path, id_field: str = "id") -> list:
    """One id per row: JSONL records (their id field), JSON values, or plain lines."""
    name = display_name(path)
    fh = open_input(path)
    try:
        head = fh.peek(4096).lstrip()[:1]
        ids = []
        for n, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                raise DataError(f"invalid UTF-8 at byte {exc.start} of the line", name, n) from None
            if head in (b"{", b'"') or (head.isdigit() and line.strip().lstrip("-").isdigit()):
                try:
                    value = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    raise DataError(f"invalid JSON: {exc}", name, n) from None
                ids.append(value.get(id_field, value.get("word", n - 1)) if isinstance(value, dict) else value)
            else:
                ids.append(line)
        return ids
    finally:
        fh.close()


def check_finite(vectors, source, *, lines=None, first_row: int = 0, what: str = "vector", block: int = 1 << 16) -> None:
    """DataError naming the first row (or input line) of `vectors` holding NaN or Inf."""
    if np.asarray(vectors[:0]).dtype.kind not in "fc":
        return
    for start in range(0, vectors.shape[0], block):
        part = np.asarray(vectors[start : start + block])
        with np.errstate(all="ignore"):
            if np.isfinite(part.sum()):  # one cheap pass; a NaN/Inf (or an overflow) makes the sum non-finite
                continue
        ok = np.isfinite(part)
        if ok.all():
            continue
        r = start + int(np.argmin(ok.all(axis=1)))
        if lines is not None:
            raise DataError(f"NaN or Inf in the {what}", source, lines[r])
        raise DataError(f"row {first_row + r}: NaN or Inf in the {what}", source)


def load_index(path, *, ids_path=None, id_field: str = "id", vector_field: str = "vector") -> Index:
    """The index to search; rows with NaN or Inf are refused (exit 65, naming the row)."""
    from vecpipe.core.search.sharded import is_sharded_index, load_sharded_index

    p = Path(path)
    if not is_vecdir(p) and (is_sharded_index(p) or (p.suffix == ".parquet" and p.is_file())):  # one file: one shard
        if ids_path:
            raise UsageError("--ids is for one .npy; a sharded index keeps its ids in its shards")
        return load_sharded_index(p, id_field=id_field, vector_field=vector_field)
    if not p.exists():
        raise NoInputError(f"{path}: no such index (a vecdir, an .npy, a JSONL with vectors or a .parquet)")
    if is_vecdir(p):
        wv = open_vecdir(p)
        if wv.is_sparse:
            raise UsageError(f"{path}: sparse vectors cannot be searched; make dense ones first: "
                             f"vecpipe convert {path} --svd 300 -o dense.vecdir")
        check_finite(wv.vectors, path)
        return Index(wv.vectors, wv.words, str(path))
    if p.suffix == ".npy":
        vectors = load_npy(p, mmap=True)
        if vectors.ndim != 2:
            raise DataError(f"expected a 2-D array, got shape {vectors.shape}", path)
        check_finite(vectors, path)
        ids = read_ids(ids_path, id_field) if ids_path else list(range(vectors.shape[0]))
        _check_id_count(ids, vectors.shape[0], ids_path, path)
        return Index(vectors, ids, str(path))
    fh = open_input(path)
    try:
        ids, rows, lines = [], [], []
        for n, rec in read_numbered_records(fh, str(path)):
            vec = rec.get(vector_field)
            if not isinstance(vec, list):
                raise DataError(f'no "{vector_field}" list in the record', path, n)
            rows.append(vec)
            lines.append(n)
            ids.append(rec.get(id_field, rec.get("word", rec.get("text", len(ids)))))
    finally:
        fh.close()
    vectors = as_vectors(rows, path, lines)
    check_finite(vectors, path, lines=lines)
    if ids_path:
        ids = read_ids(ids_path, id_field)
        _check_id_count(ids, len(vectors), ids_path, path)
    return Index(vectors, ids, str(path))


def as_vectors(rows, name, lines) -> np.ndarray:
    """float32 rows from JSON lists; a row of another length or with a non-number is named by its line."""
    try:
        with np.errstate(over="ignore"):
            return np.array(rows, dtype=np.float32)
    except (ValueError, TypeError):
        pass
    width = len(rows[0])
    for row, n in zip(rows, lines):
        if len(row) != width:
            raise DataError(f"a vector of {len(row)} numbers where the first has {width}", name, n)
        try:
            np.array(row, dtype=np.float32)
        except (ValueError, TypeError):
            raise DataError("the vector holds something that is not a number", name, n) from None
    raise DataError("vectors that are not lists of numbers", name)


def _check_id_count(ids, rows: int, ids_path, index_path) -> None:
    if ids_path and len(ids) != rows:
        raise DataError(f"{len(ids)} ids for the {rows} rows of {index_path}", ids_path)
