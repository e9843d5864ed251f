"""What the onnx and openvino backends share: an Encoder that runs a
sentence-transformers model's cached exported graph (core/models/export.py)
in another runtime, on the CPU.

Around the graph it does what the torch encoder does, with the same pieces:
the char cut of long texts, the length estimates, the length-sorted
token-budget batches (core/models/batching.py) and the order of the results;
tokenizing is the model's own. A model seen before starts from the cache alone
(core/models/warm_start.py: its fast tokenizer, no torch); the first run loads
it in sentence-transformers to export it, and so does every run of a model
whose preprocess the fast tokenizer cannot stand in for."""
from __future__ import annotations

import os
import threading

import numpy as np

from vecpipe.core.errors import UnavailableError, UsageError
from vecpipe.core.models.base import Encoded, Encoder, ModelSpec
from vecpipe.core.models.transformer import cut_long_text, estimate_lengths


def require(module: str, extra: str) -> None:
    """Import `module` or say which extra installs it (69)."""
    import importlib

    try:
        importlib.import_module(module)
    except ImportError:
        raise UnavailableError(f"--backend {extra} needs the {module} package: pip install 'vecpipe[{extra}]'") from None


def cpu_threads() -> int:
    """The cores this process may run on: a container's or taskset's limit, not
    the machine's, and at most OMP_NUM_THREADS when set (as Ray sets it for a
    worker given --cpus-per-worker)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cores = os.cpu_count() or 1
    limit = os.environ.get("OMP_NUM_THREADS", "")
    return max(1, min(cores, int(limit))) if limit.isdigit() and int(limit) > 0 else cores


class ExportedEncoder(Encoder):
    """A sentence-transformers model run by an exported graph on the CPU."""

    backend = ""
    #: the Python modules the runtime needs, and the extra that installs them
    modules: tuple[str, ...] = ()

    def __init__(self, location, *, quantize: str | None = None, device: str | None = None, dtype: str | None = None,
                 trust_remote_code: bool = False, max_length: int | None = None, allow_download: bool = False,
                 name: str = "", pooling: str | None = None):
        from vecpipe.core.models import warm_start

        for module in self.modules:
            require(module, self.backend)
        if device not in (None, "", "auto", "cpu"):
            raise UsageError(f"--backend {self.backend} runs on the CPU (--device cpu); use --backend torch for {device}")
        if dtype not in (None, "auto", "float32"):
            raise UsageError(f"--backend {self.backend}: --dtype {dtype} is torch's; "
                             "use --quantize int8 for a smaller, faster model")
        self.name = name or str(location)
        self.quantize = quantize
        key = warm_start.start_key(location, quantize=quantize, pooling=pooling, trust_remote_code=trust_remote_code)
        entry = warm_start.load_entry(key)
        self._torch = None  # the sentence-transformers model, when it tokenizes (no fast start)
        if entry is None:
            entry = self._start_with_torch(location, key, trust_remote_code, allow_download, pooling)
        self.path = entry["path"]
        self.input_names = entry["input_names"]
        self.dim = entry["dim"]
        self.query_prompt = entry["query_prompt"]
        self._includes_prompt = entry["include_prompt"]
        limit = entry["position_limit"]
        if max_length and limit and max_length > limit:
            raise UsageError(f"--max-length {max_length}: {self.name} reads at most {limit} tokens")
        self.max_tokens = max_length or entry["max_seq_length"]
        if self._torch is None:
            self._tokenizer = warm_start.FastTokenizer(entry, self.max_tokens)
        elif max_length:
            self._torch.max_seq_length = max_length
        # One batch per core at once, each on one thread: at the short batches
        # of sentence encoding, splitting every small matmul across cores costs
        # more in handing work over than it gains (measured: MiniLM, 2 cores,
        # onnxruntime int8, 4,000 LCQMC texts, 4.9 s against 5.6 s).
        self.lanes = cpu_threads()
        if self.lanes > 1:
            # the lanes keep every core busy: the tokenizer's own thread pool
            # would only contend with them (measured 0.29 s against 0.45 s of
            # tokenizing in the LCQMC run above); the user's setting wins
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        self._tokenize_lock = threading.Lock()  # a fast tokenizer is not safe to call from two threads
        self.session = self._open(self.path)

    def _start_with_torch(self, location, key, trust_remote_code, allow_download, pooling) -> dict:
        """Load the model in sentence-transformers, export it (once: the
        export is cached by content) and describe it in a start entry, saved
        when the fast tokenizer can stand in for the model's preprocess; else
        the model stays loaded to tokenize."""
        from vecpipe.core.models import warm_start
        from vecpipe.core.models.export import exported_model, input_names
        from vecpipe.core.models.transformer import TransformerEncoder

        st = TransformerEncoder(location, device="cpu", trust_remote_code=trust_remote_code,
                                allow_download=allow_download, name=self.name, pooling=pooling).model
        path = exported_model(st, self.quantize, name=self.name)
        entry = warm_start.describe(st, path, input_names(st))
        if warm_start.stands_in(st, entry, TransformerEncoder._preprocess):
            if key is not None:
                warm_start.save_entry(key, entry)
        else:
            self._torch = st
        entry["path"] = path
        return entry

    @classmethod
    def from_spec(cls, spec: ModelSpec, location) -> "ExportedEncoder":
        return cls(location, quantize=spec.quantize, device=spec.device, dtype=spec.dtype,
                   trust_remote_code=spec.trust_remote_code, max_length=spec.max_length,
                   allow_download=spec.allow_download, name=spec.name, pooling=spec.pooling)

    def _open(self, path):
        """The runtime's compiled model of the .onnx file at `path`, ready for
        `self.lanes` batches at once, each on one thread."""
        raise NotImplementedError

    def _run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """One batch: int64 inputs by name -> (batch, dim) sentence embeddings;
        called from `self.lanes` threads at once."""
        raise NotImplementedError

    def default_budget(self):
        from vecpipe.core.models.batching import Budget

        return Budget(max_tokens=8192, max_batch=32)

    @property
    def identity(self) -> str:
        return f"{self.name} --backend {self.backend}" + (f" --quantize {self.quantize}" if self.quantize else "")

    def describe(self) -> dict:
        return {**super().describe(), "backend": self.backend, "quantize": self.quantize}

    def encode_batch(self, texts: list[str], *, prompt: str | None = None, normalize: bool = False,
                     truncate_dim: int | None = None, budget=None) -> Encoded:
        """Vectors in input order, in length-sorted token-budget batches, up
        to `self.lanes` of them at once. No counters to report."""
        from vecpipe.core.models.batching import run_batches

        if prompt and not self._includes_prompt:
            raise UsageError(f"--backend {self.backend}: this model's pooling leaves the prompt out, "
                             "which the exported graph does not; use --backend torch")
        out = np.empty((len(texts), truncate_dim or self.dim), dtype=np.float32)
        if not texts:
            return Encoded(out, {})
        cap = self.max_tokens or 512  # a model that sets no max length: as the torch encoder
        texts = [cut_long_text(t, self._count_tokens, cap) for t in texts]
        lengths = estimate_lengths(texts, prompt, cap)

        def fn(batch):
            return self._forward([texts[i] for i in batch], prompt, normalize, truncate_dim)

        for batch, emb in run_batches(np.arange(len(texts)), lengths, budget or self.default_budget(), fn,
                                      lanes=self.lanes):
            out[batch] = emb
        return Encoded(out, {})

    def _count_tokens(self, text: str) -> int:
        with self._tokenize_lock:
            if self._torch is None:
                return self._tokenizer.count(text)
            return len(self._torch.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    def _features(self, texts: list[str], prompt: str | None) -> dict[str, np.ndarray]:
        with self._tokenize_lock:
            if self._torch is None:
                return self._tokenizer(texts, prompt)
            from vecpipe.core.models.transformer import TransformerEncoder

            features = TransformerEncoder._preprocess(self._torch, texts, prompt)
            return {k: features[k].numpy().astype(np.int64, copy=False) for k in self.input_names}

    def _forward(self, texts, prompt, normalize, truncate_dim) -> np.ndarray:
        emb = np.asarray(self._run(self._features(texts, prompt)), dtype=np.float32)
        if truncate_dim:
            emb = emb[:, :truncate_dim]
        if normalize:  # as torch.nn.functional.normalize: x / max(|x|, 1e-12)
            emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        return np.ascontiguousarray(emb)
