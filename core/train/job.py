"""The whole word-vector training job: check the options and inputs, train
(gensim or PPMI), and write the vectors and the optional extra outputs."""
from __future__ import annotations

import contextlib
import time
from pathlib import Path

import numpy as np

from vecpipe.core.errors import UsageError
from vecpipe.core.io.outputs import atomic_path, check_distinct, check_not_inputs
from vecpipe.core.models.segment import make_tokenizer
from vecpipe.core.train.corpus import check_inputs, prepare_corpus
from vecpipe.core.train.options import GENSIM_MODELS, TrainOptions
from vecpipe.core.train.ppmi import train_ppmi
from vecpipe.core.train.result import TrainResult
from vecpipe.core.train.w2v import gensim_logging, train_gensim
from vecpipe.core.vectors.convert import output_format_for
from vecpipe.core.vectors.readwrite import write_vectors
from vecpipe.core.vectors.vecdir import vecdir_replaceable
from vecpipe.core.vectors.wordvectors import WordVectors


def train(inputs, opts: TrainOptions, *, add_words: list[str] | None = None, tmpdir: str | None = None) -> TrainResult:
    """Train on the corpus files `inputs` ('-' = stdin) and return the vectors."""
    opts.validate()
    inputs = check_inputs(inputs)
    make_tokenizer(opts.tokenize)  # fail now, not after reading, if jieba is missing
    if add_words and opts.model != "fasttext":
        raise UsageError(
            f"--add-words needs --model fasttext: {opts.model} has no vectors for words outside its vocabulary"
        )
    workers = opts.resolved_workers() if opts.model in GENSIM_MODELS else 1
    t0 = time.perf_counter()
    seconds: dict = {}
    if opts.model == "ppmi":
        p = train_ppmi(inputs, opts)
        seconds["train"] = seconds["total"] = time.perf_counter() - t0
        return TrainResult(
            vectors=p.vectors, contexts=p.contexts, opts=opts, workers=1, tokens=p.tokens, lines=p.lines,
            seconds=seconds, sources=p.sources, corpus_mode="in memory (token ids)", extra=p.details,
        )
    with contextlib.closing(prepare_corpus(inputs, opts, tmpdir)) as corpus:
        seconds["read"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        import gensim.models  # noqa: F401  (seconds of its own: not counted as training, nor in words/s)

        seconds["import"] = time.perf_counter() - t1
        t1 = time.perf_counter()
        model = train_gensim(corpus, opts, workers)
        seconds["train"] = time.perf_counter() - t1
    wv = model.wv
    words = list(wv.index_to_key)
    vectors = np.asarray(wv.vectors[: len(words)], dtype=np.float32)
    counts = np.asarray(wv.expandos["count"][: len(words)], dtype=np.int64)  # corpus frequency (for SIF weights)
    extra: dict = {"sentences": corpus.sentences}
    if add_words:
        new = [w for w in dict.fromkeys(add_words) if w not in wv.key_to_index]
        if new:
            vectors = np.concatenate([vectors, np.stack([wv[w] for w in new]).astype(np.float32)])
            counts = np.concatenate([counts, np.zeros(len(new), dtype=np.int64)])
            words = words + new
        extra["added_words"] = {"count": len(new), "how": "fastText character n-grams (not in the training vocabulary)"}
    contexts = WordVectors(list(wv.index_to_key), np.asarray(model.syn1neg, dtype=np.float32))
    seconds["total"] = time.perf_counter() - t0
    return TrainResult(
        vectors=WordVectors(words, vectors, counts=counts), contexts=contexts, opts=opts, workers=workers, tokens=corpus.tokens,
        lines=corpus.lines, seconds=seconds, sources=corpus.sources, corpus_mode=corpus.mode, model=model, extra=extra,
    )


def _format_for(path, explicit: str | None, sparse: bool) -> str:
    fmt = output_format_for(path, explicit)
    if sparse and not explicit and fmt == "word2vec":
        fmt = "sparse"  # PPMI text: the Chinese-Word-Vectors sparse format, not a dense matrix
    if fmt == "vecdir" and path in (None, "-"):
        raise UsageError("a vecdir is a folder: give it a name with -o")
    return fmt


def train_to_files(
    inputs,
    output,
    opts: TrainOptions,
    *,
    to: str | None = None,
    context_output: str | None = None,
    add_words: list[str] | None = None,
    fasttext_bin: str | None = None,
    tmpdir: str | None = None,
) -> TrainResult:
    """Train, then write the vectors to `output` ('-'/None: stdout) and the
    optional extra outputs. Every file output is written under a temporary name
    and all are renamed only once everything is written: a failed or
    interrupted run leaves none of them."""
    opts.validate()
    sparse_out = opts.model == "ppmi" and not opts.svd
    fmt = _format_for(output, to, sparse_out)
    ctx_fmt = _format_for(context_output, None, sparse_out) if context_output else None
    if fasttext_bin and opts.model != "fasttext":
        raise UsageError("--fasttext-bin needs --model fasttext")
    if context_output in ("-",) and output in (None, "-"):
        raise UsageError("the vectors already go to stdout: give --context-vectors a file name")
    outputs = {"-o": output, "--context-vectors": context_output, "--fasttext-bin": fasttext_bin}
    check_distinct(outputs)
    check_not_inputs(outputs, check_inputs(inputs))
    with contextlib.ExitStack() as stack:
        tmp_paths = {}
        for key, path, path_fmt in (("vectors", output, fmt), ("contexts", context_output, ctx_fmt), ("bin", fasttext_bin, None)):
            if path not in (None, "-"):
                folder = path_fmt == "vecdir"
                tmp_paths[key] = stack.enter_context(atomic_path(
                    path, suffix=Path(path).suffix, folder=folder, replaceable=vecdir_replaceable if folder else None))
        result = train(inputs, opts, add_words=add_words, tmpdir=tmpdir)
        t = time.perf_counter()
        meta = result.meta()
        if context_output:
            ctx_meta = dict(meta, contents="context (output) vectors" + (": syn1neg" if opts.model != "ppmi" else ""))
            write_vectors(result.contexts, tmp_paths.get("contexts", "-"), ctx_fmt, meta=ctx_meta)
        if fasttext_bin:
            from gensim.models.fasttext import save_facebook_model

            with gensim_logging():
                save_facebook_model(result.model, str(tmp_paths["bin"]))
        write_vectors(result.vectors, tmp_paths.get("vectors", "-"), fmt, meta=meta)
        result.seconds["write"] = time.perf_counter() - t
        result.seconds["total"] += result.seconds["write"]
    return result
