"""word2vec (SGNS, CBOW) and fastText through gensim, trained in corpus_file
mode on the file corpus.prepare_corpus made. The vocabulary is the one vecpipe
counted while reading, given to gensim with build_vocab_from_freq: the model
equals the one `gensim.models.Word2Vec(corpus_file=...)` builds."""
from __future__ import annotations

import contextlib
import logging

from vecpipe.core.io.progress import progress
from vecpipe.core.train.corpus import Corpus, no_vocabulary
from vecpipe.core.train.options import TrainOptions, gensim_params

log = logging.getLogger("vecpipe")


class _ToVecpipeLog(logging.Handler):
    """gensim's log -> vecpipe's: warnings stay warnings, the rest is debug (-vv)."""

    def emit(self, record):
        level = logging.WARNING if record.levelno >= logging.WARNING else logging.DEBUG
        log.log(level, "gensim: %s", record.getMessage())


@contextlib.contextmanager
def gensim_logging():
    glog = logging.getLogger("gensim")
    saved = (glog.propagate, glog.level)
    handler = _ToVecpipeLog()
    glog.addHandler(handler)
    glog.propagate = False
    glog.setLevel(logging.INFO if log.isEnabledFor(logging.DEBUG) else logging.WARNING)
    try:
        yield
    finally:
        glog.removeHandler(handler)
        glog.propagate, glog.level = saved


def train_gensim(corpus: Corpus, opts: TrainOptions, workers: int):
    """Build the vocabulary from vecpipe's counts and train with corpus_file.
    Returns the gensim model."""
    from gensim.models import FastText, Word2Vec
    from gensim.models.callbacks import CallbackAny2Vec

    if opts.model == "fasttext":
        cls = FastText
    else:
        cls = Word2Vec
    kept = sum(1 for c in corpus.counts.values() if c >= opts.min_count)
    if not kept:
        raise no_vocabulary(opts.min_count, corpus.tokens, corpus.sources)
    total = corpus.tokens * opts.epochs

    class _Progress(CallbackAny2Vec):
        def __init__(self, bar):
            self.bar = bar
            self.epoch = 0

        def on_epoch_begin(self, model):
            self.epoch += 1
            if hasattr(self.bar, "set_description"):
                self.bar.set_description(f"epoch {self.epoch}/{opts.epochs}")

        def on_epoch_end(self, model):
            # corpus_file mode reports progress once per epoch
            self.bar.update(corpus.tokens)

    with gensim_logging(), progress(total=total, unit=" words", unit_scale=True, desc="training") as bar:
        model = cls(**gensim_params(opts, workers))
        model.build_vocab_from_freq(corpus.counts, corpus_count=corpus.sentences)
        model.corpus_total_words = corpus.tokens
        model.train(
            corpus_file=corpus.path,
            total_examples=model.corpus_count,
            total_words=corpus.tokens,
            epochs=model.epochs,
            start_alpha=model.alpha,
            end_alpha=model.min_alpha,
            callbacks=[_Progress(bar)],
        )
    return model
