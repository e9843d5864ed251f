"""Word-vector files: detection, fast readers and writers, and the native vecdir.

Formats (names used by --from/--to):
  word2vec      text, `N D` header line, then `word v1 .. vD` (fastText .vec is the same)
  glove         text without the header line
  word2vec-bin  the binary format of the original word2vec tool
  sparse        Chinese-Word-Vectors PPMI text: `N D` header, then `word idx:val ...`
  jsonl         one {"word": ..., "vector": [...]} object per line
  vecdir        vecpipe's folder: vectors.npy (or vectors.npz when sparse), vocab.txt, meta.json

Every reader strips a leading UTF-8 BOM and refuses NaN and infinite values
(and numbers too large for float32) as bad input naming file:line and the word,
or drops the row under --on-error skip. A vecdir is checked when vecpipe writes
it, which records `"finite": true` in its meta.json; opening a vecdir that says
so trusts it (an mmap stays an mmap, whatever its size), any other vecdir is
checked at open by a vectorised scan, and `convert` always checks its input.
"""
from __future__ import annotations

import io
import itertools
import logging
import math
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterable

import numpy as np
import orjson

from vecpipe.core.errors import DataError, NoInputError, UsageError
from vecpipe.core.io.progress import progress
from vecpipe.core.io.compression import strip_compression_suffix
from vecpipe.core.io.streams import NPY_MAGIC, atomic_path, display_name, open_input, open_output

log = logging.getLogger("vecpipe")

FORMATS = ("word2vec", "glove", "word2vec-bin", "sparse", "jsonl", "vecdir")
ALIASES = {"fasttext": "word2vec", "vec": "word2vec", "txt": "word2vec", "text": "word2vec", "bin": "word2vec-bin", "ppmi": "sparse"}
VECDIR_FORMAT = "vecpipe.vecdir"
CHUNK_BYTES = 1 << 23  # 8 MiB of text per parse step: bounded memory, few Python round trips
UTF8_BOM = b"\xef\xbb\xbf"
DETECT_BYTES = 1 << 16  # how much of the start detection looks at
F32_LIMIT = 3.4028235677973366e38  # a float whose magnitude reaches this rounds to infinity in float32


def canonical_format(name: str) -> str:
    key = name.lower()
    key = ALIASES.get(key, key)
    if key not in FORMATS:
        raise UsageError(f"unknown format {name!r}; choose one of: {', '.join(FORMATS + tuple(ALIASES))}")
    return key


@dataclass
class WordVectors:
    """Words and their vectors, row i belonging to words[i].

    `vectors` is a 2-D numpy array (possibly a read-only mmap) or a scipy CSR
    matrix for sparse (PPMI) vectors."""

    words: list[str]
    vectors: object
    meta: dict = field(default_factory=dict)
    counts: np.ndarray | None = None  # corpus frequency per word, when known (counts.npy in a vecdir)
    _index: dict | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.words)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def is_sparse(self) -> bool:
        return not isinstance(self.vectors, np.ndarray)

    @property
    def index(self) -> dict[str, int]:
        if self._index is None:
            # first occurrence wins, like every reader here
            idx: dict[str, int] = {}
            for i, w in enumerate(self.words):
                idx.setdefault(w, i)
            self._index = idx
        return self._index

    def dense(self) -> np.ndarray:
        return self.vectors if isinstance(self.vectors, np.ndarray) else self.vectors.toarray()

    def take(self, rows) -> "WordVectors":
        rows = np.asarray(rows, dtype=np.int64)
        words = [self.words[i] for i in rows]
        counts = None if self.counts is None else np.asarray(self.counts)[rows]
        return WordVectors(words, self.vectors[rows], dict(self.meta), counts)


@dataclass
class ReadStats:
    """What a reader had to tolerate; reported by the caller."""

    skipped: int = 0
    spaced_words: int = 0
    duplicates: int = 0


class _ErrorPolicy:
    """--on-error stop|skip: raise the first DataError, or log it and count it."""

    def __init__(self, name: str, on_error: str, stats: ReadStats):
        if on_error not in ("stop", "skip"):
            raise UsageError(f"--on-error must be stop or skip, not {on_error!r}")
        self.name, self.skip, self.stats = name, on_error == "skip", stats

    def __call__(self, message: str, line: int | None) -> None:
        err = DataError(message, self.name, line)
        if not self.skip:
            raise err
        self.stats.skipped += 1
        if self.stats.skipped <= 5:
            log.warning("skipped: %s", err)


def describe_nonfinite(values) -> str | None:
    """What makes a row unusable as float32 ('NaN', 'infinity', or '1e+39, which
    float32 turns into infinity'), or None when every value is a finite float32."""
    for v in values:
        v = float(v)
        if not -F32_LIMIT < v < F32_LIMIT:
            return "NaN" if math.isnan(v) else "infinity" if math.isinf(v) else f"{v!r}, which float32 turns into infinity"
    return None


def nonfinite_rows(vectors) -> np.ndarray:
    """Indices of the rows holding NaN or infinity (dense, mmap or sparse),
    scanned block by block so a huge mmap needs little memory."""
    if not isinstance(vectors, np.ndarray):
        vectors = vectors.tocsr()
        bad = np.flatnonzero(~_fits_float32(np.asarray(vectors.data)))
        return np.unique(np.searchsorted(vectors.indptr, bad, side="right") - 1) if len(bad) else bad
    if vectors.ndim != 2 or vectors.dtype.kind != "f":
        return np.empty(0, dtype=np.int64)
    step = max(1, (1 << 24) // max(1, vectors.shape[1]))
    parts = [start + np.flatnonzero(~_fits_float32(vectors[start : start + step]).all(axis=1))
             for start in range(0, len(vectors), step)]
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)


def _fits_float32(values: np.ndarray) -> np.ndarray:
    return np.isfinite(values) if values.dtype.itemsize <= 4 else np.abs(values) < F32_LIMIT


def _row_values(vectors, i: int) -> np.ndarray:
    row = vectors[i]
    return np.asarray(row.toarray()).ravel() if not isinstance(row, np.ndarray) else row


def _finite_rows(vectors, policy, where) -> np.ndarray | None:
    """Report each non-finite row through the policy (`where(i)` names row i);
    return the rows to keep, or None when all are finite."""
    bad = nonfinite_rows(vectors)
    if not len(bad):
        return None
    for i in bad:
        policy(f"{where(int(i))} holds {describe_nonfinite(_row_values(vectors, int(i)))}", None)
    return np.setdiff1d(np.arange(vectors.shape[0]), bad)


# ---------------------------------------------------------------- detection


def _parse_header(line: bytes) -> tuple[int, int] | None:
    parts = line.split()
    if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
        return int(parts[0]), int(parts[1])
    return None


_SPARSE_TOKEN = re.compile(rb"^\d+:\S+$")


def detect_format(path, fh: io.BufferedReader | None = None) -> str:
    """Guess the format from the name, then from the first bytes of content."""
    if path not in (None, "-") and Path(path).is_dir():
        return "vecdir"
    if path not in (None, "-"):
        suffix = Path(strip_compression_suffix(str(path))).suffix.lower()
        by_name = {".bin": "word2vec-bin", ".jsonl": "jsonl", ".ndjson": "jsonl"}.get(suffix)
        if by_name:
            return by_name
    if fh is None:
        return "word2vec"
    head = fh.peek(DETECT_BYTES)
    if head.startswith(UTF8_BOM):
        head = head[len(UTF8_BOM) :]
    if head.lstrip()[:1] == b"{":
        return "jsonl"
    first, _, rest = head.partition(b"\n")
    header = _parse_header(first)
    sample = rest if header else head
    line = sample.split(b"\n", 1)[0].rstrip()
    tokens = line.split()
    if _looks_sparse(sample, header):
        return "sparse"
    if header:
        n, d = header
        # text has D numbers after the word; binary has 4*D raw bytes (rarely valid UTF-8)
        if len(tokens) >= d + 1 and _looks_numeric(tokens[-d:]):
            return "word2vec"
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            return "word2vec-bin"
        return "word2vec-bin" if len(line) < d else "word2vec"
    return "glove"


class _Prefixed(io.RawIOBase):
    """Bytes already read from a stream, then the rest of that stream."""

    def __init__(self, prefix: bytes, rest: IO[bytes]):
        self.prefix, self.rest = memoryview(prefix), rest

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self.prefix:
            n = min(len(b), len(self.prefix))
            b[:n] = self.prefix[:n]
            self.prefix = self.prefix[n:]
            return n
        return self.rest.readinto(b)

    def close(self) -> None:
        self.rest.close()
        super().close()


def _with_lookahead(fh: io.BufferedReader, size: int) -> io.BufferedReader:
    """A reader whose peek() shows the first `size` bytes (or all, if fewer): a
    pipe may hold only the writer's first line when detection looks at it."""
    if len(fh.peek(size)) >= size:
        return fh
    chunks, total = [], 0
    while total < size:
        block = fh.read1(size - total)
        if not block:
            break
        chunks.append(block)
        total += len(block)
    return io.BufferedReader(_Prefixed(b"".join(chunks), fh), buffer_size=max(size, 1 << 20))


def _looks_sparse(sample: bytes, header) -> bool:
    """The first line that has values decides: `idx:val` pairs mean sparse. A
    sparse row may have no values at all (PPMI rows can be empty), so lines
    holding a word alone are passed over; if no line in the sample has values,
    lone words under an `N D` header (D > 0) are sparse too (a binary row always
    has its raw bytes after the word)."""
    lines = sample.split(b"\n")
    if len(lines) > 1:
        lines.pop()  # perhaps cut short by the sample's end
    lone = 0
    for line in lines[:1000]:
        tokens = line.split()
        if len(tokens) >= 2:
            return all(_SPARSE_TOKEN.match(t) for t in tokens[1:4])
        lone += len(tokens)
    if not (header and header[1] > 0 and lone):
        return False
    try:
        b"\n".join(lines).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _looks_numeric(tokens) -> bool:
    try:
        for t in tokens[:8]:
            float(t)
        return True
    except ValueError:
        return False


# ---------------------------------------------------------------- reading


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
        fh = _with_lookahead(fh, DETECT_BYTES)
        if fh.peek(len(UTF8_BOM))[: len(UTF8_BOM)] == UTF8_BOM:
            fh.read(len(UTF8_BOM))
        if fh.peek(len(NPY_MAGIC))[: len(NPY_MAGIC)] == NPY_MAGIC:
            raise DataError("a .npy array holds vectors without their words; word vectors are a vecdir "
                            "(vectors.npy beside vocab.txt) or a word-vector file", name)
        fmt = fmt or detect_format(path, fh)
        policy = _ErrorPolicy(name, on_error, stats)
        reader = {
            "word2vec": _read_dense_text,
            "glove": _read_dense_text,
            "word2vec-bin": _read_word2vec_binary,
            "sparse": _read_sparse_text,
            "jsonl": _read_jsonl,
        }[fmt]
        words, vectors = reader(fh, name, limit=limit, unicode_errors=unicode_errors, policy=policy, stats=stats)
    except (EOFError, OSError) as exc:
        if isinstance(exc, (BrokenPipeError, FileNotFoundError)):
            raise
        # truncated or corrupt .bz2/.gz/.xz streams surface here
        raise DataError(f"cannot read: {exc} (truncated or corrupt file?)", name) from None
    finally:
        fh.close()
    wv = WordVectors(words, vectors, {"source": {"path": name, "format": fmt}})
    return _drop_duplicates(wv, stats, name)


def _drop_duplicates(wv: WordVectors, stats: ReadStats, name: str) -> WordVectors:
    if len(wv.index) == len(wv.words):
        return wv
    keep = np.fromiter(sorted(wv.index.values()), dtype=np.int64)
    stats.duplicates += len(wv.words) - len(keep)
    log.warning("%s: %d duplicate words; kept the first row of each", name, len(wv.words) - len(keep))
    return wv.take(keep)


class _RowBuffer:
    """Collect float32 rows: into one preallocated matrix when the header gives
    the count (peak memory = the matrix), else block by block."""

    def __init__(self, rows: int | None, dim: int):
        self.dim = dim
        self.filled = 0
        self.buf = np.empty((rows, dim), dtype=np.float32) if rows else None
        self.blocks: list[np.ndarray] = []

    def add(self, block: np.ndarray) -> None:
        if self.buf is not None and self.filled + len(block) <= len(self.buf):
            self.buf[self.filled : self.filled + len(block)] = block
        else:
            self.blocks.append(np.asarray(block, dtype=np.float32))
        self.filled += len(block)

    def result(self) -> np.ndarray:
        if self.buf is None:
            if not self.blocks:
                return np.empty((0, self.dim), dtype=np.float32)
            return self.blocks[0] if len(self.blocks) == 1 else np.concatenate(self.blocks)
        head = self.buf[: min(self.filled, len(self.buf))]
        return np.concatenate([head, *self.blocks]) if self.blocks else head


def _read_chunks(fh: IO[bytes], limit: int | None, done: int):
    """Yield byte chunks that end on a line boundary; few lines when a small --limit is near."""
    while True:
        if limit is not None and limit - done() < 20000:
            want = limit - done()
            if want <= 0:
                return
            chunk = b"".join(fh.readline() for _ in range(want))
        else:
            chunk = fh.read(CHUNK_BYTES)
            if chunk and not chunk.endswith(b"\n"):
                chunk += fh.readline()
        if not chunk:
            return
        yield chunk


def _count_lines(chunk: bytes) -> int:
    return chunk.count(b"\n") + (0 if chunk.endswith(b"\n") else 1)


def _read_dense_text(fh, name, *, limit, unicode_errors, policy, stats):
    first = fh.readline()
    header = _parse_header(first)
    line_no = 1
    pending = b""
    if header:
        n, dim = header
        _check_header_dim(n, dim, name)
        line_no = 2
    else:
        n = None
        dim = _infer_dim(first, name)
        pending = first
    rows = _RowBuffer(n if limit is None else min(n or 0, limit) or None, dim)
    words: list[str] = []
    fast = _FastDenseParser(dim) if unicode_errors == "strict" else None
    first_chunk = True
    bar = progress(total=n if limit is None else min(n or limit, limit), unit=" words", unit_scale=True, desc=name)
    for chunk in _read_chunks(fh, limit, lambda: len(words)):
        if first_chunk and pending:
            chunk = pending + chunk
            first_chunk = False
        lines = _count_lines(chunk)
        parsed = fast.parse(chunk, lines) if fast else None
        if parsed is None:
            parsed = _parse_dense_slow(chunk, dim, line_no, unicode_errors, policy, stats)
        w, block = parsed
        if limit is not None and len(words) + len(w) > limit:
            keep = limit - len(words)
            w, block = w[:keep], block[:keep]
        words.extend(w)
        rows.add(block)
        bar.update(len(w))
        line_no += lines
    bar.close()
    if pending and first_chunk:  # the file held only its first line
        w, block = _parse_dense_slow(pending, dim, 1, unicode_errors, policy, stats)
        words.extend(w[: limit if limit is not None else None])
        rows.add(block[: len(words)])
    if header and limit is None and len(words) + stats.skipped != n:
        policy(f"the header says {n} rows but the file has {len(words) + stats.skipped}", 1)
    if stats.spaced_words:
        log.warning("%s: %d words contain spaces (taken as everything before the last %d values)", name, stats.spaced_words, dim)
    return words, rows.result()


def _check_header_dim(n: int, dim: int, name: str) -> None:
    if dim == 0 and n > 0:
        raise DataError(f"the header promises {n} vectors of 0 dimensions", name, 1)


def _infer_dim(first: bytes, name: str) -> int:
    parts = first.rstrip().split()
    numeric = 0
    for tok in reversed(parts):
        try:
            float(tok)
        except ValueError:
            break
        numeric += 1
    numeric = min(numeric, len(parts) - 1)
    if numeric < 1:
        raise DataError("cannot find a vector on the first line (not a word-vector text file?)", name, 1)
    return numeric


class _FastDenseParser:
    """Parse a chunk of well-formed `word v1 .. vD` lines with polars' multi-threaded
    CSV reader. Returns None whenever the chunk is not plainly well formed (tabs,
    blank lines, words with spaces, bad numbers, wrong counts, invalid UTF-8), and
    the exact line-by-line parser takes over to report or repair it."""

    def __init__(self, dim: int):
        import polars as pl

        self.pl = pl
        exc = pl.exceptions
        self.refusals = (exc.ComputeError, exc.SchemaError, exc.ShapeError, exc.NoDataError)
        # float64 then cast: the same rounding as gensim (float() then float32)
        self.schema = {"word": pl.String, **{f"v{i}": pl.Float64 for i in range(dim)}}

    def parse(self, chunk: bytes, lines: int):
        if b"\t" in chunk:
            return None
        df = self._read(chunk)
        if df is None and (b" \n" in chunk or b" \r\n" in chunk):
            # trailing spaces (Chinese-Word-Vectors files end every line with one);
            # searched for only after a refusal, as the scan costs as much as the parse
            df = self._read(chunk.replace(b" \r\n", b"\r\n").replace(b" \n", b"\n"))
        # a short row shows as nulls, a long one as a refusal, blank lines as null rows
        if df is None or df.height != lines or any(df.null_count().row(0)):
            return None
        with np.errstate(over="ignore"):
            block = df.select(self.pl.exclude("word")).to_numpy().astype(np.float32, order="C")
        if not np.isfinite(block).all():
            return None  # NaN, inf or a float32 overflow: the line-by-line parser names the line
        return df["word"].to_list(), block

    def _read(self, chunk: bytes):
        try:
            return self.pl.read_csv(
                chunk, has_header=False, separator=" ", quote_char=None, schema=self.schema, encoding="utf8"
            )
        except self.refusals:
            return None


_FIELD_SEP = re.compile(r"[ \t]+")


def _parse_dense_slow(chunk: bytes, dim: int, first_line: int, unicode_errors: str, policy, stats):
    words: list[str] = []
    values: list[list[float]] = []
    lines = chunk.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for i, raw in enumerate(lines):
        line_no = first_line + i
        try:
            text = raw.decode("utf-8", unicode_errors)
        except UnicodeDecodeError as exc:
            policy(f"invalid UTF-8 at byte {exc.start} of the line (try --unicode-errors replace)", line_no)
            continue
        text = text.rstrip(" \t\r\n")
        if not text:
            continue
        if text[0] in " \t":
            policy("the line starts with a space: empty word", line_no)
            continue
        parts = _FIELD_SEP.split(text)
        found = len(parts) - 1
        if found < dim or (found > dim and _looks_numeric(parts[1:2])):
            policy(f"expected {dim} values after the word, found {found}", line_no)
            continue
        if found > dim:
            word = " ".join(parts[: len(parts) - dim])
            stats.spaced_words += 1
        else:
            word = parts[0]
        try:
            row = [float(x) for x in parts[-dim:]]
        except ValueError as exc:
            policy(f"not a number: {str(exc).split(': ', 1)[-1]}", line_no)
            continue
        bad = describe_nonfinite(row)
        if bad:
            policy(f"the vector of {word!r} holds {bad}", line_no)
            continue
        words.append(word)
        values.append(row)
    block = np.array(values, dtype=np.float32).reshape(len(values), dim)
    return words, block


def _read_word2vec_binary(fh, name, *, limit, unicode_errors, policy, stats):
    header = _parse_header(fh.readline())
    if not header:
        raise DataError("word2vec binary files start with a `N D` header line", name, 1)
    n, dim = header
    _check_header_dim(n, dim, name)
    total = n if limit is None else min(n, limit)
    out = np.empty((total, dim), dtype=np.float32)
    words: list[str] = []
    rowbytes = 4 * dim
    buf = b""
    pos = 0
    while len(words) < total:
        space = buf.find(b" ", pos)
        if space < 0 or len(buf) - space - 1 < rowbytes:
            more = fh.read(CHUNK_BYTES)
            if not more:
                raise DataError(f"the file ends after {len(words)} of the {n} rows its header promises (truncated?)", name)
            buf = buf[pos:] + more
            pos = 0
            continue
        raw_word = buf[pos:space].lstrip(b"\n")
        if b"\n" in raw_word or b"\x00" in raw_word or not raw_word:
            raise DataError(f"row {len(words) + 1}: the word is empty or holds a line break or NUL byte "
                            f"(is the header's dimension {dim} right?)", name) from None
        try:
            word = raw_word.decode("utf-8", unicode_errors)
        except UnicodeDecodeError as exc:
            raise DataError(f"row {len(words) + 1}: invalid UTF-8 in the word at byte {exc.start} (try --unicode-errors replace)", name) from None
        out[len(words)] = np.frombuffer(buf, dtype="<f4", count=dim, offset=space + 1)
        words.append(word)
        pos = space + 1 + rowbytes
    if total == n:
        rest = buf[pos:] if buf[pos:].strip() else fh.read(1 << 16)
        if rest.strip():
            raise DataError(f"the header says {n} rows of {dim} values, but more data follows them "
                            "(a wrong count or dimension in the header?)", name, 1)
    keep = _finite_rows(out, policy, lambda i: f"row {i + 1} (word {words[i]!r})")
    return (words, out) if keep is None else ([words[i] for i in keep], out[keep])


def _read_sparse_text(fh, name, *, limit, unicode_errors, policy, stats):
    from scipy import sparse

    first = fh.readline()
    header = _parse_header(first)
    line_no = 2 if header else 1
    pending = b"" if header else first
    words: list[str] = []
    indptr = [0]
    indices: list[np.ndarray] = []
    data: list[np.ndarray] = []
    max_index = -1
    chunks = _read_chunks(fh, limit, lambda: len(words))
    if pending:
        chunks = itertools.chain([pending], chunks)
    for chunk in chunks:
        lines = chunk.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        for i, raw in enumerate(lines):
            if limit is not None and len(words) >= limit:
                break
            try:
                text = raw.decode("utf-8", unicode_errors).rstrip()
            except UnicodeDecodeError as exc:
                policy(f"invalid UTF-8 at byte {exc.start} of the line (try --unicode-errors replace)", line_no + i)
                continue
            if not text:
                continue
            word, _, rest = text.partition(" ")
            try:
                pairs = np.array(rest.replace(":", " ").split(), dtype=np.float64).reshape(-1, 2) if rest.strip() else np.empty((0, 2))
            except ValueError:
                policy("expected `index:value` pairs after the word", line_no + i)
                continue
            idx = pairs[:, 0].astype(np.int64)
            if not np.array_equal(idx, pairs[:, 0]):
                policy(f"index {pairs[idx != pairs[:, 0], 0][0]!r} is not a whole number", line_no + i)
                continue
            outside = idx[(idx < 0) | (idx >= header[1])] if header else idx[idx < 0]
            if len(outside):
                columns = f"the {header[1]} columns (0 to {header[1] - 1}) of the header" if header else "the columns"
                policy(f"index {int(outside[0])} is outside {columns}", line_no + i)
                continue
            order = np.argsort(idx, kind="stable")
            idx = idx[order]
            twice = idx[1:][np.diff(idx) == 0]
            if len(twice):
                policy(f"index {int(twice[0])} appears twice in the row", line_no + i)
                continue
            bad = describe_nonfinite(pairs[:, 1])
            if bad:
                policy(f"the vector of {word!r} holds {bad}", line_no + i)
                continue
            indices.append(idx)
            data.append(pairs[order, 1].astype(np.float32))
            indptr.append(indptr[-1] + len(idx))
            if len(idx):
                max_index = max(max_index, int(idx.max()))
            words.append(word)
        line_no += _count_lines(chunk)
    if header and limit is None and len(words) + stats.skipped != header[0]:
        policy(f"the header says {header[0]} rows but the file has {len(words) + stats.skipped}", 1)
    dim = header[1] if header else max_index + 1
    matrix = sparse.csr_matrix(
        (
            np.concatenate(data) if data else np.empty(0, np.float32),
            np.concatenate(indices) if indices else np.empty(0, np.int64),
            np.asarray(indptr, dtype=np.int64),
        ),
        shape=(len(words), dim),
    )
    return words, matrix


def _read_jsonl(fh, name, *, limit, unicode_errors, policy, stats):
    words: list[str] = []
    rows: list[list[float]] = []
    dim = None
    for n, raw in enumerate(fh, 1):
        if limit is not None and len(words) >= limit:
            break
        if not raw.strip():
            continue
        try:
            rec = orjson.loads(raw.decode("utf-8", unicode_errors) if unicode_errors != "strict" else raw)
        except (orjson.JSONDecodeError, UnicodeDecodeError) as exc:
            policy(f"invalid JSON: {exc}", n)
            continue
        word = rec.get("word") if isinstance(rec, dict) else None
        vec = rec.get("vector") if isinstance(rec, dict) else None
        if not isinstance(word, str) or not isinstance(vec, list):
            policy('expected an object with "word" (a string) and "vector" (a list of numbers)', n)
            continue
        dim = len(vec) if dim is None else dim
        if len(vec) != dim:
            policy(f"expected {dim} values in the vector, found {len(vec)}", n)
            continue
        if None in vec:
            policy(f"the vector of {word!r} holds null (a missing value, or NaN or infinity written as JSON)", n)
            continue
        try:
            row = np.array(vec, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            policy(f"the vector of {word!r} must hold numbers only ({exc})", n)
            continue
        bad = "nested lists" if row.ndim != 1 else describe_nonfinite(row)
        if bad:
            policy(f"the vector of {word!r} holds {bad}", n)
            continue
        words.append(word)
        rows.append(row)
    block = np.array(rows, dtype=np.float32).reshape(len(rows), dim or 0)
    return words, block


# ---------------------------------------------------------------- vecdir


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
        raise DataError("not a vecdir (expected vectors.npy, vocab.txt and meta.json)", p)
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
        policy = _ErrorPolicy(str(source), on_error, stats if stats is not None else ReadStats())
        keep = _finite_rows(vectors, policy, lambda i: f"row {i + 1} (word {words[i]!r}, vocab.txt:{i + 1})")
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
    """An .npy array of real numbers with `ndim` dimensions, never unpickled;
    anything else (truncated, objects, text, another shape) is bad input naming
    the file. Integer arrays are read as float32 when vectors (ndim 2)."""
    try:
        with open(path, "rb") as f:
            if f.read(len(NPY_MAGIC)) != NPY_MAGIC:
                raise DataError("not an .npy array (it does not start with the npy magic bytes)", path)
            f.seek(0)
            version = np.lib.format.read_magic(f)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            if version in read_header:
                shape, _, dtype = read_header[version](f)
                _check_npy_kind(path, shape, dtype, ndim)
        arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
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


def _check_vocab_words(words: Iterable[str], fmt: str) -> None:
    for i, w in enumerate(words):
        if not w or "\n" in w or "\r" in w:
            raise DataError(f"word {i + 1} ({w!r}) is empty or holds a line break; {fmt} cannot store it")


def _check_finite(wv: WordVectors) -> None:
    """Writers refuse NaN and infinity: no reader of vecpipe's would take them back."""
    bad = nonfinite_rows(wv.vectors)
    if len(bad):
        i = int(bad[0])
        raise DataError(f"row {i + 1} (word {wv.words[i]!r}) holds {describe_nonfinite(_row_values(wv.vectors, i))}; "
                        "refusing to write vectors that are not finite")


VECDIR_FILES = ("vectors.npy", "vectors.npz", "counts.npy", "vocab.txt", "meta.json")


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
    _check_vocab_words(wv.words, "vecdir")
    _check_finite(wv)
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


# ---------------------------------------------------------------- writing


def write_vectors(wv: WordVectors, path, fmt: str, *, meta: dict | None = None) -> None:
    """Write `wv` to a path ('-' = stdout for the streamable formats) in `fmt`."""
    fmt = canonical_format(fmt)
    if fmt == "vecdir":
        if path in (None, "-"):
            raise UsageError("a vecdir is a folder: give it a name with -o")
        save_vecdir(wv, path, meta)
        return
    _check_finite(wv)
    if fmt in ("word2vec", "glove", "word2vec-bin", "sparse"):
        spaced = sum(1 for w in wv.words if " " in w)
        if spaced:
            log.warning("%d words contain spaces; readers other than vecpipe may split them", spaced)
        _check_vocab_words(wv.words, fmt)
    with open_output(path) as out:
        if fmt == "jsonl":
            _write_jsonl(wv, out)
        elif fmt == "word2vec-bin":
            _write_word2vec_binary(wv, out)
        elif fmt == "sparse":
            _write_sparse(wv, out)
        else:
            _write_dense_text(wv, out, header=(fmt == "word2vec"))


def _row_blocks(wv: WordVectors, size: int = 10000):
    for start in range(0, len(wv), size):
        block = wv.vectors[start : start + size]
        if not isinstance(block, np.ndarray):
            block = block.toarray()
        yield wv.words[start : start + size], np.asarray(block, dtype=np.float32)


def _format_rows(block: np.ndarray) -> list[bytes]:
    """Each row as `v1 v2 ...` with the shortest text that reads back to the same
    float32 (orjson formats float32 that way, in C). Rows are finite (checked by
    write_vectors)."""
    if not len(block):
        return []
    if block.shape[1] == 0:
        return [b""] * len(block)
    text = orjson.dumps(np.ascontiguousarray(block), option=orjson.OPT_SERIALIZE_NUMPY)
    return text[2:-2].replace(b",", b" ").split(b"] [")


def _write_dense_text(wv: WordVectors, out, *, header: bool) -> None:
    if header:
        out.write(f"{len(wv)} {wv.dim}\n".encode())
    for words, block in _row_blocks(wv):
        rows = _format_rows(block)
        out.write(b"".join(w.encode("utf-8") + b" " + r + b"\n" for w, r in zip(words, rows)))


def _write_word2vec_binary(wv: WordVectors, out) -> None:
    out.write(f"{len(wv)} {wv.dim}\n".encode())
    for words, block in _row_blocks(wv):
        block = block.astype("<f4", copy=False)
        # newline after each row, as the original word2vec tool writes it
        out.write(b"".join(w.encode("utf-8") + b" " + row.tobytes() + b"\n" for w, row in zip(words, block)))


def _write_sparse(wv: WordVectors, out) -> None:
    from scipy import sparse

    matrix = sparse.csr_matrix(wv.vectors)
    out.write(f"{len(wv)} {wv.dim}\n".encode())
    for start in range(0, len(wv), 10000):
        part = matrix[start : start + 10000]
        lines = []
        for i in range(part.shape[0]):
            lo, hi = part.indptr[i], part.indptr[i + 1]
            vals = _format_rows(part.data[lo:hi].astype(np.float32).reshape(1, -1))[0].split(b" ") if hi > lo else []
            pairs = b" ".join(b"%d:%s" % (j, v) for j, v in zip(part.indices[lo:hi], vals))
            lines.append(wv.words[start + i].encode("utf-8") + (b" " + pairs if pairs else b"") + b"\n")
        out.write(b"".join(lines))


def _write_jsonl(wv: WordVectors, out) -> None:
    opt = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE
    for words, block in _row_blocks(wv):
        out.write(b"".join(orjson.dumps({"word": w, "vector": row}, option=opt) for w, row in zip(words, block)))
