"""`vecpipe doctor`: what a bug report needs: versions, devices, cache, extras."""
from __future__ import annotations

import importlib.metadata as md
import os
import platform
import sys
from pathlib import Path

PACKAGES = ("numpy", "scipy", "orjson", "polars", "click", "tqdm", "gensim", "torch", "transformers",
            "sentence-transformers", "huggingface-hub")
EXTRAS = {"faiss": "faiss-cpu", "jieba": "jieba", "matplotlib": "matplotlib", "scikit-learn": "scikit-learn",
          # the CPU runtimes of --backend onnx / openvino, and the exporter's onnx
          "onnxruntime": "onnxruntime", "openvino": "openvino", "onnx": "onnx",
          # [parquet], [ray] and [train]
          "pyarrow": "pyarrow", "ray": "ray", "datasets": "datasets", "accelerate": "accelerate"}
# the variables that change what vecpipe does or where it looks
ENV = ("VECPIPE_MODEL", "VECPIPE_HOME", "VECPIPE_CATALOG", "VECPIPE_OFFLINE", "VECPIPE_DATA", "XDG_CACHE_HOME",
       "HF_HOME", "HF_HUB_CACHE", "HF_ENDPOINT", "HF_HUB_OFFLINE", "CUDA_VISIBLE_DEVICES")


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def _folder_size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += (Path(root) / f).stat().st_size
            except OSError:
                pass
    return total


def report(devices: bool = True) -> dict:
    """A dict of facts; `devices` imports torch to list CUDA/MPS devices."""
    from vecpipe import __version__

    from vecpipe.core.fetch import catalog

    info = {
        "vecpipe": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {p: _version(p) for p in PACKAGES},
        "extras": {name: _version(dist) for name, dist in EXTRAS.items()},
    }
    root = catalog.cache_root()
    info["cache"] = {"path": str(root), "exists": root.is_dir(), "bytes": _folder_size(root) if root.is_dir() else 0}
    hf = catalog.hf_cache_dir()
    info["hf_cache"] = {"path": str(hf), "exists": Path(hf).is_dir()}
    info["env"] = {k: os.environ[k] for k in ENV if k in os.environ}
    if devices and info["packages"]["torch"]:
        info["devices"] = _devices()
    return info


def _devices() -> dict:
    """CUDA/MPS devices as torch sees them; a torch that fails to import or to
    talk to the driver is reported (that is what the report is for), not raised."""
    try:
        import torch

        cuda = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
        return {
            "cuda": cuda,
            "cuda_version": torch.version.cuda,
            "mps": bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()),
            "cpu_threads": torch.get_num_threads(),
        }
    except Exception as exc:  # noqa: BLE001 - a broken install (a CUDA library missing, a driver mismatch)
        return {"error": f"{type(exc).__name__}: {exc}"}
