"""Tokenizers for static (word-vector) encoders.

The default for Chinese text is a dependency-free forward longest-match
segmenter over the model's own vocabulary: it finds exactly the words the
vectors know, which is what mean pooling needs. Runs of letters/digits are kept
whole (and looked up lowercased if the exact form is missing)."""
from __future__ import annotations

import re

from .errors import UnavailableError, UsageError

TOKENIZERS = ("auto", "space", "char", "jieba")

# a CJK run, or a run of letters/digits, or any other single non-space character
_RUNS = re.compile(r"([\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]+)|([^\W_]+)|(\S)", re.UNICODE)


class LongestMatch:
    """Forward maximum matching over a vocabulary (a dict word -> row)."""

    def __init__(self, vocab: dict, max_len: int = 8):
        self.vocab = vocab
        lengths = [len(w) for w in vocab if w and len(w) <= max_len]
        self.max_len = max(lengths, default=1)

    def __call__(self, text: str) -> list[str]:
        out: list[str] = []
        vocab, max_len = self.vocab, self.max_len
        for m in _RUNS.finditer(text):
            cjk = m.group(1)
            if cjk is None:
                out.append(m.group(0))
                continue
            i, n = 0, len(cjk)
            while i < n:
                for k in range(min(max_len, n - i), 0, -1):
                    piece = cjk[i : i + k]
                    if k == 1 or piece in vocab:
                        out.append(piece)
                        i += k
                        break
        return out


def _space(text: str) -> list[str]:
    return text.split()


def _char(text: str) -> list[str]:
    # characters, not bytes or code units; whitespace is not a token
    return [c for c in text if not c.isspace()]


def make_tokenizer(name: str, vocab: dict | None = None):
    """A callable text -> list of tokens."""
    if name not in TOKENIZERS:
        raise UsageError(f"--tokenize must be one of {', '.join(TOKENIZERS)}")
    if name == "space":
        return _space
    if name == "char":
        return _char
    if name == "jieba":
        try:
            import jieba
        except ImportError:
            raise UnavailableError("--tokenize jieba needs jieba: pip install 'vecpipe[jieba]'") from None
        jieba.setLogLevel(60)
        return lambda text: [t for t in jieba.lcut(text) if not t.isspace()]
    return LongestMatch(vocab or {})
