"""`vecpipe sim`: a score per pair of texts, words or vectors; all-pairs
matrices; the distribution of scores (to choose a threshold)."""
from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field

import numpy as np

from vecpipe.core.io import pairs as P
from vecpipe.core.errors import DataError, UsageError
from vecpipe.core.search.topk import normalize_rows
from vecpipe.core.io.inputs import display_name, looks_like_jsonl, open_input, read_numbered_records

log = logging.getLogger("vecpipe")


def pair_scores(x: np.ndarray, y: np.ndarray, metric: str = "cosine") -> np.ndarray:
    """Row-wise scores of two aligned arrays."""
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.float32)
    if x.shape != y.shape:
        raise UsageError(f"left and right vectors differ in shape: {x.shape} vs {y.shape}")
    if metric == "dot":
        return np.einsum("ij,ij->i", x, y)
    if metric == "euclidean":
        return -np.linalg.norm(x - y, axis=1)
    if metric != "cosine":
        raise UsageError("--metric must be cosine, dot or euclidean")
    denom = np.sqrt(np.einsum("ij,ij->i", x, x) * np.einsum("ij,ij->i", y, y))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, np.einsum("ij,ij->i", x, y) / np.where(denom > 0, denom, 1), np.nan).astype(np.float32)


def matrix_scores(x: np.ndarray, metric: str = "cosine") -> np.ndarray:
    x = normalize_rows(x) if metric == "cosine" else np.asarray(x, dtype=np.float32)
    try:
        if metric == "euclidean":
            sq = (x * x).sum(1)
            return -np.sqrt(np.maximum(sq[:, None] - 2 * x @ x.T + sq[None, :], 0))
        return x @ x.T
    except MemoryError:  # the size is the request, not a bug: say it (a million lines would need terabytes)
        n = len(x)
        raise UsageError(f"--matrix of {n:,} texts is {n:,} x {n:,} scores ({n * n * 4 / 2**30:,.1f} GiB), more than "
                         "this machine can hold; for each text's nearest ones use vecpipe knn --index") from None


@dataclass
class SimStats:
    pairs: int = 0
    missing: int = 0
    reasons: dict = field(default_factory=dict)


def read_pairs(src, fields: tuple[str, str], columns: str | None = None):
    """(line, record, left text, right text) from JSONL (two fields) or a
    table (TSV, or CSV for `*.csv`; see core.pairs): `text1<TAB>text2` lines,
    optionally with a numeric label third; a header line naming the columns
    (`fields`, or text1/sentence1/... and text2/sentence2/...), whose names
    key the records; or `columns` (two numbers from 1, or header names).
    Any other layout is refused: the wrong columns are never scored."""
    name = display_name(src)
    fh = open_input(src)
    try:
        if looks_like_jsonl(fh):
            if columns is not None:
                raise UsageError("--columns is for tables (TSV, CSV); JSONL records name their --fields")
            for n, rec in read_numbered_records(fh, name, text_field="\0line"):
                a, b = rec.get(fields[0]), rec.get(fields[1])
                if not isinstance(a, str) or not isinstance(b, str):
                    raise DataError(f'expected text fields "{fields[0]}" and "{fields[1]}"', name, n)
                yield n, rec, a, b
            return
        yield from _table_pairs(fh, src, name, fields, columns)
    finally:
        fh.close()


def _table_pairs(fh, src, name, fields, columns):
    as_csv = P.is_csv(src)
    sep = "comma" if as_csv else "tab"
    rows = P.iter_rows(fh, name, csv_dialect=as_csv)
    head = next(rows, None)
    if head is None:
        return
    n, first = head
    roles = [P.Role(fields[0], P.FIRST_NAMES), P.Role(fields[1], P.SECOND_NAMES)]
    wanted = P.parse_columns(columns, 2)
    if wanted is not None or P.find_roles(first, roles) is not None:
        layout = P.plan(first, roles, wanted, name, n, sep=sep)
    elif len(first) == 2 or (len(first) == 3 and P.is_number(first[2])):
        layout = P.Layout(None, [0, 1], len(first))  # text1, text2 (and a label: LCQMC, STS-B)
    elif len(first) == 3 and P.Role("label", P.LABEL_NAMES).matches(first[2]):
        layout = P.Layout([c.strip() for c in first], [0, 1], 3)
    else:
        raise DataError(f"{len(first)} {sep}-separated fields and no header line naming the two texts; sim reads "
                        f"text1<TAB>text2 lines (a numeric label may follow): name the columns in a header line "
                        f"({fields[0]}, {fields[1]}) or choose them with --columns (e.g. --columns 2,3)", name, n)
    idx = layout.index
    keys = layout.header or [fields[idx.index(i)] if i in idx else "label" if wanted is None else f"col{i + 1}"
                             for i in range(layout.width)]

    def stop(err):
        raise err

    for m, cols in P.data_rows(layout, head, rows, name, stop, sep=sep):
        yield m, dict(zip(keys, cols)), cols[idx[0]], cols[idx[1]]


def read_side(path, option: str) -> np.ndarray:
    """All rows of the npy stream (or .npy file) given to --left or --right."""
    from vecpipe.core.io.npy import read_npy_stream

    name = display_name(path)
    fh = open_input(path)
    try:
        blocks = list(read_npy_stream(fh, name))
    finally:
        fh.close()
    if not blocks:
        raise DataError(f"{option}: no vectors (an empty stream; expected .npy arrays)", name)
    return np.concatenate(blocks)


def read_texts(src, text_field: str) -> tuple[list[dict], list[str]]:
    """The records and texts of --matrix: plain lines, or JSONL whose every
    record has a string `text_field`."""
    name = display_name(src)
    records, texts = [], []
    fh = open_input(src)
    try:
        for n, rec in read_numbered_records(fh, name, text_field=text_field):
            text = rec.get(text_field)
            if not isinstance(text, str):
                what = "missing" if text is None else f"not a string ({type(text).__name__})"
                raise DataError(f'field "{text_field}" is {what}', name, n)
            records.append(rec)
            texts.append(text)
    finally:
        fh.close()
    return records, texts


def side_vectors(encoder, texts: list[str], stats: SimStats, opts=None):
    """Vectors for texts; for word vectors, a text that is a word of the
    vocabulary is looked up (not averaged), and a text with no known word
    gives None with a reason."""
    from vecpipe.core.encode.pipeline import EncodeOptions, encode_texts

    opts = opts or EncodeOptions()
    wv = encoder.word_vectors
    if wv is None:
        return encode_texts(encoder, texts, opts), [None] * len(texts)
    reasons: list[str | None] = [None] * len(texts)
    get = wv.index.get
    rows = np.fromiter(map(get, texts, itertools.repeat(-1)), dtype=np.int64, count=len(texts))
    found = rows >= 0
    if found.all():
        return np.asarray(wv.vectors[rows], dtype=np.float32), reasons
    x = np.zeros((len(texts), encoder.dim), dtype=np.float32)
    if found.any():
        x[found] = wv.vectors[rows[found]]
    rows = [None if r < 0 else r for r in rows.tolist()]
    rest = [i for i, r in enumerate(rows) if r is None]
    if rest:
        enc, counters = encoder.encode_batch([texts[i] for i in rest])
        x[rest] = enc
        if counters.get("empty_texts"):
            for i, row in zip(rest, enc):
                if not row.any():
                    reasons[i] = f"no word of {texts[i]!r} is in the vocabulary"
    return x, reasons


def score_pairs(encoder, lefts: list[str], rights: list[str], metric: str, stats: SimStats, opts=None):
    """Scores (None where a side has no vector) and reasons, in order."""
    if encoder.word_vectors is None:
        # encode each distinct text once
        uniq = list(dict.fromkeys(lefts + rights))
        vecs, _ = side_vectors(encoder, uniq, stats, opts)
        pos = {t: i for i, t in enumerate(uniq)}
        x = vecs[[pos[t] for t in lefts]]
        y = vecs[[pos[t] for t in rights]]
        reasons = [None] * len(lefts)
    else:
        x, ra = side_vectors(encoder, lefts, stats, opts)
        y, rb = side_vectors(encoder, rights, stats, opts)
        reasons = [a or b for a, b in zip(ra, rb)]
    scores = pair_scores(x, y, metric)
    out = []
    for s, r in zip(scores, reasons):
        stats.pairs += 1
        if r is not None:
            stats.missing += 1
            out.append(None)
        else:
            out.append(s)
    return out, reasons


def distribution(scores) -> dict:
    """Quantiles and a 20-bin histogram of the scores (None/NaN left out)."""
    s = np.asarray([v for v in scores if v is not None and np.isfinite(v)], dtype=np.float64)
    if not len(s):
        return {"count": 0}
    qs = [0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0]
    counts, edges = np.histogram(s, bins=20)
    return {
        "count": int(len(s)),
        "mean": float(s.mean()),
        "std": float(s.std()),
        "quantiles": {f"{q:g}": float(np.quantile(s, q)) for q in qs},
        "histogram": {"edges": edges.tolist(), "counts": counts.tolist()},
    }


def plot_distribution(scores, path, title: str = "") -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        from vecpipe.core.errors import UnavailableError

        raise UnavailableError("--plot needs matplotlib: pip install matplotlib") from None
    from vecpipe.core.io.outputs import atomic_path

    s = [v for v in scores if v is not None and np.isfinite(v)]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(s, bins=40)
    ax.set_xlabel("score")
    ax.set_ylabel("pairs")
    ax.set_title(title or f"{len(s)} pairs")
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp)
    plt.close(fig)
