"""Word vectors as JSONL: one {"word": ..., "vector": [...]} object per line."""
from __future__ import annotations

import numpy as np
import orjson

from vecpipe.core.io.jsonl import write_jsonl
from vecpipe.core.vectors.wordvectors import WordVectors, describe_nonfinite, row_blocks


def read_jsonl_vectors(fh, name, *, limit, unicode_errors, policy, stats):
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


def write_jsonl_vectors(wv: WordVectors, out) -> None:
    write_jsonl(out, ({"word": w, "vector": row} for words, block in row_blocks(wv) for w, row in zip(words, block)))
