"""Model specs -> encoders. One protocol: encoder.encode(texts) -> float32 array.

Resolution order for a spec (DESIGN.md): an existing local path (vecdir,
word-vector file, sentence-transformers folder); `builtin:NAME`; a catalog name
(from the cache); a Hugging Face id already in the local HF cache."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from .errors import NoInputError, UnavailableError, UsageError
from .formats import WordVectors, is_vecdir, read_vectors

log = logging.getLogger("vecpipe")

DEFAULT_MODEL = "bge-small-zh"


def default_spec() -> str:
    return os.environ.get("VECPIPE_MODEL") or DEFAULT_MODEL


def _is_sentence_transformer_dir(p: Path) -> bool:
    return p.is_dir() and ((p / "modules.json").is_file() or (p / "config.json").is_file())


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
        raise UsageError(f"{spec}: a folder that is neither a vecdir nor a sentence-transformers model")
    if spec.startswith("builtin:"):
        from .catalog import BUILTIN_DIR

        name = spec.split(":", 1)[1]
        path = BUILTIN_DIR / name
        if not is_vecdir(path):
            known = sorted(d.name for d in BUILTIN_DIR.iterdir() if d.is_dir()) if BUILTIN_DIR.is_dir() else []
            raise NoInputError(f"no built-in model {name!r} (built in: {', '.join(known) or 'none'})")
        return "static", path
    entry = _catalog_entry(spec)
    if entry is not None:
        from . import catalog

        local = catalog.resolve_local(spec)
        if local is None:
            raise UnavailableError(catalog.missing_message(spec))
        return ("transformer" if entry.kind == "transformer" else "static"), local
    if "/" in spec:
        return "transformer", spec
    raise NoInputError(f"{spec}: no such file, folder, built-in or catalog model")


def _catalog_entry(name: str):
    try:
        from . import catalog
    except ImportError:
        return None
    try:
        return catalog.get(name)
    except UsageError:
        return None


def catalog_query_prompt(spec: str | None) -> str | None:
    entry = _catalog_entry(spec or default_spec())
    return getattr(entry, "query_instruction", None) if entry is not None else None


class StaticEncoder:
    """Mean of word vectors, as text2vec's Word2Vec encoder does, vectorised:
    texts -> token rows -> one gather and one reduceat per batch."""

    kind = "static"

    def __init__(self, wv: WordVectors, *, tokenize: str = "auto", oov: str = "skip",
                 normalize_words: bool = False, sif: float | None = None, name: str = ""):
        from .segment import make_tokenizer

        if wv.is_sparse:
            raise UsageError("sparse (PPMI) vectors cannot be mean-pooled directly; convert with --svd first")
        if oov not in ("skip", "char"):
            raise UsageError("--oov must be skip or char")
        self.wv = wv
        self.name = name
        self.index = wv.index
        self.tokenizer = make_tokenizer(tokenize, self.index)
        # the longest-match segmenter finds rows as it goes (one pass, no second lookup)
        self.fast_rows = getattr(self.tokenizer, "rows", None)
        self.oov = oov
        self.dim = wv.dim
        self.matrix = wv.vectors
        self.normalize_words = normalize_words
        self.weights = None
        if sif is not None:
            if wv.counts is None:
                raise UsageError("SIF weighting needs word counts (a vecdir with counts.npy, as train-w2v writes)")
            p = np.asarray(wv.counts, dtype=np.float64) / max(float(np.sum(wv.counts)), 1.0)
            self.weights = (sif / (sif + p)).astype(np.float32)  # a / (a + p(w)), Arora et al. 2017
        self.oov_tokens = 0
        self.empty_texts = 0

    def token_rows(self, text: str) -> list[int]:
        if self.fast_rows is not None:
            rows, unknown = self.fast_rows(text)
            self.oov_tokens += unknown
            return rows
        rows = []
        index = self.index
        for tok in self.tokenizer(text):
            r = index.get(tok)
            if r is None and tok.lower() != tok:
                r = index.get(tok.lower())
            if r is not None:
                rows.append(r)
            elif self.oov == "char" and len(tok) > 1:
                chars = [index[c] for c in tok if c in index]
                rows.extend(chars)
                self.oov_tokens += len(tok) - len(chars)
            else:
                self.oov_tokens += 1
        return rows

    def encode(self, texts: list[str], **_) -> np.ndarray:
        rows_per_text = [self.token_rows(t) for t in texts]
        counts = np.fromiter((len(r) for r in rows_per_text), dtype=np.int64, count=len(texts))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        self.empty_texts += int((counts == 0).sum())
        if counts.sum() == 0:
            return out
        flat = np.fromiter((r for rows in rows_per_text for r in rows), dtype=np.int64, count=int(counts.sum()))
        vecs = np.asarray(self.matrix[flat], dtype=np.float32)
        if self.normalize_words:
            from .search import normalize_rows

            vecs = normalize_rows(vecs)
        if self.weights is not None:
            w = self.weights[flat][:, None]
            vecs = vecs * w
        has = counts > 0
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])[has]
        sums = np.add.reduceat(vecs, starts, axis=0)
        denom = counts[has][:, None] if self.weights is None else np.add.reduceat(self.weights[flat], starts)[:, None]
        out[has] = sums / denom
        return out


class TransformerEncoder:
    """A sentence-transformers model, run with length-sorted token-budget batches."""

    kind = "transformer"

    def __init__(self, location, *, device: str | None = None, dtype: str | None = None,
                 trust_remote_code: bool = False, max_length: int | None = None,
                 allow_download: bool = False, name: str = "", pooling: str | None = None):
        from .batching import choose_devices, choose_dtype

        self.name = name or str(location)
        self.devices = choose_devices(device)
        self.models = [self._load(location, d, choose_dtype(d, dtype), trust_remote_code, allow_download) for d in self.devices]
        self.model = self.models[0]
        for m in self.models:
            if max_length:
                m.max_seq_length = max_length
            if pooling:
                _set_pooling(m, pooling)
        self.dim = self.model.get_embedding_dimension() if hasattr(self.model, "get_embedding_dimension") \
            else self.model.get_sentence_embedding_dimension()

    def default_budget(self):
        """CPU matmuls run best on small batches (as sentence-transformers' 32);
        GPUs want many tokens per batch."""
        from .batching import Budget

        if self.devices[0] == "cpu":
            return Budget(max_tokens=8192, max_batch=32)
        return Budget(max_tokens=16384, max_batch=512)

    @staticmethod
    def _load(location, device, torch_dtype, trust_remote_code, allow_download):
        if not allow_download and not Path(str(location)).exists():
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        if not log.isEnabledFor(logging.DEBUG):
            # their bars and notices would mix with ours on stderr
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            import transformers

            transformers.utils.logging.set_verbosity_error()
            transformers.utils.logging.disable_progress_bar()
        from sentence_transformers import SentenceTransformer

        try:
            model = SentenceTransformer(
                str(location), device=device, trust_remote_code=trust_remote_code,
                local_files_only=not allow_download and not Path(str(location)).exists(),
            )
        except OSError as exc:
            raise UnavailableError(
                f"cannot load {location}: not in the local Hugging Face cache "
                f"(fetch it first: vecpipe fetch NAME, or allow a download with --fetch) [{exc.__class__.__name__}]"
            ) from None
        if torch_dtype is not None and device != "cpu":
            model = model.to(dtype=torch_dtype)
        elif torch_dtype is not None:
            import torch

            if torch_dtype != torch.float32:
                model = model.to(dtype=torch_dtype)
        model.eval()
        return model

    @property
    def query_prompt(self) -> str | None:
        prompts = getattr(self.model, "prompts", None) or {}
        return prompts.get("query")

    def token_lengths(self, texts: list[str], prompt: str | None = None) -> np.ndarray:
        """Padded-length estimates for sorting and the token budget: characters
        + 2 special tokens, capped at the model's max length. For Chinese (one
        token per character) this is the token count; for other scripts an
        upper bound, so the budget holds. It saves a second tokenization."""
        extra = 2 + (len(prompt) if prompt else 0)
        cap = self.model.max_seq_length or 512
        return np.fromiter((min(len(t) + extra, cap) for t in texts), dtype=np.int64, count=len(texts))

    @staticmethod
    def _preprocess(model, texts, prompt):
        """The first module's own preprocess: SentenceTransformer.preprocess
        adds a modality check per batch that plain text does not need."""
        first = model[0]
        if type(first).__name__ == "Transformer" and hasattr(first, "preprocess"):
            try:
                return first.preprocess(texts, prompt=prompt)
            except TypeError:
                pass
        return model.preprocess(texts, prompt=prompt)

    # Tokenize the next batches on a worker thread (pinned memory, copied without
    # blocking) while the GPU runs the current one, and keep the vectors on the
    # device until the whole call is done: no per-batch synchronisation.
    # None: on CUDA only; False: batch by batch (sentence-transformers' way).
    pipeline: bool | None = None

    def _features(self, model, texts, prompt):
        """One batch tokenized (on the prepare thread), pinned for a CUDA copy."""
        import torch

        features = self._preprocess(model, texts, prompt)
        pin = str(model.device).startswith("cuda")
        return {k: v.pin_memory() if pin and isinstance(v, torch.Tensor) else v for k, v in features.items()}

    def _forward(self, model, texts, prompt, normalize, truncate_dim, features=None, on_device=False):
        import torch
        from sentence_transformers.util import batch_to_device

        with torch.inference_mode():
            if features is None:
                features = batch_to_device(self._preprocess(model, texts, prompt), model.device)
            else:
                features = {k: v.to(model.device, non_blocking=True) if isinstance(v, torch.Tensor) else v
                            for k, v in features.items()}
            emb = model(features)["sentence_embedding"]
            if truncate_dim:
                emb = emb[:, :truncate_dim]
            emb = emb.float()
            if normalize:
                emb = torch.nn.functional.normalize(emb, p=2, dim=1)
            return emb if on_device else emb.cpu().numpy()

    def encode(self, texts: list[str], *, prompt: str | None = None, normalize: bool = False,
               truncate_dim: int | None = None, budget=None) -> np.ndarray:
        from .batching import run_batches

        budget = budget or self.default_budget()
        dim = truncate_dim or self.dim
        out = np.empty((len(texts), dim), dtype=np.float32)
        if not texts:
            return out
        lengths = self.token_lengths(texts, prompt)
        indices = np.arange(len(texts))
        parts = [indices] if len(self.models) == 1 else _split_balanced(lengths, len(self.models))

        def work(model, part):
            import torch

            cuda = str(model.device).startswith("cuda")
            empty = torch.cuda.empty_cache if cuda else None
            if not (self.pipeline or (self.pipeline is None and cuda)):
                def fn(batch):
                    return self._forward(model, [texts[i] for i in batch], prompt, normalize, truncate_dim)
                return run_batches(part, lengths, budget, fn, empty_cache=empty)

            def prepare(batch):
                return self._features(model, [texts[i] for i in batch], prompt)

            def fn_pipelined(batch, features):
                return self._forward(model, None, prompt, normalize, truncate_dim, features=features, on_device=True)

            results = run_batches(part, lengths, budget, fn_pipelined, empty_cache=empty, prepare=prepare)
            with torch.inference_mode():  # one copy back for the whole call
                vectors = torch.cat([emb for _, emb in results]).cpu().numpy()
            return [(np.concatenate([batch for batch, _ in results]), vectors)]

        if len(self.models) == 1:
            results = work(self.model, indices)
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(len(self.models)) as pool:
                results = [r for rs in pool.map(work, self.models, parts) for r in rs]
        for batch, emb in results:
            out[batch] = emb
        return out


def _set_pooling(model, mode: str) -> None:
    """Replace the model's Pooling module by one with another mode (cls, mean,
    max, lasttoken, ...), keeping its dimension and prompt handling."""
    for key, module in model._modules.items():
        if type(module).__name__ == "Pooling":
            try:
                model._modules[key] = type(module)(module.embedding_dimension, pooling_mode=mode,
                                                   include_prompt=getattr(module, "include_prompt", True))
            except ValueError as exc:
                raise UsageError(f"--pooling {mode}: {exc}") from None
            return
    raise UsageError("--pooling: this model has no Pooling module to change")


def _split_balanced(lengths: np.ndarray, k: int) -> list[np.ndarray]:
    """Deal texts, longest first, round-robin to k workers: equal work, any order."""
    order = np.argsort(-lengths, kind="stable")
    return [np.sort(order[i::k]) for i in range(k)]


def load_model(spec: str | None, *, device=None, dtype=None, trust_remote_code=False, max_length=None,
               allow_download=False, tokenize="auto", oov="skip", normalize_words=False, sif=None, pooling=None):
    """Turn a model spec into an encoder (static or transformer)."""
    kind, location = resolve_spec(spec)
    if kind == "static":
        wv = read_vectors(location)
        return StaticEncoder(wv, tokenize=tokenize, oov=oov, normalize_words=normalize_words, sif=sif,
                             name=str(spec or default_spec()))
    return TransformerEncoder(location, device=device, dtype=dtype, trust_remote_code=trust_remote_code,
                              max_length=max_length, allow_download=allow_download, name=str(spec or default_spec()),
                              pooling=pooling)
