"""vecpipe mine: hard negatives for `vecpipe finetune`, from a rank window of a model's search."""
from __future__ import annotations

import click

from vecpipe.cli.options import model_options, model_spec, on_error_option, output_option, unicode_errors_option


@click.command()
@click.argument("queries", type=click.Path(allow_dash=True))
@click.option("--corpus", type=click.Path(allow_dash=True), metavar="FILE",
              help="The texts to mine from: JSONL (text, id) or one text a line. Not needed with a retrieval folder.")
@model_options
@output_option()
@click.option("--range", "rank_range", default="10-100", show_default=True, metavar="LO-HI",
              help="Sample negatives from ranks LO to HI of each query's hits, counted from 0 (FlagEmbedding's "
                   "range_for_sampling: skip the LO nearest, likely unlabelled positives).")
@click.option("--negatives", type=click.IntRange(min=1), default=7, show_default=True, help="Negatives per query.")
@click.option("--sample", type=click.Choice(["random", "top"]), default="random", show_default=True,
              help="random: a uniform sample of the window (FlagEmbedding); top: its best-ranked candidates.")
@click.option("--seed", type=int, default=42, show_default=True, help="Seeds the random sample.")
@click.option("--margin", type=float, metavar="M", help="Drop candidates with score + M > the positive's score "
              "(sentence-transformers' absolute_margin; 0: never above the positive).")
@click.option("--relative-margin", type=float, metavar="R", help="Drop candidates scoring above positive - |positive| x R "
              "(sentence-transformers' relative_margin, e.g. 0.05).")
@click.option("--query-prompt", metavar="TEXT", help="Put before each query (default: the model's own query prompt).")
@click.option("--corpus-prompt", metavar="TEXT", help="Put before each corpus text.")
@click.option("--id-field", default="id", show_default=True, help="The id field of queries and corpus records.")
@click.option("--text-field", default="text", show_default=True, help="The text field of corpus records.")
@on_error_option
@unicode_errors_option
def mine(queries, corpus, output, rank_range, negatives, sample, seed, margin, relative_margin, query_prompt,
         corpus_prompt, id_field, text_field, on_error, unicode_errors, **model_opts):
    """Mine hard negatives for training from a rank window of a model's search.

    QUERIES (a file, - for stdin) is JSONL, a query (text, query, anchor) and its positive (text_pos,
    positive, pos: a string or a list; positive ids in pos_id), with --corpus;
    or an `eval retrieval` folder (queries, corpus, qrels: the judged
    documents are the positives). The model encodes both (vecpipe's encode)
    and vecpipe's knn searches the corpus; each query gets --negatives texts
    from its --range of hits, never the query itself or a positive (by text
    and by id). Output: triplet JSONL {text, text_pos, text_neg: [...]}, one
    per positive, that `vecpipe finetune` reads. A query with no candidate
    left is not written (counted on stderr).

    \b
    Examples:
      vecpipe mine -m bge-small-zh pairs.jsonl --corpus docs.jsonl -o triplets.jsonl
      vecpipe mine -m bge-small-zh CMRC2018-retrieval/ --range 2-200 --negatives 15
      vecpipe mine -m bge-small-zh q.jsonl --corpus docs.jsonl | vecpipe finetune -m bge-small-zh - -o out
    """
    import logging

    from vecpipe.core.io.inputs import display_name
    from vecpipe.core.io.jsonl import write_jsonl
    from vecpipe.core.io.outputs import check_not_inputs, open_output
    from vecpipe.core.train import mine as M

    log = logging.getLogger("vecpipe")
    check_not_inputs({"-o": output}, [queries, corpus])
    lo, hi = M.parse_range(rank_range)
    opts = M.MineOptions(lo=lo, hi=hi, negatives=negatives, seed=seed, sample=sample, margin=margin,
                         relative_margin=relative_margin, query_prompt=query_prompt, corpus_prompt=corpus_prompt,
                         text_field=text_field, id_field=id_field, on_error=on_error, unicode_errors=unicode_errors)
    if M.is_retrieval_folder(queries):
        if corpus is not None:
            raise click.UsageError("a retrieval folder brings its own corpus: leave out --corpus")
        q, texts, ids = M.read_retrieval_folder(queries, opts)
    else:
        if corpus is None:
            raise click.UsageError("give --corpus FILE (the texts to mine negatives from), or a retrieval folder")
        if queries == "-" and corpus == "-":
            raise click.UsageError("QUERIES and --corpus cannot both be stdin")
        q, q_bad = M.read_queries(queries, opts)
        texts, ids, c_bad = M.read_corpus(corpus, opts)
        for path, bad in ((queries, q_bad), (corpus, c_bad)):
            if bad:  # OnError shows only the first few
                log.warning("%d bad record(s) skipped in %s", bad, display_name(path))
    encoder = model_spec(**model_opts).load()
    if opts.query_prompt is None:
        opts.query_prompt = encoder.query_prompt or None
    records = M.mine(encoder, q, texts, ids, opts, device=encoder.device)
    with open_output(output) as out:
        write_jsonl(out, records)
    s = records.stats
    if s.empty or s.short:
        log.warning("%d of %d queries got fewer than %d negatives (%d none: not written); widen --range or lower "
                    "the margin", s.short, s.queries, negatives, s.empty)
    secs = s.seconds
    log.info("%d triplets from %d queries and %d corpus texts; encode %.2fs, search %.2fs, sample %.2fs; %d positives "
             "and %d too-close candidates excluded", s.written, s.queries, len(texts), secs["encode"], secs["search"],
             secs["sample"], s.excluded_positives, s.margin_dropped)
