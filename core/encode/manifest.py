"""manifest.json of a sharded encode: what made the folder (model spec,
options, versions, int8 ranges) and, per input shard done, its input path and
size, rows, skipped rows, counters (OOV tokens, empty texts), the sha256 of
each output file and the seconds it took. Rewritten atomically after each
shard, so a killed run leaves a manifest that lists exactly the shards whose
outputs are complete."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import orjson

from vecpipe.core.errors import UsageError
from vecpipe.core.models.base import add_counters

log = logging.getLogger("vecpipe")

MANIFEST = "manifest.json"
SHARDS_FORMAT = "vecpipe.shards"
VERSION = 1
_LIBRARIES = ("numpy", "pyarrow", "torch", "sentence-transformers", "transformers", "ray")


def library_versions() -> dict:
    """Installed versions, read from package metadata (nothing is imported)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in _LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def read_manifest(folder) -> dict | None:
    """The manifest of a folder vecpipe made, else None."""
    try:
        data = orjson.loads((Path(folder) / MANIFEST).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("format") == SHARDS_FORMAT else None


def shards_replaceable(folder: Path) -> str | None:
    """None if `folder` is a sharded output vecpipe made, holding only the
    files its manifest lists (a new run may replace it), else why not."""
    data = read_manifest(folder)
    if data is None:
        return "the folder exists and is not a sharded output made by vecpipe (no manifest.json of vecpipe's)"
    ours = {MANIFEST} | {name for entry in data.get("shards", {}).values() for name in entry.get("outputs", {})}
    others = sorted(p.name for p in Path(folder).iterdir() if p.name not in ours and not p.name.startswith("."))
    if others:
        return f"the folder also holds {', '.join(others[:3])}, which vecpipe did not write"
    return None


class Manifest:
    def __init__(self, folder, header: dict, order: list[str], shards: dict | None = None):
        self.path = Path(folder) / MANIFEST
        self.header = header
        self.order = {name: i for i, name in enumerate(order)}
        self.shards: dict[str, dict] = dict(shards or {})

    @classmethod
    def start(cls, folder, header: dict, order: list[str], *, resume: bool) -> "Manifest":
        """A new manifest, or with --resume the one in the folder (its shards
        kept when it was made with the same model and options)."""
        old = read_manifest(folder) if resume else None
        if old is None:
            return cls(folder, header, order)
        if old.get("fingerprint") != header["fingerprint"]:
            raise UsageError(f"{folder} was made with another model or other options; run without --resume to start over")
        header = {**header, "ranges": old.get("ranges")}
        return cls(folder, header, order, old.get("shards"))

    def done(self, shard: str, folder) -> bool:
        """Recorded, same input size, and every output file there with its
        recorded sha256 (a missing or changed output shard is redone)."""
        from vecpipe.core.encode.shards import sha256_of

        entry = self.shards.get(shard)
        if entry is None:
            return False
        try:
            if os.path.getsize(shard) != entry["input_bytes"]:
                log.warning("%s changed size since it was encoded: encoding it again", shard)
                return False
            for name, sha in entry["outputs"].items():
                if sha256_of(Path(folder) / name) != sha:
                    log.warning("%s does not match its sha256 in the manifest: encoding %s again", name, shard)
                    return False
        except (OSError, KeyError, TypeError):
            log.warning("the output of %s is missing: encoding it again", shard)
            return False
        return True

    def forget(self, shard: str) -> None:
        self.shards.pop(shard, None)

    def record(self, entry: dict) -> None:
        self.shards[entry["input"]] = entry
        self.save()

    def totals(self) -> dict:
        total = {"shards": len(self.shards), "rows": 0, "skipped": 0, "seconds": 0.0, "counters": {}}
        for entry in self.shards.values():
            total["rows"] += entry["rows"]
            total["skipped"] += entry["skipped"]
            total["seconds"] = round(total["seconds"] + entry["seconds"], 3)
            add_counters(total["counters"], entry["counters"])
        return total

    def save(self) -> None:
        shards = dict(sorted(self.shards.items(), key=lambda kv: self.order.get(kv[0], len(self.order))))
        data = {**self.header, "shards": shards, "totals": self.totals()}
        tmp = self.path.with_name(f".{MANIFEST}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
