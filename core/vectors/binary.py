"""The binary format of the original word2vec tool: `N D` header line, then
each word, a space, and D little-endian float32."""
from __future__ import annotations

import numpy as np

from vecpipe.core.errors import DataError
from vecpipe.core.vectors.detect import check_header_dim, parse_header
from vecpipe.core.vectors.text import CHUNK_BYTES
from vecpipe.core.vectors.wordvectors import WordVectors, finite_rows, row_blocks


def read_word2vec_binary(fh, name, *, limit, unicode_errors, policy, stats):
    header = parse_header(fh.readline())
    if not header:
        raise DataError("word2vec binary files start with a `N D` header line", name, 1)
    n, dim = header
    check_header_dim(n, dim, name)
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
            raise DataError(f"row {len(words) + 1}: invalid UTF-8 in the word at byte {exc.start} "
                            "(try --unicode-errors replace)", name) from None
        out[len(words)] = np.frombuffer(buf, dtype="<f4", count=dim, offset=space + 1)
        words.append(word)
        pos = space + 1 + rowbytes
    if total == n:
        rest = buf[pos:] if buf[pos:].strip() else fh.read(1 << 16)
        if rest.strip():
            raise DataError(f"the header says {n} rows of {dim} values, but more data follows them "
                            "(a wrong count or dimension in the header?)", name, 1)
    keep = finite_rows(out, policy, lambda i: f"row {i + 1} (word {words[i]!r})")
    return (words, out) if keep is None else ([words[i] for i in keep], out[keep])


def write_word2vec_binary(wv: WordVectors, out) -> None:
    out.write(f"{len(wv)} {wv.dim}\n".encode())
    for words, block in row_blocks(wv):
        block = block.astype("<f4", copy=False)
        # newline after each row, as the original word2vec tool writes it
        out.write(b"".join(w.encode("utf-8") + b" " + row.tobytes() + b"\n" for w, row in zip(words, block)))
