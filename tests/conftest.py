import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from vecpipe.core.models.base import Encoded, Encoder, register

# A shell that starts a job in the background (`make test &`) starts it with
# SIGINT ignored, and every child inherits that: the Ctrl-C tests would then
# time out. Such a shell's children run here get the default back.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("VECPIPE_DATA", REPO.parent / "shared" / "data"))
PKU = DATA / "small-vectors" / "pku-morpheme-cbow.50d.txt"


@pytest.fixture
def pku():
    if not PKU.is_file():
        pytest.skip(f"real data not found at {PKU} (set VECPIPE_DATA)")
    return PKU


def cjk_words(n, seed=0):
    """Distinct CJK words of 1-4 characters."""
    rng = np.random.default_rng(seed)
    words, seen = [], set()
    while len(words) < n:
        w = "".join(chr(c) for c in rng.integers(0x4E00, 0x9FA5, rng.integers(1, 5)))
        if w not in seen:
            seen.add(w)
            words.append(w)
    return words


@pytest.fixture
def cjk_vectors():
    """(words, float32 matrix) with values of several magnitudes and signs."""
    rng = np.random.default_rng(42)
    words = cjk_words(300)
    x = (rng.standard_normal((300, 16)) * rng.choice([1e-4, 0.1, 3.0, 250.0], (300, 1))).astype(np.float32)
    return words, x


def write_w2v_text(path, words, x, header=True, line_end="\n", trailing=""):
    with open(path, "w", encoding="utf-8", newline="") as f:
        if header:
            f.write(f"{len(words)} {x.shape[1]}{line_end}")
        for w, row in zip(words, x):
            f.write(w + " " + " ".join(repr(float(v)) for v in row) + trailing + line_end)
    return path


def corpus_copy_made(pid, tmp) -> bool:
    """train-w2v's tokenized copy exists in `tmp`: by its name, or (on Linux,
    where it is unlinked at once) open in process `pid`."""
    if any(Path(tmp).glob("vecpipe-train-*")):
        return True
    try:
        return any(str(tmp) in os.readlink(fd) for fd in (Path("/proc") / str(pid) / "fd").iterdir())
    except OSError:
        return False


class Result:
    def __init__(self, proc):
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr.decode("utf-8", "replace")


def run_vecpipe(*args, input=None, cwd=None, timeout=120):
    """vecpipe in a real subprocess: bytes in, bytes out, the real exit code."""
    proc = subprocess.run(
        [sys.executable, "-m", "vecpipe", *map(str, args)],
        input=input, capture_output=True, cwd=cwd, timeout=timeout,
    )
    return Result(proc)


class _Entry:
    """Lets CliRunner drive vecpipe's real entry point, so exit codes and error
    messages are exactly those of the installed command."""

    name = "vecpipe"

    def main(self, args=(), prog_name=None, **_):
        from vecpipe.cli.main import main

        raise SystemExit(main(list(args)))


def invoke_vecpipe(*args, input=None):
    """vecpipe in this process (no interpreter start, no torch unless the model
    needs it): the result has exit_code, stdout_bytes, stdout, stderr. Use
    run_vecpipe for what needs a real process (pipes, signals, file descriptors)."""
    return CliRunner().invoke(_Entry(), [str(a) for a in args], input=input)


@pytest.fixture
def invoke():
    return invoke_vecpipe


def fake_vector(text: str, dim: int) -> np.ndarray:
    """The fake model's vector of one text: a pure function of the text (its
    hash seeds the numbers), so a test can compute what any command must give.
    An empty text gets zeros, as a word-vector model gives for no known word."""
    if not text:
        return np.zeros(dim, np.float32)
    seed = int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32)


@register("fake", prefix="fake:")
class FakeEncoder(Encoder):
    """`-m fake:8`: a registered model kind for CLI tests, found through the same
    ModelSpec -> Encoder path as the real ones, with no torch and no files."""

    def __init__(self, name: str, dim: int):
        self.name, self.dim = name, dim
        self.query_prompt = "query: "

    @classmethod
    def from_spec(cls, spec, location):
        return cls(spec.name, int(location or 8))

    def encode_batch(self, texts, *, prompt=None, normalize=False, truncate_dim=None, budget=None):
        x = np.zeros((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):
            x[i] = fake_vector(f"{prompt}{t}" if prompt and t else t, self.dim)
        if truncate_dim:
            x = np.ascontiguousarray(x[:, :truncate_dim])
        if normalize:
            norms = np.linalg.norm(x, axis=1, keepdims=True)
            x = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
        return Encoded(x, {"empty_texts": sum(1 for t in texts if not t), "fake_batches": 1})
