"""`vecpipe knn`: an index (vecdir, .npy + ids, JSONL with vectors, or a saved
faiss index) and queries (words, texts, or vectors) -> neighbours per query."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson

from vecpipe.core.errors import DataError, NoInputError, UsageError
from vecpipe.core.vectors.vecdir import is_vecdir, open_vecdir
from vecpipe.core.search.topk import analogy, normalize_rows, topk
from vecpipe.core.io.inputs import display_name, open_input, read_numbered_records
from vecpipe.core.io.npy import is_npy, load_npy, read_npy_stream

log = logging.getLogger("vecpipe")


@dataclass
class Index:
    vectors: object  # 2-D array or mmap
    ids: list
    source: str
    lookup: dict | None = None  # word -> row, for word indexes
    faiss: object = None
    faiss_meta: dict | None = None

    def on_device(self, device: str, metric: str):
        """The index on the GPU in fp16 (normalised for cosine), copied once
        and kept for every later block of queries."""
        key = (device, metric)
        if getattr(self, "_device_key", None) != key:
            import torch

            chunks = []
            for start in range(0, self.vectors.shape[0], 1 << 18):
                t = torch.as_tensor(np.asarray(self.vectors[start : start + (1 << 18)], dtype=np.float32), device=device)
                if metric == "cosine":
                    t = torch.nn.functional.normalize(t, dim=1)
                chunks.append(t.half() if str(device).startswith("cuda") else t)
            self._device_tensor = torch.cat(chunks)
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
    p = Path(path)
    if not p.exists():
        raise NoInputError(f"{path}: no such index (a vecdir, an .npy, or a JSONL with vectors)")
    if is_vecdir(p):
        wv = open_vecdir(p)
        if wv.is_sparse:
            raise UsageError(f"{path}: sparse vectors cannot be searched; convert to dense first")
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
    vectors = _as_vectors(rows, path, lines)
    check_finite(vectors, path, lines=lines)
    if ids_path:
        ids = read_ids(ids_path, id_field)
        _check_id_count(ids, len(vectors), ids_path, path)
    return Index(vectors, ids, str(path))


def _as_vectors(rows, name, lines) -> np.ndarray:
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


@dataclass
class KnnStats:
    queries: int = 0
    oov: int = 0
    oov_examples: list = field(default_factory=list)


def search(index: Index, queries: np.ndarray, opts: KnnOptions, exclude=None):
    """(scores, rows) for a block of query vectors, by faiss, torch or numpy."""
    if index.faiss is not None:
        return faiss_search(index, queries, opts, exclude)
    if opts.device not in ("cpu", "auto", None) and opts.device.startswith(("cuda", "mps")):
        if opts.metric != "euclidean":
            parts = [topk_torch(queries[s : s + 1024], index.on_device(opts.device, opts.metric), opts.k,
                                metric=opts.metric, exclude=None if exclude is None else exclude[s : s + 1024],
                                device=opts.device, min_score=opts.min_score, index_normalized=True)
                     for s in range(0, len(queries), 1024)]
            return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    engine = "faiss" if opts.engine == "auto" and opts.metric != "euclidean" and _have_faiss() else "numpy"
    return topk(queries, index.vectors, opts.k, metric=opts.metric, exclude=exclude, min_score=opts.min_score,
                engine=engine)


def _have_faiss() -> bool:
    from importlib.util import find_spec

    return find_spec("faiss") is not None


def topk_torch(queries, vectors, k, *, metric="cosine", exclude=None, device="cuda", min_score=None,
               dtype=None, block_rows=1 << 20, index_normalized=False):
    """The same search with torch matmul + topk (fp16 on CUDA). `vectors` may
    be a numpy array/mmap (copied to the device block by block) or a tensor
    already there (see Index.on_device); ties are not ordered by row here."""
    import torch

    if metric == "euclidean":
        return topk(queries, vectors, k, metric=metric, exclude=exclude, min_score=min_score)
    dtype = dtype or (torch.float16 if str(device).startswith("cuda") else torch.float32)
    q = torch.as_tensor(np.asarray(queries, dtype=np.float32), device=device)
    if metric == "cosine":
        q = torch.nn.functional.normalize(q, dim=1)
    q = q.to(dtype)
    best_s = best_i = None
    for start in range(0, vectors.shape[0], block_rows):
        part = vectors[start : start + block_rows]
        blk = part if isinstance(part, torch.Tensor) else torch.as_tensor(np.asarray(part, dtype=np.float32))
        blk = blk.to(device)
        if metric == "cosine" and not index_normalized:
            blk = torch.nn.functional.normalize(blk.float(), dim=1)
        # top-k on the scores in the compute dtype: an fp32 copy of a
        # (queries x 1M) block would double the bytes written and read
        s = q @ blk.to(dtype).T
        s.nan_to_num_(nan=float("-inf"), posinf=float("-inf"))  # NaN/Inf rows are never ranked (torch.topk puts NaN first)
        if exclude is not None:
            for r, rows in enumerate(exclude):
                for row in rows or ():
                    if start <= row < start + blk.shape[0]:
                        s[r, row - start] = float("-inf")
        vals, idx = torch.topk(s, min(k, s.shape[1]), dim=1)
        idx = idx + start
        if best_s is None:
            best_s, best_i = vals, idx
        else:
            vals, pos = torch.topk(torch.cat([best_s, vals], 1), min(k, best_s.shape[1] + vals.shape[1]), dim=1)
            best_i = torch.gather(torch.cat([best_i, idx], 1), 1, pos)
            best_s = vals
    scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    rows = np.full((len(queries), k), -1, dtype=np.int64)
    scores[:, : best_s.shape[1]] = best_s.float().cpu().numpy()
    rows[:, : best_i.shape[1]] = best_i.cpu().numpy()
    rows[np.isneginf(scores)] = -1
    if min_score is not None:
        rows[scores < min_score] = -1
        scores[scores < min_score] = -np.inf
    return scores, rows


# ---------------------------------------------------------------- faiss


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


# ---------------------------------------------------------------- queries -> records


def neighbor_lists(index: Index, scores, rows) -> list[list[dict]]:
    ids = index.ids
    return [[{"id": ids[r], "score": s} for s, r in zip(srow, rrow) if r >= 0] for srow, rrow in zip(scores, rows)]


def read_query_stream(src, opts: KnnOptions):
    """Yield ('vectors', array, records, first) or ('texts', texts, records, first)
    blocks from a file or stdin; `first` is the position of the block's first
    query in the stream. A query vector with NaN or Inf is refused (65, file and row)."""
    name = display_name(src)
    fh = open_input(src)
    try:
        if is_npy(fh):
            start = 0
            for block in read_npy_stream(fh, name):
                check_finite(block, name, first_row=start, what="query vector")
                for s in range(0, len(block), opts.query_block):
                    part = block[s : s + opts.query_block]
                    yield "vectors", part, [{"row": start + s + j} for j in range(len(part))], start + s
                start += len(block)
            return
        batch, first = [], 0
        for n, rec in read_numbered_records(fh, name, text_field=opts.text_field):
            batch.append((n, rec))
            if len(batch) >= opts.query_block:
                yield (*_classify(batch, opts, name), first)
                first += len(batch)
                batch = []
        if batch:
            yield (*_classify(batch, opts, name), first)
    finally:
        fh.close()


def _classify(batch, opts: KnnOptions, name):
    first = batch[0][1]
    if opts.vector_field in first:
        rows = [rec.get(opts.vector_field) for _, rec in batch]
        lines = [n for n, _ in batch]
        for row, n in zip(rows, lines):
            if not isinstance(row, list):
                raise DataError(f'every query record needs a numeric "{opts.vector_field}" list', name, n)
        vectors = _as_vectors(rows, name, lines)
        check_finite(vectors, name, lines=lines, what="query vector")
        return "vectors", vectors, [rec for _, rec in batch]
    texts = []
    for n, rec in batch:
        text = rec.get(opts.text_field)
        if not isinstance(text, str) or not text.strip():
            raise DataError(f'field "{opts.text_field}" is missing or empty', name, n)
        texts.append(text)
    return "texts", texts, [rec for _, rec in batch]


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
        else:
            known.append(rec)
            idx.append(rows)
        out.append(rec)
    if idx:
        a, b, c = np.asarray(idx).T
        scores, rows = analogy(index.vectors, a, b, c, k=opts.k, method=method)
        for rec, lst in zip(known, neighbor_lists(index, scores, rows)):
            rec["neighbors"] = lst
    stats.queries += len(out)
    return out


def run_knn(args: list[str], src, index: Index | None, encoder, opts: KnnOptions, *, analogy_method: str | None = None):
    """Yield one output record per query: from the command-line words/texts
    `args`, else from the stream `src` (texts, JSONL, or vectors)."""
    stats = KnnStats()
    word_mode = False
    if index is None:
        if encoder is None or encoder.word_vectors is None:
            raise UsageError("give --index (a vecdir, .npy or JSONL with vectors), or -m a word-vector model to search its words")
        wv = encoder.word_vectors
        index = Index(wv.vectors, wv.words, encoder.name, lookup=wv.index)
        word_mode = True
    if analogy_method:
        if args:
            blocks = [[tuple(args)]] if len(args) == 3 else None
            if blocks is None:
                raise UsageError("--analogy takes three words: a b c (a is to b as c is to ?)")
        else:
            blocks = _triples(src)
        for triples in blocks:
            yield from answer_analogies(triples, index, opts, analogy_method, stats)
    elif args:
        yield from answer_block("texts", args, [{} for _ in args], index, opts, encoder, stats, word_mode)
    else:
        source = display_name(src)
        for kind, payload, records, first in read_query_stream(src, opts):
            yield from answer_block(kind, payload, records, index, opts, encoder, stats, word_mode and kind == "texts",
                                    first=first, source=source)
    if stats.oov:
        log.warning("%d of %d queries not in the vocabulary (e.g. %s)", stats.oov, stats.queries,
                    ", ".join(stats.oov_examples) or "-")


def _triples(src):
    name = display_name(src)
    fh = open_input(src)
    try:
        block = []
        for n, raw in enumerate(fh, 1):
            words = raw.decode("utf-8").split()
            if not words or words[0] == ":":
                continue
            if len(words) < 3:
                raise DataError(f"expected three words (a b c), found {len(words)}", name, n)
            block.append(tuple(words[:3]))
            if len(block) >= 1024:
                yield block
                block = []
        if block:
            yield block
    finally:
        fh.close()
