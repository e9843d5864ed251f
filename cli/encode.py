"""vecpipe encode: texts to vectors with a static or transformer model."""
from __future__ import annotations

import logging

import click

from vecpipe.cli.options import (
    model_spec, model_options, on_error_option, output_option, text_field_option, unicode_errors_option,
)

log = logging.getLogger("vecpipe")


@click.command()
@click.argument("src", type=click.Path(allow_dash=True, readable=False), default="-")  # unreadable: 66, from core
@model_options
@output_option("Write here: x.npy is one .npy array; any other name gets JSONL (or an npy stream with --to npy). "
               "Written under a temporary name, renamed when complete. With sharded input: the output folder.",
               folder_ok=True)
@click.option("--to", type=click.Choice(["jsonl", "npy", "parquet"]),
              help="Output kind (default: npy for -o *.npy, else JSONL; sharded: parquet, or npy + ids per shard).")
@text_field_option
@click.option("--id-field", default="id", show_default=True, help="The field written by --ids-out.")
@click.option("--ids-out", type=click.Path(allow_dash=False), help="Also write each record's id (one JSON value per line), row for row.")
@click.option("--vector-field", default="vector", show_default=True, help="The field that receives the vector in JSONL output.")
@click.option("--normalize", is_flag=True, help="Unit-length vectors (cosine = dot product).")
@click.option("--prompt", help="Text put before every input, e.g. a query instruction.")
@click.option("--query", is_flag=True, help="Use the model's query instruction (from the catalog or the model's config).")
@click.option("--truncate-dim", type=click.IntRange(min=1), help="Keep the first N dimensions (Matryoshka models).")
@click.option("--precision", type=click.Choice(["float32", "float16", "int8", "binary", "ubinary"]), default="float32",
              show_default=True, help="Output precision; int8 ranges are fixed once for the whole output.")
@click.option("--calibration", type=click.Path(dir_okay=False, readable=False),
              help="int8 ranges: a .npy of (2, dim) ranges or sample vectors, or a text file to encode for them.")
@click.option("--ranges-out", type=click.Path(), help="Save the int8 ranges used (default with -o: OUTPUT.ranges.npy).")
@click.option("--max-tokens", type=click.IntRange(min=16),
              help="Token budget per batch: padded batch size x longest text (default: 65536 on GPU, 8192 on CPU).")
@click.option("--batch-size", "max_batch", type=click.IntRange(min=1),
              help="At most this many texts per batch (default: 1024 on GPU, 32 on CPU).")
@click.option("--window", type=click.IntRange(min=1), default=10000, show_default=True,
              help="Records read, encoded and written at a time (memory stays flat).")
@click.option("--resume", is_flag=True, help="Continue an interrupted -o run where it stopped (same input and options; a changed input "
              "or partial output is refused, exit 65).")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Sharded input: encode the shards in this process, or on a Ray cluster (pip install 'vecpipe[ray]').")
@click.option("--ray-address", default="auto", show_default=True, metavar="ADDRESS",
              help="--engine ray: the cluster to join (auto: the one started on this machine, else a local one).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="--engine ray: model replicas (actors), each encoding one shard at a time.")
@click.option("--cpus-per-worker", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="--engine ray: CPUs reserved by each worker (its thread count).")
@click.option("--gpus-per-worker", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="--engine ray: GPUs reserved by each worker (1: one GPU per model replica).")
@on_error_option
@unicode_errors_option
def encode(src, output, to, text_field, id_field, ids_out, vector_field, normalize, prompt, query, truncate_dim,
           precision, calibration, ranges_out, max_tokens, max_batch, window, resume, engine, ray_address, workers,
           cpus_per_worker, gpus_per_worker, on_error, unicode_errors, **model_opts):
    """Encode texts into vectors.

    Reads JSONL records (the text in `text`, or --text-field) or plain text
    lines from SRC or stdin, or a table (*.tsv, *.csv): a header naming the
    columns, or `id<TAB>text` lines (more columns: --text-field N, from 1).
    Writes each record with its `vector` added, in
    input order, or the vectors alone as npy (`-o x.npy`, or an npy stream on
    stdout with --to npy).

    SRC may be a folder or a quoted glob of shards (*.jsonl, *.jsonl.gz,
    *.parquet): -o FOLDER then gets one output shard per input shard (Parquet,
    or npy + ids with --to npy) and a manifest.json; --resume skips the shards
    it records as done; --engine ray runs them on a Ray cluster.

    \b
    Examples:
      vecpipe encode -m bge-small-zh docs.jsonl -o docs.npy --ids-out docs.ids
      cat queries.txt | vecpipe encode -m bge-small-zh --query --normalize
      vecpipe encode -m zhihu.vecdir sentences.txt --to npy > vectors.npys
      vecpipe encode -m m3e-base big.jsonl -o big.npy --resume   # cron-safe
      vecpipe encode -m m3e-base 'docs/*.jsonl.gz' -o docs.vec/ --engine ray --workers 4 --gpus-per-worker 1 --resume
    """
    from vecpipe.core.encode.pipeline import EncodeOptions, run_encode
    from vecpipe.core.encode.shards import is_sharded_input
    from vecpipe.core.errors import UsageError
    from vecpipe.core.models.resolve import catalog_query_prompt

    sharded = is_sharded_input(src)
    if not sharded and (engine != "local" or to == "parquet"):
        raise UsageError(f"{'--engine ray' if engine != 'local' else '--to parquet'} needs sharded input: a folder or a glob of shards")
    if sharded and ids_out:
        raise UsageError("--ids-out is for one output file; sharded output keeps the ids in each shard")
    if to is None:
        to = "parquet" if sharded else "npy" if output and str(output).endswith(".npy") else "jsonl"
    spec = model_spec(**model_opts)
    encoder = None if sharded and not query else spec.load()  # sharded: each engine loads its own
    if query:
        if prompt:
            raise UsageError("--query and --prompt both set a prompt; use one")
        prompt = catalog_query_prompt(model_opts["model"]) or getattr(encoder, "query_prompt", None)
        if not prompt:
            log.warning("the model has no query instruction; --query changes nothing")
    opts = EncodeOptions(
        text_field=text_field, id_field=id_field, vector_field=vector_field, to=to, window=window, on_error=on_error,
        unicode_errors=unicode_errors, prompt=prompt, normalize=normalize, truncate_dim=truncate_dim,
        precision=precision, calibration=calibration, ranges_out=ranges_out, max_tokens=max_tokens, max_batch=max_batch,
    )
    if sharded:
        from vecpipe.core.encode.sharded import RayOptions, run_sharded

        ray_options = RayOptions(address=ray_address, workers=workers, cpus_per_worker=cpus_per_worker,
                                 gpus_per_worker=gpus_per_worker)
        stats = run_sharded(src, output, spec, opts, to=to, engine=engine, resume=resume, ray_options=ray_options)
        if stats.done_before:
            log.info("%d of %d shards were done before", stats.done_before, stats.shards)
    else:
        stats = run_encode(src, output, encoder, opts, ids_out=ids_out, resume=resume, model_name=encoder.identity)
    if stats.skipped:
        log.warning("skipped %d bad records (--on-error skip)", stats.skipped)
    oov, empty = stats.counters.get("oov_tokens", 0), stats.counters.get("empty_texts", 0)
    if oov or empty:
        log.info("%d tokens not in the vocabulary; %d texts had no known word (zero vectors)", oov, empty)
    rate = stats.records / stats.seconds if stats.seconds else 0.0
    before = getattr(stats, "records_before", 0)
    log.info("encoded %d texts in %.1f s (%.0f texts/s)%s", stats.records, stats.seconds, rate,
             f"; {before} were done before, {before + stats.records} in all" if before else "")
