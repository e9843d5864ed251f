"""Dense text word vectors: word2vec text (`N D` header; fastText .vec is the
same) and GloVe (no header). Well-formed chunks go through polars' CSV reader;
the exact line-by-line parser takes any chunk it refuses, to report or repair it."""
from __future__ import annotations

import contextlib
import logging
import re
from typing import IO, Callable

import numpy as np
import orjson

from vecpipe.core.errors import DataError
from vecpipe.core.io.progress import progress
from vecpipe.core.vectors.detect import check_header_dim, looks_numeric, parse_header
from vecpipe.core.vectors.wordvectors import WordVectors, describe_nonfinite, row_blocks

log = logging.getLogger("vecpipe")

CHUNK_BYTES = 1 << 23  # 8 MiB of text per parse step: bounded memory, few Python round trips


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


def read_chunks(fh: IO[bytes], limit: int | None, done: Callable[[], int]):
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


def count_lines(chunk: bytes) -> int:
    return chunk.count(b"\n") + (0 if chunk.endswith(b"\n") else 1)


def read_dense_text(fh, name, *, limit, unicode_errors, policy, stats):
    first = fh.readline()
    header = parse_header(first)
    line_no = 1
    pending = b""
    if header:
        n, dim = header
        check_header_dim(n, dim, name)
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
    for chunk in read_chunks(fh, limit, lambda: len(words)):
        if first_chunk and pending:
            chunk = pending + chunk
            first_chunk = False
        lines = count_lines(chunk)
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
    if header and limit is None and len(words) + policy.count != n:
        policy(f"the header says {n} rows but the file has {len(words) + policy.count}", 1)
    if stats.spaced_words:
        log.warning("%s: %d words contain spaces (taken as everything before the last %d values)", name, stats.spaced_words, dim)
    return words, rows.result()


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


def _import_polars():
    """polars, with the SIGINT handler it found kept: importing polars installs
    its own (with SA_RESTART), and a blocking read of stdin then ignores Ctrl-C
    until more input or EOF comes (pola-rs/polars#21739)."""
    import signal

    previous = signal.getsignal(signal.SIGINT)
    import polars

    if previous is not None:  # set again even if getsignal looks unchanged: polars replaces it below Python
        with contextlib.suppress(ValueError):  # ValueError: not the main thread, which cannot set handlers
            signal.signal(signal.SIGINT, previous)
    return polars


class _FastDenseParser:
    """Parse a chunk of well-formed `word v1 .. vD` lines with polars' multi-threaded
    CSV reader. Returns None whenever the chunk is not plainly well formed (tabs,
    blank lines, words with spaces, bad numbers, wrong counts, invalid UTF-8), and
    the exact line-by-line parser takes over to report or repair it."""

    def __init__(self, dim: int):
        pl = _import_polars()
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
        if found < dim or (found > dim and looks_numeric(parts[1:2])):
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


def format_rows(block: np.ndarray) -> list[bytes]:
    """Each row as `v1 v2 ...` with the shortest text that reads back to the same
    float32 (orjson formats float32 that way, in C). Rows are finite (checked by
    write_vectors)."""
    if not len(block):
        return []
    if block.shape[1] == 0:
        return [b""] * len(block)
    text = orjson.dumps(np.ascontiguousarray(block), option=orjson.OPT_SERIALIZE_NUMPY)
    return text[2:-2].replace(b",", b" ").split(b"] [")


def write_dense_text(wv: WordVectors, out, *, header: bool) -> None:
    if header:
        out.write(f"{len(wv)} {wv.dim}\n".encode())
    for words, block in row_blocks(wv):
        rows = format_rows(block)
        out.write(b"".join(w.encode("utf-8") + b" " + r + b"\n" for w, r in zip(words, rows)))
