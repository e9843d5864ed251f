"""Outputs of long jobs that survive cron: a lock against two writers, and
--resume after an interruption.

The job writes to hidden partial files beside the output (`.NAME.partial`) and,
after each complete window of records, records in `.NAME.state.json` how many
input records are done, how long each partial file is and the sha256 of its
bytes, and the sha256 of the input bytes read so far. A resumed run checks the
partials against the state (refused, DataError, if they differ: never padded),
cuts them back to that point, skips the records already done, checks that
those records are the same bytes as before (refused if not) and goes on; since
windows are cut at the same records as in an uninterrupted run, the result is
byte-identical. A run without --resume drops an earlier run's state before it
writes. Only a finished job is renamed to the final names."""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from pathlib import Path

from vecpipe.core.errors import DataError, OutputError, UsageError
from vecpipe.core.io.npy import NpyFileWriter
from vecpipe.core.io.outputs import acquire_lock

log = logging.getLogger("vecpipe")

STATE_VERSION = 2
_CHUNK = 1 << 20


class _HashingReader:
    """The input as the record reader sees it (peek and lines), with a running
    sha256 of the bytes consumed: at a checkpoint, exactly the lines of the
    records done."""

    def __init__(self, fh):
        self.fh = fh
        self.sha = hashlib.sha256()
        self.bytes = 0

    def peek(self, n: int = 0) -> bytes:
        return self.fh.peek(n)

    def __iter__(self):
        for line in self.fh:
            self.sha.update(line)
            self.bytes += len(line)
            yield line

    def digest(self) -> dict:
        return {"bytes": self.bytes, "sha256": self.sha.hexdigest()}


class _Part:
    def __init__(self, final: Path, kind: str):
        self.final = final
        self.kind = kind  # "npy" or "bytes"
        self.partial = final.with_name(f".{final.name}.partial")
        self.fh = None
        self.writer = None
        self.sha = hashlib.sha256()  # of the partial's bytes [0, hashed)
        self.hashed = 0

    def hash_to(self, size: int, fd: int | None = None) -> str:
        """sha256 of the partial's first `size` bytes (read back from the file,
        from where the last call stopped)."""
        fd = self.fh.fileno() if fd is None else fd
        while self.hashed < size:
            chunk = os.pread(fd, min(_CHUNK, size - self.hashed), self.hashed)
            if not chunk:
                break
            self.sha.update(chunk)
            self.hashed += len(chunk)
        return self.sha.hexdigest()


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
        self.first = first
        self.state_path = first.with_name(f".{first.name}.state.json")
        self.lock_path = first.with_name(f".{first.name}.lock")
        self.resume = resume
        self.fingerprint = fingerprint
        self.records_done = 0
        self.extra: dict = {}
        self.input_state: dict | None = None  # the input digest the state recorded
        self._input: _HashingReader | None = None
        self._lock_fh = None
        self._finished = False

    # -- lifecycle
    def __enter__(self):
        self._lock()
        try:
            self._open()
        except BaseException:
            self._close_files()
            self._unlock()
            raise
        return self

    def _open(self) -> None:
        if not self.resume:
            # a plain run starts over: an earlier run's state must not outlive
            # the partials it described (a later --resume would pad with zeros)
            if self.state_path.exists():
                log.info("dropping the unfinished output of an earlier --resume run")
            self._drop_state()
        state = self._load_state() if self.resume else None
        if state is not None and state.get("fingerprint") != self.fingerprint:
            raise UsageError(
                f"the unfinished output beside {self.first.name} was made with other options; "
                "run without --resume to start over"
            )
        for key, part in self.parts.items():
            if state is not None:
                size = self._check_partial(key, part, state)
                part.fh = open(part.partial, "r+b")
                part.fh.truncate(size)
                part.fh.seek(size)
            else:
                part.fh = open(part.partial, "w+b")  # read back to hash at checkpoints
            if part.kind == "npy":
                part.writer = NpyFileWriter(part.fh, start=0)
                if state is not None and state.get("npy", {}).get(key):
                    part.writer.restore(**state["npy"][key])
        if state is not None:
            self.records_done = state["records_done"]
            self.extra = state.get("extra", {})
            self.input_state = state.get("input")

    def _check_partial(self, key: str, part: _Part, state: dict) -> int:
        """The length the state gives the partial, after checking that its bytes
        up to there are the ones the state recorded."""
        saved = state.get("parts", {}).get(key)
        if (state.get("version") != STATE_VERSION or "records_done" not in state or not isinstance(saved, dict)
                or not {"size", "sha256"} <= saved.keys()):
            self._refuse(part, "its state was saved by another vecpipe version")
        size = saved["size"]
        actual = part.partial.stat().st_size
        if actual < size:
            self._refuse(part, f"it has {actual:,} bytes, the state says {size:,} were written")
        with open(part.partial, "rb") as fh:
            digest = part.hash_to(size, fh.fileno())
        if digest != saved["sha256"]:
            self._refuse(part, f"the sha256 of its first {size:,} bytes differs from the one recorded")
        return size

    def _refuse(self, part: _Part, why: str):
        raise DataError(
            f"--resume: the unfinished output {part.partial.name} does not match its saved state ({why}); "
            "run without --resume to start over",
            part.final,
        )

    def __exit__(self, exc_type, exc, tb):
        try:
            self._close_files()
            if exc_type is not None and not self.resume:
                self._discard()
        finally:
            with contextlib.suppress(FileNotFoundError):
                self.state_path.with_suffix(".tmp").unlink()
            self._unlock()
        return False

    # -- during the job
    def track_input(self, fh):
        """Wrap the input reader so that checkpoints record (and a resumed run
        checks) a digest of the input bytes behind the records done."""
        self._input = _HashingReader(fh)
        return self._input

    def check_input(self, name: str) -> None:
        """After skipping the records done: were they the same bytes as before?"""
        if self._input is None or self.input_state is None:
            return
        if self._input.digest() != self.input_state:
            raise DataError(
                f"--resume: the first {self.records_done} records of the input differ from those the unfinished "
                f"output beside {self.first.name} was made from; run without --resume to start over",
                name,
            )

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
            size = part.fh.tell()
            sizes[key] = {"size": size, "sha256": part.hash_to(size)}
            if part.writer is not None:
                npy[key] = part.writer.state()
        state = {"version": STATE_VERSION, "fingerprint": self.fingerprint, "records_done": records_done,
                 "input": self._input.digest() if self._input is not None else None,
                 "parts": sizes, "npy": npy, "extra": self.extra}
        tmp = self.state_path.with_suffix(".tmp")
        with open(tmp, "w") as fh:
            fh.write(json.dumps(state))
            fh.flush()
            os.fsync(fh.fileno())
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
        self._drop_state()
        self._finished = True

    # -- helpers
    def _load_state(self):
        if not self.state_path.is_file():
            return None
        missing = [p.partial.name for p in self.parts.values() if not p.partial.is_file()]
        if missing:
            log.warning("%s is missing: starting over", ", ".join(missing))
            return None
        try:
            return json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            log.warning("%s cannot be read: starting over", self.state_path.name)
            return None

    def _close_files(self):
        for part in self.parts.values():
            if part.fh and not part.fh.closed:
                part.fh.close()

    def _drop_state(self):
        with contextlib.suppress(FileNotFoundError):
            self.state_path.unlink()

    def _discard(self):
        for part in self.parts.values():
            with contextlib.suppress(FileNotFoundError):
                part.partial.unlink()
        self._drop_state()

    def _lock(self):
        self._lock_fh = acquire_lock(self.lock_path, next(iter(self.parts.values())).final)

    def _unlock(self):
        if self._lock_fh is not None:
            with contextlib.suppress(FileNotFoundError):
                self.lock_path.unlink()
            self._lock_fh.close()
            self._lock_fh = None
