"""Training data for `vecpipe finetune`, recognised by its fields (uniem's
names and the obvious others), JSONL or TSV:

- pairs: text + text_pos (query/positive, anchor/positive, sentence1/sentence2
  without a label, `a<TAB>b`) -> in-batch negatives;
- triplets: pairs with text_neg (a string or a list: several hard negatives;
  `a<TAB>b<TAB>n1<TAB>n2...` whose third field is not a number) -> the same with
  hard negatives;
- scored pairs: sentence1, sentence2, label (and the `s1<TAB>s2<TAB>score`
  files `eval sts` reads, through its own reader) -> CoSENT.

A list of positives (FlagEmbedding's {"query", "pos": [...], "neg": [...]})
gives one example per positive, each with the record's negatives."""
from __future__ import annotations

from dataclasses import dataclass, field

from vecpipe.core.errors import DataError
from vecpipe.core.io import pairs as P
from vecpipe.core.io.inputs import looks_like_jsonl, open_input, read_numbered_records
from vecpipe.core.io.records import OnError

ANCHOR_NAMES = ("text", "query", "anchor", "question", "sentence1", "text1", "text_a", "s1", "q1")
POSITIVE_NAMES = ("text_pos", "positive", "pos", "sentence2", "text2", "text_b", "s2", "q2", "answer", "document")
NEGATIVE_NAMES = ("text_neg", "negative", "negatives", "neg", "hard_negative", "hard_negatives")

KINDS = ("pairs", "triplets", "scored")


@dataclass
class TrainingData:
    """Columns ready for a datasets.Dataset: pairs/triplets as anchor,
    positive[, negative_1..n]; scored pairs as sentence1, sentence2, score."""

    kind: str
    columns: dict = field(default_factory=dict)
    skipped: int = 0
    dropped_negatives: int = 0  # negatives beyond the smallest count in a record (all rows need as many)

    def __len__(self) -> int:
        first = next(iter(self.columns.values()), [])
        return len(first)


def _pick(keys, names):
    return next((n for n in names if n in keys), None)


def _as_list(value):
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def read_training_data(path, name: str, *, on_error: str = "stop", unicode_errors: str = "strict") -> TrainingData:
    """The examples of a training file (a real file: stdin is spooled first)."""
    with open_input(path) as fh:
        jsonl = looks_like_jsonl(fh)
        if jsonl:
            first = next(read_numbered_records(fh, name, unicode_errors=unicode_errors, on_bad=lambda e: None), None)
            head = first[1] if first else {}
        else:
            rows = P.iter_rows(fh, name, unicode_errors=unicode_errors)
            head = next(rows, (0, []))[1]
    if jsonl:
        keys = set(head)
        label = _pick(keys, P.LABEL_NAMES)
        a, b = _pick(keys, P.FIRST_NAMES), _pick(keys, P.SECOND_NAMES)
        if label and a and b:
            return _scored(path, name, (a, b, label), on_error, unicode_errors)
        return _jsonl_examples(path, name, keys, on_error, unicode_errors)
    cells = [c.strip().lower() for c in head]
    if len(head) == 3 and (P.is_number(head[2].strip()) or cells[2] in P.LABEL_NAMES):
        return _scored(path, name, ("sentence1", "sentence2", "label"), on_error, unicode_errors)
    return _table_examples(path, name, on_error, unicode_errors)


def _scored(path, name, fields, on_error, unicode_errors) -> TrainingData:
    from vecpipe.core.eval.sts import read_sentence_pairs

    s1, s2, labels, bad = read_sentence_pairs(path, fields=fields, on_error=on_error, unicode_errors=unicode_errors)
    return TrainingData("scored", {"sentence1": s1, "sentence2": s2, "score": [float(x) for x in labels]}, bad)


class _Examples:
    """Anchors, positives and negative lists, collected record by record."""

    def __init__(self):
        self.anchor, self.positive, self.negatives = [], [], []

    def add(self, anchor, positives, negatives):
        for pos in positives:
            self.anchor.append(anchor)
            self.positive.append(pos)
            self.negatives.append(negatives)

    def result(self, name, skipped) -> TrainingData:
        if not self.anchor:
            raise DataError("no training examples found", name)
        counts = [len(n) for n in self.negatives]
        n = min(counts)
        if n == 0 and max(counts) > 0:
            raise DataError("some records have negatives and some have none; give every record at least one "
                            "(or none at all)", name)
        columns = {"anchor": self.anchor, "positive": self.positive}
        for i in range(n):
            columns[f"negative_{i + 1}"] = [negs[i] for negs in self.negatives]
        return TrainingData("triplets" if n else "pairs", columns, skipped, sum(c - n for c in counts))


def _jsonl_examples(path, name, keys, on_error, unicode_errors) -> TrainingData:
    fa, fp, fn = _pick(keys, ANCHOR_NAMES), _pick(keys, POSITIVE_NAMES), _pick(keys, NEGATIVE_NAMES)
    if fa is None or fp is None:
        raise DataError(f"the first record has the fields {', '.join(sorted(keys)) or 'none'}: expected pairs "
                        "(text + text_pos, query + positive, anchor + positive, sentence1 + sentence2), triplets "
                        "(the same + text_neg) or scored pairs (sentence1 + sentence2 + label)", name, None)
    bad = OnError(on_error)
    ex = _Examples()
    with open_input(path) as fh:
        for n, rec in read_numbered_records(fh, name, unicode_errors=unicode_errors, on_bad=bad):
            anchor, positives = rec.get(fa), _as_list(rec.get(fp))
            negatives = _as_list(rec.get(fn)) if fn else []
            if not isinstance(anchor, str) or not positives or (fn and negatives is None):
                need = f'"{fa}" a string, "{fp}" a string or a list of strings' + (f', "{fn}" the same' if fn else "")
                bad(DataError(f"expected {need}", name, n))
                continue
            ex.add(anchor, positives, negatives)
    return ex.result(name, bad.count)


def _table_examples(path, name, on_error, unicode_errors) -> TrainingData:
    bad = OnError(on_error)
    ex = _Examples()
    with open_input(path) as fh:
        for n, fields in P.iter_rows(fh, name, unicode_errors=unicode_errors):
            cells = [c.strip().lower() for c in fields]
            if not ex.anchor and cells and cells[0] in ANCHOR_NAMES and len(cells) > 1 and cells[1] in POSITIVE_NAMES:
                continue  # a header line
            if len(fields) < 2:
                bad(DataError(f"expected anchor<TAB>positive[<TAB>negative...], got {len(fields)} field(s)", name, n))
                continue
            ex.add(fields[0], [fields[1]], fields[2:])
    return ex.result(name, bad.count)
