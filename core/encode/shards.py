"""One shard of a sharded encode: find the input shards (a folder or a glob of
JSONL, .jsonl.gz or Parquet files), read one, encode it window by window with
the pipeline's per-window function, and write its output shard under a
temporary name in the output folder (the caller renames it and records it in
the manifest).

Output of input shard `NAME.jsonl[.gz]` or `NAME.parquet`, per --to:
  parquet  NAME.parquet: the input's fields, the vector (--vector-field) as a
           fixed-size list of float32 (float16, int8, or uint8/int8 bits per
           --precision) and `_row`
  npy      NAME.npy (one array) and NAME.ids.jsonl ({"id": ..., "_row": ...} a line)
Row order is the input's; `_row` is the input row each output row came from
(its line number in a JSONL shard, its 1-based row in a Parquet shard), so a
row skipped under --on-error skip leaves a visible gap."""
from __future__ import annotations

import glob
import hashlib
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from vecpipe.core.encode.pipeline import EncodeOptions, checked_text, encode_texts, quantize
from vecpipe.core.errors import DataError, NoInputError, UnavailableError, UsageError
from vecpipe.core.io.inputs import open_input, read_numbered_records
from vecpipe.core.io.records import OnError

SHARD_KINDS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".jsonl.gz": "jsonl", ".ndjson.gz": "jsonl", ".parquet": "parquet"}
ROW_FIELD = "_row"
TMP_SUFFIX = ".vecpipe-tmp"
OUTPUT_KINDS = ("parquet", "npy")


def pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401  (the submodule, loaded once here)
    except ImportError:
        raise UnavailableError("Parquet needs pyarrow: pip install 'vecpipe[parquet]'") from None
    return pyarrow


def is_sharded_input(src) -> bool:
    """A folder, or a glob pattern: the sharded path of encode."""
    return src not in (None, "-") and (Path(src).is_dir() or (glob.has_magic(str(src)) and not Path(src).exists()))


def shard_kind(path) -> str | None:
    name = str(path).lower()
    for suffix, kind in sorted(SHARD_KINDS.items(), key=lambda kv: -len(kv[0])):
        if name.endswith(suffix):
            return kind
    return None


def shard_stem(path) -> str:
    name = Path(path).name
    for suffix in sorted(SHARD_KINDS, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def list_shards(src) -> list[Path]:
    """The input shards in name order (the order of rows in a merged index):
    a folder's JSONL/Parquet files, or what a glob matches (all must be shards)."""
    if Path(src).is_dir():
        found = sorted(p for p in Path(src).iterdir() if p.is_file() and not p.name.startswith(".") and shard_kind(p))
        if not found:
            raise NoInputError(f"{src}: no shards in this folder (*.jsonl, *.jsonl.gz, *.parquet)")
    else:
        found = sorted(Path(p) for p in glob.glob(str(src)) if Path(p).is_file())
        if not found:
            raise NoInputError(f"{src}: matches no file")
        other = [p for p in found if not shard_kind(p)]
        if other:
            raise UsageError(f"{other[0]}: not a shard (*.jsonl, *.jsonl.gz or *.parquet)")
    stems: dict[str, Path] = {}
    for p in found:
        if shard_stem(p) in stems:
            raise UsageError(f"{stems[shard_stem(p)]} and {p} would write the same output shard; rename one")
        stems[shard_stem(p)] = p
    return found


def output_names(shard, to: str) -> list[str]:
    stem = shard_stem(shard)
    return [f"{stem}.parquet"] if to == "parquet" else [f"{stem}.npy", f"{stem}.ids.jsonl"]


def sha256_of(path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            sha.update(chunk)
    return sha.hexdigest()


# ---------------------------------------------------------------- reading


@dataclass
class ShardRows:
    """The valid rows of one shard: input row numbers, texts, ids, and the
    input fields as an Arrow table (Parquet output only)."""

    rows: list
    texts: list
    ids: list
    fields: object = None


def read_shard(path, opts: EncodeOptions, on_bad, *, keep_fields: bool) -> ShardRows:
    if shard_kind(path) == "parquet":
        return _read_parquet_shard(path, opts, on_bad, keep_fields)
    name = str(path)
    rows, texts, ids, recs = [], [], [], []
    fh = open_input(path)
    try:
        for n, rec in read_numbered_records(fh, name, text_field=opts.text_field, unicode_errors=opts.unicode_errors,
                                            on_bad=on_bad):
            text = checked_text(rec.get(opts.text_field), opts.text_field, name, n, on_bad)
            if text is None:
                continue
            rows.append(n)
            texts.append(text)
            ids.append(rec.get(opts.id_field))
            if keep_fields:
                recs.append(rec)
    finally:
        fh.close()
    fields = None
    if keep_fields:
        pa = pyarrow()
        for rec in recs:
            rec.pop(opts.vector_field, None)
            rec.pop(ROW_FIELD, None)
        try:
            fields = pa.Table.from_pylist(recs) if recs else pa.table({})
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise DataError(f"the records' fields do not fit one Parquet schema ({exc}); use --to npy", name) from None
    return ShardRows(rows, texts, ids, fields)


def _read_parquet_shard(path, opts: EncodeOptions, on_bad, keep_fields: bool) -> ShardRows:
    pa = pyarrow()
    name = str(path)
    try:
        table = pa.parquet.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"cannot read it as Parquet: {exc}", name) from None
    if opts.text_field not in table.column_names:
        raise DataError(f'no column "{opts.text_field}" (columns: {", ".join(table.column_names[:8])})', name)
    keep, rows, texts = [], [], []
    for i, value in enumerate(table.column(opts.text_field).to_pylist()):
        text = checked_text(value, opts.text_field, name, i + 1, on_bad)
        keep.append(text is not None)
        if text is not None:
            rows.append(i + 1)
            texts.append(text)
    if not all(keep):
        table = table.filter(pa.array(keep))
    ids = table.column(opts.id_field).to_pylist() if opts.id_field in table.column_names else [None] * len(rows)
    fields = None
    if keep_fields:
        fields = table.drop_columns([c for c in (opts.vector_field, ROW_FIELD) if c in table.column_names])
    return ShardRows(rows, texts, ids, fields)


# ---------------------------------------------------------------- one shard


def encode_shard(shard, out_dir, encoder, opts: EncodeOptions, ranges, budget, to: str) -> dict:
    """Encode one input shard into temporary files in out_dir; returns its
    manifest entry (with `tmp`: final name -> temporary path, for the commit)."""
    started = time.perf_counter()
    on_bad = OnError(opts.on_error, str(shard))
    data = read_shard(shard, opts, on_bad, keep_fields=to == "parquet")
    counters: dict = {}
    parts = [quantize(encode_texts(encoder, data.texts[s : s + opts.window], opts, budget, counters), opts.precision, ranges)
             for s in range(0, len(data.texts), opts.window)]
    width = min(opts.truncate_dim or encoder.dim, encoder.dim)
    if opts.precision in ("binary", "ubinary"):
        width = (width + 7) // 8
    dtype = {"float32": np.float32, "float16": np.float16, "ubinary": np.uint8}.get(opts.precision, np.int8)
    vectors = np.concatenate(parts) if parts else np.empty((0, width), dtype)
    tmp: dict[str, str] = {}
    token = uuid.uuid4().hex[:8]
    try:
        for final in output_names(shard, to):
            tmp[final] = str(Path(out_dir) / f".{final}.{token}{TMP_SUFFIX}")
        if to == "parquet":
            _write_parquet(tmp[output_names(shard, to)[0]], data, vectors, opts.vector_field)
        else:
            npy_name, ids_name = output_names(shard, to)
            with open(tmp[npy_name], "wb") as fh:
                np.lib.format.write_array(fh, np.ascontiguousarray(vectors), allow_pickle=False)
            with open(tmp[ids_name], "wb") as fh:
                fh.writelines(orjson.dumps({"id": i, ROW_FIELD: r}, option=orjson.OPT_APPEND_NEWLINE)
                              for i, r in zip(data.ids, data.rows))
        for path in tmp.values():
            with open(path, "rb+") as fh:
                os.fsync(fh.fileno())
    except BaseException:
        discard(tmp)
        raise
    return {
        "input": str(shard),
        "input_bytes": Path(shard).stat().st_size,
        "rows": len(data.rows),
        "skipped": on_bad.count,
        "counters": counters,
        "dim": int(vectors.shape[1]),
        "outputs": {final: sha256_of(path) for final, path in tmp.items()},
        "seconds": round(time.perf_counter() - started, 3),
        "tmp": tmp,
    }


def _write_parquet(path, data: ShardRows, vectors: np.ndarray, vector_field: str) -> None:
    pa = pyarrow()
    flat = pa.array(vectors.reshape(-1))
    column = pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])
    table = data.fields
    if table.num_columns == 0:
        table = pa.table({vector_field: column})
    else:
        table = table.append_column(vector_field, column)
    table = table.append_column(ROW_FIELD, pa.array(data.rows, type=pa.int64()))
    pa.parquet.write_table(table, path)


def commit(out_dir, entry: dict) -> dict:
    """Rename a shard's temporary files onto their final names; the entry
    without its temporary names, for the manifest."""
    for final, path in entry["tmp"].items():
        os.replace(path, Path(out_dir) / final)
    return {k: v for k, v in entry.items() if k != "tmp"}


def discard(tmp: dict) -> None:
    for path in tmp.values():
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def remove_stale_tmp(out_dir) -> None:
    """Temporary shard files a killed run left (ours by their suffix)."""
    for p in Path(out_dir).glob(f".*{TMP_SUFFIX}"):
        try:
            p.unlink()
        except FileNotFoundError:
            pass
