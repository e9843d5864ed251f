"""Reading and writing word vectors in any format: each format lives in its own
module (text, binary, sparse, jsonl, vecdir); this one picks the module.

Formats (names used by --from/--to):
  word2vec      text, `N D` header line, then `word v1 .. vD` (fastText .vec is the same)
  glove         text without the header line
  word2vec-bin  the binary format of the original word2vec tool
  sparse        Chinese-Word-Vectors PPMI text: `N D` header, then `word idx:val ...`
  jsonl         one {"word": ..., "vector": [...]} object per line
  vecdir        vecpipe's folder: vectors.npy (or vectors.npz when sparse), vocab.txt, meta.json
  parquet       a `word` column and a `vector` column (fixed-size list of float32/float16)

Every reader strips a leading UTF-8 BOM and refuses NaN and infinite values
(and numbers too large for float32) as bad input naming file:line and the word,
or drops the row under --on-error skip. A vecdir is checked when vecpipe writes
it, which records `"finite": true` in its meta.json; opening a vecdir that says
so trusts it (an mmap stays an mmap, whatever its size), any other vecdir is
checked at open by a vectorised scan, and `convert` always checks its input.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from vecpipe.core.errors import DataError, UsageError
from vecpipe.core.io.inputs import display_name, open_input, skip_bom
from vecpipe.core.io.npy import is_npy
from vecpipe.core.io.outputs import open_output
from vecpipe.core.io.records import OnError
from vecpipe.core.vectors import binary, jsonl, parquet, sparse, text
from vecpipe.core.vectors.detect import DETECT_BYTES, detect_format, with_lookahead
from vecpipe.core.vectors.vecdir import open_vecdir, save_vecdir
from vecpipe.core.vectors.wordvectors import ReadStats, WordVectors, canonical_format, check_finite, check_vocab_words

log = logging.getLogger("vecpipe")


def read_vectors(
    path,
    fmt: str | None = None,
    *,
    limit: int | None = None,
    unicode_errors: str = "strict",
    on_error: str = "stop",
    stats: ReadStats | None = None,
    mmap: bool = True,
    verify: bool = False,
) -> WordVectors:
    """Read word vectors from any supported format (path or '-' for stdin).

    Duplicate words keep their first row (counted in stats.duplicates). `verify`
    scans a vecdir for non-finite values even when its meta.json vouches for them."""
    stats = stats if stats is not None else ReadStats()
    fmt = canonical_format(fmt) if fmt else None
    if unicode_errors not in ("strict", "replace", "ignore"):
        raise UsageError(f"--unicode-errors must be strict, replace or ignore, not {unicode_errors!r}")
    if limit is not None and limit < 0:
        raise UsageError("--limit must be >= 0")
    if fmt == "vecdir" or (fmt is None and path not in (None, "-") and Path(path).is_dir()):
        wv = open_vecdir(path, mmap=mmap, unicode_errors=unicode_errors, on_error=on_error, stats=stats, verify=verify)
        if limit is not None:
            wv = wv.take(np.arange(min(limit, len(wv))))
        return _drop_duplicates(wv, stats, display_name(path))
    name = display_name(path)
    fh = open_input(path)
    try:
        fh = with_lookahead(fh, DETECT_BYTES)
        skip_bom(fh)  # again: a pipe's first read may have shown open_input less than the whole mark
        if is_npy(fh):
            raise DataError("a .npy array holds vectors without their words; word vectors are a vecdir "
                            "(vectors.npy beside vocab.txt) or a word-vector file", name)
        if is_pickle(fh.peek(2)[:2]):
            raise DataError("a pickled file (a gensim .model or .kv?): vecpipe never unpickles model files; "
                            "save it with gensim's save_word2vec_format and use that file", name)
        fmt = fmt or detect_format(path, fh)
        policy = OnError(on_error, name)
        reader = {
            "word2vec": text.read_dense_text,
            "glove": text.read_dense_text,
            "word2vec-bin": binary.read_word2vec_binary,
            "sparse": sparse.read_sparse_text,
            "jsonl": jsonl.read_jsonl_vectors,
            "parquet": parquet.read_parquet_vectors,
        }[fmt]
        try:
            words, vectors = reader(fh, name, limit=limit, unicode_errors=unicode_errors, policy=policy, stats=stats)
        finally:
            stats.skipped += policy.count
    except (EOFError, OSError) as exc:
        if isinstance(exc, (BrokenPipeError, FileNotFoundError)):
            raise
        # truncated or corrupt .bz2/.gz/.xz streams surface here
        raise DataError(f"cannot read: {exc} (truncated or corrupt file?)", name) from None
    finally:
        fh.close()
    wv = WordVectors(words, vectors, {"source": {"path": name, "format": fmt}})
    return _drop_duplicates(wv, stats, name)


def is_pickle(head: bytes) -> bool:
    """A pickle's first bytes: PROTO (0x80) and a protocol number 2-5 (gensim's .model and .kv)."""
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def _drop_duplicates(wv: WordVectors, stats: ReadStats, name: str) -> WordVectors:
    if len(wv.index) == len(wv.words):
        return wv
    keep = np.fromiter(sorted(wv.index.values()), dtype=np.int64)
    stats.duplicates += len(wv.words) - len(keep)
    log.warning("%s: %d duplicate words; kept the first row of each", name, len(wv.words) - len(keep))
    return wv.take(keep)


def write_vectors(wv: WordVectors, path, fmt: str, *, meta: dict | None = None) -> None:
    """Write `wv` to a path ('-' = stdout for the streamable formats) in `fmt`."""
    fmt = canonical_format(fmt)
    if fmt == "vecdir":
        if path in (None, "-"):
            raise UsageError("a vecdir is a folder: give it a name with -o")
        save_vecdir(wv, path, meta)
        return
    check_finite(wv)
    if fmt in ("word2vec", "glove", "word2vec-bin", "sparse"):
        spaced = sum(1 for w in wv.words if " " in w)
        if spaced:
            log.warning("%d words contain spaces; readers other than vecpipe may split them", spaced)
        check_vocab_words(wv.words, fmt)
    with open_output(path) as out:
        if fmt == "jsonl":
            jsonl.write_jsonl_vectors(wv, out)
        elif fmt == "parquet":
            parquet.write_parquet_vectors(wv, out)
        elif fmt == "word2vec-bin":
            binary.write_word2vec_binary(wv, out)
        elif fmt == "sparse":
            sparse.write_sparse_text(wv, out)
        else:
            text.write_dense_text(wv, out, header=(fmt == "word2vec"))
