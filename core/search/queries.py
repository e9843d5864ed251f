"""The queries knn reads from a file or stdin: an npy stream, JSONL with
vectors, or texts (lines or JSONL), in blocks; and analogy triples."""
from __future__ import annotations

from typing import TYPE_CHECKING

from vecpipe.core.errors import DataError
from vecpipe.core.io.inputs import display_name, iter_lines, open_input, read_numbered_records
from vecpipe.core.io.npy import is_npy, read_npy_stream
from vecpipe.core.search.index import as_vectors, check_finite

if TYPE_CHECKING:
    from vecpipe.core.search.knn import KnnOptions


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
        vectors = as_vectors(rows, name, lines)
        check_finite(vectors, name, lines=lines, what="query vector")
        return "vectors", vectors, [rec for _, rec in batch]
    texts = []
    for n, rec in batch:
        text = rec.get(opts.text_field)
        if not isinstance(text, str) or not text.strip():
            raise DataError(f'field "{opts.text_field}" is missing or empty', name, n)
        texts.append(text)
    return "texts", texts, [rec for _, rec in batch]


def read_triples(src):
    """Blocks of (a, b, c) word triples from analogy lines (`:` section lines skipped)."""
    name = display_name(src)
    fh = open_input(src)
    try:
        block = []
        for n, line in iter_lines(fh, name):  # invalid UTF-8 is bad input naming file:line (65), BOM dropped
            words = line.split()
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
