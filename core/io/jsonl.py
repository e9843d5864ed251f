"""The one JSONL writer: every command writes its records through write_jsonl."""
from __future__ import annotations

from typing import IO, Iterable

import orjson


def write_jsonl(out: IO[bytes], records: Iterable[dict]) -> int:
    """Write records one per line; numpy arrays inside are serialised natively."""
    dumps = orjson.dumps
    opt = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE
    n = 0
    for rec in records:
        out.write(dumps(rec, option=opt))
        n += 1
    return n
