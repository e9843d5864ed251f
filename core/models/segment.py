"""Tokenizers for static (word-vector) encoders.

The default for Chinese text is a dependency-free forward longest-match
segmenter over the model's own vocabulary: it finds exactly the words the
vectors know, which is what mean pooling needs. Runs of letters/digits are kept
whole (and looked up lowercased if the exact form is missing)."""
from __future__ import annotations

import re

from vecpipe.core.errors import UnavailableError, UsageError

TOKENIZERS = ("auto", "space", "char", "jieba")

# Han ideographs: Extension A, the URO, 〇 (U+3007, a Han numeral), compatibility
# ideographs, Extensions B-F and the compatibility supplement (U+2xxxx), G-H (U+3xxxx)
_CJK = "\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff\U00030000-\U0003134f"
# a CJK run, or a run of letters/digits that are not CJK (`\w` alone matches CJK
# too, which glued 借4万对吗 into 借 + 4万对吗), or any other single non-space character
_RUNS = re.compile(rf"([{_CJK}]+)|([^\W_{_CJK}]+)|(\S)", re.UNICODE)


class LongestMatch:
    """Forward maximum matching over a vocabulary (a dict word -> row).

    A table of every prefix of every (short enough) word lets the scan stop as
    soon as no word can continue, instead of trying every length down from the
    longest: about one lookup per character."""

    def __init__(self, vocab: dict, max_len: int = 12):
        self.vocab = vocab
        prefixes: dict[str, int] = {}
        for word, row in vocab.items():
            if not word or len(word) > max_len or not _is_cjk_run(word):
                continue
            for k in range(1, len(word)):
                prefixes.setdefault(word[:k], -1)
            prefixes[word] = row
        self.prefixes = prefixes

    def _cjk_pieces(self, run: str):
        """(piece, row or None) for a run of CJK characters."""
        prefixes = self.prefixes
        i, n = 0, len(run)
        while i < n:
            best_end, best_row = i + 1, None
            j = i + 1
            while j <= n:
                row = prefixes.get(run[i:j])
                if row is None:
                    break
                if row >= 0:
                    best_end, best_row = j, row
                j += 1
            yield run[i:best_end], best_row
            i = best_end

    def __call__(self, text: str) -> list[str]:
        out: list[str] = []
        for m in _RUNS.finditer(text):
            if m.group(1) is None:
                out.append(m.group(0))
            else:
                out.extend(piece for piece, _ in self._cjk_pieces(m.group(1)))
        return out

    def rows(self, text: str, oov_char: bool = False) -> tuple[list[int], int]:
        """Vocabulary rows of the words found, and how many tokens were unknown.
        oov_char (--oov char): an unknown run of letters/digits contributes its
        known characters instead (an unknown CJK piece is one character already)."""
        rows: list[int] = []
        unknown = 0
        vocab = self.vocab
        for m in _RUNS.finditer(text):
            run = m.group(1)
            if run is None:
                tok = m.group(0)
                r = vocab.get(tok)
                if r is None and tok.lower() != tok:
                    r = vocab.get(tok.lower())
                if r is not None:
                    rows.append(r)
                elif oov_char and len(tok) > 1:
                    chars = [vocab[c] for c in tok if c in vocab]
                    rows.extend(chars)
                    unknown += len(tok) - len(chars)
                else:
                    unknown += 1
                continue
            for _, r in self._cjk_pieces(run):
                if r is None:
                    unknown += 1
                else:
                    rows.append(r)
        return rows, unknown


def _is_cjk_run(word: str) -> bool:
    m = _RUNS.fullmatch(word)
    return m is not None and m.group(1) is not None


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
