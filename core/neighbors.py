"""`vecpipe knn`: an index (vecdir, .npy + ids, JSONL with vectors, or a saved
faiss index) and queries (words, texts, or vectors) -> neighbours per query."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson

from .errors import DataError, NoInputError, UsageError
from .formats import is_vecdir, open_vecdir
from .search import analogy, normalize_rows, topk
from .streams import display_name, is_npy, load_npy, open_input, read_npy_stream, read_numbered_records

log = logging.getLogger("vecpipe")


@dataclass
class Index:
    vectors: object  # 2-D array or mmap
    ids: list
    source: str
    lookup: dict | None = None  # word -> row, for word indexes
    faiss: object = None

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
            line = raw.decode("utf-8").rstrip("\r\n")
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


def load_index(path, *, ids_path=None, id_field: str = "id", vector_field: str = "vector") -> Index:
    p = Path(path)
    if not p.exists():
        raise NoInputError(f"{path}: no such index (a vecdir, an .npy, or a JSONL with vectors)")
    if is_vecdir(p):
        wv = open_vecdir(p)
        if wv.is_sparse:
            raise UsageError(f"{path}: sparse vectors cannot be searched; convert to dense first")
        return Index(wv.vectors, wv.words, str(path))
    if p.suffix == ".npy":
        vectors = load_npy(p, mmap=True)
        if vectors.ndim != 2:
            raise DataError(f"expected a 2-D array, got shape {vectors.shape}", path)
        ids = read_ids(ids_path, id_field) if ids_path else list(range(vectors.shape[0]))
        if len(ids) != vectors.shape[0]:
            raise DataError(f"{len(ids)} ids for {vectors.shape[0]} rows", ids_path)
        return Index(vectors, ids, str(path))
    fh = open_input(path)
    try:
        ids, rows = [], []
        for n, rec in read_numbered_records(fh, str(path)):
            vec = rec.get(vector_field)
            if not isinstance(vec, list):
                raise DataError(f'no "{vector_field}" list in the record', path, n)
            rows.append(vec)
            ids.append(rec.get(id_field, rec.get("word", rec.get("text", len(ids)))))
    finally:
        fh.close()
    try:
        vectors = np.array(rows, dtype=np.float32)
    except ValueError as exc:
        raise DataError(f"vectors of different lengths or not numbers ({exc})", path) from None
    if ids_path:
        ids = read_ids(ids_path, id_field)
    return Index(vectors, ids, str(path))


@dataclass
class KnnOptions:
    k: int = 10
    metric: str = "cosine"
    min_score: float | None = None
    exclude_self: bool = False
    text_field: str = "text"
    vector_field: str = "vector"
    query_block: int = 1024
    device: str = "cpu"
    nprobe: int | None = None
    prompt: str | None = None


@dataclass
class KnnStats:
    queries: int = 0
    oov: int = 0
    oov_examples: list = field(default_factory=list)


def search(index: Index, queries: np.ndarray, opts: KnnOptions, exclude=None):
    """(scores, rows) for a block of query vectors, by faiss, torch or numpy."""
    if index.faiss is not None:
        return faiss_search(index, queries, opts)
    if opts.device not in ("cpu", "auto", None) and opts.device.startswith(("cuda", "mps")):
        if opts.metric != "euclidean":
            return topk_torch(queries, index.on_device(opts.device, opts.metric), opts.k, metric=opts.metric,
                              exclude=exclude, device=opts.device, min_score=opts.min_score, index_normalized=True)
    return topk(queries, index.vectors, opts.k, metric=opts.metric, exclude=exclude, min_score=opts.min_score)


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
        from .errors import UnavailableError

        raise UnavailableError("faiss is not installed: pip install 'vecpipe[faiss]'") from None
    return faiss


def build_faiss(index: Index, spec: str, metric: str = "cosine"):
    """A faiss index from a factory string ("IVF4096,Flat", "HNSW32", "Flat"),
    inner product on normalised vectors for cosine."""
    faiss = _faiss()
    x = normalize_rows(index.vectors) if metric == "cosine" else np.ascontiguousarray(index.vectors, dtype=np.float32)
    measure = faiss.METRIC_L2 if metric == "euclidean" else faiss.METRIC_INNER_PRODUCT
    fi = faiss.index_factory(x.shape[1], spec, measure)
    if not fi.is_trained:
        fi.train(x)
    fi.add(x)
    index.faiss = fi
    return fi


def load_faiss(index: Index, path) -> None:
    faiss = _faiss()
    fi = faiss.read_index(str(path))
    if fi.ntotal != len(index.ids):
        raise DataError(f"the faiss index holds {fi.ntotal} vectors but there are {len(index.ids)} ids", path)
    index.faiss = fi


def save_faiss(index: Index, path) -> None:
    from .streams import atomic_path

    faiss = _faiss()
    with atomic_path(path) as tmp:
        faiss.write_index(index.faiss, str(tmp))


def faiss_search(index: Index, queries, opts: KnnOptions):
    faiss = _faiss()
    q = normalize_rows(queries) if opts.metric == "cosine" else np.ascontiguousarray(queries, dtype=np.float32)
    if opts.nprobe:
        faiss.ParameterSpace().set_index_parameter(index.faiss, "nprobe", opts.nprobe)
    scores, rows = index.faiss.search(q, opts.k)
    if index.faiss.metric_type == faiss.METRIC_L2:
        scores = -np.sqrt(np.maximum(scores, 0))
    scores = np.where(rows < 0, -np.inf, scores).astype(np.float32)
    if opts.min_score is not None:
        rows = np.where(scores < opts.min_score, -1, rows)
    return scores, rows


# ---------------------------------------------------------------- queries -> records


def neighbor_lists(index: Index, scores, rows) -> list[list[dict]]:
    ids = index.ids
    return [[{"id": ids[r], "score": s} for s, r in zip(srow, rrow) if r >= 0] for srow, rrow in zip(scores, rows)]


def read_query_stream(src, opts: KnnOptions):
    """Yield ('vectors', array, records) or ('texts', texts, records) blocks from a file or stdin."""
    name = display_name(src)
    fh = open_input(src)
    try:
        if is_npy(fh):
            start = 0
            for block in read_npy_stream(fh, name):
                for s in range(0, len(block), opts.query_block):
                    part = block[s : s + opts.query_block]
                    yield "vectors", part, [{"row": start + s + j} for j in range(len(part))]
                start += len(block)
            return
        batch = []
        for n, rec in read_numbered_records(fh, name, text_field=opts.text_field):
            batch.append((n, rec))
            if len(batch) >= opts.query_block:
                yield _classify(batch, opts, name)
                batch = []
        if batch:
            yield _classify(batch, opts, name)
    finally:
        fh.close()


def _classify(batch, opts: KnnOptions, name):
    first = batch[0][1]
    if opts.vector_field in first:
        try:
            vectors = np.array([rec[opts.vector_field] for _, rec in batch], dtype=np.float32)
        except (KeyError, ValueError) as exc:
            raise DataError(f'every query record needs a numeric "{opts.vector_field}" list ({exc})', name) from None
        return "vectors", vectors, [rec for _, rec in batch]
    texts = []
    for n, rec in batch:
        text = rec.get(opts.text_field)
        if not isinstance(text, str) or not text.strip():
            raise DataError(f'field "{opts.text_field}" is missing or empty', name, n)
        texts.append(text)
    return "texts", texts, [rec for _, rec in batch]


def answer_block(kind, payload, records, index: Index, opts: KnnOptions, encoder=None, stats: KnnStats | None = None,
                 word_mode: bool = False):
    """Output records (input fields + neighbors) for one block of queries."""
    from .encode import EncodeOptions, encode_texts

    stats = stats or KnnStats()
    exclude = None
    out = [dict(r) for r in records]
    if kind == "vectors":
        vectors = np.asarray(payload, dtype=np.float32)
        if opts.exclude_self:
            exclude = [[r] for r in _self_rows(index, vectors)]
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
        valid = np.ones(len(out), dtype=bool)
        for rec, text in zip(out, payload):
            rec.setdefault(opts.text_field, text)
        if opts.exclude_self:
            exclude = [[r] for r in _self_rows(index, vectors)]
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


def _self_rows(index: Index, vectors: np.ndarray) -> list[int | None]:
    """The index row identical to each query vector (for --exclude-self), if any."""
    s, r = topk(vectors, index.vectors, 1, metric="euclidean")
    return [int(rr[0]) if ss[0] > -1e-6 else None for ss, rr in zip(s, r)]


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
        if encoder is None or encoder.kind != "static":
            raise UsageError("give --index (a vecdir, .npy or JSONL with vectors), or -m a word-vector model to search its words")
        wv = encoder.wv
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
        for kind, payload, records in read_query_stream(src, opts):
            yield from answer_block(kind, payload, records, index, opts, encoder, stats, word_mode and kind == "texts")
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
