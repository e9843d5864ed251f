"""Format detection: from the name, then from the first bytes (the `N D`
header line, `idx:val` pairs, numbers or raw bytes after the word)."""
from __future__ import annotations

import io
import re
from pathlib import Path
from typing import IO

from vecpipe.core.errors import DataError
from vecpipe.core.io.compression import strip_compression_suffix
from vecpipe.core.io.inputs import UTF8_BOM

DETECT_BYTES = 1 << 16  # how much of the start detection looks at


def parse_header(line: bytes) -> tuple[int, int] | None:
    parts = line.split()
    if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
        return int(parts[0]), int(parts[1])
    return None


def check_header_dim(n: int, dim: int, name: str) -> None:
    if dim == 0 and n > 0:
        raise DataError(f"the header promises {n} vectors of 0 dimensions", name, 1)


def detect_format(path, fh: io.BufferedReader | None = None) -> str:
    """Guess the format from the name, then from the first bytes of content."""
    if path not in (None, "-") and Path(path).is_dir():
        return "vecdir"
    if path not in (None, "-"):
        suffix = Path(strip_compression_suffix(str(path))).suffix.lower()
        by_name = {".bin": "word2vec-bin", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}.get(suffix)
        if by_name:
            return by_name
    if fh is None:
        return "word2vec"
    head = fh.peek(DETECT_BYTES)
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(UTF8_BOM):
        head = head[len(UTF8_BOM) :]
    if head.lstrip()[:1] == b"{":
        return "jsonl"
    first, _, rest = head.partition(b"\n")
    header = parse_header(first)
    sample = rest if header else head
    line = sample.split(b"\n", 1)[0].rstrip()
    tokens = line.split()
    if _looks_sparse(sample, header):
        return "sparse"
    if header:
        n, d = header
        # text has D numbers after the word; binary has 4*D raw bytes (rarely valid UTF-8)
        if len(tokens) >= d + 1 and looks_numeric(tokens[-d:]):
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


def with_lookahead(fh: io.BufferedReader, size: int) -> io.BufferedReader:
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


_SPARSE_TOKEN = re.compile(rb"^\d+:\S+$")


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


def looks_numeric(tokens) -> bool:
    try:
        for t in tokens[:8]:
            float(t)
        return True
    except ValueError:
        return False
