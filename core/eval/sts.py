"""eval sts: sentence pairs (STS-B, LCQMC, PAWS-X, BQ, SOHU) scored as text2vec
does (Spearman between the gold label and the cosine)."""
from __future__ import annotations

import time

import numpy as np

from vecpipe.core.errors import DataError, UsageError
from vecpipe.core.eval import metrics as M
from vecpipe.core.eval.common import encode_all, is_jsonl, number
from vecpipe.core.io import pairs as P
from vecpipe.core.io.records import OnError
from vecpipe.core.io.inputs import display_name, open_input, read_numbered_records


def read_sentence_pairs(path, *, fields=("sentence1", "sentence2", "label"), columns=None, on_error: str = "stop",
                        unicode_errors: str = "strict"):
    """Sentence pairs with a numeric label, as each benchmark publishes them:
    TSV `s1<TAB>s2<TAB>label` (STS-B, LCQMC, ATEC), TSV or CSV whose header
    names the columns (PAWS-X's `id sentence1 sentence2 label`, BQ's CSV with
    quoted fields), or JSONL records with sentence1/sentence2/label (SOHU).
    `columns`: three column numbers (from 1) or header names, for the other
    layouts (see core.pairs). Returns (s1 list, s2 list, labels array, bad
    line count)."""
    name = display_name(path)
    bad = OnError(on_error)
    s1, s2, labels = [], [], []
    f1, f2, fl = fields
    if is_jsonl(path):
        if columns is not None:
            raise UsageError("--columns is for tables (TSV, CSV); JSONL records name their --fields")
        with open_input(path) as fh:
            for n, rec in read_numbered_records(fh, name, unicode_errors=unicode_errors, on_bad=bad):
                a, b = rec.get(f1), rec.get(f2)
                lab = rec.get(fl, rec.get("score") if fl == "label" else None)
                if not isinstance(a, str) or not isinstance(b, str):
                    bad(DataError(f'"{f1}" and "{f2}" must be strings', name, n))
                    continue
                if not a.strip() or not b.strip():
                    bad(DataError("empty sentence", name, n))
                    continue
                value = lab if isinstance(lab, (int, float)) and not isinstance(lab, bool) else \
                    number(lab) if isinstance(lab, str) else None
                if value is None:
                    bad(DataError(f'"{fl}" is missing or not a number', name, n))
                    continue
                s1.append(a)
                s2.append(b)
                labels.append(float(value))
    else:
        for n, (a, b, lab) in _pair_table(path, fields, columns, name, bad, unicode_errors):
            if not a.strip() or not b.strip():  # a broken line, not a pair to score 0
                bad(DataError("empty sentence", name, n))
                continue
            value = number(lab.strip())
            if value is None:
                bad(DataError(f"label is not a number: {lab!r}", name, n))
                continue
            s1.append(a)
            s2.append(b)
            labels.append(value)
    if not s1:
        raise DataError("no sentence pairs found", name)
    return s1, s2, np.asarray(labels, dtype=np.float64), bad.count


def _pair_table(path, fields, columns, name, bad, unicode_errors):
    """(line, (s1, s2, label)) of a TSV or CSV table of sentence pairs."""
    roles = [P.Role(fields[0], P.FIRST_NAMES), P.Role(fields[1], P.SECOND_NAMES), P.Role(fields[2], P.LABEL_NAMES)]
    as_csv = P.is_csv(path)
    fh = open_input(path)
    try:
        rows = P.iter_rows(fh, name, csv_dialect=as_csv, unicode_errors=unicode_errors)
        yield from P.table(rows, roles, P.parse_columns(columns, 3), name, bad, numeric=fields[2],
                           sep="comma" if as_csv else "tab")
    finally:
        fh.close()


def run_sts(encoder, path, *, prompt: str | None = None, fields=("sentence1", "sentence2", "label"), columns=None,
            on_error: str = "stop", unicode_errors: str = "strict") -> dict:
    """Spearman (and Pearson) between the gold label and cos(e1, e2), as text2vec
    (Spearman over cosines rounded to M.SCORE_DECIMALS, so exact ties stay ties)."""
    started = time.perf_counter()
    s1, s2, labels, bad_lines = read_sentence_pairs(path, fields=fields, columns=columns, on_error=on_error,
                                                    unicode_errors=unicode_errors)
    counters: dict = {}
    x, rows = encode_all(encoder, s1 + s2, prompt=prompt, normalize=True, desc="sentences", counters=counters)
    e1, e2 = x[rows[: len(s1)]], x[rows[len(s1) :]]
    cos = (e1 * e2).sum(axis=1).astype(np.float64)
    metrics = {"spearman": M.spearman(labels, M.tied(cos)), "pearson": M.pearson(labels, cos)}
    counts = {"pairs": len(s1), "sentences": int(x.shape[0]), "bad_lines": bad_lines}
    if "empty_texts" in counters:
        counts["no_known_word"] = int(counters["empty_texts"])
    params = {"prompt": prompt, "columns": columns, "rank_decimals": M.SCORE_DECIMALS}
    return {"metrics": metrics, "headline": ["spearman"], "counts": counts, "params": params,
            "seconds": time.perf_counter() - started}
