"""What every `vecpipe eval` task shares: dataset arguments, the result dict
(task, model, dataset with sha256, metrics, headline metric names, counts,
parameters, vecpipe version, seconds), the model's description, word lookup
with gensim's rules, and encoding each distinct text once.

Each task lives in its own module (analogy, similarity, sts, retrieval,
classify); report.py turns results into tables."""
from __future__ import annotations

import datetime as _dt
import hashlib
import os
from pathlib import Path

import numpy as np
import orjson

from vecpipe.core.errors import DataError, NoInputError, UnavailableError
from vecpipe.core.io.compression import strip_compression_suffix
from vecpipe.core.io.progress import progress
from vecpipe.core.io.inputs import display_name, is_stdin_copy, looks_like_jsonl, open_input, stdin_copy

TASKS = ("analogy", "similarity", "sts", "retrieval", "classify")


def number(text: str):
    """A finite float, or None."""
    try:
        v = float(text)
    except ValueError:
        return None
    return v if np.isfinite(v) else None


def is_jsonl(path) -> bool:
    """Whether a dataset file is JSONL, by the one rule of the code base
    (io.inputs.looks_like_jsonl): a peek at its head, nothing read."""
    with open_input(path) as fh:
        return looks_like_jsonl(fh)


def read_json(path):
    """The JSON document of a file (compressed or not)."""
    with open_input(path) as fh:
        raw = fh.read()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DataError(f"not JSON: {exc}", display_name(path)) from None


def resolve_dataset(arg) -> Path:
    """A dataset argument: an existing path, else a catalog dataset name that
    `vecpipe fetch` has put in the cache."""
    if str(arg) == "-":  # read once to a copy: some tasks read their file twice
        return Path(stdin_copy())
    p = Path(str(arg)).expanduser()
    if p.exists():
        return p
    try:
        from vecpipe.core.fetch import catalog
    except ImportError:  # pragma: no cover - catalog not built
        catalog = None
    entry = catalog.find(str(arg)) if catalog is not None else None
    if entry is None or entry.kind != "dataset":
        raise NoInputError(f"{arg}: no such file")
    local = catalog.resolve_local(entry.name)
    if local is None:
        raise UnavailableError(catalog.missing_message(entry.name))
    return Path(local)


def file_info(path) -> dict:
    """path (as given), size and sha256 of a dataset file."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
            size += len(chunk)
    return {"path": "-" if is_stdin_copy(path) else str(path), "bytes": size, "sha256": h.hexdigest()}


def dataset_name(paths) -> str:
    """A short name for the result tables: 'CA8/morphological' for
    .../CA8/morphological.txt; the folder for a folder."""
    p = Path(str(paths[0]))
    if len(paths) == 1 and is_stdin_copy(p):
        return "stdin"
    if len(paths) > 1:
        common = Path(os.path.commonpath([str(Path(str(q)).resolve().parent) for q in paths]))
        if common.name:
            return common.name
        return "+".join(Path(str(q)).stem for q in paths)
    if p.is_dir():
        return p.resolve().name
    stem = strip_compression_suffix(p.name)
    stem = stem.rsplit(".", 1)[0] if "." in stem and not stem.endswith(".") else stem
    parent = p.resolve().parent.name
    return f"{parent}/{stem}" if parent else stem


def make_result(task: str, *, model: dict, paths, metrics: dict, headline: list[str], counts: dict,
                params: dict | None = None, seconds: float = 0.0, name: str | None = None, **extra) -> dict:
    from vecpipe import __version__

    files = []
    for p in paths:
        p = Path(str(p))
        if p.is_file():
            files.append(file_info(p))
    result = {
        "task": task,
        "model": model,
        "dataset": {"name": name or dataset_name(paths), "files": files},
        "metrics": metrics,
        "headline": headline,
        "counts": counts,
        "params": params or {},
    }
    result.update(extra)
    result.update({
        "vecpipe": __version__,
        "seconds": round(seconds, 3),
        "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
    })
    return result


def dumps_result(result: dict) -> bytes:
    return orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY)


def load_word_vectors(spec):
    """The WordVectors of a static model spec (no tokenizer is built), or None
    when the spec names a transformer."""
    from vecpipe.core.models.static import read_word_vectors

    return read_word_vectors(spec)


def model_info(spec, encoder=None, wv=None) -> dict:
    info = {"spec": str(spec)}
    if wv is not None:
        info.update(kind="static", dim=int(wv.dim), vocab=len(wv))
    elif encoder is not None:
        info.update({k: v for k, v in encoder.describe().items() if k != "name"})
    return info


def word_lookup(wv, restrict: int | None, case_insensitive: bool):
    """(rows searched, word -> row or -1) with gensim's restrict_vocab and
    case_insensitive rules (the first of several case variants wins)."""
    n = len(wv) if restrict is None else min(int(restrict), len(wv))
    if case_insensitive:
        table: dict[str, int] = {}
        for i, w in enumerate(wv.words[:n]):
            table.setdefault(w.upper(), i)
        return n, lambda w: table.get(w.upper(), -1)
    index = wv.index

    def row(w):
        r = index.get(w)
        return r if r is not None and r < n else -1

    return n, row


def encode_all(encoder, texts: list[str], *, prompt: str | None = None, normalize: bool = True,
               window: int = 4096, desc: str | None = None, counters: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Encode each distinct text once: (vectors of the distinct texts, the row
    of each input text); the encoder's counters are added to `counters`."""
    from vecpipe.core.encode.pipeline import EncodeOptions, encode_texts

    pos: dict[str, int] = {}
    rows = np.fromiter((pos.setdefault(t, len(pos)) for t in texts), dtype=np.int64, count=len(texts))
    uniq = list(pos)
    opts = EncodeOptions(prompt=prompt, normalize=normalize)
    budget = encoder.default_budget()
    out = np.empty((len(uniq), encoder.dim), dtype=np.float32)
    bar = progress(total=len(uniq), desc=desc, unit="text", leave=False)
    for s in range(0, len(uniq), window):
        chunk = uniq[s : s + window]
        out[s : s + len(chunk)] = encode_texts(encoder, chunk, opts, budget, counters)
        bar.update(len(chunk))
    bar.close()
    return out, rows
