"""encode's TSV and CSV inputs (`*.tsv`, `*.csv`, compressed or not), as the
field publishes texts with ids: BEIR/MTEB's and CMRC2018-retrieval's
`id<TAB>text`, or a table whose header names its columns.

Each row becomes a record: the header's names as fields (every column passes
through), or without a header `id` and `text` for two columns, `text` for
one, and the column numbers ("1", "2", ...) for more, where --text-field N
says which is the text. A table is never read as one text per line: the id
would be encoded with the text."""
from __future__ import annotations

from typing import Iterator

from vecpipe.core.errors import DataError, UsageError
from vecpipe.core.io import pairs as P
from vecpipe.core.io.compression import strip_compression_suffix

_HEADERLESS = {1: ("text",), 2: ("id", "text")}


def is_table(path) -> bool:
    return path not in (None, "-") and strip_compression_suffix(str(path)).lower().endswith((".tsv", ".csv"))


def read_table_records(fh, name: str, path, *, text_field: str = "text", id_field: str = "id",
                       unicode_errors: str = "strict", on_bad=None) -> Iterator[tuple[int, dict]]:
    """(line number, record) of each data row of a TSV or CSV table; a row
    whose field count differs from the first row's goes to `on_bad`."""
    as_csv = P.is_csv(path)
    sep = "comma" if as_csv else "tab"
    rows = P.iter_rows(fh, name, csv_dialect=as_csv, unicode_errors=unicode_errors)
    head = next(rows, None)
    if head is None:
        return
    n, first = head
    cells = [c.strip() for c in first]
    if text_field in cells:
        names, data = cells, rows
    else:
        names = _headerless_names(len(first), text_field, id_field, name, sep)
        data = _chain(head, rows)
    for m, fields in data:
        if len(fields) != len(names):
            err = DataError(f"expected {len(names)} {sep}-separated fields (as line {n}), got {len(fields)}", name, m)
            if on_bad is None:
                raise err
            on_bad(err)
            continue
        yield m, dict(zip(names, fields))


def _headerless_names(width: int, text_field: str, id_field: str, name: str, sep: str) -> list[str]:
    if text_field.isdigit():
        if not 1 <= int(text_field) <= width:
            raise UsageError(f"{name}: --text-field {text_field}, but the first line has {width} {sep}-separated fields")
        return [str(i + 1) for i in range(width)]
    if id_field.isdigit():
        raise UsageError(f"{name}: --id-field {id_field} numbers the columns: give the text's with --text-field N too")
    if width in _HEADERLESS:
        return list(_HEADERLESS[width])
    raise UsageError(f'{name}: {width} {sep}-separated fields and no header line naming "{text_field}": '
                     "say which column is the text with --text-field N (and the id with --id-field N), from 1")


def _chain(head, rows):
    yield head
    yield from rows
