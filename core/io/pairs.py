"""Tables of pairs as the benchmarks of the field publish them.

- TSV (every name but `*.csv`): fields split on tabs, nothing quoted, so a
  sentence keeps its quotes (LCQMC, STS-B, PAWS-X);
- CSV (`*.csv`, compressed or not): Python's csv module, so quoted fields may
  hold commas, quotes and line breaks (BQ);
- a UTF-8 byte-order mark is dropped in both; blank lines are skipped.

Which column plays which role: the names of a header line (PAWS-X's
`id  sentence1  sentence2  label`, BQ's `sentence1,sentence2,label`), or
`--columns` (numbers from 1, or a header's names), or the position when the
lines have exactly one field per role. Anything else is refused with the line
that shows the doubt, never guessed.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from typing import IO, Iterator, Sequence

import numpy as np

from vecpipe.core.errors import DataError, UsageError
from vecpipe.core.io.compression import strip_compression_suffix
from vecpipe.core.io.inputs import iter_lines

# the column names the field uses for each role (compared in lower case)
FIRST_NAMES = ("sentence1", "text1", "text_a", "sentence_a", "s1", "sent1", "query1", "question1", "q1", "word1", "w1")
SECOND_NAMES = ("sentence2", "text2", "text_b", "sentence_b", "s2", "sent2", "query2", "question2", "q2", "word2", "w2")
LABEL_NAMES = ("label", "score", "similarity", "relatedness", "relatedness_score", "gold", "gold_label", "mean")


@dataclass(frozen=True)
class Role:
    """A column the reader needs: its name and the header names that mean it."""

    name: str
    aliases: tuple[str, ...] = ()

    def matches(self, cell: str) -> bool:
        c = cell.strip().lower()
        return c == self.name.lower() or c in self.aliases


def is_csv(path) -> bool:
    return path not in (None, "-") and strip_compression_suffix(str(path)).lower().endswith(".csv")


def iter_rows(fh: IO[bytes], name: str, *, csv_dialect: bool = False,
              unicode_errors: str = "strict") -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each non-blank row; a CSV row that spans lines
    is numbered by its first line."""
    lines = _lines_without_bom(fh, name, unicode_errors)
    if not csv_dialect:
        for n, line in lines:
            if line.strip():
                yield n, line.split("\t")
        return
    where = [0]

    def feed():
        for n, line in lines:
            where[0] = n
            yield line + "\n"

    reader = csv.reader(feed(), strict=True)
    while True:
        start = where[0] + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise DataError(f"not valid CSV: {exc}", name, where[0]) from None
        if any(c.strip() for c in row):
            yield start, row


def _lines_without_bom(fh, name, unicode_errors):
    for n, line in iter_lines(fh, name, unicode_errors=unicode_errors):
        if n == 1 and line.startswith("\ufeff"):
            line = line[1:]
        yield n, line


def parse_columns(spec: str | None, count: int, option: str = "--columns") -> list[str] | None:
    """`--columns 2,3,4` or `--columns sentence1,sentence2,label`: one column
    per role, numbers counted from 1 or a header's names (not mixed)."""
    if spec is None:
        return None
    tokens = [t.strip() for t in spec.split(",")]
    if len(tokens) != count or not all(tokens):
        raise UsageError(f"{option} takes {count} comma-separated columns (numbers from 1, or header names)")
    numeric = [t.isdigit() for t in tokens]
    if any(numeric) and not all(numeric):
        raise UsageError(f"{option}: give numbers or names, not both")
    if any(numeric) and min(int(t) for t in tokens) < 1:
        raise UsageError(f"{option}: columns are counted from 1")
    return tokens


@dataclass
class Layout:
    """Where the roles are: the header's names (None without a header), the
    column of each role, and how many fields every line must have."""

    header: list[str] | None
    index: list[int]
    width: int

    def pick(self, fields: list[str]) -> list[str]:
        return [fields[i] for i in self.index]


def is_number(text: str) -> bool:
    try:
        return bool(np.isfinite(float(text)))
    except ValueError:
        return False


def plan(first: list[str], roles: Sequence[Role], columns: list[str] | None, name: str, line: int,
         *, numeric: str | None = None, sep: str = "tab") -> Layout:
    """The layout of a table from its first row.

    A first row whose cells name every role is a header; with `columns`, the
    names given or the numbers; else one field per role, in order (a first row
    whose `numeric` role is not a number is then a header)."""
    width = len(first)
    found = find_roles(first, roles)
    if columns is not None and not columns[0].isdigit():
        wanted = [Role(c) for c in columns]
        idx = find_roles(first, wanted)
        if idx is None:
            raise DataError(f"the first line is not a header with the columns {', '.join(columns)} "
                            f"(it has: {', '.join(c.strip() for c in first)})", name, line)
        return Layout([c.strip() for c in first], idx, width)
    if columns is not None:
        idx = [int(c) - 1 for c in columns]
        if max(idx) >= width:
            raise DataError(f"--columns {','.join(columns)}: the line has only {width} {sep}-separated field(s)",
                            name, line)
        header = found is not None or (numeric is not None and not is_number(first[idx[_role_at(roles, numeric)]]))
        return Layout([c.strip() for c in first] if header else None, idx, width)
    if found is not None:
        return Layout([c.strip() for c in first], found, width)
    if width != len(roles):
        names = ", ".join(r.name for r in roles)
        example = ",".join(str(i + 2) for i in range(len(roles)))
        raise DataError(f"{width} {sep}-separated fields where {len(roles)} are expected ({names}), and no header "
                        f"line names them: say which columns hold them with --columns (e.g. --columns {example})",
                        name, line)
    idx = list(range(width))
    header = numeric is not None and not is_number(first[_role_at(roles, numeric)])
    return Layout([c.strip() for c in first] if header else None, idx, width)


def _role_at(roles: Sequence[Role], name: str) -> int:
    return next(i for i, r in enumerate(roles) if r.name == name)


def find_roles(cells: list[str], roles: Sequence[Role]) -> list[int] | None:
    """The column of each role by the cells' names, or None unless every role
    names exactly one distinct column."""
    idx = []
    for role in roles:
        hits = [i for i, c in enumerate(cells) if role.matches(c)]
        if not hits or hits[0] in idx:
            return None
        idx.append(hits[0])
    return idx


def table(rows: Iterator[tuple[int, list[str]]], roles: Sequence[Role], columns: list[str] | None, name: str,
          bad, *, numeric: str | None = None, sep: str = "tab") -> Iterator[tuple[int, list[str]]]:
    """(line, fields of the roles) of each data row of a table."""
    head = next(rows, None)
    if head is None:
        return
    layout = plan(head[1], roles, columns, name, head[0], numeric=numeric, sep=sep)
    for n, fields in data_rows(layout, head, rows, name, bad, sep=sep):
        yield n, layout.pick(fields)


def data_rows(layout: Layout, head: tuple[int, list[str]], rows, name: str, bad, *, sep: str = "tab"):
    """(line, fields) of the rows after the header (from the first row when
    there is none); a row whose field count differs goes to `bad`."""
    n, first = head
    if layout.header is None:
        yield n, first
    for m, fields in rows:
        if len(fields) != layout.width:
            what = "the header" if layout.header is not None else f"line {n}"
            bad(DataError(f"expected {layout.width} {sep}-separated fields (as {what}), got {len(fields)}", name, m))
            continue
        yield m, fields
