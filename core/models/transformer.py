"""sentence-transformers models, run with length-sorted token-budget batches
(core/models/batching.py); torch and sentence_transformers load only here,
inside the methods that need them."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from vecpipe.core.errors import DataError, UnavailableError, UsageError, error_gist
from vecpipe.core.models.base import Encoded, Encoder, ModelSpec, register

log = logging.getLogger("vecpipe")


# Texts are cut by characters before tokenizing, so one 10 MB line does not
# become millions of tokens (and gigabytes) only to be truncated to max_length.
# The cut must not change the first max_length tokens for any tokenizer. A
# token covers at least one character (BERT-like WordPiece, SentencePiece,
# byte-level BPE alike, special tokens aside), but the first max_length tokens
# may span more characters than that: long word pieces, whitespace and
# characters the normalizer drops. So the bound is generous (CHARS_PER_TOKEN x
# max_length) and checked: the cut text is tokenized (cheap, it is short) and
# kept only when it already gives CUT_MARGIN tokens more than max_length;
# otherwise the cut doubles until it does, or the text is whole. Pre-tokenizers
# split at whitespace and punctuation (BERT at every CJK character), so only
# the word at the cut can tokenize differently, far behind the tokens kept.
CHARS_PER_TOKEN = 16
CUT_MARGIN = 64


def char_bound(max_tokens: int) -> int:
    """The first cut, in characters, for a model that keeps max_tokens tokens."""
    return CHARS_PER_TOKEN * max_tokens + CUT_MARGIN


def cut_long_text(text: str, count_tokens, max_tokens: int) -> str:
    """text, or a prefix of it that gives the same first max_tokens tokens;
    count_tokens(text) -> its tokens, special tokens left out."""
    cut = char_bound(max_tokens)
    while cut < len(text):
        head = text[:cut]
        try:
            n = count_tokens(head)
        except Exception:  # noqa: BLE001 - a tokenizer that cannot count: keep the whole text, as before
            return text
        if n >= max_tokens + CUT_MARGIN:
            return head
        cut *= 2
    return text


def estimate_lengths(texts: list[str], prompt: str | None, cap: int | None) -> np.ndarray:
    """Padded-length estimates for sorting and the token budget: characters
    + 2 special tokens, capped at the model's max length (512 when unknown).
    For Chinese (one token per character) this is the token count; for other
    scripts an upper bound, so the budget holds. It saves a second tokenization."""
    extra = 2 + (len(prompt) if prompt else 0)
    cap = cap or 512
    return np.fromiter((min(len(t) + extra, cap) for t in texts), dtype=np.int64, count=len(texts))


@register("transformer")
class TransformerEncoder(Encoder):
    """A sentence-transformers model, run with length-sorted token-budget batches."""

    def __init__(self, location, *, device: str | None = None, dtype: str | None = None,
                 trust_remote_code: bool = False, max_length: int | None = None,
                 allow_download: bool = False, name: str = "", pooling: str | None = None):
        from vecpipe.core.models.batching import choose_devices, choose_dtype

        self.name = name or str(location)
        self.devices = choose_devices(device)
        self.models = [self._load(location, d, choose_dtype(d, dtype), trust_remote_code, allow_download) for d in self.devices]
        self.model = self.models[0]
        limit = _position_limit(self.model)
        if max_length and limit and max_length > limit:
            raise UsageError(f"--max-length {max_length}: {self.name} reads at most {limit} tokens")
        for m in self.models:
            if max_length:
                m.max_seq_length = max_length
            if pooling:
                _set_pooling(m, pooling)
        self.dim = self.model.get_embedding_dimension() if hasattr(self.model, "get_embedding_dimension") \
            else self.model.get_sentence_embedding_dimension()

    @classmethod
    def from_spec(cls, spec: ModelSpec, location) -> "TransformerEncoder":
        return cls(location, device=spec.device, dtype=spec.dtype, trust_remote_code=spec.trust_remote_code,
                   max_length=spec.max_length, allow_download=spec.allow_download, name=spec.name,
                   pooling=spec.pooling)

    @property
    def device(self) -> str:
        return self.devices[0]

    def default_budget(self):
        """CPU matmuls run best on small batches (as sentence-transformers' 32);
        GPUs want many tokens per batch."""
        from vecpipe.core.models.batching import Budget

        if self.devices[0] == "cpu":
            return Budget(max_tokens=8192, max_batch=32)
        return Budget(max_tokens=65536, max_batch=1024)

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

        from vecpipe.core.fetch.fetch import FetchOptions
        from vecpipe.core.fetch.hub import HubUnreachable, bounded_hub_client

        local = Path(str(location)).exists()
        try:
            with bounded_hub_client(FetchOptions.timeout):  # a dead hub endpoint: one timeout, no retries
                model = SentenceTransformer(
                    str(location), device=device, trust_remote_code=trust_remote_code,
                    local_files_only=not allow_download and not local,
                )
        except MemoryError:
            raise
        except HubUnreachable as exc:
            raise UnavailableError(f"cannot download {location}: the Hugging Face hub "
                                   f"({os.environ.get('HF_ENDPOINT') or 'https://huggingface.co'}) does not answer "
                                   f"({exc}); offline? HF_ENDPOINT selects a mirror") from None
        except Exception as exc:  # noqa: BLE001 - every library error at load time becomes one line
            raise load_error(location, exc, local=local, allow_download=allow_download) from None
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
        """Padded-length estimates (estimate_lengths) at the model's max length."""
        return estimate_lengths(texts, prompt, self.model.max_seq_length)

    def _cut_long(self, texts: list[str]) -> list[str]:
        """Texts far longer than the model reads, cut by characters (see char_bound)."""
        cap = self.model.max_seq_length or 512
        tokenizer = getattr(self.model, "tokenizer", None)
        bound = char_bound(cap)
        if tokenizer is None or not callable(tokenizer) or all(len(t) <= bound for t in texts):
            return texts

        def count(text):
            return len(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

        return [cut_long_text(t, count, cap) if len(t) > bound else t for t in texts]

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
    # Batches run at once on threads (run_batches); CPU runtimes that run each
    # batch on one core set it to the cores (core/models/exported.py).
    lanes = 1

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

    def encode_batch(self, texts: list[str], *, prompt: str | None = None, normalize: bool = False,
                     truncate_dim: int | None = None, budget=None) -> Encoded:
        """Vectors in input order; the batches inside are planned by `budget`
        (the default for the device when None). No counters to report."""
        return Encoded(self._encode(texts, prompt, normalize, truncate_dim, budget), {})

    def _encode(self, texts, prompt, normalize, truncate_dim, budget) -> np.ndarray:
        from vecpipe.core.models.batching import run_batches

        budget = budget or self.default_budget()
        dim = truncate_dim or self.dim
        out = np.empty((len(texts), dim), dtype=np.float32)
        if not texts:
            return out
        texts = self._cut_long(texts)
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
                return run_batches(part, lengths, budget, fn, empty_cache=empty, lanes=self.lanes)

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


def _position_limit(model) -> int | None:
    """The most tokens the model can read: its tokenizer's model_max_length
    when set, else its position embeddings; None when unknown."""
    tokenizer = getattr(model, "tokenizer", None)
    n = getattr(tokenizer, "model_max_length", None)
    if isinstance(n, int) and 0 < n < 1_000_000:
        return n
    first = model[0] if len(model) else None
    config = getattr(getattr(first, "auto_model", None), "config", None)
    n = getattr(config, "max_position_embeddings", None)
    return n if isinstance(n, int) and n > 0 else None


def load_error(location, exc: BaseException, *, local: bool, allow_download: bool = False):
    """A VecpipeError (one line, the right exit code) for what transformers,
    sentence-transformers, huggingface_hub, safetensors or torch raised while
    loading a model: custom code without --trust-remote-code and a missing
    package (69), a model not in the cache (69), a damaged model folder or
    weights that need a full unpickle (65)."""
    import pickle

    from vecpipe.core.models.batching import is_out_of_memory

    text = str(exc)
    if is_out_of_memory(exc):
        return UnavailableError(f"{location}: out of memory while loading the model; try --dtype float16 or another --device")
    if isinstance(exc, RuntimeError) and ("CUDA" in text or "device" in text.lower()):
        return UnavailableError(f"cannot load {location} on the device: {error_gist(exc)}")
    if "trust_remote_code" in text:
        return UnavailableError(f"{location}: the model runs its own Python code; allow it with --trust-remote-code "
                                "(only for models you trust)")
    if isinstance(exc, ImportError):
        return UnavailableError(f"cannot load {location}: a package it needs is missing ({error_gist(exc)})")
    if isinstance(exc, pickle.UnpicklingError) or "Weights only load failed" in text:
        return DataError("pickled weights that hold more than tensors: refused (vecpipe never runs a model file's "
                         "pickled code; convert the weights to safetensors)", location)
    if local:
        return DataError(f"cannot load the model: {error_gist(exc)}", location)
    if isinstance(exc, OSError):
        where = "" if allow_download else "not in the local Hugging Face cache (fetch it first: vecpipe fetch NAME, " \
                                          "or allow a download with --fetch); "
        return UnavailableError(f"cannot load {location}: {where}{error_gist(exc)}")
    return UnavailableError(f"cannot load {location}: {error_gist(exc)}")


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
