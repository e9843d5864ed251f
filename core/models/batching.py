"""Devices, dtypes and batches for transformer inference.

Batches are planned from token lengths: texts sorted longest first and cut so
that (longest length in batch) x (batch size) stays under a token budget, which
keeps padding low and memory flat whatever the mix of lengths. A CUDA
out-of-memory error halves the budget (remembered for the rest of the run) and
retries the batch."""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np

from vecpipe.core.errors import UnavailableError, UsageError

log = logging.getLogger("vecpipe")

DTYPES = ("auto", "float32", "float16", "bfloat16")


def choose_devices(spec: str | None) -> list[str]:
    """'auto'/None -> the best device present; 'cuda:0,cuda:1' -> both."""
    import torch

    if spec in (None, "", "auto"):
        if torch.cuda.is_available():
            return ["cuda"]
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return ["mps"]
        return ["cpu"]
    devices = [d.strip() for d in spec.split(",") if d.strip()]
    for d in devices:
        kind = d.split(":")[0]
        if kind == "cuda" and not torch.cuda.is_available():
            raise UnavailableError(f"--device {d}: CUDA is not available on this machine")
        if kind == "cuda" and ":" in d:
            index = d.split(":", 1)[1]
            if not index.isdigit():
                raise UsageError(f"--device {d}: a CUDA device is cuda or cuda:N")
            if int(index) >= torch.cuda.device_count():
                raise UnavailableError(f"--device {d}: this machine has {torch.cuda.device_count()} CUDA device(s)")
        if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise UnavailableError(f"--device {d}: MPS is not available on this machine")
        if kind not in ("cpu", "cuda", "mps", "xpu", "npu"):
            raise UsageError(f"--device {d}: unknown device (use cpu, cuda, cuda:N, mps)")
    return devices


def choose_dtype(device: str, spec: str | None):
    """fp16 on CUDA, fp32 elsewhere, unless --dtype says."""
    import torch

    if spec in (None, "", "auto"):
        return torch.float16 if device.startswith("cuda") else torch.float32
    if spec not in DTYPES:
        raise UsageError(f"--dtype must be one of {', '.join(DTYPES)}")
    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[spec]


def plan_batches(lengths, max_tokens: int, max_batch: int = 512) -> list[np.ndarray]:
    """Split indices into batches, longest texts first, so that padded size
    (batch size x longest length in the batch) stays within max_tokens.
    A single text longer than the budget still gets a batch of its own."""
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    batches = []
    start = 0
    n = len(order)
    while start < n:
        longest = max(int(lengths[order[start]]), 1)
        size = max(1, min(max_batch, max_tokens // longest))
        batches.append(order[start : start + size])
        start += size
    return batches


def is_out_of_memory(exc: BaseException) -> bool:
    try:
        import torch

        if isinstance(exc, torch.cuda.OutOfMemoryError):
            return True
    except (ImportError, AttributeError):
        pass
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


@dataclass
class Budget:
    """The token budget, shared by all batches of a run; shrinks on OOM."""

    max_tokens: int
    max_batch: int = 512
    min_tokens: int = 16

    def __post_init__(self):
        self._lock = threading.Lock()

    def shrink(self, tokens: int, texts: int) -> bool:
        """After an OOM on a batch of `texts` texts padded to `tokens` tokens:
        halve both limits (for the rest of the run). False when a single text
        failed, as nothing smaller can be tried."""
        with self._lock:
            if texts <= 1:
                return False
            self.max_tokens = min(self.max_tokens, max(self.min_tokens, tokens // 2))
            self.max_batch = min(self.max_batch, max(1, texts // 2))
            log.warning("out of memory: batches lowered to %d tokens / %d texts for the rest of the run",
                        self.max_tokens, self.max_batch)
            return True


def run_batches(indices: np.ndarray, lengths: np.ndarray, budget: Budget, fn, empty_cache=None, prepare=None,
                lanes: int = 1) -> list:
    """Run fn(batch_indices) -> array for every batch of `indices`, re-planning
    the rest with a smaller budget after an out-of-memory error.
    With `prepare`, prepare(batch_indices) runs on a worker thread up to
    `ahead` batches in front (tokenizing while the device runs the current
    batch) and fn is called as fn(batch_indices, prepared).
    With lanes > 1 (and no `prepare`), up to `lanes` batches run at once on
    threads, for runtimes that release the GIL (a CPU runtime running each
    batch on one core). The plan is the same whatever `lanes` is, so every
    batch, and so every vector, is the same too.
    Returns a list of (batch_indices, array)."""
    results = []
    pending = [indices]
    while pending:
        group = pending.pop()
        batches = [group[b] for b in plan_batches(lengths[group], budget.max_tokens, budget.max_batch)]
        try:
            if prepare is None and lanes > 1 and len(batches) > 1:
                _run_lanes(batches, fn, lanes, results)
            else:
                with _Prefetch(prepare, batches) as prepared:
                    for i, batch in enumerate(batches):
                        if prepare is None:
                            results.append((batch, _checked(fn, batch)))
                        else:
                            results.append((batch, _checked(lambda b, i=i: fn(b, prepared.get(i)), batch)))
        except _OutOfMemory as oom:
            if empty_cache:
                empty_cache()
            if not budget.shrink(int(lengths[oom.batch].max()) * len(oom.batch), len(oom.batch)):
                raise UnavailableError("out of memory even for one text; lower --max-length or use another device") from oom.__cause__
            done = {int(i) for b, _ in results for i in b}
            pending.append(np.array([i for i in group if int(i) not in done], dtype=np.int64))
    return results


class _OutOfMemory(Exception):
    """A batch ran out of memory (the cause is chained)."""

    def __init__(self, batch):
        super().__init__()
        self.batch = batch


def _checked(fn, batch, *args):
    try:
        return fn(batch, *args)
    except Exception as exc:  # noqa: BLE001 - only OOM is handled, the rest re-raised
        if is_out_of_memory(exc):
            raise _OutOfMemory(batch) from exc
        raise


def _run_lanes(batches, fn, lanes: int, results: list) -> None:
    """The batches on `lanes` threads; finished batches go into `results` even
    when one fails, so that a re-plan after an OOM redoes only the rest."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(min(lanes, len(batches)), thread_name_prefix="vecpipe-lane") as pool:
        futures = [pool.submit(_checked, fn, batch) for batch in batches]
        done = 0  # batches[:done] are in results; batches[done] is the one that failed
        try:
            for batch, future in zip(batches, futures):
                results.append((batch, future.result()))
                done += 1
        except BaseException:
            for future in futures:
                future.cancel()
            pool.shutdown(wait=True)
            results.extend((batch, f.result()) for batch, f in zip(batches[done + 1:], futures[done + 1:])
                           if not f.cancelled() and f.exception() is None)
            raise


class _Prefetch:
    """prepare(batch) for the batches of one plan, on two worker threads (fast
    tokenizers release the GIL, so two tokenize at once), at most `ahead`
    batches before the one being run; unused work is cancelled on exit."""

    ahead = 3
    workers = 2

    def __init__(self, prepare, batches):
        self.prepare, self.batches, self.futures, self.pool = prepare, batches, {}, None

    def __enter__(self):
        if self.prepare is not None:
            from concurrent.futures import ThreadPoolExecutor

            self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="vecpipe-prepare")
        return self

    def get(self, i: int):
        for j in range(i, min(i + self.ahead + 1, len(self.batches))):
            if j not in self.futures:
                self.futures[j] = self.pool.submit(self.prepare, self.batches[j])
        return self.futures.pop(i).result()

    def __exit__(self, *exc):
        if self.pool is not None:
            for f in self.futures.values():
                f.cancel()
            self.pool.shutdown(wait=True)
        return False
