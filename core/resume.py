"""Outputs of long jobs that survive cron: a lock against two writers, and
--resume after an interruption.

The job writes to hidden partial files beside the output (`.NAME.partial`) and,
after each complete window of records, records in `.NAME.state.json` how many
input records are done and how long each partial file is. A resumed run cuts
the partials back to that point, skips the records already done and goes on;
since windows are cut at the same records as in an uninterrupted run, the
result is byte-identical. Only a finished job is renamed to the final names."""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from .errors import OutputError, UsageError
from .streams import NpyFileWriter, acquire_lock


class _Part:
    def __init__(self, final: Path, kind: str):
        self.final = final
        self.kind = kind  # "npy" or "bytes"
        self.partial = final.with_name(f".{final.name}.partial")
        self.fh = None
        self.writer = None


class ResumableJob:
    """Context manager over one or more outputs written in step."""

    def __init__(self, outputs: dict[str, tuple[str | os.PathLike, str]], *, resume: bool, fingerprint: dict):
        if not outputs:
            raise UsageError("--resume needs -o")
        self.parts = {key: _Part(Path(path), kind) for key, (path, kind) in outputs.items()}
        first = next(iter(self.parts.values())).final
        for part in self.parts.values():
            if part.final.exists() and not part.final.is_file():
                raise UsageError(f"{part.final}: not a regular file; resumable output must be one")
            if not part.final.parent.is_dir():
                raise OutputError(f"{part.final}: folder {part.final.parent} does not exist")
        self.state_path = first.with_name(f".{first.name}.state.json")
        self.lock_path = first.with_name(f".{first.name}.lock")
        self.resume = resume
        self.fingerprint = fingerprint
        self.records_done = 0
        self.extra: dict = {}
        self._lock_fh = None
        self._finished = False

    # -- lifecycle
    def __enter__(self):
        self._lock()
        state = self._load_state() if self.resume else None
        if state is not None and state.get("fingerprint") != self.fingerprint:
            self._unlock()
            raise UsageError(
                f"the unfinished output beside {self.state_path.name.removesuffix('.state.json')[1:]} was made with "
                "other options or input; run without --resume to start over"
            )
        for key, part in self.parts.items():
            if state is not None:
                size = state["parts"][key]
                part.fh = open(part.partial, "r+b")
                part.fh.truncate(size)
                part.fh.seek(size)
            else:
                part.fh = open(part.partial, "wb")
            if part.kind == "npy":
                part.writer = NpyFileWriter(part.fh, start=0)
                if state is not None and state.get("npy", {}).get(key):
                    part.writer.restore(**state["npy"][key])
        if state is not None:
            self.records_done = state["records_done"]
            self.extra = state.get("extra", {})
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            for part in self.parts.values():
                if part.fh and not part.fh.closed:
                    part.fh.close()
            if exc_type is not None and not self.resume:
                self._discard()
        finally:
            self._unlock()
        return False

    # -- during the job
    def checkpoint(self, records_done: int, extra: dict | None = None) -> None:
        """Everything written so far is durable and belongs to the first
        `records_done` input records."""
        self.records_done = records_done
        if extra is not None:
            self.extra = extra
        sizes, npy = {}, {}
        for key, part in self.parts.items():
            part.fh.flush()
            os.fsync(part.fh.fileno())
            sizes[key] = part.fh.tell()
            if part.writer is not None:
                npy[key] = part.writer.state()
        state = {"fingerprint": self.fingerprint, "records_done": records_done, "parts": sizes, "npy": npy, "extra": self.extra}
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.state_path)

    def finish(self) -> None:
        for part in self.parts.values():
            if part.writer is not None:
                part.writer.close()
            part.fh.flush()
            os.fsync(part.fh.fileno())
            part.fh.close()
        for part in reversed(self.parts.values()):  # the main output (the first) last
            os.replace(part.partial, part.final)
        with contextlib.suppress(FileNotFoundError):
            self.state_path.unlink()
        self._finished = True

    # -- helpers
    def _load_state(self):
        if not self.state_path.is_file() or not all(p.partial.is_file() for p in self.parts.values()):
            return None
        try:
            return json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return None

    def _discard(self):
        for part in self.parts.values():
            with contextlib.suppress(FileNotFoundError):
                part.partial.unlink()
        with contextlib.suppress(FileNotFoundError):
            self.state_path.unlink()

    def _lock(self):
        self._lock_fh = acquire_lock(self.lock_path, next(iter(self.parts.values())).final)

    def _unlock(self):
        if self._lock_fh is not None:
            with contextlib.suppress(FileNotFoundError):
                if self._finished or not self.resume:
                    self.lock_path.unlink()
            self._lock_fh.close()
            self._lock_fh = None
