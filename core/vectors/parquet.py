"""Word vectors as Parquet: a `word` column (strings) and a `vector` column
(a fixed-size list of float32 or float16; a plain list column is read too),
one row per word. The same layout as encode's sharded Parquet output, so a
table of vectors made elsewhere (Spark, pandas, Ray Data) converts directly."""
from __future__ import annotations

import io

import numpy as np

from vecpipe.core.errors import DataError
from vecpipe.core.vectors.wordvectors import WordVectors, describe_nonfinite

PARQUET_MAGIC = b"PAR1"


def read_parquet_vectors(fh, name, *, limit, unicode_errors, policy, stats):
    """(words, float32 rows); a row with a null word or vector, or NaN/Inf, goes
    through the bad-row policy, numbered from 1 as Parquet rows."""
    from vecpipe.core.encode.shards import pyarrow

    pa = pyarrow()
    try:
        table = pa.parquet.read_table(pa.BufferReader(fh.read()))
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"cannot read it as Parquet: {exc}", name) from None
    for column in ("word", "vector"):
        if column not in table.column_names:
            raise DataError(f'no "{column}" column (columns: {", ".join(table.column_names[:8])}); '
                            'word vectors in Parquet are a "word" and a "vector" column', name)
    if limit is not None:
        table = table.slice(0, limit)
    vec = table.column("vector").combine_chunks()
    if not (pa.types.is_fixed_size_list(vec.type) or pa.types.is_list(vec.type) or pa.types.is_large_list(vec.type)):
        raise DataError(f'the "vector" column holds {vec.type}, not lists of numbers', name)
    words = table.column("word").to_pylist()
    lengths = vec.value_lengths().to_numpy(zero_copy_only=False) if not pa.types.is_fixed_size_list(vec.type) \
        else np.full(len(vec), vec.type.list_size)
    valid = ~(vec.is_null().to_numpy(zero_copy_only=False))
    dim = int(lengths[valid][0]) if valid.any() else 0
    keep = []
    for i, (w, ok, n) in enumerate(zip(words, valid, lengths)):
        if not isinstance(w, str) or not w:
            policy("the word is null or empty", i + 1)
        elif not ok:
            policy(f"the vector of {w!r} is null", i + 1)
        elif n != dim:
            policy(f"expected {dim} values in the vector of {w!r}, found {n}", i + 1)
        else:
            keep.append(i)
    flat = vec.filter(pa.array(valid)).flatten().to_numpy(zero_copy_only=False)
    rows = np.empty((len(vec), dim), np.float64)
    if pa.types.is_fixed_size_list(vec.type) or (lengths[valid] == dim).all():
        rows[valid] = flat.reshape(-1, dim)
    else:
        starts = np.concatenate([[0], np.cumsum(lengths[valid])])
        for j, i in enumerate(np.flatnonzero(valid)):
            if lengths[i] == dim:
                rows[i] = flat[starts[j] : starts[j] + dim]
    good = []
    for i in keep:
        bad = describe_nonfinite(rows[i])
        if bad:
            policy(f"the vector of {words[i]!r} holds {bad}", i + 1)
        else:
            good.append(i)
    return [words[i] for i in good], rows[good].astype(np.float32)


def write_parquet_vectors(wv: WordVectors, out) -> None:
    """word + vector (fixed-size list of the vectors' float type) to a binary stream."""
    from vecpipe.core.encode.shards import pyarrow

    pa = pyarrow()
    x = np.asarray(wv.dense())
    if x.dtype not in (np.float16, np.float32):
        x = x.astype(np.float32)
    column = pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(x).reshape(-1)), x.shape[1])
    table = pa.table({"word": pa.array(wv.words, type=pa.string()), "vector": column})
    buf = io.BytesIO()
    pa.parquet.write_table(table, buf)
    out.write(buf.getvalue())
