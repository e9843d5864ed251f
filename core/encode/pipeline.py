"""`vecpipe encode`: a stream of records -> vectors, window by window.

Memory stays flat: records are read in windows (default 10,000), each window
is encoded and written before the next is read. The per-window work
(encode_texts) is a function of (texts, encoder, options): the encoder's
counters come back as data and are summed by the caller, so it could run
unchanged as a Ray Data map_batches callable. One piece of state is shared on
purpose: a CUDA out-of-memory error halves the token budget for the rest of
the run (core/models/batching.py)."""
from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from vecpipe.core.encode.tables import is_table, read_table_records
from vecpipe.core.io.records import OnError
from vecpipe.core.models.base import add_counters
from vecpipe.core.errors import DataError, NoInputError, UsageError
from vecpipe.core.io.progress import progress
from vecpipe.core.io.inputs import display_name, looks_like_jsonl, open_input, read_numbered_records
from vecpipe.core.io.jsonl import write_jsonl
from vecpipe.core.io.npy import NpyStreamWriter, is_npy, read_npy_stream, write_npy_block
from vecpipe.core.io.outputs import (
    atomic_path, check_distinct, check_output, is_special_output, lock_output, make_parents, open_output, remove_made,
)

log = logging.getLogger("vecpipe")

PRECISIONS = ("float32", "float16", "int8", "binary", "ubinary")


@dataclass
class EncodeOptions:
    text_field: str = "text"
    id_field: str = "id"
    vector_field: str = "vector"
    to: str = "jsonl"  # jsonl | npy
    window: int = 10000
    on_error: str = "stop"
    unicode_errors: str = "strict"
    prompt: str | None = None
    normalize: bool = False
    truncate_dim: int | None = None
    precision: str = "float32"
    calibration: str | None = None
    ranges_out: str | None = None
    max_tokens: int | None = None  # None: the encoder's default for its device
    max_batch: int | None = None


def run_budget(encoder, opts: EncodeOptions):
    """The encoder's batching budget for its device, with --max-tokens and
    --batch-size applied: one per run (or per Ray worker), since a CUDA OOM
    halves it for the rest of that run."""
    budget = encoder.default_budget()
    if budget is not None:
        budget.max_tokens = opts.max_tokens or budget.max_tokens
        budget.max_batch = opts.max_batch or budget.max_batch
    return budget


@dataclass
class EncodeStats:
    records: int = 0  # encoded by this run
    skipped: int = 0
    records_before: int = 0  # --resume: written by the interrupted run(s)
    seconds: float = 0.0
    errors: list = field(default_factory=list)
    counters: dict = field(default_factory=dict)  # summed from the encoder's per-batch counters


# ---------------------------------------------------------------- quantization


def int8_ranges(sample: np.ndarray) -> np.ndarray:
    """Per-dimension (min, max) as a (2, dim) array, as sentence-transformers uses."""
    return np.stack([sample.min(axis=0), sample.max(axis=0)]).astype(np.float32)


def quantize(x: np.ndarray, precision: str, ranges: np.ndarray | None = None) -> np.ndarray:
    """float32 rows -> the output precision, exactly as sentence-transformers'
    quantize_embeddings (the same float32 arithmetic and floor, so the same
    bytes). int8 uses fixed ranges (never re-derived per batch, so rows from
    different batches stay comparable)."""
    if precision == "float32":
        return x.astype(np.float32, copy=False)
    if precision == "float16":
        return x.astype(np.float16)
    if precision == "int8":
        ranges = np.asarray(ranges).astype(np.float32, copy=False)
        starts = ranges[0]
        steps = (ranges[1] - starts) / 255
        steps = np.where(steps == 0, 1, steps)
        buckets = np.clip(np.floor((x - starts) / steps), 0, 255)  # floor, not truncation toward zero
        return (buckets - 128).astype(np.int8)
    packed = np.packbits(x > 0, axis=-1)
    return (packed.astype(np.int16) - 128).astype(np.int8) if precision == "binary" else packed


def load_calibration(path, encoder, opts: "EncodeOptions") -> np.ndarray:
    """--calibration: a .npy of ranges (2, dim) or of sample vectors (n, dim), or
    a text/JSONL file whose texts are encoded to find the ranges."""
    if path != "-" and not Path(path).is_file():
        raise NoInputError(f"{path}: no such file (--calibration)")
    fh = open_input(path)
    if is_npy(fh):
        try:
            blocks = list(read_npy_stream(fh, display_name(path)))
        finally:
            fh.close()
        if not blocks:
            raise DataError("no vectors to calibrate with", path)
        arr = np.concatenate(blocks).astype(np.float32)
        if arr.shape[0] < 2:
            raise DataError("--calibration needs (2, dim) ranges or (n, dim) sample vectors, n >= 2; "
                            f"got {arr.shape[0]} row", path)
        width = min(opts.truncate_dim or encoder.dim, encoder.dim)
        if arr.shape[1] != width:
            raise DataError(f"--calibration has {arr.shape[1]} columns, the vectors have {width}", path)
        if not np.isfinite(arr).all():
            raise DataError("--calibration holds NaN or infinite values", path)
        return arr if arr.shape[0] == 2 else int8_ranges(arr)
    try:
        texts = [rec.get(opts.text_field) for _, rec in read_numbered_records(fh, display_name(path), text_field=opts.text_field)]
    finally:
        fh.close()
    texts = [t for t in texts if isinstance(t, str) and t]
    if not texts:
        raise DataError("no texts to calibrate with", path)
    return int8_ranges(encode_texts(encoder, texts, opts))


def empty_rows(encoder, opts: "EncodeOptions", ranges=None) -> np.ndarray:
    """No rows, in the output's width and dtype: what an empty input gives, so
    that it still stacks with other outputs of the same model."""
    width = min(opts.truncate_dim or encoder.dim, encoder.dim)
    if ranges is None:
        ranges = np.zeros((2, width), np.float32)
    return quantize(np.zeros((0, width), np.float32), opts.precision, ranges)


# ---------------------------------------------------------------- the pure per-window step


def encode_texts(encoder, texts: list[str], opts: EncodeOptions, budget=None, counters: dict | None = None) -> np.ndarray:
    """float32 vectors for texts, in order (the per-batch pure function: the
    encoder's counters are added to `counters` when given, never kept)."""
    vectors, more = encoder.encode_batch(texts, prompt=opts.prompt, normalize=opts.normalize,
                                         truncate_dim=opts.truncate_dim, budget=budget)
    if counters is not None:
        add_counters(counters, more)
    return vectors


def checked_text(text, text_field: str, name: str, n: int, on_bad) -> str | None:
    """The record's text, or None after `on_bad` was told why it has none
    (missing, not a string, blank): the one rule for files and shards alike."""
    if not isinstance(text, str):
        what = "missing" if text is None else f"not a string ({type(text).__name__})"
        on_bad(DataError(f'field "{text_field}" is {what}', name, n))
        return None
    if not text.strip():
        on_bad(DataError(f'field "{text_field}" is empty', name, n))
        return None
    return text


# ---------------------------------------------------------------- the stream


def _windows(records, size: int):
    window = []
    for item in records:
        window.append(item)
        if len(window) >= size:
            yield window
            window = []
    if window:
        yield window


def fingerprint(model_name: str, opts: EncodeOptions) -> dict:
    """The options that must match for --resume to continue a partial output.
    The input is checked by its content (the job hashes the bytes read), not by
    its name or date, so a stdin stream is checked as well as a file."""
    return {"model": model_name, "options": {k: v for k, v in asdict(opts).items() if k not in ("on_error", "max_batch")}}


def run_encode(src, output, encoder, opts: EncodeOptions, *, ids_out=None, resume=False, model_name="") -> EncodeStats:
    """Read records from src, encode them window by window, write them to
    output (JSONL records with a vector, or an npy stream / one .npy file)."""
    from vecpipe.core.io.resume import ResumableJob

    if opts.precision not in PRECISIONS:
        raise UsageError(f"--precision must be one of {', '.join(PRECISIONS)}")
    if opts.window < 1:
        raise UsageError("--window must be >= 1")
    if opts.to not in ("jsonl", "npy"):
        raise UsageError("--to must be jsonl or npy")
    special = output not in (None, "-") and Path(output).exists() and not (Path(output).is_file() or Path(output).is_dir())
    if resume and (output in (None, "-") or special):
        raise UsageError("--resume needs -o FILE (a stream on stdout or a device cannot be resumed)")
    stats = EncodeStats()
    name = display_name(src)
    budget = run_budget(encoder, opts)
    ranges = None
    if opts.precision == "int8" and opts.calibration:
        ranges = load_calibration(opts.calibration, encoder, opts)

    on_bad = OnError(opts.on_error)

    gaps = {"last": None, "blank": 0}  # blank lines between texts of a plain text file

    def texts_of(records):
        for n, rec in records:
            if gaps["last"] is not None:
                gaps["blank"] += n - gaps["last"] - 1
            gaps["last"] = n
            text = checked_text(rec.get(opts.text_field), opts.text_field, name, n, on_bad)
            if text is not None:
                yield n, rec, text

    to_npy = opts.to == "npy"
    ranges_target = None
    if opts.precision == "int8":
        ranges_target = opts.ranges_out or (f"{output}.ranges.npy" if output not in (None, "-") and not special else None)
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        _prepare_side_outputs(stack, None if special else output, ids_out, ranges_target)
        fh = open_input(src)
        stack.callback(fh.close)
        job = None
        if output not in (None, "-") and not special:
            outputs = {"main": (output, "npy" if to_npy and str(output).endswith(".npy") else "bytes")}
            if ids_out:
                outputs["ids"] = (ids_out, "bytes")
            job = stack.enter_context(ResumableJob(outputs, resume=resume, fingerprint=fingerprint(model_name, opts)))
        reader = job.track_input(fh) if job is not None and resume else fh
        if is_table(src):
            plain_text = False
            records = read_table_records(reader, name, src, text_field=opts.text_field, id_field=opts.id_field,
                                         unicode_errors=opts.unicode_errors, on_bad=on_bad)
        else:
            plain_text = not looks_like_jsonl(fh)
            records = read_numbered_records(reader, name, text_field=opts.text_field,
                                            unicode_errors=opts.unicode_errors, on_bad=on_bad)
        if job is not None:
            main = job.parts["main"]
            writer = main.writer if main.kind == "npy" else (NpyStreamWriter(main.fh) if to_npy else main.fh)
            ids_fh = job.parts["ids"].fh if ids_out else None
            if job.records_done:
                if "ranges" in job.extra:
                    ranges = np.asarray(job.extra["ranges"], dtype=np.float32)
                skip = job.records_done
                consumed = 0
                for _ in range(skip):  # the input records already written
                    if next(records, None) is None:
                        break
                    consumed += 1
                if consumed < skip:
                    raise DataError(f"--resume: the input has only {consumed} records, {skip} were done before", name)
                job.check_input(name)
                stats.records_before = skip
                log.info("resuming after %d records", skip)
        else:
            out = stack.enter_context(open_output(output if special else None))
            writer = NpyStreamWriter(out) if to_npy else out
            ids_fh = stack.enter_context(open_output(ids_out)) if ids_out else None
        consumed_total = job.records_done if job else 0
        counted = _Counter(records)
        bar = stack.enter_context(progress(total=None, unit=" texts", unit_scale=True, desc="encode"))
        for window in _windows(texts_of(counted), opts.window):
            texts = [t for _, _, t in window]
            x = encode_texts(encoder, texts, opts, budget, stats.counters)
            if opts.precision == "int8" and ranges is None:
                ranges = int8_ranges(x)  # fixed once, from the first window, and recorded
                log.info("int8 ranges taken from the first %d texts", len(texts))
            q = quantize(x, opts.precision, ranges)
            if to_npy:
                writer.write(q)
            else:
                field_name = opts.vector_field
                write_jsonl(writer, ({**rec, field_name: row} for (_, rec, _), row in zip(window, q)))
            if ids_fh is not None:  # one JSON value per line
                write_jsonl(ids_fh, (rec.get(opts.id_field, n) for n, rec, _ in window))
            stats.records += len(window)
            bar.update(len(window))
            if job is not None and resume:  # durable progress only matters to a later --resume
                job.checkpoint(consumed_total + counted.n, {"ranges": ranges.tolist()} if ranges is not None else {})
        if to_npy and job is not None and job.parts["main"].kind == "npy" and writer.width is None:
            writer.write(empty_rows(encoder, opts, ranges))  # no rows: (0, width), not (0, 0)
        if isinstance(writer, NpyStreamWriter):
            writer.close()
        if ranges is not None and ranges_target:  # side outputs are committed before the main one
            with atomic_path(ranges_target) as tmp, open(tmp, "wb") as ranges_fh:
                write_npy_block(ranges_fh, ranges)
            log.info("int8 ranges saved to %s (pass it as --calibration to encode more rows comparably)", ranges_target)
        if job is not None:
            job.finish()  # the ids, then the main output last
    if plain_text and gaps["blank"]:
        log.warning("%s: %d blank lines skipped, so row i of the output is not line i of the input "
                    "(--ids-out writes each row's line number)", name, gaps["blank"])
    stats.skipped = on_bad.count
    stats.seconds = time.perf_counter() - started
    return stats


def _prepare_side_outputs(stack: contextlib.ExitStack, output, ids_out, ranges_target) -> None:
    """Before anything is read: the outputs of one run are distinct, none would
    replace a folder (73), their folders exist, and the side outputs are locked
    for the whole run (75; the main output's lock is the resumable job's)."""
    check_distinct({"-o": output, "--ids-out": ids_out, "--ranges-out": ranges_target})
    for path in (output, ids_out, ranges_target):
        if path not in (None, "-") and not is_special_output(path):
            check_output(path)
            made = make_parents(path)
            stack.push(lambda failed, *_, made=made: remove_made(made) if failed else None)  # a failed run
    for path in (ids_out, ranges_target):
        stack.enter_context(lock_output(path))


class _Counter:
    """Counts the input records consumed (for resume checkpoints)."""

    def __init__(self, it):
        self.it = it
        self.n = 0

    def __iter__(self):
        for item in self.it:
            self.n += 1
            yield item
