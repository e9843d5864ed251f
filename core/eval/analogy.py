"""eval analogy: word analogies (CA8, Google) answered with 3CosAdd and 3CosMul.

The headline follows the Chinese-Word-Vectors toolkit (questions with an
unknown a, b or c are skipped and lower the coverage; an unknown d counts as
wrong); gensim's evaluate_word_analogies (questions with any unknown word
skipped) is reported beside it, as `*_known`."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from vecpipe.core.errors import DataError, UsageError
from vecpipe.core.eval import metrics as M
from vecpipe.core.eval.common import word_lookup
from vecpipe.core.io.records import OnError
from vecpipe.core.io.inputs import display_name, iter_lines, open_input


@dataclass
class Analogies:
    """Questions of an analogy file: category index and the four words each."""

    categories: list[str] = field(default_factory=list)
    cat: list[int] = field(default_factory=list)
    words: list[tuple[str, str, str, str]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    bad_lines: int = 0


def read_analogies(path, *, on_error: str = "stop", unicode_errors: str = "strict") -> Analogies:
    """The word2vec / CA8 format: `: category` lines, then `a b c d` per line
    (spaces or tabs, LF or CRLF). A category named twice is one category.
    Questions before the first header go to a category named '-'."""
    name = display_name(path)
    bad = OnError(on_error)
    out = Analogies()
    index: dict[str, int] = {}
    current = None
    with open_input(path) as fh:
        for n, line in iter_lines(fh, name, unicode_errors=unicode_errors):
            text = line.strip()
            if not text:
                continue
            if text.startswith(":"):
                cname = text[1:].strip() or "-"
                current = index.setdefault(cname, len(index))
                if current == len(out.categories):
                    out.categories.append(cname)
                continue
            parts = text.split()
            if len(parts) != 4:
                bad(DataError(f"expected 4 words (a b c d) or a `: category` line, got {len(parts)} field(s)", name, n))
                continue
            if current is None:
                current = index.setdefault("-", len(index))
                if current == len(out.categories):
                    out.categories.append("-")
            out.cat.append(current)
            out.words.append(tuple(parts))
            out.lines.append(n)
    out.bad_lines = bad.count
    if not out.words:
        raise DataError("no analogy questions found", name)
    return out


def run_analogy(wv, path, *, methods=("add", "mul"), restrict: int | None = None, case_insensitive: bool = False,
                on_error: str = "stop", unicode_errors: str = "strict", query_block: int = 1024,
                index_block: int = 16384) -> dict:
    """Accuracy of 3CosAdd / 3CosMul per category and in total.

    Returns a dict with metrics, counts and categories (see make_result)."""
    from vecpipe.core.search.topk import analogy

    if wv.is_sparse:
        raise UsageError("analogy needs dense vectors; make dense ones from sparse PPMI first: "
                         "vecpipe convert PPMI --svd 300 -o dense.vecdir")
    if restrict is not None and restrict < 1:
        raise UsageError("--restrict-vocab must be >= 1")
    for m in methods:
        if m not in ("add", "mul"):
            raise UsageError("analogy method must be add (3CosAdd) or mul (3CosMul)")
    started = time.perf_counter()
    qs = read_analogies(path, on_error=on_error, unicode_errors=unicode_errors)
    n, row = word_lookup(wv, restrict, case_insensitive)
    ids = np.array([[row(w) for w in q] for q in qs.words], dtype=np.int64).reshape(-1, 4)
    cat = np.asarray(qs.cat, dtype=np.int64)
    seen = (ids[:, :3] >= 0).all(axis=1)  # a, b, c known: the question is asked
    known = seen & (ids[:, 3] >= 0)       # d known too: gensim asks only these
    sel = np.flatnonzero(seen)
    correct = {}
    for m in methods:
        ok = np.zeros(len(ids), dtype=bool)
        if len(sel):
            a, b, c, d = (ids[sel, j] for j in range(4))
            if case_insensitive:
                # gensim skips a prediction that is a case variant of a question word
                _, top = analogy(wv.vectors, a, b, c, k=5, method=m, restrict=n,
                                 query_block=query_block, index_block=index_block)
                pred = np.empty(len(sel), dtype=np.int64)
                for j, q in enumerate(sel):
                    ignore = {w.upper() for w in qs.words[q][:3]}
                    cands = [t for t in top[j] if t >= 0]
                    pick = next((t for t in cands if wv.words[t].upper() not in ignore), cands[-1] if cands else -1)
                    pred[j] = pick if pick < 0 else row(wv.words[pick])
            else:
                _, top = analogy(wv.vectors, a, b, c, k=1, method=m, restrict=n,
                                 query_block=query_block, index_block=index_block)
                pred = top[:, 0]
            ok[sel] = (pred == d) & (d >= 0)
        correct[m] = ok
    label = {"add": "3cosadd", "mul": "3cosmul"}

    def block(mask) -> dict:
        total, s, k = int(mask.sum()), int((mask & seen).sum()), int((mask & known).sum())
        out = {"questions": total, "seen": s, "known": k, "coverage": M.ratio(s, total)}
        for m in methods:
            c = int((mask & correct[m]).sum())
            out[label[m]] = M.ratio(c, s)
            out[f"{label[m]}_known"] = M.ratio(c, k)
            out[f"correct_{label[m]}"] = c
        return out

    categories = []
    for i, cname in enumerate(qs.categories):
        categories.append({"name": cname, **block(cat == i)})
    total = block(np.ones(len(ids), dtype=bool))
    metric_names = [label[m] for m in methods]
    metrics = {k: total[k] for k in metric_names}
    metrics["coverage"] = total["coverage"]
    metrics.update({f"{k}_known": total[f"{k}_known"] for k in metric_names})
    counts = {
        "questions": total["questions"], "seen": total["seen"], "known": total["known"],
        "skipped_oov": total["questions"] - total["seen"], "answer_oov": total["seen"] - total["known"],
        **{f"correct_{k}": total[f"correct_{k}"] for k in metric_names},
        "bad_lines": qs.bad_lines,
    }
    params = {"methods": list(methods), "restrict_vocab": restrict, "searched_rows": n, "case_insensitive": case_insensitive}
    return {"metrics": metrics, "headline": metric_names, "counts": counts, "params": params,
            "categories": categories, "seconds": time.perf_counter() - started}
