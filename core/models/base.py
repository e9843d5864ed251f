"""The one model interface: a small frozen ModelSpec (the -m string plus every
model option) and the Encoder it loads.

Commands build a ModelSpec from their options and call spec.load(); nothing
outside core/models asks what kind of encoder it got. A spec is plain data
(picklable), so it can travel to another process or a Ray worker and be
loaded there.

Kinds register themselves by name (`@register("static")`); a kind is found
by `resolve_spec` (a path, builtin:NAME, a catalog name, a Hugging Face id) or
by a spec prefix a kind claims (`register("fake", prefix="fake:")`, as the
tests' fake encoder does). The shape follows simonw/llm's EmbeddingModel: one
abstract batch method, everything else derived."""
from __future__ import annotations

import abc
import importlib
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import numpy as np

# kind -> module that registers it when imported (kept lazy: loading the
# transformer kind imports torch, which a static model must never pay for)
_KIND_MODULES = {
    "static": "vecpipe.core.models.static",
    "transformer": "vecpipe.core.models.transformer",
    "onnx": "vecpipe.core.models.onnx",
    "openvino": "vecpipe.core.models.openvino",
}
#: runtimes a transformer model can run on (--backend); torch is sentence-transformers' own
BACKENDS = ("torch", "onnx", "openvino")
QUANTIZE = ("int8",)
_REGISTRY: dict[str, type["Encoder"]] = {}
_PREFIXES: dict[str, str] = {}


def register(kind: str, *, prefix: str | None = None):
    """Class decorator: make an Encoder class the loader of `kind` (and of
    specs that start with `prefix`, if given)."""

    def deco(cls):
        cls.kind = kind
        _REGISTRY[kind] = cls
        if prefix:
            _PREFIXES[prefix] = kind
        return cls

    return deco


def encoder_class(kind: str) -> type["Encoder"]:
    if kind not in _REGISTRY and kind in _KIND_MODULES:
        importlib.import_module(_KIND_MODULES[kind])
    return _REGISTRY[kind]


class Encoded(NamedTuple):
    """What one batch gives: float32 vectors (one row per text, input order)
    and counters (e.g. oov_tokens, empty_texts) as data, to be summed by the
    caller; an encoder keeps no running totals."""

    vectors: np.ndarray
    counters: dict


def add_counters(total: dict, more: dict) -> dict:
    for k, v in more.items():
        total[k] = total.get(k, 0) + v
    return total


@dataclass(frozen=True)
class ModelSpec:
    """The -m string plus every model option. Frozen and picklable."""

    model: str | None = None
    device: str | None = None
    dtype: str | None = None
    max_length: int | None = None
    pooling: str | None = None
    tokenize: str = "auto"
    oov: str = "skip"
    normalize_words: bool = False
    sif: float | None = None
    trust_remote_code: bool = False
    allow_download: bool = False
    backend: str = "torch"
    quantize: str | None = None

    @property
    def name(self) -> str:
        from .resolve import default_spec

        return self.model or default_spec()

    def resolve(self) -> tuple[str, object]:
        """(kind, location) without loading anything heavy."""
        for prefix, kind in _PREFIXES.items():
            if self.name.startswith(prefix):
                return kind, self.name[len(prefix):]
        from .resolve import resolve_spec

        return resolve_spec(self.name)

    def load(self) -> "Encoder":
        kind, location = self.resolve()
        return encoder_class(self._runtime_kind(kind)).from_spec(self, location)

    def _runtime_kind(self, kind: str) -> str:
        """The kind that runs a model of `kind` on self.backend: a transformer
        on onnx or openvino is the exported-graph encoder of that runtime."""
        from vecpipe.core.errors import UsageError

        if self.backend not in BACKENDS:
            raise UsageError(f"--backend {self.backend}: one of {', '.join(BACKENDS)}")
        if self.quantize is not None and self.quantize not in QUANTIZE:
            raise UsageError(f"--quantize {self.quantize}: one of {', '.join(QUANTIZE)}")
        if self.quantize and self.backend == "torch":
            raise UsageError("--quantize int8 needs --backend onnx or openvino (torch runs the model as it is)")
        if self.quantize and self.backend == "openvino":
            # measured: OpenVINO runs onnxruntime's dynamic int8 graph slower than its own fp32 (README, CPU backends)
            raise UsageError("--quantize int8 runs on --backend onnx (OpenVINO runs that int8 graph slower than fp32)")
        if self.backend == "torch":
            return kind
        if kind != "transformer":
            raise UsageError(f"--backend {self.backend}: only for transformer models ({self.name} is a {kind} model)")
        return self.backend


class Encoder(abc.ABC):
    """A loaded model. Subclasses implement `encode_batch` (and `from_spec`)."""

    kind: ClassVar[str] = ""
    name: str = ""
    dim: int = 0
    #: the word vectors behind a word-vector model (word lookups in knn, sim
    #: and eval analogy/similarity), else None
    word_vectors = None
    #: where the model runs: knn keeps its index on the same device
    device: str = "cpu"
    #: the model's own query instruction (sentence-transformers' prompts["query"])
    query_prompt: str | None = None

    @classmethod
    @abc.abstractmethod
    def from_spec(cls, spec: ModelSpec, location) -> "Encoder":
        """Load the model found at `location` with the options of `spec`."""

    @abc.abstractmethod
    def encode_batch(self, texts: list[str], *, prompt: str | None = None, normalize: bool = False,
                     truncate_dim: int | None = None, budget=None) -> Encoded:
        """texts -> Encoded(float32 array (len(texts), dim or truncate_dim), counters)."""

    def encode(self, texts: list[str], **kwargs) -> np.ndarray:
        """The vectors alone (counters dropped): for callers that do not report them."""
        return self.encode_batch(texts, **kwargs).vectors

    @property
    def identity(self) -> str:
        """What must match for --resume to continue an output this model began:
        its name, plus the runtime when that changes the vectors' bytes."""
        return self.name

    def default_budget(self):
        """The batching budget (core/models/batching.Budget) on this model's
        device, or None when the model does not batch by tokens."""
        return None

    def describe(self) -> dict:
        """What a result file records about the model."""
        info = {"kind": self.kind, "name": self.name, "dim": int(self.dim)}
        if self.word_vectors is not None:
            info["vocab"] = len(self.word_vectors)
        return info


def load_model(model: str | None = None, **options) -> Encoder:
    """ModelSpec(model, **options).load(): the one-call form for Python users and tests."""
    return ModelSpec(model, **options).load()
