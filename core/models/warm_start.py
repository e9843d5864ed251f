"""Starting --backend onnx/openvino from vecpipe's cache alone, without torch.

The first run with a model loads it in sentence-transformers (torch), exports
it (core/models/export.py) and writes a start entry: what runs around the
exported graph (the fast tokenizer, as the tokenizers library's JSON, with its
truncation and padding settings; the model's dimension, max length, position
limit and prompts; whether its pooling counts a prompt's tokens) and which
cached export it runs. Later runs with the same model folder and options find
the entry by a key made of the folder's file stats (path, size, mtime, ctime,
inode: as git's index notices a changed file) and start with the runtime and
the tokenizers library alone, never importing torch, transformers or
sentence-transformers (which takes seconds; MiniLM measured in the README).

An entry is written only when the tokenizer it describes gives the same
inputs as the model's own preprocess on probe texts (with and without a
prompt, at the model's length and a short one); a model whose preprocess does
more (lower-casing outside its tokenizer, a chat template) is started with
torch every time, as before.

Entries live in <cache>/exported/start/<key>.json, written to a temporary
name and renamed, so a reader sees a whole entry or none."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
from pathlib import Path

import numpy as np

log = logging.getLogger("vecpipe")

#: bump when an entry's fields or their meaning change
FORMAT = 1
#: texts that tell tokenizer set-ups apart: scripts, case, accents, width,
#: spaces, emoji, empties, and texts longer than any max length
PROBES = ["今天天气很好", "", "北京是中国的首都。", "A Sentence in English, with PUNCTUATION!", "Café naïve ÅÉÎ",
          "ＡＢＣ全角１２３", "  leading and trailing spaces  ", "tab\tand\nnewline", "emoji 🙂 and 数字 12345",
          "深度学习模型把句子变成向量。" * 40, "word " * 300, "x"]
PROBE_PROMPT = "query: "
SHORT_LENGTH = 8


def start_key(location, **options) -> str | None:
    """The entry key of the model folder `location` with export `options`,
    or None when `location` is not a local folder (a hub id: torch start)."""
    root = Path(str(location))
    if not root.is_dir():
        return None
    from vecpipe.core.models import export

    h = hashlib.blake2b(digest_size=20)
    h.update(json.dumps({"root": str(root.resolve()), "options": options, "format": FORMAT,
                         "export_format": export.FORMAT}, sort_keys=True, default=str).encode())
    try:
        for path in sorted(root.rglob("*")):
            st = path.stat()  # follows links: a hub cache's snapshot files are links to blobs
            if stat.S_ISREG(st.st_mode):
                h.update(f"{path.relative_to(root)}|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}|{st.st_ino}\n".encode())
    except OSError:
        return None  # an unreadable file: the torch start reports it
    return h.hexdigest()


def _entry_path(key: str) -> Path:
    from vecpipe.core.models.export import exports_root

    return exports_root() / "start" / f"{key}.json"


class FastTokenizer:
    """The model's fast tokenizer as sentence-transformers calls it for text
    (padding to the longest, truncation longest_first at `max_length`),
    giving int64 numpy arrays by input name."""

    def __init__(self, entry: dict, max_length: int):
        from tokenizers import Tokenizer

        self.names = list(entry["input_names"])
        self._tok = Tokenizer.from_str(entry["tokenizer"])
        self._tok.no_truncation()
        self._tok.no_padding()
        self._count = Tokenizer.from_str(self._tok.to_str())  # no truncation, no padding: counts tokens
        self._tok.enable_truncation(max_length, strategy="longest_first", direction=entry["truncation_side"])
        pad = entry["padding"]
        self._tok.enable_padding(direction=pad["side"], pad_id=pad["id"], pad_type_id=pad["type_id"], pad_token=pad["token"])

    def __call__(self, texts: list[str], prompt: str | None = None) -> dict[str, np.ndarray]:
        if prompt:
            texts = [prompt + t for t in texts]
        encodings = self._tok.encode_batch(texts)
        fields = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}
        return {k: np.array([getattr(e, fields[k]) for e in encodings], dtype=np.int64) for k in self.names}

    def count(self, text: str) -> int:
        """Tokens of `text` without special tokens (to cut long texts)."""
        return len(self._count.encode(text, add_special_tokens=False).ids)


def load_entry(key: str | None) -> dict | None:
    """The entry of `key` when it exists, is whole, and its export is complete."""
    if key is None:
        return None
    from vecpipe.core.models.export import MODEL_FILE, exports_root, is_complete

    try:
        entry = json.loads(_entry_path(key).read_text(encoding="utf-8"))
        if entry.get("format") != FORMAT:
            return None
        folder = exports_root() / entry["export"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not is_complete(folder):  # removed or damaged: the torch start exports it again
        return None
    entry["path"] = folder / MODEL_FILE
    return entry


def describe(st_model, model_path: Path, input_names: list[str]) -> dict:
    """The entry of a loaded sentence-transformers model whose export is
    `model_path` ("tokenizer" None when it has no fast tokenizer)."""
    from vecpipe.core.models.transformer import _position_limit

    tokenizer = getattr(st_model, "tokenizer", None)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    prompts = getattr(st_model, "prompts", None) or {}
    pad_id = getattr(tokenizer, "pad_token_id", None)
    return {
        "format": FORMAT,
        "export": model_path.parent.name,
        "input_names": list(input_names),
        "dim": int(st_model.get_embedding_dimension() if hasattr(st_model, "get_embedding_dimension")
                   else st_model.get_sentence_embedding_dimension()),
        "max_seq_length": st_model.max_seq_length,
        "position_limit": _position_limit(st_model),
        "query_prompt": prompts.get("query"),
        "include_prompt": all(getattr(m, "include_prompt", True) for m in st_model),
        "tokenizer": backend.to_str() if backend is not None and pad_id is not None else None,
        "truncation_side": getattr(tokenizer, "truncation_side", "right"),
        "padding": {"side": getattr(tokenizer, "padding_side", "right"), "id": pad_id,
                    "type_id": int(getattr(tokenizer, "pad_token_type_id", 0) or 0),
                    "token": str(getattr(tokenizer, "pad_token", ""))},
    }


def stands_in(st_model, entry: dict, preprocess) -> bool:
    """Whether FastTokenizer(entry) gives the inputs the model's own
    `preprocess` (model, texts, prompt -> features) gives, on the probes."""
    if entry["tokenizer"] is None or not entry["max_seq_length"]:
        return False
    try:
        return _same_inputs(st_model, entry, preprocess)
    except Exception as exc:  # noqa: BLE001 - a tokenizer the probes trip: keep the torch start
        log.debug("no fast start for this model: %s", exc)
        return False


def _same_inputs(st_model, entry: dict, preprocess) -> bool:
    """FastTokenizer(entry) against the model's own preprocess on the probes."""
    default = st_model.max_seq_length
    try:
        for length in (default, SHORT_LENGTH):
            st_model.max_seq_length = length
            fast = FastTokenizer(entry, length)
            for prompt in (None, PROBE_PROMPT):
                want = preprocess(st_model, PROBES, prompt)
                got = fast(PROBES, prompt)
                for name in entry["input_names"]:
                    if not np.array_equal(np.asarray(want[name]), got[name]):
                        log.debug("no fast start for this model: its %s differ from the fast tokenizer's", name)
                        return False
    finally:
        st_model.max_seq_length = default
    return True


def save_entry(key: str, entry: dict) -> None:
    """Write the entry (best effort: a cache that cannot be written only
    means the next run starts with torch again)."""
    path = _entry_path(key)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(entry, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        log.debug("cannot write the start entry %s: %s", path, exc)
        tmp.unlink(missing_ok=True)
