"""What the onnx and openvino backends share: a TransformerEncoder whose
forward pass runs the cached exported graph (core/models/export.py) in
another runtime.

Everything else is the torch encoder's own, inherited, not copied: the
sentence-transformers model is loaded as for --backend torch and tokenizes
(its first module's preprocess, prompts included), and the char cut of long
texts, the length estimates, the length-sorted token-budget batches and the
order of the results are TransformerEncoder._encode's. Only `_forward` (one
batch of texts -> float32 vectors) and the CPU budget differ."""
from __future__ import annotations

import os
import threading

import numpy as np

from vecpipe.core.errors import UnavailableError, UsageError
from vecpipe.core.models.base import ModelSpec
from vecpipe.core.models.transformer import TransformerEncoder


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


class ExportedEncoder(TransformerEncoder):
    """A sentence-transformers model run by an exported graph on the CPU."""

    backend = ""
    #: the Python modules the runtime needs, and the extra that installs them
    modules: tuple[str, ...] = ()
    pipeline = False  # a CPU runtime: no copy to overlap

    def __init__(self, location, *, quantize: str | None = None, device: str | None = None, **options):
        for module in self.modules:
            require(module, self.backend)
        if device not in (None, "", "auto", "cpu"):
            raise UsageError(f"--backend {self.backend} runs on the CPU (--device cpu); use --backend torch for {device}")
        if options.get("dtype") not in (None, "auto", "float32"):
            raise UsageError(f"--backend {self.backend}: --dtype {options['dtype']} is torch's; "
                             "use --quantize int8 for a smaller, faster model")
        super().__init__(location, device="cpu", **options)
        self.quantize = quantize
        from vecpipe.core.models.export import exported_model, input_names

        self.input_names = input_names(self.model)
        self.path = exported_model(self.model, quantize, name=self.name)
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

    def _forward(self, model, texts, prompt, normalize, truncate_dim, features=None, on_device=False):
        with self._tokenize_lock:
            features = self._preprocess(model, texts, prompt)
        if prompt and "prompt_length" in features and not _includes_prompt(model):
            raise UsageError(f"--backend {self.backend}: this model's pooling leaves the prompt out, "
                             "which the exported graph does not; use --backend torch")
        emb = self._run({k: features[k].numpy().astype(np.int64, copy=False) for k in self.input_names})
        emb = np.asarray(emb, dtype=np.float32)
        if truncate_dim:
            emb = emb[:, :truncate_dim]
        if normalize:  # as torch.nn.functional.normalize: x / max(|x|, 1e-12)
            emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        return np.ascontiguousarray(emb)


def _includes_prompt(model) -> bool:
    return all(getattr(m, "include_prompt", True) for m in model)
