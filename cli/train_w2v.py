"""vecpipe train-w2v: word vectors from a corpus (SGNS, CBOW, fastText, PPMI)."""
from __future__ import annotations

import click

from vecpipe.cli.options import FORMAT_CHOICE, FORMAT_NAMES, output_option, unicode_errors_option
from vecpipe.core.io.env import current
from vecpipe.core.train.job import train_to_files
from vecpipe.core.train.options import MODELS, TOKENIZERS, TrainOptions
from vecpipe.core.vectors.convert import load_vocab_file


@click.command("train-w2v")
@click.argument("corpus", nargs=-1, type=click.Path(allow_dash=True))
@output_option("Where the vectors go; the name picks the format as in `vecpipe convert` (a folder name = vecdir, "
               ".txt/.vec word2vec text, .bin, .jsonl; .gz/.bz2/.xz compress). Without it: text on stdout "
               "(the sparse text for PPMI), as into a device or pipe (-o /dev/null). Written atomically.", folder_ok=True)
@click.option("--to", "to", type=FORMAT_CHOICE, metavar="FORMAT", help=f"Output format, one of {FORMAT_NAMES}.")
@click.option("--model", type=click.Choice(MODELS), default="sgns", show_default=True,
              help="sgns: skip-gram, negative sampling; cbow; fasttext: skip-gram with character n-grams "
                   "(vectors for unseen words); ppmi: count-based PPMI, sparse (dense with --svd).")
@click.option("--tokenize", type=click.Choice(TOKENIZERS), default="space", show_default=True,
              help="space: pre-segmented text; char: one token per character; jieba: the jieba segmenter "
                   "(pip install 'vecpipe[jieba]').")
@click.option("--dim", type=click.IntRange(min=1), default=300, show_default=True, help="Vector dimensions.")
@click.option("--window", type=click.IntRange(min=1), default=5, show_default=True, help="Context window (words each side).")
@click.option("--dynamic-window/--fixed-window", default=True, show_default=True,
              help="Shrink the window at random as word2vec does (PPMI: weigh distance d by (window-d+1)/window).")
@click.option("--sample", type=click.FloatRange(min=0), default=1e-5, show_default=True,
              help="Subsampling threshold for frequent words (0: off).")
@click.option("--min-count", type=click.IntRange(min=1), default=10, show_default=True, help="Ignore rarer words.")
@click.option("--epochs", type=click.IntRange(min=1), default=5, show_default=True, help="Passes over the corpus.")
@click.option("--negative", type=click.IntRange(min=1), default=5, show_default=True, help="Negative samples.")
@click.option("--alpha", type=click.FloatRange(min=0, min_open=True), default=0.025, show_default=True,
              help="Initial learning rate (decays linearly to --min-alpha).")
@click.option("--min-alpha", type=click.FloatRange(min=0), default=0.0001, show_default=True, help="Final learning rate.")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Training threads (default: all cores).")
@click.option("--seed", type=int, default=1, show_default=True,
              help="Random seed; with --workers 1 the vectors are the same run to run.")
@click.option("--context-vectors", "context_vectors", type=click.Path(allow_dash=True), metavar="PATH",
              help="Also save the context (output) vectors, syn1neg (PPMI: the context columns); format by name.")
@click.option("--min-n", type=click.IntRange(min=1), default=1, show_default=True, help="fasttext: shortest character n-gram.")
@click.option("--max-n", type=click.IntRange(min=1), default=3, show_default=True, help="fasttext: longest character n-gram.")
@click.option("--bucket", type=click.IntRange(min=1), default=2_000_000, show_default=True,
              help="fasttext: hash buckets for character n-grams.")
@click.option("--add-words", "add_words", type=click.Path(allow_dash=True), metavar="FILE",
              help="fasttext: also output vectors for the words in FILE (one per line) that are not in the vocabulary.")
@click.option("--fasttext-bin", "fasttext_bin", type=click.Path(), metavar="PATH",
              help="fasttext: also save the whole model in fastText's .bin format (gensim's load_facebook_model "
                   "reads it and gives vectors for unseen words).")
@click.option("--cds", type=click.FloatRange(min=0, min_open=True), default=0.75, show_default=True,
              help="ppmi: context-distribution smoothing exponent.")
@click.option("--shift", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="ppmi: subtract log(SHIFT) before clipping at 0 (shifted PPMI, like SGNS's negatives).")
@click.option("--svd", type=click.IntRange(min=1), default=None, metavar="DIM",
              help="ppmi: dense DIM-dimensional vectors by truncated SVD (U * S^eig).")
@click.option("--svd-eig", type=float, default=0.5, show_default=True, help="ppmi --svd: eigenvalue weighting exponent.")
@click.option("--ngram-order", type=click.IntRange(1, 2), default=1, show_default=True,
              help="ppmi: 2 adds bigram contexts (ngram2vec's word + ngram co-occurrence).")
@unicode_errors_option
def train_w2v(corpus, output, to, model, tokenize, dim, window, dynamic_window, sample, min_count, epochs, negative,
              alpha, min_alpha, workers, seed, context_vectors, min_n, max_n, bucket, add_words, fasttext_bin, cds,
              shift, svd, svd_eig, ngram_order, unicode_errors):
    """Train word vectors from a corpus.

    Reads the CORPUS files (or - for stdin; .bz2/.gz/.xz decompressed; a
    folder: its files in name order), one sentence or paragraph per line, and
    trains word2vec (gensim) or PPMI (scipy) vectors. The defaults are the Chinese-Word-Vectors recipe: window
    5, dynamic window, subsampling 1e-5, min count 10, 5 epochs, 5 negatives,
    300 dimensions.

    A plain pre-segmented file is handed to gensim's multi-threaded
    corpus_file reader as it is; other input is tokenized into a temporary
    file in $TMPDIR first (as big as the corpus; on Linux it has no name, so
    not even kill -9 leaves it behind). An output may not be one of the
    inputs. meta.json in a vecdir records how the vectors were made. A one-line summary ends on stderr.

    \b
    Examples:
      vecpipe train-w2v corpus.seg.txt -o mine.vecdir
      bzcat wiki.txt.bz2 | vecpipe train-w2v --tokenize jieba --workers 8 -o wiki.vecdir
      vecpipe train-w2v novels/*.txt --tokenize char --model fasttext -o chars.vecdir
      vecpipe train-w2v corpus.seg.txt --model ppmi --ngram-order 2 -o ppmi.sparse.txt.bz2
      vecpipe train-w2v corpus.seg.txt --model ppmi --svd 300 -o svd.vecdir
    """
    if not corpus and current().stdin_isatty:  # else it would sit waiting for a corpus typed in
        raise click.UsageError("no CORPUS given and stdin is a terminal: name the corpus files (or a folder), "
                               "or pipe the text in")
    opts = TrainOptions(
        model=model, dim=dim, window=window, dynamic_window=dynamic_window, sample=sample, min_count=min_count,
        epochs=epochs, negative=negative, alpha=alpha, min_alpha=min_alpha, workers=workers, seed=seed,
        tokenize=tokenize, unicode_errors=unicode_errors, min_n=min_n, max_n=max_n, bucket=bucket, cds=cds,
        shift=shift, svd=svd, svd_eig=svd_eig, ngram_order=ngram_order,
    )
    extra_words = load_vocab_file(add_words) if add_words else None
    result = train_to_files(
        list(corpus), output, opts, to=to, context_output=context_vectors, add_words=extra_words,
        fasttext_bin=fasttext_bin,
    )
    if not click.get_current_context().find_root().params.get("quiet"):
        click.echo(f"vecpipe: {result.summary()}", err=True)
