"""Sharded encode, the driver: input shards -> an output folder of shards plus
manifest.json, by an engine (local: this process, shard after shard; ray:
Ray Data workers, see ray_engine.py). Both engines run shards.encode_shard,
which calls the pipeline's per-window function, so the same inputs and
options give the same bytes whichever engine ran them.

A shard is done when its output files carry their final names and its entry
is in the manifest (rewritten atomically after each shard). --resume skips
the done shards whose outputs still match their sha256 and redoes the rest;
without --resume, an output folder is refused (73) unless it is empty or a
sharded output vecpipe made, which is then replaced shard by shard."""
from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vecpipe import __version__
from vecpipe.core.encode.manifest import SHARDS_FORMAT, VERSION, Manifest, library_versions, read_manifest, shards_replaceable
from vecpipe.core.encode.pipeline import PRECISIONS, EncodeOptions, encode_texts, int8_ranges, load_calibration, run_budget
from vecpipe.core.encode.shards import (
    OUTPUT_KINDS, commit, discard, encode_shard, list_shards, pyarrow, read_shard, remove_stale_tmp,
)
from vecpipe.core.errors import UsageError
from vecpipe.core.io.outputs import check_output, lock_output, make_parents, remove_made
from vecpipe.core.io.records import OnError
from vecpipe.core.models.base import add_counters

log = logging.getLogger("vecpipe")


@dataclass
class RayOptions:
    address: str = "auto"
    workers: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0


@dataclass
class ShardedStats:
    """What this run did (shards done before it are not counted in records)."""

    shards: int = 0
    done_before: int = 0
    records: int = 0
    skipped: int = 0
    seconds: float = 0.0
    counters: dict = field(default_factory=dict)


def fingerprint(spec, opts: EncodeOptions, to: str) -> dict:
    """What must match for --resume to keep a folder's shards: the model spec
    and every option that changes the bytes (not the engine or its workers)."""
    spec_fields = {k: v for k, v in asdict(spec).items() if k != "allow_download"}
    options = {k: v for k, v in asdict(opts).items() if k not in ("on_error", "max_batch", "ranges_out", "to")}
    return {"model": spec_fields, "options": options, "to": to}


def run_sharded(src, out_dir, spec, opts: EncodeOptions, *, to: str = "parquet", engine: str = "local",
                resume: bool = False, ray_options: RayOptions | None = None) -> ShardedStats:
    if to not in OUTPUT_KINDS:
        raise UsageError(f"sharded output is parquet or npy (--to), not {to}")
    if opts.precision not in PRECISIONS:
        raise UsageError(f"--precision must be one of {', '.join(PRECISIONS)}")
    if engine not in ("local", "ray"):
        raise UsageError("--engine must be local or ray")
    if out_dir in (None, "-"):
        raise UsageError("sharded input writes a folder of shards: give it with -o FOLDER")
    OnError(opts.on_error)  # a bad --on-error fails now
    shards = list_shards(src)
    if to == "parquet" or any(str(s).endswith(".parquet") for s in shards):
        pyarrow()  # a missing extra fails before anything is made (69)
    if engine == "ray":
        from vecpipe.core.encode.ray_engine import import_ray

        import_ray()
    out = Path(os.path.abspath(out_dir))  # workers may run elsewhere than this working folder
    if not (resume and read_manifest(out) is not None):
        check_output(out, folder=True, replaceable=shards_replaceable)
    stats = ShardedStats(shards=len(shards))
    started = time.perf_counter()
    made = make_parents(out / "manifest.json")
    ok = False
    try:
        with lock_output(out):
            out.mkdir(exist_ok=True)
            remove_stale_tmp(out)
            keys = [os.path.abspath(s) for s in shards]
            old = read_manifest(out)
            encoder = spec.load() if engine == "local" or opts.precision == "int8" else None
            header = {"format": SHARDS_FORMAT, "version": VERSION, "vecpipe": __version__, "libraries": library_versions(),
                      "engine": engine, "fingerprint": fingerprint(spec, opts, to), "model": spec.name, "ranges": None}
            manifest = Manifest.start(out, header, keys, resume=resume)
            if not resume and old is not None:
                _remove_outputs(out, old)  # the folder is replaced: its old shards go, ours only
            if opts.precision == "int8" and manifest.header["ranges"] is None:
                manifest.header["ranges"] = _fixed_ranges(shards[0], encoder, opts).tolist()
            manifest.save()
            todo = []
            for key in keys:
                if resume and manifest.done(key, out):
                    stats.done_before += 1
                else:
                    manifest.forget(key)
                    todo.append(key)
            if stats.done_before:
                log.info("%d of %d shards done before; encoding the other %d", stats.done_before, len(shards), len(todo))
            ranges = manifest.header["ranges"]
            if engine == "ray":
                from vecpipe.core.encode.ray_engine import ray_encode

                entries = ray_encode(todo, out, spec, opts, ranges, to, ray_options or RayOptions())
            else:
                entries = _local_encode(todo, out, encoder, opts, ranges, to)
            with contextlib.closing(entries):
                for entry in entries:
                    manifest.record(commit(out, entry))
                    stats.records += entry["rows"]
                    stats.skipped += entry["skipped"]
                    add_counters(stats.counters, entry["counters"])
                    log.info("%s: %d rows in %.1f s", entry["input"], entry["rows"], entry["seconds"])
        ok = True
    finally:
        if not ok:
            remove_stale_tmp(out) if out.is_dir() else None
            remove_made(made)
    stats.seconds = time.perf_counter() - started
    return stats


def _local_encode(todo, out, encoder, opts, ranges, to):
    """The local engine: this process, shard after shard."""
    import numpy as np

    budget = run_budget(encoder, opts)
    ranges = None if ranges is None else np.asarray(ranges, dtype=np.float32)
    for shard in todo:
        entry = encode_shard(shard, out, encoder, opts, ranges, budget, to)
        try:
            yield entry
        except GeneratorExit:
            discard(entry["tmp"])
            raise


def _fixed_ranges(first_shard, encoder, opts: EncodeOptions):
    """int8 ranges fixed before any shard is encoded and shared by every
    worker: from --calibration, else from the first window of the first shard
    (what a single-file encode of that shard would take)."""
    if opts.calibration:
        return load_calibration(opts.calibration, encoder, opts)
    data = read_shard(first_shard, opts, OnError(opts.on_error, str(first_shard)), keep_fields=False)
    if not data.texts:
        raise UsageError(f"{first_shard}: no texts to take int8 ranges from; give --calibration")
    log.info("int8 ranges taken from the first %d texts of %s", min(len(data.texts), opts.window), first_shard)
    return int8_ranges(encode_texts(encoder, data.texts[: opts.window], opts))


def _remove_outputs(out: Path, manifest: dict) -> None:
    for entry in manifest.get("shards", {}).values():
        for name in entry.get("outputs", {}):
            with contextlib.suppress(FileNotFoundError):
                (out / name).unlink()
