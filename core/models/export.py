"""A sentence-transformers model exported to ONNX (optionally int8), made once
and cached in vecpipe's cache, for the onnx and openvino backends.

The whole SentenceTransformer is exported as one graph (transformer, pooling,
Dense, Normalize: whatever modules.json lists), so the vectors are the model's
own without a second implementation of its modules; the inputs are the
tokenizer's (input_ids, attention_mask, token_type_ids), batch and sequence
axes dynamic.

Cache: <cache>/exported/<key>/ with model.onnx and meta.json, where the key is
a hash of the model's content (every weight and every module's config, so a
--pooling override or a fine-tuned copy is another key) and the export options
(quantize, opset, exporter, format version). An export is written into a
temporary folder and renamed into place when complete; meta.json records the
size and sha256 of model.onnx, checked on every load, so a damaged or
truncated export is rebuilt. One export per key at a time (a lock); a
temporary folder left by a killed export is removed under that lock."""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

from vecpipe.core.errors import OutputError, UnavailableError, UsageError
from vecpipe.core.fetch.verify import sha256_file

log = logging.getLogger("vecpipe")

#: bump when the exported graph changes for the same model and options
FORMAT = 2  # 2: exported with eager attention (see _export_torch)
OPSET = 17
EXPORTER = "torchscript"  # torch.onnx.export(dynamo=False): see _export_torch
MODEL_FILE = "model.onnx"
META_FILE = "meta.json"
#: the inputs a text model's graph may take, in this order
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


def exports_root() -> Path:
    from vecpipe.core.fetch.catalog import cache_root

    return cache_root() / "exported"


def model_hash(st_model) -> str:
    """A hash of what the graph is made from: each module's type and config,
    each weight's name, dtype, shape and bytes."""
    import torch

    h = hashlib.blake2b(digest_size=20)
    for name, module in st_model.named_children():
        config = dict(module.get_config_dict()) if hasattr(module, "get_config_dict") else {}
        config.pop("max_seq_length", None)  # --max-length cuts tokens before the graph: one export serves all
        h.update(json.dumps([name, type(module).__name__, config], sort_keys=True, default=str).encode())
    for name, tensor in st_model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        if t.numel():
            h.update(t.view(-1).view(torch.uint8).numpy().data)
    return h.hexdigest()


def export_key(content: str, quantize: str | None) -> str:
    options = {"model": content, "quantize": quantize, "opset": OPSET, "exporter": EXPORTER, "format": FORMAT}
    return hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()[:32]


def is_complete(folder: Path) -> bool:
    """meta.json present and model.onnx of the recorded size and sha256."""
    try:
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        model = folder / MODEL_FILE
        return model.stat().st_size == meta["size"] and sha256_file(model, "cached export") == meta["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return False


def input_names(st_model) -> list[str]:
    """The tokenizer outputs the graph takes (BERT: all three; many models no token_type_ids)."""
    features = st_model[0].preprocess(["a"])
    return [k for k in INPUT_NAMES if k in features]


def exported_model(st_model, quantize: str | None = None, name: str = "the model") -> Path:
    """The cached model.onnx of `st_model` (exported, and quantized when
    `quantize` is 'int8', on the first call)."""
    return _exported(st_model, model_hash(st_model), quantize, name)


def _exported(st_model, content: str, quantize: str | None, name: str) -> Path:
    from vecpipe import __version__

    key = export_key(content, quantize)
    folder = exports_root() / key
    if is_complete(folder):
        return folder / MODEL_FILE
    source = _exported(st_model, content, None, name) if quantize else None  # int8 is made from the cached fp32 graph
    with _locked(key):
        if is_complete(folder):  # another run made it meanwhile
            return folder / MODEL_FILE
        if folder.exists():
            log.warning("%s: the cached export is incomplete or damaged; exporting it again", folder)
            shutil.rmtree(folder)
        for stale in folder.parent.glob(f".tmp-{key}-*"):  # left by an export that was killed
            shutil.rmtree(stale, ignore_errors=True)
        tmp = folder.parent / f".tmp-{key}-{os.getpid()}"
        try:
            tmp.mkdir()
            model = tmp / MODEL_FILE
            if quantize:
                log.info("quantizing %s to %s (dynamic, per-channel weights)", name, quantize)
                _quantize_int8(source, model)
            else:
                log.info("exporting %s to ONNX (once; cached in %s)", name, folder)
                _export_torch(st_model, model, input_names(st_model))
            meta = {"model": content, "key": key, "quantize": quantize, "opset": OPSET,
                    "exporter": EXPORTER, "format": FORMAT, "vecpipe": __version__,
                    "size": model.stat().st_size, "sha256": sha256_file(model, "export")}
            (tmp / META_FILE).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
            os.replace(tmp, folder)
        except OSError as exc:
            raise OutputError(f"{folder}: cannot write the exported model ({exc.strerror or exc}); set $VECPIPE_HOME") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return folder / MODEL_FILE


@contextlib.contextmanager
def _locked(key: str):
    """Wait while another run exports the same key (a blocking flock, released
    when the file closes): it then finds that run's export complete."""
    import fcntl

    locks = exports_root() / ".locks"
    try:
        locks.mkdir(parents=True, exist_ok=True)
        fh = open(locks / f"{key}.lock", "w")
    except OSError as exc:
        raise OutputError(f"{locks}: cannot create the cache folder ({exc.strerror or exc}); set $VECPIPE_HOME") from None
    with fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _export_torch(st_model, path: Path, names: list[str]) -> None:
    """torch.onnx.export of the whole model, dynamic batch and sequence axes.
    The TorchScript exporter (dynamo=False): it exports MiniLM in ~2 s where
    the dynamo exporter takes ~12 s, gives the same vectors (both within 3e-7
    of torch), and its graph is the one onnxruntime's fusions recognise.
    Attention is traced in its eager form (matmul, softmax, matmul), not as
    torch's fused SDPA: the same vectors (cosine 1.0), and onnxruntime runs
    that graph faster (MiniLM, 2,000 LCQMC texts, 2 threads: fp32 4.15 s
    against 4.57 s, int8 2.78 s against 2.99 s)."""
    import warnings

    import torch

    first = type(st_model[0]).__name__
    if first != "Transformer":
        raise UsageError(f"--backend onnx/openvino: only for models whose first module is a Transformer (this one: {first})")

    class Graph(torch.nn.Module):
        def __init__(self, st):
            super().__init__()
            self.st = st

        def forward(self, *inputs):
            return self.st(dict(zip(names, inputs)))["sentence_embedding"]

    example = st_model[0].preprocess(["vecpipe exports this model", "一个句子"])
    args = tuple(example[k] for k in names)
    axes = {k: {0: "batch", 1: "sequence"} for k in names}
    axes["sentence_embedding"] = {0: "batch"}
    graph = Graph(st_model).eval()
    with _eager_attention(st_model[0]), torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on shape checks that hold for every input
        try:
            torch.onnx.export(graph, args, str(path), input_names=names, output_names=["sentence_embedding"],
                              dynamic_axes=axes, opset_version=OPSET, dynamo=False)
        except ImportError as exc:
            raise UnavailableError(f"exporting to ONNX needs {exc.name or 'onnx'}: pip install 'vecpipe[onnx]'") from None


@contextlib.contextmanager
def _eager_attention(transformer):
    """The Transformer module's model with eager attention while it is traced,
    its own attention implementation back afterwards (torch keeps running it)."""
    model = getattr(transformer, "auto_model", None)
    config = getattr(model, "config", None)
    before = getattr(config, "_attn_implementation", None)
    if before in (None, "eager") or not hasattr(model, "set_attn_implementation"):
        yield
        return
    try:
        model.set_attn_implementation("eager")
    except (ValueError, ImportError, AttributeError):  # a model without an eager path: trace it as it is
        yield
        return
    try:
        yield
    finally:
        model.set_attn_implementation(before)


def _quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 (weights int8 per output channel, activations quantized at
    run time per tensor): per-tensor weights lose too much on MiniLM (cosine
    to fp32 0.93 against 0.987 per channel)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its root-logger advice to pre-process would land on our stderr
    try:
        quantize_dynamic(str(source), str(target), per_channel=True, weight_type=QuantType.QInt8,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    finally:
        root.setLevel(level)
