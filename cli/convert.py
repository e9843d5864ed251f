"""vecpipe convert: any word-vector format to any other."""
from __future__ import annotations

import logging

import click

from vecpipe.cli.options import FORMAT_CHOICE, FORMAT_NAMES, on_error_option, output_option, unicode_errors_option
from vecpipe.core.vectors.convert import DTYPES, ConvertOptions, convert as run_convert
from vecpipe.core.vectors.wordvectors import ReadStats

log = logging.getLogger("vecpipe")


@click.command()
@click.argument("src", type=click.Path(allow_dash=True), default="-")
@output_option("Output file or folder; without it, text goes to stdout. The name picks the format "
               "(.bin, .jsonl, .vec/.txt, a folder name = vecdir; .gz/.bz2/.xz compress) unless --to says.", folder_ok=True)
@click.option("--from", "src_format", type=FORMAT_CHOICE, metavar="FORMAT",
              help=f"Input format, one of {FORMAT_NAMES} (default: detected from name and content).")
@click.option("--to", "dst_format", type=FORMAT_CHOICE, metavar="FORMAT",
              help="Output format (default: from the -o name; word2vec on stdout, a device or a pipe; "
                   "sparse vectors written as text stay sparse text).")
@click.option("--limit", type=click.IntRange(min=0), help="Read only the first N rows (the most frequent words, in most files).")
@click.option("--dtype", type=click.Choice(DTYPES), help="Store the vectors as this type.")
@click.option("--normalize", is_flag=True, help="Scale every vector to unit length.")
@click.option("--vocab", "vocab", type=click.Path(allow_dash=True), help="Keep only the words listed in this file (one per line).")
@click.option("--lower", is_flag=True, help="Lowercase the words (the first row wins where two collide).")
@click.option("--svd", type=click.IntRange(min=1), metavar="DIM",
              help="Sparse (PPMI) input: write DIM-dimensional dense vectors, U*S^0.5 of its truncated SVD "
                   "(as train-w2v --model ppmi --svd), which knn, sim and eval analogy can use.")
@click.option("--svd-eig", type=float, metavar="E", help="--svd: the exponent of S (default 0.5; 0 gives U).")
@on_error_option
@unicode_errors_option
def convert(src, output, src_format, dst_format, limit, dtype, normalize, vocab, lower, svd, svd_eig, on_error,
            unicode_errors):
    """Convert word vectors between formats.

    Reads SRC (a file, a vecdir folder, or - for stdin; .bz2/.gz/.xz/.zip are
    decompressed) in any of: word2vec text (with or without the `N D` header;
    fastText .vec), GloVe, word2vec binary, the Chinese-Word-Vectors sparse
    PPMI text, JSONL {"word", "vector"}, vecdir. Duplicate words keep their
    first row. NaN or infinite values are bad input (exit 65) unless
    --on-error skip drops their rows.

    \b
    Examples:
      vecpipe convert sgns.zhihu.word.bz2 -o zhihu.vec/
      vecpipe convert zhihu.vec/ -o zhihu.bin
      vecpipe convert zhihu.vec/ --to jsonl --limit 3
      bzcat sgns.zhihu.word.bz2 | vecpipe convert --limit 50000 --dtype float16 -o top50k.vec/
    """
    opts = ConvertOptions(
        src_format=src_format, dst_format=dst_format, limit=limit, dtype=dtype, normalize=normalize,
        vocab=vocab, lower=lower, svd=svd, svd_eig=svd_eig, on_error=on_error,
        unicode_errors=unicode_errors,
    )
    stats = ReadStats()
    wv = run_convert(src, output, opts, stats)
    if stats.skipped:
        log.warning("skipped %d bad rows (--on-error skip)", stats.skipped)
    log.info("wrote %d words x %d dimensions%s", len(wv), wv.dim, f" to {output}" if output else "")
