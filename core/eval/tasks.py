"""The evaluation tasks of `vecpipe eval`: dataset readers, runners and results.

Each runner takes a loaded model (WordVectors for analogy, an encoder for the
others) and dataset paths, and returns a result dict that the CLI writes as
JSON: task, model, dataset (name, paths, sha256), metrics, headline metric
names, counts, parameters, vecpipe version, seconds. `summary_table` turns a
result into the human table, `report_table` many results into one table.

Conventions follow the reference tools, named at each task:
- analogy: the Chinese-Word-Vectors toolkit (questions with an unknown a, b or
  c are skipped and lower the coverage; an unknown d counts as wrong) as the
  headline, and gensim's evaluate_word_analogies (questions with any unknown
  word skipped) beside it, as `*_known`;
- similarity: gensim's evaluate_word_pairs (Spearman and Pearson over the
  pairs whose two words are known);
- sts: text2vec (Spearman between the gold label and the cosine);
- retrieval: BEIR / trec_eval (see core.metrics);
- classify: MTEB's classification (logistic regression on embeddings).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson

from vecpipe.core.eval import metrics as M
from vecpipe.core.io import pairs as P
from vecpipe.core.errors import DataError, NoInputError, UnavailableError, UsageError
from vecpipe.core.io.progress import progress
from vecpipe.core.io.inputs import display_name, iter_lines, open_input, read_numbered_records

log = logging.getLogger("vecpipe")

TASKS = ("analogy", "similarity", "sts", "retrieval", "classify")


# ---------------------------------------------------------------- shared helpers


class _Bad:
    """--on-error stop|skip for dataset lines: raise, or warn (first 5) and count."""

    def __init__(self, on_error: str = "stop"):
        if on_error not in ("stop", "skip"):
            raise UsageError(f"--on-error must be stop or skip, not {on_error!r}")
        self.skip = on_error == "skip"
        self.count = 0

    def __call__(self, err: DataError) -> None:
        if not self.skip:
            raise err
        self.count += 1
        if self.count <= 5:
            log.warning("skipped: %s", err)


def _lines(path, unicode_errors: str = "strict"):
    """(line number, text) of a dataset file (compressed or not, LF or CRLF, a
    UTF-8 byte-order mark dropped)."""
    fh = open_input(path)
    try:
        for n, line in iter_lines(fh, display_name(path), unicode_errors=unicode_errors):
            if n == 1 and line.startswith("\ufeff"):
                line = line[1:]
            yield n, line
    finally:
        fh.close()


def _is_jsonl(path) -> bool:
    fh = open_input(path)
    try:
        head = fh.peek(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
        return head[:1] == b"{"
    finally:
        fh.close()


def _records(path, text_field: str = "text", unicode_errors: str = "strict", on_bad=None):
    fh = open_input(path)
    try:
        yield from read_numbered_records(fh, display_name(path), text_field=text_field,
                                         unicode_errors=unicode_errors, on_bad=on_bad)
    finally:
        fh.close()


def _number(text: str):
    try:
        v = float(text)
    except ValueError:
        return None
    return v if np.isfinite(v) else None


def _read_json(path):
    """The JSON document of a file (compressed or not)."""
    fh = open_input(path)
    try:
        raw = fh.read()
    finally:
        fh.close()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DataError(f"not JSON: {exc}", display_name(path)) from None


def resolve_dataset(arg) -> Path:
    """A dataset argument: an existing path, else a catalog dataset name that
    `vecpipe fetch` has put in the cache."""
    p = Path(str(arg)).expanduser()
    if p.exists():
        return p
    try:
        from vecpipe.core.fetch import catalog
    except ImportError:  # pragma: no cover - catalog not built
        catalog = None
    entry = catalog.find(str(arg)) if catalog is not None else None
    if entry is None or entry.kind != "dataset":
        raise NoInputError(f"{arg}: no such file")
    local = catalog.resolve_local(entry.name)
    if local is None:
        raise UnavailableError(catalog.missing_message(entry.name))
    return Path(local)


def file_info(path) -> dict:
    """path (as given), size and sha256 of a dataset file."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
            size += len(chunk)
    return {"path": str(path), "bytes": size, "sha256": h.hexdigest()}


def dataset_name(paths) -> str:
    """A short name for the result tables: 'CA8/morphological' for
    .../CA8/morphological.txt; the folder for a folder."""
    p = Path(str(paths[0]))
    if len(paths) > 1:
        import os

        common = Path(os.path.commonpath([str(Path(str(q)).resolve().parent) for q in paths]))
        if common.name:
            return common.name
        return "+".join(Path(str(q)).stem for q in paths)
    if p.is_dir():
        return p.resolve().name
    stem = p.name
    for suffix in (".bz2", ".gz", ".xz", ".zip"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    stem = stem.rsplit(".", 1)[0] if "." in stem and not stem.endswith(".") else stem
    parent = p.resolve().parent.name
    return f"{parent}/{stem}" if parent else stem


def make_result(task: str, *, model: dict, paths, metrics: dict, headline: list[str], counts: dict,
                params: dict | None = None, seconds: float = 0.0, name: str | None = None, **extra) -> dict:
    from vecpipe import __version__

    files = []
    for p in paths:
        p = Path(str(p))
        if p.is_file():
            files.append(file_info(p))
    result = {
        "task": task,
        "model": model,
        "dataset": {"name": name or dataset_name(paths), "files": files},
        "metrics": metrics,
        "headline": headline,
        "counts": counts,
        "params": params or {},
    }
    result.update(extra)
    result.update({
        "vecpipe": __version__,
        "seconds": round(seconds, 3),
        "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
    })
    return result


def load_word_vectors(spec):
    """The WordVectors of a static model spec (no tokenizer is built), or None
    when the spec names a transformer."""
    from vecpipe.core.models.static import read_word_vectors

    return read_word_vectors(spec)


def model_info(spec, encoder=None, wv=None) -> dict:
    info = {"spec": str(spec)}
    if wv is not None:
        info.update(kind="static", dim=int(wv.dim), vocab=len(wv))
    elif encoder is not None:
        info.update({k: v for k, v in encoder.describe().items() if k != "name"})
    return info


def dumps_result(result: dict) -> bytes:
    return orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY)


def encode_all(encoder, texts: list[str], *, prompt: str | None = None, normalize: bool = True,
               window: int = 4096, desc: str | None = None, counters: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Encode each distinct text once: (vectors of the distinct texts, the row
    of each input text); the encoder's counters are added to `counters`."""
    from vecpipe.core.encode.pipeline import EncodeOptions, encode_texts

    pos: dict[str, int] = {}
    rows = np.fromiter((pos.setdefault(t, len(pos)) for t in texts), dtype=np.int64, count=len(texts))
    uniq = list(pos)
    opts = EncodeOptions(prompt=prompt, normalize=normalize)
    budget = encoder.default_budget()
    out = np.empty((len(uniq), encoder.dim), dtype=np.float32)
    bar = progress(total=len(uniq), desc=desc, unit="text", leave=False)
    for s in range(0, len(uniq), window):
        chunk = uniq[s : s + window]
        out[s : s + len(chunk)] = encode_texts(encoder, chunk, opts, budget, counters)
        bar.update(len(chunk))
    bar.close()
    return out, rows


# ---------------------------------------------------------------- analogy


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
    bad = _Bad(on_error)
    out = Analogies()
    index: dict[str, int] = {}
    current = None
    for n, line in _lines(path, unicode_errors):
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


def _lookup(wv, restrict: int | None, case_insensitive: bool):
    """(rows searched, word -> row or -1) with gensim's restrict_vocab and
    case_insensitive rules (the first of several case variants wins)."""
    n = len(wv) if restrict is None else min(int(restrict), len(wv))
    if case_insensitive:
        table: dict[str, int] = {}
        for i, w in enumerate(wv.words[:n]):
            table.setdefault(w.upper(), i)
        return n, lambda w: table.get(w.upper(), -1)
    index = wv.index

    def row(w):
        r = index.get(w)
        return r if r is not None and r < n else -1

    return n, row


def run_analogy(wv, path, *, methods=("add", "mul"), restrict: int | None = None, case_insensitive: bool = False,
                on_error: str = "stop", unicode_errors: str = "strict", query_block: int = 1024,
                index_block: int = 16384) -> dict:
    """Accuracy of 3CosAdd / 3CosMul per category and in total.

    Returns a dict with metrics, counts and categories (see make_result)."""
    from vecpipe.core.search.topk import analogy

    if wv.is_sparse:
        raise UsageError("analogy needs dense vectors; make dense ones from sparse PPMI first "
                         "(train-w2v --model ppmi --svd DIM)")
    if restrict is not None and restrict < 1:
        raise UsageError("--restrict-vocab must be >= 1")
    for m in methods:
        if m not in ("add", "mul"):
            raise UsageError("analogy method must be add (3CosAdd) or mul (3CosMul)")
    started = time.perf_counter()
    qs = read_analogies(path, on_error=on_error, unicode_errors=unicode_errors)
    n, row = _lookup(wv, restrict, case_insensitive)
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


# ---------------------------------------------------------------- word similarity


def read_word_pairs(path, *, score_column: int | None = None, on_error: str = "stop", unicode_errors: str = "strict"):
    """`w1 w2 score` lines (tab-separated, or whitespace when the line has no
    tab); `#` comments and blank lines skipped, a header line tolerated. Lines
    may carry more numbers after the two words (COS960: the mean, then each
    annotator's rating): the score is `score_column` (counted from 1; default
    3, the first after the words, which stderr says when there are more).
    Returns (pairs, bad line count)."""
    name = display_name(path)
    bad = _Bad(on_error)
    if score_column is not None and score_column < 3:
        raise UsageError("--score-column counts from 1 and columns 1 and 2 are the words: give 3 or more")
    col = (score_column or 3) - 1
    pairs = []
    width = width_line = None  # the field count of the first pair (and its line): every line has as many
    first = True
    for n, line in _lines(path, unicode_errors):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = [p.strip() for p in line.split("\t")] if "\t" in line else line.split()
        parts = [p for p in parts if p != ""]
        if len(parts) <= col or (width is not None and len(parts) != width) or (width is None and len(parts) < 3):
            first = False
            want = f"{width} fields, as line {width_line}" if width is not None else \
                f"at least {max(3, col + 1)} fields (word1 word2 score{' ...' if col > 2 else ''})"
            bad(DataError(f"expected {want}, got {len(parts)}", name, n))
            continue
        score = _number(parts[col])
        if score is None:
            if not first:
                bad(DataError(f"not a number: {parts[col]!r}" + (f" (column {col + 1})" if col != 2 else ""), name, n))
            first = False
            continue
        first = False
        if width is None:
            width, width_line = len(parts), n
            if width > 3 and score_column is None:
                log.warning("%s: lines have %d fields; the score is column 3, the first after the two words "
                            "(choose another with --score-column N)", name, width)
        pairs.append((parts[0], parts[1], score))
    if not pairs:
        raise DataError("no word pairs found", name)
    return pairs, bad.count


def run_similarity(path, *, wv=None, encoder=None, restrict: int | None = None, case_insensitive: bool = False,
                   zero_unknown: bool = False, score_column: int | None = None, on_error: str = "stop",
                   unicode_errors: str = "strict") -> dict:
    """Spearman and Pearson between gold scores and cosine similarities.

    With word vectors (wv): pairs with an unknown word are skipped and counted
    (or scored 0 with zero_unknown, gensim's dummy4unknown). With an encoder
    (a transformer), each word is encoded as a text."""
    started = time.perf_counter()
    pairs, bad_lines = read_word_pairs(path, score_column=score_column, on_error=on_error, unicode_errors=unicode_errors)
    gold, model = [], []
    oov = 0
    if wv is not None:
        if restrict is not None and restrict < 1:
            raise UsageError("--restrict-vocab must be >= 1")
        _, row = _lookup(wv, restrict, case_insensitive)
        rows = np.array([[row(a), row(b)] for a, b, _ in pairs], dtype=np.int64)
        ok = (rows >= 0).all(axis=1)
        oov = int((~ok).sum())
        sims = np.zeros(len(pairs), dtype=np.float64)
        if ok.any():
            va = np.asarray(wv.vectors[rows[ok, 0]], dtype=np.float64)
            vb = np.asarray(wv.vectors[rows[ok, 1]], dtype=np.float64)
            na, nb = np.linalg.norm(va, axis=1), np.linalg.norm(vb, axis=1)
            sims[ok] = (va * vb).sum(axis=1) / np.where(na * nb == 0, 1, na * nb)
        keep = np.ones(len(pairs), dtype=bool) if zero_unknown else ok
        gold = [p[2] for p, k in zip(pairs, keep) if k]
        model = sims[keep]
    else:
        x, r = encode_all(encoder, [w for a, b, _ in pairs for w in (a, b)], normalize=True, desc="words")
        v = x[r].reshape(len(pairs), 2, -1)
        model = (v[:, 0] * v[:, 1]).sum(axis=1).astype(np.float64)
        gold = [p[2] for p in pairs]
    if len(gold) < 2:
        raise DataError(f"only {len(gold)} pair(s) with known words: nothing to correlate", display_name(path))
    metrics = {"spearman": M.spearman(gold, M.tied(model)), "pearson": M.pearson(gold, model),
               "oov_ratio": M.ratio(oov, len(pairs))}
    counts = {"pairs": len(pairs), "used": len(gold), "oov": oov, "bad_lines": bad_lines}
    params = {"restrict_vocab": restrict, "case_insensitive": case_insensitive, "zero_unknown": zero_unknown,
              "score_column": score_column or 3, "rank_decimals": M.SCORE_DECIMALS}
    return {"metrics": metrics, "headline": ["spearman"], "counts": counts, "params": params,
            "seconds": time.perf_counter() - started}


# ---------------------------------------------------------------- sentence pairs (STS)


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
    bad = _Bad(on_error)
    s1, s2, labels = [], [], []
    f1, f2, fl = fields
    if _is_jsonl(path):
        if columns is not None:
            raise UsageError("--columns is for tables (TSV, CSV); JSONL records name their --fields")
        for n, rec in _records(path, unicode_errors=unicode_errors, on_bad=bad):
            a, b = rec.get(f1), rec.get(f2)
            lab = rec.get(fl, rec.get("score") if fl == "label" else None)
            if not isinstance(a, str) or not isinstance(b, str):
                bad(DataError(f'"{f1}" and "{f2}" must be strings', name, n))
                continue
            value = lab if isinstance(lab, (int, float)) and not isinstance(lab, bool) else \
                _number(lab) if isinstance(lab, str) else None
            if value is None:
                bad(DataError(f'"{fl}" is missing or not a number', name, n))
                continue
            s1.append(a)
            s2.append(b)
            labels.append(float(value))
    else:
        for n, (a, b, lab) in _pair_table(path, fields, columns, name, bad, unicode_errors):
            value = _number(lab.strip())
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


# ---------------------------------------------------------------- retrieval

_ID_HEADERS = {"id", "_id", "qid", "query-id", "query_id", "queryid", "corpus-id", "corpus_id", "docid", "doc_id",
               "doc-id", "pid"}


def read_texts_by_id(path, *, on_error: str = "stop", unicode_errors: str = "strict") -> dict[str, str]:
    """Queries or corpus: `id<TAB>text` (or `id<TAB>title<TAB>text`) lines, a
    header line tolerated, or BEIR JSONL ({"_id" or "id", "text", "title"}).
    A title is joined to its text with a space, as BEIR does."""
    name = display_name(path)
    bad = _Bad(on_error)
    out: dict[str, str] = {}
    where: dict[str, int] = {}

    def add(n, key, title, text):
        if key in out:
            bad(DataError(f"duplicate id {key!r} (first on line {where[key]})", name, n))
            return
        out[key] = f"{title} {text}".strip() if title else text
        where[key] = n

    if _is_jsonl(path):
        for n, rec in _records(path, unicode_errors=unicode_errors, on_bad=bad):
            key = rec.get("_id", rec.get("id"))
            text = rec.get("text")
            title = rec.get("title")
            if key is None or not isinstance(text, str):
                bad(DataError('expected "_id" (or "id") and a string "text"', name, n))
                continue
            add(n, str(key), title if isinstance(title, str) else None, text)
    else:
        first = True
        for n, line in _lines(path, unicode_errors):
            if not line.strip():
                continue
            parts = line.split("\t")
            if first and parts[0].strip().lower() in _ID_HEADERS:
                first = False
                continue
            first = False
            if len(parts) == 2:
                add(n, parts[0].strip(), None, parts[1])
            elif len(parts) == 3:
                add(n, parts[0].strip(), parts[1], parts[2])
            else:
                bad(DataError(f"expected id<TAB>text (or id<TAB>title<TAB>text), got {len(parts)} field(s)", name, n))
    if not out:
        raise DataError("no records found", name)
    return out


def read_qrels(path, *, on_error: str = "stop", unicode_errors: str = "strict") -> tuple[dict, int]:
    """Relevance judgments: `query-id<TAB>corpus-id<TAB>score` (BEIR, header
    tolerated), TREC `qid iter docid rel`, or JSONL {query-id, corpus-id, score}.
    Returns ({query: {doc: relevance}}, number of judgments)."""
    name = display_name(path)
    bad = _Bad(on_error)
    qrels: dict[str, dict[str, float]] = {}
    count = 0

    def add(q, d, r):
        nonlocal count
        qrels.setdefault(q, {})[d] = r
        count += 1

    if _is_jsonl(path):
        for n, rec in _records(path, unicode_errors=unicode_errors, on_bad=bad):
            q = next((rec[k] for k in ("query-id", "query_id", "qid") if k in rec), None)
            d = next((rec[k] for k in ("corpus-id", "corpus_id", "docid", "doc_id") if k in rec), None)
            r = next((rec[k] for k in ("score", "relevance", "rel", "label") if k in rec), 1)
            if q is None or d is None or not isinstance(r, (int, float)) or isinstance(r, bool):
                bad(DataError('expected "query-id", "corpus-id" and a numeric "score"', name, n))
                continue
            add(str(q), str(d), float(r))
    else:
        first = True
        for n, line in _lines(path, unicode_errors):
            if not line.strip():
                continue
            parts = line.split("\t") if "\t" in line else line.split()
            parts = [p.strip() for p in parts]
            if len(parts) == 3:
                q, d, r = parts
            elif len(parts) == 4:
                q, _, d, r = parts
            else:
                first = False
                bad(DataError(f"expected query-id<TAB>corpus-id<TAB>score (or TREC: qid 0 docid rel), got {len(parts)} fields",
                              name, n))
                continue
            value = _number(r)
            if value is None:
                if first:
                    first = False
                    continue
                bad(DataError(f"relevance is not a number: {r!r}", name, n))
                continue
            first = False
            add(q, d, value)
    if not qrels:
        raise DataError("no relevance judgments found", name)
    return qrels, count


_BEIR_NAMES = {
    "queries": ("queries.jsonl", "queries.tsv", "queries.txt"),
    "corpus": ("corpus.jsonl", "corpus.tsv", "corpus.txt", "collection.tsv"),
}


def find_retrieval_files(folder, split: str = "test") -> dict[str, Path]:
    """queries, corpus and qrels in a folder (BEIR layout: corpus.jsonl,
    queries.jsonl, qrels/SPLIT.tsv; or flat: queries.tsv, corpus.tsv, qrels.tsv)."""
    folder = Path(folder)
    found = {}
    for role, names in _BEIR_NAMES.items():
        found[role] = next((folder / n for n in names if (folder / n).is_file()), None)
    qrels_names = [f"qrels/{split}.tsv", f"qrels/{split}.jsonl", "qrels.tsv", "qrels.jsonl", "qrels.txt", f"qrels.{split}.tsv"]
    found["qrels"] = next((folder / n for n in qrels_names if (folder / n).is_file()), None)
    missing = [k for k, v in found.items() if v is None]
    if missing:
        raise NoInputError(f"{folder}: no {', '.join(missing)} file found (expected corpus.jsonl|tsv, "
                           f"queries.jsonl|tsv, qrels/{split}.tsv or qrels.tsv)")
    return found


RETRIEVAL_CUTOFFS = {"ndcg_at": (10,), "mrr_at": (10,), "recall_at": (1, 10, 100)}


def run_retrieval(encoder, queries_path, corpus_path, qrels_path, *, query_prompt: str | None = None,
                  corpus_prompt: str | None = None, depth: int = 100, ignore_identical_ids: bool = True,
                  on_error: str = "stop", unicode_errors: str = "strict") -> dict:
    """Encode the corpus and the judged queries, rank by cosine (core.search.topk),
    score the ranking with nDCG@10, MRR@10, MAP and Recall@1/10/100."""
    if depth < 1:
        raise UsageError("--depth must be >= 1")
    started = time.perf_counter()
    queries = read_texts_by_id(queries_path, on_error=on_error, unicode_errors=unicode_errors)
    corpus = read_texts_by_id(corpus_path, on_error=on_error, unicode_errors=unicode_errors)
    qrels, judgments = read_qrels(qrels_path, on_error=on_error, unicode_errors=unicode_errors)
    result = _score_retrieval(encoder, queries, corpus, qrels, judgments, query_prompt=query_prompt,
                              corpus_prompt=corpus_prompt, depth=depth, ignore_identical_ids=ignore_identical_ids,
                              queries_name=display_name(queries_path), qrels_name=display_name(qrels_path))
    result["seconds"] = time.perf_counter() - started
    return result


def read_squad(path, *, on_error: str = "stop") -> tuple[dict, dict, dict, dict]:
    """A SQuAD v1 JSON file (CMRC 2018, DRCD, SQuAD) as a retrieval set: the
    paragraphs' contexts are the corpus, the questions the queries, and each
    question's own context its one relevant document. A context given twice
    is one document (the first paragraph's id). Returns (queries, corpus,
    qrels, counts)."""
    name = display_name(path)
    bad = _Bad(on_error)
    data = _read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise DataError('not a SQuAD JSON file (no "data" list of articles with paragraphs); give a retrieval '
                        "folder, or --queries, --corpus and --qrels", name)
    queries: dict[str, str] = {}
    corpus: dict[str, str] = {}
    qrels: dict[str, dict[str, float]] = {}
    doc_of_text: dict[str, str] = {}
    duplicates = 0
    for i, article in enumerate(data["data"]):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            bad(DataError(f'data[{i}]: no "paragraphs" list', name))
            continue
        for j, para in enumerate(paragraphs):
            where = f"data[{i}].paragraphs[{j}]"
            context = para.get("context") if isinstance(para, dict) else None
            if not isinstance(context, str) or not context.strip():
                bad(DataError(f'{where}: no "context" text', name))
                continue
            doc = doc_of_text.get(context)
            if doc is None:
                pid = para.get("id")
                doc = str(pid) if isinstance(pid, (str, int)) and str(pid) not in corpus else f"{i}.{j}"
                corpus[doc] = context
                doc_of_text[context] = doc
            else:
                duplicates += 1
            qas = para.get("qas", [])
            for k, qa in enumerate(qas if isinstance(qas, list) else []):
                question = qa.get("question") if isinstance(qa, dict) else None
                if not isinstance(question, str) or not question.strip():
                    bad(DataError(f'{where}.qas[{k}]: no "question" text', name))
                    continue
                qid = qa.get("id")
                qid = str(qid) if isinstance(qid, (str, int)) else f"{i}.{j}.{k}"
                if qid in queries:
                    bad(DataError(f"{where}.qas[{k}]: duplicate question id {qid!r}", name))
                    continue
                queries[qid] = question
                qrels[qid] = {doc: 1.0}
    if not queries:
        raise DataError("no questions with a context found", name)
    counts = {"paragraphs": len(corpus) + duplicates, "duplicate_contexts": duplicates, "bad_entries": bad.count}
    return queries, corpus, qrels, counts


def run_squad_retrieval(encoder, path, *, query_prompt: str | None = None, corpus_prompt: str | None = None,
                        depth: int = 100, on_error: str = "stop") -> dict:
    """Retrieval on a SQuAD v1 file (see read_squad). Query and document ids
    come from different lists, so no document is excluded for sharing a
    query's id."""
    if depth < 1:
        raise UsageError("--depth must be >= 1")
    started = time.perf_counter()
    queries, corpus, qrels, extra = read_squad(path, on_error=on_error)
    name = display_name(path)
    result = _score_retrieval(encoder, queries, corpus, qrels, len(queries), query_prompt=query_prompt,
                              corpus_prompt=corpus_prompt, depth=depth, ignore_identical_ids=False,
                              queries_name=name, qrels_name=name)
    result["counts"].update(extra)
    result["params"]["format"] = "squad"
    result["seconds"] = time.perf_counter() - started
    return result


def _score_retrieval(encoder, queries: dict, corpus: dict, qrels: dict, judgments: int, *, query_prompt, corpus_prompt,
                     depth: int, ignore_identical_ids: bool, queries_name: str, qrels_name: str) -> dict:
    from vecpipe.core.search.topk import topk

    judged = [q for q, rels in qrels.items() if any(r > 0 for r in rels.values())]
    no_text = [q for q in judged if q not in queries]
    if no_text:
        log.warning("%d judged queries are not in %s (skipped), e.g. %r", len(no_text), queries_name, no_text[0])
    qids = [q for q in judged if q in queries]
    if not qids:
        raise DataError("no query with a relevant document in the qrels has a text in the queries file", qrels_name)
    doc_ids = list(corpus)
    missing_docs = sum(1 for q in qids for d, r in qrels[q].items() if r > 0 and d not in corpus)
    if missing_docs:
        log.warning("%d relevant documents named in the qrels are not in the corpus (they count as not found)", missing_docs)
    dv, drows = encode_all(encoder, [corpus[d] for d in doc_ids], prompt=corpus_prompt, normalize=True, desc="corpus")
    dv = dv[drows]
    qv, qrows = encode_all(encoder, [queries[q] for q in qids], prompt=query_prompt, normalize=True, desc="queries")
    qv = qv[qrows]
    exclude = None
    if ignore_identical_ids:
        row_of = {d: i for i, d in enumerate(doc_ids)}
        exclude = [[row_of[q]] if q in row_of else None for q in qids]
        if not any(exclude):
            exclude = None
    k = min(depth, len(doc_ids))
    _, ids = topk(qv, dv, k, metric="cosine", exclude=exclude, index_normalized=True)
    run = {q: [doc_ids[i] for i in ids[j] if i >= 0] for j, q in enumerate(qids)}
    metrics = M.retrieval_metrics(run, qrels, **RETRIEVAL_CUTOFFS)
    counts = {"queries": len(qids), "queries_in_file": len(queries), "corpus": len(doc_ids), "judgments": judgments,
              "judged_queries_without_text": len(no_text), "relevant_not_in_corpus": missing_docs}
    params = {"query_prompt": query_prompt, "corpus_prompt": corpus_prompt, "depth": k,
              "ignore_identical_ids": ignore_identical_ids}
    return {"metrics": metrics, "headline": ["ndcg@10"], "counts": counts, "params": params}


# ---------------------------------------------------------------- classification


def require_sklearn():
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise UnavailableError("eval classify needs scikit-learn: pip install 'vecpipe[classify]' "
                               "(or pip install scikit-learn)") from None


def read_labelled(paths, *, text_field: str = "text", label_field: str = "label", tsv_order: str = "label-text",
                  on_error: str = "stop", unicode_errors: str = "strict") -> tuple[list[str], list[str], int]:
    """Labelled texts. One path: JSONL records ({text, label}) or TSV lines
    (`label<TAB>text`, or `text<TAB>label` with tsv_order='text-label'; a
    header line tolerated). Several paths: one file per label (plain lines or
    JSONL texts), the label being the file name without its extension."""
    bad = _Bad(on_error)
    texts, labels = [], []
    if tsv_order not in ("label-text", "text-label"):
        raise UsageError("--tsv-order must be label-text or text-label")
    if len(paths) > 1:
        names = [Path(str(p)).name.split(".")[0] for p in paths]
        if len(set(names)) != len(names):
            raise UsageError("one file per label: the file names (without extension) must differ, they are the labels")
        for p, lab in zip(paths, names):
            for n, rec in _records(p, text_field=text_field, unicode_errors=unicode_errors, on_bad=bad):
                t = rec.get(text_field)
                if not isinstance(t, str) or not t.strip():
                    bad(DataError(f'field "{text_field}" is missing or empty', display_name(p), n))
                    continue
                texts.append(t)
                labels.append(lab)
        return texts, labels, bad.count
    path = paths[0]
    name = display_name(path)
    if _is_jsonl(path):
        for n, rec in _records(path, text_field=text_field, unicode_errors=unicode_errors, on_bad=bad):
            t, lab = rec.get(text_field), rec.get(label_field)
            if not isinstance(t, str) or not t.strip() or lab is None or isinstance(lab, (dict, list)):
                bad(DataError(f'expected a non-empty string "{text_field}" and a "{label_field}"', name, n))
                continue
            texts.append(t)
            labels.append(str(lab))
        return texts, labels, bad.count
    rows = _csv_labelled(path, tsv_order, name, bad, unicode_errors) if P.is_csv(path) else \
        _tsv_labelled(path, tsv_order, name, bad, unicode_errors)
    for n, lab, t in rows:
        lab = lab.strip()
        if not lab or not t.strip():
            bad(DataError("empty label or text", name, n))
            continue
        texts.append(t)
        labels.append(lab)
    return texts, labels, bad.count


_CLASS_NAMES = ("label", "labels", "class", "category")
_TEXT_NAMES = ("text", "sentence", "content", "review", "text_a", "sentence1")


def _labelled_roles(tsv_order: str):
    roles = [P.Role("label", _CLASS_NAMES), P.Role("text", _TEXT_NAMES)]
    return roles if tsv_order == "label-text" else roles[::-1]


def _tsv_labelled(path, tsv_order, name, bad, unicode_errors):
    """(line, label, text) of label<TAB>text lines (the text may hold tabs), a
    header line naming both columns skipped."""
    roles = _labelled_roles(tsv_order)
    first = True
    for n, line in _lines(path, unicode_errors):
        if not line.strip():
            continue
        if "\t" not in line:
            first = False
            bad(DataError("expected label<TAB>text" if tsv_order == "label-text" else "expected text<TAB>label", name, n))
            continue
        cells = line.split("\t", 1) if tsv_order == "label-text" else line.rsplit("\t", 1)
        if first and P.find_roles(cells, roles) is not None:
            first = False
            continue
        first = False
        lab, t = cells if tsv_order == "label-text" else cells[::-1]
        yield n, lab, t


def _csv_labelled(path, tsv_order, name, bad, unicode_errors):
    """(line, label, text) of a CSV file (the csv module: quoted fields, a BOM):
    a header naming the label and text columns (waimai_10k's `label,review`),
    or two columns in --tsv-order."""
    fh = open_input(path)
    try:
        rows = P.iter_rows(fh, name, csv_dialect=True, unicode_errors=unicode_errors)
        for n, (a, b) in P.table(rows, _labelled_roles(tsv_order), None, name, bad, sep="comma"):
            yield (n, a, b) if tsv_order == "label-text" else (n, b, a)
    finally:
        fh.close()


def _subsample(labels: list[str], per_label: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lab = np.asarray(labels)
    keep = []
    for c in sorted(set(labels)):
        idx = np.flatnonzero(lab == c)
        keep.append(idx if len(idx) <= per_label else np.sort(rng.choice(idx, per_label, replace=False)))
    return np.sort(np.concatenate(keep))


def run_classify(encoder, paths, *, test_paths=None, folds: int | None = None, test_size: float = 0.2,
                 seed: int = 0, max_iter: int = 100, C: float = 1.0, max_per_label: int | None = None,
                 prompt: str | None = None, text_field: str = "text", label_field: str = "label",
                 tsv_order: str = "label-text", on_error: str = "stop", unicode_errors: str = "strict") -> dict:
    """Logistic regression on the embeddings (MTEB's classification recipe):
    a separate test file, a stratified fixed split, or stratified k-fold."""
    require_sklearn()
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, train_test_split

    if folds is not None and folds < 2:
        raise UsageError("--folds must be >= 2")
    if not 0 < test_size < 1:
        raise UsageError("--test-size must be between 0 and 1")
    started = time.perf_counter()
    kw = dict(text_field=text_field, label_field=label_field, tsv_order=tsv_order, on_error=on_error,
              unicode_errors=unicode_errors)
    texts, labels, bad_lines = read_labelled(paths, **kw)
    if max_per_label:
        keep = _subsample(labels, max_per_label, seed)
        texts, labels = [texts[i] for i in keep], [labels[i] for i in keep]
    test_texts, test_labels = [], []
    if test_paths:
        test_texts, test_labels, bad_test = read_labelled(test_paths, **kw)
        bad_lines += bad_test
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise DataError(f"need at least 2 labels to classify, found {len(classes)}", display_name(paths[0]))
    x, rows = encode_all(encoder, texts + test_texts, prompt=prompt, normalize=False, desc="texts")
    X = x[rows]
    y = np.asarray(labels + test_labels)
    n_train = len(texts)
    if test_paths:
        splits = [(np.arange(n_train), np.arange(n_train, len(y)))]
        split_kind = "test-file"
    elif folds:
        try:
            splits = list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(X, y))
        except ValueError as exc:
            raise UsageError(f"--folds {folds}: {exc}") from None
        split_kind = "kfold"
    else:
        try:
            tr, te = train_test_split(np.arange(len(y)), test_size=test_size, random_state=seed, stratify=y)
        except ValueError as exc:
            raise UsageError(f"--test-size {test_size}: {exc}") from None
        splits = [(np.sort(tr), np.sort(te))]
        split_kind = "fixed"
    accs, f1s = [], []
    converged = True
    for tr, te in splits:
        clf = LogisticRegression(max_iter=max_iter, C=C, random_state=seed)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            clf.fit(X[tr], y[tr])
        converged &= not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        pred = clf.predict(X[te])
        accs.append(M.accuracy(y[te], pred))
        f1s.append(M.macro_f1(y[te], pred, labels=sorted(set(y[te]) | set(pred))))
    if not converged:
        log.info("logistic regression stopped at --max-iter %d before converging (as MTEB's does at 100)", max_iter)
    metrics = {"accuracy": float(np.mean(accs)), "macro_f1": float(np.mean(f1s))}
    if len(splits) > 1:
        metrics.update(accuracy_std=float(np.std(accs)), macro_f1_std=float(np.std(f1s)))
    per_label = {c: int((y == c).sum()) for c in sorted(set(y.tolist()))}
    counts = {"texts": int(len(y)), "labels": per_label, "train": int(len(splits[0][0])), "test": int(len(splits[0][1])),
              "bad_lines": bad_lines}
    params = {"split": split_kind, "folds": folds, "test_size": None if split_kind != "fixed" else test_size,
              "seed": seed, "max_iter": max_iter, "C": C, "max_per_label": max_per_label, "prompt": prompt,
              "classifier": "sklearn LogisticRegression", "converged": converged}
    return {"metrics": metrics, "headline": ["accuracy"], "counts": counts, "params": params,
            "seconds": time.perf_counter() - started}


# ---------------------------------------------------------------- tables


def _fmt(v, percent: bool = False) -> str:
    if isinstance(v, bool) or v is None:
        return "" if v is None else str(v)
    if isinstance(v, int):
        return f"{v:,}" if not percent else str(v)
    if isinstance(v, float):
        if v != v:
            return "nan"
        return f"{100 * v:.2f}" if percent else f"{v:.4f}"
    return str(v)


def render(headers: list[str], rows: list[list], fmt: str = "text") -> str:
    """A table as aligned text, GitHub markdown or TSV."""
    cells = [[str(c) for c in r] for r in rows]
    if fmt == "tsv":
        clean = [[c.replace("\t", " ").replace("\n", " ") for c in r] for r in [headers] + cells]
        return "".join("\t".join(r) + "\n" for r in clean)
    if fmt == "md":
        headers, cells = [_md_cell(h) for h in headers], [[_md_cell(c) for c in r] for r in cells]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) if cells else len(str(h)) for i, h in enumerate(headers)]

    def numeric(i):
        return all(_looks_number(r[i]) for r in cells if r[i]) and any(r[i] for r in cells)

    right = [numeric(i) for i in range(len(headers))]

    def line(r):
        return [c.rjust(w) if right[i] else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))]

    if fmt == "md":
        sep = ["-" * max(w - 1, 2) + (":" if right[i] else "-") for i, w in enumerate(widths)]
        out = ["| " + " | ".join(line(headers)) + " |", "| " + " | ".join(sep) + " |"]
        out += ["| " + " | ".join(line(r)) + " |" for r in cells]
        return "\n".join(out) + "\n"
    out = ["  ".join(line(headers)).rstrip()] + ["  ".join(line(r)).rstrip() for r in cells]
    return "\n".join(out) + "\n"


def _md_cell(text) -> str:
    """A markdown table cell: `\\` and `|` escaped (GitHub's rule), line breaks as spaces."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\r\n", " ").replace("\n", " ")


def _looks_number(s: str) -> bool:
    try:
        float(s.replace(",", ""))
        return True
    except ValueError:
        return s in ("nan", "-")


_METRIC_LABELS = {"3cosadd": "3CosAdd", "3cosmul": "3CosMul"}


def summary_table(result: dict) -> str:
    """The human summary of one result (for stderr)."""
    task, model, ds = result["task"], result["model"], result["dataset"]
    head = f"{task}: {ds['name']}  model: {model.get('spec')}  ({result['seconds']:.1f} s)\n"
    m, c = result["metrics"], result["counts"]
    if task == "analogy":
        methods = result["headline"]
        headers = ["category", "questions", "seen", "coverage"] + [_METRIC_LABELS[x] for x in methods]
        rows = [[cat["name"], _fmt(cat["questions"]), _fmt(cat["seen"]), _fmt(cat["coverage"])]
                + [_fmt(cat[x]) for x in methods] for cat in result["categories"]]
        rows.append(["total", _fmt(c["questions"]), _fmt(c["seen"]), _fmt(m["coverage"])] + [_fmt(m[x]) for x in methods])
        tail = (f"accuracy over the seen questions (a, b, c known; an unknown d counts as wrong, as the "
                f"Chinese-Word-Vectors toolkit). gensim's convention (all four known, {c['known']:,} questions): "
                + ", ".join(f"{_METRIC_LABELS[x]} {_fmt(m[x + '_known'])}" for x in methods) + "\n")
        return head + render(headers, rows) + tail
    rows = [[k, _fmt(v)] for k, v in m.items()]
    rows += [[k, _fmt(v) if not isinstance(v, dict) else ", ".join(f"{a}: {b:,}" for a, b in v.items())]
             for k, v in c.items() if v or k not in ("bad_lines",)]
    return head + render(["metric", "value"], rows)


# ---------------------------------------------------------------- report


def read_results(paths) -> list[dict]:
    results = []
    for p in paths:
        name = display_name(p)
        data = _read_json(p)
        items = data if isinstance(data, list) else [data]
        for item in items:
            if not (isinstance(item, dict) and item.get("task") in TASKS and isinstance(item.get("metrics"), dict)):
                raise DataError("not a vecpipe eval result (no task and metrics)", name)
            item.setdefault("_source", name)
            results.append(item)
    return results


def report_table(results: list[dict], *, fmt: str = "md", layout: str = "wide", metrics=None,
                 percent: bool = False) -> str:
    """Many results as one table.

    wide: a row per model, a column per dataset and metric (the headline
    metrics, or `metrics`), like the leaderboards of text2vec and MTEB.
    long: a row per result and metric, with the task, counts and seconds."""
    if fmt not in ("md", "tsv", "text"):
        raise UsageError("--format must be md, tsv or text")
    if layout not in ("wide", "long"):
        raise UsageError("--layout must be wide or long")

    def chosen(r):
        names = [m for m in (metrics or r.get("headline") or list(r["metrics"])) if m in r["metrics"]]
        return names

    if layout == "long":
        headers = ["model", "task", "dataset", "metric", "value", "n", "seconds"]
        rows = []
        for r in results:
            n = r["counts"].get("questions") or r["counts"].get("pairs") or r["counts"].get("queries") \
                or r["counts"].get("texts") or ""
            for m in chosen(r):
                rows.append([r["model"].get("spec", "?"), r["task"], r["dataset"]["name"], m,
                             _fmt(r["metrics"][m], percent), n, f"{float(r.get('seconds', 0)):.1f}"])
        return render(headers, rows, fmt)
    columns: list[tuple[str, str]] = []
    table: dict[str, dict] = {}
    for r in results:
        model = r["model"].get("spec", "?")
        row = table.setdefault(model, {})
        for m in chosen(r):
            key = (r["dataset"]["name"], m)
            if key not in columns:
                columns.append(key)
            if key in row:
                log.warning("%s: a second result for %s on %s %s; the later one is shown", r["_source"], model, *key)
            row[key] = r["metrics"][m]
    if not columns:
        raise UsageError("none of the results has the metrics asked for")
    single_metric = len({m for _, m in columns}) == 1
    headers = ["model"] + [d if single_metric else f"{d} {_METRIC_LABELS.get(m, m)}" for d, m in columns]
    rows = [[model] + [_fmt(vals[k], percent) if k in vals else "-" for k in columns] for model, vals in table.items()]
    return render(headers, rows, fmt)
