"""Training word vectors from a corpus: word2vec (SGNS, CBOW) and fastText
through gensim, and count-based PPMI (+ SVD) through numpy and scipy.

The defaults are the Chinese-Word-Vectors recipe: window 5, dynamic window,
subsampling 1e-5, min count 10, 5 epochs, 5 negatives, 300 dimensions.

Corpus handling (one sentence or paragraph per line; a window never crosses a
line):
- gensim models train in gensim's `corpus_file` mode (C++ reader, threads that
  scale with cores). A single plain (uncompressed) regular file with `space`
  tokenization is handed to gensim as it is; anything else (stdin, .bz2/.gz,
  several files, `char`/`jieba` tokenization, text that gensim's reader would
  split differently) is first tokenized, streaming, into a temporary file of
  space-separated tokens in $TMPDIR, which is removed afterwards. The corpus is
  never held in memory as Python lists.
- The vocabulary is counted by vecpipe in the same pass that reads the text
  (and checks its UTF-8), then given to gensim with build_vocab_from_freq: the
  model equals the one `gensim.models.Word2Vec(corpus_file=...)` builds.
- PPMI keeps the token ids in memory (4 bytes a token) and counts
  co-occurrences with numpy, one window offset at a time.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import logging
import os
import re
import stat
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from vecpipe import __version__
from vecpipe.core.vectors.convert import output_format_for
from vecpipe.core.errors import DataError, NoInputError, UsageError
from vecpipe.core.vectors.readwrite import write_vectors
from vecpipe.core.vectors.vecdir import vecdir_replaceable
from vecpipe.core.vectors.wordvectors import WordVectors
from vecpipe.core.io.progress import progress
from vecpipe.core.io.inputs import display_name, open_input
from vecpipe.core.io.outputs import atomic_path, check_distinct
from vecpipe.core.models.segment import make_tokenizer

log = logging.getLogger("vecpipe")

MODELS = ("sgns", "cbow", "fasttext", "ppmi")
TOKENIZERS = ("space", "char", "jieba")  # of core.segment's; "auto" needs a vocabulary
GENSIM_MODELS = ("sgns", "cbow", "fasttext")
NGRAM_JOIN = "@$"  # how ngram2vec names a bigram context: 'a@$b'
CHUNK_BYTES = 1 << 23  # text read per step
MAX_SENTENCE = 10000  # gensim cuts longer lines into sentences of this many tokens
PPMI_BLOCK = 1 << 20  # token positions per counting step (pairs of one step: ~16 bytes x 2 x window each)

# the characters that str.split() takes as whitespace but gensim's corpus_file
# reader (C++ `istream >> word`: ASCII whitespace only) does not
_NON_ASCII_SPACE = re.compile("[\x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]")


@dataclass
class TrainOptions:
    model: str = "sgns"
    dim: int = 300
    window: int = 5
    dynamic_window: bool = True
    sample: float = 1e-5
    min_count: int = 10
    epochs: int = 5
    negative: int = 5
    alpha: float = 0.025
    min_alpha: float = 0.0001
    workers: int | None = None  # None: all cores this process may use
    seed: int = 1
    tokenize: str = "space"
    unicode_errors: str = "strict"
    # fasttext
    min_n: int = 1
    max_n: int = 3
    bucket: int = 2_000_000
    # ppmi
    cds: float = 0.75
    shift: float = 1.0
    svd: int | None = None
    svd_eig: float = 0.5
    ngram_order: int = 1

    def resolved_workers(self) -> int:
        if self.workers:
            return self.workers
        try:
            return len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            return os.cpu_count() or 1

    def validate(self) -> None:
        if self.model not in MODELS:
            raise UsageError(f"unknown model {self.model!r}; choose one of: {', '.join(MODELS)}")
        if self.tokenize not in TOKENIZERS:
            raise UsageError(f"unknown tokenizer {self.tokenize!r}; choose one of: {', '.join(TOKENIZERS)}")
        if self.unicode_errors not in ("strict", "replace", "ignore"):
            raise UsageError("--unicode-errors must be strict, replace or ignore")
        for name in ("dim", "window", "min_count", "epochs", "negative", "min_n", "max_n", "bucket"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
        if self.min_n > self.max_n:
            raise UsageError("--min-n must not exceed --max-n")
        if self.sample < 0 or self.alpha <= 0 or self.min_alpha < 0:
            raise UsageError("--sample and --min-alpha must be >= 0 and --alpha > 0")
        if self.workers is not None and self.workers < 1:
            raise UsageError("--workers must be at least 1")
        if self.model == "ppmi":
            if self.cds <= 0 or self.shift <= 0:
                raise UsageError("--cds and --shift must be > 0")
            if self.svd is not None and self.svd < 1:
                raise UsageError("--svd must be at least 1")
            if self.ngram_order not in (1, 2):
                raise UsageError("--ngram-order must be 1 (word contexts) or 2 (words and bigrams)")
        elif self.svd is not None or self.ngram_order != 1:
            raise UsageError("--svd and --ngram-order apply to --model ppmi only")

    def params(self) -> dict:
        """The hyperparameters that apply to this model (recorded in meta.json)."""
        keys = ["dim", "window", "dynamic_window", "sample", "min_count"]
        if self.model in GENSIM_MODELS:
            keys += ["epochs", "negative", "alpha", "min_alpha"]
        if self.model == "fasttext":
            keys += ["min_n", "max_n", "bucket"]
        if self.model == "ppmi":
            keys = ["window", "dynamic_window", "sample", "min_count", "cds", "shift", "ngram_order", "svd"]
            if self.svd:
                keys += ["dim", "svd_eig"]
        d = asdict(self)
        out = {k: d[k] for k in keys}
        if self.model == "ppmi" and self.svd:
            out["dim"] = self.svd
        return out


def gensim_params(opts: TrainOptions, workers: int) -> dict:
    """Exactly the keyword arguments given to gensim's Word2Vec / FastText."""
    params = dict(
        vector_size=opts.dim,
        window=opts.window,
        shrink_windows=opts.dynamic_window,
        sample=opts.sample,
        min_count=opts.min_count,
        epochs=opts.epochs,
        negative=opts.negative,
        hs=0,
        ns_exponent=0.75,
        alpha=opts.alpha,
        min_alpha=opts.min_alpha,
        sg=0 if opts.model == "cbow" else 1,
        cbow_mean=1,
        seed=opts.seed,
        workers=workers,
        max_vocab_size=None,
        sorted_vocab=1,
    )
    if opts.model == "fasttext":
        params.update(min_n=opts.min_n, max_n=opts.max_n, bucket=opts.bucket)
    return params


# ---------------------------------------------------------------- reading the corpus


@dataclass
class Source:
    path: str
    bytes: int = 0  # text bytes read (after decompression)
    sha256: str = ""  # of the text read

    def info(self) -> dict:
        d = {"path": self.path, "bytes": self.bytes, "sha256": self.sha256}
        if self.path != "<stdin>":
            d["abspath"] = str(Path(self.path).resolve())
        return d


@dataclass
class Corpus:
    """What gensim trains on, and what vecpipe counted while reading it."""

    path: str  # the file handed to gensim (the input itself, or a tokenized copy)
    counts: Counter  # raw vocabulary, in order of first appearance
    tokens: int
    sentences: int  # as gensim counts them (non-empty lines, cut at 10,000 tokens)
    lines: int
    mode: str  # "corpus_file" (the input as it is) or "tokenized copy"
    sources: list[Source] = field(default_factory=list)


def _check_inputs(inputs: list[str]) -> list[str]:
    inputs = list(inputs) or ["-"]
    if inputs.count("-") > 1:
        raise UsageError("stdin (-) can be read only once")
    for p in inputs:
        if p == "-":
            continue
        if not os.path.exists(p):
            raise NoInputError(f"{p}: no such file")
        if os.path.isdir(p):
            raise UsageError(f"{p}: is a directory (give the corpus files)")
    return inputs


def _chunks(fh):
    """Byte chunks of about CHUNK_BYTES that end on a line boundary."""
    while True:
        chunk = fh.read(CHUNK_BYTES)
        if not chunk:
            return
        if not chunk.endswith(b"\n"):
            chunk += fh.readline()
        yield chunk


def _decode(chunk: bytes, name: str, first_line: int, errors: str) -> str:
    try:
        return chunk.decode("utf-8")
    except UnicodeDecodeError as exc:
        if errors == "strict":
            line = first_line + chunk.count(b"\n", 0, exc.start)
            col = exc.start - (chunk.rfind(b"\n", 0, exc.start) + 1)
            raise DataError(f"invalid UTF-8 at byte {col} of the line (try --unicode-errors replace)", name, line) from None
        return chunk.decode("utf-8", errors)


def _sentences_in(n_tokens: int) -> int:
    return -(-n_tokens // MAX_SENTENCE)


def _read_error(exc: Exception, name: str) -> DataError:
    return DataError(f"cannot read: {exc} (truncated or corrupt file?)", name)


def _char_tokens(text: str) -> list[str]:
    # core.segment's `char` ([c for c in text if not c.isspace()]) done in C:
    # str.split() and str.isspace() share one definition of whitespace
    return list("".join(text.split()))


def tokenizer_for(name: str):
    """core.segment's tokenizer `name`, with a faster equivalent for `char`."""
    return _char_tokens if name == "char" else make_tokenizer(name)


def iter_token_lines(inputs, tokenizer, unicode_errors: str, sources: list[Source], bar):
    """For each chunk of the inputs, the token lists of its non-empty lines.
    Streams: one chunk of text in memory at a time."""
    for path in inputs:
        name = display_name(path)
        src = Source(name)
        sources.append(src)
        digest = hashlib.sha256()
        fh = open_input(path)
        line_no = 1
        try:
            for chunk in _chunks(fh):
                digest.update(chunk)
                src.bytes += len(chunk)
                bar.update(len(chunk))
                text = _decode(chunk, name, line_no, unicode_errors)
                line_no += chunk.count(b"\n")
                lines = text.split("\n")
                if lines[-1] == "":
                    lines.pop()
                yield len(lines), [toks for toks in map(tokenizer, lines) if toks]
        except (EOFError, OSError) as exc:
            if isinstance(exc, (BrokenPipeError, FileNotFoundError)):
                raise
            raise _read_error(exc, name) from None
        finally:
            fh.close()
        src.sha256 = digest.hexdigest()


def _is_compressed(path: str) -> bool:
    fh = open_input(path)  # decompresses by magic bytes: then its raw stream is no plain file
    try:
        return not isinstance(fh.raw, io.FileIO)
    finally:
        fh.close()


def _is_plain_regular_file(path: str) -> bool:
    if path == "-":
        return False
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False  # a pipe (<(...)) cannot be read from several offsets
    except OSError:
        return False
    return not _is_compressed(path)


def _scan_plain(path: str, bar) -> Corpus | None:
    """Count the vocabulary of a plain, space-tokenized file that gensim can read
    directly. None when gensim's reader would see the text differently (invalid
    UTF-8, non-ASCII whitespace): the caller then makes a tokenized copy."""
    counts: Counter = Counter()
    tokens = sentences = lines = 0
    digest = hashlib.sha256()
    src = Source(display_name(path))
    with open(path, "rb") as fh:
        for chunk in _chunks(fh):
            bar.update(len(chunk))
            try:
                text = chunk.decode("utf-8")
            except UnicodeDecodeError:
                return None
            if not src.bytes and text.startswith("\ufeff"):
                return None  # a byte-order mark gensim would read as text: the tokenized copy drops it
            if _NON_ASCII_SPACE.search(text):
                log.debug("%s: non-ASCII whitespace; training on a tokenized copy", path)
                return None
            digest.update(chunk)
            src.bytes += len(chunk)
            toks = text.split()
            counts.update(toks)
            tokens += len(toks)
            for line in text.split("\n"):
                if len(line) >= 2 * MAX_SENTENCE:  # only such a line can hold more than 10,000 tokens
                    sentences += _sentences_in(len(line.split()))
                elif line and not line.isspace():
                    sentences += 1
            lines += chunk.count(b"\n") + (0 if chunk.endswith(b"\n") else 1)
    src.sha256 = digest.hexdigest()
    return Corpus(path=str(path), counts=counts, tokens=tokens, sentences=sentences, lines=lines,
                  mode="corpus_file", sources=[src])


def _write_tokenized(inputs, tokenizer, unicode_errors: str, out_path: Path, bar) -> Corpus:
    counts: Counter = Counter()
    tokens = sentences = lines = 0
    sources: list[Source] = []
    with open(out_path, "wb", buffering=1 << 20) as out:
        for n_lines, token_lists in iter_token_lines(inputs, tokenizer, unicode_errors, sources, bar):
            lines += n_lines
            if not token_lists:
                continue
            for toks in token_lists:
                counts.update(toks)
                n = len(toks)
                tokens += n
                sentences += 1 if n <= MAX_SENTENCE else _sentences_in(n)
            out.write(("\n".join(map(" ".join, token_lists)) + "\n").encode("utf-8"))
    return Corpus(path=str(out_path), counts=counts, tokens=tokens, sentences=sentences, lines=lines,
                  mode="tokenized copy", sources=sources)


def _total_bytes(inputs) -> int | None:
    total = 0
    for p in inputs:
        if p == "-":
            return None
        if not stat.S_ISREG(os.stat(p).st_mode) or _is_compressed(p):
            return None
        total += os.path.getsize(p)
    return total


def prepare_corpus(inputs, opts: TrainOptions, tmpdir: str) -> Corpus:
    """Count the vocabulary and give gensim a file it can read with corpus_file."""
    tokenizer = tokenizer_for(opts.tokenize)
    with progress(total=_total_bytes(inputs), unit="B", unit_scale=True, desc="reading") as bar:
        if len(inputs) == 1 and opts.tokenize == "space" and _is_plain_regular_file(inputs[0]):
            corpus = _scan_plain(inputs[0], bar)
            if corpus is not None:
                return corpus
            if hasattr(bar, "reset"):
                bar.reset()
        return _write_tokenized(inputs, tokenizer, opts.unicode_errors, Path(tmpdir) / "corpus.txt", bar)


# ---------------------------------------------------------------- results


@dataclass
class TrainResult:
    vectors: WordVectors
    contexts: WordVectors | None
    opts: TrainOptions
    workers: int
    tokens: int
    lines: int
    seconds: dict
    sources: list[Source]
    corpus_mode: str
    model: object = None  # the gensim model (word2vec / fasttext), when there is one
    extra: dict = field(default_factory=dict)

    @property
    def vocab_size(self) -> int:
        return len(self.vectors)

    @property
    def words_per_second(self) -> float:
        """Corpus tokens times epochs, per second of training (gensim's 'raw words')."""
        epochs = self.opts.epochs if self.opts.model in GENSIM_MODELS else 1
        secs = self.seconds.get("train") or 1e-9
        return self.tokens * epochs / secs

    def vector(self, word: str) -> np.ndarray:
        """The vector of `word`; fastText builds one for an unseen word from its
        character n-grams, the other models cannot."""
        idx = self.vectors.index.get(word)
        if idx is not None:
            row = self.vectors.vectors[idx]
            return row.toarray().ravel() if hasattr(row, "toarray") else np.asarray(row)
        if self.opts.model == "fasttext" and self.model is not None:
            return np.asarray(self.model.wv[word])
        raise UsageError(
            f"{word!r} is not in the vocabulary of this {self.opts.model} model, which has no vector for "
            "unseen words; only --model fasttext builds them (from character n-grams)"
        )

    def meta(self) -> dict:
        import numpy

        libs = {"numpy": numpy.__version__}
        if self.opts.model in GENSIM_MODELS:
            import gensim

            libs["gensim"] = gensim.__version__
        else:
            import scipy

            libs["scipy"] = scipy.__version__
        training = {
            "model": self.opts.model,
            "params": self.opts.params(),
            "seed": self.opts.seed,
            "workers": self.workers,
            "reproducible": self.workers == 1 or self.opts.model == "ppmi",
            "tokenize": self.opts.tokenize,
            "unicode_errors": self.opts.unicode_errors,
            "corpus": [s.info() for s in self.sources],
            "corpus_mode": self.corpus_mode,
            "tokens": self.tokens,
            "lines": self.lines,
            "vocab_size": self.vocab_size,
            "row_order": "descending corpus frequency (ties: later first occurrence first, as gensim)",
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "words_per_second": round(self.words_per_second),
            **self.extra,
        }
        if self.opts.model in GENSIM_MODELS:
            training["gensim_params"] = gensim_params(self.opts, self.workers)
        return {
            "normalized": False,
            "made_by": {"tool": f"vecpipe {__version__}", "command": "train-w2v", "libraries": libs},
            "training": training,
        }

    def summary(self) -> str:
        secs = self.seconds
        if self.opts.model == "ppmi":
            m = self.vectors.vectors
            shape = f"{len(self.vectors):,} words x {self.vectors.dim:,} {'dims (SVD)' if self.opts.svd else 'contexts'}"
            nnz = "" if self.opts.svd else f" ({self.extra.get('nonzeros', getattr(m, 'nnz', 0)):,} non-zero)"
            return (f"ppmi: {shape}{nnz} from {self.tokens:,} tokens in {secs['total']:.1f} s "
                    f"({self.tokens / max(secs['total'], 1e-9):,.0f} tokens/s)")
        return (f"{self.opts.model}: vocabulary {len(self.vectors):,} words x {self.vectors.dim}, "
                f"{self.tokens:,} tokens x {self.opts.epochs} epochs, trained in {secs['train']:.1f} s "
                f"({self.words_per_second:,.0f} words/s, {self.workers} worker{'s' if self.workers != 1 else ''}); total {secs['total']:.1f} s")


# ---------------------------------------------------------------- gensim models


class _ToVecpipeLog(logging.Handler):
    """gensim's log -> vecpipe's: warnings stay warnings, the rest is debug (-vv)."""

    def emit(self, record):
        level = logging.WARNING if record.levelno >= logging.WARNING else logging.DEBUG
        log.log(level, "gensim: %s", record.getMessage())


@contextlib.contextmanager
def _gensim_logging():
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
        raise DataError(
            f"no word occurs --min-count {opts.min_count} times in the {corpus.tokens:,} tokens of the corpus "
            "(lower --min-count, or check --tokenize)"
        )
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

    with _gensim_logging(), progress(total=total, unit=" words", unit_scale=True, desc="training") as bar:
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


# ---------------------------------------------------------------- PPMI


def _read_ids(inputs, opts: TrainOptions, sources: list[Source]):
    """One pass: token ids by first appearance, -1 between lines."""
    from array import array

    tokenizer = tokenizer_for(opts.tokenize)
    index: defaultdict = defaultdict(itertools.count().__next__)
    lookup = index.__getitem__
    buf = array("i")
    lines = 0
    with progress(total=_total_bytes(inputs), unit="B", unit_scale=True, desc="reading") as bar:
        for n_lines, token_lists in iter_token_lines(inputs, tokenizer, opts.unicode_errors, sources, bar):
            lines += n_lines
            for toks in token_lists:
                buf.extend(map(lookup, toks))
                buf.append(-1)
    ids = np.frombuffer(buf, dtype=np.intc).astype(np.int32, copy=False) if len(buf) else np.empty(0, np.int32)
    return ids, list(index), lines


def _frequency_order(counts: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Indices of `keep` ordered by descending count; ties: the later first
    appearance first (gensim's sort_by_descending_frequency)."""
    return keep[np.lexsort((-keep, -counts[keep]))]


def _subsample_mask(ids: np.ndarray, counts: np.ndarray, threshold: float, rng) -> np.ndarray:
    """True where an occurrence is dropped: probability 1 - sqrt(t*N / count)
    for items seen more than t*N times (ngram2vec's and hyperwords' formula)."""
    p_drop = np.zeros(len(counts), dtype=np.float64)
    big = counts > threshold
    p_drop[big] = 1.0 - np.sqrt(threshold / counts[big])
    drop = np.zeros(len(ids), dtype=bool)
    for s in range(0, len(ids), PPMI_BLOCK):
        part = ids[s : s + PPMI_BLOCK]
        u = rng.random(len(part))
        valid = part >= 0
        drop[s : s + PPMI_BLOCK] = valid & (u < p_drop[np.where(valid, part, 0)])
    return drop


def cooccurrence_counts(kept: np.ndarray, bigram_ids: np.ndarray | None, n_words: int, n_bigrams: int,
                        window: int, dynamic: bool):
    """The (words x contexts) co-occurrence matrix, scipy CSR, float64.

    `kept`: word id per position, -1 between lines, -2 for an out-of-vocabulary
    or subsampled token (a placeholder: it keeps its place in the window).
    Context j of the word at position i, 1 <= |i-j| <= window, weighs 1, or
    (window - d + 1) / window at distance d with the dynamic window (the
    expectation of word2vec's random window shrinking). With `bigram_ids`
    (bigram id per position, for the pair (t[p], t[p+1]); < 0 for none), a word
    also has as contexts the bigrams inside its window that do not cover it
    (ngram2vec's uni->bi co-occurrence), weighted by the distance of their far end.
    Columns: the words, then the bigrams."""
    from scipy import sparse

    n = len(kept)
    seg = np.cumsum(kept == -1, dtype=np.int32)  # line number of each position
    n_ctx = n_words + n_bigrams
    total = sparse.csr_matrix((n_words, n_ctx), dtype=np.float64)

    def weight(dist: int) -> float:
        return (window - dist + 1) / window if dynamic else 1.0

    for s in range(0, n, PPMI_BLOCK):
        rows, cols, vals = [], [], []

        def add(centers, contexts, same_line, w, transpose=False):
            ok = (centers >= 0) & (contexts >= 0) & same_line
            r, c = centers[ok], contexts[ok]
            rows.append(r)
            cols.append(c)
            vals.append(np.full(len(r), w))
            if transpose:
                rows.append(c)
                cols.append(r)
                vals.append(np.full(len(r), w))

        for d in range(1, window + 1):
            # word pairs (i, i+d) for i in this block, counted both ways
            e = min(s + PPMI_BLOCK, n - d)
            if e > s:
                add(kept[s:e], kept[s + d : e + d], seg[s:e] == seg[s + d : e + d], weight(d), transpose=True)
        if bigram_ids is not None:
            for d in range(1, window):
                w = weight(d + 1)  # the bigram's far end is d+1 away
                # right: the bigram at i+d covers i+d, i+d+1
                e = min(s + PPMI_BLOCK, n - d - 1)
                if e > s:
                    right = bigram_ids[s + d : e + d]
                    add(kept[s:e], np.where(right >= 0, right + n_words, -1), seg[s:e] == seg[s + d + 1 : e + d + 1], w)
                # left: the bigram at i-1-d covers i-1-d, i-d (centres i >= d+1)
                lo = max(s, d + 1)
                e = min(s + PPMI_BLOCK, n)
                if e > lo:
                    left = bigram_ids[lo - 1 - d : e - 1 - d]
                    add(kept[lo:e], np.where(left >= 0, left + n_words, -1), seg[lo:e] == seg[lo - 1 - d : e - 1 - d], w)
        if rows:
            r = np.concatenate(rows)
            c = np.concatenate(cols)
            v = np.concatenate(vals)
            total = total + sparse.csr_matrix((v, (r, c)), shape=(n_words, n_ctx))
    total.sum_duplicates()
    return total


def ppmi_matrix(counts, cds: float = 0.75, shift: float = 1.0):
    """PPMI with context-distribution smoothing and an optional shift:

        PMI(w, c) = log( #(w,c) * sum_c' #(c')^cds / (#(w) * #(c)^cds) ) - log(shift)

    with #(w) and #(c) the row and column sums of the co-occurrence counts;
    negative values become 0 (and are not stored). Returns CSR float32."""
    from scipy import sparse

    m = sparse.csr_matrix(counts, dtype=np.float64)
    m.sum_duplicates()
    row = np.asarray(m.sum(axis=1)).ravel()
    col = np.asarray(m.sum(axis=0)).ravel()
    col_a = col**cds
    z = col_a.sum()
    r = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    with np.errstate(divide="ignore"):
        pmi = np.log(m.data) + np.log(z) - np.log(row[r]) - np.log(col_a[m.indices]) - np.log(shift)
    data = np.where(pmi > 0, pmi, 0.0).astype(np.float32)
    out = sparse.csr_matrix((data, m.indices.copy(), m.indptr.copy()), shape=m.shape)
    out.eliminate_zeros()
    return out


def svd_vectors(ppmi, dim: int, eig: float, seed: int):
    """Truncated SVD of the PPMI matrix, M ~ U S V^T. Word vectors U S^eig,
    context vectors V S^eig (eig 0.5 makes their dot products approximate M;
    Levy et al. 2015 found 0 or 0.5 better than 1). Components are ordered by
    decreasing singular value, each signed so its largest |entry| in U is positive."""
    from scipy.sparse.linalg import svds

    k_max = min(ppmi.shape) - 1
    if dim > k_max:
        raise UsageError(f"--svd {dim} must be below the smaller side of the PPMI matrix ({min(ppmi.shape)})")
    # a seeded start vector: the same vectors run to run (ARPACK's own start is random)
    v0 = np.random.default_rng(seed).uniform(-1.0, 1.0, min(ppmi.shape))
    u, s, vt = svds(ppmi.astype(np.float64), k=dim, v0=v0)
    order = np.argsort(-s, kind="stable")
    u, s, vt = u[:, order], s[order], vt[order]
    signs = np.sign(u[np.argmax(np.abs(u), axis=0), np.arange(dim)])
    signs[signs == 0] = 1
    u, vt = u * signs, vt * signs[:, None]
    scale = s**eig
    return (u * scale).astype(np.float32), (vt.T * scale).astype(np.float32), s


def train_ppmi(inputs, opts: TrainOptions, sources: list[Source]):
    """Returns (words, matrix, context words, context matrix, details)."""
    from scipy import sparse

    rng = np.random.default_rng(opts.seed)
    ids, types, lines = _read_ids(inputs, opts, sources)
    n_tokens = int((ids >= 0).sum())
    counts = np.bincount(ids[ids >= 0], minlength=len(types)).astype(np.int64)
    order = _frequency_order(counts, np.flatnonzero(counts >= opts.min_count))
    if not len(order):
        raise DataError(
            f"no word occurs --min-count {opts.min_count} times in the {n_tokens:,} tokens of the corpus "
            "(lower --min-count, or check --tokenize)"
        )
    n_words = len(order)
    words = [types[i] for i in order]
    remap = np.full(len(types), -2, dtype=np.int32)
    remap[order] = np.arange(n_words, dtype=np.int32)
    wid = np.where(ids >= 0, remap[np.maximum(ids, 0)], -1).astype(np.int32)
    del ids
    word_counts = counts[order]
    threshold = opts.sample * n_tokens
    kept = wid.copy()
    if opts.sample > 0:
        kept[_subsample_mask(wid, word_counts.astype(np.float64), threshold, rng)] = -2

    bigram_ids = None
    bigram_names: list[str] = []
    if opts.ngram_order == 2:
        a, b = wid[:-1], wid[1:]
        both = (a >= 0) & (b >= 0)  # a bigram of rarer words is rarer than min_count anyway
        keys = np.full(len(a), -1, dtype=np.int64)
        keys[both] = a[both].astype(np.int64) * n_words + b[both]
        uniq, first, cnt = np.unique(keys[both], return_index=True, return_counts=True)
        keep = np.flatnonzero(cnt >= opts.min_count)
        bkeys, bcount, bfirst = uniq[keep], cnt[keep], first[keep]
        border = np.lexsort((-bfirst, -bcount))
        rank = np.empty(len(bkeys), dtype=np.int32)
        rank[border] = np.arange(len(bkeys), dtype=np.int32)
        bigram_ids = np.full(len(wid), -2, dtype=np.int32)
        if len(bkeys):
            pos = np.minimum(np.searchsorted(bkeys, keys), len(bkeys) - 1)
            found = both & (bkeys[pos] == keys)
            bigram_ids[:-1][found] = rank[pos[found]]
        if opts.sample > 0:
            bigram_ids[_subsample_mask(bigram_ids, bcount[border].astype(np.float64), threshold, rng)] = -2
        bigram_names = [
            f"{words[int(k) // n_words]}{NGRAM_JOIN}{words[int(k) % n_words]}" for k in bkeys[border]
        ]
    counts_m = cooccurrence_counts(kept, bigram_ids, n_words, len(bigram_names), opts.window, opts.dynamic_window)
    ppmi = ppmi_matrix(counts_m, opts.cds, opts.shift)
    details = {
        "contexts": n_words + len(bigram_names),
        "bigram_contexts": len(bigram_names),
        "nonzeros": int(ppmi.nnz),
        "columns": "the words in row order, then the bigram contexts ('a@$b')" if bigram_names else "the words in row order",
    }
    ctx_words = words + bigram_names
    if opts.svd:
        w, c, s = svd_vectors(ppmi, opts.svd, opts.svd_eig, opts.seed)
        details["svd"] = {"dim": opts.svd, "eig": opts.svd_eig, "top_singular_values": [round(float(x), 4) for x in s[:5]],
                          "weighting": f"U * S^{opts.svd_eig} (contexts: V * S^{opts.svd_eig})"}
        return words, w, word_counts, ctx_words, c, n_tokens, lines, details
    return words, ppmi, word_counts, ctx_words, sparse.csr_matrix(ppmi.T), n_tokens, lines, details


# ---------------------------------------------------------------- the whole job


def train(inputs, opts: TrainOptions, *, add_words: list[str] | None = None, tmpdir: str | None = None) -> TrainResult:
    """Train on the corpus files `inputs` ('-' = stdin) and return the vectors."""
    opts.validate()
    inputs = _check_inputs(inputs)
    make_tokenizer(opts.tokenize)  # fail now, not after reading, if jieba is missing
    if add_words and opts.model != "fasttext":
        raise UsageError(
            f"--add-words needs --model fasttext: {opts.model} has no vectors for words outside its vocabulary"
        )
    workers = opts.resolved_workers() if opts.model in GENSIM_MODELS else 1
    t0 = time.perf_counter()
    seconds: dict = {}
    if opts.model == "ppmi":
        sources: list[Source] = []
        words, vecs, counts, ctx_words, ctx_vecs, n_tokens, lines, details = train_ppmi(inputs, opts, sources)
        seconds["train"] = seconds["total"] = time.perf_counter() - t0
        return TrainResult(
            vectors=WordVectors(words, vecs, counts=counts), contexts=WordVectors(ctx_words, ctx_vecs), opts=opts, workers=1,
            tokens=n_tokens, lines=lines, seconds=seconds, sources=sources, corpus_mode="in memory (token ids)",
            extra=details,
        )
    with tempfile.TemporaryDirectory(prefix="vecpipe-train-", dir=tmpdir) as tmp:
        corpus = prepare_corpus(inputs, opts, tmp)
        seconds["read"] = time.perf_counter() - t0
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
    check_distinct({"-o": output, "--context-vectors": context_output, "--fasttext-bin": fasttext_bin})
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

            with _gensim_logging():
                save_facebook_model(result.model, str(tmp_paths["bin"]))
        write_vectors(result.vectors, tmp_paths.get("vectors", "-"), fmt, meta=meta)
        result.seconds["write"] = time.perf_counter() - t
        result.seconds["total"] += result.seconds["write"]
    return result
