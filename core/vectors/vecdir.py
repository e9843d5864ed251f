"""vecpipe's native word-vector folder, the vecdir: vectors.npy (vectors.npz when
sparse), vocab.txt (one word per line, same order), meta.json (optional when
reading; vecpipe always writes it), counts.npy (optional).

A vecdir is checked when vecpipe writes it, which records `"finite": true` in its
meta.json; opening a vecdir that says so trusts it (an mmap stays an mmap,
whatever its size), any other vecdir is checked at open by a vectorised scan."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import orjson

from vecpipe.core.errors import DataError, NoInputError
from vecpipe.core.io.inputs import UTF8_BOM
from vecpipe.core.io.npy import load_npy as read_npy
from vecpipe.core.io.outputs import atomic_path
from vecpipe.core.io.records import OnError
from vecpipe.core.vectors.wordvectors import ReadStats, WordVectors, check_finite, check_vocab_words, finite_rows

VECDIR_FORMAT = "vecpipe.vecdir"
VECDIR_FILES = ("vectors.npy", "vectors.npz", "counts.npy", "vocab.txt", "meta.json")


def is_vecdir(path) -> bool:
    p = Path(path)
    return p.is_dir() and (p / "vocab.txt").is_file() and ((p / "vectors.npy").is_file() or (p / "vectors.npz").is_file())


def open_vecdir(path, *, mmap: bool = True, unicode_errors: str = "strict", on_error: str = "stop",
                stats: ReadStats | None = None, verify: bool = False) -> WordVectors:
    """Open a vecdir. Dense vectors are memory-mapped: opening costs the vocabulary only.

    Every file is checked for what it claims (an npy array of numbers, as many
    rows as vocab.txt has words, meta.json's rows and dim). The values are
    scanned for NaN and infinity unless meta.json says vecpipe checked them when
    it wrote the vecdir (`"finite": true`) and `verify` is off."""
    p = Path(path)
    if not p.exists():
        raise NoInputError(f"{p}: no such file or folder")
    if not is_vecdir(p):
        raise DataError("not a vecdir (expected vectors.npy or vectors.npz beside vocab.txt; meta.json is optional)", p)
    meta = {}
    if (p / "meta.json").is_file():
        try:
            meta = orjson.loads((p / "meta.json").read_bytes())
        except orjson.JSONDecodeError as exc:
            raise DataError(f"invalid JSON: {exc}", p / "meta.json") from None
        if not isinstance(meta, dict):
            raise DataError("expected a JSON object", p / "meta.json")
    words = _read_vocab(p / "vocab.txt", unicode_errors)
    if (p / "vectors.npy").is_file():
        source = p / "vectors.npy"
        vectors = load_npy(source, mmap=mmap, ndim=2)
    else:
        source = p / "vectors.npz"
        vectors = _load_npz(source)
    if vectors.shape[0] != len(words):
        raise DataError(f"{len(words)} words, but {source.name} has {vectors.shape[0]} rows", p / "vocab.txt")
    for key, value in (("rows", vectors.shape[0]), ("dim", vectors.shape[1])):
        if isinstance(meta.get(key), int) and meta[key] != value:
            raise DataError(f"says {key} {meta[key]}, but {source.name} has {value} {'rows' if key == 'rows' else 'columns'}",
                            p / "meta.json")
    counts = load_npy(p / "counts.npy", mmap=False, ndim=1) if (p / "counts.npy").is_file() else None
    if counts is not None and len(counts) != len(words):
        raise DataError(f"{len(counts)} counts for the {len(words)} words of vocab.txt", p / "counts.npy")
    wv = WordVectors(words, vectors, meta, counts)
    if verify or meta.get("finite") is not True:
        policy = OnError(on_error, str(source))
        keep = finite_rows(vectors, policy, lambda i: f"row {i + 1} (word {words[i]!r}, vocab.txt:{i + 1})")
        if stats is not None:
            stats.skipped += policy.count
        if keep is not None:
            wv = wv.take(keep)
    return wv


def _read_vocab(path: Path, unicode_errors: str) -> list[str]:
    """vocab.txt: one word per line, UTF-8 (a leading BOM and CRLF endings are tolerated)."""
    data = path.read_bytes()
    if data.startswith(UTF8_BOM):
        data = data[len(UTF8_BOM) :]
    try:
        text = data.decode("utf-8", unicode_errors)
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        raise DataError(f"invalid UTF-8 at byte {exc.start - line_start} of the line (try --unicode-errors replace)",
                        path, data.count(b"\n", 0, exc.start) + 1) from None
    words = text.split("\n")
    if words and words[-1] == "":
        words.pop()
    if "\r" in text:
        words = [w[:-1] if w.endswith("\r") else w for w in words]
    return words


def load_npy(path: Path, *, mmap: bool, ndim: int) -> np.ndarray:
    """An .npy array of real numbers with `ndim` dimensions, never unpickled:
    io.npy.load_npy's checked read (header, numeric dtype, no truncation),
    then the kind and shape a vecdir needs; anything else is bad input naming
    the file. Integer arrays are read as float32 when vectors (ndim 2)."""
    try:
        arr = read_npy(path, mmap=mmap)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"cannot read: {exc} (truncated or corrupt?)", path) from None
    _check_npy_kind(path, arr.shape, arr.dtype, ndim)
    if arr.dtype.kind in "iu" and ndim == 2:
        arr = arr.astype(np.float32)
    return arr


def _check_npy_kind(path, shape, dtype: np.dtype, ndim: int) -> None:
    if dtype.hasobject:
        raise DataError("holds Python objects (dtype object), not numbers; vecpipe never unpickles data", path)
    if dtype.kind not in "fiu":
        raise DataError(f"holds {dtype} values; expected real numbers (float16, float32, float64 or integers)", path)
    if len(shape) != ndim:
        raise DataError(f"is an array of shape {tuple(shape)}; expected {ndim} dimension{'s' if ndim > 1 else ''}", path)


def _load_npz(path: Path):
    from scipy import sparse

    try:
        matrix = sparse.load_npz(path)
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read a sparse matrix: {exc} (truncated or corrupt?)", path) from None
    if matrix.dtype.kind not in "fiu" or matrix.ndim != 2:
        raise DataError(f"holds a {matrix.dtype} matrix of {matrix.ndim} dimensions; expected real numbers in 2", path)
    return matrix.tocsr()


def vecdir_replaceable(folder: Path) -> str | None:
    """None if `folder` is a vecdir made by vecpipe holding only its own files
    (a new vecdir may replace it), else why not."""
    try:
        made_by_vecpipe = orjson.loads((folder / "meta.json").read_bytes()).get("format") == VECDIR_FORMAT
    except (OSError, ValueError, AttributeError):
        made_by_vecpipe = False
    if not made_by_vecpipe:
        return "the folder exists and is not a vecdir made by vecpipe (no meta.json of vecpipe's)"
    others = sorted(p.name for p in folder.iterdir() if p.name not in VECDIR_FILES)
    if others:
        return f"the vecdir also holds {', '.join(others[:3])}, which vecpipe did not write"
    return None


def save_vecdir(wv: WordVectors, path, meta: dict | None = None) -> None:
    check_vocab_words(wv.words, "vecdir")
    check_finite(wv)
    info = {
        "format": VECDIR_FORMAT,
        "version": 1,
        "rows": len(wv),
        "dim": wv.dim,
        "dtype": str(wv.vectors.dtype),
        "sparse": wv.is_sparse,
        **(meta or {}),
        "finite": True,  # checked above: opening trusts it and skips the scan
    }
    with atomic_path(path, folder=True, replaceable=vecdir_replaceable) as tmp:
        tmp.mkdir()
        if wv.is_sparse:
            from scipy import sparse

            sparse.save_npz(tmp / "vectors.npz", wv.vectors.tocsr(), compressed=False)
        else:
            np.save(tmp / "vectors.npy", np.ascontiguousarray(wv.vectors), allow_pickle=False)
        if wv.counts is not None:
            np.save(tmp / "counts.npy", np.asarray(wv.counts, dtype=np.int64), allow_pickle=False)
        (tmp / "vocab.txt").write_text("".join(w + "\n" for w in wv.words), encoding="utf-8")
        (tmp / "meta.json").write_bytes(orjson.dumps(info, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))
