"""`vecpipe convert`: read any word-vector format, optionally filter and
transform, write any other. The steps are plain functions on WordVectors."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace

import numpy as np

from vecpipe import __version__
from vecpipe.core.errors import DataError, UsageError
from vecpipe.core.vectors.readwrite import read_vectors, write_vectors
from vecpipe.core.vectors.vecdir import vecdir_replaceable
from vecpipe.core.vectors.wordvectors import canonical_format, nonfinite_rows, ReadStats, WordVectors
from vecpipe.core.search.topk import normalize_rows
from vecpipe.core.io.compression import strip_compression_suffix
from vecpipe.core.io.inputs import display_name, iter_lines, open_input
from vecpipe.core.io.outputs import check_output, is_special_output

log = logging.getLogger("vecpipe")

DTYPES = ("float32", "float16")


@dataclass
class ConvertOptions:
    src_format: str | None = None
    dst_format: str | None = None
    limit: int | None = None
    dtype: str | None = None
    normalize: bool = False
    vocab: str | None = None
    lower: bool = False
    svd: int | None = None  # sparse PPMI in, dense out: U S^svd_eig of the truncated SVD (train-w2v's --svd)
    svd_eig: float | None = None  # None: 0.5, as train-w2v
    on_error: str = "stop"
    unicode_errors: str = "strict"


def output_format_for(path, explicit: str | None, sparse: bool = False) -> str:
    """--to wins; else the output name decides; else word2vec text (for stdout,
    and for a device or FIFO such as /dev/null, where no folder can go).
    Sparse vectors written as text stay sparse (the CWV sparse text format)."""
    if explicit:
        return canonical_format(explicit)
    if path in (None, "-") or is_special_output(path):
        return "sparse" if sparse else "word2vec"
    if str(path).endswith(("/", os.sep)):  # `-o zhihu.vec/`: the slash says folder, whatever the name
        return "vecdir"
    name = strip_compression_suffix(str(path)).lower()
    for suffix, fmt in ((".bin", "word2vec-bin"), (".jsonl", "jsonl"), (".vec", "word2vec"), (".txt", "word2vec"),
                        (".parquet", "parquet")):
        if name.endswith(suffix):
            return "sparse" if sparse and fmt == "word2vec" else fmt
    if name.endswith((".npy", ".npz")):  # as a vecdir, a folder named x.npy that numpy.load cannot open
        raise UsageError(f"{path}: a .npy/.npz holds no words; name a vecdir folder (its vectors.npy is the matrix), "
                         "or pick a format with --to")
    return "vecdir"


def load_vocab_file(path) -> list[str]:
    """One word per line (extra columns, e.g. counts, are ignored)."""
    name = display_name(path)
    fh = open_input(path)
    try:
        return [line.lstrip("\ufeff").split()[0] for _, line in iter_lines(fh, name) if line.strip("\ufeff \t\r")]
    finally:
        fh.close()


def keep_vocab(wv: WordVectors, vocab: list[str]) -> WordVectors:
    """Keep the listed words that the vectors have, in the vectors' own order."""
    wanted = set(vocab)
    rows = [i for i, w in enumerate(wv.words) if w in wanted]
    missing = len(wanted) - len(rows)
    if missing > 0:
        log.info("%d words of the vocabulary file are not in the vectors", missing)
    return wv.take(rows)


def lowercase(wv: WordVectors) -> WordVectors:
    """Lowercase every word; where two words collide, the first row wins."""
    lowered = [w.lower() for w in wv.words]
    seen: dict[str, int] = {}
    for i, w in enumerate(lowered):
        seen.setdefault(w, i)
    rows = sorted(seen.values())
    if len(rows) < len(lowered):
        log.warning("--lower merged %d words into earlier ones (first row kept)", len(lowered) - len(rows))
    out = wv.take(rows)
    out.words = [lowered[i] for i in rows]
    return out


def l2_normalize(wv: WordVectors) -> WordVectors:
    """Unit-length rows (all-zero rows stay zero)."""
    if wv.is_sparse:
        from scipy import sparse

        x = sparse.csr_matrix(wv.vectors, dtype=np.float32)
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
        norms[norms == 0] = 1.0
        return replace(wv, vectors=sparse.diags(1.0 / norms).astype(np.float32) @ x)
    return replace(wv, vectors=normalize_rows(wv.vectors))


def svd_dense(wv: WordVectors, dim: int, eig: float, name: str) -> WordVectors:
    """Dense vectors from sparse PPMI ones (the Chinese-Word-Vectors ppmi files),
    exactly as train-w2v --model ppmi --svd makes them from a corpus."""
    from vecpipe.core.train.ppmi import svd_vectors

    if not wv.is_sparse:
        raise UsageError(f"--svd factorizes sparse (PPMI) vectors; {name} holds dense ones")
    vectors, _, _ = svd_vectors(wv.vectors, dim, eig, seed=0)
    return replace(wv, vectors=vectors)


def convert(src, dst, opts: ConvertOptions, stats: ReadStats | None = None) -> WordVectors:
    stats = stats if stats is not None else ReadStats()
    if opts.svd_eig is not None and opts.svd is None:
        raise UsageError("--svd-eig weighs the vectors --svd DIM makes; give --svd")
    if opts.dtype is not None and opts.dtype not in DTYPES:
        raise UsageError(f"--dtype must be one of {', '.join(DTYPES)}")
    dst_format = output_format_for(dst, opts.dst_format)  # a bad --to fails before the read
    if dst not in (None, "-"):  # before the reading: refuse now what the writing would refuse
        check_output(dst, folder=dst_format == "vecdir", replaceable=vecdir_replaceable)
    vocab = load_vocab_file(opts.vocab) if opts.vocab else None
    wv = read_vectors(
        src, opts.src_format, limit=opts.limit, unicode_errors=opts.unicode_errors, on_error=opts.on_error, stats=stats,
        verify=True,
    )
    if opts.svd is not None:
        wv = svd_dense(wv, opts.svd, 0.5 if opts.svd_eig is None else opts.svd_eig, display_name(src))
    dst_format = output_format_for(dst, opts.dst_format, sparse=wv.is_sparse)
    if opts.lower:
        wv = lowercase(wv)
    if vocab is not None:
        wv = keep_vocab(wv, vocab)
    if opts.normalize:
        wv = l2_normalize(wv)
    if opts.dtype:
        with np.errstate(over="ignore"):
            if wv.is_sparse:
                wv = replace(wv, vectors=wv.vectors.astype(opts.dtype))
            else:
                wv = replace(wv, vectors=np.asarray(wv.vectors).astype(opts.dtype, copy=False))
        overflow = nonfinite_rows(wv.vectors)
        if len(overflow):
            word = wv.words[int(overflow[0])]
            raise DataError(f"the vector of {word!r} has a value beyond {opts.dtype}'s range "
                            f"(±{float(np.finfo(opts.dtype).max):g}); keep float32", display_name(src))
    source = dict(wv.meta.get("source", {}))
    meta = {
        "normalized": bool(opts.normalize),
        "source": source,
        "made_by": {
            "tool": f"vecpipe {__version__}",
            "command": "convert",
            "options": {k: v for k, v in vars(opts).items() if v not in (None, False)},
        },
    }
    write_vectors(wv, dst, dst_format, meta=meta)
    return wv
