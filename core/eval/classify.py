"""eval classify: labelled texts classified as MTEB does (logistic regression
on the embeddings; a split, k-fold, or a test file)."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from vecpipe.core.errors import DataError, UnavailableError, UsageError
from vecpipe.core.eval import metrics as M
from vecpipe.core.eval.common import encode_all, is_jsonl
from vecpipe.core.io import pairs as P
from vecpipe.core.io.records import OnError
from vecpipe.core.io.inputs import display_name, iter_lines, open_input, read_numbered_records

log = logging.getLogger("vecpipe")


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
    bad = OnError(on_error)
    texts, labels = [], []
    if tsv_order not in ("label-text", "text-label"):
        raise UsageError("--tsv-order must be label-text or text-label")
    if len(paths) > 1:
        names = [Path(str(p)).name.split(".")[0] for p in paths]
        if len(set(names)) != len(names):
            raise UsageError("one file per label: the file names (without extension) must differ, they are the labels")
        for p, lab in zip(paths, names):
            with open_input(p) as fh:
                for n, rec in read_numbered_records(fh, display_name(p), text_field=text_field,
                                                    unicode_errors=unicode_errors, on_bad=bad):
                    t = rec.get(text_field)
                    if not isinstance(t, str) or not t.strip():
                        bad(DataError(f'field "{text_field}" is missing or empty', display_name(p), n))
                        continue
                    texts.append(t)
                    labels.append(lab)
        return texts, labels, bad.count
    path = paths[0]
    name = display_name(path)
    if is_jsonl(path):
        with open_input(path) as fh:
            for n, rec in read_numbered_records(fh, name, text_field=text_field, unicode_errors=unicode_errors,
                                                on_bad=bad):
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
    with open_input(path) as fh:
        for n, line in iter_lines(fh, name, unicode_errors=unicode_errors):
            if not line.strip():
                continue
            if "\t" not in line:
                first = False
                want = "label<TAB>text" if tsv_order == "label-text" else "text<TAB>label"
                bad(DataError(f"expected {want}", name, n))
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


def _check_label_counts(labels: list[str], paths, folds: int | None) -> None:
    """Before any encoding: every label needs enough texts for a stratified
    split, and labels as many as the texts are a column that is no label (a
    pair file such as LCQMC read as label<TAB>text). One short line, not
    scikit-learn's list of every label."""
    from collections import Counter

    counts = Counter(labels)
    need = folds or 2
    if len(counts) > max(20, len(labels) // 2):
        example = next(iter(counts))
        example = example if len(example) <= 30 else example[:30] + "..."
        raise DataError(f"{len(counts):,} labels for {len(labels):,} texts, such as {example!r}: "
                        "is that column a label? (label<TAB>text lines; --tsv-order text-label for text<TAB>label; "
                        "sentence pairs are for eval sts)", display_name(paths[0]))
    label, have = min(counts.items(), key=lambda kv: kv[1])
    if have >= need:
        return
    path = paths[0] if len(paths) == 1 else next(p for p in paths if Path(str(p)).name.split(".")[0] == label)
    split = f"--folds {folds} needs at least {folds}" if folds else "a stratified split needs at least 2"
    raise DataError(f"label {label!r} has only {have} text{'s' if have != 1 else ''}; {split} per label "
                    "(drop it, or give more)", display_name(path))


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
    if not test_paths:
        _check_label_counts(labels, paths, folds)
    unseen = sorted(set(test_labels) - set(classes))
    if unseen:
        shown = ", ".join(repr(u) for u in unseen[:5]) + (", ..." if len(unseen) > 5 else "")
        log.warning("%s: %d test label(s) never seen in training (%s): their texts count as wrong",
                    display_name(test_paths[0]), len(unseen), shown)
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
