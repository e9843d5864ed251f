"""vecpipe eval: the benchmarks of the field (analogy, word similarity, STS,
retrieval, classification) and a report that joins their results."""
from __future__ import annotations

import logging
import time

import click

from vecpipe.cli.options import (
    model_option, model_options, model_spec, on_error_option, output_option, unicode_errors_option,
)

log = logging.getLogger("vecpipe")

RESULT_OUTPUT_HELP = "Write the JSON result here instead of stdout (atomically)."


@click.group(name="eval")
def eval_group():
    """Score models on the benchmarks of the field: analogy, similarity, STS, retrieval, classification.

    Each task prints a table on stderr and a JSON result on stdout (or -o):
    task, model, dataset (path, sha256), metrics, counts, vecpipe version and
    seconds. `vecpipe eval report` joins many results into one table.
    A dataset is a path, a catalog name already fetched (`vecpipe fetch`),
    or - for stdin (a file's figures; named "stdin" in the result).

    \b
    Examples:
      vecpipe eval analogy -m zhihu.vecdir CA8/morphological.txt -o results/zhihu.ca8.json
      vecpipe eval similarity -m zhihu.vecdir wordsim-240.txt
      vecpipe eval sts -m bge-small-zh STS-B.test.data -o results/bge.stsb.json
      vecpipe eval retrieval -m bge-small-zh CMRC2018-retrieval/
      vecpipe eval classify -m bge-small-zh pos.txt neg.txt --folds 5
      vecpipe eval report results/*.json
    """


def _common(f):
    for d in reversed([
        output_option(RESULT_OUTPUT_HELP),
        click.option("--name", "dataset_label", help="The dataset's name in the result and in reports "
                                                     "(default: folder/file, e.g. CA8/morphological)."),
        on_error_option,
        unicode_errors_option,
    ]):
        f = d(f)
    return f


def _finish(task, result, *, model, paths, name, output, load_seconds=0.0):
    """Wrap a runner's dict into the full result; table to stderr, JSON out."""
    from vecpipe.core.eval.common import dumps_result, make_result
    from vecpipe.core.eval.report import summary_table
    from vecpipe.core.io.outputs import open_output

    seconds = result.pop("seconds")
    full = make_result(task, model=model, paths=paths, name=name, seconds=seconds, **result)
    full["load_seconds"] = round(load_seconds, 3)
    if log.isEnabledFor(logging.WARNING):
        click.echo(summary_table(full), err=True, nl=False)
    with open_output(output) as out:
        out.write(dumps_result(full))


def _dataset(arg):
    from vecpipe.core.eval.common import resolve_dataset

    return resolve_dataset(arg)


@eval_group.command()
@click.argument("dataset")
@model_option("Word vectors: a vecdir or word-vector file, builtin:NAME or a catalog name "
              "(default: $VECPIPE_MODEL).")
@click.option("--method", type=click.Choice(["add", "mul", "both"]), default="both", show_default=True,
              help="3CosAdd (gensim's most_similar), 3CosMul (most_similar_cosmul), or both.")
@click.option("--restrict-vocab", type=click.IntRange(min=1), metavar="N",
              help="Only the first N words count as known and as answers (gensim's restrict_vocab). Default: all.")
@click.option("--case-insensitive", is_flag=True, help="Compare words in upper case, the first case variant "
                                                        "winning (gensim's default; the CWV toolkit is case-sensitive).")
@click.option("--block", type=click.IntRange(min=1), default=1024, show_default=True,
              help="Questions answered at a time (memory: about block x 16,384 x 4 bytes per matrix).")
@_common
def analogy(dataset, model, method, restrict_vocab, case_insensitive, block, output, dataset_label, on_error, unicode_errors):
    """Word analogies (CA8, Google): 3CosAdd, 3CosMul.

    DATASET is in the word2vec format: `: category` lines, then `a b c d`
    per line. Answers exclude the question words. Accuracy is over the
    questions whose a, b and c are known (coverage: their share); an unknown d
    counts as wrong, as in the Chinese-Word-Vectors toolkit. gensim's
    convention (questions with any unknown word skipped) is reported beside it
    as 3cosadd_known / 3cosmul_known.

    \b
    Examples:
      vecpipe eval analogy -m sgns.zhihu.word CA8/morphological.txt
      vecpipe eval analogy -m mine.vecdir ca8.morphological --restrict-vocab 300000 -o ca8.json
    """
    from vecpipe.core.errors import UsageError
    from vecpipe.core.eval.analogy import run_analogy
    from vecpipe.core.eval.common import load_word_vectors, model_info
    from vecpipe.core.models.resolve import default_spec

    path = _dataset(dataset)
    started = time.perf_counter()
    spec = model or default_spec()
    wv = load_word_vectors(spec)
    if wv is None:
        raise UsageError(f"{spec}: analogy needs word vectors (a vecdir or word-vector file), not a sentence-transformers model")
    loaded = time.perf_counter() - started
    methods = ("add", "mul") if method == "both" else (method,)
    result = run_analogy(wv, path, methods=methods, restrict=restrict_vocab, case_insensitive=case_insensitive,
                         on_error=on_error, unicode_errors=unicode_errors, query_block=block)
    _finish("analogy", result, model=model_info(spec, wv=wv), paths=[path], name=dataset_label, output=output,
            load_seconds=loaded)


@eval_group.command()
@click.argument("dataset")
@model_options
@click.option("--restrict-vocab", type=click.IntRange(min=1), metavar="N",
              help="Word vectors: only the first N words count as known (gensim's restrict_vocab).")
@click.option("--case-insensitive", is_flag=True, help="Word vectors: look words up in upper case (gensim's default).")
@click.option("--zero-unknown", is_flag=True, help="Score a pair with an unknown word 0 instead of skipping it "
                                                    "(gensim's dummy4unknown).")
@click.option("--score-column", type=click.IntRange(min=3), metavar="N",
              help="The column (from 1) of the gold score when lines carry several numbers "
                   "(COS960: mean, then each rating). Default: 3, the first after the words.")
@_common
def similarity(dataset, restrict_vocab, case_insensitive, zero_unknown, score_column, output, dataset_label, on_error,
               unicode_errors, **model_opts):
    """Word similarity (wordsim-240, COS960): Spearman.

    DATASET has one `word1 word2 score` per line (tab- or space-separated;
    `#` comments and a header line are skipped). Lines with more numbers after
    the words (COS960's `w1 w2 mean r1 ... r15`) are scored on the first of
    them (stderr says so) or on --score-column. With word vectors, pairs with
    an unknown word are skipped and counted, as gensim's evaluate_word_pairs;
    a transformer model encodes each word as a text. Spearman ranks cosines
    rounded to 6 decimals, so that scores equal in exact arithmetic tie.

    \b
    Examples:
      vecpipe eval similarity -m mine.vecdir wordsim-240.txt
      vecpipe eval similarity -m bge-small-zh wordsim-297.txt -o ws297.json
    """
    from vecpipe.core.eval.common import load_word_vectors, model_info
    from vecpipe.core.eval.similarity import run_similarity
    from vecpipe.core.models.resolve import default_spec

    path = _dataset(dataset)
    started = time.perf_counter()
    spec = model_opts["model"] or default_spec()
    wv = load_word_vectors(spec)
    encoder = None if wv is not None else model_spec(**model_opts).load()
    loaded = time.perf_counter() - started
    result = run_similarity(path, wv=wv, encoder=encoder, restrict=restrict_vocab, case_insensitive=case_insensitive,
                            zero_unknown=zero_unknown, score_column=score_column, on_error=on_error,
                            unicode_errors=unicode_errors)
    _finish("similarity", result, model=model_info(spec, encoder=encoder, wv=wv), paths=[path], name=dataset_label,
            output=output, load_seconds=loaded)


@eval_group.command()
@click.argument("dataset")
@model_options
@click.option("--prompt", help="Text put before every sentence (both sides).")
@click.option("--fields", default="sentence1,sentence2,label", show_default=True,
              help="JSONL input (or a table's header): the names of the two sentences and the label.")
@click.option("--columns", metavar="A,B,LABEL", help="Tables without a header naming them: the columns of the two "
                                                     "sentences and the label, numbers from 1 (e.g. 2,3,4) or header names.")
@_common
def sts(dataset, prompt, fields, columns, output, dataset_label, on_error, unicode_errors, **model_opts):
    """Sentence pairs (STS-B, LCQMC, PAWS-X, BQ): Spearman.

    DATASET is a table or JSONL. Tables: `sentence1<TAB>sentence2<TAB>label`
    lines (STS-B, LCQMC); a header line naming the columns, whatever their
    order and number (PAWS-X's `id sentence1 sentence2 label`); `*.csv` read
    as CSV (quoted fields, a byte-order mark: BQ); other layouts need
    --columns. JSONL records have sentence1, sentence2 and label (--fields).
    The score is Spearman's correlation between the labels and the cosine
    similarities of the two embeddings (rounded to 6 decimals, so exact ties
    stay ties), as text2vec reports it (Pearson beside it). Each distinct
    sentence is encoded once.

    \b
    Examples:
      vecpipe eval sts -m bge-small-zh STS-B/STS-B.test.data
      vecpipe eval sts -m text2vec-base-chinese LCQMC/test.txt -o lcqmc.json
      vecpipe eval sts -m zhihu.vecdir sohu.jsonl --fields sentence1,sentence2,label
      vecpipe eval sts -m bge-small-zh pawsx.test
      vecpipe eval sts -m bge-small-zh pairs-with-ids.tsv --columns 2,3,4
    """
    from vecpipe.core.errors import UsageError
    from vecpipe.core.eval.common import model_info
    from vecpipe.core.eval.sts import run_sts
    from vecpipe.core.models.resolve import default_spec

    names = tuple(f.strip() for f in fields.split(","))
    if len(names) != 3 or not all(names):
        raise UsageError("--fields takes three names: sentence1,sentence2,label")
    path = _dataset(dataset)
    started = time.perf_counter()
    encoder = model_spec(**model_opts).load()
    loaded = time.perf_counter() - started
    result = run_sts(encoder, path, prompt=prompt, fields=names, columns=columns, on_error=on_error,
                     unicode_errors=unicode_errors)
    _finish("sts", result, model=model_info(model_opts["model"] or default_spec(), encoder=encoder), paths=[path],
            name=dataset_label, output=output, load_seconds=loaded)


@eval_group.command()
@click.argument("dataset", required=False)
@model_options
@click.option("--queries", type=click.Path(readable=False), help="Queries: id<TAB>text, or JSONL {_id, text} (default: in DATASET).")
@click.option("--corpus", type=click.Path(readable=False), help="Documents: id<TAB>text (or id<TAB>title<TAB>text), or JSONL "
                                                  "{_id, title, text} (default: in DATASET).")
@click.option("--qrels", type=click.Path(readable=False), help="Judgments: query-id<TAB>corpus-id<TAB>score (header allowed), TREC "
                                                 "qrels, or JSONL (default: DATASET/qrels/SPLIT.tsv or qrels.tsv).")
@click.option("--split", default="test", show_default=True, help="BEIR layout: which qrels/SPLIT.tsv to use.")
@click.option("--query-prompt", help="Put this before each query (default: the model's query instruction, if any).")
@click.option("--no-query-prompt", is_flag=True, help="Encode queries as they are, even if the model has an instruction.")
@click.option("--corpus-prompt", help="Put this before each document.")
@click.option("--depth", type=click.IntRange(min=1), default=100, show_default=True,
              help="Documents retrieved per query (MAP is computed over this depth).")
@click.option("--keep-identical-ids", is_flag=True, help="Allow a document whose id equals the query id to be "
                                                         "retrieved (BEIR and MTEB drop it).")
@_common
def retrieval(dataset, queries, corpus, qrels, split, query_prompt, no_query_prompt, corpus_prompt, depth,
              keep_identical_ids, output, dataset_label, on_error, unicode_errors, **model_opts):
    """Retrieval (BEIR-like): nDCG@10, MRR, MAP.

    DATASET is a folder with queries, corpus and qrels (BEIR's corpus.jsonl,
    queries.jsonl, qrels/test.tsv, or queries.tsv, corpus.tsv, qrels.tsv), or
    give the three files with --queries, --corpus and --qrels. DATASET may
    also be a SQuAD v1 JSON file (CMRC 2018): its contexts are the corpus, its
    questions the queries, each question's own context the relevant document
    (a context given twice is one document). The corpus and
    the judged queries are encoded (queries with the model's query
    instruction, where it has one), ranked by cosine with exact top-k, and
    scored as trec_eval does (linear gains for nDCG).

    \b
    Examples:
      vecpipe eval retrieval -m bge-small-zh CMRC2018-retrieval/
      vecpipe eval retrieval -m bge-small-zh cmrc2018_dev.json
      vecpipe eval retrieval -m m3e-base --queries q.tsv --corpus docs.jsonl --qrels qrels.tsv -o r.json
    """
    from vecpipe.core.errors import UsageError
    from vecpipe.core.eval.common import model_info
    from vecpipe.core.eval.retrieval import find_retrieval_files, run_retrieval, run_squad_retrieval
    from vecpipe.core.models.resolve import catalog_query_prompt, default_spec

    if query_prompt and no_query_prompt:
        raise UsageError("--query-prompt and --no-query-prompt contradict each other; use one")
    files = {"queries": queries, "corpus": corpus, "qrels": qrels}
    squad = None
    if dataset is not None:
        path = _dataset(dataset)
        if path.is_dir():
            found = find_retrieval_files(path, split)
            files = {k: v or found[k] for k, v in files.items()}
        elif any(files.values()):
            raise UsageError(f"{dataset}: a SQuAD file holds the queries, corpus and judgments; "
                             "do not add --queries, --corpus or --qrels")
        else:
            squad = path
    missing = [k for k, v in files.items() if v is None]
    if missing and squad is None:
        raise UsageError(f"give a DATASET folder or --{' --'.join(missing)}")
    if squad is None:
        files = {k: _dataset(v) for k, v in files.items()}
    started = time.perf_counter()
    encoder = model_spec(**model_opts).load()
    loaded = time.perf_counter() - started
    spec = model_opts["model"] or default_spec()
    if not no_query_prompt and query_prompt is None:
        query_prompt = catalog_query_prompt(spec) or getattr(encoder, "query_prompt", None)
    if no_query_prompt:
        query_prompt = None
    if squad is not None:
        result = run_squad_retrieval(encoder, squad, query_prompt=query_prompt, corpus_prompt=corpus_prompt,
                                     depth=depth, on_error=on_error)
        paths = [squad]
    else:
        result = run_retrieval(encoder, files["queries"], files["corpus"], files["qrels"], query_prompt=query_prompt,
                               corpus_prompt=corpus_prompt, depth=depth, ignore_identical_ids=not keep_identical_ids,
                               on_error=on_error, unicode_errors=unicode_errors)
        paths = [files["queries"], files["corpus"], files["qrels"]]
    _finish("retrieval", result, model=model_info(spec, encoder=encoder), paths=paths, name=dataset_label,
            output=output, load_seconds=loaded)


@eval_group.command()
@click.argument("data", nargs=-1, required=True)
@model_options
@click.option("--test", "test_data", multiple=True, help="Labelled test data (same layout as DATA; repeat for one "
                                                         "file per label). Default: split DATA.")
@click.option("--folds", type=click.IntRange(min=2), help="Stratified k-fold cross-validation instead of one split.")
@click.option("--test-size", type=float, default=0.2, show_default=True, help="The held-out share of a fixed split.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split, subsampling and classifier.")
@click.option("--max-per-label", type=click.IntRange(min=1), help="Use at most N texts per label (random, seeded).")
@click.option("--max-iter", type=click.IntRange(min=1), default=100, show_default=True,
              help="Logistic regression iterations (MTEB uses 100).")
@click.option("--C", "C", type=float, default=1.0, show_default=True, help="Inverse regularisation strength.")
@click.option("--prompt", help="Text put before every text.")
@click.option("--text-field", default="text", show_default=True, help="JSONL input: the field with the text.")
@click.option("--label-field", default="label", show_default=True, help="JSONL input: the field with the label.")
@click.option("--tsv-order", type=click.Choice(["label-text", "text-label"]), default="label-text", show_default=True,
              help="TSV input: label<TAB>text or text<TAB>label.")
@_common
def classify(data, test_data, folds, test_size, seed, max_per_label, max_iter, C, prompt, text_field, label_field,
             tsv_order, output, dataset_label, on_error, unicode_errors, **model_opts):
    """Classification (MTEB-like): accuracy, F1.

    DATA is one file of labelled texts (JSONL {text, label}, label<TAB>text
    lines, or a CSV file with a header such as label,review), or several
    files, one per label, the label being
    the file name without extension (pos.txt, neg.txt). Evaluated on a
    stratified split (--test-size), by k-fold (--folds), or on --test data,
    as MTEB's classification tasks do. Needs scikit-learn
    (pip install 'vecpipe[classify]').

    \b
    Examples:
      vecpipe eval classify -m bge-small-zh review-sentiment/pos.txt review-sentiment/neg.txt
      vecpipe eval classify -m mine.vecdir train.jsonl --test test.jsonl -o tnews.json
      vecpipe eval classify -m m3e-base news.tsv --folds 5 --max-per-label 2000
    """
    from vecpipe.core.eval.classify import require_sklearn, run_classify
    from vecpipe.core.eval.common import model_info
    from vecpipe.core.models.resolve import default_spec

    require_sklearn()
    paths = [_dataset(p) for p in data]
    tests = [_dataset(p) for p in test_data] or None
    started = time.perf_counter()
    encoder = model_spec(**model_opts).load()
    loaded = time.perf_counter() - started
    result = run_classify(encoder, paths, test_paths=tests, folds=folds, test_size=test_size, seed=seed,
                          max_iter=max_iter, C=C, max_per_label=max_per_label, prompt=prompt, text_field=text_field,
                          label_field=label_field, tsv_order=tsv_order, on_error=on_error, unicode_errors=unicode_errors)
    _finish("classify", result, model=model_info(model_opts["model"] or default_spec(), encoder=encoder),
            paths=paths + (tests or []), name=dataset_label, output=output, load_seconds=loaded)


@eval_group.command()
@click.argument("results", nargs=-1, required=True)
@output_option("Write the table here instead of stdout (atomically).")
@click.option("--format", "fmt", type=click.Choice(["md", "tsv", "text"]), default="md", show_default=True,
              help="Markdown, TSV, or aligned text.")
@click.option("--layout", type=click.Choice(["wide", "long"]), default="wide", show_default=True,
              help="wide: a row per model, a column per dataset; long: a row per result and metric.")
@click.option("--metric", "metrics", multiple=True, help="Show this metric (repeatable; default: each task's headline).")
@click.option("--percent", is_flag=True, help="Show scores x 100 with two decimals, as most papers do.")
def report(results, output, fmt, layout, metrics, percent):
    """Join eval results into one table.

    A row per model and a column per dataset with its headline metric
    (3CosAdd/3CosMul, Spearman, nDCG@10, accuracy), or --layout long for a
    row per result and metric.

    \b
    Examples:
      vecpipe eval report results/*.json
      vecpipe eval report results/*.json --format tsv --metric spearman -o table.tsv
      vecpipe eval report results/*.json --layout long --percent
    """
    from vecpipe.core.eval.report import read_results, report_table
    from vecpipe.core.io.outputs import open_output

    table = report_table(read_results(results), fmt=fmt, layout=layout, metrics=list(metrics) or None, percent=percent)
    with open_output(output) as out:
        out.write(table.encode("utf-8"))
