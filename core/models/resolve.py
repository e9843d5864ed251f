"""Where a model spec (-m) points, without loading anything heavy.

Resolution order (the README's encode section lists it too): an existing local path (vecdir, word-vector
file, sentence-transformers folder); `builtin:NAME`; a catalog name (from the
cache); a Hugging Face id already in the local HF cache."""
from __future__ import annotations

import os
from pathlib import Path

from vecpipe.core.errors import DataError, NoInputError, UnavailableError, UsageError
from vecpipe.core.vectors.vecdir import is_vecdir

DEFAULT_MODEL = "bge-small-zh"


def default_spec() -> str:
    return os.environ.get("VECPIPE_MODEL") or DEFAULT_MODEL


def _is_sentence_transformer_dir(p: Path) -> bool:
    return p.is_dir() and ((p / "modules.json").is_file() or (p / "config.json").is_file())


# names that can only be files or folders: a spec ending in one of these (or
# starting with ., /, ~) that does not exist is a missing input, not a model id
PATH_SUFFIXES = (".vecdir", ".vec", ".txt", ".bin", ".npy", ".npz", ".model", ".kv", ".bz2", ".gz", ".xz",
                 ".zip", ".w2v", ".glove", ".jsonl", ".json", ".tsv", ".csv", ".parquet", ".safetensors",
                 ".pt", ".pth", ".onnx")


def looks_like_path(spec: str) -> bool:
    return spec.startswith((".", "/", "~", "\\")) or spec.lower().endswith(PATH_SUFFIXES)


def resolve_spec(spec: str | None) -> tuple[str, object]:
    """(kind, location): kind is 'static' (location: a path) or 'transformer'
    (location: a folder or a Hugging Face id), plus catalog info when known."""
    spec = spec or default_spec()
    p = Path(spec).expanduser()
    if p.exists():
        if is_vecdir(p) or p.is_file():
            return "static", p
        if _is_sentence_transformer_dir(p):
            return "transformer", p
        raise DataError("a folder that is neither a vecdir (vectors.npy + vocab.txt) nor a sentence-transformers "
                        "model (modules.json or config.json)", spec)
    if spec.startswith("builtin:"):
        from vecpipe.core.fetch.catalog import BUILTIN_DIR

        name = spec.split(":", 1)[1]
        path = BUILTIN_DIR / name
        if not is_vecdir(path):
            known = sorted(d.name for d in BUILTIN_DIR.iterdir() if d.is_dir()) if BUILTIN_DIR.is_dir() else []
            raise NoInputError(f"no built-in model {name!r} (built in: {', '.join(known) or 'none'})")
        return "static", path
    entry = _catalog_entry(spec)
    if entry is not None:
        from vecpipe.core.fetch import catalog

        local = catalog.resolve_local(spec)
        if local is None:
            raise UnavailableError(catalog.missing_message(spec))
        return ("transformer" if entry.kind == "transformer" else "static"), local
    if looks_like_path(spec):
        raise NoInputError(f"{spec}: no such file or folder")
    if "/" in spec:
        return "transformer", spec
    raise NoInputError(f"{spec}: no such file, folder, built-in or catalog model")


def _catalog_entry(name: str):
    try:
        from vecpipe.core.fetch import catalog
    except ImportError:
        return None
    try:
        return catalog.get(name)
    except UsageError:
        return None


def catalog_query_prompt(spec: str | None) -> str | None:
    entry = _catalog_entry(spec or default_spec())
    return getattr(entry, "query_instruction", None) if entry is not None else None
