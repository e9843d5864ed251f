"""Reading the corpus: one sentence or paragraph per line (a window never
crosses a line), tokenized, its UTF-8 checked and its vocabulary counted in
the same pass.

gensim models train in gensim's `corpus_file` mode (C++ reader, threads that
scale with cores). A single plain (uncompressed) regular file with `space`
tokenization is handed to gensim as it is; anything else (stdin, .bz2/.gz,
several files, `char`/`jieba` tokenization, text that gensim's reader would
split differently) is first tokenized, streaming, into a temporary file of
space-separated tokens in $TMPDIR, which is removed afterwards (on Linux its
name is removed at once and gensim reads it by /proc/self/fd, so not even
SIGKILL leaves it behind). The corpus is never held in memory as Python lists."""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import stat
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from vecpipe.core.errors import DataError, NoInputError, UsageError
from vecpipe.core.io.compression import compression_of
from vecpipe.core.io.progress import progress
from vecpipe.core.io.inputs import display_name, open_input
from vecpipe.core.io.outputs import unnamed_temporary
from vecpipe.core.models.segment import make_tokenizer
from vecpipe.core.train.options import TrainOptions

log = logging.getLogger("vecpipe")

CHUNK_BYTES = 1 << 23  # text read per step
MAX_SENTENCE = 10000  # gensim cuts longer lines into sentences of this many tokens

# the characters that str.split() takes as whitespace but gensim's corpus_file
# reader (C++ `istream >> word`: ASCII whitespace only) does not
_NON_ASCII_SPACE = re.compile("[\x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]")


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
    fd: int | None = None  # the tokenized copy, open (on Linux already unlinked: `path` is /proc/self/fd/N)
    remove: str | None = None  # its name, where it still has one

    def close(self) -> None:
        """Let go of the tokenized copy (nothing for the input read as it is)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.remove is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.remove)
            self.remove = None


def no_vocabulary(min_count: int, tokens: int, sources: list[Source]) -> DataError:
    """The error for a corpus that leaves no word to train, naming the inputs."""
    where = ", ".join(s.path for s in sources) or None
    if not tokens:
        return DataError("no tokens: the corpus is empty or has only blank lines", where)
    return DataError(f"no word occurs --min-count {min_count} times in the {tokens:,} tokens of the corpus "
                     "(lower --min-count, or check --tokenize)", where)


def check_inputs(inputs: list[str]) -> list[str]:
    """The corpus files: '-' is stdin; a folder stands for its files in name
    order (as gensim's PathLineSentences reads one), hidden ones and subfolders
    left out."""
    inputs = list(inputs) or ["-"]
    if inputs.count("-") > 1:
        raise UsageError("stdin (-) can be read only once")
    files = []
    for p in inputs:
        if p == "-":
            files.append(p)
            continue
        if not os.path.exists(p):
            raise NoInputError(f"{p}: no such file")
        if os.path.isdir(p):
            files.extend(_folder_files(p))
        else:
            files.append(p)
    return files


def _folder_files(folder: str) -> list[str]:
    try:
        names = sorted(os.listdir(folder))
    except OSError as exc:
        raise NoInputError(f"{folder}: cannot list the folder: {exc.strerror or exc}") from None
    files = [os.path.join(folder, n) for n in names if not n.startswith(".") and os.path.isfile(os.path.join(folder, n))]
    if not files:
        raise NoInputError(f"{folder}: a folder with no corpus files in it")
    skipped = sum(1 for n in names if os.path.isdir(os.path.join(folder, n)))
    if skipped:
        log.warning("%s: %d subfolder(s) not read (only the files directly in the folder are)", folder, skipped)
    return files


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
    # core.models.segment's `char` ([c for c in text if not c.isspace()]) done in C:
    # str.split() and str.isspace() share one definition of whitespace
    return list("".join(text.split()))


def tokenizer_for(name: str):
    """core.models.segment's tokenizer `name`, with a faster equivalent for `char`."""
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
    """By the magic bytes of core.io.compression's table, as open_input decides."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        open_input(path).close()  # fail now (before reading the other inputs), naming the input
        raise
    return compression_of(head) is not None


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


def _write_tokenized(inputs, tokenizer, unicode_errors: str, tmpdir, bar) -> Corpus:
    counts: Counter = Counter()
    tokens = sentences = lines = 0
    sources: list[Source] = []
    # unnamed on Linux: the copy (as big as the corpus) goes with the process, even after SIGKILL
    fd, path, name = unnamed_temporary("vecpipe-train-", ".txt", tmpdir)
    corpus = Corpus(path=path, counts=counts, tokens=0, sentences=0, lines=0, mode="tokenized copy", sources=sources,
                    fd=fd, remove=name)
    try:
        with open(os.dup(fd), "wb", buffering=1 << 20) as out:
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
    except BaseException:
        corpus.close()
        raise
    corpus.tokens, corpus.sentences, corpus.lines = tokens, sentences, lines
    return corpus


def total_bytes(inputs) -> int | None:
    total = 0
    for p in inputs:
        if p == "-":
            return None
        if not stat.S_ISREG(os.stat(p).st_mode) or _is_compressed(p):
            return None
        total += os.path.getsize(p)
    return total


def prepare_corpus(inputs, opts: TrainOptions, tmpdir: str | None = None) -> Corpus:
    """Count the vocabulary and give gensim a file it can read with corpus_file
    (close() the result when done: it may hold a tokenized copy in `tmpdir`)."""
    tokenizer = tokenizer_for(opts.tokenize)
    with progress(total=total_bytes(inputs), unit="B", unit_scale=True, desc="reading") as bar:
        if len(inputs) == 1 and opts.tokenize == "space" and _is_plain_regular_file(inputs[0]):
            corpus = _scan_plain(inputs[0], bar)
            if corpus is not None:
                return corpus
            if hasattr(bar, "reset"):
                bar.reset()
        return _write_tokenized(inputs, tokenizer, opts.unicode_errors, tmpdir, bar)
