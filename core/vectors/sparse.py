"""Chinese-Word-Vectors sparse PPMI text: `N D` header, then `word idx:val ...`
(a row may hold no pairs at all). Read into a scipy CSR matrix."""
from __future__ import annotations

import itertools

import numpy as np

from vecpipe.core.vectors.detect import parse_header
from vecpipe.core.vectors.text import count_lines, format_rows, read_chunks
from vecpipe.core.vectors.wordvectors import WordVectors, describe_nonfinite


def read_sparse_text(fh, name, *, limit, unicode_errors, policy, stats):
    from scipy import sparse

    first = fh.readline()
    header = parse_header(first)
    line_no = 2 if header else 1
    pending = b"" if header else first
    words: list[str] = []
    indptr = [0]
    indices: list[np.ndarray] = []
    data: list[np.ndarray] = []
    max_index = -1
    chunks = read_chunks(fh, limit, lambda: len(words))
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
        line_no += count_lines(chunk)
    if header and limit is None and len(words) + policy.count != header[0]:
        policy(f"the header says {header[0]} rows but the file has {len(words) + policy.count}", 1)
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


def write_sparse_text(wv: WordVectors, out) -> None:
    from scipy import sparse

    matrix = sparse.csr_matrix(wv.vectors)
    out.write(f"{len(wv)} {wv.dim}\n".encode())
    for start in range(0, len(wv), 10000):
        part = matrix[start : start + 10000]
        lines = []
        for i in range(part.shape[0]):
            lo, hi = part.indptr[i], part.indptr[i + 1]
            vals = format_rows(part.data[lo:hi].astype(np.float32).reshape(1, -1))[0].split(b" ") if hi > lo else []
            pairs = b" ".join(b"%d:%s" % (j, v) for j, v in zip(part.indices[lo:hi], vals))
            lines.append(wv.words[start + i].encode("utf-8") + (b" " + pairs if pairs else b"") + b"\n")
        out.write(b"".join(lines))
