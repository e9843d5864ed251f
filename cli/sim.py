"""vecpipe sim: similarity of pairs, all-pairs matrices, score distributions."""
from __future__ import annotations

import logging

import click

from vecpipe.cli.options import model_spec, model_options, output_option, text_field_option


def _print_distribution(dist: dict) -> None:
    if not dist.get("count"):
        click.echo("no scores", err=True)
        return
    click.echo(f"{dist['count']} scores, mean {dist['mean']:.4f}, std {dist['std']:.4f}", err=True)
    click.echo("quantiles: " + "  ".join(f"{q}:{v:.4f}" for q, v in dist["quantiles"].items()), err=True)
    counts = dist["histogram"]["counts"]
    edges = dist["histogram"]["edges"]
    top = max(counts) or 1
    for lo, hi, c in zip(edges, edges[1:], counts):
        click.echo(f"  [{lo:7.4f}, {hi:7.4f})  {c:7d}  {'#' * round(40 * c / top)}", err=True)


@click.command()
@click.argument("src", type=click.Path(allow_dash=True), default="-")
@model_options
@output_option()
@click.option("--fields", default="text1,text2", show_default=True,
              help="The two JSONL fields holding a pair (or a table's header names).")
@click.option("--columns", metavar="A,B", help="Tables (TSV, or CSV for *.csv): the two text columns, numbers from 1 "
                                               "or header names (default: text1<TAB>text2 lines, or a header naming them).")
@click.option("--metric", type=click.Choice(["cosine", "dot", "euclidean"]), default="cosine", show_default=True)
@click.option("--left", type=click.Path(allow_dash=True), help="Vectors: left side (npy); pairs row by row with --right.")
@click.option("--right", type=click.Path(allow_dash=True), help="Vectors: right side (npy).")
@click.option("--matrix", is_flag=True, help="All-pairs scores of one list of texts (-o x.npy, or JSONL rows).")
@click.option("--stats", is_flag=True, help="Print the distribution of scores on stderr (quantiles, histogram).")
@click.option("--plot", type=click.Path(dir_okay=False), help="Draw the score histogram into this PNG (needs matplotlib).")
@click.option("--prompt", help="Text put before every text (e.g. an instruction).")
@click.option("--normalize", is_flag=True, help="Normalise vectors before scoring (changes dot and euclidean).")
@click.option("--window", type=click.IntRange(min=1), default=10000, show_default=True, help="Pairs scored at a time.")
@text_field_option
def sim(src, output, fields, columns, metric, left, right, matrix, stats, plot, prompt, normalize, window, text_field, **model_opts):
    """Score the similarity of pairs.

    Reads pairs as JSONL (text1/text2, or --fields a,b) or a table: TSV lines
    `text1<TAB>text2` (a numeric label may follow), or TSV/CSV whose header
    names the columns (or --columns); other layouts are refused, never guessed.
    Writes each record with a `score`, in input order. With word vectors a
    word pair is a lookup; a side with no known word scores null, with a reason.

    \b
    Examples:
      vecpipe sim -m bge-small-zh pairs.jsonl > scored.jsonl
      vecpipe sim -m zhihu.vecdir wordsim-240.txt --stats
      vecpipe sim --left a.npy --right b.npy
      vecpipe sim -m bge-small-zh --matrix sentences.txt -o sim.npy
    """
    import numpy as np

    from vecpipe.core.encode.pipeline import EncodeOptions, encode_texts
    from vecpipe.core.errors import UsageError
    from vecpipe.core.search.sim import (
        SimStats, distribution, matrix_scores, pair_scores, plot_distribution, read_pairs, read_side, read_texts,
        score_pairs,
    )
    from vecpipe.core.io.jsonl import write_jsonl
    from vecpipe.core.io.npy import write_npy_block
    from vecpipe.core.io.outputs import atomic_path, open_output

    scores_seen = []
    enc_opts = EncodeOptions(prompt=prompt, normalize=normalize)
    if left or right:
        if not (left and right):
            raise UsageError("--left and --right go together")
        x = read_side(left, "--left")
        y = read_side(right, "--right")
        if len(x) != len(y):
            raise UsageError(f"--left has {len(x)} rows, --right {len(y)}")
        s = pair_scores(x, y, metric)
        scores_seen = s.tolist()
        with open_output(output) as out:
            write_jsonl(out, ({"row": i, "score": v} for i, v in enumerate(s)))
    else:
        encoder = model_spec(**model_opts).load()
        if prompt and encoder.word_vectors is not None:
            from vecpipe.cli.knn import PROMPT_WORD_VECTORS

            raise UsageError(PROMPT_WORD_VECTORS)
        if matrix:
            records, texts = read_texts(src, text_field)
            x = encode_texts(encoder, texts, enc_opts)
            if encoder.word_vectors is not None and (empty := np.flatnonzero(~x.any(axis=1))).size:
                # a pair gets null and a reason for such a side; a matrix cannot, so say it
                logging.getLogger("vecpipe").warning(
                    "%d of %d texts have no known word (e.g. %r): their vectors are zeros, so their scores say nothing",
                    len(empty), len(texts), texts[empty[0]])
            m = matrix_scores(x, metric)
            scores_seen = m[np.triu_indices(len(m), 1)].tolist()
            if output and str(output).endswith(".npy"):
                with atomic_path(output) as tmp, open(tmp, "wb") as fh_out:
                    write_npy_block(fh_out, m)
            else:
                with open_output(output) as out:
                    write_jsonl(out, ({**rec, "scores": row} for rec, row in zip(records, m)))
        else:
            names = tuple(f.strip() for f in fields.split(","))
            if len(names) != 2:
                raise UsageError("--fields takes two names: a,b")
            st = SimStats()
            batch = []

            def scored(recs, scores, reasons):
                for rec, score, reason in zip(recs, scores, reasons):
                    rec = {**rec, "score": score}
                    if reason:
                        rec["reason"] = reason
                    scores_seen.append(score)
                    yield rec

            def flush(out):
                recs = [rec for _, rec, _, _ in batch]
                scores, reasons = score_pairs(encoder, [a for *_, a, _ in batch], [b for *_, b in batch], metric, st, enc_opts)
                write_jsonl(out, scored(recs, scores, reasons))
                batch.clear()

            with open_output(output) as out:
                for item in read_pairs(src, names, columns):
                    batch.append(item)
                    if len(batch) >= window:
                        flush(out)
                if batch:
                    flush(out)
            if st.missing:
                logging.getLogger("vecpipe").warning("%d of %d pairs have no score (a side with no known word)", st.missing, st.pairs)
    if stats:
        _print_distribution(distribution(scores_seen))
    if plot:
        plot_distribution(scores_seen, plot)
